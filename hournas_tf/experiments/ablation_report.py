"""The ablation's table: the cells' results summarized per variant, each
row compared with the default paired by seed (`experiments.paired`: mean
difference with its 95% confidence interval, paired t and Wilcoxon
signed-rank p-values, Holm-corrected across the rows), the markdown table
and `results.json` / `ablation.md` (`experiments.ablation` runs the
cells)."""

import dataclasses
import datetime
import os
import statistics as stats_lib

from hournas_tf.common import jsonio
from hournas_tf.common import provenance
from hournas_tf.experiments import ablation_restore
from hournas_tf.experiments import paired
from hournas_tf.experiments import vital_agreement
from hournas_tf.experiments.ablation import BASELINES
from hournas_tf.experiments.ablation import DEFAULT
from hournas_tf.experiments.ablation import OTHER_VARIANTS
from hournas_tf.experiments.ablation import REPO
from hournas_tf.experiments.ablation import RESULT_FILE
from hournas_tf.experiments.ablation import SEARCH_VARIANTS
from hournas_tf.experiments.ablation import VARIANTS
from hournas_tf.experiments.ablation import cell_dir
from hournas_tf.experiments.ablation import is_done
from hournas_tf.resources.counting import human


def collect(config):
    """{variant: [result, ...]} of the finished cells."""
    return {v: [jsonio.read_json(os.path.join(
                    cell_dir(config, v, s), RESULT_FILE), 'cell file')
                for s in config.seeds if is_done(config, v, s)]
            for v in config.variants}


def _mean_sd(values):
    if not values:
        return None, None
    sd = stats_lib.stdev(values) if len(values) > 1 else 0.0
    return stats_lib.fmean(values), sd


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
            **{f'{obj}_mean': stats_lib.fmean(
                r['achieved'][obj] for r in rs) for obj in targets},
            **{f'{obj}_error_max': max(
                abs(r['relative_error'][obj]) for r in rs)
               for obj in targets},
        }
    return rows


def _label(variant):
    """(label, paper table) of a row."""
    if variant in SEARCH_VARIANTS:
        return SEARCH_VARIANTS[variant][2], SEARCH_VARIANTS[variant][1]
    paper, label = OTHER_VARIANTS[variant]
    return label, paper


def by_seed(results, variant):
    """{seed: test accuracy} of a variant's finished cells."""
    return {r['seed']: r['test_accuracy'] for r in results.get(variant, ())}


def statistics(results, default=DEFAULT):
    """{variant: paired comparison} of every other variant with results
    against `default`, over the seeds both have: `paired.compare`'s
    fields (`mean_difference` is the default minus the row) and
    `holm_t_p` / `holm_wilcoxon_p`, Holm-corrected across these rows."""
    if not results.get(default):
        return {}
    base = by_seed(results, default)
    out = {v: paired.compare(base, by_seed(results, v))
           for v in VARIANTS if v != default and results.get(v)}
    for test in ('t', 'wilcoxon'):
        adjusted = paired.holm({v: c[f'{test}_p'] for v, c in out.items()})
        for v, c in out.items():
            c[f'holm_{test}_p'] = adjusted[v]
    return out


def _p(value):
    return '-' if value is None else f'{value:.3g}'


def _difference(c):
    if c['ci_low'] is None:
        return f'{c["mean_difference"]:+.2%}'
    return (f'{c["mean_difference"]:+.2%} [{c["ci_low"]:+.2%}, '
            f'{c["ci_high"]:+.2%}]')


def table(config, rows, stats=None):
    """The markdown table (`stats`: `statistics()`'s comparisons)."""
    stats = stats or {}
    targets = config.search.targets
    head = ['variant', 'paper', 'search / selection s']
    head += [f'{obj} (target {human(t)})' for obj, t in targets.items()]
    head += ['within tol. (before repair)', 'test accuracy mean ± sd',
             'min - max', 'n', 'HourNAS minus row [95% CI]',
             'paired t p (Holm)', 'Wilcoxon p (Holm)']
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
        c = stats.get(variant)
        if c is None or c['mean_difference'] is None:
            cells_ += ['-', '-', '-']
        else:
            cells_ += [_difference(c) + f' (n = {c["n"]})',
                       f'{_p(c["t_p"])} ({_p(c["holm_t_p"])})',
                       f'{_p(c["wilcoxon_p"])} ({_p(c["holm_wilcoxon_p"])})']
        lines.append('| ' + ' | '.join(cells_) + ' |')
    return '\n'.join(lines)


def conclusion(stats):
    """One plain sentence per baseline: did the search beat it, by the
    Holm-corrected paired t-test at `paired.ALPHA`?"""
    out = []
    for baseline in BASELINES:
        c = stats.get(baseline)
        if c is None or c['mean_difference'] is None:
            continue
        label = _label(baseline)[0]
        verdict = 'beat' if c['mean_difference'] > 0 else 'did not beat'
        head = (f'HourNAS {verdict} {label} by {c["mean_difference"]:+.2%} '
                f'test accuracy, paired over {c["n"]} seed'
                + ('s' if c['n'] != 1 else ''))
        if c['t_p'] is None:
            out.append(f'{head}: no paired t-test ({c["t_note"]}).')
            continue
        significant = c['holm_t_p'] < paired.ALPHA
        if c['wilcoxon_p'] is None:
            wilcoxon = f'no Wilcoxon p ({c["wilcoxon_note"]})'
        else:
            wilcoxon = f'Wilcoxon p = {_p(c["wilcoxon_p"])}' + (
                f' ({c["wilcoxon_note"]})' if c['wilcoxon_note'] else '')
        out.append(
            f'{head} (95% CI {c["ci_low"]:+.2%} to {c["ci_high"]:+.2%}; '
            f't({c["df"]}) = {c["t"]:.2f}, p = {_p(c["t_p"])}, Holm p = '
            f'{_p(c["holm_t_p"])}; {wilcoxon}): '
            + ('a significant difference (Holm-corrected p < '
               f'{paired.ALPHA}).' if significant else
               'not a significant difference (Holm-corrected p >= '
               f'{paired.ALPHA}).'))
    return out


