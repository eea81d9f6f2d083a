"""tools/budget_compare.py (experiments/budget_comparison.py): one
several-budget search against one search per budget, paired by seed."""

import dataclasses
import json
import os
import shutil

import pytest
from conftest import REPO
from conftest import TINY_SEARCH
from conftest import TWO_BUDGETS
from conftest import run_python

from hournas_tf.common import jsonio
from hournas_tf.common import threads
from hournas_tf.experiments import budget_comparison as bc
from hournas_tf.experiments import paired
from hournas_tf.fuzzing import check_refused
from hournas_tf.nas import budgets as budgets_lib
from hournas_tf.nas import config as config_lib

BUDGETS = budgets_lib.parse_budgets(TWO_BUDGETS)


def config(tmp_path, seeds=(0, 1, 2)):
    search = config_lib.preset('demo', budgets=BUDGETS,
                               targets=dict(BUDGETS[0].targets))
    return bc.BudgetComparisonConfig(output_dir=str(tmp_path / 'cmp'),
                                     search=search, seeds=seeds)


def test_rows_cells_and_each_cells_search(tmp_path):
    c = config(tmp_path, seeds=(0, 1))
    assert bc.rows(c) == ['shared', 'single_small', 'single_large']
    assert bc.cells(c)[:4] == [('shared', 0), ('single_small', 0),
                               ('single_large', 0), ('shared', 1)]
    shared = bc.search_config(c, 'shared', 1)
    assert shared.budgets == BUDGETS and shared.seed == 1
    assert shared.output_dir == os.path.join(c.output_dir, 'shared',
                                             'seed1', 'search')
    large = bc.search_config(c, 'single_large', 1)
    assert large.budgets is None
    assert large.targets == BUDGETS[1].targets
    assert large.num_proposals == c.search.num_proposals
    assert large.seed == 1 and large.verbose == 0
    with pytest.raises(ValueError, match='no budget'):
        bc.budget_of(c, 'single_huge')


# Test accuracy of (row, seed) per budget: the shared search is ahead on
# the large budget and even on the small one.
ACCURACY = {
    ('shared', 0): {'small': 0.80, 'large': 0.85},
    ('shared', 1): {'small': 0.78, 'large': 0.86},
    ('shared', 2): {'small': 0.82, 'large': 0.84},
    ('single_small', 0): {'small': 0.79}, ('single_small', 1): {'small': 0.80},
    ('single_small', 2): {'small': 0.81},
    ('single_large', 0): {'large': 0.83}, ('single_large', 1): {'large': 0.84},
    ('single_large', 2): {'large': 0.85},
}


def fake_cells(c, accuracy=ACCURACY):
    for (row, seed), values in accuracy.items():
        path = bc.cell_dir(c, row, seed)
        os.makedirs(path)
        jsonio.write_json(os.path.join(path, bc.RESULT_FILE), {
            'row': row, 'seed': seed, 'budgets': {
                name: {'test_accuracy': acc,
                       'before_repair_within_tolerance': seed != 2}
                for name, acc in values.items()},
            'search_seconds': 100.0 * (seed + 1) + (50 if row == 'shared'
                                                    else 0)})


def test_progress_estimates_each_cell_by_its_kind(tmp_path):
    c = dataclasses.replace(config(tmp_path, seeds=(0, 1)), workers=2)

    def finish(row, seed, wall):
        path = bc.cell_dir(c, row, seed)
        os.makedirs(path)
        jsonio.write_json(os.path.join(path, bc.RESULT_FILE), {
            'row': row, 'seed': seed, 'budgets': {},
            'job_wall_seconds': wall})

    assert bc.progress(c) == '0/6 cells done'
    finish('shared', 0, 600.0)
    # No single cell done yet: the singles take the shared cell's time.
    assert bc.progress(c) == ('1/6 cells done; about 25 min left with 2 '
                              'worker(s)')  # 5 x 600 s / 2
    finish('single_small', 0, 200.0)
    # 3 singles x 200 s + 1 shared x 600 s, over 2 workers.
    assert bc.progress(c) == ('2/6 cells done; about 10 min left with 2 '
                              'worker(s)')
    for row, seed in bc.cells(c)[2:]:
        finish(row, seed, 100.0)
    assert bc.progress(c) == '6/6 cells done'


