"""tools/benchmark.py, tools/benchmarks_md.py and hournas_tf.benchmarking."""

import json
import os
import sys

import numpy as np
import pytest
from conftest import REPO
from conftest import run_python

from hournas_tf import spaces
from hournas_tf.benchmarking import figures
from hournas_tf.benchmarking import steps as bm
from hournas_tf.common.errors import UserError
from hournas_tf.fuzzing import check_refused
from hournas_tf.nas import stages

sys.path.insert(0, REPO)
from tools import benchmark as tool  # noqa: E402
from tools import benchmarks_md  # noqa: E402

FIGURES = ('a', 'b', 'c', 'd', 'e', 'f', 'g')


def tiny_space():
    return spaces.get_space('fbnet', image_size=32, num_classes=10,
                            width_multiplier=0.25)


def run_tool(name, *args, timeout=1800):
    return run_python(os.path.join('tools', name), *args, timeout=timeout)


# --- The library ------------------------------------------------------------

def test_fixed_path_architecture_and_targets():
    space = tiny_space()
    searched, fixed = stages.layout(space, 2, 2)
    path = bm.fixed_path(space, searched)
    assert sorted(path) == list(searched)
    assert all(op != 'skip' and op in space.layers[i].candidates
               for i, op in path.items())
    arch = bm.fixed_architecture(space, 2)
    assert [arch.ops[i] for i in searched] == [path[i] for i in searched]
    assert all(arch.ops[i] == op for i, op in fixed.items())
    assert sum(op == 'skip' for op in arch.ops) == 15
    from hournas_tf.resources import tables

    table = tables.resource_table(space, searched, fixed, bm.OBJECTIVES)
    targets = bm.mid_targets(table)
    for obj, value in targets.items():
        lo, hi = tables.feasible_range(table, obj)
        assert lo < value < hi


def test_mac_bound_at_224_is_the_spikes_4_7():
    space = spaces.get_space('fbnet', image_size=224)
    bound = bm.mac_bound(space)
    assert bound['ops_per_layer'] == 9
    assert 4.6 < bound['bound'] < 4.8
    assert bound['fixed_macs'] > bound['mean_path_macs']
    assert bm.mac_bound(space, 1)['bound'] < bound['bound']


def test_round_ratio_is_the_median_of_per_round_ratios():
    times = {'a': {'wall': [2.0, 9.0, 3.0], 'cpu': [1, 1, 1]},
             'b': {'wall': [1.0, 1.0, 1.0], 'cpu': [1, 1, 2]}}
    assert bm.round_ratio(times, 'a', 'b') == 3.0
    assert bm.round_ratio(times, 'a', 'b', 'cpu') == 1.0
    assert bm.round_ratio(times, 'a', 'c') is None


def test_projected_minutes():
    # 1.28M * 0.8 / 256 = 4003.6 steps per stage.
    minutes = figures.projected_minutes({'stage1': 0.1, 'stage2': 0.2}, 256)
    assert minutes == pytest.approx(figures.IMAGENET_IMAGES * 0.8 / 256 * 0.3
                                    / 60)


def test_clock_machine_and_rss():
    start = bm.now()
    sum(range(10**5))
    elapsed = bm.since(start)
    assert elapsed['wall'] > 0 and elapsed['cpu'] >= 0
    info = bm.machine()
    assert info['cpu_count'] == os.cpu_count() and len(info['loadavg']) == 3
    import tensorflow as tf

    assert info['tensorflow'] == tf.__version__
    # One name per GPU that TensorFlow sees (none on a CPU machine).
    gpus = tf.config.list_physical_devices('GPU')
    assert len(info['gpus']) == len(gpus)
    assert all(isinstance(n, str) and n for n in info['gpus'])
    assert bm.rss_mb() > 10
    assert bm.get_space('fbnet', 32, 0.25, 10).image_size == 32


