import dataclasses
import json
import os
import re

import pytest
from conftest import REPO
from conftest import run_module
from conftest import run_python

from hournas_tf import spaces
from hournas_tf.common.errors import UserError
from hournas_tf.data import image_folder
from hournas_tf.fuzzing import check_refused
from hournas_tf.nas import config as config_lib
from hournas_tf.nas import proposal_report
from hournas_tf.nas import search_lib
from hournas_tf.nas import vital_policy
from hournas_tf.resources import counting
from hournas_tf.resources import tables

# The search's flagfiles (train_*.flags are the train command's,
# ablate_*.flags tools/ablate.py's).
FLAGFILES = sorted(name for name in os.listdir(os.path.join(REPO, 'configs'))
                   if name.endswith('.flags')
                   and not name.startswith(('train_', 'ablate_')))

# Parses flagfiles with absl after `define_flags`, in a subprocess (absl's
# flags are process-wide); a misspelt flag name fails the parse.
PARSE = """
import dataclasses, json, sys
from absl import flags
from hournas_tf import search
search.define_flags()
configs = {}
for name in sys.argv[1:]:
    flags.FLAGS.unparse_flags()
    flags.FLAGS(['search', '--flagfile=configs/' + name])
    configs[name] = dataclasses.asdict(search.config_from_flags(flags.FLAGS))
print(json.dumps(configs))
"""


@pytest.fixture(scope='module')
def flagfile_configs():
    res = run_python('-c', PARSE, *FLAGFILES, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout)


def _search_config(fields):
    return config_lib.SearchConfig(**{
        **fields, 'vital_ops': fields['vital_ops'] and tuple(
            fields['vital_ops'])})


@pytest.mark.parametrize('name', FLAGFILES)
def test_flagfile_targets_are_feasible_with_the_dry_runs_vital_ops(
        name, flagfile_configs):
    config = _search_config(flagfile_configs[name])
    assert set(config.targets) == {'macs', 'params'}
    search_lib.preflight(config)  # What the command checks first.
    # The vital ops a dry run fixes, then the targets for the rest.
    space = spaces.get_space(config.space, image_size=config.image_size,
                             num_classes=search_lib.known_num_classes(config),
                             width_multiplier=config.width_multiplier)
    ops, _ = vital_policy.fit_vital_ops(space, vital_policy.resolve_vital_ops(
        space, config.vital_ops or 'max'), config.targets)
    nonvital = [i for i in range(len(space.layers)) if i not in ops]
    tables.check_targets(tables.resource_table(
        space, nonvital, ops, tuple(config.targets)), config.targets)


def test_demo_flagfile_is_what_the_command_runs_without_flags(tmp_path):
    used = {}
    for name, flags in (('default', []),
                        ('demo', ['--flagfile=configs/demo.flags'])):
        out = tmp_path / name
        res = run_module('hournas_tf.search', *flags, '--dry_run',
                         f'--output_dir={out}')
        assert res.returncode == 0, res.stderr[-2000:]
        used[name] = json.loads((out / 'search_config.json').read_text())
        assert used[name].pop('output_dir') == str(out)
    assert used['demo'] == used['default']
    assert used['default']['targets'] == {'macs': 10e6, 'params': 0.25e6}


