"""The end of a `model.fit`: the time from the last epoch's end to `fit`
returning, with tf.data's autotuning on and off, in one process, fit by
fit.

    PYTHONPATH=. python benchmarks/speed/fit_end_autotune.py [ROUNDS]

Each round fits a small convolutional model (a step of about 0.3 s on 2
cores, as a demo search step) for 4 epochs x 18 steps on the search's
digits pipelines (weights and arch zipped, as the search reads them), once
with autotuning forced on and once off, the order swapped every round.
When `fit` returns, Keras drops its iterator; with autotuning on,
destroying it can wait for tf.data's autotuning thread (docs/speed.md,
"The end of a fit"). Prints one JSON object: per fit the wait and the
median epoch time, and per mode the waits' sum.
"""

import json
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from hournas_tf import data as data_lib


class _LastEpoch(keras.callbacks.Callback):
    """Records when each epoch ends."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())


def _fit(model, autotune):
    config = data_lib.DataConfig(dataset='digits', image_size=32,
                                 batch_size=64, seed=0)
    search = data_lib.load_search_data(config)
    dataset = tf.data.Dataset.zip((search.weights, search.arch)).map(
        lambda w, a: w)
    options = tf.data.Options()
    options.autotune.enabled = autotune
    dataset = dataset.with_options(options)
    callback = _LastEpoch()
    start = time.perf_counter()
    model.fit(dataset, epochs=4, steps_per_epoch=18, verbose=0,
              callbacks=[callback])
    end = time.perf_counter()
    epochs = np.diff([start] + callback.ends)
    return {'autotune': autotune, 'wait_s': end - callback.ends[-1],
            'median_epoch_s': float(np.median(epochs[1:]))}


def main(rounds):
    model = keras.Sequential([
        keras.layers.Conv2D(128, 3, padding='same', activation='relu'),
        keras.layers.Conv2D(128, 3, padding='same'),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    model.compile('adam', keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    fits = []
    for r in range(rounds):
        for autotune in ((True, False) if r % 2 == 0 else (False, True)):
            fits.append(_fit(model, autotune))
            print(json.dumps(fits[-1]), file=sys.stderr, flush=True)
    summary = {
        str(mode): {
            'fits': sum(f['autotune'] is mode for f in fits),
            'waits_over_1s': sum(f['autotune'] is mode and f['wait_s'] > 1
                                 for f in fits),
            'wait_s_total': sum(f['wait_s'] for f in fits
                                if f['autotune'] is mode),
            'median_epoch_s': float(np.median([
                f['median_epoch_s'] for f in fits if f['autotune'] is mode])),
        } for mode in (True, False)}
    print(json.dumps({'date': time.strftime('%Y-%m-%d'),
                      'tensorflow': tf.__version__, 'fits': fits,
                      'autotune': summary}, indent=1))


if __name__ == '__main__':
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