def test_small_contenders_time_and_memory():
    """Every contender builds and steps; the timing helpers see them."""
    import tensorflow as tf

    bm.warm_up()
    space = tiny_space()
    data = bm.synthetic_batches(space, 2)
    assert data[0][0].shape == (2, 32, 32, 3) and data[1][1].dtype == tf.int64
    steps = {}
    for name in bm.CONTENDERS:
        keep, steps[name], first = bm.first_step(
            lambda name=name: bm.build_contender(name, space, 1), data)
        assert first['total']['wall'] >= first['trace']['wall'] > 0
        if name == 'stage2_fixed':
            drawn = keep.sample_weights(tf.constant([0, 5], tf.int64))
            searched, _ = stages.layout(space, 2, 1)
            op = bm.fixed_path(space, searched)[searched[0]]
            assert int(np.argmax(drawn[0])) == space.op_names.index(op)
        if name == 'stage2_all':
            assert not keep.single_path
    times = bm.interleaved(steps, data, rounds=2)
    assert all(len(t['wall']) == 2 for t in times.values())
    assert bm.round_ratio(times, 'stage2_fixed', 'standalone') > 0
    # Without TF_CPU_ALLOCATOR_USE_BFC the CPU allocator has no peak.
    memory = bm.step_memory(steps['standalone'], data, 1)
    assert memory is None or memory['peak_mb'] >= memory['resident_mb']
    assert bm.memory_supported() == (memory is not None)
    with pytest.raises(UserError, match='unknown contender'):
        bm.build_contender('stage3', space)


def test_standalone_step_trains_and_reaches_the_input():
    import keras

    from hournas_tf.blocks.model import build_model

    space = tiny_space()
    model = build_model(bm.fixed_architecture(space, 1))
    before = [v.numpy().copy() for v in model.trainable_variables]
    step = bm.standalone_step(model)
    out = step(bm.synthetic_batches(space, 2))
    bm.sync(out)
    assert np.isfinite(float(out['loss'])) and float(out['g']) != 0
    assert any(not np.allclose(a, v.numpy())
               for a, v in zip(before, model.trainable_variables))
    assert isinstance(model, keras.Model)


def test_mixed_layer_ratio_of_a_small_layer():
    result = bm.mixed_layer_ratio(tiny_space(), 2, 2, rounds=2)
    assert result['layer'] == 3 and result['ops'] == 9
    assert result['mac_ratio'] == pytest.approx(9.0)
    assert len(result['times']['all']['wall']) == 2
    assert result['ratio_wall'] > 1  # all paths cost more than one


def _steps_case(single=1.0, every=5.0, fixed=1.1, standalone=1.0,
                first_cpu=100.0, searched=17, status='ok'):
    times = {name: {'wall': [t, t], 'cpu': [t, t]} for name, t in (
        ('stage2_single', single), ('stage2_all', every),
        ('stage2_fixed', fixed), ('standalone', standalone),
        ('stage1', 0.5))}
    total = {'wall': first_cpu, 'cpu': first_cpu}
    first = {name: {k: total for k in ('build', 'trace', 'first_call',
                                       'total')} for name in times}
    params = dict(tool.FBNET32, searched_layers=None if searched == 17
                  else searched, rounds=2, contenders=list(times))
    case = {'kind': 'steps', 'params': params, 'status': status}
    if status == 'ok':
        case['result'] = {
            'times': times, 'first_step': first,
            'searched': {n: searched for n in times},
            'full_searched': {n: 17 for n in times},
            'mac_bound': {'bound': 5.9, 'ops_per_layer': 9.0,
                          'fixed_macs': 1e6, 'mean_path_macs': 1e6,
                          'all_ops_macs': 9e6},
            'memory': {'stage2_single': {'step_mb': 10.0, 'peak_mb': 20.0,
                                         'resident_mb': 10.0},
                       'stage2_all': {'step_mb': 30.0, 'peak_mb': 40.0,
                                      'resident_mb': 10.0}},
            'stage1_sampler': 'gumbel_softmax', 'rss_mb': 1000.0}
    else:
        case['error'] = 'killed (SIGKILL: out of memory?)'
    return case


def _by(figs, letter):
    return [f for f in figs if f['figure'] == letter]