@pytest.mark.large
def test_dry_run_fbnet_lands_every_proposal_within_3_percent(tmp_path):
    out = tmp_path / 'dry'
    res = run_module('hournas_tf.search', '--flagfile=configs/fbnet.flags',
                     '--dry_run', f'--output_dir={out}')
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((out / 'dry_run.json').read_text())
    assert len(report['proposals']) == 8
    for p in report['proposals']:
        assert abs(p['macs'] - 295e6) <= 0.03 * 295e6
        assert abs(p['params'] - 4.8e6) <= 0.03 * 4.8e6
        assert p['within_tolerance']
    shares = [report['samples'][t]['share_within_tolerance']
              for t in ('5', '1', '0.5', '0.1')]
    assert shares[-1] > shares[0]
    # Stage 2 draws at the proposals' sampling temperature, from
    # proposals that keep choice (mean top probability <= 0.9) with at
    # least half of the draws within 3% (docs/search.md).
    start = report['stage2_start']
    assert start['sample_temperature'] == 1.0
    assert start['share_within_tolerance'] >= 0.5
    assert start['mean_top_probability'] <= 0.9
    # 64 draws per step (the default) keep one within tolerance.
    assert start['budget_draws'] == 64
    assert start['share_trained_within_tolerance'] >= max(
        0.999, start['share_within_tolerance'])
    assert report['vital_layers'] == [2, 6, 10, 14, 18, 22]
    assert (out / 'proposals_dry_run.png').stat().st_size > 10_000
    assert 'within 3% of every target' in res.stdout


def test_existing_output_dir_is_never_overwritten(tmp_path):
    keep = tmp_path / 'mine.txt'
    keep.write_text('user data')
    res = run_module('hournas_tf.search', '--dry_run',
                     f'--output_dir={tmp_path}')
    check_refused(res, 'already exists')
    assert keep.read_text() == 'user data'
    assert sorted(os.listdir(tmp_path)) == ['mine.txt']


def _image_folder(root, classes=3, per_class=4):
    """A folder of tiny PNGs, one subfolder per class."""
    from PIL import Image

    for c in range(classes):
        os.makedirs(root / f'class{c}')
        for i in range(per_class):
            Image.new('RGB', (12, 12), (40 * c + i, 0, 0)).save(
                root / f'class{c}' / f'{i}.png')
    return root


@pytest.mark.parametrize('flags, message', [
    (['--space=resnet'], 'flag --space=resnet: value should be one of'),
    (['--sampler=argmax'], 'flag --sampler=argmax: value should be one of'),
    (['--dataset=mnist'], "unknown dataset 'mnist'; valid: digits"),
    (['--vital_ops=k3_e1'], '--vital_ops has 1 ops but space'),
    (['--vital_first=false', '--vital_ops=max'],
     '--vital_ops needs --vital_first'),
    (['--target_macs=0'], 'target macs=0.0 must be > 0'),
    (['--target_params=-1e5'], 'target params=-100000.0 must be > 0'),
    (['--nonvital_tau_init=0'], 'nonvital_tau_init=0.0 must be > 0'),
    (['--target_macs=1e5'], 'target macs=100K is outside the feasible range '
     '[2.188M, 16.99M]'),
    (['--target_macs=1e12'], 'target macs=1000G is outside the feasible '
     'range [2.188M, 16.99M]'),
    (['--target_macs=2.2e6', '--target_params=0.3e6'],
     'the targets cannot be reached with any choice of vital ops'),
    (['--num_classes=5'], "num_classes=5 but dataset 'digits' has 10"),
    (['--flagfile={tmp}/missing.flags'], 'Unable to open flagfile'),
    (['--output_dir={tmp}/file'], "output_dir '{tmp}/file' is a file"),
    # After TensorFlow and tensorflow-datasets have loaded.
    (['--dataset=cifar10', '--data_dir={tmp}/empty'],
     'cifar10 is not prepared in data dir {tmp}/empty; prepare it once'),
    (['--dataset=image_folder:{tmp}/images', '--num_classes=5'],
     "num_classes=5 but dataset 'image_folder:{tmp}/images' has 3 classes"),
])
def test_user_errors_are_one_line_and_leave_no_folder(flags, message,
                                                      tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'file').write_text('mine')
    _image_folder(tmp_path / 'images')
    before = sorted(os.listdir(tmp_path))
    flags = [f.format(tmp=tmp_path) for f in flags]
    if not any(f.startswith('--output_dir') for f in flags):
        flags.append(f'--output_dir={tmp_path}/runs/search')
    res = run_module('hournas_tf.search', *flags)
    check_refused(res, message.format(tmp=tmp_path))
    # Nothing created is left behind, nothing that was there is touched.
    assert sorted(os.listdir(tmp_path)) == before
    assert os.listdir(tmp_path / 'empty') == []
    assert (tmp_path / 'file').read_text() == 'mine'


