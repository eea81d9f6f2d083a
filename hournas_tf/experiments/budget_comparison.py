"""One search with several budgets against one search per budget (issue
23, "Quality"). `tools/budget_compare.py` is its command.

Per seed, the `shared` cell runs one several-budget search
(`SearchConfig.budgets`) and retrains the architecture it derives for each
budget; a `single_<name>` cell per budget runs one single-budget search
with that budget's targets and proposals (every other setting the same)
and retrains its architecture. Every retraining uses the ablation's recipe
(`ablation.train_config`) with the cell's seed, so the rows of a seed
differ only in the architecture (pairing as in the ablation).

`summarize` pairs, per budget, the shared search's accuracy with the
single search's by seed (`paired.compare`, shared minus single). The goal:
a 95% interval that includes 0 or lies above it ("not worse"), and
accuracy that rises with the budget.

Cells run seed by seed, `workers` at a time, each in a fresh child process;
a finished cell (`<output_dir>/<row>/seed<s>/result.json`) is skipped on a
rerun, and a lock per running cell keeps a second command off it
(`ablation.claim`).
"""

import concurrent.futures
import dataclasses
import datetime
import os
import statistics
import subprocess
import time

from hournas_tf.common import jsonio
from hournas_tf.common import provenance
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError
from hournas_tf.nas import config as config_lib

SHARED = 'shared'
SINGLE = 'single_'
RESULT_FILE = 'result.json'
RESULTS_FILE = 'results.json'
TABLE_FILE = 'budget_comparison.md'


@dataclasses.dataclass(frozen=True)
class BudgetComparisonConfig:
    """What the comparison runs (the tool fills it from flags);
    `search.budgets` holds the budgets, cheapest first."""

    output_dir: str
    search: config_lib.SearchConfig
    train_epochs: int = 2
    train_examples: int = 0  # 0: all of the training split
    seeds: tuple = (0, 1, 2, 3, 4)
    workers: int = 1


def log(message):
    runner.log(message, tag='budgets')


def check(config):
    """Raises UserError unless the search has two budgets or more."""
    if not config.search.budgets or len(config.search.budgets) < 2:
        raise UserError('give two budgets or more with --budgets (e.g. '
                        'low=macs:24e6/params:0.6e6,high=macs:38e6/'
                        'params:0.95e6): the comparison pairs each budget\'s '
                        'shared search with its own single search')


def rows(config):
    """The shared row, then one single row per budget."""
    return [SHARED] + [SINGLE + b.name for b in config.search.budgets]


def cells(config):
    """(row, seed) in run order, seed by seed."""
    return [(r, s) for s in config.seeds for r in rows(config)]


def cell_dir(config, row, seed):
    return os.path.join(config.output_dir, row, f'seed{seed}')


def budget_of(config, row):
    """The `BudgetSpec` of a single row."""
    name = row[len(SINGLE):]
    for b in config.search.budgets:
        if b.name == name:
            return b
    raise ValueError(f'no budget {name!r} for row {row!r}')


def search_config(config, row, seed):
    """The `SearchConfig` of one cell: the several-budget search, or one
    budget's targets and proposals alone."""
    base = dataclasses.replace(
        config.search, seed=seed, verbose=0, resume=False,
        output_dir=os.path.join(cell_dir(config, row, seed), 'search'))
    if row == SHARED:
        return base
    spec = budget_of(config, row)
    return dataclasses.replace(
        base, budgets=None, targets=dict(spec.targets),
        num_proposals=spec.proposals(base.num_proposals))


def searched(config, row, seed):
    """{budget name: arch.json dict} of a finished cell's search."""
    from hournas_tf.nas import budgets as budgets_lib

    folder = search_config(config, row, seed).output_dir
    if row == SHARED:
        return {b.name: jsonio.read_json(
            budgets_lib.arch_path(folder, b.name), 'budget architecture')
            for b in config.search.budgets}
    return {budget_of(config, row).name: jsonio.read_json(
        os.path.join(folder, 'arch.json'), 'architecture')}


def _ablation_config(config):
    from hournas_tf.experiments import ablation

    return ablation.AblationConfig(
        output_dir=config.output_dir, search=config.search,
        train_epochs=config.train_epochs,
        train_examples=config.train_examples)


def run_one_cell(config, row, seed):
    """Runs one cell in this process (the child a worker starts), with
    its share of the cores for TensorFlow's thread pools."""
    from hournas_tf.common import threads

    log(threads.take_share(config.workers))
    return run_cell(config, row, seed)


