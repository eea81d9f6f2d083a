"""Builds a latency table of a space: LiteRT on this CPU, or a phone's CSV.

    python tools/build_latency_table.py --space=fbnet --image_size=224
    python tools/build_latency_table.py --space=efficientnet --image_size=32 \\
        --width_multiplier=0.25 --num_classes=10 --evaluate=20 \\
        --output=eff32.json --json=eff32_accuracy.json
    python tools/build_latency_table.py --space=fbnet --export_blocks=blocks
    python tools/build_latency_table.py --space=fbnet \\
        --from_benchmark_csv=phone.csv --device="Pixel 7, 1 thread"

Every block (stem, each non-skip op of each layer, head, classifier) is
converted to a small TFLite model as an export converts it, then all blocks
are timed in interleaved rounds (docs/deploy.md). With `--calibrate=N`
(default 10) N random whole architectures are converted and timed in the
same rounds and `whole = a * sum + b` is fitted and stored in the table.
`--evaluate=M` times M other random architectures in the same rounds and
reports how well the table predicts them: the median and largest absolute
relative error of the raw sum of entries and of the calibrated prediction
(`--json` writes every number). A load average above half the cores is
warned about: such latencies are noisy upper bounds.

`--export_blocks=DIR` writes the block models (and `blocks.json`) instead
of timing them, to time them with TFLite's `benchmark_model` on a device;
`--from_benchmark_csv` reads those timings back (one row per block:
`block` and `avg_us`, `avg_ms`, `median_us` or `median_ms`, optionally
`std_us`/`std_ms`; README, "Latency tables").
"""

import dataclasses
import os
import sys
import time

import numpy as np
from absl import flags

from hournas_tf import command_flags
from hournas_tf import spaces
from hournas_tf.common import jsonio
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError
from hournas_tf.resources import latency as latency_lib

FLAGS = flags.FLAGS


def define_flags():
    """Defines the tool's flags (only when run as a script)."""
    command_flags.define_space_flags(dict(
        space=None, image_size=224, width_multiplier=1.0, num_classes=1000))
    flags.DEFINE_integer('threads', 1, 'LiteRT threads.', lower_bound=1)
    flags.DEFINE_enum('mode', 'fp32', latency_lib.MODES, 'fp32 or int8 '
                      '(full-integer) models.')
    flags.DEFINE_string('output', None, 'Table file (default: latency_'
                        '<space>_<size>_w<width>_<mode>_t<threads>.json; an '
                        'existing file is refused).')
    flags.DEFINE_integer('rounds', 10, 'Interleaved timing rounds.',
                         lower_bound=1)
    flags.DEFINE_integer('runs', 30, 'Timed invokes per block per round.',
                         lower_bound=1)
    flags.DEFINE_integer('warmup', 5, 'Warm-up invokes per block per '
                         'round.', lower_bound=0)
    flags.DEFINE_integer('calibrate', 10, 'Random whole architectures '
                         'timed to fit whole = a * sum + b (0: none).',
                         lower_bound=0)
    flags.DEFINE_integer('evaluate', 0, 'Other random whole architectures '
                         'timed to measure the prediction error.',
                         lower_bound=0)
    flags.DEFINE_string('json', None, 'Write the measurement (and the '
                        'evaluation) to this new JSON file.')
    flags.DEFINE_integer('seed', 0, 'Seed of the random architectures and '
                         'the round order.')
    flags.DEFINE_string('export_blocks', None, 'Write the block models to '
                        'this new folder and stop (for benchmark_model).')
    flags.DEFINE_string('from_benchmark_csv', None, 'Build the table from '
                        "benchmark_model timings of the blocks (no local "
                        'timing).')
    flags.DEFINE_string('device', None, 'Device name stored in the table '
                        '(default: this CPU).')


def log(message):
    print(f'[hournas] {message}', flush=True)


def default_output(f):
    return (f'latency_{f.space}_{f.image_size}_w{f.width_multiplier:g}_'
            f'{f.mode}_t{f.threads}.json')


def warn_if_busy(benchmark):
    load = benchmark.load_average()
    if benchmark.busy(load):
        print(f'warning: load average {load} on {os.cpu_count()} cores: '
              'the latencies measured now are noisy upper bounds',
              file=sys.stderr, flush=True)


def export_blocks(space, folder, mode, seed):
    from hournas_tf.exporting import latency_measure

    if os.path.exists(folder):
        raise UserError(f'export_blocks folder {folder} already exists')
    blocks = latency_lib.space_blocks(space)
    models = {b.name: latency_measure.block_tflite(space, b, mode, seed)
              for b in blocks}
    os.makedirs(folder)
    for name, data in models.items():
        with open(os.path.join(folder, f'{name}.tflite'), 'wb') as f:
            f.write(data)
    jsonio.write_json(os.path.join(folder, 'blocks.json'), {
        'space': space.name, 'image_size': space.image_size,
        'width_multiplier': space.width_multiplier,
        'num_classes': space.num_classes, 'mode': mode,
        'blocks': list(models)}, indent=1)
    log(f'wrote {len(models)} block models to {folder}/')


