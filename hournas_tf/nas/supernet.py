"""The HourNAS supernet: a `keras.Model` with an alternating `train_step`.

`build_supernet(space, searched, fixed_ops, config, budget, proposals)`
builds the chain stem -> layers -> head -> classifier where each layer index
in `searched` is a `MixedLayer` (one row of the architecture parameters,
columns = `space.op_names`), each index in `fixed_ops` a plain op and every
other layer is removed (legal only where an identity shortcut exists:
stage 1 keeps the vital layers only).

Architecture parameters (`arch_params`, see `arch_params.py`): plain logits
theta (stage 1, one-stage search without proposals) or m proposals and the
proposal sampler pi (stage 2, eqs. 8-9), one interface.

Searched layers with an identity shortcut compute x + w_k F_k(x) (the op
weight scales the residual branch; see `mixed.py`). With
`zero_init_residual` the last batch-norm scale of every such branch starts
at zero, so each inserted block starts as the identity: the stage-2
supernet starts as the stage-1 function it inherits (vital ops, stem, head
and classifier copied from stage 1).

Each step draws its architectures with `draw_in_budget`: with a budget
and `budget_draws` = K > 1, up to K draws (seeds folded from the step's
seed), keeping the first within tolerance of every target (the first draw
if none is). The supernet then trains only architectures the space
proposals were meant to produce ("what you set is what you get"), however
far the distribution drifts during the stage; the resource loss reads
the distribution itself (the first, unconditioned draw, or each
proposal's expected totals), so it keeps pulling the distribution into
the budget.

`train_step` on `((x_w, y_w), (x_a, y_a))` (the 80% and 20% splits):
1. weight step: op weights drawn with the stateless seed
   (seed, 2 * step), forward on x_w, cross-entropy, gradients w.r.t.
   `weight_variables` only (+ L2 weight decay on the gradient), SGD with
   momentum and a cosine learning-rate decay over `total_steps`;
2. architecture step: seed (seed, 2 * step + 1), forward on x_a with the
   draw's scores (the two-path estimator at layers without a shortcut),
   cross-entropy + alpha * resource loss (eq. 6, with a budget: on the
   first draw, or with `resource_estimate='expected'` on each proposal's
   expected totals weighted by pi; misses within `resource_slack` x the
   tolerance cost nothing), gradients
   w.r.t. the architecture parameters only, Adam. The cross-entropy part of
   that gradient is also reduced to one norm per searched layer
   (`arch_grad_norm/L<i>` metrics): which layers learn from accuracy;
3. tau <- tau * tau_decay, step <- step + 1 (model variables).

Metrics: loss/accuracy (weight step), arch_loss/arch_accuracy
(architecture step), tau, and with a budget: resource_loss, the expected
total of each objective under the op distribution, `within_tolerance`,
the share of the architectures the steps trained within tolerance of every
target (in stage 1: completable to one, see `budget.py`), and
`draw_within_tolerance`, the same share of the first draws (the
distribution itself, before `budget_draws` picks).

The step has no Python side effects: all state (network weights, batch-norm
statistics, architecture parameters, both optimizers, `tau`, `step`) lives in
Keras variables tracked by the model, so `tf.train.Checkpoint(model=net)`
holds the whole search state (not the per-epoch metric accumulators), and
the stateless seeds make a restored run draw the same architectures. Layers
are attributes, never lists: Keras 3 hides list-held layers from
tf.train.Checkpoint. Under `tf.distribute` every replica draws the same
architecture (same seed; with `per_replica_paths` the replica id is folded
into it), losses are divided by the number of replicas and the optimizers
sum the gradients, as in Keras' own `train_step`. `sync_batch_norm`
computes every batch norm's statistics over all replicas
(docs/distribute.md).

Called without `arch_weights` (evaluate, predict) the net runs the derived
architecture (`argmax_weights`).
"""

import dataclasses
import numbers

import keras
import numpy as np
import tensorflow as tf

