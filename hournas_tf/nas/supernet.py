"""The HourNAS supernet: a `keras.Model` with an alternating `train_step`.

`build_supernet(space, searched, fixed_ops, config, table, targets,
proposals)` builds the chain stem -> layers -> head -> classifier where each
layer index in `searched` is a `MixedLayer` (one row of the architecture
parameters, columns = `space.op_names`), each index in `fixed_ops` a plain op
and every other layer is removed (legal only where an identity shortcut
exists: stage 1 keeps the vital layers only).

Architecture parameters (trainable, `arch_variables`):
- logits mode (`proposals` is None): `theta` (rows, cols), zeros at start;
  op weights = `sampling.sample(theta, tau, sampler, seed, mask)`.
- proposal mode: `proposal_logits` (m, rows, cols) initialized from
  `proposals` and `pi_logits` (m,) zeros; op weights =
  `proposals.ensemble_weights(...)` (eqs. 8-9).

`train_step` on `((x_w, y_w), (x_a, y_a))` (the 80% and 20% splits):
1. weight step: op weights sampled with the stateless seed
   (seed, 2 * step), forward on x_w, cross-entropy (+ L2 weight decay),
   gradients w.r.t. `weight_variables` only, SGD with momentum and a cosine
   learning-rate decay over `total_steps`;
2. architecture step: seed (seed, 2 * step + 1), forward on x_a,
   cross-entropy + alpha * resource loss (eq. 6; when a table and targets are
   given), gradients w.r.t. `arch_variables` only, Adam;
3. tau <- tau * tau_decay, step <- step + 1 (model variables).

The step has no Python side effects: all state (network weights, batch-norm
statistics, architecture parameters, both optimizers, `tau`, `step`) lives in
Keras variables tracked by the model, so `tf.train.Checkpoint(model=net)`
holds the whole search state (not the per-epoch metric accumulators), and
the stateless seeds make a restored run draw the same architectures. Layers
are attributes, never lists: Keras 3 hides list-held layers from
tf.train.Checkpoint. Under `tf.distribute` every replica draws the same
architecture (same seed), losses are divided by the number of replicas and
the optimizers sum the gradients, as in Keras' own `train_step`.

Weight decay is L2 added to the gradient (g + wd * w, PyTorch SGD style,
every weight variable, also the branches a single-path step did not run), so
with momentum it matches the reference PyTorch searches; set
`weight_decay=0` to disable it.

Called without `arch_weights` (evaluate, predict) the net runs the derived
architecture (`argmax_weights`).

Caveat of the straight-through estimator (gumbel_max): the cross-entropy
gradient of a row is <dL/dy, y> for the chosen op's output y. When y only
feeds a conv + training-mode batch norm (a layer without identity path:
every layer of the stage-1 vital supernet, and in stage 2 the non-vital
layer just before each vital one) the loss is invariant to the scale of y
and that gradient is zero up to rounding (measured ~1e-9 against ~1e-2 with
gumbel_softmax); the resource-loss gradient is unaffected.
"""

import dataclasses
import numbers

import keras
import numpy as np
import tensorflow as tf

from hournas_tf.blocks import layers as hl
from hournas_tf.errors import UserError
from hournas_tf.nas import proposals as proposals_lib
from hournas_tf.nas import sampling
from hournas_tf.nas.mixed import MixedLayer
from hournas_tf.resources import tables


