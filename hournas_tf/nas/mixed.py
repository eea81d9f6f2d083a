"""MixedLayer: the candidate ops of one searchable layer.

`MixedLayer(branches, columns, single_path)` holds one Keras layer per
candidate op; `columns[k]` is the column of branch k in the architecture
weights (the space's `op_names`). `call(x, weights)` takes the layer's row of
op weights (all columns) as produced by `hournas_tf.sampling.sample`:

- single path (the `gumbel_max` sampler, HourNAS / GDAS): the row is a
  straight-through one-hot. The layer runs only the chosen branch,
  `argmax(weights[columns])`, through `tf.switch_case` (the other branches
  are not executed: no compute, no batch-norm statistics update) and
  multiplies its output by the chosen weight, which is exactly 1.0 in the
  forward pass and carries the straight-through gradient to the logits.
- all paths (`gumbel_softmax`, FBNet; `softmax`, DARTS): the weighted sum
  of every branch.

In a single-path backward pass the branches that did not run get zero
gradients (the gradient of `tf.switch_case`), so an optimizer with momentum
or weight decay still moves them, as in the GDAS reference code.
"""

import functools

import keras
import tensorflow as tf

PACKAGE = 'hournas_tf'


@keras.saving.register_keras_serializable(package=PACKAGE)
class MixedLayer(keras.layers.Layer):
    """Candidate ops of one layer; runs the sampled one (or all, weighted)."""

    def __init__(self, branches, columns, single_path=True, **kwargs):
        super().__init__(**kwargs)
        branches = list(branches)
        columns = [int(c) for c in columns]
        if not branches or len(branches) != len(columns):
            raise ValueError(
                f'MixedLayer needs one column per branch, got '
                f'{len(branches)} branches and {len(columns)} columns')
        if len(set(columns)) != len(columns):
            raise ValueError(f'duplicate columns {columns}')
        # One attribute per branch (not a list): Keras 3 does not expose
        # layers held in lists to tf.train.Checkpoint.
        self._branch_names = tuple(f'branch_{k}' for k in range(len(columns)))
        for name, branch in zip(self._branch_names, branches):
            setattr(self, name, branch)
        self.columns = tuple(columns)
        self.single_path = bool(single_path)

    @property
    def branches(self):
        """The candidate op layers, in column order."""
        return [getattr(self, name) for name in self._branch_names]

    def build(self, input_shape):
        for branch in self.branches:
            if not branch.built:
                branch.build(input_shape)

    def branch_weights(self, weights):
        """The weights of the branches, (..., len(branches)), from a row."""
        return tf.gather(weights, self.columns, axis=-1)

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs, weights, training=None):
        w = self.branch_weights(tf.convert_to_tensor(weights))
        if len(self.branches) == 1:
            out = self.branches[0](inputs, training=training)
            return out * tf.cast(w[0], out.dtype)
        if self.single_path:
            index = tf.argmax(w, axis=-1, output_type=tf.int32)
            fns = [functools.partial(_run, b, inputs, training)
                   for b in self.branches]
            out = tf.switch_case(index, fns)
            return out * tf.cast(tf.gather(w, index), out.dtype)
        out = None
        for k, branch in enumerate(self.branches):
            y = branch(inputs, training=training)
            y = y * tf.cast(w[k], y.dtype)
            out = y if out is None else out + y
        return out

    def compute_output_shape(self, input_shape):
        return self.branches[0].compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(),
                'branches': [keras.saving.serialize_keras_object(b)
                             for b in self.branches],
                'columns': list(self.columns),
                'single_path': self.single_path}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config['branches'] = [keras.saving.deserialize_keras_object(b)
                              for b in config['branches']]
        return cls(**config)


def _run(branch, inputs, training):
    return branch(inputs, training=training)
