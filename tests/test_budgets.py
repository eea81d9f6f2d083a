"""Several budgets from one search: parsing, validation, feasibility,
proposals, the stage-2 supernet over budgets, derivation, the table, and
the search command with --budgets (issue 23)."""

import json

import numpy as np
import pytest
from conftest import TWO_BUDGETS as TWO

from hournas_tf import spaces
from hournas_tf.common.errors import UserError
from hournas_tf.nas import budgets as budgets_lib
from hournas_tf.nas import vital_policy
from hournas_tf.resources import tables

# TWO: two budgets of the demo space (efficientnet, 32x32, width 0.25).


@pytest.fixture(scope='module')
def space():
    return spaces.get_space('efficientnet', image_size=32, num_classes=10,
                            width_multiplier=0.25)


@pytest.fixture(scope='module')
def plan(space):
    """(table, searched, vital ops, budgets) of TWO, vital ops at max."""
    specs = budgets_lib.parse_budgets(TWO)
    ops, _ = budgets_lib.fit_vital_ops(
        space, vital_policy.max_vital_ops(space), specs)
    searched = [i for i in range(len(space.layers)) if i not in ops]
    table = tables.resource_table(space, searched, ops, ('macs', 'params'))
    return table, searched, ops, specs


def test_parse_inline_names_and_m():
    specs = budgets_lib.parse_budgets(
        'macs:150e6/params:3e6, top=macs:300e6/params:4.8e6/m:4')
    assert [b.name for b in specs] == ['macs150M_params3M', 'top']
    assert specs[0].targets == {'macs': 150e6, 'params': 3e6}
    assert specs[0].num_proposals is None and specs[0].proposals(8) == 8
    assert specs[1].num_proposals == 4 and specs[1].proposals(8) == 4


@pytest.mark.parametrize('form', ['list', 'dict'])
def test_parse_json_file(tmp_path, form):
    data = [{'name': 'a', 'macs': 1e6, 'params': 1e5, 'm': 2},
            {'name': 'b', 'macs': 2e6, 'params': 2e5}]
    if form == 'dict':
        data = {d.pop('name'): d for d in data}
    path = tmp_path / 'tiers.json'
    path.write_text(json.dumps(data))
    specs = budgets_lib.parse_budgets(str(path))
    assert [(b.name, b.targets, b.num_proposals) for b in specs] == [
        ('a', {'macs': 1e6, 'params': 1e5}, 2),
        ('b', {'macs': 2e6, 'params': 2e5}, None)]


@pytest.mark.parametrize('text, expect', [
    ('', 'empty'),
    ('flops:3e6', "unknown objective 'flops'"),
    ('macs=3e6', 'not objective:value'),
    ('macs:abc', 'not a number'),
    ('macs:-1', 'must be > 0'),
    ('macs:inf', 'must be > 0'),
    ('macs:1e6/macs:2e6', 'given twice'),
    ('a b=macs:1e6', 'not valid'),
    ('m:3', 'no target'),
    ('macs:1e6/m:2.5', 'must be an integer'),
    ('missing.json', 'does not exist'),
])
def test_parse_refuses_with_one_line(text, expect):
    with pytest.raises(UserError, match=expect) as e:
        budgets_lib.parse_budgets(text)
    assert '\n' not in str(e.value)


def test_parse_refuses_malformed_json(tmp_path):
    path = tmp_path / 'b.json'
    path.write_text('[1, 2]')
    with pytest.raises(UserError, match='budget 1 is not an object'):
        budgets_lib.parse_budgets(str(path))
    path.write_text('"x"')
    with pytest.raises(UserError, match='must be a list or an object'):
        budgets_lib.parse_budgets(str(path))


@pytest.mark.parametrize('text, expect', [
    ('macs:1e6', 'give at least 2'),
    ('a=macs:1e6,a=macs:2e6', "'a' is given twice"),
    ('macs:1e6/params:1e5,macs:2e6', 'same objectives'),
    ('macs:1e6/m:0,macs:2e6', 'too few proposals'),
    ('latency_ms:2,latency_ms:5', 'needs --latency_table'),
    ('macs:100e6/params:3e6,macs:105e6/params:3.1e6', 'overlap'),
])
def test_check_budgets_refuses(text, expect):
    specs = budgets_lib.parse_budgets(text)
    with pytest.raises(UserError, match=expect):
        budgets_lib.check_budgets(specs, 0.03)