def analyze(results, targets):
    """{'rows', 'statistics', 'conclusion', 'vital_agreement'} of the
    cells' `results` (`vital_agreement.analyze`: do the rows' stage 1
    agree on the vital ops?)."""
    stats = statistics(results)
    return {'rows': summarize(results, targets), 'statistics': stats,
            'conclusion': conclusion(stats),
            'vital_agreement': vital_agreement.analyze(results, DEFAULT)}


def markdown(config, data):
    """ablation.md: the table, the conclusion and the footer of `data`."""
    md = [table(config, data['rows'], data['statistics']), '']
    if data.get('evaluated_on', 'test') != 'test':
        md += [f'Accuracies on the {data["evaluated_on"]}, not the test '
               'split: for choosing settings, not a final result.', '']
    md += [f'- {line}' for line in data['conclusion']]
    agreement = vital_agreement.lines(
        data.get('vital_agreement', {}),
        {v: _label(v)[0] for v in data['results']})
    if agreement:
        md += ['', 'Do the searches agree on the vital ops stage 1 fixes? '
               '(the random row draws them at random):', '']
        md += [f'- {line}' for line in agreement]
    elapsed = (datetime.datetime.fromisoformat(data['written'])
               - datetime.datetime.fromisoformat(data['started']))
    m = data['machine']
    jobs = sum(len(rs) for rs in data['results'].values())
    md += ['', f'Command: `{data["command"]}`; {jobs} jobs, '
           f'{data["job_wall_seconds"] / 60:.0f} min of job wall time and '
           f'{data["job_cpu_seconds"] / 60:.0f} min of CPU time; started '
           f'{data["started"]}, table written {data["written"]} '
           f'({elapsed.total_seconds() / 60:.0f} min later, resumptions '
           f'included). {m["cpus"]} CPUs, load average {m["load_average"]}, '
           f'Python {m["python"]}, TensorFlow {m["tensorflow"]}, Keras '
           f'{m["keras"]}, commit {m["commit"]}.']
    if 'restored_from' in data:
        r = data['restored_from']
        md.append(f'{len(r["cells"])} cells restored from {r["path"]} '
                  f'(`{r["command"]}`, started {r["started"]}, commit '
                  f'{r["commit"]}); their times are that run\'s.')
    if 'reanalyzed' in data:
        md.append(f'Statistics recomputed from the cells\' results on '
                  f'{data["reanalyzed"]["date"]} at commit '
                  f'{data["reanalyzed"]["commit"]}.')
    return '\n'.join(md) + '\n'


def write_outputs(config, command, started):
    """results.json and ablation.md from the finished cells."""
    results = collect(config)
    jobs = [r for rs in results.values() for r in rs]
    data = {
        'command': command,
        'started': started,
        'written': datetime.datetime.now().isoformat(timespec='seconds'),
        'machine': machine(),
        'search_config': dataclasses.asdict(config.search),
        'train_epochs': config.train_epochs,
        'train_examples': config.train_examples,
        # The accuracies' split: the test split, or the held-out part of
        # the training split (--validation_fraction).
        'evaluated_on': ('test' if not config.search.validation_fraction
                                         else 'held-out validation split ('
                         f'{config.search.validation_fraction} of the '
                         'training split)'),
        'seeds': list(config.seeds),
        'random_k': config.random_k,
        'job_wall_seconds': sum(r['job_wall_seconds'] for r in jobs),
        'job_cpu_seconds': sum(r['job_cpu_seconds'] for r in jobs),
        **analyze(results, config.search.targets),
        'results': results,
    }
    restored = ablation_restore.restored_from(config.output_dir)
    if restored:
        data['restored_from'] = restored
    jsonio.write_json(os.path.join(config.output_dir, 'results.json'), data)
    with open(os.path.join(config.output_dir, 'ablation.md'), 'w') as f:
        f.write(markdown(config, data))
    return data


def table_config(data, output_dir='.'):
    """The `AblationConfig` a results.json's table is drawn with (its
    targets, seeds and rows)."""
    from hournas_tf.experiments.ablation import AblationConfig
    from hournas_tf.nas.config import SearchConfig

    return AblationConfig(
        output_dir=output_dir, seeds=tuple(data['seeds']),
        search=SearchConfig(targets=data['search_config']['targets']),
        variants=tuple(v for v in VARIANTS if data['results'].get(v)))


def reanalyze(path):
    """Recomputes the rows, statistics and conclusion of the results.json
    at `path` from its cells' results (nothing runs), rewrites it with the
    date and commit of the recomputation, and returns (data, markdown)."""
    data = jsonio.read_json(path, 'ablation results')
    data.pop('comparison', None)  # the Welch comparison it replaces
    data.update(analyze(data['results'],
                        data['search_config']['targets']))
    data['reanalyzed'] = {
        'date': datetime.date.today().isoformat(),
        'commit': provenance.git_commit(REPO, mark_dirty=True)}
    jsonio.write_json(path, data)
    return data, markdown(table_config(data), data)


def machine():
    """Where and with what the table was made."""
    m = provenance.machine()
    return {'platform': m['platform'], 'cpus': m['cpu_count'],
            'python': m['python'], 'tensorflow': m['tensorflow'],
            'keras': m['keras'],
            'commit': provenance.git_commit(REPO, mark_dirty=True),
            'load_average': [round(x, 2) for x in m['loadavg']]}
