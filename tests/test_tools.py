"""tools/*.py: the README's table is their output; user errors are one line."""

import json
import os

import pytest
from conftest import REPO
from conftest import run_python

from hournas_tf import spaces
from hournas_tf.fuzzing import check_refused


def run_tool(name, *args):
    """Runs `python tools/<name> args...` as a user would."""
    return run_python(os.path.join('tools', name), *args, timeout=600)


def test_readme_reference_table_is_the_output_of_reference_table_py():
    out = run_tool('reference_table.py')
    assert out.returncode == 0, out.stderr
    with open(os.path.join(REPO, 'README.md')) as f:
        readme = f.read()
    start = readme.index('| architecture | space | MACs |')
    assert readme[start:readme.index('\n\n', start)] == out.stdout.strip()


@pytest.mark.parametrize('tool, args, message', [
    ('reference_table.py', ['--image_size=7'],
     'flag --image_size=7: 7 is not integer >= 8'),
    ('reference_table.py', ['--size=32'], "Unknown command line flag 'size'"),
    ('reference_table.py', ['32'], 'unexpected arguments'),
    ('bench_input.py', ['--dataset=mnist'], "unknown dataset 'mnist'"),
    ('bench_input.py', ['--batch_size=0'], 'flag --batch_size=0: 0 is not'),
    ('bench_input.py', ['--batches=-1'], 'flag --batches=-1: -1 is not'),
    ('bench_input.py', ['--cache=disk'], "unknown cache 'disk'"),
    ('bench_input.py', ['--json=/nonexistent/b.json'],
     'folder /nonexistent does not exist'),
    ('bench_input.py', ['--bogus'], "Unknown command line flag 'bogus'"),
    ('plot_proposals.py', [], 'give --target_macs and/or --target_params'),
    ('plot_proposals.py', ['--target_macs=1e3'],
     'target macs=1K is outside the feasible range [2.188M, 16.99M]'),
    # Any class count (no data set is read): the targets are checked.
    ('plot_proposals.py', ['--space=fbnet', '--image_size=224',
                           '--num_classes=1000', '--width_multiplier=1',
                           '--target_params=1e3'],
     "space 'fbnet' at image_size 224: target params=1K is outside"),
    ('plot_proposals.py', ['--target_macs=10e6', '--output=x.jpg'],
     '--output=x.jpg must end in .png'),
    ('plot_proposals.py', ['--target_macs=10e6', '--output=/nonexistent/x.png'],
     'folder /nonexistent does not exist'),
    ('plot_proposals.py', ['--target_macs=10e6', '--vital_ops=k3_e3'],
     '--vital_ops has 1 ops but space'),
    ('plot_proposals.py', ['--space=resnet'], "flag --space=resnet: value "
     "should be one of"),
    ('block_importance.py', [], 'give --model=PATH.keras'),
    ('block_importance.py', ['--model=/nonexistent.keras'],
     'model /nonexistent.keras does not exist'),
    ('block_importance.py', ['--model={model}', '--probabilities=0'],
     'probability 0 must be in (0, 1]'),
    ('block_importance.py', ['--model={model}', '--probabilities=a'],
     "--probabilities must be numbers, got ['a']"),
    ('block_importance.py', ['--model={model}'],
     'no --arch and no {tmp}/train_config.json'),
    ('block_importance.py', ['--model={model}', '--arch=fbnet_b',
                             '--arch_file=a.json'], 'give exactly one of'),
    ('block_importance.py', ['--model={model}', '--arch=resnet'],
     "unknown architecture 'resnet'"),
    ('block_importance.py', ['--model={model}', '--arch=fbnet_b',
                             '--dataset=mnist'], "unknown dataset 'mnist'"),
    ('block_importance.py', ['--model={model}', '--arch=fbnet_b'],
     'the model has 1000 classes, digits has 10'),
    ('proposal_share.py', ['--variants=tau=0.1'], "variant item 'tau=0.1' "
     'must be name=value with a ProposalConfig field'),
    ('proposal_share.py', ['--variants=hold=x'], "variant item 'hold=x': "
     "'x' is not a float"),
    ('proposal_share.py', ['--variants=hold=1'], 'hold=1.0 must be in'),
    ('proposal_share.py', ['--target_macs=1e3'],
     'target macs=1K is outside the feasible range'),
    ('search_summary.py', [], 'give one or more search output folders'),
    ('search_summary.py', ['{tmp}'], 'history.jsonl does not exist'),
    # Fails after TensorFlow and tensorflow-datasets are loaded.
    ('bench_input.py', ['--dataset=cifar10', '--data_dir={tmp}'],
     'cifar10 is not prepared in data dir {tmp}'),
])
def test_tool_user_errors_are_one_line_with_exit_code_2(
        tool, args, message, tmp_path):
    model = tmp_path / 'model.keras'
    model.write_text('not read: the error comes first')
    args = [a.format(tmp=tmp_path, model=model) for a in args]
    check_refused(run_tool(tool, *args), message.format(tmp=tmp_path))