def test_summary_pairs_each_budget_by_seed(tmp_path):
    c = config(tmp_path)
    fake_cells(c)
    summary = bc.summarize(c)
    small, large = summary['budgets']
    assert small['budget'] == 'small' and large['budget'] == 'large'
    assert small['shared'] == {0: 0.80, 1: 0.78, 2: 0.82}
    assert small['single'] == {0: 0.79, 1: 0.80, 2: 0.81}
    assert small['comparison'] == paired.compare(small['shared'],
                                                 small['single'])
    assert large['comparison']['mean_difference'] == pytest.approx(
        (0.02 + 0.02 - 0.01) / 3)
    assert small['shared_within_tolerance_before_repair'] == \
        pytest.approx(2 / 3)
    assert summary['shared_rises_with_budget'] is True
    assert summary['single_rises_with_budget'] is True
    # Both intervals reach 0 or above.
    assert summary['shared_not_worse'] is True
    # Highest minus lowest budget by seed, the precision and the times.
    rise = summary['highest_minus_lowest']
    assert rise['shared']['by_seed'] == pytest.approx(
        {0: 0.05, 1: 0.08, 2: 0.02})
    assert rise['shared']['mean'] == pytest.approx(0.05)
    assert rise['single']['by_seed'] == pytest.approx(
        {0: 0.04, 1: 0.04, 2: 0.04})
    assert rise['shared']['negative'] == rise['single']['negative'] == 0
    p = summary['precision_and_time']
    assert (p['shared']['within_before_repair'],
            p['shared']['architectures']) == (4, 6)
    assert (p['single']['within_before_repair'],
            p['single']['architectures']) == (4, 6)
    assert p['shared']['search_seconds_mean'] == pytest.approx(250.0)
    assert (p['single']['search_seconds_min'],
            p['single']['search_seconds_max']) == (100.0, 300.0)
    page = bc.table_markdown(summary, c, 'CMD', 'NOW')
    assert ('- large minus small budget, mean over the seeds: shared '
            'search +5.00 points (negative in 0 of 3 seeds); single '
            'searches +4.00 points (negative in 0 of 3 seeds)') in page
    assert ('- Within 3% of every target before any repair: shared search '
            '4 of 6 architectures; single searches 4 of 6') in page
    assert ('- Search time: shared search 250 s on average (150-350 s); '
            'single searches 200 s on average (100-300 s)') in page


def test_a_worse_shared_search_and_a_falling_curve_are_said(tmp_path):
    c = config(tmp_path)
    worse = dict(ACCURACY)
    for seed in (0, 1, 2):
        worse['shared', seed] = {'small': 0.70 + seed * 0.001,
                                 'large': 0.69}
    fake_cells(c, worse)
    summary = bc.summarize(c)
    small = summary['budgets'][0]
    assert small['comparison']['ci_high'] < 0
    assert summary['shared_not_worse'] is False
    assert summary['shared_rises_with_budget'] is False
    page = bc.table_markdown(summary, c, 'CMD', 'NOW')
    assert 'not worse for every budget (95% interval includes 0 or lies ' \
        'above it): **no**' in page
    assert 'shared search: **no**' in page


def test_unfinished_cells_leave_the_verdicts_open(tmp_path):
    c = config(tmp_path)
    fake_cells(c, {k: v for k, v in ACCURACY.items() if k[0] == 'shared'})
    summary = bc.summarize(c)
    assert summary['budgets'][0]['comparison']['n'] == 0
    assert summary['single_rises_with_budget'] is None
    assert summary['shared_not_worse'] is None
    page = bc.table_markdown(summary, c, 'CMD', 'NOW')
    assert 'single searches: **not yet known**' in page
    assert 'lies above it): **not yet known**' in page


def test_the_outputs_hold_the_table_and_every_cell(tmp_path):
    c = config(tmp_path)
    fake_cells(c)
    bc.write_outputs(c, 'python tools/budget_compare.py X')
    data = json.loads((tmp_path / 'cmp' / bc.RESULTS_FILE).read_text())
    assert data['command'] == 'python tools/budget_compare.py X'
    assert data['cells']['shared:1']['budgets']['large'][
        'test_accuracy'] == 0.86
    assert data['shared_not_worse'] is True
    page = (tmp_path / 'cmp' / bc.TABLE_FILE).read_text()
    cmp = data['budgets'][1]['comparison']
    assert (f'| large | macs 13M / params 280K | 3 | 84.00% | 85.00% | '
            f'{cmp["mean_difference"]:+.2%} [{cmp["ci_low"]:+.2%}, '
            f'{cmp["ci_high"]:+.2%}] | 2 |') in page
    assert 'test split' in page and 'tensorflow' in page
    assert data['started'] is None and '; written ' in page
    bc.write_outputs(c, 'python tools/budget_compare.py X',
                     '2026-12-04T10:00:00')
    data = json.loads((tmp_path / 'cmp' / bc.RESULTS_FILE).read_text())
    assert data['started'] == '2026-12-04T10:00:00'
    assert ('`python tools/budget_compare.py X`; started '
            '2026-12-04T10:00:00, written ') in (
        tmp_path / 'cmp' / bc.TABLE_FILE).read_text()


@pytest.mark.parametrize('args, message', [
    (['--budgets=only=macs:8e6/params:0.2e6'], 'give two budgets or more'),
    ([f'--budgets={TWO_BUDGETS}', '--resume'],
     '--resume and --dry_run are search flags'),
    ([f'--budgets={TWO_BUDGETS}', '--seeds=0'], 'flag --seeds=0'),
])
def test_user_errors_are_one_line(args, message, tmp_path):
    out = tmp_path / 'cmp'
    res = run_python('tools/budget_compare.py', f'--output_dir={out}',
                     *args, timeout=300)
    check_refused(res, message)
    assert not out.exists()


