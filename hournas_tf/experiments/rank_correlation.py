"""Can the supernet rank? Inherited-weight accuracy against retrained
accuracy, for the architectures of one search run (issue 19, section 2).
`tools/rank_correlation.py` is its command.

Architectures: the run's family (one per proposal, duplicates once) and
uniform random ones within tolerance of the run's targets with the run's
vital ops, `num_archs` in all. Each gets

- its inherited-weight accuracy: the run's stage-2 supernet's weights,
  batch-norm statistics recalibrated on the search's weight split, accuracy
  on the search's architecture split (held out from the supernet's weight
  training, part of the training images; never the test split)
  (`ablation.estimate`, the random best-of-k row's scorer);
- its retrained test accuracy (`ablation.train_config`, the ablation's
  recipe, with `epochs` and an optional training subset), with
  `retrain_seeds` seeds (the mean is the architecture's accuracy).

With two seeds or more, the retraining's own noise is measured too
(`retraining_noise`): how far the seeds of one architecture spread
against how far the architectures do, and how well one retraining ranks
the architectures against another: a bound on how well any estimate can
be seen to rank them.

Ops no draw picked keep their initial weights (batch-norm gamma 0 with
`zero_init_residual`: the identity), so a score through them means
nothing. This module scores only what the supernet trained: random
architectures draw their free layers from the trained ops only
(`restore.trained_ops`), every row records `all_ops_trained`, and the
correlations use the rows whose ops were all trained.

Kendall's tau and Spearman's rho (scipy.stats) come with percentile
bootstrap 95% intervals (pairs resampled, numpy, seeded). Resumable: each
architecture has a folder `archNN/` with `estimate.json` and
`train/metrics.json` (`train_seed<s>/` for the further seeds); a rerun
skips what is done. The supernet work runs in one child process, each
retraining in its own (TensorFlow keeps every traced graph of a process
alive), `workers` at a time.
"""

import concurrent.futures
import dataclasses
import datetime
import multiprocessing
import os
import shutil
import statistics
import time
import warnings

import numpy as np

from hournas_tf.common import jsonio
from hournas_tf.common import provenance
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError

CONFIG_FILE = 'rank_config.json'
ARCHS_FILE = 'architectures.json'
ESTIMATE_FILE = 'estimate.json'
RESULTS_FILE = 'results.json'
SCATTER_FILE = 'scatter.png'
SUMMARY_FILE = 'summary.md'
LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class RankConfig:
    """What the experiment runs (the tool fills it from flags).
    `train_examples` 0 retrains on all training images (as in
    `data.DataConfig`); each architecture is retrained with the seeds
    `seed`, `seed + 1`, ... (`retrain_seeds` of them); `workers`
    retrainings run at a time (it changes no result)."""

    run_dir: str
    output_dir: str
    num_archs: int = 20
    train_epochs: int = 4
    train_examples: int = 0
    estimate_batches: int = 10
    seed: int = 0
    bootstrap: int = 2000
    retrain_seeds: int = 1
    workers: int = 1


# Settings a rerun may change: they change no result.
FREE_SETTINGS = ('output_dir', 'workers')


def log(message):
    runner.log(message, tag='rank')


# --- Statistics --------------------------------------------------------------


def kendall(x, y):
    """Kendall's tau-b of the pairs (x, y)."""
    from scipy import stats

    return float(stats.kendalltau(x, y).statistic)


def spearman(x, y):
    """Spearman's rho of the pairs (x, y)."""
    from scipy import stats

    return float(stats.spearmanr(x, y).statistic)