def decoded_png(path):
    import matplotlib.image

    return matplotlib.image.imread(str(path), format='png')


@pytest.mark.parametrize('flags, vital_first', [
    ([], True), (['--vital_first=false', '--target_params=0.25e6'], False)])
def test_plot_proposals_draws_figure_3_without_training(flags, vital_first,
                                                        tmp_path):
    out = tmp_path / 'fig3.png'
    res = run_tool('plot_proposals.py', '--target_macs=10e6',
                   '--proposal_iters=100', '--num_proposals=3',
                   f'--output={out}', *flags)
    assert res.returncode == 0, res.stderr[-3000:]
    path = tmp_path / 'fig3.json'
    assert res.stdout.splitlines()[-1] == f'wrote {out} and {path}'
    image = decoded_png(out)
    assert image.shape[0] > 300 and image.shape[1] > 1000
    assert image.std() > 0.05
    data = json.loads(path.read_text())
    targets = {'macs': 10e6, **({'params': 0.25e6} if flags else {})}
    assert data['targets'] == targets and data['tolerance'] == 0.03
    space = spaces.get_space('efficientnet', image_size=32, num_classes=10,
                             width_multiplier=0.25)
    vital = [i + 1 for i in space.vital_layers]
    if vital_first:
        assert sorted(int(k) for k in data['vital_ops']) == vital
        assert data['searched_layers'] == [
            i for i in range(1, 17) if i not in vital]
    else:
        assert data['vital_ops'] == {}
        assert data['searched_layers'] == list(range(1, 17))
    assert len(data['proposals']) == 3
    for p in data['proposals']:
        assert p['within_tolerance'], p
        for obj, target in targets.items():
            assert abs(p[obj] - target) <= 0.03 * target
    shares = {t: s['share_within_tolerance'] for t, s in
              data['samples'].items()}
    assert set(shares) == {'5', '1', '0.5', '0.1'}
    assert shares['0.1'] > shares['5']
    for t, share in shares.items():
        assert f'10,000 samples at tau={t}: {share:.1%} within 3%' in \
            res.stdout


