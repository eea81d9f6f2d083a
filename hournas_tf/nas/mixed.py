"""MixedLayer: the candidate ops of one searchable layer.

`MixedLayer(branches, columns, single_path, residual)` holds one Keras layer
per candidate op; `columns[k]` is the column of branch k in the architecture
weights (the space's `op_names`). `call(x, weights, scores)` takes the
layer's row of op weights (all columns) as produced by
`hournas_tf.nas.sampling.sample`.

Where the layer has an identity shortcut (`residual=True`, every non-vital
layer) the branches compute the residual branch F_k alone (an
`InvertedResidual` built with `add_shortcut=False`; `skip` is F = 0) and
the layer returns x + sum_k w_k F_k(x): the op weight scales the residual
branch, not the sum. Without a shortcut (vital layers) it returns
sum_k w_k F_k(x), F_k being the whole op.

- single path (the `gumbel_max` sampler, HourNAS / GDAS): the row is a
  straight-through one-hot. Only the chosen branch
  a = argmax(weights[columns]) runs (`tf.switch_case`: the others are not
  executed, no compute, no batch-norm update), multiplied by w_a, which is
  exactly 1.0 forward and carries the straight-through gradient
  <dL/dy, F_a(x)> to the logits. With a shortcut that gradient is real:
  x is added unscaled after the weight. Without one, y = w_a F_a(x) only
  feeds a conv and a training-mode batch norm, which cancel any scale of
  y, so <dL/dy, F_a(x)> is zero up to rounding. Given `scores` (the
  perturbed logits of the draw) such a layer therefore also runs the
  runner-up b (the second op of the same Gumbel draw, a draw without
  replacement) and adds w_b F_b(x), where w_b is exactly 0.0 forward and
  carries <dL/dy, F_b(x)>: the ProxylessNAS two-path estimator, which
  batch norm does not cancel. The supernet passes `scores` in its
  architecture step only; its weight step runs one op per layer.
- all paths (`gumbel_softmax`, FBNet; `softmax`, DARTS): every branch runs,
  weighted.

Synchronized batch norm under a strategy with several replicas: TensorFlow
cannot all-reduce inside `tf.switch_case` on Mirrored and MultiWorker
strategies (a `merge_call` in control flow), so there a single-path layer
runs every branch and keeps the chosen one(s) by a 0/1 factor (no gradient
to the others' weights, the same values and gradients as the switch), and
puts back the batch-norm statistics of the branches that were not chosen:
the switch's result at the switch's cost times the number of candidates
(docs/distribute.md).

Tracing cost (issue 20, docs/speed.md): in training an
`InvertedResidual` branch runs as TensorFlow ops (`raw_train_call`: no
Keras `__call__` per sublayer), and in a single-path switch the branches
of one `raw_structure` (e.g. k3_e3 and k5_e6) are one traced body run on
the chosen branch's weights, read by a switch outside the branch switch.
That body is a `tf.function` traced once per structure and input shape
(the kernels' shapes left open), so every layer and both steps of a
supernet call the same traced body and its gradient is built once.
All give the same values as one Keras call per branch.

The switches are not lowered (`lower_switches`, off): TensorFlow
rewrites every `Case` op of a traced function, and of its gradient, into
switch/merge nodes of one graph when the function is first called, which
made most of the first call and a quarter of the memory of a supernet. An
unlowered `Case` runs the chosen branch as a call of its own function,
instantiated when that branch first runs. A stage-2 step gives the same
values bit for bit
(`tests/test_supernet.py::test_build_time_switches_keep_the_train_step`),
except that a body alone in its switch may round a few sums differently,
and the steady step is as fast (docs/speed.md, "Unlowered switches").

In a single-path backward pass the branches that did not run get zero
gradients (the gradient of `tf.switch_case`), so an optimizer with momentum
or weight decay still moves them, as in the GDAS reference code.
"""

import functools

import keras
import tensorflow as tf
from tensorflow.python.ops import control_flow_switch_case

from hournas_tf.blocks.layers import Skip

PACKAGE = 'hournas_tf'


