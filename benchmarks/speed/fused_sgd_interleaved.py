"""The supernet's weight optimizer: Keras's SGD against FusedMomentumSGD
(one `ResourceApplyKerasMomentum` op per variable), in one process, call
by call.

    PYTHONPATH=. python benchmarks/speed/fused_sgd_interleaved.py \
        efficientnet 0.25 2 benchmarks/speed/34-fused-sgd-efficientnet.json

Arguments: space, width multiplier, stage ('1' or '2'), output JSON.
Builds the supernet of `tools/build_time.py` (32x32, batch 64, every
layer of the stage searched) twice, once compiled with
`keras.optimizers.SGD` and once with the default `FusedMomentumSGD`,
records each first step (trace + first call, CPU seconds; Keras's goes
first, so it also pays TensorFlow's one-time costs), then times both
steps alternately (40 rounds, order swapped every round) and records the
median of the per-round CPU-second ratios fused / Keras: the side-by-side
measurement the 5% step rule asks for (docs/speed.md, "The weight
optimizer as one op per variable").
"""

import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from hournas_tf.benchmarking import steps as bm
from hournas_tf.common import provenance
from hournas_tf.nas import supernet as supernet_lib
from tools import build_time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def main(space, width, stage, output):
    tf.config.optimizer.set_experimental_options(
        {'disable_meta_optimizer': True})  # as run_search does
    data = None
    steps, first, variables = {}, {}, {}
    fused = supernet_lib.FusedMomentumSGD
    for name, optimizer in (('keras', keras.optimizers.SGD),
                            ('fused', fused)):
        supernet_lib.FusedMomentumSGD = optimizer  # read by compile()
        net, rows = build_time.build(space, 32, width, 10, stage, None,
                                     None, 8, budget_draws=64)
        supernet_lib.FusedMomentumSGD = fused
        assert type(net.optimizer) is optimizer
        variables[name] = len(net.weight_variables)
        data = data or bm.synthetic_batches(net.space, 64)
        steps[name] = tf.function(net.train_step, autograph=False)
        start = time.process_time()
        float(steps[name](data)['loss'])
        first[name] = time.process_time() - start
        print(f'{space}, stage {stage}, {rows} searched layers, {name}: '
              f'first step {first[name]:.1f} CPU s', flush=True)
    ratios = []
    for r in range(40):
        cpu = {}
        for name in (('fused', 'keras') if r % 2 else ('keras', 'fused')):
            start = time.process_time()
            float(steps[name](data)['loss'])
            cpu[name] = time.process_time() - start
        ratios.append(cpu['fused'] / cpu['keras'])
    q1, median, q3 = np.percentile(ratios, [25, 50, 75])
    record = {
        'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        'commit': provenance.git_commit(REPO, mark_dirty=True),
        'script': ('PYTHONPATH=. python benchmarks/speed/'
                   f'fused_sgd_interleaved.py {space} {width} {stage} '
                   f'{output}'),
        'tensorflow': tf.__version__, 'search_space': space,
        'width_multiplier': width, 'supernet_stage': stage,
        'searched_layers': rows,
        'weight_variables': variables['fused'],
        'first_steps_cpu_s': first,
        'step_cpu_ratio_fused_over_keras': {
            'median': median, 'quartiles': [q1, q3], 'rounds': len(ratios)},
        'loadavg_end': list(os.getloadavg())}
    print(f'step CPU s fused / keras: median {median:.3f} (quartiles '
          f'{q1:.3f}-{q3:.3f}), load {os.getloadavg()[0]:.1f}')
    with open(output, 'w') as f:
        json.dump(record, f, indent=1)


if __name__ == '__main__':
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4])
