"""Measuring a latency table in LiteRT, one small TFLite model per block.

Every block of a space (the stem, each non-skip candidate op of each
searchable layer, the head, the classifier) becomes a model of its own
input shape, converted like an export (`twins.build_twin`, then
`tflite.convert`; random weights, int8 calibrated on random inputs), so a
table times the graph a deployed model runs. `time_round_robin` times many
models in interleaved rounds: each round visits every model once (warm-up,
then timed invokes), so a change of machine load during the measurement
spreads over all blocks instead of biasing the ones timed at that moment.
Whole architectures are timed in the same rounds as the blocks (`measure`),
so that checking or calibrating a table against them
(`resources/latency.py`) compares numbers taken under the same load.
"""

import time

import numpy as np

from hournas_tf.common import provenance
from hournas_tf.exporting import benchmark
from hournas_tf.exporting import tflite
from hournas_tf.exporting import twins
from hournas_tf.resources import latency as latency_lib
from hournas_tf.spaces.architecture import Architecture


def block_model(space, block):
    """The Keras 3 model of one block at its input shape."""
    import keras

    from hournas_tf.blocks import layers as hl

    if block.kind == 'stem':
        shape, make = (space.image_size, space.image_size, 3), \
            hl.make_stem(space)
    elif block.kind == 'head':
        last = space.layers[-1]
        shape, make = (last.out_size, last.out_size, last.c_out), \
            hl.make_head(space)
    elif block.kind == 'classifier':
        shape = (space.head_size, space.head_size, space.head_channels)
        inputs = keras.Input(shape)
        return keras.Model(inputs, hl.make_classifier(space, inputs),
                           name='classifier')
    else:
        layer = space.layers[block.layer]
        shape, make = (layer.in_size, layer.in_size, layer.c_in), \
            hl.make_op(space, block.layer, block.op)
    inputs = keras.Input(shape)
    return keras.Model(inputs, make(inputs), name=block.name)


def to_tflite(model, mode, seed=0):
    """TFLite bytes of a (random-weight) model: 'fp32' or 'int8' (calibrated
    on random normal inputs)."""
    calibration = None
    if mode == 'int8':
        shape = (8, *model.inputs[0].shape[1:])
        calibration = np.random.default_rng(seed).normal(
            size=shape).astype(np.float32)
    return tflite.convert(twins.build_twin(model, 'keras'),
                          {'fp32': 'float32', 'int8': 'int8'}[mode],
                          calibration)


def block_tflite(space, block, mode, seed=0):
    """TFLite bytes of one block (see `to_tflite`)."""
    import keras

    keras.utils.set_random_seed(seed)
    return to_tflite(block_model(space, block), mode, seed)


def arch_tflite(arch, mode, seed=0):
    """TFLite bytes of a whole architecture with random weights."""
    import keras

    from hournas_tf.blocks.model import build_model

    keras.utils.set_random_seed(seed)
    return to_tflite(build_model(arch), mode, seed)


def time_round_robin(models, threads=1, rounds=7, runs=20, warmup=5,
                     seed=0, log=None):
    """Interleaved LiteRT timing of {name: tflite bytes}.

    Each of `rounds` rounds visits every model once in a shuffled order:
    `warmup` invokes, then `runs` timed invokes whose median is the round's
    sample. Returns ({name: {'median_ms', 'spread', 'delegate'}}, info)
    with the median and (max - min) / median over rounds, and info
    {'rounds', 'runs', 'warmup', 'threads', 'load_average' (per round),
    'seconds'}.
    """
    start = time.perf_counter()
    ready = {name: benchmark.ready_interpreter(data, threads)
             for name, data in models.items()}
    names = list(models)
    samples = {name: [] for name in names}
    loads = []
    rng = np.random.default_rng(seed)
    for r in range(rounds):
        loads.append(benchmark.load_average())
        for i in rng.permutation(len(names)):
            it = ready[names[i]][0]
            benchmark.time_invokes(it, warmup)
            samples[names[i]].append(
                float(np.median(benchmark.time_invokes(it, runs))))
        if log:
            log(f'  round {r + 1}/{rounds}: load average {loads[-1]}')
    results = {name: {**benchmark.summarize(samples[name]),
                      'delegate': ready[name][1]} for name in names}
    info = {'rounds': rounds, 'runs': runs, 'warmup': warmup,
            'threads': threads, 'load_average': loads,
            'seconds': round(time.perf_counter() - start, 1)}
    return results, info


def random_architectures(space, count, seed, exclude=()):
    """`count` distinct architectures, one uniformly drawn candidate per
    layer, none of them in `exclude` (architecture strings)."""
    rng = np.random.default_rng(seed)
    params = dict(image_size=space.image_size,
                  num_classes=space.num_classes,
                  width_multiplier=space.width_multiplier)
    seen, found = set(exclude), []
    for _ in range(100 * count):
        if len(found) == count:
            break
        arch = Architecture(space.name, [str(rng.choice(layer.candidates))
                                         for layer in space.layers],
                            **params)
        if arch.to_string() not in seen:
            seen.add(arch.to_string())
            found.append(arch)
    return found


def measure(space, mode='fp32', threads=1, rounds=10, runs=30, warmup=5,
            seed=0, archs=(), device=None, log=None):
    """Converts every block of `space` (and the whole `archs`), times them
    together in interleaved rounds and returns (LatencyTable, [timing of
    each arch], info)."""
    log = log or (lambda message: None)
    models = {}
    start = time.perf_counter()
    blocks = latency_lib.space_blocks(space)
    for k, block in enumerate(blocks):
        models[block.name] = block_tflite(space, block, mode, seed)
        if (k + 1) % 20 == 0 or k + 1 == len(blocks):
            log(f'converted {k + 1}/{len(blocks)} blocks '
                f'({time.perf_counter() - start:.0f}s)')
    for k, arch in enumerate(archs):
        models[f'arch{k}'] = arch_tflite(arch, mode, seed)
        log(f'converted architecture {k + 1}/{len(archs)} '
            f'({time.perf_counter() - start:.0f}s)')
    log(f'timing {len(models)} models: {rounds} interleaved rounds of '
        f'{warmup} warm-up + {runs} timed invokes, {threads} thread(s)')
    timings, info = time_round_robin(models, threads, rounds, runs, warmup,
                                     seed, log)
    info.update({
        'created': time.strftime('%Y-%m-%d %H:%M'),
        'machine': benchmark.machine(),
        'blocks_without_xnnpack': sorted(
            n for n, t in timings.items() if t['delegate'] != 'xnnpack'),
        'convert_seconds': round(time.perf_counter() - start
                                 - info['seconds'], 1)})
    table = latency_lib.table_from_timings(
        space, timings, threads, mode, device or provenance.cpu_model(),
        'litert', info)
    return table, [timings[f'arch{k}'] for k in range(len(archs))], info