def test_check_budgets_accepts_distinct_budgets():
    # MACs boxes overlap, params boxes do not: distinct budgets.
    specs = budgets_lib.parse_budgets(
        'macs:100e6/params:3e6,macs:101e6/params:4e6')
    budgets_lib.check_budgets(specs, 0.03)
    budgets_lib.check_budgets(budgets_lib.parse_budgets(
        'latency_ms:2,latency_ms:5'), 0.03, latency_table='t.json')


def test_check_space_names_the_budget(space):
    specs = budgets_lib.parse_budgets('ok=macs:8e6,huge=macs:80e6')
    with pytest.raises(UserError, match="budget 'huge'.*outside"):
        budgets_lib.check_space(space, specs)
    budgets_lib.check_space(space, specs[:1])


def test_fit_vital_ops_keeps_every_budget_reachable(space, plan):
    table, searched, ops, specs = plan
    for b in specs:
        tables.check_targets(table, b.targets)
    # 3M MACs needs smaller vital ops than max: they change, and both
    # budgets stay reachable.
    low = budgets_lib.parse_budgets('a=macs:3.5e6,b=macs:8e6')
    fitted, changed = budgets_lib.fit_vital_ops(
        space, vital_policy.max_vital_ops(space), low)
    assert changed
    rest = [i for i in range(len(space.layers)) if i not in fitted]
    t = tables.resource_table(space, rest, fitted, ('macs',))
    for b in low:
        tables.check_targets(t, b.targets)


def test_fit_vital_ops_names_the_budgets(space):
    # Each reachable alone, not both with one choice of vital ops: the
    # smallest MACs with the largest.
    lo, hi = tables.feasible_range(tables.resource_table(space), 'macs')
    both = budgets_lib.parse_budgets(
        f'tiny=macs:{lo * 1.01},big=macs:{hi * 0.99}')
    with pytest.raises(UserError, match="'tiny'.*'big'.*cannot both"):
        budgets_lib.fit_vital_ops(space, vital_policy.max_vital_ops(space),
                                  both)


def test_derive_per_budget_stays_in_each_budget(space, plan):
    table, searched, ops, specs = plan
    rng = np.random.default_rng(0)
    mask = np.asarray(table.mask)
    owner = np.array([0, 0, 1, 1])
    # Budget b's second proposal is the most probable; each proposal's
    # distribution is uniform, so the derivation must find an
    # architecture of its own budget among the draws.
    per = np.where(mask, 1.0, 0.0)[None].repeat(4, 0)
    per /= per.sum(-1, keepdims=True)
    pi_logits = np.array([0.0, 1.0, 0.0, 2.0])
    found = budgets_lib.derive(space, table, searched, ops, specs, per,
                               pi_logits, owner, 0.03, repair=False,
                               seed=int(rng.integers(100)))
    assert [d.entry['budget'] for d in found] == ['small', 'large']
    assert [d.entry['proposal'] for d in found] == [1, 3]
    for d, b in zip(found, specs):
        assert d.entry['before_repair']['within_tolerance'], d.entry
        assert d.arch.name == f'efficientnet_{b.name}'
        assert set(d.entry['relative_error']) == set(b.targets)


def test_search_config_reads_budgets_back_from_json():
    import dataclasses

    from hournas_tf.nas.config import SearchConfig

    specs = budgets_lib.parse_budgets(TWO)
    config = SearchConfig(targets=dict(specs[0].targets), budgets=specs)
    data = json.loads(json.dumps(dataclasses.asdict(config)))
    assert SearchConfig(**data).budgets == specs
    assert budgets_lib.as_specs(specs) == specs


