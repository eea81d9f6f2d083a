"""How long must retraining be to rank networks? (issue 19)

The ablation retrains every row with one short recipe; its table means
something only if that recipe already ranks the architectures as a longer
one would. This experiment takes the architectures of finished ablation
cells (`<source_dir>/<variant>/seed<s>/result.json`), retrains each with
the ablation's recipe (`ablation.train_config`) at several lengths in
epochs, on the training split less a held-out validation part, and scores
it on that part: never the test split, which serves the final table only.

`summarize` compares each length with the longest one: Kendall's tau of
the architectures' accuracies, and each row's mean paired gap to the
default row (the quantity the table reports). The final table's recipe is
the shortest length whose ranking and gaps agree with the longest's.

Each retraining runs in a fresh child process (TensorFlow keeps every
traced graph of a process alive), `workers` at a time; a rerun skips the
finished ones (`<output_dir>/<variant>/seed<s>/epochs<E>/metrics.json`).
"""

import concurrent.futures
import dataclasses
import datetime
import multiprocessing
import os
import statistics
import time

from hournas_tf.common import jsonio
from hournas_tf.common import provenance
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError

RESULTS_FILE = 'recipe_length.json'
SUMMARY_FILE = 'recipe_length.md'
FIGURE_FILE = 'recipe_length.png'


def log(message):
    runner.log(message, tag='recipe')


def check(config, lengths, source_dir):
    """Raises UserError unless the settings can choose a recipe: a
    validation split, two lengths or more, and finished source cells."""
    from hournas_tf.experiments import ablation

    if not config.search.validation_fraction:
        raise UserError('--recipe_epochs needs --validation_fraction > 0: '
                        'a recipe is chosen on a validation split, never '
                        'on the test split')
    if len(set(lengths)) < 2 or min(lengths) < 1:
        raise UserError(f'recipe_epochs {list(lengths)}: give two or more '
                        'different positive epoch counts, e.g. 1,2,6')
    if not source_dir or not os.path.isdir(source_dir):
        raise UserError(f'architectures_from {source_dir!r} is not a '
                        'folder; give the output_dir of a tools/ablate.py '
                        'run with finished cells')
    for variant, seed in cells(config):
        path = os.path.join(source_dir, variant, f'seed{seed}',
                            ablation.RESULT_FILE)
        if not os.path.isfile(path):
            raise UserError(f'{variant} seed {seed} is not finished in '
                            f'{source_dir} (no {path}); lower --seeds or '
                            'choose finished --variants')


def cells(config):
    """(variant, seed) of the architectures, seed by seed."""
    return [(v, s) for s in config.seeds for v in config.variants]


def source_architecture(source_dir, variant, seed):
    """The architecture a finished ablation cell retrained."""
    from hournas_tf.experiments import ablation
    from hournas_tf.spaces.architecture import Architecture

    result = jsonio.read_json(os.path.join(
        source_dir, variant, f'seed{seed}', ablation.RESULT_FILE),
        'ablation cell result')
    return dataclasses.replace(
        Architecture.from_string(result['architecture']),
        name=f'{variant}_seed{seed}')


def run_dir(config, variant, seed, epochs):
    return os.path.join(config.output_dir, variant, f'seed{seed}',
                        f'epochs{epochs}')


def metrics_of(config, variant, seed, epochs):
    """The metrics of one retraining, or None while unfinished."""
    path = os.path.join(run_dir(config, variant, seed, epochs),
                        'metrics.json')
    return jsonio.read_json(path, 'metrics') if os.path.isfile(path) \
        else None


def retrain(config, source_dir, variant, seed, epochs):
    """Child process: one retraining (resumed when interrupted); returns
    its metrics."""
    from hournas_tf.experiments import ablation
    from hournas_tf.training import train_lib

    log(ablation.set_up_cell(config.workers))
    arch = source_architecture(source_dir, variant, seed)
    train = ablation.train_config(
        dataclasses.replace(config, train_epochs=epochs), arch, seed,
        run_dir(config, variant, seed, epochs))
    train_lib.run_training(train)
    return metrics_of(config, variant, seed, epochs)


def jobs(config, lengths):
    """(variant, seed, epochs) still to run, seed by seed."""
    return [(v, s, e) for v, s in cells(config) for e in sorted(lengths)
            if metrics_of(config, v, s, e) is None]


def run(config, lengths, source_dir):
    """Runs every unfinished retraining, `config.workers` at a time."""
    todo = jobs(config, lengths)
    total = len(cells(config)) * len(set(lengths))
    done = total - len(todo)
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(
            config.workers, mp_context=context,
            max_tasks_per_child=1) as pool:
        starts = {}
        futures = {}
        for job in todo:
            starts[job] = time.perf_counter()
            futures[pool.submit(retrain, config, source_dir, *job)] = job
        for future in concurrent.futures.as_completed(futures):
            variant, seed, epochs = futures[future]
            metrics = future.result()
            done += 1
            log(f'{variant} seed {seed}, {epochs} epoch(s): validation '
                f'accuracy {metrics["test_accuracy"]:.4f} '
                f'({metrics["wall_seconds"]:.0f}s); {done}/{total} done')


