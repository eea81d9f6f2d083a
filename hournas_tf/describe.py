"""Describes an architecture or a search space: layers, vital blocks, costs.

    python -m hournas_tf.describe --arch=fbnet_b
    python -m hournas_tf.describe --arch_file=runs/demo/arch.json
    python -m hournas_tf.describe --space=fbnet --image_size=32 --json
"""

import json
import sys

from absl import flags

from hournas_tf import command_flags
from hournas_tf import spaces
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError
from hournas_tf.resources import counting
from hournas_tf.resources import tables
from hournas_tf.spaces import architecture as arch_lib
from hournas_tf.spaces import references


def define_flags():
    command_flags.define_arch_flags()
    stored = 'or the value stored in the architecture'
    command_flags.define_space_flags(
        dict(space=None, image_size=None, num_classes=None,
             width_multiplier=None),
        notes={'image_size': f'(default 224, {stored})',
               'num_classes': f'(default 1000, {stored})',
               'width_multiplier': f'(default 1.0, {stored})'})
    flags.DEFINE_bool('json', False, 'Print one JSON object instead of the '
                      'table.')
    command_flags.define_latency_table_flag('prints the predicted latency')


def _overrides(values):
    return {k: v for k, v in values.items() if v is not None}


def resolve_arch(name_or_string, arch_file, overrides):
    """Loads an architecture from a reference name, a string or a file."""
    if arch_file:
        arch = arch_lib.load_architecture(arch_file)
    elif ':' in name_or_string:
        arch = arch_lib.Architecture.from_string(name_or_string)
    else:
        return references.get_reference(name_or_string, **{
            k: v for k, v in overrides.items() if k != 'head_channels'})
    if overrides:
        params = {**arch.space_params(), **overrides}
        arch = arch_lib.Architecture(arch.space, arch.ops, name=arch.name,
                                     **params)
    return arch


def _m(value):
    return f'{value / 1e6:.2f}M'


def describe_arch(arch, latency=None):
    """A JSON-ready dict: per-layer rows and totals (and `latency_ms`, the
    prediction of a latency table)."""
    space = arch.search_space()
    cost = counting.arch_cost(arch)
    vital = set(space.vital_layers)
    rows = [{'layer': 'stem', 'resolution': space.stem.in_size,
             'c_in': 3, 'c_out': space.stem.c_out,
             'stride': space.stem.stride, 'op': 'conv3x3', 'vital': True,
             'macs': cost.stem.macs, 'params': cost.stem.params}]
    for layer, op, c in zip(space.layers, arch.ops, cost.layers):
        rows.append({'layer': layer.index + 1, 'resolution': layer.in_size,
                     'c_in': layer.c_in, 'c_out': layer.c_out,
                     'stride': layer.stride, 'op': op,
                     'vital': layer.index in vital, 'macs': c.macs,
                     'params': c.params})
    rows.append({'layer': 'head', 'resolution': space.head_size,
                 'c_in': space.layers[-1].c_out,
                 'c_out': space.head_channels, 'stride': 1,
                 'op': 'conv1x1', 'vital': True, 'macs': cost.head.macs,
                 'params': cost.head.params})
    rows.append({'layer': 'classifier', 'resolution': 1,
                 'c_in': space.head_channels, 'c_out': space.num_classes,
                 'stride': 1, 'op': 'dense', 'vital': True,
                 'macs': cost.classifier.macs,
                 'params': cost.classifier.params})
    total = cost.total
    return {
        'architecture': arch.to_string(),
        'name': arch.name,
        'space': arch.space,
        'image_size': space.image_size,
        'num_classes': space.num_classes,
        'width_multiplier': space.width_multiplier,
        'macs': total.macs,
        'backbone_macs': cost.backbone.macs,
        'se_macs': total.se_macs,
        'params': total.params,
        'weights': total.weights,
        'keras_params': total.keras_params,
        'vital_layers': [i + 1 for i in space.vital_layers],
        'layers': rows,
        **_predicted_latency(space, arch.ops, latency),
    }


def _predicted_latency(space, ops, latency):
    if latency is None:
        return {}
    latency.check_space(space)
    return {'latency_ms': latency.predict_ms(ops),
            'latency_table': {'threads': latency.threads,
                              'mode': latency.mode,
                              'device': latency.device,
                              'calibrated': bool(latency.calibration)}}