def run_cell(config, row, seed):
    """Searches (skipped when done), retrains each architecture (resumed
    or skipped when done) and writes the cell's result.json."""
    from hournas_tf.experiments import ablation
    from hournas_tf.nas import search_lib
    from hournas_tf.spaces.architecture import Architecture
    from hournas_tf.training import train_lib

    start = time.perf_counter()
    path = cell_dir(config, row, seed)
    sconfig = search_config(config, row, seed)
    if not os.path.isfile(os.path.join(sconfig.output_dir, 'arch.json')):
        ablation._fresh(sconfig.output_dir)
        search_lib.run_search(sconfig)
    search_seconds = jsonio.read_json(
        os.path.join(sconfig.output_dir, 'arch.json'),
        'architecture')['search']['seconds']['total']
    results = {}
    for name, summary in searched(config, row, seed).items():
        entry = summary['search']
        arch = dataclasses.replace(Architecture.from_json(summary),
                                   name=f'{row}_{name}_seed{seed}')
        folder = os.path.join(path, f'train_{name}')
        if not os.path.isfile(os.path.join(folder, 'metrics.json')):
            train_lib.run_training(ablation.train_config(
                _ablation_config(config), arch, seed, folder))
        metrics = jsonio.read_json(os.path.join(folder, 'metrics.json'),
                                   'metrics')
        results[name] = {
            'architecture': arch.to_string(),
            'targets': entry['targets'], 'achieved': entry['achieved'],
            'relative_error': entry['relative_error'],
            'within_tolerance': entry['within_tolerance'],
            'before_repair_within_tolerance':
                entry['before_repair']['within_tolerance'],
            'test_accuracy': metrics['test_accuracy'],
            'eval_split': metrics['eval_split'],
            'macs': metrics['macs'], 'params': metrics['params']}
    result = {'row': row, 'seed': seed, 'budgets': results,
              'search_seconds': search_seconds,
              'job_wall_seconds': time.perf_counter() - start}
    jsonio.write_json(os.path.join(path, RESULT_FILE), result)
    return result


def result_of(config, row, seed):
    path = os.path.join(cell_dir(config, row, seed), RESULT_FILE)
    return jsonio.read_json(path, 'cell result') if os.path.isfile(path) \
        else None


def progress(config):
    """'k/n cells done; about m min left': each unfinished cell takes the
    mean wall time of the finished cells of its kind (the shared search
    retrains one network per budget, a single search one), or of all
    finished cells before one of its kind is done; over the workers."""
    results = {(row, seed): result_of(config, row, seed)
               for row, seed in cells(config)}
    times = {}
    for (row, _), result in results.items():
        if result is not None:
            times.setdefault(row == SHARED, []).append(
                result['job_wall_seconds'])
    done = sum(len(t) for t in times.values())
    line = f'{done}/{len(results)} cells done'
    if 0 < done < len(results):
        every = [t for ts in times.values() for t in ts]
        left = sum(statistics.fmean(times.get(row == SHARED, every))
                   for (row, _), result in results.items()
                   if result is None)
        line += (f'; about {left / config.workers / 60:.0f} min left with '
                 f'{config.workers} worker(s)')
    return line


def _run_child(config, row, seed, command):
    """One cell as the child `command --cell=ROW:SEED` (output into the
    cell's job.log); None if it failed or another process holds it."""
    from hournas_tf.experiments import ablation

    if not ablation.claim(config, row, seed):
        return None
    try:
        if result_of(config, row, seed) is not None:
            return None
        log(f'{row} seed {seed}: started')
        logfile = os.path.join(cell_dir(config, row, seed), 'job.log')
        os.makedirs(os.path.dirname(logfile), exist_ok=True)
        with open(logfile, 'a') as f:
            proc = subprocess.run([*command, f'--cell={row}:{seed}'],
                                  stdout=f, stderr=subprocess.STDOUT)
        result = result_of(config, row, seed)
        if proc.returncode or result is None:
            log(f'{row} seed {seed}: failed (exit {proc.returncode}); see '
                f'{logfile}')
            return None
        accuracies = ', '.join(f'{n} {r["test_accuracy"]:.4f}'
                               for n, r in result['budgets'].items())
        log(f'{row} seed {seed}: {accuracies} in '
            f'{result["job_wall_seconds"]:.0f}s; {progress(config)}')
        return result
    finally:
        ablation.release(config, row, seed)


