"""Writes BENCHMARKS.md from the results of tools/benchmark.py.

    python tools/benchmarks_md.py          # benchmarks/ -> BENCHMARKS.md
    python tools/benchmarks_md.py --results=DIR --output=FILE

Every number in the page comes from `<results>/results-*.json`: the
machine, versions, date and command of each run, each figure with its goal
and verdict (met / MISS with its measured cause / no goal), and every case
with its status, time and machine load.
"""

import glob
import os

from absl import flags

from hournas_tf.common import errors
from hournas_tf.common import jsonio
from hournas_tf.common import runner

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERDICTS = {True: 'met', False: '**MISS**', None: '-'}
FIGURES = {
    'a': 'stage-2 step, single path vs all paths',
    'b': 'one fixed path: supernet vs standalone model',
    'c': 'stage-1 step vs stage-2 step',
    'd': 'first step (build + trace + first call) and the demo search',
    'e': 'space proposals',
    'f': 'peak memory, single vs all paths',
    'g': 'input pipeline vs train step',
    'h': 'several budgets in one search vs one search',
    'gpu': 'ImageNet-shape throughput (the GPU plan)',
}


def define_flags():
    """Defines the tool's flags (only when run as a script)."""
    flags.DEFINE_string('results', os.path.join(REPO, 'benchmarks'),
                        'Folder of results-*.json.')
    flags.DEFINE_string('output', os.path.join(REPO, 'BENCHMARKS.md'),
                        'The page to write.')


def load_results(folder):
    """[(file name, results dict)] of `folder`/results-*.json, sorted."""
    paths = sorted(glob.glob(os.path.join(folder, 'results-*.json')))
    if not paths:
        raise errors.UserError(f'no results-*.json in {folder}; run '
                               'python tools/benchmark.py first')
    out = []
    for path in paths:
        data = jsonio.read_json(path, 'benchmark results')
        for key in ('figures', 'cases', 'machine'):
            if key not in data:
                raise errors.UserError(f'{path}: not a benchmark result '
                                       f'(no {key!r})')
        out.append((os.path.basename(path), data))
    return out


def _cell(text):
    return str(text).replace('|', '\\|').replace('\n', ' ')


def _value(value, unit):
    if value is None:
        return 'not measured'
    if isinstance(value, list):
        text = ' / '.join(_number(v) for v in value)
    else:
        text = _number(value)
    return f'{text} {unit}'.strip()


def _number(value):
    if isinstance(value, float):
        if abs(value) >= 100:
            return f'{value:,.0f}'
        return f'{value:.3g}'
    return str(value)


def _load(values):
    return ' / '.join(f'{v:.1f}' for v in values[:3]) if values else '?'


def render_run(name, data):
    """The Markdown section of one results file."""
    m = data['machine']
    lines = [
        f'## {name}: {data.get("mode", "")}', '',
        f'- command: `{data.get("command", "?")}`',
        f'- date: {data.get("date", "?")}, commit '
        f'{data.get("commit") or "?"}, run time '
        f'{data.get("seconds", 0):.0f} s wall (this process); the cases\' '
        f'own wall times add up to '
        f'{sum(c.get("process_wall", 0) for c in data["cases"].values()):.0f}'
        ' s',
        f'- machine: {m.get("cpu")}, {m.get("cpu_count")} cores, '
        f'{m.get("memory_gb")} GB RAM, GPUs: '
        f'{", ".join(m.get("gpus") or []) or "none"}',
        f'- versions: Python {m.get("python")}, TensorFlow '
        f'{m.get("tensorflow")}, Keras {m.get("keras")}, NumPy '
        f'{m.get("numpy")} ({m.get("platform")})',
        f'- load average (1/5/15 min) at start {_load(m.get("loadavg"))}, '
        f'at end {_load(m.get("loadavg_end"))}',
        '',
        '| | figure | measured | goal | verdict | notes |',
        '| --- | --- | --- | --- | --- | --- |',
    ]
    for fig in data['figures']:
        lines.append('| ' + ' | '.join(_cell(c) for c in (
            fig['figure'], fig['name'], _value(fig['value'], fig['unit']),
            fig['goal'] or '-', VERDICTS[fig['met']],
            fig['note'] or '')) + ' |')
    missing = [c for c in data.get('planned', []) if c not in data['cases']]
    if missing:
        lines += ['', f'Planned but not run (the run was stopped): '
                  f'{", ".join(missing)}.']
    lines += ['', '| case | kind | status | wall s | CPU s | load before / '
              'after (1 min) |', '| --- | --- | --- | --- | --- | --- |']
    for case_name, case in data['cases'].items():
        status = case['status'] if case['status'] == 'ok' else \
            f'failed: {case.get("error", "")}'
        if case.get('reused_from'):
            status += f' (from {case["reused_from"]})'
        cpu = case.get('cpu')
        lines.append('| ' + ' | '.join(_cell(c) for c in (
            case_name, case['kind'], status,
            f'{case.get("process_wall", 0):.0f}',
            '-' if cpu is None else f'{cpu:.0f}',
            f'{case["loadavg_before"][0]:.1f} / '
            f'{case["loadavg_after"][0]:.1f}')) + ' |')
    return '\n'.join(lines) + '\n'


