"""tools/ablate.py --recipe_epochs (experiments/recipe_length.py): how
long retraining must be to rank the architectures."""

import json
import os

import pytest
from conftest import run_python
from scipy import stats as scipy_stats

from hournas_tf.common import jsonio
from hournas_tf.common import threads
from hournas_tf.experiments import ablation
from hournas_tf.experiments import recipe_length
from hournas_tf.fuzzing import check_refused
from hournas_tf.nas import config as config_lib

TARGETS = {'macs': 10e6, 'params': 0.25e6}
# Validation accuracy of (variant, seed) after 1 and 3 epochs: at 1 epoch
# the random row is ahead on seed 1, at 3 the search wins every seed.
ACCURACY = {
    1: {('hournas', 0): 0.80, ('random', 0): 0.78, ('hournas', 1): 0.70,
        ('random', 1): 0.76, ('hournas', 2): 0.82, ('random', 2): 0.79},
    3: {('hournas', 0): 0.90, ('random', 0): 0.86, ('hournas', 1): 0.88,
        ('random', 1): 0.87, ('hournas', 2): 0.91, ('random', 2): 0.85},
}


def config(tmp_path, **kw):
    search = config_lib.preset('demo', targets=TARGETS,
                               validation_fraction=0.2)
    kw.setdefault('seeds', (0, 1, 2))
    kw.setdefault('variants', ('hournas', 'random'))
    return ablation.AblationConfig(output_dir=str(tmp_path / 'recipe'),
                                   search=search, train_examples=256, **kw)


def fake_runs(c, accuracy=ACCURACY):
    for epochs, rows in accuracy.items():
        for (variant, seed), acc in rows.items():
            path = recipe_length.run_dir(c, variant, seed, epochs)
            os.makedirs(path)
            jsonio.write_json(os.path.join(path, 'metrics.json'),
                              {'test_accuracy': acc,
                               'eval_split': 'validation'})


def test_summarize_compares_every_length_with_the_longest(tmp_path):
    c = config(tmp_path)
    fake_runs(c)
    summary = recipe_length.summarize(c, [3, 1, 3])
    assert summary['lengths'] == [1, 3]
    keys = sorted(ACCURACY[1])
    assert sorted(summary['accuracy'][1]) == [f'{v}:{s}' for v, s in keys]
    want = scipy_stats.kendalltau([ACCURACY[1][k] for k in keys],
                                  [ACCURACY[3][k] for k in keys]).statistic
    assert summary['kendall'][1] == pytest.approx(want)
    assert summary['kendall'][3] == pytest.approx(1.0)
    gap1 = summary['gaps'][1]['random']
    assert gap1['n'] == 3
    assert gap1['mean'] == pytest.approx((0.02 - 0.06 + 0.03) / 3)
    assert summary['gaps'][3]['random']['mean'] == pytest.approx(
        (0.04 + 0.01 + 0.06) / 3)
    assert summary['means'][3]['hournas'] == pytest.approx(
        (0.90 + 0.88 + 0.91) / 3)


def test_unfinished_runs_are_left_out_of_the_comparison(tmp_path):
    c = config(tmp_path)
    partial = {1: ACCURACY[1], 3: {k: v for k, v in ACCURACY[3].items()
                                   if k[1] == 0}}
    fake_runs(c, partial)
    summary = recipe_length.summarize(c, [1, 3])
    assert sorted(summary['accuracy'][3]) == ['hournas:0', 'random:0']
    # Two architectures at both lengths: too few for a ranking.
    assert summary['kendall'][1] is None
    assert summary['gaps'][3]['random']['n'] == 1
    assert recipe_length.jobs(c, [1, 3]) == [
        ('hournas', 1, 3), ('random', 1, 3), ('hournas', 2, 3),
        ('random', 2, 3)]


def test_the_report_has_the_table_figure_and_provenance(tmp_path):
    c = config(tmp_path)
    fake_runs(c)
    recipe_length.write_report(c, [1, 3], 'SRC', 'python tools/ablate.py X')
    out = tmp_path / 'recipe'
    data = json.loads((out / recipe_length.RESULTS_FILE).read_text())
    assert data['lengths'] == [1, 3] and data['source'] == 'SRC'
    assert data['validation_fraction'] == 0.2
    assert data['accuracy']['3']['random:2'] == 0.85
    assert 'tensorflow' in json.dumps(data['machine']).lower()
    md = (out / recipe_length.SUMMARY_FILE).read_text()
    assert '`python tools/ablate.py X`' in md
    kendall1 = data['kendall']['1']
    assert f'| 1 | 6 | {kendall1:.3f} | 0.7733 | 0.7767 | -0.0033 (n=3) |' \
        in md
    assert '| 3 | 6 | 1.000 | 0.8967 | 0.8600 | +0.0367 (n=3) |' in md
    assert (out / recipe_length.FIGURE_FILE).stat().st_size > 1000


