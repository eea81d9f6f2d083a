"""tools/ablate.py (experiments/ablation.py, ablation_report.py): the
ablation table and its random baseline."""

import json
import os
import re
import shutil

import pytest
from conftest import REPO
from conftest import run_python
from scipy import stats as scipy_stats

from hournas_tf.common import errors as ablate_errors
from hournas_tf.common import jsonio
from hournas_tf.common import threads
from hournas_tf.experiments import ablation as ablate
from hournas_tf.experiments import ablation_report
from hournas_tf.experiments import paired as paired_lib
from hournas_tf.fuzzing import check_refused
from hournas_tf.nas import config as config_lib

TARGETS = {'macs': 10e6, 'params': 0.25e6}


def config(tmp_path, **kw):
    return ablate.AblationConfig(
        output_dir=str(tmp_path), search=config_lib.SearchConfig(
            targets=TARGETS), **kw)


def result(variant, seed, accuracy, seconds=10.0):
    return {'variant': variant, 'seed': seed, 'test_accuracy': accuracy,
            'search_seconds': seconds,
            'achieved': {'macs': 10.1e6, 'params': 0.245e6},
            'relative_error': {'macs': 0.01, 'params': -0.02},
            'within_tolerance': True,
            'before_repair_within_tolerance': seed != 1,
            'job_wall_seconds': 60.0, 'job_cpu_seconds': 100.0}


def test_cells_run_seed_by_seed_and_never_wait_for_a_search(tmp_path):
    cells = ablate.cells(config(tmp_path, seeds=(0, 1)))
    assert cells[:3] == [('hournas', 0), ('random', 0), ('m1', 0)]
    # The rows that read seed 0's default search come after seed 1's.
    seed1 = cells.index(('hournas', 1))
    assert cells[seed1 + 1:seed1 + 3] == [('no_stage2', 0),
                                          ('random_best_of_k', 0)]
    assert all(s == 0 for _, s in cells[:seed1])
    assert cells[-2:] == [('no_stage2', 1), ('random_best_of_k', 1)]
    assert sorted(cells) == sorted((v, s) for v in ablate.VARIANTS
                                   for s in (0, 1))
    # Without the default row nothing waits, and the order is seed-major.
    alone = ablate.cells(config(tmp_path, seeds=(0, 1),
                                variants=('random', 'no_stage2')))
    assert alone == [('random', 0), ('no_stage2', 0), ('random', 1),
                     ('no_stage2', 1)]


def test_search_config_applies_the_variant(tmp_path):
    c = config(tmp_path)
    one = ablate.search_config(c, 'one_stage', 2)
    assert not one.vital_first and one.seed == 2 and one.verbose == 0
    assert one.output_dir == os.path.join(str(tmp_path), 'one_stage',
                                          'seed2', 'search')
    assert ablate.search_config(c, 'm4', 0).num_proposals == 4
    assert ablate.search_config(c, 'softmax', 0).sampler == 'softmax'


def test_the_paper_row_reads_configs_paper_flags(tmp_path):
    c = ablate.AblationConfig(
        output_dir=str(tmp_path), search=config_lib.SearchConfig(
            targets=TARGETS, proposal_iters=50, max_steps_per_epoch=3))
    paper = ablate.search_config(c, 'paper', 1)
    # Every setting of the flagfile, read line by line here.
    lines = [line.strip() for line in open(os.path.join(
        REPO, 'configs', 'paper.flags')) if line.startswith('--')]
    assert len(lines) >= 15
    for line in lines:
        name, _, value = line[2:].partition('=')
        if name.startswith('no') and not value:
            assert getattr(paper, name[2:]) is False, line
        elif name in ablate.BUDGET_FIELDS:
            assert getattr(paper, name) == getattr(c.search, name), line
        else:
            got = getattr(paper, name)
            assert str(got) == value or got == type(got)(value), line
    assert paper.arch_lr == 0.01 and paper.budget_draws == 1
    assert paper.derive == 'argmax' and not paper.proposal_repair
    assert paper.proposal_iters == 50 and paper.max_steps_per_epoch == 3
    assert paper.seed == 1 and paper.targets == TARGETS