from hournas_tf.blocks import layers as hl
from hournas_tf.blocks.nesting import nested_layers
from hournas_tf.common.errors import UserError
from hournas_tf.nas import arch_params as params_lib
from hournas_tf.nas import budget as budget_lib
from hournas_tf.nas import config as rules
from hournas_tf.nas import sampling
from hournas_tf.nas.fused_sgd import FusedMomentumSGD
from hournas_tf.nas.mixed import MixedLayer


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
    zero_init_residual: bool = True  # inserted blocks start as identity
    sample_temperature: float = 1.0  # Gumbel-Max draws ~ softmax(theta / T)
    budget_draws: int = 1         # draws per step to find one in budget
    resource_slack: float = 0.0   # misses within slack x tolerance free
    resource_estimate: str = 'draw'  # or 'expected' (see arch_step)
    pi_tau: float = None          # pi's relaxation temperature (None: tau)
    sync_batch_norm: bool = False    # batch statistics over all replicas
    per_replica_paths: bool = False  # each replica draws its own path

    def check(self):
        """Raises UserError for a setting outside its valid range (the
        rules of `nas.config`, shared with `SearchConfig`)."""
        sampling.check_sampler(self.sampler)
        rules.check_positive(self, 'tau_init', 'weight_lr', 'arch_lr',
                             'sample_temperature', 'pi_tau')
        rules.check_tau_decay(self)
        rules.check_choice(self, 'resource_estimate',
                           rules.RESOURCE_ESTIMATES)
        rules.check_nonnegative(self, 'alpha', 'weight_decay',
                                'resource_slack')
        rules.check_unit(self, 'weight_momentum', closed=False)
        rules.check_integer(self, 'budget_draws', 1)
        rules.check_integer(self, 'total_steps', 1)
        if not isinstance(self.seed, numbers.Integral) or \
                isinstance(self.seed, bool):
            raise UserError(f'seed={self.seed!r} must be an integer')
        rules.check_replica_paths(self)


def layer_name(index):
    """Name of searchable layer `index` (0-based) in models and supernets."""
    return f'layer{index + 1:02d}'


def grad_norm_name(index, part='arch'):
    """Metric name of the architecture-gradient norm of layer `index`
    (an int, or 'pi' for the proposal logits): `part` 'arch' is the
    cross-entropy part, 'resource' the resource loss's part."""
    suffix = index if index == 'pi' else f'L{index + 1}'
    return f'{part}_grad_norm/{suffix}'


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


class _RowMean(keras.metrics.Metric):
    """Per-row running mean of a vector; results are one scalar per row."""

    def __init__(self, names, **kwargs):
        super().__init__(**kwargs)
        self.names = tuple(names)
        self.total = self.add_variable(shape=(len(names),),
                                       initializer='zeros', name='total')
        self.count = self.add_variable(shape=(), initializer='zeros',
                                       name='count')

    def update_state(self, values):
        self.total.assign_add(tf.cast(values, self.total.dtype))
        self.count.assign_add(tf.constant(1.0, self.count.dtype))

    def result(self):
        mean = self.total / tf.maximum(self.count, 1.0)
        return {name: mean[r] for r, name in enumerate(self.names)}