def test_figures_judge_the_goals():
    figs = figures.figures({'s': _steps_case()})
    a, = _by(figs, 'a')
    # Judged against 0.8 x the MAC bound (5.9), not against 0.8 O (7.2).
    assert a['value'] == 5.0 and a['met'] is True
    assert a['goal'] == '>= 0.8 x MAC bound = 4.72'
    case = _steps_case()
    case['result']['mac_bound']['bound'] = 8.0
    a, = _by(figures.figures({'s': case}), 'a')
    assert a['met'] is False and 'per-step overheads' in a['note']
    b, = _by(figs, 'b')
    assert b['value'] == pytest.approx(1.1) and b['met'] is True
    c, = _by(figs, 'c')
    assert c['value'] == 0.5 and c['met'] is None
    d = [f for f in _by(figs, 'd') if f['goal']]
    assert len(d) == 1 and d[0]['met'] is False
    assert 'traced' in d[0]['note']
    f, = _by(figs, 'f')
    assert f['value'] == [10.0, 30.0]
    figs = figures.figures({'s': _steps_case(every=8.0, fixed=1.3,
                                        first_cpu=50.0)})
    assert _by(figs, 'a')[0]['met'] is True
    assert _by(figs, 'b')[0]['met'] is False
    assert 'switch_case' in _by(figs, 'b')[0]['note']
    assert [x['met'] for x in _by(figs, 'd') if x['goal']] == [True]


def test_figures_project_a_reduced_first_step_and_record_failures():
    figs = figures.figures({'s': _steps_case(first_cpu=10.0, searched=1)})
    d = [f for f in _by(figs, 'd') if f['goal']][0]
    assert 'projected to 17' in d['note'] and d['met'] is True
    figs = figures.figures({'s': _steps_case(status='failed')})
    assert all(f['met'] is False and 'out of memory' in f['note']
               for f in _by(figs, 'a') + _by(figs, 'b'))


def _budget_case(single_wall, budgets_wall, status='ok'):
    case = {'kind': 'budget_search', 'params': tool.DEMO_BUDGETS,
            'status': status, 'loadavg': [1.0, 1.0, 1.0]}
    if status == 'ok':
        case['result'] = {
            'single': {'wall': single_wall, 'cpu': 2 * single_wall},
            'budgets': {'wall': budgets_wall, 'cpu': 2 * budgets_wall},
            'budget_count': 3}
    else:
        case['error'] = 'exit 2: error: bad flag'
    return case


def test_figure_h_judges_the_budgets_wall_ratio():
    h, = _by(figures.figures({'b': _budget_case(100.0, 140.0)}), 'h')
    assert h['value'] == pytest.approx(1.4) and h['met'] is True
    assert h['goal'] == '<= 1.5 x' and '3 separate searches' in h['note']
    h, = _by(figures.figures({'b': _budget_case(100.0, 160.0)}), 'h')
    assert h['met'] is False and 'cause' in h['note']
    h, = _by(figures.figures({'b': _budget_case(0, 0, 'failed')}), 'h')
    assert h['met'] is False and 'bad flag' in h['note']


def _demo_case(walls, accuracy=0.97, within=True, runs=True):
    result = {'wall': float(np.median(walls)), 'cpu': 150.0,
              'loadavg': [0.2, 0.2, 0.2]}
    if runs:
        result['runs'] = [{'wall': w, 'cpu': 150.0,
                           'loadavg_before': [0.1, 0.1, 0.1],
                           'stage2_accuracy': accuracy,
                           'within_tolerance': within} for w in walls]
    return {'kind': 'demo_search', 'status': 'ok', 'params': {},
            'result': result}


def test_demo_figure_needs_the_time_the_curve_and_the_budget():
    d, = _by(figures.figures({'d': _demo_case([110.0, 125.0, 118.0])}), 'd')
    assert d['value'] == 118.0 and d['met'] is True
    assert d['note'].startswith('median of 3 runs') and '125 s' in d['note']
    d, = _by(figures.figures({'d': _demo_case([121.0, 130.0, 118.0])}), 'd')
    assert d['met'] is False and 'cause' in d['note']
    d, = _by(figures.figures({'d': _demo_case([100.0], accuracy=0.94)}), 'd')
    assert d['met'] is False and 'below 0.95' in d['note']
    d, = _by(figures.figures({'d': _demo_case([100.0], within=False)}), 'd')
    assert d['met'] is False and 'NOT within' in d['note']
    d, = _by(figures.figures({'d': _demo_case([100.0], runs=False)}), 'd')
    assert d['met'] is False and 'no run outcome' in d['note']


