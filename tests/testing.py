"""Shared test harness for Keras layers (after keras-hub's run_layer_test).

`run_layer_test` checks what every layer of the project promises: the config
round-trips (`get_config` / `from_config` / Keras serialization), `build`
creates every weight before the first call, the output shape matches
`compute_output_shape`, and one `fit` step of a model around the layer runs
and changes its trainable weights.
"""

import keras
import numpy as np


def run_layer_test(cls, init_kwargs, input_shape, expected_num_weights=None,
                   expected_num_trainable=None, call_kwargs=None, fit=True,
                   seed=0):
    """Runs the checks on `cls(**init_kwargs)` for inputs of `input_shape`.

    Args:
        cls: the layer class.
        init_kwargs: constructor arguments.
        input_shape: a full input shape, batch included.
        expected_num_weights: number of weight variables after `build`.
        expected_num_trainable: number of trainable variables after `build`.
        call_kwargs: extra call arguments.
        fit: run one `fit` step and check that trainable weights moved.
        seed: numpy seed of the random input.

    Returns:
        The built layer.
    """
    call_kwargs = call_kwargs or {}
    layer = cls(**init_kwargs)
    layer.build(input_shape)
    if expected_num_weights is not None:
        assert len(layer.weights) == expected_num_weights, [
            w.path for w in layer.weights]
    if expected_num_trainable is not None:
        assert len(layer.trainable_weights) == expected_num_trainable, [
            w.path for w in layer.trainable_weights]
    weights_after_build = len(layer.weights)

    x = np.random.default_rng(seed).normal(size=input_shape).astype(
        'float32')
    y = layer(x, **call_kwargs)
    assert len(layer.weights) == weights_after_build, (
        'the first call created weights that build() did not')
    assert tuple(y.shape) == tuple(layer.compute_output_shape(input_shape))

    config = layer.get_config()
    again = cls.from_config(config)
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert type(restored) is cls
    assert restored.get_config() == config
    if not restored.built:  # Keras builds some layers when deserializing
        restored.build(input_shape)
    assert len(restored.weights) == len(layer.weights)

    if fit and layer.trainable_weights:
        inputs = keras.Input(input_shape[1:])
        model = keras.Model(inputs, layer(inputs, **call_kwargs))
        model.compile(keras.optimizers.SGD(0.1), 'mse')
        before = [w.numpy().copy() for w in layer.trainable_weights]
        target = np.random.default_rng(seed + 1).normal(
            size=y.shape).astype('float32')
        model.fit(x, target, epochs=1, batch_size=input_shape[0], verbose=0)
        moved = [not np.array_equal(b, w.numpy())
                 for b, w in zip(before, layer.trainable_weights)]
        assert any(moved), 'one fit step left every trainable weight as is'
    return layer


def tiny_supernet(image_size=32, seed=5, compile=True, **config):
    """A compiled stage-2-like supernet of the FBNet space at width 0.25:
    vital layers fixed to k3_e1, two searched layers."""
    from hournas_tf import spaces
    from hournas_tf.nas import supernet

    space = spaces.get_space('fbnet', image_size=image_size, num_classes=10,
                             width_multiplier=0.25)
    vital = space.vital_layers
    searched = tuple(i for i in range(len(space.layers))
                     if i not in vital)[1:3]
    net = supernet.build_supernet(
        space, searched, {i: 'k3_e1' for i in vital},
        supernet.SupernetConfig(seed=seed, **config))
    if compile:
        net.compile()
    return net
