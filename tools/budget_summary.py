"""Prints the budgets of several-budget searches and dry runs as markdown
(docs/multi_budget.md).

    python -m tools.budget_summary runs/fbnet-dry runs/fm-budgets3
    python -m tools.budget_summary runs/fm-budgets3 --compare=runs/fm-single

Per folder: a dry run's (`dry_run.json`) proposals per budget (how many
proposals' most probable architectures are within tolerance before any
repair, the largest miss per objective, the share of 10,000 draws within
tolerance); a search's (`budgets.json`) architecture per budget (achieved
values, errors before and after repair, inherited-weight accuracy) and its
stage times. `--compare=RUN` adds a single-budget search's times and the
ratio of the totals. The first line gives the date, the machine and the
versions.
"""

import datetime
import json
import os
import platform

from absl import flags

from hournas_tf.common import errors
from hournas_tf.common import provenance
from hournas_tf.common import runner


def _read(path):
    with open(path) as f:
        return json.load(f)


def _human(value):
    from hournas_tf.resources.counting import human

    return human(value)


def _targets(targets):
    return ' / '.join(f'{o} {_human(v)}' for o, v in targets.items())


def dry_run_rows(run_dir):
    """Markdown rows of a dry run's budgets."""
    report = _read(os.path.join(run_dir, 'dry_run.json'))
    budgets = report['proposal_optimization']['budgets']
    lines = ['| budget | targets | proposals within tolerance before '
             'repair | largest miss | share of 10,000 draws within '
             'tolerance |', '|---|---|---:|---|---:|']
    for b in budgets:
        props = b['proposals']
        ok = sum(p['within_tolerance'] for p in props)
        worst = ', '.join(
            f'{o} {max(abs(p[f"{o}_error"]) for p in props):.2%}'
            for o in b['targets'])
        lines.append(f'| {b["budget"]} | {_targets(b["targets"])} | '
                     f'{ok}/{len(props)} | {worst} | '
                     f'{b["share_within_tolerance"]:.1%} |')
    return lines


def _errors(rel):
    return ', '.join(f'{o} {v:+.2%}' for o, v in rel.items())


def _seconds(seconds):
    return ', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())


def search_rows(run_dir):
    """Markdown rows of a several-budget search's budgets.json."""
    table = _read(os.path.join(run_dir, 'budgets.json'))
    lines = ['| budget | targets | achieved | error before repair | error '
             '| within tolerance | inherited-weight accuracy | '
             'architecture |', '|---|---|---|---|---|---|---:|---|']
    for r in table['budgets']:
        acc = r.get('inherited_accuracy')
        lines.append(
            f'| {r["budget"]} | {_targets(r["targets"])} | '
            f'{_targets(r["achieved"])} | '
            f'{_errors(r["before_repair"]["relative_error"])} | '
            f'{_errors(r["relative_error"])} | '
            f'{"yes" if r["within_tolerance"] else "no"} | '
            f'{"-" if acc is None else format(acc, ".3f")} | '
            f'`{r["architecture"]}` |')
    lines.append('')
    lines.append(f'Search time: {_seconds(table.get("seconds", {}))}.')
    return lines


def compare_line(run_dir, single_dir):
    """One line: both runs' stage times (arch.json: the whole search,
    writing included) and the ratio of their totals."""
    many = _read(os.path.join(run_dir, 'arch.json'))['search']['seconds']
    one = _read(os.path.join(single_dir, 'arch.json'))['search']['seconds']
    return (f'{len(_read(os.path.join(run_dir, "budgets.json"))["budgets"])}'
            f' budgets: {_seconds(many)}; one budget ({single_dir}): '
            f'{_seconds(one)}; ratio of the totals '
            f'{many["total"] / one["total"]:.2f}x')


def header():
    """Date, machine and versions."""
    import numpy

    versions = f'Python {platform.python_version()}, numpy {numpy.__version__}'
    tensorflow = provenance.version('tensorflow')
    if tensorflow:
        versions += f', TensorFlow {tensorflow}'
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else None
    return (f'{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} '
            f'UTC, {platform.machine()} with {os.cpu_count()} CPUs'
            + (f' (load average {load:.1f})' if load is not None else '')
            + f', {versions}')


def summary(run_dirs, single_dir=None):
    """The markdown text for `run_dirs` (dry runs or searches)."""
    parts = [header(), '']
    for run_dir in run_dirs:
        parts.append(f'### {run_dir}')
        parts.append('')
        if os.path.isfile(os.path.join(run_dir, 'budgets.json')):
            parts += search_rows(run_dir)
            if single_dir:
                parts += ['', compare_line(run_dir, single_dir)]
        elif os.path.isfile(os.path.join(run_dir, 'dry_run.json')):
            parts += dry_run_rows(run_dir)
        else:
            raise errors.UserError(
                f'{run_dir} has neither budgets.json nor dry_run.json: not '
                'a search or dry run with --budgets')
        parts.append('')
    return '\n'.join(parts)


def define_flags():
    flags.DEFINE_string('compare', None, 'A single-budget search of the '
                        'same length: its times and the ratio of totals.')


def main(argv):
    runs, single = argv[1:], flags.FLAGS.compare
    if not runs:
        raise errors.UserError('give one or more output folders of searches'
                               ' or dry runs with --budgets: python '
                               '-m tools.budget_summary RUN_DIR...')
    if single and not os.path.isfile(os.path.join(single, 'arch.json')):
        raise errors.UserError(f'--compare={single}: no arch.json there')
    print(summary(runs, single))


if __name__ == '__main__':
    define_flags()
    runner.run(main)
