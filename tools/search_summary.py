"""Prints the learning curves and results of search runs as markdown.

    python tools/search_summary.py runs/demo
    python tools/search_summary.py runs/s0 runs/s1 runs/s2   # side by side

Per run and epoch (from `history.jsonl`): training and architecture-split
accuracy, the share of trained architectures within tolerance (and of the
steps' first draws, the distribution itself), the smallest
per-layer cross-entropy gradient norm of the architecture logits, and the
range of the searched layers' top op probabilities. Then one row per run
(from `arch.json`): the derived architecture, its relative errors before
and after repair, the repaired layers and the stage times.
"""

import json
import os
import sys

if __package__ in (None, ''):  # Run as `python tools/search_summary.py`.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))))

from hournas_tf import errors  # noqa: E402


def read_history(run_dir):
    """The records of `run_dir/history.jsonl`, one dict per epoch."""
    path = os.path.join(run_dir, 'history.jsonl')
    if not os.path.isfile(path):
        raise errors.UserError(f'{path} does not exist; give the output '
                               f'folder of python -m hournas_tf.search')
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _errors(rel):
    return ', '.join(f'{k} {v:+.1%}' for k, v in sorted(rel.items()))


def epoch_table(records):
    """Markdown rows: one per epoch of both stages."""
    lines = ['| stage | epoch | accuracy | arch accuracy | within tolerance '
             '| first draw within | min grad norm | top op probability |',
             '|---|---:|---:|---:|---:|---:|---:|---|']
    for r in records:
        grads = list(r.get('arch_grad_norm', {}).values())
        top = [max(p.values()) for p in r['op_probabilities'].values()]
        within = r.get('within_tolerance')
        first = r.get('draw_within_tolerance')
        lines.append(
            f'| {r["stage"]} | {r["epoch"]} | {r["accuracy"]:.3f} '
            f'| {r["arch_accuracy"]:.3f} '
            f'| {"-" if within is None else f"{within:.2f}"} '
            f'| {"-" if first is None else f"{first:.2f}"} '
            f'| {f"{min(grads):.1e}" if grads else "-"} '
            f'| {min(top):.2f}-{max(top):.2f} |')
    return '\n'.join(lines)


def result_row(run_dir):
    """One markdown row of a finished run's `arch.json` (or 'unfinished')."""
    path = os.path.join(run_dir, 'arch.json')
    if not os.path.isfile(path):
        return f'| {run_dir} | unfinished | | | | |'
    with open(path) as f:
        arch = json.load(f)
    search = arch['search']
    seconds = search.get('seconds', {})
    times = ', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())
    before = search.get('before_repair', {}).get('relative_error', {})
    repaired = search.get('repaired_layers') or []
    ops = arch['string'].split(':', 1)[-1]
    return (f'| {run_dir} | `{ops}` | {_errors(before)} '
            f'| {_errors(search["relative_error"])} '
            f'| {", ".join(map(str, repaired)) or "none"} | {times} |')


def summary(run_dirs):
    """The whole markdown text for `run_dirs`."""
    parts = []
    for run_dir in run_dirs:
        parts += [f'### {run_dir}', '', epoch_table(read_history(run_dir)),
                  '']
    parts += ['| run | architecture | error before repair | error '
              '| repaired layers | time |', '|---|---|---|---|---|---|']
    parts += [result_row(d) for d in run_dirs]
    return '\n'.join(parts)


def main(argv):
    if len(argv) < 2:
        raise errors.UserError('give one or more search output folders: '
                               'python tools/search_summary.py RUN_DIR...')
    print(summary(argv[1:]))


if __name__ == '__main__':
    errors.run(main)