def test_a_failed_run_can_be_rerun_once_fixed(tmp_path):
    folder = _image_folder(tmp_path / 'images')
    out = f'--output_dir={tmp_path}/run'
    res = run_module('hournas_tf.search', f'--dataset=image_folder:{folder}',
                     '--num_classes=4', out)
    check_refused(res, 'has 3 classes')
    res = run_module('hournas_tf.search', f'--dataset=image_folder:{folder}',
                     '--num_classes=3', out, '--dry_run')
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / 'run' / 'dry_run.json').exists()


def test_fit_vital_ops_restores_feasibility():
    space = spaces.get_space('fbnet')
    big = vital_policy.max_vital_ops(space)
    targets = {'macs': 120e6, 'params': 3.3e6}
    with pytest.raises(UserError, match='outside the feasible range'):
        proposal_report.optimize(
            space, [i for i in range(22) if i not in big], big,
            config_lib.SearchConfig(targets=targets), '/tmp/x.png')
    ops, changed = vital_policy.fit_vital_ops(space, big, targets)
    assert changed
    nonvital = [i for i in range(22) if i not in ops]
    table = tables.resource_table(space, nonvital, ops, tuple(targets))
    tables.check_targets(table, targets)


def event_scalars(folder):
    """{tag: [values]} of every scalar in the TensorBoard files below
    `folder` (Keras writes v2 summaries as tensors)."""
    import tensorflow as tf

    scalars = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if not name.startswith('events.out.tfevents'):
                continue
            for event in tf.compat.v1.train.summary_iterator(
                    os.path.join(root, name)):
                for value in event.summary.value:
                    if value.HasField('tensor'):
                        number = float(tf.make_ndarray(value.tensor))
                    else:
                        number = value.simple_value
                    scalars.setdefault(value.tag, []).append(number)
    return scalars


def decoded_image(path):
    import matplotlib.image

    return matplotlib.image.imread(str(path))