def test_flagfile_overrides_types_and_errors(tmp_path):
    path = tmp_path / 'x.flags'
    path.write_text('# comment\n--alpha=2.5\n--num_proposals=3\n'
                    '--noproposal_repair\n--vital_first\n--derive=argmax\n'
                    '--vital_ops=max,max\n\n--graph_optimizations=false\n')
    assert ablate.flagfile_overrides(str(path)) == {
        'alpha': 2.5, 'num_proposals': 3, 'proposal_repair': False,
        'vital_first': True, 'derive': 'argmax', 'vital_ops': ('max', 'max'),
        'graph_optimizations': False}
    for text, message in (('--target_macs=1e6', 'is no search setting'),
                          ('--num_proposals=two', "'two' is no int"),
                          ('--vital_first=maybe', "'maybe' is no bool")):
        path.write_text(text + '\n')
        with pytest.raises(ablate_errors.UserError, match=message):
            ablate.flagfile_overrides(str(path))
    with pytest.raises(ablate_errors.UserError, match='cannot read'):
        ablate.flagfile_overrides(str(tmp_path / 'missing.flags'))


def test_claim_and_release_lock_cells(tmp_path):
    c = config(tmp_path)
    assert ablate.claim(c, 'random', 0)
    assert not ablate.claim(c, 'random', 0)  # held by this live process
    ablate.release(c, 'random', 0)
    assert ablate.claim(c, 'random', 0)
    # A lock of a process that is gone is taken over.
    lock = tmp_path / 'locks' / 'm1-seed0.lock'
    lock.write_text('999999999')
    assert ablate.claim(c, 'm1', 0)
    assert lock.read_text() == str(os.getpid())


def test_summary_table_and_conclusion(tmp_path):
    table_config = config(tmp_path, seeds=(0, 1, 2),
                          variants=('hournas', 'random'))
    results = {'hournas': [result('hournas', s, a) for s, a in
                           enumerate((0.95, 0.96, 0.97))],
               'random': [result('random', s, a, 0.5) for s, a in
                          enumerate((0.90, 0.91, 0.92))]}
    rows = ablation_report.summarize(results, TARGETS)
    assert rows['hournas']['accuracy_mean'] == pytest.approx(0.96)
    assert rows['hournas']['accuracy_sd'] == pytest.approx(0.01)
    assert rows['random']['n'] == 3
    assert rows['hournas']['before_repair_within_tolerance'] == 2
    assert rows['hournas']['params_error_max'] == pytest.approx(0.02)
    # Every paired difference is 1/16 (exact in binary): no spread, so
    # no t-test.
    same = {v: [result(v, s, a + (v == 'hournas') / 16) for s, a in
                enumerate((0.5, 0.75, 0.625))] for v in results}
    stats = ablation_report.statistics(same)
    assert set(stats) == {'random'}
    c = stats['random']
    assert c['mean_difference'] == 0.0625
    assert c['n'] == 3 and c['df'] == 2 and c['t_p'] is None
    assert c['holm_t_p'] is None
    lines = ablation_report.table(
        table_config, ablation_report.summarize(same, TARGETS),
        stats).splitlines()
    assert lines[0].startswith('| variant | paper | search / selection s |'
                               ' macs (target 10M) | params (target 250K) |')
    assert lines[0].endswith('| HourNAS minus row [95% CI] | paired t p '
                             '(Holm) | Wilcoxon p (Holm) |')
    assert len(lines) == 4
    assert lines[2].endswith('| 3 | - | - | - |')
    assert lines[3].startswith('| random (uniform, within tolerance) |')
    assert lines[3].endswith('| +6.25% [+6.25%, +6.25%] (n = 3) | - (-) | '
                             '0.25 (0.25) |')
    assert '| 96.00% ± 1.00% | 95.00% - 97.00% | 3 |' in \
        ablation_report.table(table_config, rows).splitlines()[2]
    [sentence] = ablation_report.conclusion(stats)
    assert sentence == (
        'HourNAS beat random (uniform, within tolerance) by +6.25% test '
        'accuracy, paired over 3 seeds: no paired t-test (every paired '
        'difference is the same: the t-test is undefined).')
    # Differences with spread: the sentence gives the test and verdict.
    results['random'] = [result('random', s, a) for s, a in
                         enumerate((0.90, 0.92, 0.91))]
    stats = ablation_report.statistics(results)
    c = stats['random']
    assert c['holm_t_p'] == pytest.approx(c['t_p'])  # a family of one
    [sentence] = ablation_report.conclusion(stats)
    assert sentence.startswith(
        'HourNAS beat random (uniform, within tolerance) by +5.00% test '
        f'accuracy, paired over 3 seeds (95% CI {c["ci_low"]:+.2%} to '
        f'{c["ci_high"]:+.2%}; t(2) = {c["t"]:.2f}, p = ')
    assert sentence.endswith('a significant difference (Holm-corrected p '
                             '< 0.05).') == (c['t_p'] < 0.05)
    assert 'cannot fall below 0.25' in sentence
    results['random'] = [result('random', s, a) for s, a in
                         enumerate((0.99, 0.93, 0.98))]
    [sentence] = ablation_report.conclusion(
        ablation_report.statistics(results))
    assert 'did not beat' in sentence and sentence.endswith(
        'not a significant difference (Holm-corrected p >= 0.05).')
    one = ablation_report.statistics({v: rs[:1] for v, rs in
                                      results.items()})
    assert ablation_report.conclusion(one) == [
        'HourNAS did not beat random (uniform, within tolerance) by -4.00% '
        'test accuracy, paired over 1 seed: no paired t-test (one paired '
        'seed: no spread to test against).']


