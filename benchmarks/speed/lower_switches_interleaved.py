"""A stage-2 supernet step with its switches lowered to switch/merge nodes
(TensorFlow's default) against unlowered `Case` ops (the default here), in
one process, call by call.

    PYTHONPATH=. python benchmarks/speed/lower_switches_interleaved.py \
        efficientnet 0.25
    PYTHONPATH=. python benchmarks/speed/lower_switches_interleaved.py \
        fbnet 0.25

Builds the supernet of `tools/build_time.py` (32x32, batch 64, every
non-vital layer searched) twice, with `MixedLayer.lower_switches` True and
False (read at trace time), prints each first step (trace + first call,
CPU seconds; the lowered one goes first, so it also pays TensorFlow's
one-time costs), then times both steps alternately (40 rounds, order
swapped every round) and prints the median of the per-round CPU-second
ratios unlowered / lowered: the side-by-side measurement the 5% step rule
asks for (docs/speed.md, "Unlowered switches").
"""

import os
import sys
import time

import numpy as np
import tensorflow as tf

from hournas_tf.nas.mixed import MixedLayer
from tools import build_time


def main(space, width):
    tf.config.optimizer.set_experimental_options(
        {'disable_meta_optimizer': True})  # as run_search does
    rng = np.random.default_rng(0)

    def split():
        x = rng.normal(size=(64, 32, 32, 3)).astype('float32')
        return tf.constant(x), tf.constant(rng.integers(0, 10, 64))

    data = (split(), split())
    steps = {}
    for name, lower in (('lowered', True), ('unlowered', False)):
        MixedLayer.lower_switches = lower
        net, rows = build_time.build(space, 32, width, 10, '2', None, None,
                                     8, budget_draws=64)
        steps[name] = tf.function(net.train_step, autograph=False)
        start = time.process_time()
        float(steps[name](data)['loss'])
        print(f'{space}, {rows} searched layers, {name}: first step '
              f'{time.process_time() - start:.1f} CPU s', flush=True)
    MixedLayer.lower_switches = False
    ratios = []
    for r in range(40):
        cpu = {}
        for name in (('unlowered', 'lowered') if r % 2
                     else ('lowered', 'unlowered')):
            start = time.process_time()
            float(steps[name](data)['loss'])
            cpu[name] = time.process_time() - start
        ratios.append(cpu['unlowered'] / cpu['lowered'])
    q1, q3 = np.percentile(ratios, [25, 75])
    print(f'step CPU s unlowered / lowered: median {np.median(ratios):.3f} '
          f'(quartiles {q1:.3f}-{q3:.3f}), load {os.getloadavg()[0]:.1f}, '
          f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}')


if __name__ == '__main__':
    main(sys.argv[1], float(sys.argv[2]))
