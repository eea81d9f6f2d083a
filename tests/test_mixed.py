import keras
import numpy as np
import pytest
import tensorflow as tf

import hournas_tf  # noqa: F401  (sets KERAS_BACKEND)
from hournas_tf import spaces
from hournas_tf.blocks import layers as hl
from hournas_tf.nas import mixed
from hournas_tf.nas import sampling
from hournas_tf.nas.mixed import MixedLayer

# Four columns; column 1 is not a candidate of the layer.
COLUMNS = (0, 2, 3)
MASK = np.array([True, False, True, True])


class CountingBranch(keras.layers.Layer):
    """x * scale, counting its executions in a non-trainable variable."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.scale = self.add_weight(
            shape=(), name='scale',
            initializer=keras.initializers.Constant(self.factor))
        self.count = self.add_weight(shape=(), name='count', dtype='int32',
                                     initializer='zeros', trainable=False)

    def call(self, inputs):
        self.count.assign_add(1)
        return inputs * self.scale


def counting_layer(single_path):
    branches = [CountingBranch(f, name=f'b{k}')
                for k, f in enumerate((1.0, 2.0, 3.0))]
    layer = MixedLayer(branches, COLUMNS, single_path, name='mixed')
    layer.build((2, 3))
    return layer


def run_draws(layer, sampler, draws, logits=(0.0, 0.0, 0.0, 0.0)):
    """Calls `layer` `draws` times in one tf.function; returns the chosen
    branch per draw and the outputs."""
    logits = tf.constant(logits)
    x = tf.ones((2, 3))

    @tf.function
    def step(i):
        seed = tf.stack([tf.constant(7, tf.int64), i])
        w = sampling.sample(logits, 5.0, sampler, seed, MASK)
        return layer(x, w), w

    chosen, outputs = [], []
    for i in range(draws):
        y, w = step(tf.constant(i, tf.int64))
        chosen.append(COLUMNS.index(int(np.argmax(w.numpy()))))
        outputs.append((y.numpy(), w.numpy()))
    return chosen, outputs


def counts(layer):
    return [int(b.count.numpy()) for b in layer.branches]


def test_gumbel_max_runs_only_the_sampled_branch():
    layer = counting_layer(single_path=True)
    chosen, outputs = run_draws(layer, 'gumbel_max', 24)
    expected = [chosen.count(k) for k in range(3)]
    assert counts(layer) == expected
    assert sum(counts(layer)) == 24
    assert min(expected) > 0  # every branch got drawn, none ran extra
    for k, (y, w) in zip(chosen, outputs):
        # Forward value: exactly the chosen branch, weight 1.
        np.testing.assert_array_equal(y, np.full((2, 3), k + 1.0))
        assert w[1] == 0.0


def test_gumbel_max_never_runs_a_branch_that_is_not_drawn():
    layer = counting_layer(single_path=True)
    # Column 3 (branch 2) is 30 nats below the others: never drawn.
    chosen, _ = run_draws(layer, 'gumbel_max', 12, (0.0, 0.0, 0.0, -30.0))
    assert 2 not in chosen
    assert counts(layer)[2] == 0
    assert counts(layer)[:2] == [chosen.count(0), chosen.count(1)]


@pytest.mark.parametrize('sampler', ['gumbel_softmax', 'softmax'])
def test_all_path_samplers_run_every_branch(sampler):
    layer = counting_layer(single_path=False)
    _, outputs = run_draws(layer, sampler, 5)
    assert counts(layer) == [5, 5, 5]
    for y, w in outputs:
        expected = w[0] * 1.0 + w[2] * 2.0 + w[3] * 3.0
        np.testing.assert_allclose(y, np.full((2, 3), expected), rtol=1e-6)


def test_straight_through_gradient_reaches_logits_and_chosen_branch():
    layer = counting_layer(single_path=True)
    logits = tf.Variable(tf.zeros(4))
    x = tf.ones((2, 3))
    scales = [b.scale for b in layer.branches]

    @tf.function
    def grads(i):
        with tf.GradientTape() as tape:
            seed = tf.stack([tf.constant(3, tf.int64), i])
            w = sampling.sample(logits, 5.0, 'gumbel_max', seed, MASK)
            loss = tf.reduce_sum(layer(x, w))
        g = tape.gradient(loss, [logits] + scales)
        g = [tf.zeros_like(v) if d is None else d
             for d, v in zip(g, [logits] + scales)]
        return w, g

    for i in range(4):
        w, g = grads(tf.constant(i, tf.int64))
        k = COLUMNS.index(int(np.argmax(w.numpy())))
        g_logits = g[0].numpy()
        assert np.all(np.isfinite(g_logits))
        assert np.abs(g_logits[list(COLUMNS)]).min() > 1e-3
        assert g_logits[1] == 0.0  # masked column
        for j, d in enumerate(g[1:]):
            if j == k:
                assert float(d) == pytest.approx(6.0)  # d sum(x*s)/ds
            else:
                assert float(d) == 0.0


def test_real_ops_single_path_gradients():
    space = spaces.get_space('fbnet', image_size=32, num_classes=10,
                             width_multiplier=0.25)
    index = 2
    ops = space.layers[index].candidates
    layer = MixedLayer([hl.make_op(space, index, op, name=op) for op in ops],
                       [space.op_names.index(op) for op in ops], True,
                       name='layer03')
    c = space.layers[index].c_in
    layer.build((2, 8, 8, c))
    x = tf.random.stateless_normal((2, 8, 8, c), seed=(1, 2))
    target = tf.random.stateless_normal((2, 8, 8, c), seed=(3, 4))
    logits = tf.Variable(tf.zeros(len(space.op_names)))
    column = space.op_names.index('k5_e3')

    @tf.function
    def grads():
        with tf.GradientTape() as tape:
            w = tf.one_hot(column, len(space.op_names))
            # Straight-through: forward value one-hot, softmax gradient.
            soft = tf.nn.softmax(logits)
            w = w + soft - tf.stop_gradient(soft)
            loss = tf.reduce_mean((layer(x, w, training=True) - target) ** 2)
        return tape.gradient(loss, [logits] + layer.trainable_weights)

    g = grads()
    assert np.all(np.isfinite(g[0].numpy()))
    assert np.abs(g[0].numpy()).max() > 1e-4
    chosen = ops.index('k5_e3')
    for branch_index, branch in enumerate(layer.branches):
        for var in branch.trainable_weights:
            d = g[1 + [id(v) for v in layer.trainable_weights].index(
                id(var))]
            total = 0.0 if d is None else float(tf.reduce_sum(tf.abs(d)))
            if branch_index == chosen:
                assert total > 0.0, var.path
            else:
                assert total == 0.0, var.path


def test_get_config_round_trip():
    space = spaces.get_space('mnasnet', image_size=32, num_classes=10,
                             width_multiplier=0.25)
    index = 3
    ops = space.layers[index].candidates
    layer = MixedLayer([hl.make_op(space, index, op, name=op) for op in ops],
                       [space.op_names.index(op) for op in ops], False,
                       name='layer04')
    config = layer.get_config()
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert type(restored) is MixedLayer
    assert restored.get_config() == config
    assert restored.columns == layer.columns
    assert not restored.single_path
    assert [type(b) for b in restored.branches] == \
        [type(b) for b in layer.branches]
    c = space.layers[index].c_in
    w = tf.one_hot(space.op_names.index(ops[1]), len(space.op_names))
    y = restored(tf.zeros((1, 4, 4, c)), w)
    assert tuple(y.shape) == tuple(
        restored.compute_output_shape((1, 4, 4, c)))


def test_rejects_mismatched_columns():
    with pytest.raises(ValueError, match='one column per branch, got 1 '
                       'branches and 2 columns'):
        MixedLayer([hl.Skip()], [0, 1])


class LinearBranch(CountingBranch):
    """x @ M_k * scale with a fixed random M_k: outputs of different
    branches point in different directions."""

    def build(self, input_shape):
        super().build(input_shape)
        rng = np.random.default_rng(int(self.factor * 10))
        self.matrix = tf.constant(rng.normal(size=(3, 3)), tf.float32)

    def call(self, inputs):
        return super().call(tf.matmul(inputs, self.matrix))


def residual_layer(cls=CountingBranch):
    """A residual MixedLayer over F_k(x) = x * scale_k and `skip` (F = 0)."""
    branches = [cls(1.0, name='b0'), cls(2.0, name='b1'),
                hl.Skip(name='skip')]
    layer = MixedLayer(branches, COLUMNS, True, residual=True, name='res')
    layer.build((2, 3))
    return layer


def test_residual_layer_weights_the_branch_not_the_sum():
    layer = residual_layer()
    x = tf.fill((2, 3), 2.0)
    for column, expected in ((0, 2.0 + 2.0), (2, 2.0 + 4.0), (3, 2.0)):
        w = tf.one_hot(column, 4)
        np.testing.assert_allclose(layer(x, w).numpy(),
                                   np.full((2, 3), expected))
    # Soft weights: x + sum_k w_k F_k(x), skip contributing nothing.
    soft = tf.constant([0.5, 0.0, 0.25, 0.25])
    single = MixedLayer(layer.branches, COLUMNS, False, residual=True)
    np.testing.assert_allclose(single(x, soft).numpy(),
                               np.full((2, 3), 2.0 + 0.5 * 2.0 + 0.25 * 4.0))


def test_residual_gradient_reaches_the_logits_through_the_branch():
    layer = residual_layer(LinearBranch)
    logits = tf.Variable([0.0, 0.0, 0.3, -0.2])
    x = tf.random.stateless_normal((2, 3), seed=(1, 1))
    with tf.GradientTape() as tape:
        soft = tf.nn.softmax(logits)
        w = tf.one_hot(2, 4) + soft - tf.stop_gradient(soft)
        y = layer(x, w)
        # A scale-invariant loss: normalized output, as batch norm would.
        loss = tf.reduce_sum(tf.nn.l2_normalize(y) * tf.constant(
            [[1.0, -2.0, 0.5], [0.3, 0.1, -1.0]]))
    g = tape.gradient(loss, logits).numpy()
    # Without the shortcut the chosen op's scale would cancel; with x
    # added after the weight it does not.
    assert np.abs(g[[0, 2, 3]]).min() > 1e-3


def test_residual_layer_rejects_branches_adding_their_own_shortcut():
    space = spaces.get_space('fbnet', image_size=32, num_classes=10,
                             width_multiplier=0.25)
    op = hl.make_op(space, 2, 'k3_e3')  # add_shortcut=True
    with pytest.raises(ValueError, match='add_shortcut'):
        MixedLayer([op], [0], True, residual=True)


def scale_invariant_setup(scores):
    """Gradient of a batch-norm-like (scale-invariant) loss w.r.t. the
    logits of a non-residual layer drawn with Gumbel-Max."""
    branches = [LinearBranch(f, name=f'b{k}')
                for k, f in enumerate((1.0, 2.0, 3.0))]
    layer = MixedLayer(branches, COLUMNS, True, name='mixed')
    layer.build((2, 3))
    logits = tf.Variable([0.2, 0.0, -0.1, 0.4])
    x = tf.random.stateless_normal((2, 3), seed=(5, 5))
    probe = tf.constant([[1.0, -2.0, 0.5], [0.3, 0.1, -1.0]])
    seed = tf.constant([11, 3], tf.int64)
    with tf.GradientTape() as tape:
        w, s = sampling.sample(logits, 1.0, 'gumbel_max', seed, MASK,
                               return_scores=True)
        y = layer(x, w, s if scores else None)
        loss = tf.reduce_sum(tf.nn.l2_normalize(y) * probe)
    return layer, w, y, tape.gradient(loss, logits).numpy()


def test_two_path_estimator_gives_a_gradient_batch_norm_does_not_cancel():
    _, _, _, plain = scale_invariant_setup(scores=False)
    layer, w, y, two = scale_invariant_setup(scores=True)
    # Single path: the loss ignores the scale of the chosen op's output.
    assert np.abs(plain).max() < 1e-6
    # Two paths: the runner-up's direction is not scale-invariant.
    assert np.abs(two[list(COLUMNS)]).min() > 1e-3
    assert two[1] == 0.0
    # Both ran, the forward value is the chosen op's alone.
    assert sum(counts(layer)) == 2
    chosen = layer.branches[COLUMNS.index(int(np.argmax(w.numpy())))]
    x = tf.random.stateless_normal((2, 3), seed=(5, 5))
    np.testing.assert_allclose(y.numpy(), (x @ chosen.matrix).numpy()
                               * chosen.factor, rtol=1e-5)


@pytest.mark.parametrize('residual', [True, False])
@pytest.mark.parametrize('name, index', [('fbnet', 2),
                                         ('efficientnet', 2)])
def test_branches_sharing_a_structure_give_the_switch_values(residual, name,
                                                             index):
    """Branches of one raw_structure run as one body on the chosen
    branch's weights: the same outputs and gradients as one switch branch
    per op, for every op, and the same moving statistics up to rounding.
    EfficientNet's ops carry squeeze-excite, which the body runs too."""
    space = spaces.get_space(name, image_size=32, num_classes=10,
                             width_multiplier=0.25)
    ops = space.layers[index].candidates
    columns = [space.op_names.index(op) for op in ops]
    c = space.layers[index].c_in
    rng = np.random.default_rng(0)
    pair = []
    for _ in range(2):
        layer = MixedLayer([hl.make_op(space, index, op, name=op,
                                       add_shortcut=not residual)
                            for op in ops], columns, True,
                           residual=residual, name='layer03')
        layer.build((4, 8, 8, c))
        pair.append(layer)
    values = [rng.normal(size=w.shape).astype('float32')
              for w in pair[0].get_weights()]
    x = tf.constant(rng.normal(size=(4, 8, 8, c)).astype('float32'))
    target = tf.constant(rng.normal(size=(4, 8, 8, c)).astype('float32'))

    def step(layer, w):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum((layer(x, w, training=True) - target) ** 2)
        return loss, tape.gradient(loss, [x] + layer.trainable_weights)

    assert len(pair[0]._parts(x, True)) < len(ops)
    results = []
    for share, layer in zip((True, False), pair):
        layer.set_weights(values)
        MixedLayer.share_structure = share
        try:
            fn = tf.function(step)
            results.append([
                (fn(layer, tf.one_hot(col, len(space.op_names))),
                 [v.numpy() for v in layer.non_trainable_weights])
                for col in columns])
        finally:
            MixedLayer.share_structure = True
    # Up to rounding: the switches are not lowered (mixed.py), and a
    # branch's own body in an unlowered switch rounds differently from the
    # same body in a lowered one (the shared body does not change:
    # MixedLayer.lower_switches in test_supernet.py). Measured on fbnet's
    # layer 2: 1 ulp of the loss, gradients within 5.5e-5 and moving
    # statistics within 2.2e-6 of their largest value (sums of 256 products
    # that cancel); bit for bit when lowered.
    # A wrong branch or weight is off by far more.
    for (out_s, stats_s), (out_p, stats_p) in zip(*results):
        np.testing.assert_allclose(out_s[0], out_p[0], rtol=1e-6)
        for a, b in zip(out_s[1], out_p[1]):
            np.testing.assert_allclose(a, b, rtol=0,
                                       atol=1e-4 * np.abs(b).max())
        for a, b in zip(stats_s, stats_p):  # 2.2e-6 measured
            np.testing.assert_allclose(a, b, rtol=0,
                                       atol=2e-5 * np.abs(b).max())


@pytest.mark.parametrize('lower', [False, True])
def test_switch_case_is_lowered_only_when_asked(lower):
    """mixed.switch_case: the value of tf.switch_case, eager and traced;
    its Case op is marked not to be lowered to switch/merge nodes unless
    `MixedLayer.lower_switches`."""
    fns = [lambda: tf.constant(1.0), lambda: tf.constant(2.0),
           lambda: tf.constant(3.0)]
    previous = MixedLayer.lower_switches
    MixedLayer.lower_switches = lower
    try:
        fn = tf.function(lambda i: mixed.switch_case(i, fns))
        graph = fn.get_concrete_function(
            tf.TensorSpec([], tf.int32)).graph
        values = [float(fn(tf.constant(i))) for i in (0, 1, 2, 7)]
        eager = float(mixed.switch_case(tf.constant(1), fns))
    finally:
        MixedLayer.lower_switches = previous
    assert values == [1.0, 2.0, 3.0, 3.0]  # out of range: the last
    assert eager == 2.0
    cases = [op for op in graph.get_operations()
             if op.type in ('Case', 'StatelessCase')]
    assert len(cases) == 1
    assert cases[0].get_attr('_lower_using_switch_merge') is lower
