"""The ablation's table: the cells' results summarized per variant, the
Welch comparison of the search against the random baselines, the markdown
table and `results.json` / `ablation.md` (`experiments.ablation` runs the
cells)."""

import dataclasses
import datetime
import os
import statistics

from hournas_tf.common import jsonio
from hournas_tf.common import provenance
from hournas_tf.experiments.ablation import BEST_OF_K
from hournas_tf.experiments.ablation import DEFAULT
from hournas_tf.experiments.ablation import RANDOM
from hournas_tf.experiments.ablation import RESULT_FILE
from hournas_tf.experiments.ablation import SEARCH_VARIANTS
from hournas_tf.experiments.ablation import cell_dir
from hournas_tf.experiments.ablation import is_done
from hournas_tf.resources.counting import human

# The repository (a git checkout when installed editable): its commit
# goes into the table.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def collect(config):
    """{variant: [result, ...]} of the finished cells."""
    return {v: [jsonio.read_json(os.path.join(
                    cell_dir(config, v, s), RESULT_FILE), 'cell file')
                for s in config.seeds if is_done(config, v, s)]
            for v in config.variants}


def _mean_sd(values):
    if not values:
        return None, None
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), sd


def summarize(results, targets):
    """One row per variant: means and spreads."""
    rows = {}
    for variant, rs in results.items():
        if not rs:
            continue
        acc = [r['test_accuracy'] for r in rs]
        mean, sd = _mean_sd(acc)
        rows[variant] = {
            'n': len(rs),
            'accuracy_mean': mean, 'accuracy_sd': sd,
            'accuracy_min': min(acc), 'accuracy_max': max(acc),
            'search_seconds_mean': _mean_sd(
                [r['search_seconds'] for r in rs])[0],
            'search_seconds_sd': _mean_sd(
                [r['search_seconds'] for r in rs])[1],
            'within_tolerance': sum(r['within_tolerance'] for r in rs),
            'before_repair_within_tolerance': sum(
                r['before_repair_within_tolerance'] for r in rs),
            **{f'{obj}_mean': statistics.fmean(
                r['achieved'][obj] for r in rs) for obj in targets},
            **{f'{obj}_error_max': max(
                abs(r['relative_error'][obj]) for r in rs)
               for obj in targets},
        }
    return rows


def _label(variant):
    if variant in SEARCH_VARIANTS:
        return SEARCH_VARIANTS[variant][2], SEARCH_VARIANTS[variant][1]
    if variant == RANDOM:
        return 'random (uniform, within tolerance)', 'baseline'
    return 'random best-of-k by supernet estimate', 'baseline'


def comparison(rows, a=DEFAULT, b=RANDOM):
    """(difference of means, pooled sd, Welch t) of accuracy, a minus b."""
    if a not in rows or b not in rows:
        return None
    ra, rb = rows[a], rows[b]
    diff = ra['accuracy_mean'] - rb['accuracy_mean']
    pooled = ((ra['accuracy_sd'] ** 2 + rb['accuracy_sd'] ** 2) / 2) ** 0.5
    se = (ra['accuracy_sd'] ** 2 / ra['n']
          + rb['accuracy_sd'] ** 2 / rb['n']) ** 0.5
    return {'difference': diff, 'pooled_sd': pooled,
            'welch_t': diff / se if se else None}


def table(config, rows):
    """The markdown table."""
    targets = config.search.targets
    head = ['variant', 'paper', 'search / selection s']
    head += [f'{obj} (target {human(t)})' for obj, t in targets.items()]
    head += ['within tol. (before repair)', 'test accuracy mean ± sd',
             'min - max', 'n']
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '|'.join(['---'] * 3 + ['---:'] * (len(head) - 3)) + '|']
    for variant in config.variants:
        if variant not in rows:
            continue
        r = rows[variant]
        label, paper = _label(variant)
        cells_ = [label, paper, f'{r["search_seconds_mean"]:.0f} ± '
                  f'{r["search_seconds_sd"]:.0f}']
        cells_ += [f'{human(r[f"{obj}_mean"])} (max miss '
                   f'{r[f"{obj}_error_max"]:.1%})' for obj in targets]
        cells_ += [f'{r["within_tolerance"]}/{r["n"]} '
                   f'({r["before_repair_within_tolerance"]}/{r["n"]})',
                   f'{r["accuracy_mean"]:.2%} ± {r["accuracy_sd"]:.2%}',
                   f'{r["accuracy_min"]:.2%} - {r["accuracy_max"]:.2%}',
                   str(r['n'])]
        lines.append('| ' + ' | '.join(cells_) + ' |')
    return '\n'.join(lines)