@pytest.mark.large
def test_demo_case_reads_each_runs_outcome(tiny_search, tmp_path,
                                           monkeypatch):
    """`case_demo_search` runs the search `repeats` times (here the shared
    tiny search stands in for each run) and reads each run's stage-2
    accuracy and budget from its files."""
    out, _ = tiny_search
    (tmp_path / 'run').symlink_to(out)
    calls = []

    def one_search(named_args, quiet=True):
        calls.append((named_args, quiet))
        return {'demo': {'wall': 100.0 + len(calls), 'cpu': 90.0,
                         'started': 0.0, 'output_dir': str(tmp_path)}}

    monkeypatch.setattr(tool, 'run_searches', one_search)
    r = tool.case_demo_search({'repeats': 3})
    # The command's own flags: no --verbose=0, no other argument.
    assert calls == [({'demo': []}, False)] * 3
    assert r['wall'] == 102.0 and len(r['runs']) == 3
    history = [json.loads(line) for line in
               (out / 'history.jsonl').read_text().splitlines()]
    last = [h for h in history if h['stage'] == 'nonvital'][-1]
    arch = json.loads((out / 'arch.json').read_text())['search']
    for run in r['runs']:
        assert run['stage2_accuracy'] == last['accuracy']
        assert run['within_tolerance'] is arch['within_tolerance']
        assert run['search_seconds'] == arch['seconds']['total']


def test_a_failing_search_of_a_case_is_named():
    with pytest.raises(RuntimeError, match='search bad failed: .*error:'):
        tool.run_searches({'bad': ['--image_size=-1']})


@pytest.mark.large
def test_budget_case_runs_both_searches_side_by_side():
    from conftest import TWO_BUDGETS

    # The cheapest searches that write their outputs: stage 2 alone (the
    # vital layers at their largest ops leave both budgets feasible), one
    # step.
    cheap = ['--vital_ops=max', '--nonvital_epochs=1',
             '--max_steps_per_epoch=1', '--batch_size=16',
             '--proposal_iters=50', '--num_proposals=2', '--verbose=0']
    r = tool.case_budget_search({
        'single': cheap, 'budget_count': 2,
        'budgets': [*cheap, f'--budgets={TWO_BUDGETS}']})
    single, several = r['single'], r['budgets']
    assert abs(single['started'] - several['started']) < 2.0
    assert os.path.exists(os.path.join(single['output_dir'], 'run',
                                       'arch.json'))
    assert os.path.exists(os.path.join(several['output_dir'], 'run',
                                       'budgets.json'))
    for run in (single, several):
        assert 0 < run['cpu'] and 0 < run['wall']
    h, = _by(figures.figures({'b': {
        'kind': 'budget_search', 'status': 'ok', 'result': r,
        'params': {'budget_count': 2}, 'loadavg': r['loadavg']}}), 'h')
    assert h['value'] == pytest.approx(several['wall'] / single['wall'])


def test_figures_of_the_proposals_and_the_input_pipeline():
    """Figures e and g carry the numbers of their cases: the proposals'
    times and share of draws within tolerance; the pipeline's images/s
    over what a stage-2 step consumes (a weight batch and an architecture
    batch per step)."""
    proposals = {'kind': 'proposals', 'status': 'ok',
                 'params': dict(tool.PROPOSALS),
                 'result': {'rows': 16, 'first_wall': 3.0, 'first_cpu': 2.5,
                            'second_wall': 0.5, 'second_cpu': 0.4,
                            'samples': 10_000, 'tau': 0.05,
                            'share_within': 0.25}}
    pipeline = {'kind': 'input', 'status': 'ok', 'params': {},
                'result': {'pipeline_images_per_s': 1000.0,
                           'dataset': 'digits', 'image_size': 32,
                           'batch_size': 64, 'model_images_per_s': 300.0}}
    figs = figures.figures({'s': _steps_case(single=0.5), 'p': proposals,
                            'i': pipeline})
    first, second, share = _by(figs, 'e')
    assert (first['value'], second['value']) == (3.0, 0.5)
    assert share['value'] == 0.25
    g, = _by(figs, 'g')
    consumption = 2 * tool.FBNET32['batch_size'] / 0.5
    assert g['step_images_per_s'] == pytest.approx(consumption)
    assert g['value'] == pytest.approx(1000.0 / consumption)
    assert g['met'] is True and g['pipeline_images_per_s'] == 1000.0