def work(config, command):
    """Runs every unfinished cell, `config.workers` at a time, each as the
    child process `command --cell=ROW:SEED`."""
    with concurrent.futures.ThreadPoolExecutor(config.workers) as pool:
        futures = [pool.submit(_run_child, config, row, seed, command)
                   for row, seed in cells(config)
                   if result_of(config, row, seed) is None]
    for future in futures:
        future.result()


def summarize(config):
    """Per budget (cheapest first): each row's accuracies by seed, their
    means, the paired comparison shared minus single, the budget
    precision; and whether the mean accuracy rises with the budget."""
    from hournas_tf.experiments import paired

    table = []
    for b in config.search.budgets:
        by_row = {}
        for row in (SHARED, SINGLE + b.name):
            values = {}
            for seed in config.seeds:
                result = result_of(config, row, seed)
                if result is not None:
                    values[seed] = result['budgets'][b.name]
            by_row[row] = values
        shared, single = by_row[SHARED], by_row[SINGLE + b.name]
        acc = {row: {s: v['test_accuracy'] for s, v in vals.items()}
               for row, vals in by_row.items()}
        table.append({
            'budget': b.name, 'targets': dict(b.targets),
            'shared': acc[SHARED], 'single': acc[SINGLE + b.name],
            'shared_mean': _mean(acc[SHARED].values()),
            'single_mean': _mean(acc[SINGLE + b.name].values()),
            'shared_within_tolerance_before_repair': _share(shared),
            'single_within_tolerance_before_repair': _share(single),
            'comparison': paired.compare(acc[SHARED],
                                         acc[SINGLE + b.name])})
    verdicts = {}
    for side in ('shared', 'single'):
        means = [row[f'{side}_mean'] for row in table]
        verdicts[f'{side}_rises_with_budget'] = (
            None if None in means else
            all(a < b for a, b in zip(means, means[1:])))
    # Per budget: True or False from its interval, None without one.
    not_worse = [None if row['comparison']['ci_high'] is None else
                 row['comparison']['ci_high'] >= 0 for row in table]
    verdicts['shared_not_worse'] = (
        False if False in not_worse else
        None if None in not_worse or not table else True)
    return {'budgets': table, **verdicts,
            'highest_minus_lowest': _highest_minus_lowest(table),
            'precision_and_time': _precision_and_time(config)}


def _highest_minus_lowest(table):
    """Per row kind: the highest budget's accuracy minus the lowest's,
    by seed (the seeds with both), their mean and how many are negative."""
    out = {}
    for side in ('shared', 'single'):
        low, high = (table[0][side], table[-1][side]) if table else ({}, {})
        diffs = {s: high[s] - low[s] for s in sorted(low) if s in high}
        out[side] = {'by_seed': diffs, 'mean': _mean(diffs.values()),
                     'negative': sum(d < 0 for d in diffs.values()),
                     'seeds': len(diffs)}
    return out


def _precision_and_time(config):
    """Per row kind: architectures within tolerance before any repair
    (of all finished), and each search's seconds (mean, min, max)."""
    out = {'tolerance': config.search.tolerance}
    for side in ('shared', 'single'):
        within = total = 0
        seconds = []
        for row, seed in cells(config):
            result = result_of(config, row, seed)
            if result is None or (row == SHARED) != (side == 'shared'):
                continue
            budgets = ([b.name for b in config.search.budgets]
                       if row == SHARED else [budget_of(config, row).name])
            for name in budgets:
                total += 1
                within += bool(result['budgets'][name]
                               ['before_repair_within_tolerance'])
            seconds.append(result['search_seconds'])
        out[side] = {'within_before_repair': within, 'architectures': total,
                     'search_seconds_mean': _mean(seconds),
                     'search_seconds_min': min(seconds, default=None),
                     'search_seconds_max': max(seconds, default=None)}
    return out


def _mean(values):
    values = list(values)
    return statistics.fmean(values) if values else None


def _share(values):
    flags = [v['before_repair_within_tolerance'] for v in values.values()]
    return sum(flags) / len(flags) if flags else None


def _pct(value, signed=False):
    if value is None:
        return '-'
    return f'{value:+.2%}' if signed else f'{value:.2%}'


def _p(value):
    return '-' if value is None else f'{value:.3g}'


def _targets(targets):
    from hournas_tf.resources.counting import human

    return ' / '.join(f'{o} {human(v)}' for o, v in targets.items())


