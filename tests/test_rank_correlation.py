"""tools/rank_correlation.py (experiments/rank_correlation.py): can the
supernet rank architectures?"""

import dataclasses
import json
import os
import pathlib
import shutil

import numpy as np
import pytest
from conftest import run_module
from scipy import stats

from hournas_tf.common import jsonio
from hournas_tf.common.errors import UserError
from hournas_tf.experiments import rank_correlation as rank
from hournas_tf.fuzzing import check_refused
from hournas_tf.nas import config as config_lib
from hournas_tf.spaces.architecture import Architecture

RNG = np.random.default_rng(7)
X = RNG.normal(size=20)
Y = X + RNG.normal(scale=0.7, size=20)


def test_kendall_and_spearman_are_scipys():
    assert rank.kendall(X, Y) == pytest.approx(stats.kendalltau(X, Y)[0])
    assert rank.spearman(X, Y) == pytest.approx(stats.spearmanr(X, Y)[0])
    assert rank.kendall([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    result = rank.correlations(X, Y, resamples=500, seed=3)
    assert result['n'] == 20
    assert result['kendall_tau'] == pytest.approx(stats.kendalltau(X, Y)[0])
    assert result['kendall_p'] == pytest.approx(stats.kendalltau(X, Y)[1])
    assert result['spearman_rho'] == pytest.approx(stats.spearmanr(X, Y)[0])
    assert result['spearman_p'] == pytest.approx(stats.spearmanr(X, Y)[1])
    assert result['kendall_ci'] == rank.bootstrap_ci(X, Y, rank.kendall,
                                                     500, 3)


def test_bootstrap_ci_holds_the_estimate_and_is_seeded():
    low, high = rank.bootstrap_ci(X, Y, rank.kendall, 1000, seed=0)
    assert low < rank.kendall(X, Y) < high
    assert -1 <= low < high <= 1
    assert rank.bootstrap_ci(X, Y, rank.kendall, 1000, seed=0) == (low, high)
    assert rank.bootstrap_ci(X, Y, rank.kendall, 1000, seed=1) != (low, high)
    # Against a direct percentile bootstrap with the same draws.
    picks = np.random.default_rng(0).integers(0, 20, (1000, 20))
    values = [stats.kendalltau(X[p], Y[p])[0] for p in picks]
    assert (low, high) == pytest.approx(tuple(np.percentile(values,
                                                            [2.5, 97.5])))
    # Wider at 99%, narrower with more data of the same relation.
    wide = rank.bootstrap_ci(X, Y, rank.kendall, 1000, seed=0, level=0.99)
    assert wide[0] <= low and wide[1] >= high
    # Resamples with a constant column are dropped, not NaN.
    ci = rank.bootstrap_ci([1, 1, 1, 2], [1, 2, 3, 4], rank.spearman, 200)
    assert np.isfinite(ci).all()
    assert np.isnan(rank.bootstrap_ci([1, 1, 1], [1, 2, 3], rank.kendall,
                                      50)).all()


def test_progress_gives_the_time_left():
    assert rank.progress(2, 5, 90.0) == '2/5 retrained; about 4.5 min left'
    assert rank.progress(5, 5, 60.0) == '5/5 retrained'
    assert rank.progress(0, 5, None) == '0/5 retrained'


def test_retraining_noise_by_hand():
    """Three architectures about 10 points apart, the second seed about 2
    points above the first for each: noise, seed effect and spread by
    hand (architecture + seed + residual)."""
    a = [[0.80, 0.83], [0.90, 0.91], [0.70, 0.72]]
    noise = rank.retraining_noise(a, resamples=200)
    # Means: architectures .815 .905 .71, seeds .80 .82, all .81; the
    # residuals -.005 .005 / .005 -.005 / 0 0 over (3-1)(2-1) = 2 df.
    assert noise['noise_sd'] == pytest.approx(0.00005 ** 0.5)
    assert noise['seed_effect_sd'] == pytest.approx(0.0002 ** 0.5)
    assert noise['means_sd'] == pytest.approx(0.009525 ** 0.5)
    assert noise['architecture_sd'] == pytest.approx(0.0095 ** 0.5)
    assert noise['reliability_one'] == pytest.approx(0.0095 / 0.00955)
    assert noise['reliability_mean'] == pytest.approx(0.0095 / 0.009525)
    # F = seeds x var(means) / noise variance = 2 x 0.009525 / 0.00005.
    assert noise['f'] == pytest.approx(381.0)
    assert noise['f_df'] == [2, 2]
    assert noise['f_p'] == pytest.approx(1 / 382)  # F(2, 2): 1 / (1 + F)
    assert noise['seed_kendall_tau'] == pytest.approx(1.0)
    assert noise['architectures'] == 3 and noise['seeds'] == 2
    # Seeds that disagree, architectures alike: nothing to rank.
    flat = rank.retraining_noise([[0.80, 0.83], [0.83, 0.80], [0.81, 0.82],
                                  [0.82, 0.81]], resamples=200)
    assert flat['noise_sd'] == pytest.approx((0.001 / 3) ** 0.5)
    assert flat['seed_effect_sd'] == 0.0
    assert flat['architecture_sd'] == 0.0
    assert flat['reliability_one'] == 0.0 and flat['f_p'] == 1.0
    assert flat['seed_kendall_tau'] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match='3 architectures and 2 seeds'):
        rank.retraining_noise([[0.8], [0.9], [0.7]])


def _arch(ops):
    return Architecture('efficientnet', tuple(ops), image_size=32,
                        num_classes=10, width_multiplier=0.25)


def _search():
    return config_lib.preset('demo')


def test_plan_takes_the_family_then_random_archs_of_trained_ops(tmp_path):
    from hournas_tf.nas import search_lib

    space = search_lib.search_space(_search())
    fixed = {i: space.layers[i].candidates[-1] for i in space.vital_layers}
    trained = {i: {fixed[i]} if i in fixed else
               set(space.layers[i].candidates[:2])
               for i in range(len(space.layers))}
    good = [fixed.get(i) or space.layers[i].candidates[0]
            for i in range(len(space.layers))]
    bad = list(good)
    free = [i for i in range(len(space.layers)) if i not in fixed]
    bad[free[0]] = space.layers[free[0]].candidates[-1]
    (tmp_path / 'run' / 'family').mkdir(parents=True)
    members = [(0, good), (1, bad), (2, good), (3, good)]
    jsonio.write_json(tmp_path / 'run' / 'family' / 'family.json', [
        {'proposal': j, 'architecture': _arch(ops).to_string(),
         'within_tolerance': j != 3} for j, ops in members])
    config = rank.RankConfig(run_dir=str(tmp_path / 'run'),
                             output_dir=str(tmp_path / 'out'), num_archs=6)
    assert [p for p, _ in rank.family(config.run_dir)] == [[0, 2], [1]]
    rows, share = rank.plan(config, dataclasses.replace(
        _search(), tolerance=0.5), trained, fixed)
    assert [r['source'] for r in rows] == ['family'] * 2 + ['random'] * 4
    assert [r['index'] for r in rows] == list(range(6))
    assert rows[0]['proposals'] == [0, 2] and rows[0]['all_ops_trained']
    assert not rows[1]['all_ops_trained']
    assert rows[1]['untrained_ops'] == [f'{free[0]}:{bad[free[0]]}']
    assert len({r['architecture'] for r in rows}) == 6
    assert 0 < share <= 1
    for row in rows[2:]:
        arch = Architecture.from_string(row['architecture'])
        assert row['all_ops_trained']
        assert all(arch.ops[i] in trained[i] for i in range(len(arch.ops)))
        assert row['name'] == f'arch{row["index"]:02d}_random'
    assert rank.untrained(_arch(good), trained) == []


def _fake_run(tmp_path, accuracies, trained=None):
    """An output folder with finished architectures: (inherited, test)
    or (inherited, [test per seed])."""
    tmp_path.mkdir(exist_ok=True)
    seeds = max(len(t) if isinstance(t, list) else 1
                for _, t in accuracies)
    config = rank.RankConfig(run_dir='run', output_dir=str(tmp_path),
                             num_archs=len(accuracies) + 1, bootstrap=200,
                             retrain_seeds=seeds)
    trained = trained or [True] * len(accuracies)
    jsonio.write_json(tmp_path / rank.CONFIG_FILE,
                      dataclasses.asdict(config))
    rows = [{'index': k, 'name': f'arch{k:02d}_family', 'source': 'family'
             if k < 2 else 'random', 'proposals': [], 'architecture': 'x',
             'macs': 1, 'params': 1, 'all_ops_trained': ok,
             'untrained_ops': [] if ok else ['0:k5']}
            for k, ok in enumerate(trained + [True])]
    jsonio.write_json(tmp_path / rank.ARCHS_FILE, {
        'architectures': rows, 'random_share_within_tolerance': 0.1,
        'fixed_ops': {}, 'trained_ops': {}})
    for k, (inherited, tests) in enumerate(accuracies):
        (tmp_path / f'arch{k:02d}').mkdir()
        jsonio.write_json(tmp_path / f'arch{k:02d}' / rank.ESTIMATE_FILE,
                          {'inherited_accuracy': inherited})
        tests = tests if isinstance(tests, list) else [tests]
        for seed, test in zip(rank.seeds(config), tests):
            folder = pathlib.Path(rank.train_dir(config, k, seed))
            folder.mkdir()
            jsonio.write_json(folder / 'metrics.json', {
                'test_accuracy': test, 'wall_seconds': 3.0,
                'eval_split': 'test', 'num_train': 64})
    return config


def test_collect_uses_finished_rows_whose_ops_were_trained(tmp_path,
                                                           monkeypatch):
    accuracies = [(0.5, 0.8), (0.6, 0.85), (0.55, 0.9), (0.7, 0.95),
                  (0.9, 0.1)]
    config = _fake_run(tmp_path, accuracies, [True] * 4 + [False])
    results = rank.collect(config)
    assert results['num_planned'] == 6  # the last one is unfinished
    assert len(results['architectures']) == 5 and results['num_scored'] == 4
    x, y = zip(*accuracies[:4])
    assert results['statistics']['kendall_tau'] == pytest.approx(
        stats.kendalltau(x, y)[0])
    assert results['inherited_range'] == [0.5, 0.7]
    few = rank.collect(_fake_run(tmp_path / 'few', accuracies[:2]))
    assert few['statistics'] is None
    monkeypatch.setattr(rank, 'run_search_config', lambda run_dir: None)
    with pytest.raises(UserError, match='holds no started rank'):
        rank.finished(dataclasses.replace(config, output_dir=str(
            tmp_path / 'none')))
    assert rank.finished(config) == results


def test_collect_takes_the_mean_of_the_seeds_and_their_noise(tmp_path):
    accuracies = [(0.5, [0.80, 0.82]), (0.6, [0.90, 0.92]),
                  (0.55, [0.70, 0.72]), (0.7, [0.60])]  # the last unfinished
    config = _fake_run(tmp_path, accuracies)
    results = rank.collect(config)
    rows = results['architectures']
    assert [r['test_accuracies'] for r in rows] == [
        [0.80, 0.82], [0.90, 0.92], [0.70, 0.72]]
    assert [r['test_accuracy'] for r in rows] == pytest.approx(
        [0.81, 0.91, 0.71])
    assert results['statistics']['kendall_tau'] == pytest.approx(
        stats.kendalltau([0.5, 0.6, 0.55], [0.81, 0.91, 0.71])[0])
    assert results['retraining_noise'] == rank.retraining_noise(
        [r['test_accuracies'] for r in rows], 200, 0)
    assert os.path.isfile(tmp_path / 'arch01' / 'train_seed1' /
                          'metrics.json')
    one = rank.collect(_fake_run(tmp_path / 'one', [
        (0.5, 0.8), (0.6, 0.85), (0.55, 0.9)]))
    assert one['retraining_noise'] is None
    # An untrained op leaves the row out of the correlations only: the
    # retraining's noise does not depend on the supernet.
    partly = rank.collect(_fake_run(tmp_path / 'partly', accuracies[:3],
                                    [True, True, False]))
    assert partly['statistics'] is None and partly['num_scored'] == 2
    assert partly['retraining_noise'] == results['retraining_noise']


def _reported(config):
    """`collect`'s results with the provenance `write_report` adds."""
    return dict(rank.collect(config), command='python -m tools.x',
                date='2026-12-03T19:00:00+00:00', commit='abc1234',
                machine={'cpu': 'CPU', 'cpu_count': 2, 'python': '3.11',
                         'tensorflow': '2.21', 'keras': '3.15',
                         'numpy': '2.0', 'scipy': '1.17'})


def test_summary_and_scatter_show_every_number(tmp_path):
    config = _fake_run(tmp_path, [(0.5, 0.8), (0.6, 0.85), (0.55, 0.9),
                                  (0.7, 0.95)])
    results = _reported(config)
    text = rank.summary(results)
    s = results['statistics']
    for value in (f'{s["kendall_tau"]:.3f}', f'{s["spearman_rho"]:.3f}',
                  f'{s["kendall_ci"][0]:.2f}', '`python -m tools.x`',
                  '2026-12-03', 'abc1234', 'TensorFlow 2.21', '55.00%',
                  '95.00%', 'arch03_family'):
        assert value in text, value
    path = tmp_path / 'scatter.png'
    rank.scatter(results, str(path))
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'Retraining noise' not in text and 'per seed' not in text


def test_summary_with_seeds_shows_the_noise(tmp_path):
    config = _fake_run(tmp_path, [(0.5, [0.80, 0.82]), (0.6, [0.90, 0.93]),
                                  (0.55, [0.70, 0.71])])
    results = _reported(config)
    text = rank.summary(results)
    n = results['retraining_noise']
    for value in ('2 seed(s) each', '3 architectures x 2 seeds',
                  f'{100 * n["noise_sd"]:.2f} points',
                  f'{100 * n["seed_effect_sd"]:.2f} points',
                  f'{100 * n["architecture_sd"]:.2f} points',
                  f'{n["reliability_one"]:.2f}', 'F(2, 2)',
                  f'{n["f"]:.2f}', f'{n["seed_kendall_tau"]:.3f}',
                  '| retrained, per seed |', '90.00%, 93.00%',
                  '| arch01_family | family | yes | 60.00% | 91.50% |'):
        assert value in text, value
    path = tmp_path / 'scatter.png'
    rank.scatter(results, str(path))
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_the_labels_name_the_split_the_retraining_was_scored_on(tmp_path):
    config = _fake_run(tmp_path, [(0.5, 0.8), (0.6, 0.85), (0.55, 0.9)])
    results = _reported(config)
    assert rank.eval_label(results) == 'test'
    assert '| inherited (validation) | retrained (test) |' in \
        rank.summary(results)
    held = dict(results, architectures=[
        dict(r, eval_split='train[54000:60000]')
        for r in results['architectures']])
    assert rank.eval_label(held) == 'held-out train[54000:60000]'
    assert '| retrained (held-out train[54000:60000]) |' in \
        rank.summary(held)
    mixed = dict(held, architectures=held['architectures'][:1]
                 + results['architectures'][1:])
    assert rank.eval_label(mixed) == ('mixed splits: test, '
                                      'train[54000:60000]')


def test_check_output_resumes_the_same_run_only(tmp_path):
    config = rank.RankConfig(run_dir='run', output_dir=str(tmp_path / 'o'))
    rank.check_output(config)
    rank.check_output(config)  # the same settings: resumed
    with pytest.raises(UserError, match='holds a run with num_archs=20, '
                       'not 8; use another --output_dir'):
        rank.check_output(dataclasses.replace(config, num_archs=8))
    with pytest.raises(UserError, match='retrain_seeds=1, not 2'):
        rank.check_output(dataclasses.replace(config, retrain_seeds=2))
    rank.check_output(dataclasses.replace(config, workers=2))  # free
    # A run started before retrain_seeds existed: it had one seed.
    stored = jsonio.read_json(tmp_path / 'o' / rank.CONFIG_FILE, 'config')
    del stored['retrain_seeds'], stored['workers']
    jsonio.write_json(tmp_path / 'o' / rank.CONFIG_FILE, stored)
    rank.check_output(config)
    (tmp_path / 'other').mkdir()
    (tmp_path / 'other' / 'x').write_text('')
    with pytest.raises(UserError, match='exists and is not a rank'):
        rank.check_output(dataclasses.replace(
            config, output_dir=str(tmp_path / 'other')))


def test_report_only_takes_the_settings_the_run_started_with(
        tmp_path, monkeypatch):
    monkeypatch.setattr(rank, 'run_search_config', lambda run_dir: None)
    out = str(tmp_path / 'o')
    started = rank.RankConfig(run_dir='run', output_dir=out, num_archs=12,
                              train_epochs=2, retrain_seeds=2, workers=2)
    rank.check_output(started)
    stored = jsonio.read_json(tmp_path / 'o' / rank.CONFIG_FILE, 'config')
    del stored['workers']  # a run started before the setting existed
    stored['from_a_later_version'] = 1
    jsonio.write_json(tmp_path / 'o' / rank.CONFIG_FILE, stored)
    again = rank.stored_config('run', out)
    assert again == dataclasses.replace(started, workers=1)
    rank.check_output(again)  # the report's settings are the run's
    with pytest.raises(UserError, match='holds no started rank-correlation'):
        rank.stored_config('run', str(tmp_path / 'none'))


@pytest.mark.parametrize('args, expect', [
    (['nowhere', '--output_dir=o'], "search run 'nowhere' is not a folder"),
    (['.', '--output_dir=o'], 'has no supernet.json'),
    (['.'], '--output_dir is required'),
    ([], 'give one search output folder'),
    (['.', '--output_dir=o', '--num_archs=2'], 'num_archs'),
    (['.', '--output_dir=o', '--retrain_seeds=0'],
     '--retrain_seeds=0: 0 is not a positive integer'),
    (['.', '--output_dir=o', '--workers=0'],
     '--workers=0: 0 is not a positive integer'),
    (['.', '--output_dir=o', '--report_only'], 'has no supernet.json'),
])
def test_bad_input_is_refused_in_one_line(tmp_path, args, expect):
    res = run_module('tools.rank_correlation', *args, cwd=tmp_path,
                     timeout=300)
    check_refused(res, expect)
    assert not (tmp_path / 'o').exists()


@pytest.mark.large
def test_rank_correlation_end_to_end_and_resumed(tiny_search, tmp_path):
    """3 architectures of the tiny search, 2 seeds each, 2 at a time, 1
    epoch on 64 images; a rerun retrains nothing."""
    run = tmp_path / 'run'
    shutil.copytree(tiny_search[0], run)
    args = [str(run), f'--output_dir={tmp_path / "rank"}', '--num_archs=3',
            '--epochs=1', '--train_examples=64', '--estimate_batches=2',
            '--bootstrap=200', '--retrain_seeds=2', '--workers=2']
    too_many = run_module('tools.rank_correlation', *args[:2],
                          '--train_examples=100000', timeout=900)
    check_refused(too_many, 'train_examples 100000 is more than')
    assert not (tmp_path / 'rank').exists()
    res = run_module('tools.rank_correlation', *args, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / 'rank'
    results = json.loads((out / rank.RESULTS_FILE).read_text())
    assert len(results['architectures']) == 3
    sources = [r['source'] for r in results['architectures']]
    assert 'family' in sources
    for row in results['architectures']:
        assert 0 <= row['inherited_accuracy'] <= 1
        assert len(row['test_accuracies']) == 2
        assert row['test_accuracy'] == pytest.approx(
            sum(row['test_accuracies']) / 2)
        assert row['num_train'] == 64 and row['eval_split'] == 'test'
        folder = out / f'arch{row["index"]:02d}'
        assert os.path.isfile(folder / 'train' / 'model.keras')
        assert os.path.isfile(folder / 'train_seed1' / 'model.keras')
        # The second seed is another retraining, not a copy.
        first = json.loads((folder / 'train' / 'train_config.json')
                           .read_text())
        second = json.loads((folder / 'train_seed1' / 'train_config.json')
                            .read_text())
        assert (first['seed'], second['seed']) == (0, 1)
    scored = [r for r in results['architectures'] if r['all_ops_trained']]
    assert results['num_scored'] == len(scored)
    if len(scored) == 3:
        assert results['statistics']['n'] == 3
        assert results['retraining_noise']['seeds'] == 2
    assert '6/6 retrained' in res.stdout
    assert 'thread(s) per TensorFlow pool (2 cell(s)' in res.stdout
    assert (out / rank.SCATTER_FILE).stat().st_size > 1000
    text = (out / rank.SUMMARY_FILE).read_text()
    assert results['commit'] in text and 'python -m tools.rank_correlation' \
        in text
    again = run_module('tools.rank_correlation', *args[:-1], timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert '6 retrained before' in again.stdout
    assert 'retrained;' not in again.stdout
    # --report_only needs none of the run's flags: it reads them.
    report = run_module('tools.rank_correlation', *args[:2],
                        '--report_only', timeout=900)
    assert report.returncode == 0, report.stderr[-3000:]
    rewritten = json.loads((out / rank.RESULTS_FILE).read_text())
    assert rewritten['config'] == results['config']
    assert rewritten['statistics'] == results['statistics']


@pytest.mark.parametrize('name', ['rank_correlation_fashion_mnist.json',
                                  'rank_noise_fashion_mnist.json',
                                  'rank_noise_fashion_mnist_e4.json',
                                  'rank_noise_fashion_mnist_22m_validation'
                                  '.json'])
def test_committed_fashion_mnist_ranking_is_the_tools_output(name):
    """docs/rank_correlation.md holds the Fashion-MNIST rankings of the
    committed JSON files: the statistics recomputed with scipy from their
    accuracies (and the retraining noise from every seed's), and the
    page's tables and range are the tool's own summary lines."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = jsonio.read_json(os.path.join(repo, 'docs', name), 'ranking')
    assert data['command'].startswith('python -m tools.rank_correlation ')
    assert '--train_examples=12000' in data['command']
    scored = [r for r in data['architectures'] if r['all_ops_trained']]
    # Settings are chosen on the held-out part of the training split
    # (the search's --validation_fraction=0.1), final numbers on the test.
    split = 'train[54000:60000]' if 'validation' in name else 'test'
    assert {r['eval_split'] for r in data['architectures']} == {split}
    s = data['statistics']
    assert s['n'] == len(scored) == data['num_scored'] >= 3
    x = [r['inherited_accuracy'] for r in scored]
    y = [r['test_accuracy'] for r in scored]
    assert s['kendall_tau'] == pytest.approx(stats.kendalltau(x, y)[0])
    assert s['spearman_rho'] == pytest.approx(stats.spearmanr(x, y)[0])
    assert data['inherited_range'] == [min(x), max(x)]
    noise = data.get('retraining_noise')
    if data['config'].get('retrain_seeds', 1) > 1:
        assert y == pytest.approx([np.mean(r['test_accuracies'])
                                   for r in scored])
        seen = [r['test_accuracies'] for r in data['architectures']]
        assert all(len(a) == data['config']['retrain_seeds'] for a in seen)
        again = rank.retraining_noise(seen, data['config']['bootstrap'],
                                      data['config']['seed'])
        assert set(again) == set(noise)
        for key, value in again.items():
            assert np.asarray(noise[key]) == pytest.approx(
                np.asarray(value)), key
    else:
        assert noise is None
    doc = open(os.path.join(repo, 'docs', 'rank_correlation.md')).read()
    lines = [line for line in rank.summary(data).splitlines()
             if line.startswith(('|', 'Inherited', 'Retraining noise'))]
    # The statistics (4 lines with the header), the architectures' table
    # (2 + one per architecture) and the noise table (3 + 8 rows).
    assert len(lines) == 4 + 1 + 2 + len(data['architectures']) + (
        11 if noise else 0)
    for line in lines:
        assert line in doc, line