def bootstrap_ci(x, y, statistic, resamples=2000, seed=0, level=LEVEL):
    """Percentile bootstrap interval (low, high) of `statistic(x, y)`:
    pairs resampled with replacement, `resamples` times, seeded;
    resamples where it is undefined (constant values) are dropped (NaNs
    when none is left)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(x), (resamples, len(x)))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        values = np.array([statistic(x[p], y[p]) for p in picks])
    values = values[np.isfinite(values)]
    if not values.size:  # e.g. every estimate equal
        return float('nan'), float('nan')
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def correlations(x, y, resamples=2000, seed=0):
    """Kendall's tau and Spearman's rho of (x, y) with their p-values and
    bootstrap intervals."""
    from scipy import stats

    tau, rho = stats.kendalltau(x, y), stats.spearmanr(x, y)
    return {
        'n': len(x),
        'kendall_tau': float(tau.statistic),
        'kendall_p': float(tau.pvalue),
        'kendall_ci': bootstrap_ci(x, y, kendall, resamples, seed),
        'spearman_rho': float(rho.statistic),
        'spearman_p': float(rho.pvalue),
        'spearman_ci': bootstrap_ci(x, y, spearman, resamples, seed),
        'bootstrap_resamples': resamples, 'bootstrap_seed': seed,
        'level': LEVEL,
    }


def retraining_noise(accuracies, resamples=2000, seed=0):
    """The retraining's noise from `accuracies[a][k]` (architecture a,
    retraining seed k; at least 3 architectures and 2 seeds), as a
    two-way analysis without replication (architecture + seed + noise):
    a seed's common effect on every architecture (its data order; the
    ablation's rows are paired by seed, which removes it) apart from the
    noise that pairing leaves (the residual). Returns the noise's standard
    deviation, the seeds' common effect, the spread of the architectures'
    means and the part of it the noise cannot explain (var(means) -
    noise^2 / seeds, at least 0), the reliability of one retraining and
    of the mean (the share of their variance the architectures explain),
    the F-test of "the architectures differ" (scipy), and Kendall's tau
    of the first seed's accuracies against the second's, with its
    bootstrap interval: how well retraining ranks against itself."""
    from scipy import stats

    a = np.asarray(accuracies, float)
    n, num_seeds = a.shape
    if n < 3 or num_seeds < 2:
        raise ValueError(f'need at least 3 architectures and 2 seeds, got '
                         f'{n} and {num_seeds}')
    arch_means, seed_means = a.mean(axis=1), a.mean(axis=0)
    residual = a - arch_means[:, None] - seed_means[None, :] + a.mean()
    df_arch, df_noise = n - 1, (n - 1) * (num_seeds - 1)
    noise_var = float(np.sum(residual ** 2) / df_noise)
    means_var = float(np.var(arch_means, ddof=1))
    true_var = max(0.0, means_var - noise_var / num_seeds)
    f_value = num_seeds * means_var / noise_var if noise_var > 0 else \
        float('inf')
    tau = stats.kendalltau(a[:, 0], a[:, 1])

    def share(total):
        return true_var / total if total > 0 else float('nan')

    return {
        'architectures': n, 'seeds': num_seeds,
        'noise_sd': noise_var ** 0.5,
        'seed_effect_sd': float(np.std(seed_means, ddof=1)),
        'means_sd': means_var ** 0.5,
        'architecture_sd': true_var ** 0.5,
        'reliability_one': share(true_var + noise_var),
        'reliability_mean': share(means_var),
        'f': float(f_value),
        'f_p': float(stats.f.sf(f_value, df_arch, df_noise)),
        'f_df': [df_arch, df_noise],
        'seed_kendall_tau': float(tau.statistic),
        'seed_kendall_p': float(tau.pvalue),
        'seed_kendall_ci': bootstrap_ci(a[:, 0], a[:, 1], kendall,
                                        resamples, seed),
    }


# --- The architectures --------------------------------------------------------


def arch_dir(config, index):
    return os.path.join(config.output_dir, f'arch{index:02d}')


def seeds(config):
    """The retraining seeds of every architecture."""
    return [config.seed + k for k in range(config.retrain_seeds)]


def train_dir(config, index, seed):
    """The retraining folder of architecture `index` with `seed`:
    `train/` for the first seed, `train_seed<s>/` for the others."""
    name = 'train' if seed == config.seed else f'train_seed{seed}'
    return os.path.join(arch_dir(config, index), name)


def run_search_config(run_dir):
    """The `SearchConfig` of a finished search run (read only)."""
    from hournas_tf.nas import restore
    from hournas_tf.nas import search_lib

    if not os.path.isdir(run_dir):
        raise UserError(f'search run {run_dir!r} is not a folder; give the '
                        'output folder of python -m hournas_tf.search')
    restore.load_spec(run_dir)
    return search_lib.resume_config(run_dir, resume=False)


def ablation_config(config, search):
    """The `AblationConfig` whose scorer and recipe this reuses."""
    from hournas_tf.experiments import ablation

    return ablation.AblationConfig(
        output_dir=config.output_dir, search=search,
        train_epochs=config.train_epochs,
        estimate_batches=config.estimate_batches)


def family(run_dir):
    """[(proposals, Architecture)]: the run's family within tolerance,
    each architecture once with the proposals that gave it."""
    from hournas_tf.spaces.architecture import Architecture

    path = os.path.join(run_dir, 'family', 'family.json')
    if not os.path.isfile(path):
        return []
    found = {}
    for member in jsonio.read_json(path, 'family file'):
        if member.get('within_tolerance', True):
            found.setdefault(member['architecture'], []).append(
                member['proposal'])
    return [(props, Architecture.from_string(text))
            for text, props in found.items()]


def untrained(arch, trained):
    """The ops of `arch` (as 'layer:op') its supernet never trained."""
    return [f'{i}:{op}' for i, op in enumerate(arch.ops)
            if op not in trained.get(i, ())]


def plan(config, search, trained, fixed_ops):
    """The rows of architectures.json: the family, then random
    architectures from the trained ops, `num_archs` in all."""
    from hournas_tf.experiments import ablation
    from hournas_tf.resources import counting

    rows = [{'source': 'family', 'proposals': props, 'arch': arch}
            for props, arch in family(config.run_dir)][:config.num_archs]
    share = None
    want = config.num_archs - len(rows)
    if want:
        taken = {row['arch'].to_string() for row in rows}
        archs, share = ablation.random_architecture(
            ablation_config(config, search), config.seed, fixed_ops,
            want + len(taken), allowed_ops=trained)
        fresh = [a for a in archs if a.to_string() not in taken][:want]
        rows += [{'source': 'random', 'proposals': [], 'arch': a}
                 for a in fresh]
    out = []
    for k, row in enumerate(rows):
        arch = row.pop('arch')
        cost = counting.arch_cost(arch).total
        missing = untrained(arch, trained)
        out.append(dict(row, index=k, name=f'arch{k:02d}_{row["source"]}',
                        architecture=arch.to_string(),
                        macs=int(cost.macs), params=int(cost.params),
                        all_ops_trained=not missing, untrained_ops=missing))
    return out, share


def prepare(config):
    """Child process: architectures.json (once), then the inherited-weight
    accuracy of every architecture without its estimate.json."""
    from hournas_tf import data as data_lib
    from hournas_tf.experiments import ablation
    from hournas_tf.nas import restore
    from hournas_tf.spaces.architecture import Architecture

    search = run_search_config(config.run_dir)
    if config.train_examples:
        data_lib.dataset_info(data_lib.DataConfig(
            dataset=search.dataset, data_dir=search.data_dir,
            train_examples=config.train_examples))
        if config.train_examples < search.batch_size:
            raise UserError(f'train_examples {config.train_examples} is '
                            f'below the run\'s batch size '
                            f'{search.batch_size}; use at least that')
    path = os.path.join(config.output_dir, ARCHS_FILE)
    if not os.path.isfile(path):
        supernet = restore.load_supernet(config.run_dir)
        trained = restore.trained_ops(supernet)
        del supernet
        spec = restore.load_spec(config.run_dir)
        fixed = {int(i): op for i, op in spec['fixed_ops'].items()}
        rows, share = plan(config, search, trained, fixed)
        jsonio.write_json(path, {
            'architectures': rows, 'random_share_within_tolerance': share,
            'fixed_ops': spec['fixed_ops'],
            'trained_ops': {str(i): sorted(ops)
                            for i, ops in sorted(trained.items())}})
    rows = jsonio.read_json(path, 'architecture list')['architectures']
    todo = [r for r in rows if not os.path.isfile(
        os.path.join(arch_dir(config, r['index']), ESTIMATE_FILE))]
    if not todo:
        return
    start = time.perf_counter()
    archs = [Architecture.from_string(r['architecture']) for r in todo]
    scores = ablation.estimate(ablation_config(config, search),
                               config.run_dir, archs, search.seed)
    seconds = (time.perf_counter() - start) / len(todo)
    for row, score in zip(todo, scores):
        folder = arch_dir(config, row['index'])
        os.makedirs(folder, exist_ok=True)
        jsonio.write_json(os.path.join(folder, ESTIMATE_FILE), {
            'inherited_accuracy': score, 'split': 'search architecture '
            f'split (seed {search.seed})', 'seconds': seconds})
    log(f'inherited-weight accuracy of {len(todo)} architectures in '
        f'{seconds * len(todo):.0f}s')


def retrain(config, index, seed):
    """Child process: retrains architecture `index` with `seed` (resumed
    when interrupted); returns its metrics."""
    from hournas_tf.experiments import ablation
    from hournas_tf.spaces.architecture import Architecture
    from hournas_tf.training import train_lib

    log(ablation.set_up_cell(config.workers))
    search = run_search_config(config.run_dir)
    row = jsonio.read_json(os.path.join(config.output_dir, ARCHS_FILE),
                           'architecture list')['architectures'][index]
    arch = dataclasses.replace(Architecture.from_string(row['architecture']),
                               name=row['name'])
    train = dataclasses.replace(
        ablation.train_config(ablation_config(config, search), arch, seed,
                              train_dir(config, index, seed)),
        train_examples=config.train_examples)
    train_lib.run_training(train)
    return metrics_of(config, index, seed)


def metrics_of(config, index, seed):
    """The metrics of architecture `index` retrained with `seed`, or
    None."""
    path = os.path.join(train_dir(config, index, seed), 'metrics.json')
    return jsonio.read_json(path, 'metrics') if os.path.isfile(path) \
        else None


def all_metrics(config, index):
    """The metrics of architecture `index` for every seed, or None while
    one is unfinished."""
    found = [metrics_of(config, index, s) for s in seeds(config)]
    return None if None in found else found


# --- Running ------------------------------------------------------------------


def _stored(path):
    """A rank_config.json's settings; settings added after the run
    started have their default."""
    defaults = dataclasses.asdict(RankConfig(run_dir='', output_dir=''))
    stored = jsonio.read_json(path, 'rank config')
    return dict(defaults, **{k: v for k, v in stored.items()
                             if k in defaults})


def stored_config(run_dir, output_dir):
    """The settings of the run started in `output_dir` (for
    --report_only: no flag needs repeating), with `run_dir` and
    `output_dir` as given; UserError for a folder without a run."""
    run_search_config(run_dir)
    path = os.path.join(output_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise UserError(f'{output_dir} holds no started rank-correlation '
                        'run; run without --report_only')
    return RankConfig(**dict(_stored(path), run_dir=run_dir,
                             output_dir=output_dir))


def check_output(config):
    """Writes rank_config.json, or checks that the folder's run has the
    same settings (a rerun resumes it)."""
    path = os.path.join(config.output_dir, CONFIG_FILE)
    here = dataclasses.asdict(config)
    if os.path.isfile(path):
        stored = _stored(path)
        for name in sorted(set(here) | set(stored)):
            if name not in FREE_SETTINGS and here.get(name) != stored.get(
                    name):
                raise UserError(
                    f'{config.output_dir} holds a run with {name}='
                    f'{stored.get(name)!r}, not {here.get(name)!r}; use '
                    'another --output_dir or the same settings')
        return
    if os.path.exists(config.output_dir) and os.listdir(config.output_dir):
        raise UserError(f'output_dir {config.output_dir!r} exists and is '
                        'not a rank-correlation run; use a new folder')
    os.makedirs(config.output_dir, exist_ok=True)
    jsonio.write_json(path, here)


def _in_child(function, *args):
    """`function(*args)` in a fresh spawned process; its exceptions (a
    UserError too) are raised here."""
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(
            1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def progress(done, total, seconds_each):
    """'k/n retrained; about m min left' from this run's wall time per
    finished retraining so far (None before the first)."""
    line = f'{done}/{total} retrained'
    if seconds_each and done < total:
        left = seconds_each * (total - done)
        line += f'; about {left / 60:.1f} min left'
    return line


def run(config):
    """Runs (or resumes) the experiment; returns the results dict."""
    run_search_config(config.run_dir)
    fresh = not os.path.exists(config.output_dir)
    check_output(config)
    try:
        _in_child(prepare, config)
    except UserError:
        if fresh:  # refused before any work: no folder left behind
            shutil.rmtree(config.output_dir, ignore_errors=True)
        raise
    rows = jsonio.read_json(os.path.join(config.output_dir, ARCHS_FILE),
                            'architecture list')['architectures']
    todo = [(r['index'], s) for r in rows for s in seeds(config)
            if metrics_of(config, r['index'], s) is None]
    total = len(rows) * config.retrain_seeds
    done = total - len(todo)
    log(f'{len(rows)} architectures x {config.retrain_seeds} seed(s) in '
        f'{config.output_dir}; {done} retrained before')
    start, finished_here = time.perf_counter(), 0
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(
            config.workers, mp_context=context,
            max_tasks_per_child=1) as pool:
        futures = {pool.submit(retrain, config, *job): job for job in todo}
        for future in concurrent.futures.as_completed(futures):
            index, seed = futures[future]
            metrics = future.result()
            if metrics is None:
                raise RuntimeError(f'retraining architecture {index} (seed '
                                   f'{seed}) stopped before it finished; '
                                   'rerun to resume it')
            done += 1
            finished_here += 1
            each = (time.perf_counter() - start) / finished_here
            estimate = jsonio.read_json(os.path.join(
                arch_dir(config, index), ESTIMATE_FILE), 'estimate')
            log(f'{rows[index]["name"]} seed {seed}: inherited '
                f'{estimate["inherited_accuracy"]:.4f}, test '
                f'{metrics["test_accuracy"]:.4f} in '
                f'{metrics["wall_seconds"]:.0f}s; '
                f'{progress(done, total, each)}')
    return collect(config)


# --- Results ------------------------------------------------------------------


def finished(config):
    """`collect` for a started run with the same settings, running
    nothing (UserError for a folder without one)."""
    run_search_config(config.run_dir)
    if not os.path.isfile(os.path.join(config.output_dir, ARCHS_FILE)):
        raise UserError(f'{config.output_dir} holds no started '
                        'rank-correlation run; run without --report_only')
    check_output(config)
    return collect(config)


def collect(config):
    """Every finished architecture's numbers (its test accuracy: the mean
    over its seeds), the correlations over those whose ops were all
    trained (None below 3 of them) and, with two seeds or more, the
    retraining's noise over every finished one (3 or more)."""
    listing = jsonio.read_json(os.path.join(config.output_dir, ARCHS_FILE),
                               'architecture list')
    rows = []
    for row in listing['architectures']:
        metrics = all_metrics(config, row['index'])
        path = os.path.join(arch_dir(config, row['index']), ESTIMATE_FILE)
        if metrics is None or not os.path.isfile(path):
            continue
        tests = [m['test_accuracy'] for m in metrics]
        rows.append(dict(
            row, inherited_accuracy=jsonio.read_json(
                path, 'estimate')['inherited_accuracy'],
            test_accuracy=statistics.fmean(tests), test_accuracies=tests,
            train_wall_seconds=statistics.fmean(
                m['wall_seconds'] for m in metrics),
            eval_split=metrics[0]['eval_split'],
            num_train=metrics[0]['num_train']))
    scored = [r for r in rows if r['all_ops_trained']]
    stats = noise = None
    if len(scored) >= 3:
        stats = correlations([r['inherited_accuracy'] for r in scored],
                             [r['test_accuracy'] for r in scored],
                             config.bootstrap, config.seed)
    if config.retrain_seeds >= 2 and len(rows) >= 3:
        # The retraining's noise does not depend on the supernet: every
        # retrained architecture counts, an untrained op or not.
        noise = retraining_noise([r['test_accuracies'] for r in rows],
                                 config.bootstrap, config.seed)
    inherited = [r['inherited_accuracy'] for r in scored]
    return {
        'config': dataclasses.asdict(config),
        'architectures': rows,
        'num_planned': len(listing['architectures']),
        'num_scored': len(scored),
        'random_share_within_tolerance': listing[
            'random_share_within_tolerance'],
        'trained_ops': listing['trained_ops'],
        'inherited_range': [min(inherited), max(inherited)]
        if inherited else None,
        'statistics': stats,
        'retraining_noise': noise,
    }