def test_statistics_pair_by_seed_and_correct_across_rows():
    results = {'hournas': [result('hournas', s, a) for s, a in
                           enumerate((0.95, 0.96, 0.97, 0.94))],
               'random': [result('random', s, a) for s, a in
                          enumerate((0.90, 0.93, 0.91, 0.92))],
               'm1': [result('m1', s, a) for s, a in
                      ((1, 0.95), (2, 0.95), (3, 0.94), (7, 0.5))]}
    stats = ablation_report.statistics(results)
    assert stats['m1']['seeds'] == [1, 2, 3]  # seed 7 has no partner
    raw = {v: stats[v]['t_p'] for v in stats}
    assert stats['random']['holm_t_p'] == pytest.approx(
        paired_lib.holm(raw)['random'])
    assert stats['random']['holm_t_p'] == pytest.approx(
        min(1, 2 * min(raw.values())) if raw['random'] <= raw['m1'] else
        min(1, max(2 * raw['m1'], raw['random'])))
    assert ablation_report.statistics({'random': results['random']}) == {}


@pytest.mark.parametrize('args, message', [
    (['--variants=m3'], "unknown variant 'm3'; valid: hournas, m1"),
    (['--variants=random_best_of_k'],
     'random_best_of_k needs the hournas variant'),
    (['--variants=random,no_stage2'], 'no_stage2 needs the hournas variant'),
    (['--target_macs=1e3'], 'is outside the feasible range'),
    (['--seeds=0'], 'flag --seeds=0: 0 is not'),
])
def test_user_errors_are_one_line(args, message, tmp_path):
    out = tmp_path / 'ablation'
    res = run_python('tools/ablate.py', f'--output_dir={out}', *args,
                     timeout=300)
    check_refused(res, message)
    assert not out.exists()


def test_work_runs_each_cell_as_a_child_and_skips_a_failed_one(
        tmp_path, monkeypatch, capsys):
    c = config(tmp_path, seeds=(0,), variants=('random',))
    calls = []

    def fake_run(cmd, stdout, stderr):
        calls.append(cmd)
        stdout.write('child output\n')
        return ablate.subprocess.CompletedProcess(cmd, 3)

    monkeypatch.setattr(ablate.subprocess, 'run', fake_run)
    ablate.work(c, ['--output_dir=x'])  # returns: the cell failed once
    assert len(calls) == 1
    assert calls[0][-2:] == ['--output_dir=x', '--cell=random:0']
    out = capsys.readouterr().out
    assert 'random seed 0: failed (exit 3); see' in out
    log = os.path.join(str(tmp_path), 'random', 'seed0', 'job.log')
    assert open(log).read() == 'child output\n'
    assert not os.listdir(os.path.join(str(tmp_path), 'locks'))


