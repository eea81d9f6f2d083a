"""The deployment check: every exported file against the Keras model.

Per artifact: file size; parity with Keras on the check images (max
relative difference, top-1 agreement, accuracy; `parity.BOUNDS`); for
TFLite files the op counts and the LiteRT CPU latency per thread count.
`format_table` prints it; the command writes the dict as
`export_report.json`. `warnings` holds a line when the Keras model itself
is near chance on the check images (`parity.near_chance`).
"""

import os

from hournas_tf.exporting import benchmark
from hournas_tf.exporting import parity
from hournas_tf.exporting import saved_model
from hournas_tf.exporting import tflite


def file_bytes(path):
    if os.path.isdir(path):
        return saved_model.directory_bytes(path)
    return os.path.getsize(path)


def check_artifact(fmt, path, reference, images, labels, threads):
    """The report row of one exported file."""
    row = {'format': fmt, 'file': os.path.basename(path),
           'bytes': file_bytes(path)}
    if fmt == 'saved_model':
        logits = saved_model.serve_saved_model(path, images)
    else:
        with open(path, 'rb') as f:
            data = f.read()
        logits = tflite.run(data, images)
        row['ops'] = tflite.op_counts(data)
        row['latency'] = {str(t): benchmark.latency(data, t)
                          for t in threads}
    row.update(parity.compare(reference, logits, labels))
    row['passed'], row['bound'] = parity.verdict(fmt, row)
    return row


def run_check(model, artifacts, images, labels, threads=(1, 2)):
    """The deployment check of `artifacts` ({format: path}) as a dict."""
    reference = model.predict(images, batch_size=64, verbose=0)
    load = benchmark.load_average()
    rows = [check_artifact(fmt, path, reference, images, labels, threads)
            for fmt, path in artifacts.items()]
    accuracy = parity.accuracy(reference, labels)
    return {
        'examples': int(len(images)),
        'keras_accuracy': accuracy,
        'warnings': chance_warnings(accuracy, labels, reference.shape[-1]),
        'artifacts': rows,
        'passed': all(r['passed'] for r in rows),
        'threads': list(threads),
        'load_average': [load, benchmark.load_average()],
        'machine': benchmark.machine(),
    }


def chance_warnings(accuracy, labels, num_classes):
    """[a warning line] when the source model is near chance, else []."""
    if not parity.near_chance(accuracy, labels, num_classes):
        return []
    level = parity.chance(labels, num_classes)
    return [f'WARNING: the source model scores {accuracy:.3f} on the '
            f'{len(labels)} eval images, chance level ({level:.3f}): every '
            'format matches a useless model. Is it trained, and does it '
            'hold the recalibrated batch-norm statistics (model.keras of '
            'a train run)?']


def _size(num_bytes):
    for unit, scale in (('MB', 1e6), ('KB', 1e3)):
        if num_bytes >= scale:
            return f'{num_bytes / scale:.1f} {unit}'
    return f'{num_bytes} B'


def _latency_cell(result):
    if result is None:
        return f'{"-":>17}'
    return f'{result["median_ms"]:>9.3f} ({result["spread"]:>4.0%})'


def format_table(report):
    """The check as a text table, with the conditions of the timings."""
    threads = report['threads']
    head = (f'{"format":<12} {"file":<22} {"size":>9} {"rel diff":>9} '
            f'{"agree":>6} {"acc":>6} '
            + ' '.join(f'{f"ms@{t}t (spread)":>17}' for t in threads)
            + '  check')
    lines = [head, f'{"keras":<12} {"":<22} {"":>9} {"":>9} {"":>6} '
             f'{report["keras_accuracy"]:>6.3f}']
    for r in report['artifacts']:
        latency = r.get('latency') or {}
        cells = [_latency_cell(latency.get(str(t))) for t in threads]
        lines.append(
            f'{r["format"]:<12} {r["file"]:<22} {_size(r["bytes"]):>9} '
            f'{r["max_rel_diff"]:>9.1e} {r["top1_agreement"]:>6.3f} '
            f'{r["accuracy"]:>6.3f} ' + ' '.join(cells)
            + f'  {"ok" if r["passed"] else "FAIL"} ({r["bound"]})')
    load = report['load_average'][0]
    cores = report['machine']['cores']
    lines.append(
        f'{report["examples"]} eval images; latency: LiteRT on '
        f'{report["machine"]["cpu"]}, median of {benchmark.REPEATS} x '
        f'{benchmark.RUNS} invokes after {benchmark.WARMUP} warm-up '
        '(spread: (max - min) / median of the repeats), load average '
        f'{load} on {cores} cores'
        + (' (busy machine: the latencies are upper bounds)'
           if benchmark.busy(load) else ''))
    lines += report.get('warnings', [])
    return '\n'.join(lines)
