"""One search checkpoint of a finished run's stage-2 supernet: the time of
`CheckpointManager.save`, synchronous, and whether TensorFlow's
asynchronous checkpoint (`CheckpointOptions(enable_async=True)`) runs on
its Keras 3 variables.

    PYTHONPATH=. python benchmarks/speed/checkpoint_save.py RUN_DIR

Saves what `SearchCheckpoint.attach` saves (the supernet, both
optimizers, the seed states) 6 times each way into temporary folders and
prints each save's wall seconds, or the asynchronous attempt's error
(docs/speed.md, "The demo under 2 minutes").
"""

import sys
import tempfile
import time

import tensorflow as tf

from hournas_tf.nas import restore
from hournas_tf.nas.checkpointing import seed_states


def main(run_dir):
    net = restore.load_supernet(run_dir)
    net.compile()
    for asynchronous in (False, True):
        ckpt = tf.train.Checkpoint(
            model=net, weight_optimizer=net.optimizer,
            arch_optimizer=net.arch_optimizer, seed_states=seed_states(net))
        manager = tf.train.CheckpointManager(ckpt, tempfile.mkdtemp(),
                                             max_to_keep=2)
        options = (tf.train.CheckpointOptions(enable_async=True)
                   if asynchronous else None)
        name = 'async' if asynchronous else 'sync'
        times = []
        try:
            for _ in range(6):
                start = time.perf_counter()
                manager.save(options=options)
                times.append(time.perf_counter() - start)
            manager.sync()
        except Exception as e:  # noqa: BLE001 (the finding is the error)
            print(f'{name}: fails: {type(e).__name__}: '
                  f'{str(e).strip().splitlines()[-1]}')
            continue
        print(f'{name}: ' + ' '.join(f'{t:.3f}' for t in times) + ' s')


if __name__ == '__main__':
    main(sys.argv[1])