def test_the_pool_runs_best_of_k_after_its_search_and_skips_done_cells(
        tmp_path, monkeypatch):
    c = config(tmp_path, seeds=(0, 1), workers=2,
               variants=('hournas', 'random', 'random_best_of_k'))
    monkeypatch.setattr(ablate, 'POLL_SECONDS', 0.01)
    done = ablate.cell_dir(c, 'random', 1)  # finished before: skipped
    os.makedirs(done)
    jsonio.write_json(os.path.join(done, ablate.RESULT_FILE),
                      result('random', 1, 0.9))
    order = []

    def fake_run(cmd, stdout, stderr):
        variant, seed = cmd[-1].split('=')[1].split(':')
        if variant == 'random_best_of_k':  # its search finished before
            assert ('hournas', seed) in order
        # Recorded before the search's files appear: a waiting best-of-k
        # thread may start as soon as they do.
        order.append((variant, seed))
        path = ablate.cell_dir(c, variant, int(seed))
        if variant == 'hournas':
            search = os.path.join(path, 'search')
            os.makedirs(search, exist_ok=True)
            open(os.path.join(search, 'supernet.json'), 'w').close()
        jsonio.write_json(os.path.join(path, ablate.RESULT_FILE),
                          result(variant, int(seed), 0.9))
        return ablate.subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(ablate.subprocess, 'run', fake_run)
    ablate.work(c, [])
    assert sorted(order) == sorted(
        [('hournas', '0'), ('hournas', '1'), ('random', '0'),
         ('random_best_of_k', '0'), ('random_best_of_k', '1')])
    assert all(ablate.is_done(c, *cell) for cell in ablate.cells(c))


def test_progress_counts_cells_and_estimates_the_time_left(tmp_path):
    c = config(tmp_path, seeds=(0, 1), variants=('hournas', 'random'),
               workers=2)
    assert ablate.progress(c) == '0/4 cells done'
    for variant, seconds in (('hournas', 300.0), ('random', 60.0)):
        path = ablate.cell_dir(c, variant, 0)
        os.makedirs(path)
        jsonio.write_json(os.path.join(path, ablate.RESULT_FILE), dict(
            result(variant, 0, 0.9), job_wall_seconds=seconds))
    # 2 cells left at the mean 180 s, over 2 workers: 3 min.
    assert ablate.progress(c) == ('2/4 cells done; about 3 min left with '
                                  '2 worker(s)')


def test_committed_table_is_the_tools_output_of_its_cells(tmp_path):
    """docs/ablation.md's table and verdicts are what the tool computes
    from the cell results kept in docs/ablation_results.json (`--reanalyze`
    rewrites them), with at least 3 seeds per row."""
    data = json.loads(open(os.path.join(REPO, 'docs',
                                        'ablation_results.json')).read())
    assert data['command'] == 'python tools/ablate.py'
    targets = data['search_config']['targets']
    analysis = ablation_report.analyze(data['results'], targets)
    assert analysis['rows'] == data['rows']
    assert analysis['statistics'] == json.loads(json.dumps(
        data['statistics']))
    assert analysis['conclusion'] == data['conclusion']
    assert 'comparison' not in data  # the Welch rule is gone
    assert set(analysis['rows']) == set(ablate.VARIANTS) - {
        'no_stage2', 'paper'}  # rows added after the table was run
    assert all(r['n'] >= 3 for r in analysis['rows'].values())
    doc = open(os.path.join(REPO, 'docs', 'ablation.md')).read()
    table = ablation_report.table(ablation_report.table_config(data),
                                  analysis['rows'], analysis['statistics'])
    assert table in doc
    assert len(analysis['conclusion']) == 2
    for line in data['conclusion']:
        assert line.split(' (')[0] in ' '.join(doc.split())


