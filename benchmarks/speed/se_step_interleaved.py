"""The demo's stage-2 step with squeeze-excite in the shared raw body
(this checkout) against the code before it, in one process, call by call.

    git worktree add /tmp/before ac62d84
    PYTHONPATH=. python benchmarks/speed/se_step_interleaved.py /tmp/before

Loads `hournas_tf/blocks/layers.py` of the older checkout as a second
module and puts its `InvertedResidual.raw_structure`, `raw_variables` and
`raw_forward` in place while the 'old' supernet is traced (methods are
read at trace time), then times both steps alternately (40 rounds, order
swapped every round) and prints the median of the per-round CPU-second
ratios new / old: the side-by-side measurement the 5% step rule asks for
(docs/speed.md, "Squeeze-excite in the shared body").
"""

import importlib.util
import os
import sys
import time

import numpy as np
import tensorflow as tf

from hournas_tf.blocks import layers as hl
from tools import build_time

METHODS = ('raw_structure', 'raw_variables', 'raw_forward')


def main(before):
    tf.config.optimizer.set_experimental_options(
        {'disable_meta_optimizer': True})  # as run_search does
    spec = importlib.util.spec_from_file_location(
        'old_layers', os.path.join(before, 'hournas_tf', 'blocks',
                                   'layers.py'))
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    versions = {'new': {k: getattr(hl.InvertedResidual, k) for k in METHODS},
                'old': {k: getattr(old.InvertedResidual, k) for k in METHODS}}
    rng = np.random.default_rng(0)

    def split():
        x = rng.normal(size=(64, 32, 32, 3)).astype('float32')
        return tf.constant(x), tf.constant(rng.integers(0, 10, 64))

    data = (split(), split())
    steps = {}
    for name in ('old', 'new'):
        for method, fn in versions[name].items():
            setattr(hl.InvertedResidual, method, fn)
        net, _ = build_time.build('efficientnet', 32, 0.25, 10, 2, None,
                                  None, 8, budget_draws=64)
        steps[name] = tf.function(net.train_step, autograph=False)
        start = time.process_time()
        float(steps[name](data)['loss'])
        print(f'{name}: first step {time.process_time() - start:.1f} CPU s',
              flush=True)
    for method, fn in versions['new'].items():
        setattr(hl.InvertedResidual, method, fn)
    ratios = []
    for r in range(40):
        cpu = {}
        for name in ('new', 'old') if r % 2 else ('old', 'new'):
            start = time.process_time()
            float(steps[name](data)['loss'])
            cpu[name] = time.process_time() - start
        ratios.append(cpu['new'] / cpu['old'])
    q1, q3 = np.percentile(ratios, [25, 75])
    print(f'step CPU s new / old: median {np.median(ratios):.3f} '
          f'(quartiles {q1:.3f}-{q3:.3f}), load {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
    main(sys.argv[1])
