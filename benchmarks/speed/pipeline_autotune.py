"""The search's input pipeline alone, with tf.data's autotuning on and off:
milliseconds per batch of the zipped weights and arch splits (batch 64,
32x32), 300 batches after the first, digits and Fashion-MNIST, each mode
twice in turn.

    PYTHONPATH=. python benchmarks/speed/pipeline_autotune.py

(docs/speed.md, "The end of a fit": a batch in 3.8-4.7 ms either way,
against a search step of 300-600 ms.)
"""

import time

import tensorflow as tf

from hournas_tf import data as data_lib


def main():
    for name in ('digits', 'fashion_mnist'):
        config = data_lib.DataConfig(dataset=name, image_size=32,
                                     batch_size=64, seed=0)
        search = data_lib.load_search_data(config)
        for autotune in (True, False, True, False):
            dataset = tf.data.Dataset.zip((search.weights, search.arch))
            options = tf.data.Options()
            options.autotune.enabled = autotune
            iterator = iter(dataset.with_options(options))
            next(iterator)
            start = time.perf_counter()
            for _ in range(300):
                next(iterator)
            ms = (time.perf_counter() - start) / 300 * 1000
            print(f'{name} autotune={autotune}: {ms:.2f} ms/batch',
                  flush=True)


if __name__ == '__main__':
    main()