def eval_label(results):
    """The retrained accuracies' split, for labels: 'test', or the
    held-out part of the training split (a search run with
    --validation_fraction)."""
    splits = sorted({r['eval_split'] for r in results['architectures']})
    if len(splits) > 1:
        return 'mixed splits: ' + ', '.join(splits)
    split = splits[0] if splits else 'test'
    return split if split == 'test' else f'held-out {split}'


def scatter(results, path):
    """The scatter plot PNG: retrained test accuracy (the seeds' mean, a
    bar from their lowest to their highest) against inherited accuracy,
    family and random marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.2), layout='constrained')
    ax = fig.add_subplot()
    for source, marker in (('family', 'o'), ('random', 's')):
        rows = [r for r in results['architectures'] if r['source'] == source]
        if not rows:
            continue
        x = [100 * r['inherited_accuracy'] for r in rows]
        y = [100 * r['test_accuracy'] for r in rows]
        if len(rows[0].get('test_accuracies', ())) > 1:  # several seeds
            seen = [[100 * a for a in r['test_accuracies']] for r in rows]
            ax.errorbar(x, y, yerr=[np.subtract(y, [min(a) for a in seen]),
                                    np.subtract([max(a) for a in seen], y)],
                        fmt='none', ecolor='0.6', elinewidth=0.8)
        ax.scatter(x, y, marker=marker, label=f'{source} ({len(rows)})',
                   edgecolors=['k' if r['all_ops_trained'] else 'r'
                               for r in rows])
    stats = results['statistics']
    title = 'supernet ranking'
    if stats:
        title = (f'Kendall tau {stats["kendall_tau"]:.2f}, Spearman rho '
                 f'{stats["spearman_rho"]:.2f} (n={stats["n"]})')
    ax.set_title(title, fontsize=10)
    ax.set_xlabel('inherited-weight accuracy, validation (%)')
    ax.set_ylabel(f'retrained accuracy, {eval_label(results)} (%)')
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)


def _interval(stats, name):
    low, high = stats[f'{name}_ci']
    return f'[{low:.2f}, {high:.2f}]'


def noise_lines(noise):
    """The summary's table of the retraining's noise
    (`retraining_noise`)."""
    low, high = noise['seed_kendall_ci']
    df1, df2 = noise['f_df']
    return [
        f'Retraining noise, {noise["architectures"]} architectures x '
        f'{noise["seeds"]} seeds (architecture + seed + noise):', '',
        '| quantity | value |', '|---|---:|',
        f'| noise sd, one retraining, seeds paired | '
        f'{100 * noise["noise_sd"]:.2f} points |',
        f'| sd of the seeds\' common effect | '
        f'{100 * noise["seed_effect_sd"]:.2f} points |',
        f'| sd of the architectures\' means | '
        f'{100 * noise["means_sd"]:.2f} points |',
        f'| sd between architectures, noise removed | '
        f'{100 * noise["architecture_sd"]:.2f} points |',
        f'| reliability of one retraining | '
        f'{noise["reliability_one"]:.2f} |',
        f'| reliability of the mean of {noise["seeds"]} | '
        f'{noise["reliability_mean"]:.2f} |',
        f'| F({df1}, {df2}), architectures differ | '
        f'{noise["f"]:.2f} (p = {noise["f_p"]:.3g}) |',
        '| Kendall tau, first seed against second | '
        f'{noise["seed_kendall_tau"]:.3f} [{low:.2f}, {high:.2f}] '
        f'(p = {noise["seed_kendall_p"]:.3g}) |', '']


def summary(results):
    """The markdown summary of `results` (with their provenance)."""
    config, stats = results['config'], results['statistics']
    noise = results.get('retraining_noise')
    many = config.get('retrain_seeds', 1) > 1
    machine = results['machine']
    lines = [
        f'# Supernet ranking: {config["run_dir"]}', '',
        f'`{results["command"]}`', '',
        f'{results["date"]}; {machine["cpu"]} ({machine["cpu_count"]} '
        f'cores); Python {machine["python"]}, TensorFlow '
        f'{machine["tensorflow"]}, Keras {machine["keras"]}, NumPy '
        f'{machine["numpy"]}, SciPy {machine["scipy"]}; commit '
        f'{results["commit"]}.', '',
        f'{len(results["architectures"])} of {results["num_planned"]} '
        f'architectures finished, {results["num_scored"]} with every op '
        f'trained by the supernet (the correlations use these); retrained '
        f'{config["train_epochs"]} epochs on '
        f'{config["train_examples"] or "all"} training images with '
        f'{config.get("retrain_seeds", 1)} seed(s) each.', '']
    if stats:
        lines += [
            '| statistic | value | 95% bootstrap interval | p |',
            '|---|---:|---|---:|',
            f'| Kendall tau | {stats["kendall_tau"]:.3f} | '
            f'{_interval(stats, "kendall")} | {stats["kendall_p"]:.3g} |',
            f'| Spearman rho | {stats["spearman_rho"]:.3f} | '
            f'{_interval(stats, "spearman")} | {stats["spearman_p"]:.3g} |',
            '']
        low, high = results['inherited_range']
        lines += [f'Inherited-weight accuracies span {100 * low:.2f}% to '
                  f'{100 * high:.2f}%.', '']
    if noise:
        lines += noise_lines(noise)
    seeds_head = ' | retrained, per seed' if many else ''
    lines += ['| architecture | source | all ops trained | inherited '
              f'(validation) | retrained ({eval_label(results)})'
              f'{seeds_head} |',
              '|---|---|---|---:|---:|' + ('---|' if many else '')]
    for r in results['architectures']:
        per_seed = ''
        if many:
            per_seed = ' | ' + ', '.join(
                f'{100 * a:.2f}%' for a in r['test_accuracies'])
        lines.append(f'| {r["name"]} | {r["source"]} | '
                     f'{"yes" if r["all_ops_trained"] else "no"} | '
                     f'{100 * r["inherited_accuracy"]:.2f}% | '
                     f'{100 * r["test_accuracy"]:.2f}%{per_seed} |')
    return '\n'.join(lines) + '\n'


def write_report(config, results, command):
    """results.json, scatter.png and summary.md in the output folder."""
    import scipy

    machine = dict(provenance.machine(), scipy=scipy.__version__)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    commit = provenance.git_commit(repo, mark_dirty=True)
    results = dict(results, command=command, machine=machine,
                   commit=commit, date=datetime.datetime.now(
                       datetime.timezone.utc).isoformat(timespec='seconds'))
    jsonio.write_json(os.path.join(config.output_dir, RESULTS_FILE), results)
    scatter(results, os.path.join(config.output_dir, SCATTER_FILE))
    with open(os.path.join(config.output_dir, SUMMARY_FILE), 'w') as f:
        f.write(summary(results))
    return results