@dataclasses.dataclass(frozen=True)
class SupernetConfig:
    """Search hyper-parameters of the supernet (HourNAS section 4.1)."""

    sampler: str = 'gumbel_max'
    tau_init: float = 5.0
    tau_decay: float = 0.9999
    alpha: float = 5.0            # resource-loss slope; 0 disables it
    weight_lr: float = 0.1        # SGD momentum, cosine decay over total_steps
    weight_momentum: float = 0.9
    weight_decay: float = 4e-5    # L2 on the gradient (g + wd * w); 0: off
    arch_lr: float = 0.01         # Adam
    total_steps: int = 1000       # for the lr schedule
    seed: int = 0

    def check(self):
        """Raises UserError for a setting outside its valid range."""
        sampling.check_sampler(self.sampler)
        for name in ('tau_init', 'weight_lr', 'arch_lr'):
            if not getattr(self, name) > 0:
                raise UserError(f'{name}={getattr(self, name)!r} must be > 0')
        if not 0 < self.tau_decay <= 1:
            raise UserError(
                f'tau_decay={self.tau_decay!r} must be in (0, 1]')
        for name in ('alpha', 'weight_decay'):
            if not getattr(self, name) >= 0:
                raise UserError(
                    f'{name}={getattr(self, name)!r} must be >= 0')
        if not 0 <= self.weight_momentum < 1:
            raise UserError(f'weight_momentum={self.weight_momentum!r} must '
                            'be in [0, 1)')
        if not isinstance(self.total_steps, int) or self.total_steps < 1:
            raise UserError(
                f'total_steps={self.total_steps!r} must be an integer >= 1')
        if not isinstance(self.seed, numbers.Integral) or \
                isinstance(self.seed, bool):
            raise UserError(f'seed={self.seed!r} must be an integer')


def layer_name(index):
    """Name of searchable layer `index` (0-based) in models and supernets."""
    return f'layer{index + 1:02d}'


def _masked_softmax(logits, mask):
    logits = np.where(mask, np.asarray(logits, np.float64), -np.inf)
    top = logits.max(axis=-1, keepdims=True)
    e = np.exp(logits - top)
    return e / e.sum(axis=-1, keepdims=True)


def _masked_argmax(logits, mask):
    return np.where(mask, np.asarray(logits, np.float64),
                    -np.inf).argmax(axis=-1)


class _Latest(keras.metrics.Metric):
    """The last value passed to `update_state` (tau, expected resources)."""

    def __init__(self, name, **kwargs):
        super().__init__(name=name, **kwargs)
        self.value = self.add_variable(shape=(), initializer='zeros',
                                       aggregation='mean', name='value')

    def update_state(self, value):
        self.value.assign(tf.cast(value, self.value.dtype))

    def result(self):
        return tf.identity(self.value)