def test_check_needs_a_validation_split_lengths_and_finished_cells(
        tmp_path):
    source = tmp_path / 'source'
    (source / 'hournas' / 'seed0').mkdir(parents=True)
    (source / 'hournas' / 'seed0' / 'result.json').write_text('{}')
    c = config(tmp_path, seeds=(0,), variants=('hournas',))
    recipe_length.check(c, [1, 2], str(source))
    no_val = config(tmp_path, seeds=(0,), variants=('hournas',))
    no_val = ablation.AblationConfig(
        output_dir=no_val.output_dir, search=config_lib.preset('demo'),
        seeds=(0,), variants=('hournas',))
    with pytest.raises(recipe_length.UserError, match='validation'):
        recipe_length.check(no_val, [1, 2], str(source))
    with pytest.raises(recipe_length.UserError, match='two or more'):
        recipe_length.check(c, [2, 2], str(source))
    with pytest.raises(recipe_length.UserError, match='not a folder'):
        recipe_length.check(c, [1, 2], str(tmp_path / 'nothing'))
    two = config(tmp_path, seeds=(0, 1), variants=('hournas',))
    with pytest.raises(recipe_length.UserError,
                       match='hournas seed 1 is not finished'):
        recipe_length.check(two, [1, 2], str(source))


@pytest.mark.parametrize('args, message', [
    (['--recipe_epochs=1,2'], 'needs --validation_fraction > 0'),
    (['--recipe_epochs=1,x', '--validation_fraction=0.1'],
     'recipe_epochs 1,x: give whole numbers'),
    (['--recipe_epochs=1,2', '--validation_fraction=0.1',
      '--architectures_from=/nonexistent'],
     "architectures_from '/nonexistent' is not a folder"),
])
def test_user_errors_are_one_line(args, message, tmp_path):
    out = tmp_path / 'recipe'
    res = run_python('tools/ablate.py', f'--output_dir={out}', *args,
                     timeout=300)
    check_refused(res, message)
    assert not out.exists()


@pytest.mark.large
def test_recipe_lengths_retrain_finished_cells_on_the_validation_split(
        tmp_path):
    """Two digits architectures (stand-ins for finished cells), each
    retrained at 1 and 2 epochs on 128 images; a rerun retrains
    nothing."""
    c = config(tmp_path)
    archs, _ = ablation.random_architecture(c, 0, count=2)
    source = tmp_path / 'source'
    for variant, arch in zip(('hournas', 'random'), archs):
        cell = source / variant / 'seed0'
        cell.mkdir(parents=True)
        jsonio.write_json(cell / 'result.json',
                          {'architecture': arch.to_string()})
    out = tmp_path / 'recipe'
    args = [f'--output_dir={out}', '--recipe_epochs=1,2',
            '--validation_fraction=0.2', '--seeds=1',
            '--variants=hournas,random', f'--architectures_from={source}',
            '--train_examples=128', '--target_macs=10e6',
            '--target_params=0.25e6']
    res = run_python('tools/ablate.py', *args, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    assert '4/4 done' in res.stdout
    # Each retraining's process gave TensorFlow's pools its share.
    assert res.stdout.count(
        f'{threads.share(2)} thread(s) per TensorFlow pool (2 cell(s) at a '
        'time') == 4, res.stdout
    for variant, arch in zip(('hournas', 'random'), archs):
        for epochs in (1, 2):
            metrics = recipe_length.metrics_of(c, variant, 0, epochs)
            assert metrics['eval_split'] != 'test'
            assert metrics['epochs'] == epochs
            assert metrics['num_train'] == 128
            assert metrics['architecture'] == arch.to_string()
    data = json.loads((out / recipe_length.RESULTS_FILE).read_text())
    assert sorted(data['accuracy']['2']) == ['hournas:0', 'random:0']
    assert (out / recipe_length.SUMMARY_FILE).read_text() in res.stdout
    again = run_python('tools/ablate.py', *args, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert '/4 done' not in again.stdout


def test_committed_fashion_mnist_recipe_lengths_are_the_tools_output():
    """docs/ablation_fashion_mnist.md holds the recipe-length table of the
    committed docs/ablation_fashion_mnist_recipe.json: every Kendall's tau
    recomputed from its accuracies, on the validation split."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = jsonio.read_json(os.path.join(
        repo, 'docs', 'ablation_fashion_mnist_recipe.json'), 'recipe')
    assert data['command'].startswith(
        'python tools/ablate.py --flagfile=configs/ablate_fashion_mnist.flags'
        ' --recipe_epochs=')
    assert data['validation_fraction'] > 0
    lengths = data['lengths']
    longest = data['accuracy'][str(lengths[-1])]
    assert len(longest) >= 4
    doc = open(os.path.join(repo, 'docs',
                            'ablation_fashion_mnist.md')).read()
    for e in lengths:
        row = data['accuracy'][str(e)]
        common = sorted(set(row) & set(longest))
        tau = scipy_stats.kendalltau([row[k] for k in common],
                                     [longest[k] for k in common]).statistic
        assert data['kendall'][str(e)] == pytest.approx(float(tau))
        assert f'| {e} | {len(row)} | {data["kendall"][str(e)]:.3f} |' in doc