def test_figures_of_the_gpu_plan():
    stage = {'images_per_s': 100.0, 'step_wall': 5.12,
             'first_step': {'total': {'wall': 9.0}}}
    case = {'kind': 'throughput', 'status': 'ok',
            'params': dict(tool.TINY, searched_layers=None, policy=None,
                           xla=True),
            'result': {'device': 'GPU:0', 'device_name': 'NVIDIA H100 80GB',
                       'stages': {'stage1': stage, 'stage2': stage},
                       'projected_minutes': 19.0}}
    figs = figures.figures({'t': case})
    assert [f['met'] for f in figs] == [None, None, True]
    case['result']['device_name'] = 'AMD EPYC'
    case['result']['device'] = 'CPU:0'
    assert figures.figures({'t': case})[-1]['met'] is None


# --- The tools --------------------------------------------------------------

def test_plans_cover_every_figure():
    for quick in (False, True):
        kinds = {kind for _, kind, _ in tool.plan(quick)}
        assert {'steps', 'mixed_layer', 'proposals', 'input'} <= kinds
        contenders = {c for _, kind, p in tool.plan(quick) if kind == 'steps'
                      for c in p['contenders']}
        assert contenders == set(bm.CONTENDERS)
    gpu = tool.plan(throughput=True)
    assert len(gpu) == 4 and all(p['batch_size'] == 256 and
                                 p['image_size'] == 224 for _, _, p in gpu)
    assert {(p['policy'], p['xla']) for _, _, p in gpu} == {
        (None, False), (None, True), ('mixed_float16', False),
        ('mixed_float16', True)}


def test_a_failing_case_is_recorded_and_the_run_goes_on():
    record = tool.run_case('bad', 'no_such_kind', {}, timeout=300)
    assert record['status'] == 'failed'
    assert 'no_such_kind' in record['error'] and record['returncode'] == 1
    assert len(record['loadavg_before']) == 3


def test_results_path():
    assert tool.results_path('b', 'cpu', False) == 'b/results-cpu.json'
    assert tool.results_path('b', 'cpu', True) == \
        'b/results-cpu-throughput.json'
    assert tool.results_path('b', 'gpu', True) == 'b/results-gpu.json'
    assert tool.results_path('b', 'cpu', False, ['a32', 'budgets']) == \
        'b/results-cpu-a32-budgets.json'


@pytest.mark.parametrize('tool_name, args, message', [
    ('benchmark.py', ['--device=gpu'], '--device=gpu: no GPU visible'),
    ('benchmark.py', ['--cases=nope'], "--cases: unknown ['nope']"),
    ('benchmark.py', ['--device=tpu'], 'flag --device=tpu'),
    ('benchmark.py', ['x'], 'unexpected arguments: x'),
    ('benchmarks_md.py', ['--results={tmp}'], 'no results-*.json in'),
])
def test_user_errors_are_one_line(tool_name, args, message, tmp_path):
    import tensorflow as tf

    if args == ['--device=gpu'] and tf.config.list_physical_devices('GPU'):
        pytest.skip('a GPU is visible: --device=gpu is no mistake here')
    args = [a.format(tmp=tmp_path) for a in args]
    check_refused(run_tool(tool_name, *args, f'--output={tmp_path}/o'),
                  message)


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp('bench')
    out = run_tool('benchmark.py', '--tiny', f'--output={folder}')
    assert out.returncode == 0, out.stderr[-3000:]
    return folder, out


@pytest.mark.large
def test_tiny_run_writes_every_figure(tiny_run):
    folder, out = tiny_run
    data = json.loads((folder / 'results-cpu.json').read_text())
    assert all(c['status'] == 'ok' for c in data['cases'].values()), \
        {k: c.get('error') for k, c in data['cases'].items()}
    letters = {f['figure'] for f in data['figures']}
    assert set(FIGURES) <= letters
    assert all(f['value'] is not None for f in data['figures'])
    assert data['machine']['cpu_count'] == os.cpu_count()
    for case in data['cases'].values():
        assert case['wall'] > 0 and len(case['loadavg']) == 3
    assert 'wrote' in out.stdout and 'MISS' in out.stdout


