"""Shared models for the export tests: random ones and one trained on
digits (trained once per test run and shared by the pytest-xdist
workers)."""

import os

import numpy as np

# The smallest architecture of the demo space (efficientnet at 32x32, width
# 0.25): k3_e3_se0.25 at the vital layers, skip elsewhere. Trains to ~97%
# on digits in a few epochs.
SMALL = ('efficientnet[image_size=32,num_classes=10,width_multiplier=0.25]:'
         'skip,skip,skip,k3_e3_se0.25,skip,k3_e3_se0.25,skip,skip,'
         'k3_e3_se0.25,skip,skip,k3_e3_se0.25,skip,skip,skip,k3_e3_se0.25')
EPOCHS = 5


def randomize_batch_norm(model, seed=0):
    """Non-trivial batch-norm statistics, so that folding is exercised."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        shape = tuple(v.shape)
        if v.path.endswith('moving_mean'):
            v.assign(rng.normal(0, 0.1, shape).astype('float32'))
        elif v.path.endswith('moving_variance'):
            v.assign(rng.uniform(0.5, 1.5, shape).astype('float32'))
        elif v.path.endswith('gamma'):
            v.assign(rng.uniform(0.5, 1.5, shape).astype('float32'))
        elif v.path.endswith('beta'):
            v.assign(rng.normal(0, 0.1, shape).astype('float32'))


def random_model(arch, seed=0):
    """`build_model(arch)` with random weights and batch-norm statistics."""
    import keras

    import hournas_tf

    keras.utils.set_random_seed(seed)
    model = hournas_tf.build_model(arch)
    randomize_batch_norm(model, seed)
    return model


def random_images(count, size=32, seed=1):
    return np.random.default_rng(seed).normal(
        size=(count, size, size, 3)).astype('float32')


def recalibrate_batch_norm(model, images):
    """Moving statistics of `images`: a short training run leaves the
    moving averages (momentum 0.99) far from the data's statistics."""
    import keras

    norms = [layer for layer in model._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum


def train_small_model(path):
    """Trains `SMALL` on digits and saves it as a .keras file."""
    import keras

    import hournas_tf
    from hournas_tf import data

    keras.utils.set_random_seed(0)
    train = data.load_train_data(data.DataConfig('digits', image_size=32,
                                                 batch_size=64))
    model = hournas_tf.build_model(hournas_tf.Architecture.from_string(
        SMALL))
    model.compile(keras.optimizers.Adam(2e-3),
                  keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    model.fit(train.train, epochs=EPOCHS, verbose=0)
    images = np.concatenate([x.numpy() for x, _ in train.train.take(8)])
    recalibrate_batch_norm(model, images)
    partial = f'{path}.{os.getpid()}.keras'
    model.save(partial)
    os.replace(partial, path)


def shared_trained_model(tmp_path_factory, timeout=900):
    """Path of `SMALL` trained on digits, trained by the first worker that
    asks and waited for by the others."""
    from conftest import shared_once

    return str(shared_once(tmp_path_factory, 'digits_small.keras',
                           lambda path: train_small_model(str(path)),
                           timeout))


def digits_eval():
    """(images, labels) of the digits test split at 32x32."""
    from hournas_tf import data

    train = data.load_train_data(data.DataConfig('digits', image_size=32,
                                                 batch_size=128))
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in train.eval])
    return np.concatenate(images), np.concatenate(labels)