def summarize(config, lengths):
    """{'lengths', 'accuracy', 'kendall', 'gaps', 'means'} from the
    finished retrainings; each length is compared with the longest on the
    architectures finished at both."""
    from hournas_tf.experiments import ablation
    from hournas_tf.experiments import rank_correlation

    lengths = sorted(set(lengths))
    accuracy = {}
    for e in lengths:
        row = {}
        for v, s in cells(config):
            metrics = metrics_of(config, v, s, e)
            if metrics is not None:
                row[f'{v}:{s}'] = metrics['test_accuracy']
        accuracy[e] = row
    longest = accuracy[lengths[-1]]
    kendall, gaps, means = {}, {}, {}
    for e in lengths:
        common = sorted(set(accuracy[e]) & set(longest))
        kendall[e] = rank_correlation.kendall(
            [accuracy[e][k] for k in common],
            [longest[k] for k in common]) if len(common) >= 3 else None
        means[e] = {v: statistics.fmean(vals) for v in config.variants
                    if (vals := [a for k, a in accuracy[e].items()
                                 if k.split(':')[0] == v])}
        gaps[e] = {}
        for v in config.variants:
            if v == ablation.DEFAULT:
                continue
            diffs = [accuracy[e][f'{ablation.DEFAULT}:{s}'] -
                     accuracy[e][f'{v}:{s}'] for s in config.seeds
                     if f'{ablation.DEFAULT}:{s}' in accuracy[e]
                     and f'{v}:{s}' in accuracy[e]]
            if diffs:
                gaps[e][v] = {'mean': round(statistics.fmean(diffs), 12),
                              'n': len(diffs)}
    return {'lengths': lengths, 'accuracy': accuracy, 'kendall': kendall,
            'gaps': gaps, 'means': means}


def plot(summary, path):
    """Validation accuracy against epochs, one line per architecture,
    coloured by row."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    colors = {}
    names = sorted({k for row in summary['accuracy'].values() for k in row})
    for name in names:
        variant = name.split(':')[0]
        xs = [e for e in summary['lengths'] if name in
              summary['accuracy'][e]]
        ys = [summary['accuracy'][e][name] for e in xs]
        color = colors.setdefault(variant, f'C{len(colors)}')
        ax.plot(xs, ys, marker='o', color=color, alpha=0.7,
                label=variant if variant not in ax.get_legend_handles_labels(
                )[1] else None)
    ax.set_xlabel('retraining epochs (the whole recipe at that length)')
    ax.set_ylabel('validation accuracy')
    ax.set_xticks(summary['lengths'])
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _fmt(value, spec='.3f'):
    return '-' if value is None else format(value, spec)


def write_report(config, lengths, source_dir, command):
    """Writes recipe_length.json, .md and .png; returns the summary."""
    from hournas_tf.experiments import ablation

    summary = summarize(config, lengths)
    os.makedirs(config.output_dir, exist_ok=True)
    import scipy

    data = {'command': command, 'source': source_dir,
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec='seconds'),
            'machine': dict(provenance.machine(), scipy=scipy.__version__),
            'commit': provenance.git_commit(ablation.REPO, mark_dirty=True),
            'validation_fraction': config.search.validation_fraction,
            'train_examples': config.train_examples,
            **{k: {str(e): v for e, v in summary[k].items()}
               for k in ('accuracy', 'kendall', 'gaps', 'means')},
            'lengths': summary['lengths']}
    jsonio.write_json(os.path.join(config.output_dir, RESULTS_FILE), data)
    plot(summary, os.path.join(config.output_dir, FIGURE_FILE))
    longest = summary['lengths'][-1]
    others = [v for v in config.variants if v != ablation.DEFAULT]
    lines = [
        '# How long must retraining be to rank the networks?', '',
        f'`{command}`', '',
        f'Architectures of the finished cells of `{source_dir}`, each '
        'retrained with the ablation\'s recipe at each length, on the '
        'training split less its last '
        f'{config.search.validation_fraction:g} (first '
        f'{config.train_examples or "all"} images) and scored on that '
        'held-out part; the test split is not read. Kendall\'s tau compares '
        f'each length\'s ranking with that of {longest} epochs; the gap is '
        f'the mean paired difference {ablation.DEFAULT} minus the row '
        '(seeds finished at that length).', '',
        '| epochs | architectures | Kendall tau vs '
        f'{longest} | ' + ' | '.join(f'mean {v}' for v in config.variants)
        + ' | ' + ' | '.join(f'gap to {v}' for v in others) + ' |',
        '|' + '---|' * (3 + len(config.variants) + len(others))]
    for e in summary['lengths']:
        means = summary['means'][e]
        gaps = summary['gaps'][e]
        lines.append(
            f'| {e} | {len(summary["accuracy"][e])} | '
            f'{_fmt(summary["kendall"][e])} | '
            + ' | '.join(_fmt(means.get(v), '.4f') for v in config.variants)
            + ' | ' + ' | '.join(
                _fmt(gaps[v]['mean'] if v in gaps else None, '+.4f')
                + (f' (n={gaps[v]["n"]})' if v in gaps else '')
                for v in others) + ' |')
    lines += ['', f'![validation accuracy against epochs]({FIGURE_FILE})',
              '']
    with open(os.path.join(config.output_dir, SUMMARY_FILE), 'w') as f:
        f.write('\n'.join(lines))
    return summary
