"""SGD with momentum as one TensorFlow op per variable.

Keras's `SGD.update_step` builds its momentum update from five ops per
variable (two multiplies, a subtract, two assigns). A stage-2 supernet has
hundreds of weight variables (645 in the demo's), so those ops are a
measurable part of tracing the train step and of its first call.
`FusedMomentumSGD` computes the same update, Keras's formulation
(`m = momentum * m - lr * g; w = w + m`), with TensorFlow's fused kernel
`ResourceApplyKerasMomentum`, one op per variable.

It falls back to Keras's update where the fused kernel does not apply:
no momentum, Nesterov momentum, sparse (IndexedSlices) gradients, and
TPUStrategy (whose variables this path was not run on). Inside
`tf.distribute` updates (`MirroredStrategy`, `MultiWorkerMirroredStrategy`)
the momentum variable's `handle` is the current replica's copy, as for the
variable itself.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package='hournas_tf')
class FusedMomentumSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` whose momentum update is one fused op per
    variable (same arguments, same variables, same checkpoints)."""

    def update_step(self, gradient, variable, learning_rate):
        if (not self.momentum or self.nesterov
                or isinstance(gradient, tf.IndexedSlices)
                or isinstance(self._distribution_strategy,
                              tf.distribute.TPUStrategy)):
            return super().update_step(gradient, variable, learning_rate)
        momentum = self.momentums[self._get_variable_index(variable)]
        if isinstance(variable, keras.Variable):
            variable = variable.value
        dtype = variable.dtype
        return tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle, accum=momentum.value.handle,
            lr=tf.cast(learning_rate, dtype), grad=tf.cast(gradient, dtype),
            momentum=tf.cast(self.momentum, dtype), use_nesterov=False)