def render(runs):
    """The whole page from [(file name, results dict)]."""
    met = sum(f['met'] is True for _, d in runs for f in d['figures'])
    miss = sum(f['met'] is False for _, d in runs for f in d['figures'])
    parts = [
        '# Benchmarks', '',
        'Generated by `python tools/benchmarks_md.py` from '
        '`benchmarks/results-*.json`, which `python tools/benchmark.py` '
        'writes (see docs/benchmarks.md for the method); do not edit by '
        'hand. Step ratios are medians of per-round ratios of contenders '
        'timed call by call in one process; first-step goals are judged in '
        'process CPU seconds (the machine may be shared: see the load).',
        '', f'Goals met: {met}, missed: {miss} (each miss gives its measured '
        'cause in the notes).', '',
        'Figures: ' + '; '.join(f'{k}: {v}' for k, v in FIGURES.items())
        + '.', '']
    for name, data in runs:
        parts.append(render_run(name, data))
    return '\n'.join(parts)


SPEED_COLUMNS = ('trace_cpu_s', 'first_call_cpu_s', 'first_step_cpu_s',
                 'step_cpu_s')


def speed_files(folder):
    """(build_time, other): the `folder`/speed/*.json files, each read
    once and sorted by name, as [(file name, record)]. `build_time` holds
    the `tools/build_time.py --json=...` results; `other` the files with
    none of their keys (measurements of the other scripts in
    benchmarks/speed/). A file with some but not all of them is refused."""
    build_time, other = [], []
    keys = SPEED_COLUMNS + ('space', 'stage')
    for path in sorted(glob.glob(os.path.join(folder, 'speed', '*.json'))):
        data = jsonio.read_json(path, 'build-time result')
        missing = [k for k in keys if k not in data]
        if len(missing) == len(keys):
            other.append((os.path.basename(path), data))
            continue
        if missing:
            raise errors.UserError(f'{path}: not a tools/build_time.py '
                                   f'result (no {missing[0]!r})')
        build_time.append((os.path.basename(path), data))
    return build_time, other


def load_speed(folder):
    """The `tools/build_time.py` results of `speed_files(folder)`."""
    return speed_files(folder)[0]


def load_other(folder):
    """The other scripts' measurements of `speed_files(folder)`."""
    return speed_files(folder)[1]


def render_other(records):
    """The 'Other speed measurements' section: one row per file."""
    if not records:
        return ''
    lines = [
        '## Other speed measurements (benchmarks/speed/)', '',
        'Results of the other scripts in benchmarks/speed/; docs/speed.md '
        'gives their numbers and what each measures.', '',
        '| file | date, commit | command |', '| --- | --- | --- |']
    for name, r in records:
        command = r.get('command') or r.get('script')
        lines.append(f'| {_cell(name)} | {r.get("date") or "-"}, '
                     f'{r.get("commit") or "-"} | '
                     + (f'`{_cell(command)}`' if command else '-') + ' |')
    return '\n'.join(lines) + '\n'


def render_speed(records):
    """The 'Speed changes' section: one row per build-time record."""
    if not records:
        return ''
    lines = [
        '## Speed changes (`tools/build_time.py`)', '',
        'Each row is one `python tools/build_time.py ... --json=FILE` run '
        '(benchmarks/speed/), one process per variant, in process CPU '
        'seconds; docs/speed.md says what each change is.', '',
        '| file | what | space, stage, layers | trace | first call | '
        'first step | step | load | date, commit |',
        '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |']
    for name, r in records:
        lines.append(
            f'| {_cell(name)} | {_cell(r.get("label") or "-")} '
            f'| {r["space"]}, stage {r["stage"]}, '
            f'{r.get("searched_layers", "?")} searched '
            + ''.join(f'| {r[k]:.2f} ' if k == 'step_cpu_s' else
                      f'| {r[k]:.1f} ' for k in SPEED_COLUMNS)
            + f'| {r.get("load_1min", float("nan")):.1f} '
            f'| {r.get("date") or "-"}, {r.get("commit") or "-"} |')
    return '\n'.join(lines) + '\n'


def main(argv):
    if len(argv) > 1:
        raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
    runs = load_results(FLAGS.results)
    text = render(runs)
    build_time, other = speed_files(FLAGS.results)
    for section in (render_speed(build_time), render_other(other)):
        if section:
            text = text.rstrip('\n') + '\n\n' + section
    with open(FLAGS.output, 'w') as f:
        f.write(text)
    print(f'wrote {FLAGS.output} from {len(runs)} result file(s)')


if __name__ == '__main__':
    define_flags()
    runner.run(main)