@pytest.mark.large
def test_search_end_to_end_on_digits(tiny_search):
    # conftest.TINY_SEARCH: 1 epoch x 3 steps per stage, 4 proposals.
    out, stdout = tiny_search
    arch = spaces.load_architecture(str(out / 'arch.json'))
    data = json.loads((out / 'arch.json').read_text())['search']
    cost = counting.arch_cost(arch).total
    for obj, target in (('macs', 10e6), ('params', 0.25e6)):
        assert abs(cost.get(obj) - target) <= 0.03 * target
        assert data['achieved'][obj] == cost.get(obj)
    # The search's own result is reported next to the final one.
    before = data['before_repair']
    assert set(before) == {'ops', 'achieved', 'relative_error',
                           'within_tolerance'}
    # The search's choice differs from the result at the repaired layers
    # (1-based) only; repair runs only on a choice outside the tolerance.
    assert [i + 1 for i, (a, b) in enumerate(zip(before['ops'], arch.ops))
            if a != b] == data['repaired_layers']
    if data['repaired_layers']:
        assert not before['within_tolerance']
    # 10,000 draws from the distribution stage 2 ended with: a count of
    # 10,000, near the share it started with (3 architecture steps move
    # the logits by a few learning rates; each share has a standard error
    # of at most 0.005).
    end = data['stage2_end']
    share = end['share_within_tolerance']
    assert share * 10_000 == pytest.approx(round(share * 10_000), abs=1e-6)
    start = data['stage2_start']['share_within_tolerance']
    assert abs(share - start) <= 0.05, (start, share)
    assert f'stage 2 ends with {share:.1%}' in stdout
    lines = (out / 'history.jsonl').read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r['stage'] for r in records] == ['vital', 'nonvital']
    # Vital ops are the argmax of the stage-1 probabilities unless listed
    # as changed for feasibility.
    vital = arch.search_space().vital_layers
    assert sorted(int(k) - 1 for k in data['vital_ops']) == list(vital)
    probs = records[0]['op_probabilities']
    for i in vital:
        assert arch.ops[i] == data['vital_ops'][str(i + 1)]
        if i + 1 not in data['vital_ops_changed_for_feasibility']:
            row = probs[f'layer{i + 1}']
            assert arch.ops[i] == max(row, key=row.get)
    # Through kept_share (its own test checks the formula) with the run's
    # --budget_draws.
    draws = json.loads((out / 'search_config.json').read_text())[
        'budget_draws']
    assert end['budget_draws'] == draws
    assert end['share_trained_within_tolerance'] == proposal_report.kept_share(
        share, draws)
    for record in records:
        assert 0.0 <= record['within_tolerance'] <= 1.0
        # The trained architecture is within tolerance whenever the first
        # draw of its step is.
        assert record['within_tolerance'] >= \
            record['draw_within_tolerance']
        rows = vital if record['stage'] == 'vital' else [
            i for i in range(len(arch.ops)) if i not in vital]
        assert sorted(int(k) - 1 for k in record['arch_grad_norm']) == \
            sorted(rows)
        assert sorted(record['resource_grad_norm']) == sorted(
            record['arch_grad_norm'])
    last = records[-1]
    # Stage 2's per-epoch choice statistics and pi's gradient norms.
    assert set(last['pi_grad_norm']) == {'cross_entropy', 'resource'}
    assert 0 < last['mean_top_probability'] <= 1
    moved = last['rows_changed']
    assert moved['rows'] == 4 * (len(arch.ops) - len(vital))
    assert moved['total'] == sum(map(len, moved['per_proposal']))
    assert data['rows_changed'] == moved
    assert data['stage2_start']['mean_top_probability'] <= 1
    assert 'proposal_probabilities' in last and 'tau' in last
    # Each stage anneals from its own start: --tau_init, then
    # --nonvital_tau_init (3 steps of decay 0.9999 each).
    assert records[0]['tau'] == pytest.approx(5.0 * 0.9999 ** 3, rel=1e-5)
    assert last['tau'] == pytest.approx(1.0 * 0.9999 ** 3, rel=1e-5)
    assert len(last['expected_per_proposal']['macs']) == 4
    # The family: each member loads, its cost is what family.json says,
    # and the weights file fits it.
    family = json.loads((out / 'family' / 'family.json').read_text())
    assert len(family) == 4 and len(data['family']) == 4
    import keras

    import hournas_tf
    for j, entry in enumerate(family):
        member = spaces.load_architecture(
            str(out / 'family' / f'proposal{j}.json'))
        member_cost = counting.arch_cost(member).total
        assert entry['achieved'] == {'macs': member_cost.macs,
                                     'params': member_cost.params}
        assert entry['architecture'] == member.to_string()
    model = hournas_tf.build_model(arch)
    model.load_weights(str(out / 'arch.weights.h5'))
    assert isinstance(model, keras.Model)
    # arch.weights.h5 holds the supernet's weights of arch.json's network
    # (the best member's file, copied).
    from hournas_tf.nas import derive
    from hournas_tf.nas import restore

    inherited = derive.standalone_model(restore.load_supernet(str(out)),
                                        arch)
    assert len(model.weights) == len(inherited.weights)
    for got, want in zip(model.weights, inherited.weights):
        assert (got.numpy() == want.numpy()).all(), got.path
    # Plots decode to real images.
    for name in ('ops_vital.png', 'ops_nonvital.png', 'proposals_stage2.png',
                 'proposals_searched.png'):
        image = decoded_image(out / name)
        assert image.shape[0] > 100 and image.shape[1] > 100, name
        assert image.std() > 0.05, name
    # TensorBoard: both stages log their losses, tau, within_tolerance, the
    # gradient norms and op probabilities; stage 2 the resource loss and
    # the expected resources per proposal.
    for stage in ('vital', 'nonvital'):
        tags = event_scalars(out / 'tensorboard' / stage)
        for tag in ('epoch_loss', 'epoch_arch_loss', 'epoch_tau',
                    'epoch_within_tolerance', 'epoch_draw_within_tolerance'):
            assert tag in tags, (stage, tag, sorted(tags))
        assert any(t.startswith('epoch_arch_grad_norm/L') for t in tags)
        assert any(t.startswith('op_probability/') for t in tags)
    tags = event_scalars(out / 'tensorboard' / 'nonvital')
    assert 'epoch_resource_loss' in tags
    assert 'expected_macs/proposal0' in tags
    res = run_module('hournas_tf.describe', f'--arch_file={out / "arch.json"}',
                     '--json')
    assert json.loads(res.stdout)['macs'] == cost.macs