@pytest.mark.large
def test_markdown_renders_the_tools_json(tiny_run, tmp_path):
    folder, _ = tiny_run
    page = tmp_path / 'B.md'
    out = run_tool('benchmarks_md.py', f'--results={folder}',
                   f'--output={page}')
    assert out.returncode == 0, out.stderr[-2000:]
    text = page.read_text()
    data = json.loads((folder / 'results-cpu.json').read_text())
    assert data['command'] in text and data['machine']['tensorflow'] in text
    lines = text.splitlines()
    start = lines.index('| | figure | measured | goal | verdict | notes |')
    end = lines.index('', start)
    rows = lines[start + 2:end]
    assert len(rows) == len(data['figures'])
    for fig, row in zip(data['figures'], rows):
        verdict = benchmarks_md.VERDICTS[fig['met']]
        assert row.split(' | ')[4] == verdict
        assert (fig['goal'] or '-') in row
    met = sum(f['met'] is True for f in data['figures'])
    assert f'Goals met: {met},' in text


@pytest.mark.large
def test_gpu_code_path_runs_on_the_cpu(tmp_path):
    # Without the XLA cases: on a CPU they may time out (60 s each).
    out = run_tool('benchmark.py', '--throughput', '--tiny',
                   '--cases=throughput_fp32,throughput_mixed',
                   f'--output={tmp_path}')
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads((tmp_path / 'results-cpu-throughput-throughput_fp32-'
                       'throughput_mixed.json').read_text())
    cases = data['cases']
    ok = {k for k, c in cases.items() if c['status'] == 'ok'}
    assert ok == {'throughput_fp32', 'throughput_mixed'} == set(cases), cases
    for name in ok:
        r = cases[name]['result']
        assert r['device'] == 'CPU:0'
        assert r['stages']['stage2']['images_per_s'] > 0
        assert r['projected_minutes'] > 0
    gpu = [f for f in data['figures'] if f['figure'] == 'gpu']
    assert all(f['met'] is None for f in gpu)  # never judged on a CPU


def test_markdown_render_marks_misses():
    data = {'machine': {'cpu': 'X', 'loadavg': [1.0, 1.0, 1.0]},
            'command': 'python tools/benchmark.py --quick',
            'figures': [figures._figure('b', 'ratio', 1.3, 'x', '<= 1.15',
                                   False, 'cause | here')],
            'cases': {'s': {'kind': 'steps', 'status': 'failed',
                            'error': 'exit 1: boom', 'process_wall': 3.0,
                            'loadavg_before': [2.0], 'loadavg_after': [3.0]}}}
    text = benchmarks_md.render([('results-cpu.json', data)])
    assert '| b | ratio | 1.3 x | <= 1.15 | **MISS** | cause \\| here |' \
        in text
    assert 'failed: exit 1: boom' in text and 'Goals met: 0, missed: 1' in text


def test_resume_reuses_ok_cases_with_the_same_parameters(tmp_path):
    ok = {'kind': 'proposals', 'params': {'iters': 5}, 'status': 'ok',
          'result': {}}
    bad = {'kind': 'input', 'params': {}, 'status': 'failed'}
    path = tmp_path / 'results-cpu.json'
    path.write_text(json.dumps({'date': 'today', 'cases': {'p': ok,
                                                           'i': bad}}))
    reusable = tool.reusable_cases([str(path)])
    key = json.dumps(['proposals', {'iters': 5}], sort_keys=True)
    assert list(reusable) == [key]
    assert reusable[key]['reused_from'] == 'results-cpu.json of today'
    with pytest.raises(UserError, match='does not exist'):
        tool.reusable_cases([str(tmp_path / 'none.json')])


def test_markdown_lists_planned_cases_not_run():
    data = {'machine': {}, 'figures': [], 'planned': ['a', 'b'],
            'cases': {'a': {'kind': 'steps', 'status': 'ok',
                            'process_wall': 1.0, 'cpu': 1.0,
                            'reused_from': 'x.json of today',
                            'loadavg_before': [1.0],
                            'loadavg_after': [1.0]}}}
    text = benchmarks_md.render_run('results-cpu.json', data)
    assert 'Planned but not run (the run was stopped): b.' in text
    assert 'ok (from x.json of today)' in text