class SuperNet(keras.Model):
    """The searchable supernet; see the module docstring and
    `build_supernet`."""

    def __init__(self, space, searched, fixed_ops=None, config=None,
                 table=None, targets=None, proposals=None, **kwargs):
        kwargs.setdefault('name', f'{space.name}_supernet')
        super().__init__(**kwargs)
        config = config or SupernetConfig()
        self.space = space
        self.config = config
        self.searched = tuple(searched)
        self.fixed_ops = dict(fixed_ops or {})
        self.table = table
        self.targets = dict(targets) if targets else None
        self.mask = np.array(space.candidate_mask(),
                             dtype=bool)[list(self.searched)]
        self.single_path = config.sampler == 'gumbel_max'
        rows, cols = self.mask.shape

        self.stem = hl.make_stem(space)
        blocks, block_rows, block_indices = [], [], []
        for i in range(len(space.layers)):
            if i in self.searched:
                row = self.searched.index(i)
                ops = space.layers[i].candidates
                columns = [space.op_names.index(op) for op in ops]
                block = MixedLayer(
                    [hl.make_op(space, i, op, name=op) for op in ops],
                    columns, self.single_path, name=layer_name(i))
            elif i in self.fixed_ops:
                row = None
                block = hl.make_op(space, i, self.fixed_ops[i],
                                   name=layer_name(i))
            else:
                continue
            blocks.append(block)
            block_rows.append(row)
            block_indices.append(i)
        # One attribute per layer (not a list): Keras 3 does not expose
        # layers held in lists to tf.train.Checkpoint.
        for i, block in zip(block_indices, blocks):
            setattr(self, layer_name(i), block)
        self._block_rows = tuple(block_rows)
        self._block_indices = tuple(block_indices)
        self.head = hl.make_head(space)
        self.pool = keras.layers.GlobalAveragePooling2D(name='pool')
        self.dropout = (keras.layers.Dropout(space.dropout, name='dropout')
                        if space.dropout else None)
        self.classifier = keras.layers.Dense(space.num_classes,
                                             name='classifier')

        self.has_proposals = proposals is not None
        if self.has_proposals:
            proposals = np.asarray(proposals, dtype=np.float32)
            m = proposals.shape[0]
            self.proposal_logits = self.add_weight(
                shape=(m, rows, cols), name='proposal_logits',
                initializer=keras.initializers.Constant(proposals))
            self.pi_logits = self.add_weight(
                shape=(m,), initializer='zeros', name='pi_logits')
            self._arch_variables = [self.pi_logits, self.proposal_logits]
        else:
            self.theta = self.add_weight(
                shape=(rows, cols), initializer='zeros', name='theta')
            self._arch_variables = [self.theta]
        self.tau = self.add_weight(
            shape=(), name='tau', trainable=False,
            initializer=keras.initializers.Constant(config.tau_init),
            aggregation='only_first_replica')
        self.step = self.add_weight(
            shape=(), dtype='int64', name='step', trainable=False,
            initializer='zeros', aggregation='only_first_replica')
        self.arch_optimizer = None
        trackers = [
            keras.metrics.Mean(name='loss'),
            keras.metrics.SparseCategoricalAccuracy(name='accuracy'),
            keras.metrics.Mean(name='arch_loss'),
            keras.metrics.SparseCategoricalAccuracy(name='arch_accuracy'),
            _Latest('tau'),
        ]
        if self.targets:
            trackers.append(keras.metrics.Mean(name='resource_loss'))
        if table is not None:
            trackers += [_Latest(obj) for obj in table.objectives]
        self._trackers = trackers

    # --- Structure -------------------------------------------------------

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.stem.build(shape)
        shape = self.stem.compute_output_shape(shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.head.build(shape)
        shape = self.head.compute_output_shape(shape)
        self.classifier.build((shape[0], shape[-1]))
        # Stateless sublayers (activations, channel shuffle, pooling) have
        # no weights to create; mark them built so Keras never needs a
        # symbolic call (the fit data is not a plain (x, y)).
        for layer in self._flatten_layers(include_self=False):
            if not layer.built:
                layer.built = True

    @property
    def blocks(self):
        """The layers present, in order (MixedLayer or plain op)."""
        return [getattr(self, layer_name(i)) for i in self._block_indices]

    @property
    def arch_variables(self):
        """The architecture parameters: [theta] or [pi_logits,
        proposal_logits]."""
        return list(self._arch_variables)

    @property
    def weight_variables(self):
        """Trainable network weights (everything but `arch_variables`)."""
        arch = {id(v) for v in self._arch_variables}
        return [v for v in self.trainable_variables if id(v) not in arch]

    @property
    def mixed_layers(self):
        """{layer index: MixedLayer} of the searched layers."""
        return {i: b for i, b in zip(self._block_indices, self.blocks)
                if isinstance(b, MixedLayer)}

    @property
    def layer_indices(self):
        """The 0-based indices of the layers present (searched or fixed)."""
        return self._block_indices

    def op_layers(self):
        """{(layer index, op name): Keras layer} of every op in the net."""
        result = {}
        for i, block in zip(self._block_indices, self.blocks):
            if isinstance(block, MixedLayer):
                for col, branch in zip(block.columns, block.branches):
                    result[(i, self.space.op_names[col])] = branch
            else:
                result[(i, self.fixed_ops[i])] = block
        return result

    # --- Forward pass ----------------------------------------------------

    def _seed(self, offset):
        step = tf.cast(tf.convert_to_tensor(self.step), tf.int64)
        return tf.stack([tf.constant(self.config.seed, tf.int64),
                         2 * step + offset])

    def sample_weights(self, seed):
        """Op weights (rows, cols) drawn with a shape-[2] stateless seed."""
        tau = tf.convert_to_tensor(self.tau)
        mask = tf.constant(self.mask)
        if self.has_proposals:
            weights, _ = proposals_lib.ensemble_weights(
                tf.convert_to_tensor(self.pi_logits),
                tf.convert_to_tensor(self.proposal_logits), tau,
                self.config.sampler, seed, mask)
            return weights
        return sampling.sample(tf.convert_to_tensor(self.theta), tau,
                               self.config.sampler, seed, mask)

    def argmax_weights(self):
        """One-hot op weights of the derived (most probable) architecture."""
        mask = tf.constant(self.mask)
        if self.has_proposals:
            best = tf.argmax(tf.convert_to_tensor(self.pi_logits))
            logits = tf.gather(tf.convert_to_tensor(self.proposal_logits),
                               best)
        else:
            logits = tf.convert_to_tensor(self.theta)
        index = sampling.hard_index(sampling.masked_logits(logits, mask))
        return tf.one_hot(index, self.mask.shape[1], dtype=logits.dtype)

    def probabilities(self):
        """The op distribution (rows, cols) as a tensor (differentiable)."""
        mask = tf.constant(self.mask)
        if self.has_proposals:
            pi = tf.nn.softmax(tf.convert_to_tensor(self.pi_logits))
            per = tf.nn.softmax(sampling.masked_logits(
                tf.convert_to_tensor(self.proposal_logits), mask), axis=-1)
            return tf.tensordot(pi, per, axes=[[0], [0]])
        return tf.nn.softmax(sampling.masked_logits(
            tf.convert_to_tensor(self.theta), mask), axis=-1)

    def call(self, inputs, training=None, arch_weights=None):
        """Logits for `inputs` under op weights `arch_weights` (rows, cols);
        the derived architecture (`argmax_weights`) when None."""
        if arch_weights is None:
            arch_weights = self.argmax_weights()
        x = self.stem(inputs, training=training)
        for block, row in zip(self.blocks, self._block_rows):
            if row is None:
                x = block(x, training=training)
            else:
                x = block(x, arch_weights[row], training=training)
        x = self.head(x, training=training)
        x = self.pool(x)
        if self.dropout is not None:
            x = self.dropout(x, training=training)
        return self.classifier(x)

    # --- Training --------------------------------------------------------

    def compile(self, weight_optimizer=None, arch_optimizer=None,
                jit_compile=False, **kwargs):
        """SGD(momentum) + cosine decay on the weights, Adam on the
        architecture; cross-entropy from logits; accuracy metrics."""
        for key in ('loss', 'metrics', 'optimizer'):
            if key in kwargs:
                raise UserError(f'SuperNet.compile sets {key} itself')
        config = self.config
        if weight_optimizer is None:
            schedule = keras.optimizers.schedules.CosineDecay(
                config.weight_lr, config.total_steps)
            weight_optimizer = keras.optimizers.SGD(
                schedule, momentum=config.weight_momentum,
                name='weight_sgd')
        if arch_optimizer is None:
            arch_optimizer = keras.optimizers.Adam(config.arch_lr,
                                                   name='arch_adam')
        super().compile(optimizer=weight_optimizer, jit_compile=jit_compile,
                        **kwargs)
        self.arch_optimizer = arch_optimizer
        self.optimizer.build(self.weight_variables)
        self.arch_optimizer.build(self.arch_variables)

    @property
    def metrics(self):
        return list(self._trackers)

    def _metric(self, name):
        for tracker in self._trackers:
            if tracker.name == name:
                return tracker
        return None

    def _labels(self, y, logits):
        y = tf.convert_to_tensor(y)
        if y.shape.rank == logits.shape.rank:  # one-hot
            y = tf.argmax(y, axis=-1)
        return y

    def _cross_entropy(self, y, logits):
        ce = keras.losses.sparse_categorical_crossentropy(
            y, logits, from_logits=True)
        return tf.reduce_mean(tf.cast(ce, tf.float32))

    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        (x_w, y_w), (x_a, y_a) = data
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        scale = 1.0 / replicas
        config = self.config

        # 1. Network weights on the 80% split.
        weight_vars = self.weight_variables
        with tf.GradientTape() as tape:
            arch = tf.stop_gradient(self.sample_weights(self._seed(0)))
            logits = self(x_w, training=True, arch_weights=arch)
            y_w = self._labels(y_w, logits)
            loss = self._cross_entropy(y_w, logits)
            scaled = loss * scale
        grads = tape.gradient(scaled, weight_vars)
        if config.weight_decay:
            wd = config.weight_decay * scale
            grads = [wd * v if g is None else g + wd * tf.cast(v, g.dtype)
                     for g, v in zip(grads, weight_vars)]
        self.optimizer.apply(grads, weight_vars)

        # 2. Architecture parameters on the 20% split.
        arch_vars = self.arch_variables
        with tf.GradientTape() as tape:
            arch = self.sample_weights(self._seed(1))
            arch_logits = self(x_a, training=True, arch_weights=arch)
            y_a = self._labels(y_a, arch_logits)
            arch_loss = self._cross_entropy(y_a, arch_logits)
            total = arch_loss
            if self.targets:
                resource = proposals_lib.resource_loss(
                    self.table, self.targets, arch)
                if config.alpha:
                    total = total + config.alpha * resource
            scaled = total * scale
        arch_grads = tape.gradient(scaled, arch_vars)
        self.arch_optimizer.apply(arch_grads, arch_vars)

        # 3. Temperature and step counter.
        self.tau.assign(self.tau * config.tau_decay)
        self.step.assign_add(tf.constant(1, tf.int64))

        # Metrics.
        batch = tf.shape(y_w)[0]
        self._metric('loss').update_state(loss, sample_weight=batch)
        self._metric('accuracy').update_state(y_w, logits)
        self._metric('arch_loss').update_state(
            arch_loss, sample_weight=tf.shape(y_a)[0])
        self._metric('arch_accuracy').update_state(y_a, arch_logits)
        self._metric('tau').update_state(self.tau)
        if self.targets:  # of the sampled architecture, even if alpha is 0
            self._metric('resource_loss').update_state(resource)
        if self.table is not None:
            expected = proposals_lib.expected_totals(
                self.table, self.probabilities())
            for obj, value in expected.items():
                self._metric(obj).update_state(value)
        return {m.name: m.result() for m in self.metrics}

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        """Loss and accuracy of the derived architecture on (x, y)."""
        x, y = data[0], data[1]
        logits = self(x, training=False)
        y = self._labels(y, logits)
        loss = self._cross_entropy(y, logits)
        self._metric('loss').update_state(loss,
                                           sample_weight=tf.shape(y)[0])
        self._metric('accuracy').update_state(y, logits)
        return {name: self._metric(name).result()
                for name in ('loss', 'accuracy')}

    # --- Derivation ------------------------------------------------------

    def op_probabilities(self):
        """np (rows, cols): the op distribution, 0 where masked.

        Logits mode: softmax(theta); proposal mode: the pi-weighted mixture
        sum_j softmax(pi)_j softmax(theta_j).
        """
        if self.has_proposals:
            return np.tensordot(self.proposal_probabilities(),
                                self.proposal_op_probabilities(), axes=1)
        return _masked_softmax(self.theta.numpy(), self.mask)

    def proposal_op_probabilities(self):
        """np (m, rows, cols): softmax of each proposal (proposal mode)."""
        self._need_proposals('proposal_op_probabilities')
        return _masked_softmax(self.proposal_logits.numpy(), self.mask)

    def proposal_probabilities(self):
        """np (m,): softmax(pi_logits) (proposal mode)."""
        self._need_proposals('proposal_probabilities')
        pi = np.asarray(self.pi_logits.numpy(), np.float64)
        e = np.exp(pi - pi.max())
        return e / e.sum()

    def _ops_of(self, logits):
        columns = _masked_argmax(logits, self.mask)
        return {i: self.space.op_names[c]
                for i, c in zip(self.searched, columns)}

    def derive(self):
        """{layer index: op}: the most probable op of every searched layer
        (proposal mode: in the most probable proposal)."""
        if self.has_proposals:
            best = int(np.argmax(self.pi_logits.numpy()))
            return self._ops_of(self.proposal_logits.numpy()[best])
        return self._ops_of(self.theta.numpy())

    def derive_proposals(self):
        """One `derive`-style dict per proposal ([derive()] without)."""
        if not self.has_proposals:
            return [self.derive()]
        return [self._ops_of(logits)
                for logits in self.proposal_logits.numpy()]

    def _need_proposals(self, what):
        if not self.has_proposals:
            raise UserError(f'{what} needs a supernet built with proposals')

    def copy_weights_from(self, other):
        """Copies stem, head, classifier and every (layer, op) present in
        both supernets (e.g. stage-1 vital ops into stage 2); returns the
        names of the copied layers."""
        copied = []

        def copy(dst, src, name):
            src_w, dst_w = src.get_weights(), dst.get_weights()
            if src_w and len(src_w) == len(dst_w) and all(
                    a.shape == b.shape for a, b in zip(src_w, dst_w)):
                dst.set_weights(src_w)
                copied.append(name)

        for attr in ('stem', 'head', 'classifier'):
            copy(getattr(self, attr), getattr(other, attr), attr)
        theirs = other.op_layers()
        for key, layer in self.op_layers().items():
            if key in theirs:
                copy(layer, theirs[key], f'{layer_name(key[0])}/{key[1]}')
        return copied


def build_supernet(space, searched, fixed_ops=None, config=None, table=None,
                   targets=None, proposals=None):
    """Builds (and creates the variables of) a `SuperNet`.

    Args:
        space: a `spaces.SearchSpace`.
        searched: 0-based layer indices that get a `MixedLayer`, in row
            order of the architecture parameters.
        fixed_ops: {layer index: op name} of layers built as plain ops.
            Every layer in neither is removed (only where `has_shortcut`).
        config: a `SupernetConfig` (default: the paper's settings).
        table: a `counting.ResourceTable` with rows == `searched` (expected
            resources are reported as metrics).
        targets: {objective: whole-network value}; with `table`, adds
            alpha * resource loss to the architecture step.
        proposals: (m, rows, cols) proposal logits (proposal mode).

    Call `compile()` (inside the same distribution scope) before `fit`.
    """
    config = config or SupernetConfig()
    if not isinstance(config, SupernetConfig):
        raise UserError(f'config must be a SupernetConfig, got '
                        f'{type(config).__name__}')
    config.check()
    num_layers = len(space.layers)
    searched = tuple(searched)
    fixed_ops = dict(fixed_ops or {})

    def check_index(i, what):
        if not isinstance(i, (int, np.integer)) or not 0 <= i < num_layers:
            raise UserError(f'{what} layer index {i!r} is out of range; '
                            f'valid: 0..{num_layers - 1}')

    if not searched:
        raise UserError('no searched layers: pass at least one layer index')
    for i in searched:
        check_index(i, 'searched')
    searched = tuple(int(i) for i in searched)
    if len(set(searched)) != len(searched):
        raise UserError(f'duplicate searched layer indices {list(searched)}')
    for i, op in fixed_ops.items():
        check_index(i, 'fixed')
        if int(i) in searched:
            raise UserError(f'layer {i + 1} is both searched and fixed')
        space.check_op(int(i), op)
    fixed_ops = {int(i): op for i, op in fixed_ops.items()}
    for layer in space.layers:
        i = layer.index
        if i not in searched and i not in fixed_ops and \
                not layer.has_shortcut:
            raise UserError(
                f'layer {i + 1} cannot be removed: it has no identity '
                f'shortcut (stride {layer.stride}, {layer.c_in} -> '
                f'{layer.c_out} channels); search it or fix its op')
    rows, cols = len(searched), len(space.op_names)
    if proposals is not None:
        proposals = np.asarray(proposals, dtype=np.float32)
        if proposals.ndim != 3 or proposals.shape[1:] != (rows, cols) or \
                proposals.shape[0] < 1:
            raise UserError(
                f'proposals must have shape (m, {rows}, {cols}), got '
                f'{proposals.shape}')
    if table is not None:
        if not isinstance(table, tables.ResourceTable):
            raise UserError('table must be a tables.ResourceTable')
        if tuple(table.layer_indices) != searched or \
                tuple(table.op_names) != space.op_names:
            raise UserError(
                f'resource table rows {list(table.layer_indices)} do not '
                f'match the searched layers {list(searched)}')
    if targets:
        if table is None:
            raise UserError('resource targets need a resource table')
        for objective in targets:
            if objective not in table.objectives:
                raise UserError(
                    f'unknown objective {objective!r}; this table has '
                    f'{", ".join(table.objectives)}')
    net = SuperNet(space, searched, fixed_ops, config, table=table,
                   targets=targets or None, proposals=proposals)
    net.build((None, space.image_size, space.image_size, 3))
    return net