def test_the_output_folder_is_required(tmp_path):
    res = run_python(os.path.join(REPO, 'tools', 'budget_compare.py'),
                     f'--budgets={TWO_BUDGETS}', timeout=300, cwd=tmp_path)
    check_refused(res, '--output_dir is required')


@pytest.mark.large
def test_one_seed_compares_both_budgets_end_to_end(tiny_budget_search,
                                                    tmp_path):
    """The shared cell's search is the tiny budget search (the same
    flags); the two single searches and four retrainings run."""
    out = tmp_path / 'cmp'
    shutil.copytree(tiny_budget_search[0], out / 'shared' / 'seed0' /
                    'search')
    args = [*TINY_SEARCH, f'--budgets={TWO_BUDGETS}', '--seeds=1',
            '--train_epochs=1', '--train_examples=128', '--workers=2',
            f'--output_dir={out}']
    res = run_python('tools/budget_compare.py', *args, timeout=3000)
    assert res.returncode == 0, res.stderr[-3000:]
    c = bc.BudgetComparisonConfig(
        output_dir=str(out), search=config_lib.preset(
            'demo', budgets=BUDGETS, targets=dict(BUDGETS[0].targets)),
        seeds=(0,))
    shared = bc.result_of(c, 'shared', 0)
    for b in BUDGETS:
        single = bc.result_of(c, f'single_{b.name}', 0)
        assert list(single['budgets']) == [b.name]
        for result in (shared['budgets'][b.name], single['budgets'][b.name]):
            assert result['within_tolerance']
            assert result['eval_split'] == 'test'
            assert 0 < result['test_accuracy'] <= 1
            for obj, target in b.targets.items():
                assert abs(result['achieved'][obj] - target) <= \
                    0.03 * target
        metrics = jsonio.read_json(os.path.join(
            bc.cell_dir(c, 'shared', 0), f'train_{b.name}', 'metrics.json'),
            'metrics')
        assert metrics['num_train'] == 128 and metrics['epochs'] == 1
        assert metrics['architecture'] == shared['budgets'][b.name][
            'architecture']
    # Each child gave TensorFlow's pools its share of the cores.
    share = threads.share(2)
    for row in ('shared', *(f'single_{b.name}' for b in BUDGETS)):
        log = open(os.path.join(bc.cell_dir(c, row, 0), 'job.log')).read()
        assert f'{share} thread(s) per TensorFlow pool (2 cell(s) at a ' \
            'time' in log, row
    page = (out / bc.TABLE_FILE).read_text()
    assert page in res.stdout
    assert '3/3 cells done' in res.stdout
    data = json.loads((out / bc.RESULTS_FILE).read_text())
    assert [row['comparison']['n'] for row in data['budgets']] == [1, 1]
    again = run_python('tools/budget_compare.py', *args, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert ': started' not in again.stdout
    rewritten = json.loads((out / bc.RESULTS_FILE).read_text())
    assert rewritten['command'] == data['command'] == \
        'python tools/budget_compare.py ' + ' '.join(args)
    assert rewritten['started'] == data['started'] is not None


def test_committed_fashion_mnist_comparison_is_the_tools_output(tmp_path):
    """docs/multi_budget.md holds the table of the committed
    docs/budget_comparison_fashion_mnist.json: every cell of its five
    seeds written back as the tool's result files, the summary recomputed
    from them (scipy's paired tests) equals the committed one, and the
    page's rows and verdicts are the tool's own lines."""
    data = jsonio.read_json(os.path.join(
        REPO, 'docs', 'budget_comparison_fashion_mnist.json'), 'comparison')
    assert data['command'].startswith(
        'python tools/budget_compare.py --flagfile=configs/'
        'fashion_mnist_budgets.flags ')
    assert len(data['seeds']) >= 5
    flagfile = open(os.path.join(REPO, 'configs',
                                 'fashion_mnist_budgets.flags')).read()
    [spec] = [line.split('=', 1)[1] for line in flagfile.splitlines()
              if line.startswith('--budgets=')]
    budgets = budgets_lib.parse_budgets(spec)
    c = bc.BudgetComparisonConfig(
        output_dir=str(tmp_path / 'cmp'), seeds=tuple(data['seeds']),
        search=config_lib.preset('demo', budgets=budgets,
                                 targets=dict(budgets[0].targets)))
    assert sorted(data['cells']) == sorted(f'{r}:{s}'
                                           for r, s in bc.cells(c))
    for key, result in data['cells'].items():
        row, seed = key.split(':')
        folder = bc.cell_dir(c, row, int(seed))
        os.makedirs(folder)
        jsonio.write_json(os.path.join(folder, bc.RESULT_FILE), result)
    summary = bc.summarize(c)
    # As written to JSON (seed keys become strings).
    assert json.loads(json.dumps(summary)) == {k: data[k] for k in summary}
    page = bc.table_markdown(summary, c, data['command'], data['written'])
    doc = open(os.path.join(REPO, 'docs', 'multi_budget.md')).read()
    lines = [line for line in page.splitlines()
             if line.startswith(('| ', '- '))]
    # header, rows, 2 verdicts, high minus low, precision, search time
    assert len(lines) == 1 + len(budgets) + 5
    for line in lines:
        assert line in doc, line