def table_markdown(summary, config, command, written, started=None):
    """The page: one row per budget, then the verdicts and provenance."""
    lines = [
        '| budget | targets | seeds | single search | shared search | '
        'shared - single (95% CI) | df | t-test p | Wilcoxon p | '
        'within 3% before repair (single / shared) |',
        '|---|---|---:|---:|---:|---|---:|---:|---:|---|']
    for row in summary['budgets']:
        c = row['comparison']
        ci = ('-' if c['ci_low'] is None else
              f'{_pct(c["mean_difference"], True)} '
              f'[{_pct(c["ci_low"], True)}, {_pct(c["ci_high"], True)}]')
        if c['ci_low'] is None and c['mean_difference'] is not None:
            ci = _pct(c['mean_difference'], True)
        lines.append(
            f'| {row["budget"]} | {_targets(row["targets"])} | {c["n"]} | '
            f'{_pct(row["single_mean"])} | {_pct(row["shared_mean"])} | '
            f'{ci} | {c["df"] if c["df"] is not None else "-"} | '
            f'{_p(c["t_p"])} | {_p(c["wilcoxon_p"])} | '
            f'{_pct(row["single_within_tolerance_before_repair"])} / '
            f'{_pct(row["shared_within_tolerance_before_repair"])} |')
    said = {True: 'yes', False: 'no', None: 'not yet known'}
    split = 'validation' if config.search.validation_fraction else 'test'
    lines += [
        '',
        f'Accuracy on the {split} split, mean over the seeds; the '
        'difference is paired by seed (the same retraining seed and data '
        'for both rows of a seed).',
        '',
        f'- Shared not worse for every budget (95% interval includes 0 or '
        f'lies above it): **{said[summary["shared_not_worse"]]}**',
        f'- Accuracy rises with the budget, shared search: '
        f'**{said[summary["shared_rises_with_budget"]]}**; single '
        f'searches: **{said[summary["single_rises_with_budget"]]}**',
        _highest_minus_lowest_line(summary['highest_minus_lowest'],
                                   summary['budgets']),
        _precision_line(summary['precision_and_time']),
        _time_line(summary['precision_and_time']),
        '',
        f'Command: `{command}`; '
        + (f'started {started}, ' if started else '')
        + f'written {written}; {provenance_line()}.',
        '']
    return '\n'.join(lines)


def _highest_minus_lowest_line(diffs, table):
    names = (table[-1]['budget'], table[0]['budget']) if table else ('-', '-')
    parts = []
    for side, label in (('shared', 'shared search'),
                        ('single', 'single searches')):
        d = diffs[side]
        mean = ('-' if d['mean'] is None
                else f'{d["mean"] * 100:+.2f} points')
        parts.append(f'{label} {mean} (negative in {d["negative"]} of '
                     f'{d["seeds"]} seeds)')
    return (f'- {names[0]} minus {names[1]} budget, mean over the seeds: '
            + '; '.join(parts))


def _precision_line(p):
    return (f'- Within {p["tolerance"]:.0%} of every target before any '
            'repair: shared search '
            f'{p["shared"]["within_before_repair"]} of '
            f'{p["shared"]["architectures"]} architectures; single searches '
            f'{p["single"]["within_before_repair"]} of '
            f'{p["single"]["architectures"]}')


def _time_line(p):
    def one(q):
        if q['search_seconds_mean'] is None:
            return '-'
        return (f'{q["search_seconds_mean"]:.0f} s on average '
                f'({q["search_seconds_min"]:.0f}-'
                f'{q["search_seconds_max"]:.0f} s)')

    return (f'- Search time: shared search {one(p["shared"])}; single '
            f'searches {one(p["single"])} (cells run side by side on a '
            'shared machine: the cost ratio is measured apart)')


def provenance_line():
    machine = provenance.machine()
    return ', '.join(f'{k} {v}' for k, v in machine.items())


def write_outputs(config, command, started=None):
    """results.json and budget_comparison.md (`command` started the
    comparison at `started`); returns the summary."""
    summary = summarize(config)
    from hournas_tf.experiments import ablation

    written = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds')
    data = {'command': command, 'started': started, 'written': written,
            'machine': provenance.machine(),
            'commit': provenance.git_commit(ablation.REPO, mark_dirty=True),
            'train_epochs': config.train_epochs,
            'train_examples': config.train_examples,
            'seeds': list(config.seeds), **summary,
            'cells': {f'{r}:{s}': result_of(config, r, s)
                      for r, s in cells(config)}}
    os.makedirs(config.output_dir, exist_ok=True)
    jsonio.write_json(os.path.join(config.output_dir, RESULTS_FILE), data)
    with open(os.path.join(config.output_dir, TABLE_FILE), 'w') as f:
        f.write(table_markdown(summary, config, command, written,
                               started))
    return summary