def _digit_folder(root, classes=3, per_class=16):
    """A folder of real images: the first digits of each class as 8x8 RGB
    PNGs (scikit-learn's copy), one subfolder per class."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for c in range(classes):
        os.makedirs(root / f'digit{c}')
        for k, i in enumerate(np.flatnonzero(digits.target == c)[:per_class]):
            gray = (digits.images[i] * 255 / 16).astype('uint8')
            Image.fromarray(np.stack([gray] * 3, -1)).save(
                root / f'digit{c}' / f'{k}.png')
    return root


@pytest.mark.large
def test_search_runs_on_an_image_folder_at_72_pixels(tmp_path):
    """A real search (stage 2, the largest vital ops) on a folder of
    images at 72x72, above 64 (the ImageNet layout), with a parameter
    target in the middle of what the searched layers can reach."""
    folder = _digit_folder(tmp_path / 'images')
    space = spaces.get_space('efficientnet', image_size=72, num_classes=3,
                             width_multiplier=0.25)
    vital_ops = vital_policy.max_vital_ops(space)
    searched = [i for i in range(len(space.layers)) if i not in vital_ops]
    low, high = tables.feasible_range(tables.resource_table(
        space, searched, vital_ops, ('params',)), 'params')
    target = round((low + high) / 2)
    out = tmp_path / 'run'
    res = run_module('hournas_tf.search', f'--dataset=image_folder:{folder}',
                     '--image_size=72', f'--target_params={target}',
                     '--vital_ops=max', '--nonvital_epochs=1',
                     '--max_steps_per_epoch=2', '--batch_size=8',
                     '--proposal_iters=50', '--num_proposals=2',
                     '--verbose=0', f'--output_dir={out}')
    assert res.returncode == 0, res.stderr[-4000:]
    weights, arch_split = map(int, re.search(
        r'data image_folder:\S+: (\d+) images for weights, (\d+) for '
        'architecture', res.stdout).groups())
    # The folder's own held-out evaluation split takes 20% of each class.
    held = max(1, round(image_folder.HOLDOUT_FRACTION * 16))
    assert weights + arch_split == 3 * (16 - held)
    assert weights > arch_split > 0
    arch = spaces.load_architecture(str(out / 'arch.json'))
    assert (arch.image_size, arch.num_classes) == (72, 3)
    assert [arch.ops[i] for i in vital_ops] == list(vital_ops.values())
    params = counting.arch_cost(arch).total.params
    assert abs(params - target) <= 0.03 * target
    records = [json.loads(line) for line in
               (out / 'history.jsonl').read_text().splitlines()]
    assert [r['stage'] for r in records] == ['nonvital']
    assert json.loads((out / 'search_config.json').read_text())[
        'dataset'] == f'image_folder:{folder}'


def test_command_sampler_list_equals_the_sampling_module():
    from hournas_tf.nas import sampling

    assert config_lib.SAMPLERS == sampling.SAMPLERS


VITAL_OPS = ['k3_e3_se0.25', 'k5_e3_se0.25', 'k3_e6_se0.25', 'k5_e3_se0.25',
             'k3_e3_se0.25']
TINY = ['--max_steps_per_epoch=2', '--proposal_iters=50', '--num_proposals=2',
        '--batch_size=16', '--vital_epochs=1', '--nonvital_epochs=1',
        '--verbose=2']


@pytest.mark.large
@pytest.mark.parametrize('flags, sampler, targets, vital_ops', [
    # One stage, every layer through the proposals (paper table 4), DARTS's
    # softmax, a parameter target alone.
    (['--vital_first=false', '--sampler=softmax', '--target_params=0.25e6'],
     'softmax', {'params': 0.25e6}, None),
    # Stage 1 skipped with given vital ops; FBNet's Gumbel-softmax.
    (['--vital_ops=' + ','.join(VITAL_OPS), '--sampler=gumbel_softmax'],
     'gumbel_softmax', {'macs': 10e6, 'params': 0.25e6}, VITAL_OPS),
    # Stage 1 skipped with the largest vital ops, a MACs target alone.
    (['--vital_ops=max', '--target_macs=10e6'], 'gumbel_max',
     {'macs': 10e6}, 'max'),
])
def test_search_modes_run_through_the_command(flags, sampler, targets,
                                              vital_ops, tmp_path):
    out = tmp_path / 'run'
    res = run_module('hournas_tf.search', *flags, *TINY,
                     f'--output_dir={out}')
    assert res.returncode == 0, res.stderr[-4000:]
    assert f'stage nonvital: 1 epoch(s) x 2 steps, batch 16, sampler ' \
        f'{sampler}\n' in res.stdout
    assert 'stage vital' not in res.stdout
    arch = spaces.load_architecture(str(out / 'arch.json'))
    data = json.loads((out / 'arch.json').read_text())['search']
    assert json.loads((out / 'search_config.json').read_text())[
        'sampler'] == sampler == data['sampler']
    assert data['targets'] == targets and data['within_tolerance']
    cost = counting.arch_cost(arch).total
    for obj, target in targets.items():
        assert abs(cost.get(obj) - target) <= 0.03 * target, obj
    assert set(data['achieved']) == set(targets)
    space = arch.search_space()
    vital = list(space.vital_layers)
    if vital_ops is None:
        assert data['vital_first'] is False and data['vital_ops'] == {}
        searched = list(range(len(space.layers)))
    else:
        if vital_ops == 'max':
            vital_ops, _ = vital_policy.fit_vital_ops(
                space, vital_policy.max_vital_ops(space), targets)
            vital_ops = [vital_ops[i] for i in vital]
        assert data['vital_ops'] == {str(i + 1): op
                                     for i, op in zip(vital, vital_ops)}
        assert data['vital_ops_changed_for_feasibility'] == []
        assert [arch.ops[i] for i in vital] == vital_ops
        searched = [i for i in range(len(space.layers)) if i not in vital]
    records = [json.loads(line) for line in
               (out / 'history.jsonl').read_text().splitlines()]
    assert [r['stage'] for r in records] == ['nonvital']
    assert sorted(int(k) - 1 for k in records[0]['arch_grad_norm']) == \
        searched
    assert sorted(os.listdir(out / 'tensorboard')) == ['nonvital']
    assert not (out / 'ops_vital.png').exists()


def test_untrained_plan_fixes_the_vital_ops_or_searches_every_layer():
    config = config_lib.SearchConfig(
        space='efficientnet', image_size=32, num_classes=10,
        width_multiplier=0.25, targets={'macs': 10e6, 'params': 0.25e6})
    space, ops, searched = search_lib.untrained_plan(config)
    vital = list(space.vital_layers)
    assert sorted(ops) == vital
    assert ops == vital_policy.fit_vital_ops(
        space, vital_policy.max_vital_ops(space), config.targets)[0]
    assert searched == [i for i in range(16) if i not in vital]
    one = dataclasses.replace(config, vital_first=False)
    assert search_lib.untrained_plan(one)[1:] == ({}, list(range(16)))


def test_write_report_failure_is_a_warning_not_an_error(tmp_path, capsys):
    search_lib.write_report(str(tmp_path))
    out = capsys.readouterr().out
    assert 'WARNING: no report: UserError' in out
    assert f'python -m hournas_tf.report {tmp_path}' in out
    assert not (tmp_path / 'report.html').exists()


def test_kept_share_is_the_chance_of_one_hit_in_k_draws():
    assert proposal_report.kept_share(0.5, 1) == 0.5
    assert proposal_report.kept_share(0.5, 3) == pytest.approx(0.875)
    assert proposal_report.kept_share(0.0, 8) == 0.0
    assert proposal_report.kept_share(1.0, 8) == 1.0


@pytest.mark.parametrize('field,value,message', [
    ('derive', 'mode', "unknown derive 'mode'"),
    ('resource_estimate', 'mean', "unknown resource_estimate 'mean'"),
    ('proposal_orthogonality', 'cosine',
     "unknown proposal_orthogonality 'cosine'"),
    ('proposal_reduction', 'max', "unknown proposal_reduction 'max'"),
    ('proposal_tau_end', 0.0, 'proposal_tau_end=0.0 must be > 0'),
    ('proposal_min_share', 1.5, 'proposal_min_share=1.5 must be in [0, 1]'),
    ('proposal_slack', 1.0, 'proposal_slack=1.0 must be in [0, 1)'),
    ('proposal_entropy', -0.1, 'proposal_entropy=-0.1 must be >= 0'),
    ('resource_slack', -1.0, 'resource_slack=-1.0 must be >= 0'),
    ('pi_tau', 0.0, 'pi_tau=0.0 must be > 0'),
])
def test_stage2_settings_are_checked(field, value, message):
    config = config_lib.SearchConfig(targets={'macs': 10e6},
                                     **{field: value})
    with pytest.raises(UserError, match=re.escape(message)):
        config_lib.check_config(config)


def test_proposal_config_carries_every_proposal_setting():
    """Each --proposal_* setting of the search reaches ProposalConfig."""
    config = config_lib.SearchConfig(
        targets={'macs': 10e6}, proposal_lr=0.02, proposal_tau_start=4.0,
        proposal_tau_end=0.5, proposal_hold=0.2, proposal_entropy=0.03,
        proposal_min_share=0.4, proposal_slack=0.25,
        proposal_mode_weight=0.0, proposal_orthogonality='logits',
        proposal_reduction='mean', proposal_repair=True, seed=4,
        tolerance=0.05)
    p = proposal_report.proposal_config(config)
    assert (p.learning_rate, p.tau_start, p.tau_end, p.hold,
            p.entropy_weight, p.min_share, p.slack, p.mode_weight,
            p.orthogonality, p.reduction, p.repair, p.seed, p.tol) == (
        0.02, 4.0, 0.5, 0.2, 0.03, 0.4, 0.25, 0.0, 'logits', 'mean', True,
        4, 0.05)


def test_paper_flagfile_sets_the_papers_settings(flagfile_configs):
    """configs/paper.flags turns every deviation off (proposals.PAPER and
    the stage-2 flags of docs/search.md's table)."""
    from hournas_tf.nas import proposals

    config = flagfile_configs['paper.flags']
    names = {'mode_weight': 'proposal_mode_weight',
             'entropy_weight': 'proposal_entropy',
             'slack': 'proposal_slack',
             'orthogonality': 'proposal_orthogonality',
             'reduction': 'proposal_reduction',
             'repair': 'proposal_repair'}
    assert {names[k]: v for k, v in proposals.PAPER.items()} == {
        names[k]: config[names[k]] for k in proposals.PAPER}
    assert (config['resource_estimate'], config['resource_slack'],
            config['derive'], config['budget_draws'],
            config['proposal_min_share'], config['arch_lr']) == (
        'draw', 0.0, 'argmax', 1, 0.0, 0.01)
    defaults = config_lib.SearchConfig()
    assert defaults.proposal_entropy > 0 and defaults.derive == 'in_budget'
