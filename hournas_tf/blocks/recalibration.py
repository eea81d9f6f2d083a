"""Batch-norm recalibration: new moving statistics for given weights.

Weights inherited from a supernet come with batch-norm statistics of a
mixture of paths (and averaged EMA weights come with statistics of the raw
weights). Recalibration runs forward passes in training mode over training
batches with every batch-norm momentum set to 0, so each pass leaves that
batch's mean and variance in the moving statistics, and stores their
average over the batches: the cumulative moving average. No weight is
updated.
"""

import numpy as np


def batch_norm_layers(model):
    """Every `BatchNormalization` layer of `model`, nested ones included."""
    import keras

    from hournas_tf.blocks.nesting import nested_layers

    return [layer for layer in nested_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate_batch_norm(model, dataset, num_batches):
    """Sets the moving mean and variance of every batch-norm layer of
    `model` to their average over the first `num_batches` batches of
    `dataset` ((images, labels) pairs). Returns the batches used.

    `model` should have no dropout or stochastic depth active in training,
    or their noise enters the statistics: use a plain `build_model(arch)`
    with the same weights.
    """
    import tensorflow as tf

    layers = batch_norm_layers(model)
    momenta = [layer.momentum for layer in layers]
    means = [np.zeros(layer.moving_mean.shape, np.float64)
             for layer in layers]
    variances = [np.zeros_like(m) for m in means]
    count = 0
    try:
        for layer in layers:
            layer.momentum = 0.0
        forward = tf.function(lambda images: model(images, training=True))
        for images, _ in dataset.take(num_batches):
            forward(images)
            for k, layer in enumerate(layers):
                means[k] += layer.moving_mean.numpy()
                variances[k] += layer.moving_variance.numpy()
            count += 1
        if count:
            for k, layer in enumerate(layers):
                layer.moving_mean.assign(means[k] / count)
                layer.moving_variance.assign(variances[k] / count)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return count
