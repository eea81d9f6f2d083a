import json
import os

import pytest
from conftest import REPO
from conftest import run_module

from hournas_tf import search
from hournas_tf import spaces
from hournas_tf.errors import UserError
from hournas_tf.nas import config as config_lib
from hournas_tf.nas import search_lib
from hournas_tf.nas import vital_policy
from hournas_tf.resources import counting
from hournas_tf.resources import tables


def _flagfile(name):
    values = {}
    with open(os.path.join(REPO, 'configs', name)) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith('#'):
                key, _, value = line[2:].partition('=')
                values[key] = value
    return values


def test_demo_flagfile_equals_the_embedded_default():
    values = _flagfile('demo.flags')
    assert set(values) == set(search.DEMO)
    for key, value in search.DEMO.items():
        assert type(value)(values[key]) == value, key


@pytest.mark.parametrize('name', ['fbnet.flags', 'fbnet_c.flags',
                                  'efbnet.flags', 'mnasnet.flags',
                                  'efficientnet.flags'])
def test_flagfile_targets_are_feasible_for_their_space(name):
    values = _flagfile(name)
    space = spaces.get_space(values['space'])
    targets = {'macs': float(values['target_macs']),
               'params': float(values['target_params'])}
    search_lib.whole_space_check(space, targets)


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
    assert report['vital_layers'] == [2, 6, 10, 14, 18, 22]
    assert (out / 'proposals_dry_run.png').stat().st_size > 10_000
    assert 'within 3% of every target' in res.stdout


def test_infeasible_target_fails_before_training_naming_the_range(tmp_path):
    res = run_module('hournas_tf.search', '--target_macs=1e12',
                     f'--output_dir={tmp_path / "x"}')
    assert res.returncode == 2
    line = res.stderr.strip().splitlines()
    assert len(line) == 1 and 'feasible' in line[0] and '[' in line[0]
    assert 'Traceback' not in res.stderr


def test_existing_output_dir_is_never_overwritten(tmp_path):
    keep = tmp_path / 'mine.txt'
    keep.write_text('user data')
    res = run_module('hournas_tf.search', '--dry_run',
                     f'--output_dir={tmp_path}')
    assert res.returncode == 2
    assert 'already exists' in res.stderr
    assert keep.read_text() == 'user data'
    assert sorted(os.listdir(tmp_path)) == ['mine.txt']


@pytest.mark.parametrize('flag, message', [
    ('--space=resnet', '--space'),
    ('--sampler=argmax', '--sampler'),
    ('--dataset=mnist', "unknown dataset"),
    ('--vital_ops=k3_e1', 'vital layers'),
])
def test_bad_flags_exit_2_with_one_line(flag, message, tmp_path):
    res = run_module('hournas_tf.search', flag, '--dry_run',
                     f'--output_dir={tmp_path / "x"}')
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr[-2000:]


def test_fit_vital_ops_restores_feasibility():
    space = spaces.get_space('fbnet')
    big = vital_policy.max_vital_ops(space)
    targets = {'macs': 120e6, 'params': 3.3e6}
    with pytest.raises(UserError, match='outside the feasible range'):
        search_lib.optimize(space, [i for i in range(22) if i not in big], big,
                          config_lib.SearchConfig(targets=targets), '/tmp',
                          'x')
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
def test_search_end_to_end_on_digits(tmp_path):
    out = tmp_path / 'run'
    res = run_module(
        'hournas_tf.search', f'--output_dir={out}', '--vital_epochs=1',
        '--nonvital_epochs=1', '--max_steps_per_epoch=3',
        '--proposal_iters=200', '--num_proposals=4', '--batch_size=32',
        '--verbose=2')
    assert res.returncode == 0, res.stderr[-4000:]
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
    if not data['repaired_layers']:
        assert before['ops'] == list(arch.ops)
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
    for record in records:
        assert 0.0 <= record['within_tolerance'] <= 1.0
        rows = vital if record['stage'] == 'vital' else [
            i for i in range(len(arch.ops)) if i not in vital]
        assert sorted(int(k) - 1 for k in record['arch_grad_norm']) == \
            sorted(rows)
    last = records[-1]
    assert 'proposal_probabilities' in last and 'tau' in last
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
                    'epoch_within_tolerance'):
            assert tag in tags, (stage, tag, sorted(tags))
        assert any(t.startswith('epoch_arch_grad_norm/L') for t in tags)
        assert any(t.startswith('op_probability/') for t in tags)
    tags = event_scalars(out / 'tensorboard' / 'nonvital')
    assert 'epoch_resource_loss' in tags
    assert 'expected_macs/proposal0' in tags
    res = run_module('hournas_tf.describe', f'--arch_file={out / "arch.json"}',
                     '--json')
    assert json.loads(res.stdout)['macs'] == cost.macs


def test_command_sampler_list_equals_the_sampling_module():
    from hournas_tf.nas import sampling

    assert config_lib.SAMPLERS == sampling.SAMPLERS