def speed_record(**overrides):
    record = {'space': 'efficientnet', 'stage': '2', 'searched_layers': 11,
              'trace_cpu_s': 52.04, 'first_call_cpu_s': 18.21,
              'first_step_cpu_s': 70.25, 'step_cpu_s': 0.882,
              'load_1min': 2.2, 'label': 'fused | 8 draws',
              'date': '2026-11-28 10:55 UTC', 'commit': 'abc1234'}
    record.update(overrides)
    return record


def test_speed_records_render_as_one_row_each(tmp_path):
    (tmp_path / 'speed').mkdir()
    for name, record in (('b.json', speed_record()),
                         ('a.json', speed_record(label=None, commit=None))):
        (tmp_path / 'speed' / name).write_text(json.dumps(record))
    records = benchmarks_md.load_speed(str(tmp_path))
    assert [name for name, _ in records] == ['a.json', 'b.json']
    rows = [line for line in benchmarks_md.render_speed(records).splitlines()
            if line.startswith('| a.json') or line.startswith('| b.json')]
    assert rows == [
        '| a.json | - | efficientnet, stage 2, 11 searched | 52.0 | 18.2 '
        '| 70.2 | 0.88 | 2.2 | 2026-11-28 10:55 UTC, - |',
        '| b.json | fused \\| 8 draws | efficientnet, stage 2, 11 searched '
        '| 52.0 | 18.2 | 70.2 | 0.88 | 2.2 | 2026-11-28 10:55 UTC, abc1234 |']
    assert benchmarks_md.render_speed([]) == ''


def test_a_speed_record_without_timings_is_refused(tmp_path):
    (tmp_path / 'speed').mkdir()
    record = speed_record()
    del record['step_cpu_s']
    (tmp_path / 'speed' / 'x.json').write_text(json.dumps(record))
    with pytest.raises(UserError, match="x.json: not a tools/build_time.py "
                       "result \\(no 'step_cpu_s'\\)"):
        benchmarks_md.load_speed(str(tmp_path))


def test_other_scripts_measurements_are_listed_apart(tmp_path):
    """A benchmarks/speed/ file with none of build_time's keys is another
    script's measurement: listed under its own heading, not refused."""
    (tmp_path / 'speed').mkdir()
    (tmp_path / 'speed' / 'a.json').write_text(json.dumps(speed_record()))
    (tmp_path / 'speed' / 'b.json').write_text(json.dumps(
        {'date': '2026-12-04', 'commit': 'abc1234', 'runs': [],
         'command': 'python benchmarks/speed/x.py A|B'}))
    (tmp_path / 'speed' / 'c.json').write_text(json.dumps(
        {'date': '2026-12-05', 'script': 'benchmarks/speed/y.py'}))
    assert [n for n, _ in benchmarks_md.load_speed(str(tmp_path))] == [
        'a.json']
    other = benchmarks_md.load_other(str(tmp_path))
    assert [n for n, _ in other] == ['b.json', 'c.json']
    rows = benchmarks_md.render_other(other).splitlines()
    assert rows[0] == '## Other speed measurements (benchmarks/speed/)'
    assert rows[-2:] == [
        '| b.json | 2026-12-04, abc1234 | '
        '`python benchmarks/speed/x.py A\\|B` |',
        '| c.json | 2026-12-05, - | `benchmarks/speed/y.py` |']
    assert benchmarks_md.render_other([]) == ''


def test_git_commit_names_head_and_marks_a_dirty_tree(tmp_path):
    import subprocess

    assert bm.git_commit(str(tmp_path)) is None  # not a repository
    subprocess.run(['git', 'init', '-q'], cwd=tmp_path, check=True)
    (tmp_path / 'f').write_text('a')
    subprocess.run(['git', 'add', 'f'], cwd=tmp_path, check=True)
    subprocess.run(['git', '-c', 'user.name=t', '-c', 'user.email=t@t',
                    'commit', '-qm', 'x'], cwd=tmp_path, check=True)
    head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                          cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout.strip()
    assert bm.git_commit(str(tmp_path), mark_dirty=True) == head
    (tmp_path / 'f').write_text('b')
    assert bm.git_commit(str(tmp_path), mark_dirty=True) == head + '+'
    assert bm.git_commit(str(tmp_path)) == head