def test_table_rows_round_trip(tmp_path, space, plan):
    table, searched, ops, specs = plan
    owner = np.array([0, 1])
    per = np.where(np.asarray(table.mask), 1.0, 0.0)[None].repeat(2, 0)
    per /= per.sum(-1, keepdims=True)
    found = budgets_lib.derive(space, table, searched, ops, specs, per,
                               np.zeros(2), owner, 0.03)
    rows = budgets_lib.table_rows(found, {'small': 0.5})
    budgets_lib.write_table(str(tmp_path), rows, {'tolerance': 0.03})
    back = budgets_lib.read_table(str(tmp_path))
    assert back['tolerance'] == 0.03
    assert [r['budget'] for r in back['budgets']] == ['small', 'large']
    assert back['budgets'][0]['inherited_accuracy'] == 0.5
    assert back['budgets'][1]['inherited_accuracy'] is None
    assert back['budgets'][1]['arch_file'] == 'budgets/large/arch.json'
    assert budgets_lib.read_table(str(tmp_path / 'none')) is None


def _small_stage2():
    """fbnet at 32x32, width 0.25, two searched non-vital layers, vital ops
    fixed, the rest removed; two budgets at 30% and 70% of its range."""
    from hournas_tf.nas import budget as budget_lib

    space = spaces.get_space('fbnet', image_size=32, num_classes=10,
                             width_multiplier=0.25)
    searched = tuple(i for i in range(len(space.layers))
                     if i not in space.vital_layers)[1:3]
    fixed = {i: 'k3_e1' for i in space.vital_layers}
    table = tables.resource_table(space, searched, fixed, ('macs',))
    lo, hi = tables.feasible_range(table, 'macs')
    budgets = [budget_lib.Budget(table, {'macs': lo + f * (hi - lo)})
               for f in (0.0, 1.0)]
    return space, searched, fixed, table, budgets


def _one_hot_proposals(table, owner):
    """Budget 0's proposals put every row on its cheapest op, budget 1's
    on its most expensive (logits 0 / 20)."""
    mask = np.asarray(table.mask)
    values = np.where(mask, table.values['macs'], np.nan)
    logits = np.full((len(owner),) + mask.shape, -1e9, np.float32)
    for j, b in enumerate(owner):
        pick = (np.nanargmin if b == 0 else np.nanargmax)(values, axis=-1)
        logits[j][mask] = 0.0
        logits[j][np.arange(mask.shape[0]), pick] = 20.0
    return logits