class SuperNet(keras.Model):
    """The searchable supernet; see the module docstring and
    `build_supernet`."""

    # For measurements and tests (tools/build_time.py): False takes both
    # gradients of the architecture step from one persistent tape.
    tape_per_loss = True

    def __init__(self, space, searched, fixed_ops=None, config=None,
                 budget=None, proposals=None, **kwargs):
        kwargs.setdefault('name', f'{space.name}_supernet')
        super().__init__(**kwargs)
        config = config or SupernetConfig()
        self.space = space
        self.config = config
        self.searched = tuple(searched)
        self.fixed_ops = dict(fixed_ops or {})
        self.budget = budget
        self.mask = np.array(space.candidate_mask(),
                             dtype=bool)[list(self.searched)]
        self.single_path = config.sampler == 'gumbel_max'

        sync = config.sync_batch_norm
        self.stem = hl.make_stem(space, bn_synchronized=sync)
        block_rows, block_indices = [], []
        for i in range(len(space.layers)):
            if i in self.searched:
                row = self.searched.index(i)
                block = self._mixed_layer(i)
            elif i in self.fixed_ops:
                row = None
                block = hl.make_op(space, i, self.fixed_ops[i],
                                   name=layer_name(i), bn_synchronized=sync)
            else:
                continue
            # One attribute per layer (not a list): Keras 3 does not expose
            # layers held in lists to tf.train.Checkpoint.
            setattr(self, layer_name(i), block)
            block_rows.append(row)
            block_indices.append(i)
        self._block_rows = tuple(block_rows)
        self._block_indices = tuple(block_indices)
        self.head = hl.make_head(space, bn_synchronized=sync)
        self.pool = keras.layers.GlobalAveragePooling2D(name='pool')
        self.dropout = (keras.layers.Dropout(space.dropout, name='dropout')
                        if space.dropout else None)
        self.classifier = keras.layers.Dense(space.num_classes,
                                             name='classifier')

        self.arch_params = self._make_arch_params(proposals)
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
            _RowMean([grad_norm_name(i) for i in self.searched],
                     name='arch_grad_norm'),
            _RowMean([grad_norm_name(i, 'resource') for i in self.searched],
                     name='resource_grad_norm'),
        ]
        if proposals is not None:
            trackers.append(_RowMean(
                [grad_norm_name('pi'), grad_norm_name('pi', 'resource')],
                name='pi_grad_norm'))
        if budget is not None:
            trackers.append(keras.metrics.Mean(name='within_tolerance'))
            trackers.append(
                keras.metrics.Mean(name='draw_within_tolerance'))
            if budget.free is None:
                trackers.append(keras.metrics.Mean(name='resource_loss'))
                trackers += [_Latest(obj) for obj in budget.table.objectives]
        self._trackers = trackers

    def _make_arch_params(self, proposals):
        """Plain logits, or the proposals and pi (subclasses: others)."""
        if proposals is None:
            return params_lib.LogitsParams(
                self.mask, self.config.sample_temperature,
                name='arch_logits')
        return params_lib.ProposalParams(
            self.mask, proposals, self.config.sample_temperature,
            self.config.pi_tau, name='arch_proposals')

    def _within(self, weights):
        """1.0 where the draw `weights` is within tolerance of the budget
        (subclasses: of the step's own budget)."""
        return budget_lib.within_tolerance(self.budget, weights)

    def _mixed_layer(self, i):
        layer = self.space.layers[i]
        residual = layer.has_shortcut
        ops = layer.candidates
        columns = [self.space.op_names.index(op) for op in ops]
        branches = [hl.make_op(self.space, i, op, name=op,
                               add_shortcut=not residual,
                               bn_synchronized=self.config.sync_batch_norm)
                    for op in ops]
        return MixedLayer(branches, columns, self.single_path, residual,
                          name=layer_name(i))

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
        for layer in nested_layers(self):
            if not layer.built:
                layer.built = True
        if self.config.zero_init_residual:
            self._zero_init_residual_branches()

    def _zero_init_residual_branches(self):
        """gamma = 0 in the last batch norm of every residual branch."""
        for layer in self.mixed_layers.values():
            if not layer.residual:
                continue
            for branch in layer.branches:
                bn = getattr(branch, 'pwl_bn', None)
                if bn is not None:
                    bn.gamma.assign(tf.zeros_like(bn.gamma))

    @property
    def blocks(self):
        """The layers present, in order (MixedLayer or plain op)."""
        return [getattr(self, layer_name(i)) for i in self._block_indices]

    @property
    def arch_variables(self):
        """The architecture parameters' variables."""
        return list(self.arch_params.trainable_weights)

    @property
    def weight_variables(self):
        """Trainable network weights (everything but `arch_variables`)."""
        arch = {id(v) for v in self.arch_variables}
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
        seed = tf.stack([tf.constant(self.config.seed, tf.int64),
                         2 * step + offset])
        context = tf.distribute.get_replica_context()
        if self.config.per_replica_paths and context is not None and \
                context.num_replicas_in_sync > 1:
            seed = tf.random.experimental.stateless_fold_in(
                seed, context.replica_id_in_sync_group)
        return seed

    def sample_weights(self, seed, return_scores=False):
        """Op weights (rows, cols) drawn with a shape-[2] stateless seed
        (and the draw's scores)."""
        weights, scores = self.arch_params.sample(
            tf.convert_to_tensor(self.tau), self.config.sampler, seed)
        return (weights, scores) if return_scores else weights

    def draw_in_budget(self, seed):
        """(weights, scores, first weights, first within tolerance): up to
        `config.budget_draws` architectures drawn with seeds folded from
        `seed` (the first with `seed` itself), keeping the first one within
        tolerance of the budget, or the first draw when none is (or without
        a budget). The first draw is also returned, unconditioned: the
        resource loss and the `draw_within_tolerance` metric use it.

        The other K - 1 candidates are drawn in one vectorized batch
        without gradient (`tf.vectorized_map`, so K costs one small op per
        draw kind whatever its size), and the chosen one is drawn again
        from its seed with its gradient: the same architecture, since a
        draw is a function of its seed."""
        first, first_scores = self.sample_weights(seed, return_scores=True)
        if self.budget is None:
            return first, first_scores, first, None
        first_ok = self._within(first)
        draws = self.config.budget_draws
        if draws == 1:
            return first, first_scores, first, first_ok
        offsets = tf.range(1001, 1000 + draws, dtype=tf.int32)
        candidates = tf.vectorized_map(
            lambda k: tf.stop_gradient(
                self.sample_weights(tf.random.fold_in(seed, k))), offsets)
        oks = tf.concat([first_ok[None], self._within(candidates)], axis=0)
        chosen = tf.argmax(oks, output_type=tf.int32)  # the first 1
        chosen_seed = tf.where(
            chosen > 0,
            tf.cast(tf.random.fold_in(seed, 1000 + chosen), tf.int64),
            tf.cast(seed, tf.int64))
        weights, scores = self.sample_weights(chosen_seed, return_scores=True)
        return weights, scores, first, first_ok

    def argmax_weights(self):
        """One-hot op weights of the derived (most probable) architecture."""
        return self.arch_params.argmax_weights()

    def probabilities(self):
        """The op distribution (rows, cols) as a tensor (differentiable)."""
        return self.arch_params.probabilities()

    def call(self, inputs, training=None, arch_weights=None, scores=None):
        """Logits for `inputs` under op weights `arch_weights` (rows, cols);
        the derived architecture (`argmax_weights`) when None. `scores`
        turns on the two-path estimator at layers without a shortcut."""
        if arch_weights is None:
            arch_weights = self.argmax_weights()
        x = self.stem(inputs, training=training)
        for block, row in zip(self.blocks, self._block_rows):
            if row is None:
                x = block(x, training=training)
            else:
                x = block(x, arch_weights[row],
                          None if scores is None else scores[row],
                          training=training)
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
            weight_optimizer = FusedMomentumSGD(
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

    def weight_step(self, x, y, scale):
        """One SGD step of the network weights on a sampled architecture;
        returns (sampled weights, logits, labels, loss)."""
        weight_vars = self.weight_variables
        arch, _, _, first_ok = self.draw_in_budget(self._seed(0))
        arch = tf.stop_gradient(arch)
        with tf.GradientTape() as tape:
            logits = self(x, training=True, arch_weights=arch)
            y = self._labels(y, logits)
            loss = self._cross_entropy(y, logits)
            scaled = loss * scale
        grads = tape.gradient(scaled, weight_vars)
        if self.config.weight_decay:
            wd = self.config.weight_decay * scale
            grads = [wd * v if g is None else g + wd * tf.cast(v, g.dtype)
                     for g, v in zip(grads, weight_vars)]
        self.optimizer.apply(grads, weight_vars)
        return arch, logits, y, loss, first_ok

    def arch_step(self, x, y, scale):
        """One Adam step of the architecture parameters; returns (sampled
        weights, logits, labels, cross-entropy, resource loss or None,
        per-row norms of the cross-entropy and of the resource gradient,
        the same two norms of pi's gradient, whether the first draw is
        within tolerance)."""
        arch_vars = self.arch_variables
        seed = self._seed(1)
        has_resource = self.budget is not None and self.budget.free is None
        persistent = has_resource and not SuperNet.tape_per_loss
        with tf.GradientTape(persistent=persistent) as tape:
            arch, scores, first, first_ok = self.draw_in_budget(seed)
            logits = self(x, training=True, arch_weights=arch,
                          scores=scores)
            y = self._labels(y, logits)
            ce = self._cross_entropy(y, logits)
            scaled_ce = ce * scale
            resource = scaled_resource = None
            if persistent:
                resource = self._resource_loss(first)
                scaled_resource = self.config.alpha * resource * scale
        # Two gradients, each reduced to per-layer norms (which layers
        # learn from accuracy, which from the budget). With `tape_per_loss`
        # the resource loss (cheap: no network) is computed again on a
        # tape of its own from the same first draw (same seed, same ops):
        # a persistent tape makes every `tf.switch_case` of the network
        # trace a forward and backward function of its own (TensorFlow's
        # higher-order tape wrapper), a large part of the first step.
        grads = self._dense(tape.gradient(scaled_ce, arch_vars), arch_vars)
        if has_resource and not persistent:
            with tf.GradientTape() as tape:
                first = self.sample_weights(seed)
                resource = self._resource_loss(first)
                scaled_resource = self.config.alpha * resource * scale
        norms = self.arch_params.row_norms(grads)
        pi_norms = [self.arch_params.pi_norm(grads)]
        resource_norms = tf.zeros_like(norms)
        if resource is not None and self.config.alpha:
            extra = self._dense(tape.gradient(scaled_resource, arch_vars),
                                arch_vars)
            resource_norms = self.arch_params.row_norms(extra)
            pi_norms.append(self.arch_params.pi_norm(extra))
            grads = [g + e for g, e in zip(grads, extra)]
        else:
            pi_norms.append(tf.zeros_like(pi_norms[0]))
        del tape
        self.arch_optimizer.apply(grads, arch_vars)
        return (arch, logits, y, ce, resource, norms, resource_norms,
                tf.stack(pi_norms), first_ok)

    def _resource_loss(self, first):
        """Eq. 6 on the step's first draw (`draw`, the paper), or on each
        proposal's expected totals weighted by pi (`expected`); misses
        within `resource_slack` x the tolerance are free."""
        free = self.config.resource_slack * self.budget.tolerance
        table, targets = self.budget.table, self.budget.targets
        if self.config.resource_estimate == 'draw':
            return budget_lib.resource_loss(table, targets, first, free)
        per, pi = self.arch_params.proposal_distributions()
        return budget_lib.expected_resource_loss(table, targets, per, pi,
                                                 free)

    @staticmethod
    def _dense(grads, variables):
        return [tf.zeros_like(v) if g is None else g
                for g, v in zip(grads, variables)]

    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        (x_w, y_w), (x_a, y_a) = data
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        scale = 1.0 / replicas

        # 1. Network weights on the 80% split.
        drawn_w, logits, y_w, loss, first_w = self.weight_step(
            x_w, y_w, scale)
        # 2. Architecture parameters on the 20% split.
        (drawn_a, arch_logits, y_a, arch_loss, resource, norms,
         resource_norms, pi_norms, first_a) = self.arch_step(x_a, y_a,
                                                             scale)
        # 3. Temperature (the step counter after the metrics, which may
        # read the step's budget).
        self.tau.assign(self.tau * self.config.tau_decay)

        # Metrics.
        self._metric('loss').update_state(loss,
                                           sample_weight=tf.shape(y_w)[0])
        self._metric('accuracy').update_state(y_w, logits)
        self._metric('arch_loss').update_state(
            arch_loss, sample_weight=tf.shape(y_a)[0])
        self._metric('arch_accuracy').update_state(y_a, arch_logits)
        self._metric('tau').update_state(self.tau)
        self._metric('arch_grad_norm').update_state(norms / scale)
        self._metric('resource_grad_norm').update_state(
            resource_norms / scale)
        if self.has_proposals:
            self._metric('pi_grad_norm').update_state(pi_norms / scale)
        if self.budget is not None:
            within = self._metric('within_tolerance')
            for drawn in (drawn_w, drawn_a):
                within.update_state(self._within(drawn))
            for ok in (first_w, first_a):
                self._metric('draw_within_tolerance').update_state(ok)
            if resource is not None:  # even if alpha is 0
                self._metric('resource_loss').update_state(resource)
                expected = budget_lib.expected_totals(
                    self.budget.table, self.probabilities())
                for obj, value in expected.items():
                    self._metric(obj).update_state(value)
        self.step.assign_add(tf.constant(1, tf.int64))
        return self._results()

    def _results(self):
        out = {}
        for m in self.metrics:
            result = m.result()
            if isinstance(result, dict):
                out.update(result)
            else:
                out[m.name] = result
        return out

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

    @property
    def has_proposals(self):
        return self.arch_params.has_proposals

    def op_probabilities(self):
        """np (rows, cols): the op distribution, 0 where masked (with
        proposals: the pi-weighted mixture of the proposals)."""
        return self.arch_params.op_probabilities()

    def proposal_probabilities(self):
        """np (m,): softmax(pi) ([1.0] for plain logits)."""
        return self.arch_params.proposal_probabilities()

    def proposal_op_probabilities(self):
        """np (m, rows, cols): softmax of each proposal."""
        return self.arch_params.proposal_op_probabilities()

    def _ops_of(self, columns):
        return {i: self.space.op_names[c]
                for i, c in zip(self.searched, columns)}

    def derive(self):
        """{layer index: op}: the most probable op of every searched layer
        (with proposals: in the most probable proposal)."""
        return self._ops_of(self.arch_params.derive())

    def derive_proposals(self):
        """One `derive`-style dict per proposal ([derive()] without)."""
        return [self._ops_of(c) for c in self.arch_params.derive_all()]

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


def build_supernet(space, searched, fixed_ops=None, config=None,
                   budget=None, proposals=None, supernet_class=None,
                   **kwargs):
    """Builds (and creates the variables of) a `SuperNet`.

    Args:
        space: a `spaces.SearchSpace`.
        searched: 0-based layer indices that get a `MixedLayer`, in row
            order of the architecture parameters.
        fixed_ops: {layer index: op name} of layers built as plain ops.
            Every layer in neither is removed (only where `has_shortcut`).
        config: a `SupernetConfig` (default: the paper's settings).
        budget: a `budget.Budget` whose table rows are `searched`: adds
            alpha * resource loss to the architecture step (unless the
            budget has `free` layers) and the resource metrics.
        proposals: (m, rows, cols) proposal logits (proposal mode).
        supernet_class: a `SuperNet` subclass to build (default SuperNet),
            given `kwargs` too (`budget_supernet.py`).

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
    if budget is not None:
        if not isinstance(budget, budget_lib.Budget):
            raise UserError('budget must be a budget.Budget')
        table = budget.table
        if tuple(table.layer_indices) != searched or \
                tuple(table.op_names) != space.op_names:
            raise UserError(
                f'resource table rows {list(table.layer_indices)} do not '
                f'match the searched layers {list(searched)}')
    net = (supernet_class or SuperNet)(
        space, searched, fixed_ops, config, budget=budget,
        proposals=proposals, **kwargs)
    net.build((None, space.image_size, space.image_size, 3))
    return net
