"""Prints the learning curves and results of search runs as markdown.

    python tools/search_summary.py runs/demo
    python tools/search_summary.py runs/s0 runs/s1 runs/s2   # side by side

Per run and epoch (from `history.jsonl`): training and architecture-split
accuracy, the share of trained architectures within tolerance (and of the
steps' first draws, the distribution itself), the smallest and the median
per-layer norm of the cross-entropy part of the architecture gradient and
the median of its resource part, the range of the searched layers' top op
probabilities, and in stage 2 the proposals' mean top probability and
`rows_changed` (the (proposal, layer) rows whose most probable op moved
since the stage started). Then one row per run (from `arch.json`): the
derived architecture, its relative errors before and after repair, the
repaired layers, stage 2's start (share of draws within tolerance, mean
top probability), the rows changed, and the stage times. With two or
more finished runs, a last line says how often they agree on the vital
ops stage 1 fixed (`experiments.vital_agreement`: the share of (run
pair, vital layer) with the same op, against uniform picks).
"""

import json
import os
import statistics

from hournas_tf.common import errors
from hournas_tf.common import jsonio
from hournas_tf.common import runner
from hournas_tf.experiments import vital_agreement
from hournas_tf.spaces.architecture import Architecture


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


def _median(values):
    return statistics.median(values) if values else None


def _num(value, spec):
    return '-' if value is None else format(value, spec)


def _moved(moved):
    return f'{moved["total"]}/{moved["rows"]}' if moved else '-'


def epoch_table(records):
    """Markdown rows: one per epoch of both stages."""
    lines = ['| stage | epoch | accuracy | arch accuracy | within tolerance '
             '| first draw within | CE grad min / median | resource grad '
             'median | top op probability | mean top probability | rows '
             'changed |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|']
    for r in records:
        grads = list(r.get('arch_grad_norm', {}).values())
        resource = list(r.get('resource_grad_norm', {}).values())
        top = [max(p.values()) for p in r['op_probabilities'].values()]
        moved = r.get('rows_changed')
        lines.append(
            f'| {r["stage"]} | {r["epoch"]} | {r["accuracy"]:.3f} '
            f'| {r["arch_accuracy"]:.3f} '
            f'| {_num(r.get("within_tolerance"), ".2f")} '
            f'| {_num(r.get("draw_within_tolerance"), ".2f")} '
            f'| {f"{min(grads):.1e} / {_median(grads):.1e}" if grads else "-"}'
            f' | {_num(_median(resource), ".1e")} '
            f'| {min(top):.2f}-{max(top):.2f} '
            f'| {_num(r.get("mean_top_probability"), ".3f")} '
            f'| {_moved(moved)} |')
    return '\n'.join(lines)


def result_row(run_dir):
    """One markdown row of a finished run's `arch.json` (or 'unfinished')."""
    path = os.path.join(run_dir, 'arch.json')
    if not os.path.isfile(path):
        return f'| {run_dir} | unfinished | | | | | | |'
    arch = jsonio.read_json(path, 'architecture file')
    search = arch['search']
    seconds = search.get('seconds', {})
    times = ', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())
    before = search.get('before_repair', {}).get('relative_error', {})
    repaired = search.get('repaired_layers') or []
    repaired = repaired + [f'{n} (before stage 2)' for n in
                           search.get('proposal_repaired_layers') or []]
    ops = arch['string'].split(':', 1)[-1]
    start = search.get('stage2_start') or search.get(
        'proposal_optimization', {}).get('stage2_start', {})
    moved = search.get('rows_changed')
    return (f'| {run_dir} | `{ops}` | {_errors(before)} '
            f'| {_errors(search["relative_error"])} '
            f'| {", ".join(map(str, repaired)) or "none"} '
            f'| {_num(start.get("share_within_tolerance"), ".2f")} / '
            f'{_num(start.get("mean_top_probability"), ".3f")} '
            f'| {_moved(moved)} '
            f'| {times} |')


def vital_line(run_dirs):
    """How often the finished runs among `run_dirs` agree on the vital
    ops their stage 1 fixed (`stage1.json`), or None below two runs."""
    ops, candidates = {}, None
    for run_dir in run_dirs:
        paths = [os.path.join(run_dir, name)
                 for name in ('stage1.json', 'arch.json')]
        if not all(os.path.isfile(p) for p in paths):
            continue
        vital = jsonio.read_json(paths[0], 'stage-1 result')['vital_ops']
        if not vital:
            continue
        space = Architecture.from_string(jsonio.read_json(
            paths[1], 'architecture file')['string']).search_space()
        layers = sorted(int(i) for i in vital)
        ops[run_dir] = tuple(vital[str(i)] for i in layers)
        candidates = tuple(len(space.layers[i].candidates) for i in layers)
    if len(ops) < 2:
        return None
    s = vital_agreement.across_seeds(ops, candidates)
    return (f'Vital ops stage 1 fixed, across these {s["seeds"]} runs: '
            f'{s["agreement"]:.0%} of (run pair, vital layer) share the op '
            f'(uniform picks: {s["chance"]:.0%}; p = {s["p"]:.3g} under '
            'uniform picks); the most frequent op of a layer is picked by '
            f'{s["modal_share"]:.0%} of the runs on average.')


def summary(run_dirs):
    """The whole markdown text for `run_dirs`."""
    parts = []
    for run_dir in run_dirs:
        parts += [f'### {run_dir}', '', epoch_table(read_history(run_dir)),
                  '']
    parts += ['| run | architecture | error before repair | error '
              '| repaired layers | stage 2 start: within tolerance / mean '
              'top probability | rows changed | time |',
              '|---|---|---|---|---|---|---|---|']
    parts += [result_row(d) for d in run_dirs]
    line = vital_line(run_dirs)
    if line:
        parts += ['', line]
    return '\n'.join(parts)


def main(argv):
    if len(argv) < 2:
        raise errors.UserError('give one or more search output folders: '
                               'python tools/search_summary.py RUN_DIR...')
    print(summary(argv[1:]))


if __name__ == '__main__':
    runner.run(main)