def describe_space(space):
    """A JSON-ready dict: size of the space, cost range, vital layers."""
    table = tables.resource_table(space, objectives=counting.OBJECTIVES)
    vital = set(space.vital_layers)
    out = {
        'space': space.name,
        'description': space.description,
        'image_size': space.image_size,
        'num_classes': space.num_classes,
        'width_multiplier': space.width_multiplier,
        'num_layers': len(space.layers),
        'num_architectures': space.num_architectures(),
        'ops': list(space.op_names),
        'vital_layers': [i + 1 for i in space.vital_layers],
        'layers': [],
    }
    for obj in counting.OBJECTIVES:
        lo, hi = tables.feasible_range(table, obj)
        out[f'min_{obj}'] = int(lo)
        out[f'max_{obj}'] = int(hi)
    for layer in space.layers:
        macs = [counting.op_cost(space, layer.index, op).macs
                for op in layer.candidates]
        out['layers'].append({
            'layer': layer.index + 1, 'resolution': layer.in_size,
            'c_in': layer.c_in, 'c_out': layer.c_out,
            'stride': layer.stride, 'vital': layer.index in vital,
            'candidates': list(layer.candidates),
            'min_macs': min(macs), 'max_macs': max(macs)})
    return out


def format_arch(info):
    lines = [f'{info["name"] or info["space"]}: {info["architecture"]}',
             f'{"layer":>10} {"res":>4} {"c_in -> c_out":>13} {"s":>2} '
             f'{"op":<14} {"vital":<5} {"MACs":>13} {"params":>10}']
    for r in info['layers']:
        lines.append(
            f'{r["layer"]!s:>10} {r["resolution"]:>4} '
            f'{r["c_in"]:>5} -> {r["c_out"]:<5} {r["stride"]:>2} '
            f'{r["op"]:<14} {"yes" if r["vital"] else "":<5} '
            f'{r["macs"]:>13,} {r["params"]:>10,}')
    lines += [
        f'MACs: {info["macs"]:,} ({_m(info["macs"])}; backbone '
        f'{_m(info["backbone_macs"])}, squeeze-excite {info["se_macs"]:,})',
        f'params (trainable): {info["params"]:,} ({_m(info["params"])})',
        f'weights (conv + dense kernels): {info["weights"]:,}',
        f'Keras count_params: {info["keras_params"]:,}',
        f'vital layers: {info["vital_layers"]}',
    ]
    if 'latency_ms' in info:
        t = info['latency_table']
        lines.append(f'predicted latency: {info["latency_ms"]:.3f} ms '
                     f'({t["mode"]}, {t["threads"]} thread(s), '
                     f'{t["device"]})')
    return '\n'.join(lines)


def format_space(info):
    lines = [f'space {info["space"]}: {info["description"]}',
             f'{info["num_layers"]} searchable layers, ops: '
             f'{", ".join(info["ops"])}',
             f'{"layer":>5} {"res":>4} {"c_in -> c_out":>13} {"s":>2} '
             f'{"vital":<5} {"#ops":>4} {"MACs range":>25}']
    for r in info['layers']:
        lines.append(
            f'{r["layer"]:>5} {r["resolution"]:>4} {r["c_in"]:>5} -> '
            f'{r["c_out"]:<5} {r["stride"]:>2} '
            f'{"yes" if r["vital"] else "":<5} {len(r["candidates"]):>4} '
            f'{r["min_macs"]:>12,} - {r["max_macs"]:<12,}')
    lines += [
        f'architectures: {info["num_architectures"]:,} '
        f'({info["num_architectures"]:.2e})',
        f'MACs: {_m(info["min_macs"])} .. {_m(info["max_macs"])}',
        f'params (trainable): {_m(info["min_params"])} .. '
        f'{_m(info["max_params"])}',
        f'vital layers: stem, {info["vital_layers"]}, head, classifier',
    ]
    return '\n'.join(lines)


def main(argv):
    if len(argv) > 1:
        raise UserError(f'unexpected arguments {argv[1:]}; use --flags')
    f = flags.FLAGS
    given = [n for n in ('arch', 'arch_file', 'space') if f[n].value]
    if len(given) != 1:
        raise UserError('give exactly one of --arch, --arch_file, --space '
                        f'(got {len(given)})')
    overrides = _overrides({'image_size': f.image_size,
                            'num_classes': f.num_classes,
                            'width_multiplier': f.width_multiplier})
    if f.space:
        if f.latency_table:
            raise UserError('--latency_table goes with --arch or --arch_file')
        info = describe_space(spaces.get_space(f.space, **overrides))
        text = format_space(info)
    else:
        arch = resolve_arch(f.arch, f.arch_file, overrides)
        latency = None
        if f.latency_table:
            from hournas_tf.resources import latency as latency_lib

            latency = latency_lib.load_table(f.latency_table,
                                             arch.search_space())
        info = describe_arch(arch, latency)
        text = format_arch(info)
    if f.json:
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write('\n')
    else:
        print(text)


if __name__ == '__main__':
    define_flags()
    runner.run(main)