def test_committed_fashion_mnist_table_is_the_tools_output(tmp_path):
    """docs/ablation_fashion_mnist.md holds the page the tool computes from
    the cells kept in docs/ablation_fashion_mnist_results.json: the
    flagfile's problem on the test split, paired rows of equal seeds."""
    data = json.loads(open(os.path.join(
        REPO, 'docs', 'ablation_fashion_mnist_results.json')).read())
    assert data['command'].startswith(
        'python tools/ablate.py --flagfile=configs/ablate_fashion_mnist.flags')
    assert data['search_config']['dataset'] == 'fashion_mnist'
    assert data.get('evaluated_on', 'test') == 'test'
    targets = data['search_config']['targets']
    analysis = ablation_report.analyze(data['results'], targets)
    assert analysis['rows'] == data['rows']
    assert analysis['statistics'] == json.loads(json.dumps(
        data['statistics']))
    assert analysis['conclusion'] == data['conclusion']
    assert analysis['vital_agreement'] == json.loads(json.dumps(
        data['vital_agreement']))
    seeds = {v: sorted(r['seed'] for r in rows)
             for v, rows in data['results'].items()}
    # Issue 19's rows, each with the same 10 or more paired seeds.
    assert set(seeds) == {'hournas', 'random', 'no_stage2', 'm1', 'paper'}
    assert len(seeds['hournas']) >= 10
    assert all(s == seeds['hournas'] for s in seeds.values()), seeds
    doc = open(os.path.join(REPO, 'docs',
                            'ablation_fashion_mnist.md')).read()
    assert ablation_report.markdown(ablation_report.table_config(data),
                                    data).split('Command:')[0] in doc


def test_reanalyze_rewrites_a_results_file(tmp_path):
    """The Welch-era file: its comparison goes, the paired statistics
    come, the cells' results stay."""
    data = {'command': 'python tools/ablate.py', 'started':
            '2026-01-01T10:00:00', 'written': '2026-01-01T11:00:00',
            'machine': {'cpus': 2, 'load_average': [1.0], 'python': '3',
                        'tensorflow': '2', 'keras': '3', 'commit': 'abc'},
            'search_config': {'targets': TARGETS}, 'seeds': [0, 1, 2],
            'job_wall_seconds': 600.0, 'job_cpu_seconds': 500.0,
            'rows': {}, 'comparison': {'random': {'welch_t': 1.0}},
            'conclusion': ['old'],
            'results': {'hournas': [result('hournas', s, a) for s, a in
                                    enumerate((0.95, 0.96, 0.98))],
                        'random': [result('random', s, a) for s, a in
                                   enumerate((0.90, 0.93, 0.91))]}}
    path = tmp_path / 'results.json'
    jsonio.write_json(str(path), data)
    new, md = ablation_report.reanalyze(str(path))
    stored = json.loads(path.read_text())
    assert stored == json.loads(json.dumps(new))
    assert 'comparison' not in stored and stored['results'] == \
        json.loads(json.dumps(data['results']))
    assert stored['statistics']['random']['t_p'] == pytest.approx(
        scipy_stats.ttest_rel([0.95, 0.96, 0.98], [0.90, 0.93, 0.91]).pvalue)
    assert stored['conclusion'][0].startswith('HourNAS beat random')
    assert md.startswith('| variant |') and '| random (uniform' in md
    assert 'Statistics recomputed from the cells\' results on ' in md
    assert stored['reanalyzed']['commit']