def conclusion(rows):
    """One plain sentence per baseline: did the search beat it?"""
    out = []
    for baseline in (RANDOM, BEST_OF_K):
        c = comparison(rows, DEFAULT, baseline)
        if c is None:
            continue
        label = _label(baseline)[0]
        verdict = ('beat' if c['difference'] > 0 else 'did not beat')
        head = (f'HourNAS {verdict} {label} by {c["difference"]:+.2%} test '
                'accuracy')
        if c['welch_t'] is None:
            out.append(head + ': no seed spread to judge it by (one seed '
                       'per row, or identical results).')
            continue
        clear = abs(c['welch_t']) >= 2.0
        out.append(
            head + f' ({abs(c["difference"]) / c["pooled_sd"]:.1f} pooled '
            f'standard deviations; Welch t = {c["welch_t"]:.2f}): '
            + ('a difference beyond the seed spread.' if clear else
               'within the seed spread, not a clear difference.'))
    return out


def write_outputs(config, command, started):
    """results.json and ablation.md from the finished cells."""
    results = collect(config)
    rows = summarize(results, config.search.targets)
    jobs = [r for rs in results.values() for r in rs]
    data = {
        'command': command,
        'started': started,
        'written': datetime.datetime.now().isoformat(timespec='seconds'),
        'machine': machine(),
        'search_config': dataclasses.asdict(config.search),
        'train_epochs': config.train_epochs,
        'seeds': list(config.seeds),
        'random_k': config.random_k,
        'job_wall_seconds': sum(r['job_wall_seconds'] for r in jobs),
        'job_cpu_seconds': sum(r['job_cpu_seconds'] for r in jobs),
        'rows': rows,
        'comparison': {b: comparison(rows, DEFAULT, b)
                       for b in (RANDOM, BEST_OF_K)},
        'conclusion': conclusion(rows),
        'results': results,
    }
    jsonio.write_json(os.path.join(config.output_dir, 'results.json'), data)
    md = [table(config, rows), '']
    md += [f'- {line}' for line in data['conclusion']]
    elapsed = (datetime.datetime.fromisoformat(data['written'])
               - datetime.datetime.fromisoformat(started))
    m = data['machine']
    md += ['', f'Command: `{command}`; {len(jobs)} jobs, '
           f'{data["job_wall_seconds"] / 60:.0f} min of job wall time and '
           f'{data["job_cpu_seconds"] / 60:.0f} min of CPU time; started '
           f'{started}, table written {data["written"]} '
           f'({elapsed.total_seconds() / 60:.0f} min later, resumptions '
           f'included). {m["cpus"]} CPUs, load average {m["load_average"]}, '
           f'Python {m["python"]}, TensorFlow {m["tensorflow"]}, Keras '
           f'{m["keras"]}, commit {m["commit"]}.']
    with open(os.path.join(config.output_dir, 'ablation.md'), 'w') as f:
        f.write('\n'.join(md) + '\n')
    return data


def machine():
    """Where and with what the table was made."""
    m = provenance.machine()
    return {'platform': m['platform'], 'cpus': m['cpu_count'],
            'python': m['python'], 'tensorflow': m['tensorflow'],
            'keras': m['keras'],
            'commit': provenance.git_commit(REPO, mark_dirty=True),
            'load_average': [round(x, 2) for x in m['loadavg']]}
