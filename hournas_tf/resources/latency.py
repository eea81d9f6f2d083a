"""Latency lookup tables: per-(layer, op) latency of a space on a device.

A table holds the latency of every candidate op of every searchable layer
of one space instance (space, image size, width multiplier, classes), plus
the stem, the head and the classifier, for one runtime setting (threads,
mode fp32 or int8) on one device, as the median over timing rounds and the
spread between rounds. `skip` costs 0. `tools/build_latency_table.py`
measures one in LiteRT on this machine, or reads the timings of the same
blocks measured by TFLite's `benchmark_model` on a phone.

The predicted latency of an architecture is the sum of its entries. Blocks
timed alone do not add up exactly to the whole network (caches, per-call
overhead); an optional linear `calibration` (`whole = a * sum + b`, fitted
on whole architectures by the tool) corrects it and stays additive:
`op_ms` is `a` times the entry and `fixed_ms` holds `b`. With a table,
`latency_ms` is one more objective of `tables.resource_table`.

Pure Python + numpy. File format (JSON, `format` and `version` below):
`{format, version, space, image_size, width_multiplier, num_classes,
threads, mode, device, source, stem, head, classifier, layers,
calibration, info}` where `stem`, `head`, `classifier` and every
`layers[i][op]` are `{"median_ms": float, "spread": float}`, `layers` has
one object per searchable layer (position i is layer i + 1), `calibration`
is null or `{"a", "b", "r2", "architectures"}` and `info` is free-form
(date, load average, rounds, versions).
"""

import csv
import dataclasses
import os

import numpy as np

from hournas_tf.common import jsonio
from hournas_tf.common.errors import UserError
from hournas_tf.common.errors import choices
from hournas_tf.common.jsonio import read_json

FORMAT = 'hournas_tf.latency_table'
VERSION = 1
OBJECTIVE = 'latency_ms'
MODES = ('fp32', 'int8')
FIXED_BLOCKS = ('stem', 'head', 'classifier')


@dataclasses.dataclass(frozen=True)
class Entry:
    """One block's latency: median over rounds and (max - min) / median."""

    median_ms: float
    spread: float = 0.0

    def to_json(self):
        return {'median_ms': self.median_ms, 'spread': self.spread}


@dataclasses.dataclass(frozen=True)
class LatencyTable:
    """Per-block latencies of one space instance; see the module doc."""

    space: str
    image_size: int
    width_multiplier: float
    num_classes: int
    threads: int
    mode: str
    device: str
    stem: Entry
    head: Entry
    classifier: Entry
    layers: tuple  # one {op: Entry} per searchable layer
    source: str = 'litert'
    calibration: dict = None
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def scale(self):
        """(a, b) of `whole = a * sum + b`; (1, 0) without calibration."""
        if not self.calibration:
            return 1.0, 0.0
        return float(self.calibration['a']), float(self.calibration['b'])

    def entry_ms(self, layer_index, op):
        """The measured median of op `op` at layer `layer_index` (skip 0)."""
        if op == 'skip':
            return 0.0
        try:
            return self.layers[layer_index][op].median_ms
        except (IndexError, KeyError):
            raise UserError(
                f'latency table has no entry for layer {layer_index + 1} '
                f'op {op!r}') from None

    def op_ms(self, layer_index, op):
        """Calibrated latency of an op (the objective's value)."""
        return self.scale[0] * self.entry_ms(layer_index, op)

    def fixed_raw_ms(self):
        return (self.stem.median_ms + self.head.median_ms
                + self.classifier.median_ms)

    def fixed_ms(self):
        """Calibrated latency of stem, head and classifier (plus `b`)."""
        a, b = self.scale
        return a * self.fixed_raw_ms() + b

    def sum_ms(self, ops):
        """Uncalibrated sum of the entries of one op per layer."""
        return self.fixed_raw_ms() + sum(
            self.entry_ms(i, op) for i, op in enumerate(ops))

    def predict_ms(self, ops):
        """Predicted whole-network latency of one op per layer."""
        a, b = self.scale
        return a * self.sum_ms(ops) + b

    def describe(self):
        return (f'space {self.space!r} at image_size {self.image_size} '
                f'(width {self.width_multiplier:g}, {self.num_classes} '
                'classes)')

    def check_space(self, space, path='latency table'):
        """Raises UserError unless the table is for this space instance
        and has every candidate op."""
        mine = (self.space, self.image_size, float(self.width_multiplier),
                self.num_classes)
        theirs = (space.name, space.image_size,
                  float(space.width_multiplier), space.num_classes)
        if mine != theirs:
            raise UserError(
                f'{path} is for {self.describe()}, not space '
                f'{space.name!r} at image_size {space.image_size} (width '
                f'{space.width_multiplier:g}, {space.num_classes} classes);'
                ' build one for this space with tools/build_latency_table.py')
        if len(self.layers) != len(space.layers):
            raise UserError(f'{path} has {len(self.layers)} layers, space '
                            f'{space.name!r} has {len(space.layers)}')
        for layer in space.layers:
            for op in layer.candidates:
                if op != 'skip' and op not in self.layers[layer.index]:
                    raise UserError(f'{path} has no entry for layer '
                                    f'{layer.index + 1} op {op!r}')

    def to_json(self):
        return {
            'format': FORMAT, 'version': VERSION, 'space': self.space,
            'image_size': self.image_size,
            'width_multiplier': self.width_multiplier,
            'num_classes': self.num_classes, 'threads': self.threads,
            'mode': self.mode, 'device': self.device, 'source': self.source,
            **{name: getattr(self, name).to_json()
               for name in FIXED_BLOCKS},
            'layers': [{op: e.to_json() for op, e in layer.items()}
                       for layer in self.layers],
            'calibration': self.calibration, 'info': self.info,
        }


