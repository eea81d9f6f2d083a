"""hournas_tf.nas.fused_sgd: Keras's SGD update, one op per variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from hournas_tf.nas.fused_sgd import FusedMomentumSGD


def _train(optimizer_class, steps=5, **kwargs):
    """Variables and momentums after `steps` traced updates of the same
    gradients, and the op types of one traced update."""
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.standard_normal((5, 3)), dtype='float32')
                 for _ in range(4)]
    grads = [[tf.constant(rng.standard_normal((5, 3)), tf.float32)
              for _ in variables] for _ in range(steps)]
    optimizer = optimizer_class(
        keras.optimizers.schedules.CosineDecay(0.1, 10), **kwargs)
    optimizer.build(variables)

    @tf.function
    def step(g):
        optimizer.apply(g, variables)

    for g in grads:
        step(g)
    graph = step.get_concrete_function(grads[0]).graph
    ops = [op.type for op in graph.get_operations()]
    return ([v.numpy() for v in variables]
            + [m.numpy() for m in optimizer.momentums if m is not None],
            ops)


def test_momentum_update_equals_keras_sgd_with_one_op_per_variable():
    keras_values, keras_ops = _train(keras.optimizers.SGD, momentum=0.9)
    fused_values, fused_ops = _train(FusedMomentumSGD, momentum=0.9)
    assert len(keras_values) == len(fused_values) == 8
    for want, got in zip(keras_values, fused_values):
        np.testing.assert_array_equal(got, want)
    assert fused_ops.count('ResourceApplyKerasMomentum') == 4
    assert 'ResourceApplyKerasMomentum' not in keras_ops
    assert len(fused_ops) < len(keras_ops)


@pytest.mark.parametrize('kwargs', [{'momentum': 0.0},
                                    {'momentum': 0.9, 'nesterov': True}])
def test_other_settings_fall_back_to_keras(kwargs):
    keras_values, _ = _train(keras.optimizers.SGD, **kwargs)
    fused_values, fused_ops = _train(FusedMomentumSGD, **kwargs)
    for want, got in zip(keras_values, fused_values):
        np.testing.assert_array_equal(got, want)
    assert 'ResourceApplyKerasMomentum' not in fused_ops


def test_config_round_trips():
    optimizer = FusedMomentumSGD(0.05, momentum=0.8, name='weight_sgd')
    again = keras.optimizers.deserialize(
        keras.optimizers.serialize(optimizer))
    assert isinstance(again, FusedMomentumSGD)
    assert again.get_config() == optimizer.get_config()