@pytest.mark.large
def test_block_importance_vital_blocks_lose_more_on_digits(tmp_path):
    """A MobileNetV2 at width 0.35 and 16x16 trained 4 epochs on digits;
    masking a vital block costs more accuracy on average than masking a
    non-vital one (the paper's figure 2)."""
    arch = spaces.get_reference('mobilenet_v2', image_size=16,
                                num_classes=10, width_multiplier=0.35)
    train = tmp_path / 'train'
    res = run_python('-m', 'hournas_tf.train', f'--arch={arch.to_string()}',
                     '--image_size=16', '--epochs=4',
                     f'--output_dir={train}', '--verbose=0', timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / 'importance'
    res = run_tool('block_importance.py', f'--model={train / "model.keras"}',
                   '--seeds=2', f'--output_dir={out}')
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads((out / 'block_importance.json').read_text())
    assert data['architecture'] == arch.to_string()
    assert data['probabilities'] == [0.3, 0.6, 1.0]
    assert data['num_eval'] == 359 and data['eval_split'] == 'test'
    assert data['baseline_accuracy'] > 0.8
    space = arch.search_space()
    vital = {'stem', 'head', *(f'L{i + 1}' for i in space.vital_layers)}
    rows = data['blocks']
    assert [r['name'] for r in rows] == ['stem', *(
        f'L{i + 1}' for i in range(len(space.layers))), 'head']
    assert {r['name'] for r in rows if r['vital']} == vital
    for r in rows:
        drops = [r['drops'][p]['drop'] for p in ('0.3', '0.6', '1')]
        assert all(len(r['drops'][p]['per_seed']) == 2 for p in r['drops'])
        # More masking, more loss (up to the noise of 359 images).
        assert drops[2] >= drops[0] - 0.02, r
    print(f"vital {data['vital_mean_drop']:.4f} non-vital "
          f"{data['non_vital_mean_drop']:.4f}")
    assert data['vital_mean_drop'] > data['non_vital_mean_drop']
    assert data['vital_lose_more']
    lines = res.stdout.splitlines()
    assert len(lines) == len(rows) + 1
    assert lines[-1].startswith(
        f"baseline accuracy {data['baseline_accuracy']:.4f}; mean drop vital "
        f"{100 * data['vital_mean_drop']:.2f} points, non-vital "
        f"{100 * data['non_vital_mean_drop']:.2f}: vital blocks lose more")
    image = decoded_png(out / 'block_importance.png')
    assert image.shape[1] > 1000 and image.std() > 0.05


def test_search_summary_reads_history_and_arch(tmp_path):
    records = [
        {'stage': 'vital', 'epoch': 1, 'accuracy': 0.4361, 'arch_accuracy':
         0.5, 'within_tolerance': 1.0, 'draw_within_tolerance': 0.75,
         'arch_grad_norm': {'4': 2e-3, '6':
         5e-3}, 'op_probabilities': {'4': {'a': 0.3, 'b': 0.7}, '6': {
             'a': 0.55, 'b': 0.45}}},
        {'stage': 'nonvital', 'epoch': 1, 'accuracy': 0.846, 'arch_accuracy':
         0.886, 'op_probabilities': {'2': {'a': 0.25, 'b': 0.75}}},
        {'stage': 'nonvital', 'epoch': 2, 'accuracy': 0.9, 'arch_accuracy':
         0.9, 'op_probabilities': {'2': {'a': 0.4, 'b': 0.6}},
         'arch_grad_norm': {'2': 4e-4, '3': 2e-4, '5': 1e-4},
         'resource_grad_norm': {'2': 0.0, '3': 1e-3, '5': 3e-3},
         'mean_top_probability': 0.8123,
         'rows_changed': {'total': 3, 'rows': 16,
                          'per_proposal': [[2], [2, 3]]}},
    ]
    with open(tmp_path / 'history.jsonl', 'w') as f:
        f.write('\n'.join(json.dumps(r) for r in records) + '\n')
    arch = {'string': 'demo[image_size=32]:k3_e1,skip', 'search': {
        'relative_error': {'macs': -0.01, 'params': 0.006},
        'before_repair': {'relative_error': {'macs': 0.05, 'params': 0.0}},
        'repaired_layers': [3], 'proposal_repaired_layers': [5],
        'stage2_start': {'share_within_tolerance': 0.714,
                         'mean_top_probability': 0.8541},
        'rows_changed': {'total': 3, 'rows': 16},
        'seconds': {'vital': 103.2, 'total': 498}}}
    with open(tmp_path / 'arch.json', 'w') as f:
        json.dump(arch, f)
    out = run_tool('search_summary.py', str(tmp_path))
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith('| ')]
    assert rows[1] == ('| vital | 1 | 0.436 | 0.500 | 1.00 | 0.75 | 2.0e-03 '
                       '/ 3.5e-03 | - | 0.55-0.70 | - | - |')
    assert rows[2] == ('| nonvital | 1 | 0.846 | 0.886 | - | - | - | - '
                       '| 0.75-0.75 | - | - |')
    # CE min / median, resource median, mean top probability, rows changed.
    assert rows[3] == ('| nonvital | 2 | 0.900 | 0.900 | - | - | 1.0e-04 / '
                       '2.0e-04 | 1.0e-03 | 0.60-0.60 | 0.812 | 3/16 |')
    assert rows[-1] == (f'| {tmp_path} | `k3_e1,skip` | macs +5.0%, params '
                        '+0.0% | macs -1.0%, params +0.6% | 3, 5 (before '
                        'stage 2) | 0.71 / 0.854 | 3/16 '
                        '| vital 103 s, total 498 s |')