def _entry(value, where, path):
    if not isinstance(value, dict) or 'median_ms' not in value:
        raise UserError(f'{path}: {where} needs {{"median_ms": ...}}')
    try:
        median = float(value['median_ms'])
        spread = float(value.get('spread', 0.0))
    except (TypeError, ValueError):
        raise UserError(f'{path}: {where} has a non-numeric value') \
            from None
    if not median >= 0 or not np.isfinite(median):
        raise UserError(f'{path}: {where} median_ms={median!r} must be a '
                        'finite number >= 0')
    return Entry(median, spread)


def _space_name(value, path):
    if not isinstance(value, str):
        raise UserError(f'{path}: "space" {value!r} must be a space name')
    return value


def _integer(data, key, path, minimum):
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) \
            or value < minimum:
        raise UserError(f'{path}: "{key}" {value!r} must be an integer >= '
                        f'{minimum}')
    return value


def _finite(value):
    """`value` as a finite float, or None (not a number, nan or inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if np.isfinite(value) else None


def _positive(data, key, path):
    value = _finite(data[key])
    if value is None or value <= 0:
        raise UserError(f'{path}: "{key}" {data[key]!r} must be a finite '
                        'number > 0')
    return value


def _calibration(calibration, path):
    """The checked `calibration` object (None stays None)."""
    if calibration is None:
        return None
    if not isinstance(calibration, dict) or \
            not {'a', 'b'} <= set(calibration):
        raise UserError(f'{path}: calibration needs "a" and "b"')
    a, b = _finite(calibration['a']), _finite(calibration['b'])
    if a is None or b is None or a <= 0:
        raise UserError(f'{path}: calibration a={calibration["a"]!r}, '
                        f'b={calibration["b"]!r} must be finite numbers '
                        'with a > 0')
    return calibration


def from_json(data, path='latency table'):
    """A `LatencyTable` from its JSON dict; UserError for a bad one."""
    if not isinstance(data, dict) or data.get('format') != FORMAT:
        raise UserError(f'{path} is not a latency table (no "format": '
                        f'"{FORMAT}")')
    if data.get('version') != VERSION:
        raise UserError(f'{path} has latency table version '
                        f'{data.get("version")!r}; this version reads '
                        f'{VERSION}')
    missing = [k for k in ('space', 'image_size', 'width_multiplier',
                           'num_classes', 'threads', 'mode', 'device',
                           *FIXED_BLOCKS, 'layers') if k not in data]
    if missing:
        raise UserError(f'{path} lacks {choices(missing)}')
    if data['mode'] not in MODES:
        raise UserError(f'{path}: unknown mode {data["mode"]!r}; valid: '
                        f'{choices(MODES)}')
    if not isinstance(data['layers'], list) or not all(
            isinstance(layer, dict) for layer in data['layers']):
        raise UserError(f'{path}: "layers" must be a list, one object per '
                        'searchable layer')
    layers = tuple(
        {op: _entry(v, f'layer {i + 1} op {op!r}', path)
         for op, v in layer.items()}
        for i, layer in enumerate(data['layers']))
    calibration = _calibration(data.get('calibration'), path)
    return LatencyTable(
        space=_space_name(data['space'], path),
        image_size=_integer(data, 'image_size', path, 8),
        width_multiplier=_positive(data, 'width_multiplier', path),
        num_classes=_integer(data, 'num_classes', path, 2),
        threads=_integer(data, 'threads', path, 1),
        mode=data['mode'], device=str(data['device']),
        **{name: _entry(data[name], name, path) for name in FIXED_BLOCKS},
        layers=layers, source=data.get('source', 'litert'),
        calibration=calibration, info=data.get('info') or {})


def load_table(path, space=None):
    """Reads a table file; with `space`, checks it is for that space."""
    table = from_json(read_json(path, 'latency table'), path)
    if space is not None:
        table.check_space(space, f'latency table {path}')
    return table


def save_table(table, path):
    jsonio.write_json(path, table.to_json(), indent=1)


def fit_calibration(sums, measured):
    """Least-squares `measured = a * sums + b`: {'a', 'b', 'r2',
    'architectures'}."""
    sums = np.asarray(sums, np.float64)
    measured = np.asarray(measured, np.float64)
    if len(sums) < 2 or np.ptp(sums) == 0:
        raise UserError('a latency calibration needs at least two '
                        'architectures with different sums')
    a, b = np.polyfit(sums, measured, 1)
    residual = measured - (a * sums + b)
    total = np.sum((measured - measured.mean()) ** 2)
    r2 = 1.0 - float(np.sum(residual ** 2) / total) if total > 0 else 1.0
    return {'a': float(a), 'b': float(b), 'r2': r2,
            'architectures': int(len(sums))}


def relative_errors(predicted, measured):
    """|predicted - measured| / measured, elementwise."""
    predicted = np.asarray(predicted, np.float64)
    measured = np.asarray(measured, np.float64)
    return np.abs(predicted - measured) / measured


@dataclasses.dataclass(frozen=True)
class Block:
    """A timed block: 'stem', 'head', 'classifier', or kind 'op' at
    searchable layer `layer` (0-based) with op `op`."""

    kind: str
    layer: int = None
    op: str = None

    @property
    def name(self):
        """File-name-safe name: stem, layer01_k3_e1, head, classifier."""
        if self.kind == 'op':
            return f'layer{self.layer + 1:02d}_{self.op}'
        return self.kind


def space_blocks(space, extra_ops=True):
    """Every block a latency table of `space` holds: stem, each non-skip
    candidate of each layer, head, classifier, and with `extra_ops` the
    non-candidate ops reference architectures use where they fit (FBNet-B's
    cascade, the e1 blocks of MBConv references)."""
    blocks = [Block('stem')]
    for layer in space.layers:
        ops = space.allowed_ops(layer.index) if extra_ops else \
            layer.candidates
        blocks += [Block('op', layer.index, op) for op in ops
                   if op != 'skip']
    return blocks + [Block('head'), Block('classifier')]


def table_from_timings(space, timings, threads, mode, device, source,
                       info=None):
    """A `LatencyTable` of `space` from {block name: {'median_ms',
    'spread'}}; UserError naming a block without a timing (the extra ops of
    `space_blocks` are optional)."""
    missing = [b.name for b in space_blocks(space, extra_ops=False)
               if b.name not in timings]
    if missing:
        raise UserError(f'no timing for block(s) {", ".join(missing[:5])}'
                        + (f' and {len(missing) - 5} more'
                           if len(missing) > 5 else ''))

    def entry(name):
        return _entry(timings[name], f'block {name}', 'timings')

    return LatencyTable(
        space=space.name, image_size=space.image_size,
        width_multiplier=space.width_multiplier,
        num_classes=space.num_classes, threads=threads, mode=mode,
        device=device, stem=entry('stem'), head=entry('head'),
        classifier=entry('classifier'),
        layers=tuple({op: entry(Block('op', layer.index, op).name)
                      for op in space.allowed_ops(layer.index)
                      if op != 'skip'
                      and Block('op', layer.index, op).name in timings}
                     for layer in space.layers),
        source=source, info=info or {})


# CSV timing columns and their factor to milliseconds, in order of
# preference (benchmark_model reports microseconds).
CSV_TIMES = {'median_ms': 1.0, 'median_us': 1e-3, 'avg_ms': 1.0,
             'avg_us': 1e-3}
CSV_STDS = {'std_ms': 1.0, 'std_us': 1e-3}


def read_benchmark_csv(path):
    """{block name: {'median_ms', 'spread'}} from a CSV of per-block times.

    One row per block model; a `block` column with the block's name (or
    its file name, e.g. `blocks/layer01_k3_e1.tflite`) and one of the time
    columns of `CSV_TIMES`; an optional `std_us`/`std_ms` column gives
    `spread` = std / time.
    """
    if not os.path.isfile(path):
        raise UserError(f'benchmark CSV {path} does not exist')
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        time_column = next((c for c in CSV_TIMES if c in columns), None)
        if 'block' not in columns or time_column is None:
            raise UserError(f'benchmark CSV {path} needs a "block" column '
                            f'and one of {choices(CSV_TIMES)}; it has '
                            f'{choices(columns) or "no header"}')
        std_column = next((c for c in CSV_STDS if c in columns), None)
        timings = {}
        for line, row in enumerate(reader, start=2):
            name = os.path.basename(row['block'].strip())
            name = name[:-len('.tflite')] if name.endswith('.tflite') \
                else name
            try:
                ms = float(row[time_column]) * CSV_TIMES[time_column]
                std = float(row[std_column]) * CSV_STDS[std_column] \
                    if std_column else 0.0
            except (TypeError, ValueError):
                raise UserError(f'benchmark CSV {path} line {line}: '
                                f'{row[time_column]!r} is not a number') \
                    from None
            timings[name] = {'median_ms': ms,
                             'spread': std / ms if ms > 0 else 0.0}
    return timings