@keras.saving.register_keras_serializable(package=PACKAGE)
class MixedLayer(keras.layers.Layer):
    """Candidate ops of one layer; runs the sampled one (or all, weighted)."""

    # For measurements and tests (tools/build_time.py): False runs every
    # branch through its Keras call (no `raw_train_call`), resp. traces one
    # body per branch (no weights gathered by structure).
    raw_branches = True
    share_structure = True
    # False: a shared body is traced inline in every switch (no
    # `tf.function` per structure and input shape).
    traced_bodies = True
    # True: TensorFlow's default, every switch lowered to switch/merge
    # nodes (`switch_case`).
    lower_switches = False

    def __init__(self, branches, columns, single_path=True, residual=False,
                 **kwargs):
        super().__init__(**kwargs)
        branches = list(branches)
        columns = [int(c) for c in columns]
        if not branches or len(branches) != len(columns):
            raise ValueError(
                f'MixedLayer needs one column per branch, got '
                f'{len(branches)} branches and {len(columns)} columns')
        if len(set(columns)) != len(columns):
            raise ValueError(f'duplicate columns {columns}')
        if residual:
            for b in branches:
                if getattr(b, 'add_shortcut', False):
                    raise ValueError(
                        f'branch {b.name} of a residual MixedLayer adds '
                        'its own shortcut; build it with add_shortcut=False')
        # One attribute per branch (not a list): Keras 3 does not expose
        # layers held in lists to tf.train.Checkpoint.
        self._branch_names = tuple(f'branch_{k}' for k in range(len(columns)))
        for name, branch in zip(self._branch_names, branches):
            setattr(self, name, branch)
        self.columns = tuple(columns)
        self.single_path = bool(single_path)
        self.residual = bool(residual)

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

    def _branch_fns(self, inputs, training):
        """One zero-argument function per branch computing its F(x)."""
        fns = []
        for branch in self.branches:
            if self.residual and isinstance(branch, Skip):
                fns.append(functools.partial(tf.zeros_like, inputs))
            else:
                fns.append(functools.partial(_run, branch, inputs, training))
        return fns

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs, weights, scores=None, training=None):
        w = self.branch_weights(tf.convert_to_tensor(weights))
        fns = self._branch_fns(inputs, training)
        if len(fns) == 1:
            out = fns[0]()
            out = out * tf.cast(w[0], out.dtype)
        elif self.single_path and self._needs_masked():
            out = self._masked(inputs, w, scores, fns, training)
        elif self.single_path:
            chosen = tf.argmax(w, axis=-1, output_type=tf.int32)
            out = self._switch(chosen, fns, inputs, training)
            out = out * tf.cast(tf.gather(w, chosen), out.dtype)
            if scores is not None and not self.residual:
                s = self.branch_weights(tf.convert_to_tensor(scores))
                s = tf.where(tf.equal(tf.range(len(fns)), chosen),
                             tf.constant(-float('inf'), s.dtype), s)
                runner_up = tf.argmax(s, axis=-1, output_type=tf.int32)
                second = self._switch(runner_up, fns, inputs, training)
                out = out + second * tf.cast(tf.gather(w, runner_up),
                                             second.dtype)
        else:
            out = None
            for k, fn in enumerate(fns):
                y = fn()
                y = y * tf.cast(w[k], y.dtype)
                out = y if out is None else out + y
        if self.residual:
            out = inputs + out
        return out

    def _switch(self, index, fns, inputs, training):
        """`tf.switch_case(index, fns)`, where branches with one
        `raw_structure` (e.g. k3_e3 and k5_e6) are one traced body run on
        the chosen branch's weights: fewer branch bodies to trace,
        differentiate and instantiate, the same values."""
        parts = self._parts(inputs, training)
        if len(parts) == len(fns):
            return switch_case(index, fns)
        part_of, member_of = [0] * len(fns), [0] * len(fns)
        for p, members in enumerate(parts):
            for m, k in enumerate(members):
                part_of[k], member_of[k] = p, m
        part = tf.gather(tf.constant(part_of, tf.int32), index)
        member = tf.gather(tf.constant(member_of, tf.int32), index)
        part_fns = []
        for members in parts:
            if len(members) == 1:
                part_fns.append(fns[members[0]])
                continue
            # The weights are picked outside the switch (reads, cheap): a
            # switch nested in a branch is slower to differentiate.
            blocks = [self.branches[k] for k in members]
            tensors = switch_case(member, [
                functools.partial(_read, b) for b in blocks])
            part_fns.append(functools.partial(_shared, blocks, member,
                                              tensors, inputs))
        return switch_case(part, part_fns)

    def _parts(self, inputs, training):
        """The branch indices grouped by `raw_structure` (a group of one
        where a branch has none), in order of first appearance."""
        parts = {}
        for k, branch in enumerate(self.branches):
            key = ('branch', k)
            if self.share_structure and self.raw_branches and training and \
                    not isinstance(branch, Skip) and \
                    getattr(branch, 'raw_structure', None) and \
                    branch.raw_training(inputs):
                key = branch.raw_structure() or key
            parts.setdefault(key, []).append(k)
        return list(parts.values())

    def _needs_masked(self):
        """True where a branch has synchronized batch norm and the step
        runs on several replicas (no all-reduce inside tf.switch_case)."""
        return tf.distribute.get_strategy().num_replicas_in_sync > 1 and \
            any(getattr(b, 'bn_synchronized', False) for b in self.branches)

    def _masked(self, inputs, w, scores, fns, training):
        """Every branch runs; the chosen one (and the runner-up, given
        `scores` without a shortcut) is kept, as `tf.switch_case` would."""
        n = len(fns)
        chosen = tf.argmax(w, axis=-1, output_type=tf.int32)
        keep = tf.equal(tf.range(n), chosen)
        if scores is not None and not self.residual:
            s = self.branch_weights(tf.convert_to_tensor(scores))
            s = tf.where(keep, tf.constant(-float('inf'), s.dtype), s)
            runner_up = tf.argmax(s, axis=-1, output_type=tf.int32)
            keep = keep | tf.equal(tf.range(n), runner_up)
        states = [b.non_trainable_variables if training else []
                  for b in self.branches]
        before = [[tf.identity(v.value) for v in vs] for vs in states]
        factor = tf.where(keep, w, tf.zeros_like(w))
        out = None
        for k, fn in enumerate(fns):
            y = fn()
            y = y * tf.cast(factor[k], y.dtype)
            out = y if out is None else out + y
        for k, (variables, values) in enumerate(zip(states, before)):
            for v, old in zip(variables, values):
                v.assign(tf.where(keep[k], v.value, old))
        return out

    def compute_output_shape(self, input_shape):
        return self.branches[0].compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(),
                'branches': [keras.saving.serialize_keras_object(b)
                             for b in self.branches],
                'columns': list(self.columns),
                'single_path': self.single_path,
                'residual': self.residual}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config['branches'] = [keras.saving.deserialize_keras_object(b)
                              for b in config['branches']]
        return cls(**config)