def test_search_summary_says_how_often_the_runs_agree_on_the_vital_ops(
        tmp_path):
    """Three finished runs: the first two fixed the same vital ops, the
    third others in 3 of the 7 layers; a run without stage1.json is left
    out of the count."""
    space = spaces.get_space('efficientnet', image_size=32, num_classes=10,
                             width_multiplier=0.5)
    vital = space.vital_layers
    cands = [space.layers[i].candidates for i in vital]
    picks = [[c[0] for c in cands], [c[0] for c in cands],
             [c[1] if j < 3 else c[0] for j, c in enumerate(cands)], None]
    runs = []
    for k, pick in enumerate(picks):
        run = tmp_path / f's{k}'
        run.mkdir()
        runs.append(run)
        (run / 'history.jsonl').write_text(json.dumps({
            'stage': 'nonvital', 'epoch': 1, 'accuracy': 0.5,
            'arch_accuracy': 0.5,
            'op_probabilities': {'2': {'a': 1.0}}}) + '\n')
        ops = [layer.candidates[0] for layer in space.layers]
        (run / 'arch.json').write_text(json.dumps({
            'string': 'efficientnet[image_size=32,num_classes=10,'
                      'width_multiplier=0.5]:' + ','.join(ops),
            'search': {'relative_error': {'macs': 0.0}}}))
        if pick:
            (run / 'stage1.json').write_text(json.dumps({'vital_ops': {
                str(i): op for i, op in zip(vital, pick)}}))
    out = run_tool('search_summary.py', *map(str, runs))
    assert out.returncode == 0, out.stderr
    # Pairs: (0, 1) agree on 7 layers, (0, 2) and (1, 2) on 4: 15 of 21.
    assert out.stdout.splitlines()[-1].startswith(
        'Vital ops stage 1 fixed, across these 3 runs: 71% of (run pair, '
        'vital layer) share the op (uniform picks: 25%; p = ')
    one = run_tool('search_summary.py', str(runs[0]), str(runs[3]))
    assert 'Vital ops stage 1 fixed' not in one.stdout


def test_search_summary_puts_several_runs_side_by_side(tmp_path):
    """Two finished runs and one without arch.json: each run's epoch
    table under its own heading, in the order given, then one result row
    per run."""
    runs = [tmp_path / name for name in ('s0', 's1', 's2')]
    for k, run in enumerate(runs):
        run.mkdir()
        record = {'stage': 'nonvital', 'epoch': 1, 'accuracy': 0.5 + k / 10,
                  'arch_accuracy': 0.25 + k / 10,
                  'op_probabilities': {'2': {'a': 0.3, 'b': 0.7}}}
        (run / 'history.jsonl').write_text(json.dumps(record) + '\n')
        if k < 2:
            (run / 'arch.json').write_text(json.dumps({
                'string': f'demo[image_size=32]:k3_e{k + 1},skip',
                'search': {'relative_error': {'macs': k / 100}}}))
    out = run_tool('search_summary.py', *map(str, runs))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    heads = [lines.index(f'### {run}') for run in runs]
    assert heads == sorted(heads)
    for k, head in enumerate(heads):
        row = lines[head + 4]  # heading, blank, table header, separator
        assert row.startswith(f'| nonvital | 1 | {0.5 + k / 10:.3f} | '
                              f'{0.25 + k / 10:.3f} |'), row
    results = [line for line in lines if line.startswith(f'| {tmp_path}')]
    assert results == [
        f'| {runs[0]} | `k3_e1,skip` |  | macs +0.0% | none | - / - | - |  |',
        f'| {runs[1]} | `k3_e2,skip` |  | macs +1.0% | none | - / - | - |  |',
        f'| {runs[2]} | unfinished | | | | | | |']