def test_no_stage2_derives_a_seeded_proposal_of_the_default_search(
        tmp_path, monkeypatch):
    """The control reads the default search's stage1.json: with argmax
    derivation and no repair, its architecture is the chosen proposal's
    row-wise argmax, with the vital ops of stage 1."""
    import numpy as np

    from hournas_tf.nas import search_lib
    from hournas_tf.nas import stages

    search = config_lib.preset('demo', derive='argmax', repair=False)
    c = ablate.AblationConfig(output_dir=str(tmp_path), search=search)
    space = search_lib.search_space(search)
    searched = stages.nonvital_layers(space)
    mask = np.array(space.candidate_mask(), bool)
    vital = {i: space.op_names[int(np.argmax(mask[i]))]
             for i in range(len(space.layers)) if i not in searched}
    logits = np.random.default_rng(0).normal(size=(4, len(searched),
                                                    mask.shape[1]))
    run_dir = os.path.join(ablate.cell_dir(c, 'hournas', 3), 'search')
    os.makedirs(run_dir)
    open(os.path.join(run_dir, 'supernet.json'), 'w').close()
    jsonio.write_json(os.path.join(run_dir, 'stage1.json'), {
        'vital_ops': {str(i): op for i, op in vital.items()},
        'proposals': logits.tolist(), 'tau_end': 1.0,
        'seconds': {'vital': 12.5},
        'proposal_optimization': {'proposals': [
            {'repaired_layers': [5] if j == 2 else []} for j in range(4)]}})
    arch, report = ablate.no_stage2_architecture(c, 3)
    assert ablate.no_stage2_architecture(c, 3)[1] == report  # seeded
    j = report['proposal']
    assert 0 <= j < 4 and report['num_proposals'] == 4
    assert report['stage1_seconds'] == 12.5
    for i, op in vital.items():
        assert arch.ops[i] == op
    cols = np.where(mask[searched], logits[j], -np.inf).argmax(-1)
    assert [arch.ops[i] for i in searched] == [space.op_names[k]
                                               for k in cols]
    assert report['repaired_layers'] == []
    assert report['proposal_repaired_layers'] == ([5] if j == 2 else [])
    if j == 2:
        assert not report['before_repair_within_tolerance']
    # The cell: the control's report, its cost, the retraining's accuracy.
    trained = []

    def fake_train(config_, arch_, seed_, path):
        trained.append((arch_.to_string(), seed_, path))
        return {'test_accuracy': 0.5, 'wall_seconds': 1.0}

    monkeypatch.setattr(ablate, '_train', fake_train)
    cell = ablate.run_cell(c, 'no_stage2', 3)
    assert cell['proposal'] == j and cell['test_accuracy'] == 0.5
    assert cell['architecture'] == trained[0][0] == arch.to_string()
    assert trained[0][1] == 3
    assert cell['search_seconds'] >= 12.5
    assert set(cell['achieved']) == set(TARGETS)
    assert cell['before_repair_within_tolerance'] == \
        report['before_repair_within_tolerance']
    assert ablate.is_done(c, 'no_stage2', 3)
    # Other seeds choose other proposals.
    chosen = set()
    for seed in range(8):
        path = os.path.join(ablate.cell_dir(c, 'hournas', seed), 'search')
        if seed != 3:
            shutil.copytree(run_dir, path)
        chosen.add(ablate.no_stage2_architecture(c, seed)[1]['proposal'])
    assert len(chosen) > 1


def test_the_stage1_file_is_the_searchs():
    from hournas_tf.nas import checkpointing

    assert ablate.STAGE1_FILE == checkpointing.STAGE1_FILE


def test_every_row_is_retrained_alike_for_a_seed(tmp_path):
    """Paired rows: one seed, one recipe, one data split; only the
    architecture differs. The held-out split reaches the searches too."""
    import dataclasses

    from hournas_tf.nas import search_lib
    from hournas_tf.spaces import references

    c = ablate.AblationConfig(
        output_dir=str(tmp_path), train_examples=500, train_epochs=3,
        search=config_lib.preset('demo', validation_fraction=0.1))
    a, b = (references.get_reference(n) for n in
            references.REFERENCE_NAMES[:2])
    ta, tb = (dataclasses.asdict(ablate.train_config(c, x, 3, 'out'))
              for x in (a, b))
    assert {k for k in ta if ta[k] != tb[k]} <= {'arch', 'arch_name',
                                                 'image_size'}
    assert ta['arch'] != tb['arch']
    assert ta['seed'] == 3 and ta['validation_fraction'] == 0.1
    assert ta['train_examples'] == 500 and ta['epochs'] == 3
    for variant in ('hournas', 'm1', 'paper'):
        s = ablate.search_config(c, variant, 3)
        assert s.seed == 3 and s.validation_fraction == 0.1
        assert search_lib.data_config(s).validation_fraction == 0.1


PARSE = """
import json, sys
from absl import flags
from tools import ablate
from hournas_tf.experiments import ablation
ablate.define_flags()
flags.FLAGS(['ablate', '--flagfile=configs/' + sys.argv[1]])
config = ablate.config_from_flags(flags.FLAGS)
ablation.preflight(config)
print(json.dumps({'variants': config.variants, 'seeds': config.seeds,
                  'dataset': config.search.dataset,
                  'train_examples': config.train_examples,
                  'validation': config.search.validation_fraction,
                  'cells': len(ablation.cells(config))}))
"""