def switch_case(index, fns):
    """`tf.switch_case(index, fns)`, not lowered to switch/merge nodes
    unless `MixedLayer.lower_switches` (see the module docstring).
    `tf.switch_case` has no argument for it; this is its implementation
    with TensorFlow's own `lower_using_switch_merge` argument, the one
    `tf.__internal__.execute_fn_for_device` sets to False."""
    if MixedLayer.lower_switches:
        return tf.switch_case(index, fns)
    return control_flow_switch_case._indexed_case_helper(
        fns, None, index, 'switch_case', lower_using_switch_merge=False)


def _shared(blocks, member, tensors, inputs):
    """F(x) of blocks[member] (blocks of one `raw_structure`) on its
    weights `tensors`: one `raw_forward`, its moving statistics moved."""
    if MixedLayer.traced_bodies:
        y, stats = _traced_body(blocks[0], inputs, tensors)
    else:
        y, stats = blocks[0].raw_forward(inputs, tensors)
    switch_case(member, [functools.partial(_update, b, stats)
                         for b in blocks])
    return y


# (raw_structure, input shape and dtype, ranks and dtypes of the weights)
# -> a tf.function computing `raw_forward` of any block of that structure.
_BODIES = {}


def _traced_body(block, inputs, tensors):
    """`block.raw_forward(inputs, tensors)` as a call of a `tf.function`
    traced once per structure and input shape (the weights' shapes left
    open): every layer and both steps of a supernet call the same traced
    body, and TensorFlow builds its gradient once."""
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    key = (block.raw_structure(), tuple(inputs.shape), inputs.dtype,
           tuple((t.shape.rank, t.dtype) for t in tensors))
    fn = _BODIES.get(key)
    if fn is None:
        signature = [tf.TensorSpec(inputs.shape, inputs.dtype)] + [
            tf.TensorSpec([None] * t.shape.rank, t.dtype) for t in tensors]

        def body(x, *weights):
            return block.raw_forward(x, weights)

        fn = _BODIES[key] = tf.function(body, input_signature=signature,
                                        autograph=False)
    y, stats = fn(inputs, *tensors)
    y.set_shape(block.compute_output_shape(inputs.shape))
    return y, stats


def _read(block):
    return [tf.identity(v) for v in block.raw_variables()]


def _update(block, stats):
    block.update_moving(stats)
    return tf.constant(0)


def _run(branch, inputs, training):
    if training and MixedLayer.raw_branches and \
            getattr(branch, 'raw_training', None) and \
            branch.raw_training(inputs):
        return branch.raw_train_call(inputs)
    return branch(inputs, training=training)