@pytest.mark.large
def test_bench_input_times_the_pipeline_and_the_training_step(tmp_path):
    path = tmp_path / 'bench.json'
    out = run_tool('bench_input.py', '--dataset=digits', '--image_size=16',
                   '--batch_size=16', '--batches=3', '--train_steps=1',
                   f'--json={path}')
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(path.read_text())
    assert (result['dataset'], result['image_size'], result['batch_size'],
            result['pipeline_batches'], result['train_steps'],
            result['model']) == ('digits', 16, 16, 3, 1, 'fbnet_b')
    for kind, images in (('pipeline', 3 * 16), ('model', 16)):
        # Seconds rounded to 3 decimals.
        assert images / result[f'{kind}_images_per_s'] == pytest.approx(
            result[f'{kind}_seconds'], abs=6e-4)
    # The rates are rounded too: the ratio agrees to their precision.
    assert result['ratio'] == pytest.approx(
        result['pipeline_images_per_s'] / result['model_images_per_s'],
        rel=2e-3)
    verdict = 'is not the bottleneck' if result['ratio'] >= 1 else \
        'is the bottleneck'
    assert f"ratio pipeline/model: {result['ratio']:.2f} (the input " \
        f'pipeline {verdict})' in out.stdout


def test_proposal_share_compares_schedules_on_the_demo_table(tmp_path):
    out = tmp_path / 'share.json'
    res = run_tool('proposal_share.py', '--seeds=2',
                   '--variants=iters=300 tau_end=0.1 hold=0',
                   '--variants=iters=300', f'--output={out}')
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data['targets'] == {'macs': 10e6, 'params': 0.25e6}
    old, new = (data['variants'][k] for k in ('iters=300 tau_end=0.1 hold=0',
                                              'iters=300'))
    assert old['overrides'] == {'iters': 300, 'tau_end': 0.1, 'hold': 0.0}
    assert [r['sample_temperature'] for r in new['seeds']] == [1.0, 1.0]
    # The colder end leaves less choice in the rows than the defaults.
    assert old['mean_top_probability'] > new['mean_top_probability']
    assert new['safety_net_fired'] == [0, 0]  # off by default
    for variant in (old, new):
        assert [r['seed'] for r in variant['seeds']] == [0, 1]
        for r in variant['seeds']:
            assert 0.0 <= r['worst_proposal_share'] <= 1.0
            assert 0.0 <= r['share'] <= 1.0
        assert variant['min_share'] == min(r['share']
                                           for r in variant['seeds'])
        assert variant['max_top_probability'] == max(
            r['mean_top_probability'] for r in variant['seeds'])
    assert f'| iters=300 | {new["min_share"]:.3f} / ' in res.stdout


def test_build_time_measures_a_small_stage2(tmp_path):
    path = tmp_path / 'b.json'
    out = run_tool('build_time.py', '--space=fbnet', '--layers=1',
                   '--batch_size=4', '--steps=1', '--nofused_batch_norm',
                   '--budget_draws=2', '--label=keras bn', f'--json={path}')
    assert out.returncode == 0, out.stderr
    assert 'fbnet stage 2, 1 searched layers (gumbel_max)' in out.stdout
    result = json.loads(path.read_text())
    assert result['searched_layers'] == 1
    assert result['fused_batch_norm'] is False
    assert result['budget_draws'] == 2 and result['label'] == 'keras bn'
    assert result['date'].endswith('UTC') and result['commit']
    assert result['first_step_cpu_s'] == pytest.approx(
        result['trace_cpu_s'] + result['first_call_cpu_s'])
    assert 0 < result['step_cpu_s'] < result['first_step_cpu_s']


def test_build_time_rejects_an_unknown_space():
    check_refused(run_tool('build_time.py', '--space=resnet'), 'resnet')