def test_the_fashion_mnist_flagfile_parses_and_passes_the_preflight():
    res = run_python('-c', PARSE, 'ablate_fashion_mnist.flags', timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got['seeds'] == list(range(10)) and got['cells'] == 50
    assert set(got['variants']) == {'hournas', 'random', 'no_stage2', 'm1',
                                    'paper'}
    assert got['dataset'] == 'fashion_mnist' and got['validation'] == 0
    assert got['train_examples'] > 0


@pytest.mark.large
def test_quick_mode_runs_every_searched_row_and_rewrites_its_table(
        tmp_path):
    """--seeds=2 on a small subset, one run for the ablation's end to end:
    the default search, the random baseline, the no-stage-2 control (from
    the default search's stage1.json) and best-of-k (random architectures
    scored by that search's saved supernet); the paper row's settings have
    a fast test of their own. The searches train no supernet
    (--search_epochs=0): stage 1, the proposals, stage 2's set-up, the
    derivation and the saved supernet run, but no train step, whose first
    call is most of a small search's time (searches that train are
    tested elsewhere).
    Retrained on 200 images and evaluated on the
    held-out split; results.json has each row's paired statistics against
    the default; --table_only then rewrites the table from the finished
    cells without running one."""
    out = tmp_path / 'ablation'
    args = [f'--output_dir={out}',
            '--variants=hournas,random,no_stage2,random_best_of_k',
            '--seeds=2', '--search_epochs=0', '--max_steps_per_epoch=2',
            '--proposal_iters=50', '--train_epochs=1', '--random_k=2',
            '--train_examples=200', '--validation_fraction=0.2']
    res = run_python('tools/ablate.py', *args, timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads((out / 'results.json').read_text())
    rows = {'hournas', 'random', 'no_stage2', 'random_best_of_k'}
    assert set(data['rows']) == rows
    assert all(r['n'] == 2 for r in data['rows'].values())
    assert data['command'] == 'python tools/ablate.py ' + ' '.join(args)
    cells = {v: {r['seed']: r for r in rs}
             for v, rs in data['results'].items()}
    # Two workers, one table: each worker's progress line counts all cells.
    counts = re.findall(r'(\d)/8 cells done', res.stdout)
    assert len(counts) == 8 and counts[-1] == '8', res.stdout
    assert res.stdout.count('| variant |') == 1
    # The paired statistics, per row against the default.
    assert set(data['statistics']) == rows - {'hournas'}
    for variant, c in data['statistics'].items():
        assert c['n'] == 2 and c['df'] == 1 and c['seeds'] == [0, 1]
        diffs = [cells['hournas'][s]['test_accuracy']
                 - cells[variant][s]['test_accuracy'] for s in (0, 1)]
        assert c['mean_difference'] == pytest.approx(sum(diffs) / 2)
        if c['t_p'] is None:
            assert c['t_note'] and c['holm_t_p'] is None
        else:
            assert c['ci_low'] <= c['mean_difference'] <= c['ci_high']
            assert 0 <= c['t_p'] <= c['holm_t_p'] <= 1
        if c['wilcoxon_p'] is None:
            assert 'zero' in c['wilcoxon_note']
        else:  # 2 seeds: the exact p is at least 0.5, and says so
            assert 0.5 <= c['wilcoxon_p'] <= c['holm_wilcoxon_p'] <= 1
            assert 'cannot fall below' in c['wilcoxon_note']
    assert len(data['conclusion']) == 3
    assert data['conclusion'][0].startswith('HourNAS ')
    for seed in (0, 1):
        search_dir = out / 'hournas' / f'seed{seed}' / 'search'
        search = cells['hournas'][seed]
        assert search['within_tolerance'] and search['search_seconds'] > 0
        assert (search_dir / 'supernet.json').exists()
        stage1 = json.loads((search_dir / 'stage1.json').read_text())
        # Random: uniform within the budget, retrained as recorded.
        random_cell = cells['random'][seed]
        assert random_cell['within_tolerance']
        for obj, target in TARGETS.items():
            assert abs(random_cell['achieved'][obj] - target) <= \
                0.03 * target
        assert 0 < random_cell['share_within_tolerance'] < 1
        metrics = json.loads((out / 'random' / f'seed{seed}' / 'train' /
                              'metrics.json').read_text())
        assert metrics['architecture'] == random_cell['architecture']
        assert metrics['epochs'] == 1 and metrics['num_train'] == 200
        assert metrics['eval_split'].startswith('train[')
        assert random_cell['test_accuracy'] == metrics['test_accuracy']
        # No stage 2: a proposal of the default search's own stage1.json.
        control = cells['no_stage2'][seed]
        assert 0 <= control['proposal'] < len(stage1['proposals']) == 8
        ops = control['architecture'].split(':')[1].split(',')
        assert all(ops[int(i)] == op for i, op in
                   stage1['vital_ops'].items())
        assert control['search_seconds'] >= stage1['seconds']['vital']
        # Best of k: the supernet's best estimate, with the vital ops the
        # search fixed.
        best = cells['random_best_of_k'][seed]
        assert len(best['candidates']) == len(best['estimates']) == 2
        assert all(0 <= e <= 1 for e in best['estimates'])
        assert best['estimates'][best['chosen']] == max(best['estimates'])
        assert best['architecture'] == best['candidates'][best['chosen']]
        vital = json.loads((search_dir / 'arch.json').read_text())[
            'search']['vital_ops']
        ops = best['architecture'].split(':')[1].split(',')
        assert all(ops[int(i) - 1] == op for i, op in vital.items())
    # Paired retraining: per seed one recipe, one subset, the held-out
    # split; only the architecture differs.
    for seed in (0, 1):
        configs = [json.loads((out / v / f'seed{seed}' / 'train' /
                               'train_config.json').read_text())
                   for v in data['rows']]
        for c in configs:
            assert c['seed'] == seed and c['train_examples'] == 200
            assert c['validation_fraction'] == 0.2
            assert {k: v for k, v in c.items() if k not in (
                'arch', 'arch_name', 'output_dir')} == {
                k: v for k, v in configs[0].items() if k not in (
                    'arch', 'arch_name', 'output_dir')}
    # Each child gave TensorFlow's pools its share of the cores.
    share = threads.share(2)
    for variant in rows:
        for seed in (0, 1):
            log = (out / variant / f'seed{seed}' / 'job.log').read_text()
            assert f'{share} thread(s) per TensorFlow pool (2 cell(s) at ' \
                'a time' in log, (variant, seed)
    assert data['evaluated_on'].startswith('held-out validation split')
    table = (out / 'ablation.md').read_text()
    assert 'not the test split' in table and table in res.stdout
    assert '| random (uniform, within tolerance) | baseline |' in table
    # Rerun with --table_only: the finished cells are kept, not run again,
    # and the table is the same; only the footer's time of writing and
    # load average may differ.
    res = run_python('tools/ablate.py', *args, '--table_only', timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not re.search(r'seed \d: started', res.stdout), res.stdout
    again = json.loads((out / 'results.json').read_text())
    assert again['results'] == data['results']
    rewritten = (out / 'ablation.md').read_text()
    assert rewritten.split('Command:')[0] == table.split('Command:')[0]
    assert f'started {data["started"]}' in rewritten
    assert 'TensorFlow 2.' in rewritten and 'commit ' in rewritten


def test_set_up_cell_takes_the_share_and_turns_grappler_off():
    """A cell's child: its share of the cores for both pools and the
    search's graph settings, in a fresh process."""
    res = run_python('-c', (
        'from hournas_tf.experiments import ablation\n'
        'print(ablation.set_up_cell(1000))\n'
        'import tensorflow as tf\n'
        'tf.constant(1.0) + 1.0\n'
        'print(tf.config.threading.get_intra_op_parallelism_threads(),'
        ' tf.config.threading.get_inter_op_parallelism_threads(),'
        ' tf.config.optimizer.get_experimental_options()'
        "['disable_meta_optimizer'])\n"), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split('\n')[:2] == [
        '1 thread(s) per TensorFlow pool (1000 cell(s) at a time on '
        f'{threads.cores()} core(s))', '1 1 True']