def prediction_errors(table, archs, timings):
    """Raw and calibrated |predicted - measured| / measured of `archs`."""
    measured = [t['median_ms'] for t in timings]
    rows = [{'architecture': a.to_string(), 'measured_ms': m,
             'spread': t['spread'], 'sum_ms': table.sum_ms(a.ops),
             'predicted_ms': table.predict_ms(a.ops)}
            for a, m, t in zip(archs, measured, timings)]
    result = {'architectures': rows}
    for name, key in (('raw_error', 'sum_ms'),
                      ('calibrated_error', 'predicted_ms')):
        errors_ = latency_lib.relative_errors([r[key] for r in rows],
                                              measured)
        result[name] = {'median': float(np.median(errors_)),
                        'max': float(np.max(errors_))}
    return result


def measure(space, f):
    """Times the blocks, with the calibration and evaluation architectures
    in the same rounds; returns (table, evaluation dict or None)."""
    from hournas_tf.exporting import benchmark
    from hournas_tf.exporting import latency_measure

    warn_if_busy(benchmark)
    calibration = latency_measure.random_architectures(
        space, f.calibrate, f.seed)
    evaluation = latency_measure.random_architectures(
        space, f.evaluate, f.seed + 1,
        exclude=[a.to_string() for a in calibration])
    table, timings, info = latency_measure.measure(
        space, f.mode, f.threads, f.rounds, f.runs, f.warmup, f.seed,
        calibration + evaluation, f.device, log)
    warn_if_busy(benchmark)
    table.info['command'] = ' '.join(sys.argv)
    if calibration:
        fit = latency_lib.fit_calibration(
            [table.sum_ms(a.ops) for a in calibration],
            [t['median_ms'] for t in timings[:len(calibration)]])
        fit['architectures_used'] = [a.to_string() for a in calibration]
        log(f'calibration: whole = {fit["a"]:.3f} * sum + {fit["b"]:.4f} '
            f'ms (R^2 {fit["r2"]:.3f}, {len(calibration)} architectures)')
        table = dataclasses.replace(table, calibration=fit)
    if not evaluation:
        return table, None
    result = prediction_errors(table, evaluation,
                               timings[len(calibration):])
    loads = info['load_average']
    log(f'{len(evaluation)} other architectures, load average '
        f'{min(loads)}-{max(loads)} on {os.cpu_count()} cores: raw sum of '
        f'entries off by {result["raw_error"]["median"]:.1%} (median), '
        f'{result["raw_error"]["max"]:.1%} (max)'
        + (f'; calibrated {result["calibrated_error"]["median"]:.1%}, '
           f'{result["calibrated_error"]["max"]:.1%}' if calibration
           else ''))
    return table, result


def from_csv(space, f):
    timings = latency_lib.read_benchmark_csv(f.from_benchmark_csv)
    info = {'created': time.strftime('%Y-%m-%d %H:%M'),
            'csv': f.from_benchmark_csv, 'spread': 'std / time'}
    return latency_lib.table_from_timings(
        space, timings, f.threads, f.mode, f.device or 'benchmark_model',
        'benchmark_csv', info)


def main(argv):
    if len(argv) > 1:
        raise UserError(f'unexpected arguments {argv[1:]}; use --flags')
    f = FLAGS
    if not f.space:
        raise UserError('give --space (' + ', '.join(spaces.SPACE_NAMES)
                        + ')')
    space = spaces.get_space(f.space, image_size=f.image_size,
                             num_classes=f.num_classes,
                             width_multiplier=f.width_multiplier)
    if f.calibrate == 1:
        raise UserError('--calibrate needs at least 2 architectures (or 0)')
    output = f.output or default_output(f)
    for path in (output, f.json):
        if not f.export_blocks and path and os.path.exists(path):
            raise UserError(f'{path} already exists; choose a new file '
                            '(nothing was overwritten)')
    evaluation = None
    if f.from_benchmark_csv:
        table = from_csv(space, f)
    else:
        if f.export_blocks:
            return export_blocks(space, f.export_blocks, f.mode, f.seed)
        table, evaluation = measure(space, f)
    latency_lib.save_table(table, output)
    if f.json:
        jsonio.write_json(f.json, {
            'table': output, 'info': table.info,
            'calibration': table.calibration, 'evaluation': evaluation},
            indent=1)
    log(f'wrote {output}: {len(latency_lib.space_blocks(space))} blocks of '
        f'{table.describe()}, {table.mode}, {table.threads} thread(s)')


if __name__ == '__main__':
    define_flags()
    runner.run(main)