def test_budget_supernet_draws_each_step_from_its_budget():
    import tensorflow as tf

    from hournas_tf.nas import budget_supernet
    from hournas_tf.nas import supernet

    space, searched, fixed, table, budgets = _small_stage2()
    owner = np.array([0, 0, 1])
    config = supernet.SupernetConfig(total_steps=4, budget_draws=2,
                                     resource_estimate='expected',
                                     resource_slack=1.0)
    net = budget_supernet.build_budget_supernet(
        space, searched, fixed, config, budgets,
        _one_hot_proposals(table, owner), owner)
    assert isinstance(net, budget_supernet.BudgetSuperNet)
    cheap = np.nanargmin(np.where(table.mask, table.values['macs'], np.nan),
                         axis=-1)
    for step in range(4):
        net.step.assign(step)
        assert int(net.active_budget()) == step % 2
        drawn = net.sample_weights(net._seed(0)).numpy().argmax(-1)
        assert (drawn == cheap).all() == (step % 2 == 0), (step, drawn)
        # Within tolerance of the step's own budget.
        assert float(net._within(tf.one_hot(drawn, table.mask.shape[1]))) \
            == 1.0
    # The flat pi: each budget's own pi over its proposals, / B.
    np.testing.assert_allclose(net.proposal_probabilities(),
                               [0.25, 0.25, 0.5])
    per, pi = net.arch_params.budget_distributions(0)
    assert per.shape[0] == 2 and np.allclose(pi.numpy(), [0.5, 0.5])
    # Inside both budgets' tolerance: no resource loss.
    assert float(net._resource_loss(None)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.large
def test_budget_supernet_trains_and_refuses_bad_owner():
    import tensorflow as tf

    from hournas_tf.nas import budget_supernet
    from hournas_tf.nas import supernet

    space, searched, fixed, table, budgets = _small_stage2()
    owner = np.array([0, 1, 1])
    logits = _one_hot_proposals(table, owner)
    # Budget 1's second proposal uniform: its draws differ from the first's,
    # so pi's gradient is not the zero of two equal proposals; the branches
    # start as themselves (not the identity) so that op choices matter.
    logits[2][np.asarray(table.mask)] = 0.0
    config = supernet.SupernetConfig(total_steps=2, budget_draws=64,
                                     zero_init_residual=False)
    with pytest.raises(UserError, match='each at least one'):
        budget_supernet.build_budget_supernet(
            space, searched, fixed, config, budgets, logits, [1, 1, 1])
    net = budget_supernet.build_budget_supernet(
        space, searched, fixed, config, budgets, logits, owner)
    net.compile()
    rng = np.random.default_rng(0)

    def split():
        return (rng.normal(size=(4, 32, 32, 3)).astype('float32'),
                rng.integers(0, 10, 4))

    data = tf.data.Dataset.from_tensors((split(), split())).repeat()
    pi_before = net.arch_params.pi_logits.numpy().copy()
    history = net.fit(data, epochs=1, steps_per_epoch=2, verbose=0,
                      shuffle=False).history
    assert history['within_tolerance'][0] == 1.0
    assert np.isfinite(history['loss'][0])
    assert int(net.step.numpy()) == 2
    # Budget 1's pi moved (two proposals); budget 0's single one is its own
    # pi = 1 whatever its logit.
    moved = np.abs(net.arch_params.pi_logits.numpy() - pi_before)
    assert moved[1:].min() > 1e-3, moved


# --- The search command with --budgets ---------------------------------------

@pytest.mark.parametrize('argv, expect', [
    (['--budgets=small=macs:8e6/params:0.2e6,close=macs:8.1e6/params:'
      '0.201e6'], 'overlap'),
    (['--budgets=ok=macs:8e6,huge=macs:80e6'], "budget 'huge'"),
    (['--budgets=a=macs:8e6/m:0,b=macs:13e6'], 'too few proposals'),
    (['--budgets=latency_ms:2,latency_ms:5'], 'needs --latency_table'),
    (['--budgets=macs:8e6,macs:13e6', '--target_macs=8e6'],
     'cannot be given with --target_macs'),
    (['--budgets=macs:8e6/params=1'], 'not objective:value'),
    (['--budgets=tiny=macs:2.3e6,big=macs:16.8e6'], 'cannot both'),
])
def test_search_refuses_bad_budgets_in_one_line(tmp_path, argv, expect):
    from hournas_tf.fuzzing import refused_untouched

    refused_untouched('search', [*argv, f'--output_dir={tmp_path}/run'],
                      tmp_path, expect)


def test_dry_run_with_budgets_writes_each_budgets_proposals(tmp_path):
    from conftest import run_module

    out = tmp_path / 'dry'
    res = run_module('hournas_tf.search', '--dry_run',
                     '--proposal_iters=100', '--num_proposals=3',
                     f'--budgets={TWO},mid=macs:10.5e6/params:0.24e6/m:2',
                     f'--output_dir={out}')
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((out / 'dry_run.json').read_text())
    per = report['proposal_optimization']['budgets']
    assert [b['budget'] for b in per] == ['small', 'large', 'mid']
    assert [len(b['proposals']) for b in per] == [3, 3, 2]
    for b in per:
        assert 0 <= b['share_within_tolerance'] <= 1
        for p in b['proposals']:
            assert set(p) >= {'macs_error', 'params_error',
                              'within_tolerance'}
    config = json.loads((out / 'search_config.json').read_text())
    assert [b['name'] for b in config['budgets']] == ['small', 'large',
                                                      'mid']
    assert 'proposals of 3 budgets have their most probable' in res.stdout


@pytest.mark.large
def test_search_with_two_budgets_writes_one_network_each(tiny_budget_search,
                                                         tmp_path):
    from conftest import run_module

    out, _ = tiny_budget_search  # conftest.TINY_SEARCH, --budgets=TWO
    table = budgets_lib.read_table(str(out))
    rows = table['budgets']
    assert [r['budget'] for r in rows] == ['small', 'large']
    from hournas_tf.spaces.architecture import load_architecture

    for r, spec in zip(rows, budgets_lib.parse_budgets(TWO)):
        assert r['targets'] == spec.targets
        assert r['within_tolerance']
        assert 0 <= r['inherited_accuracy'] <= 1
        arch = load_architecture(str(out / r['arch_file']))
        assert arch.to_string() == r['architecture']
        assert (out / 'budgets' / r['budget'] /
                'arch.weights.h5').stat().st_size > 10_000
    # The top-level arch.json is the first budget's network, its weights
    # file the same arrays.
    import h5py

    with h5py.File(out / 'arch.weights.h5') as top, h5py.File(
            out / 'budgets' / 'small' / 'arch.weights.h5') as small:
        names = [[], []]
        for f, found in zip((top, small), names):
            f.visititems(lambda n, x, found=found: found.append(n)
                         if isinstance(x, h5py.Dataset) else None)
        assert names[0] == names[1] and len(names[0]) > 10
        for name in names[0]:
            np.testing.assert_array_equal(top[name][()], small[name][()])
    assert (load_architecture(str(out / 'arch.json')).to_string()
            == rows[0]['architecture'])
    # The cheaper budget's network is the cheaper one.
    assert rows[0]['achieved']['macs'] < rows[1]['achieved']['macs']
    assert 'id="budgets"' in (out / 'report.html').read_text()
    # train takes a budget's architecture with its inherited weights.
    small = out / 'budgets' / 'small'
    res = run_module('hournas_tf.train', f'--arch_file={small}/arch.json',
                     f'--inherit_weights={small}', '--epochs=0',
                     f'--output_dir={tmp_path}/train', timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]


def test_budget_summary_tool_reads_dry_runs_and_searches(tmp_path):
    from conftest import run_module

    dry = tmp_path / 'dry'
    dry.mkdir()
    (dry / 'dry_run.json').write_text(json.dumps({'proposal_optimization': {
        'budgets': [{'budget': 'a', 'targets': {'macs': 2e8},
                     'share_within_tolerance': 0.5,
                     'proposals': [{'macs_error': -0.01,
                                    'within_tolerance': True},
                                   {'macs_error': 0.04,
                                    'within_tolerance': False}]}]}}))
    run = tmp_path / 'run'
    run.mkdir()
    row = {'budget': 'a', 'targets': {'macs': 2e8},
           'achieved': {'macs': 2.02e8}, 'relative_error': {'macs': 0.01},
           'before_repair': {'relative_error': {'macs': 0.01}},
           'within_tolerance': True, 'inherited_accuracy': 0.8125,
           'architecture': 'k3_e1,skip'}
    (run / 'budgets.json').write_text(json.dumps({
        'budgets': [row], 'seconds': {'vital': 10.0, 'total': 30.0}}))
    (run / 'arch.json').write_text(json.dumps(
        {'search': {'seconds': {'vital': 10.0, 'total': 30.0}}}))
    single = tmp_path / 'single'
    single.mkdir()
    (single / 'arch.json').write_text(json.dumps(
        {'search': {'seconds': {'total': 20.0}}}))
    res = run_module('tools.budget_summary', str(dry), str(run),
                     f'--compare={single}')
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert '| a | macs 200M | 1/2 | macs 4.00% | 50.0% |' in lines
    assert ('| a | macs 200M | macs 202M | macs +1.00% | macs +1.00% | yes '
            '| 0.812 | `k3_e1,skip` |') in lines
    assert lines[-2].endswith('ratio of the totals 1.50x')
    assert 'UTC' in lines[0] and 'CPUs' in lines[0]
    from hournas_tf.fuzzing import check_refused

    check_refused(run_module('tools.budget_summary', str(single)),
                  'neither budgets.json nor dry_run.json')
    check_refused(run_module('tools.budget_summary'), 'give one or more')


def test_report_shows_the_budgets_side_by_side(tmp_path, space, plan):
    from test_report import fake_run

    from hournas_tf.reporting import figures
    from hournas_tf.reporting import page

    table, searched, ops, specs = plan
    per = np.where(np.asarray(table.mask), 1.0, 0.0)[None].repeat(2, 0)
    per /= per.sum(-1, keepdims=True)
    found = budgets_lib.derive(space, table, searched, ops, specs, per,
                               np.zeros(2), np.array([0, 1]), 0.03)
    run = str(tmp_path / 'run')
    fake_run(run)
    before = page.render(page.load_run(run))
    budgets_lib.write_table(run, budgets_lib.table_rows(
        found, {'small': 0.61, 'large': 0.72}))
    text = page.render(page.load_run(run))
    section = text[text.index('<section id="budgets">'):]
    section = section[:section.index('</section>')]
    assert '<td>small</td>' in section and '<td>large</td>' in section
    assert '0.610' in section and '0.720' in section
    assert 'budgets/large/arch.json' in section
    assert text.count('<img ') == before.count('<img ') + 1
    png = figures.budget_curve(budgets_lib.table_rows(found, {'small': 0.6}))
    assert png[:4] == b'\x89PNG'


def test_budget_search_run_fixes_vital_ops_for_every_budget(space):
    import types

    from hournas_tf.nas import search_lib
    from hournas_tf.nas.budget_search import BudgetSearchRun
    from hournas_tf.nas.config import SearchConfig

    specs = budgets_lib.parse_budgets('a=macs:3.5e6,b=macs:8e6')
    config = SearchConfig(space='efficientnet', targets=specs[0].targets,
                          budgets=specs)
    assert search_lib.run_class(config) is BudgetSearchRun
    assert search_lib.run_class(SearchConfig(targets={'macs': 1e6})) is \
        search_lib.SearchRun
    run = BudgetSearchRun(config)
    run.env = types.SimpleNamespace(space=space, latency=None)
    stage1 = search_lib.Stage1Result(vital_policy.max_vital_ops(space))
    vital = run.fix_vital_ops(stage1)
    assert vital.changed  # 3.5M MACs needs smaller vital ops than max
    rest = [i for i in range(len(space.layers)) if i not in vital.ops]
    t = tables.resource_table(space, rest, vital.ops, ('macs',))
    for b in specs:
        tables.check_targets(t, b.targets)
    lo, hi = tables.feasible_range(tables.resource_table(space), 'macs')
    far = budgets_lib.parse_budgets(
        f'tiny=macs:{lo * 1.01},big=macs:{hi * 0.99}')
    run = BudgetSearchRun(SearchConfig(targets=far[0].targets, budgets=far))
    run.env = types.SimpleNamespace(space=space, latency=None)
    with pytest.raises(UserError, match="'tiny'.*'big'.*cannot both"):
        run.fix_vital_ops(stage1)


def test_run_stage2_starts_and_trains_over_the_tables_rows(plan):
    import types

    from hournas_tf.nas import search_lib
    from hournas_tf.nas.config import SearchConfig

    table = plan[0]
    run = search_lib.SearchRun(SearchConfig(targets={'macs': 1e7},
                                            nonvital_epochs=3))
    calls = []
    run._start_stage2 = lambda net, stage1: calls.append(('start', net)) or 5
    run.output = types.SimpleNamespace(keep=lambda: calls.append('keep'))
    run._train = lambda *a, **k: calls.append((a, k)) or 12.5
    logits = np.zeros((2,) + table.mask.shape, np.float32)
    logits[1, :, 0] = 1.0
    seconds, start = run._run_stage2('net', None, logits, table)
    assert seconds == 12.5 and start.shape == (2, table.mask.shape[0])
    assert calls[:2] == [('start', 'net'), 'keep']
    args, kwargs = calls[2]
    assert args == ('nonvital', 'net', 3, list(table.layer_indices), table)
    assert kwargs['done'] == 5
    np.testing.assert_array_equal(kwargs['start_columns'], start)


# --- Resume -------------------------------------------------------------------

def test_budget_proposals_round_trip_through_stage1_json(tmp_path, space,
                                                         plan):
    """What `proposals` writes to stage1.json (every budget's proposals,
    their owner, the vital ops, the report) a resumed run reads back."""
    from hournas_tf.nas import checkpointing
    from hournas_tf.nas import search_lib
    from hournas_tf.nas.budget_search import BudgetProposalsResult
    from hournas_tf.nas.budget_search import BudgetSearchRun
    from hournas_tf.nas.config import SearchConfig

    table, searched, ops, specs = plan
    rng = np.random.default_rng(3)
    owner = np.array([0, 0, 0, 1, 1], np.int32)
    logits = rng.normal(size=(5,) + table.mask.shape).astype(np.float32)
    report = {'budgets': [{'budget': 'small', 'share_within_tolerance':
                           np.float64(rng.random())}], 'seconds': 1.5}
    changed = [space.vital_layers[1]]
    saved = BudgetProposalsResult(ops, changed, logits, 0.7, report,
                                  {'vital': 2.5}, table, owner)
    config = SearchConfig(space='efficientnet', image_size=32,
                          width_multiplier=0.25, targets=specs[0].targets,
                          budgets=specs, output_dir=str(tmp_path))
    run = BudgetSearchRun(config)
    run._optimize_proposals = lambda vital, seconds: saved
    assert run.proposals(search_lib.VitalOps(ops, changed),
                         {'vital': 2.5}) is saved
    data = checkpointing.read_stage1(str(tmp_path))
    assert data['owner'] == owner.tolist()
    point = search_lib.ResumePoint(search_lib.CheckpointState('c', 2, 1),
                                   data)
    back = point.proposals(space, config, kind=BudgetSearchRun.PROPOSALS)
    assert isinstance(back, BudgetProposalsResult)
    assert back.logits.dtype == np.float32 and back.owner.dtype == np.int32
    np.testing.assert_array_equal(back.logits, logits)  # bit for bit
    np.testing.assert_array_equal(back.owner, owner)
    assert back.vital_ops == ops and back.changed_vital == changed
    assert (back.tau_end, back.seconds) == (0.7, {'vital': 2.5})
    assert back.report == json.loads(json.dumps(report, default=float))
    assert back.table.layer_indices == table.layer_indices
    for obj in table.objectives:
        np.testing.assert_array_equal(back.table.values[obj],
                                      table.values[obj])
    # A single search's stage1.json has no owner: it reads as before.
    single = search_lib.ProposalsResult.from_json(data)
    assert not hasattr(single, 'owner') and single.vital_ops == ops


def test_budget_supernet_round_robin_goes_on_after_a_restore(tmp_path):
    """A stage-2 checkpoint holds the step counter (the round robin's
    position) and every budget's pi."""
    from hournas_tf.nas import budget_supernet
    from hournas_tf.nas import checkpointing
    from hournas_tf.nas import supernet

    space, searched, fixed, table, budgets = _small_stage2()
    owner = np.array([0, 1, 1])
    net = budget_supernet.build_budget_supernet(
        space, searched, fixed, supernet.SupernetConfig(total_steps=4),
        budgets, _one_hot_proposals(table, owner), owner)
    net.compile()
    net.step.assign(3)
    net.arch_params.pi_logits.assign([0.5, -1.0, 2.0])
    pi = net.proposal_probabilities()
    saving = checkpointing.SearchCheckpoint(str(tmp_path))
    saving.attach('nonvital', net)
    saving.save()
    path, stage, step = saving.latest()
    assert (stage, step) == (2, 3)
    net.step.assign(0)  # as a new run's supernet
    net.arch_params.pi_logits.assign([0.0, 0.0, 0.0])
    assert int(net.active_budget()) == 0
    assert checkpointing.SearchCheckpoint(str(tmp_path)).restore(
        path, 'nonvital', net) == 3
    assert int(net.active_budget()) == 1  # step 3 of 2 budgets
    np.testing.assert_allclose(net.proposal_probabilities(), pi)
