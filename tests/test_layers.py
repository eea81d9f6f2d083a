import keras
import numpy as np
import pytest
from conftest import run_python
from testing import run_layer_test

import hournas_tf
from hournas_tf import spaces
from hournas_tf.blocks import layers as hl
from hournas_tf.common.errors import UserError

# (class, constructor arguments, weight variables, trainable variables)
# for an (2, 8, 8, 8) input. BN layers hold 4 variables, 2 trainable.
LAYERS = [
    (hl.ChannelShuffle, dict(groups=2), 0, 0),
    (hl.SqueezeExcite, dict(filters=8, reduced=2, activation='swish'), 4, 4),
    (hl.ConvBNAct, dict(filters=8, kernel_size=3, strides=2,
                        activation='relu6'), 5, 3),
    (hl.InvertedResidual, dict(c_in=8, c_out=8, kernel_size=3, expansion=1,
                               groups=2, always_pw=True), 15, 9),
    (hl.InvertedResidual, dict(c_in=8, c_out=16, kernel_size=5, expansion=3,
                               strides=2, se_ratio=0.25, activation='swish'),
     19, 13),
    (hl.InvertedResidual, dict(c_in=8, c_out=8, kernel_size=3, expansion=6,
                               cascade=True, always_pw=True), 20, 12),
    (hl.InvertedResidual, dict(c_in=8, c_out=8, kernel_size=3, expansion=6,
                               drop_path_rate=0.2), 15, 9),
    (hl.Skip, dict(), 0, 0),
    (hl.FusedBatchNormalization, dict(momentum=0.9), 4, 2),
]


@pytest.mark.parametrize('cls, kwargs, num_weights, num_trainable', LAYERS)
def test_layer_harness(cls, kwargs, num_weights, num_trainable):
    run_layer_test(cls, dict(name='x', **kwargs), (2, 8, 8, 8),
                   expected_num_weights=num_weights,
                   expected_num_trainable=num_trainable)


def test_channel_shuffle_interleaves_groups():
    x = np.arange(6, dtype='float32').reshape(1, 1, 1, 6)
    y = np.asarray(hl.ChannelShuffle(2)(x)).ravel()
    assert y.tolist() == [0, 3, 1, 4, 2, 5]


def test_inverted_residual_structure():
    irf = hl.InvertedResidual(16, 16, 3, 1, always_pw=True)
    mb = hl.InvertedResidual(16, 16, 3, 1, always_pw=False)
    down = hl.InvertedResidual(16, 24, 3, 6, strides=2)
    assert irf.pw is not None and mb.pw is None
    assert irf.residual and not down.residual
    x = np.ones((1, 8, 8, 16), 'float32')
    assert down(x).shape == (1, 4, 4, 24)


def test_make_op_follows_the_space_style():
    space = spaces.get_space('efficientnet', image_size=32)
    op = hl.make_op(space, 3, 'k5_e6_se0.25')
    assert isinstance(op, hl.InvertedResidual)
    assert op.activation == 'swish' and op.se is not None
    assert isinstance(hl.make_op(space, 2, 'skip'), hl.Skip)


def test_model_saves_and_loads_with_identical_outputs(tmp_path):
    arch = hournas_tf.get_reference('fbnet_a', image_size=32, num_classes=5)
    model = hournas_tf.build_model(arch)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype('float32')
    path = str(tmp_path / 'm.keras')
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               loaded.predict(x, verbose=0), atol=1e-5)
    assert loaded.count_params() == model.count_params()


def test_load_model_needs_no_custom_objects(tmp_path):
    arch = hournas_tf.get_reference('fbnet_a', image_size=32, num_classes=5)
    model = hournas_tf.build_model(arch)
    model.compile('sgd', keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype('float32')
    path = tmp_path / 'm.keras'
    model.save(str(path))
    np.save(tmp_path / 'x.npy', x)
    # A fresh process, where nothing of ours registered the layers yet.
    script = ('import sys, numpy as np, hournas_tf; '
              'm = hournas_tf.load_model(sys.argv[1]); '
              'assert m.optimizer is not None; '
              'np.save(sys.argv[3], m.predict(np.load(sys.argv[2]), '
              'verbose=0))')
    res = run_python('-c', script, str(path), str(tmp_path / 'x.npy'),
                     str(tmp_path / 'y.npy'))
    assert res.returncode == 0, res.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / 'y.npy'),
                               model.predict(x, verbose=0), atol=1e-5)
    assert not hournas_tf.load_model(str(path), compile=False).compiled
    (tmp_path / 'not.keras').write_text('text')
    (tmp_path / 'm.h5').write_bytes(path.read_bytes())
    for name, message in (('missing.keras', 'does not exist'),
                          ('not.keras', 'is not a Keras 3 model file'),
                          ('m.h5', 'is not a Keras 3 model file'),
                          ('', 'is not a file')):
        with pytest.raises(UserError, match=message):
            hournas_tf.load_model(str(tmp_path / name))


def test_preprocessing_inside_the_model_matches_the_pipeline(tmp_path):
    from hournas_tf.blocks import model as model_lib
    from hournas_tf.data import preprocessing

    arch = hournas_tf.get_reference('fbnet_a', image_size=32, num_classes=5)
    keras.utils.set_random_seed(0)
    plain = hournas_tf.build_model(arch)
    raw_model = hournas_tf.build_model(arch, include_preprocessing=True)
    assert not model_lib.takes_raw_images(plain)
    assert model_lib.takes_raw_images(raw_model)
    assert raw_model.layers[1].name == 'preprocessing'
    # No weights of its own: the plain model's weights load into it.
    path = str(tmp_path / 'plain.weights.h5')
    plain.save_weights(path)
    raw_model.load_weights(path)
    raw = np.random.default_rng(4).uniform(
        0, 255, size=(4, 32, 32, 3)).astype('float32')
    expected = plain.predict(preprocessing.normalize(raw).numpy(), verbose=0)
    np.testing.assert_allclose(raw_model.predict(raw, verbose=0), expected,
                               atol=1e-5)
    raw_model.save(str(tmp_path / 'raw.keras'))
    loaded = hournas_tf.load_model(str(tmp_path / 'raw.keras'))
    assert model_lib.takes_raw_images(loaded)
    np.testing.assert_allclose(loaded.predict(raw, verbose=0), expected,
                               atol=1e-5)


def test_build_model_accepts_a_string_and_trains_a_step():
    arch = hournas_tf.get_reference('mnasnet_a1', image_size=32,
                                    num_classes=3, width_multiplier=0.25)
    model = hournas_tf.build_model(arch.to_string())
    model.compile('sgd', keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    x = np.random.default_rng(2).normal(size=(4, 32, 32, 3)).astype('float32')
    hist = model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    assert np.isfinite(hist.history['loss'][0])
    assert model.output_shape == (None, 3)


def test_grouped_conv_equals_keras_grouped_conv():
    x = np.random.default_rng(3).normal(size=(2, 5, 5, 8)).astype('float32')
    ours = hl.GroupedConv2D(12, 1, groups=2, use_bias=False)
    ref = keras.layers.Conv2D(12, 1, groups=2, use_bias=False)
    ours.build(x.shape)
    ref.build(x.shape)
    ref.set_weights(ours.get_weights())
    assert ours.kernel.shape == (1, 1, 4, 12)
    np.testing.assert_allclose(ours(x), ref(x), atol=1e-5)


def test_drop_path_drops_whole_branches_in_training_only():
    layer = hl.InvertedResidual(8, 8, 3, 6, drop_path_rate=0.5)
    twin = hl.InvertedResidual(8, 8, 3, 6)
    x = np.random.default_rng(0).normal(size=(256, 4, 4, 8)).astype(
        'float32')
    layer.build(x.shape)
    twin.build(x.shape)
    twin.set_weights(layer.get_weights())
    branch = np.asarray(twin(x, training=True)) - x
    y = np.asarray(layer(x, training=True))
    kept = np.isclose(y, x + 2 * branch, atol=1e-4).reshape(256, -1).all(1)
    dropped = np.isclose(y, x, atol=1e-6).reshape(256, -1).all(1)
    assert np.all(kept ^ dropped)
    assert 0.35 < dropped.mean() < 0.65
    assert np.allclose(layer(x, training=False), twin(x, training=False))


def test_build_model_rates_and_weights_do_not_depend_on_them(tmp_path):
    arch = hournas_tf.get_reference('efficientnet_b0', image_size=32,
                                    num_classes=10, width_multiplier=0.25)
    plain = hournas_tf.build_model(arch)
    regularized = hournas_tf.build_model(arch, dropout=0.4,
                                         drop_path_rate=0.3)
    rates = [layer.drop_path_rate for layer in regularized.layers
             if isinstance(layer, hl.InvertedResidual)]
    assert rates == pytest.approx([0.3 * i / 16 for i in range(16)])
    assert regularized.get_layer('dropout').rate == 0.4
    assert plain.get_layer('dropout').rate == 0.2  # the space's
    path = str(tmp_path / 'plain.weights.h5')
    plain.save_weights(path)
    regularized.load_weights(path)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3))
    assert np.allclose(plain.predict(x, verbose=0),
                       regularized.predict(x, verbose=0), atol=1e-6)


def bn_pair(momentum=0.9, epsilon=1e-3, channels=6, seed=0):
    """A Keras batch norm and a fused one with the same random weights."""
    rng = np.random.default_rng(seed)
    pair = (keras.layers.BatchNormalization(momentum=momentum,
                                            epsilon=epsilon),
            hl.FusedBatchNormalization(momentum=momentum, epsilon=epsilon))
    shape = (8, 5, 5, channels)
    for layer in pair:
        layer.build(shape)
    for name in ('gamma', 'beta'):
        value = rng.normal(size=channels).astype('float32')
        for layer in pair:
            getattr(layer, name).assign(value)
    x = (rng.normal(size=shape) * 3 + 1).astype('float32')
    return pair, x


def train_call(layer, x):
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        # Weights that vary over the batch: a per-channel constant would
        # make the gamma and x gradients zero up to rounding.
        weights = tf.reshape(tf.range(tf.size(y), dtype=y.dtype) % 7.0,
                             y.shape)
        loss = tf.reduce_sum(y * weights)
    return y, tape.gradient(loss, [x, layer.gamma, layer.beta])


@pytest.mark.parametrize('epsilon', [1e-3, 1e-5])
def test_fused_batch_norm_trains_like_keras_batch_norm(epsilon):
    import tensorflow as tf

    (keras_bn, fused), x = bn_pair(epsilon=epsilon)
    for _ in range(2):  # two steps: the moving statistics compound
        y_k, g_k = tf.function(train_call)(keras_bn, x)
        y_f, g_f = tf.function(train_call)(fused, x)
        np.testing.assert_allclose(y_f, y_k, atol=2e-6)
        for a, b in zip(g_f, g_k):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
    # Biased batch variance in the moving average, as Keras.
    np.testing.assert_allclose(fused.moving_mean, keras_bn.moving_mean,
                               atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance,
                               keras_bn.moving_variance, rtol=1e-6)
    np.testing.assert_allclose(fused(x, training=False),
                               keras_bn(x, training=False), atol=2e-6)


def test_fused_batch_norm_in_float64_is_keras_batch_norm():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    shape = (8, 5, 5, 6)
    pair = (keras.layers.BatchNormalization(momentum=0.9, dtype='float64'),
            hl.FusedBatchNormalization(momentum=0.9, dtype='float64'))
    for layer in pair:
        layer.build(shape)
    x = rng.normal(size=shape) * 3 + 1
    (y_k, g_k), (y_f, g_f) = [tf.function(train_call)(layer, x)
                              for layer in pair]
    assert y_f.dtype == tf.float64
    # The fused kernel computes in float32 (3e-6 off); float64 agrees to
    # rounding.
    np.testing.assert_allclose(y_f, y_k, atol=1e-12)
    for a, b in zip(g_f, g_k):
        np.testing.assert_allclose(a, b, atol=1e-10)
    np.testing.assert_allclose(pair[1].moving_variance,
                               pair[0].moving_variance, rtol=1e-13)


def test_fused_batch_norm_is_one_kernel_in_training_only():
    import tensorflow as tf

    (keras_bn, fused), x = bn_pair()

    def op_types(layer, training):
        graph = tf.function(lambda v: layer(v, training=training)
                            ).get_concrete_function(
            tf.TensorSpec(x.shape)).graph
        return [op.type for op in graph.get_operations()]

    assert 'FusedBatchNormV3' in op_types(fused, True)
    assert 'FusedBatchNormV3' not in op_types(keras_bn, True)
    assert len(op_types(fused, True)) < len(op_types(keras_bn, True))
    # Inference (and export) runs Keras' own graph.
    assert op_types(fused, False) == op_types(keras_bn, False)
    hl.FusedBatchNormalization.enabled = False
    try:
        assert 'FusedBatchNormV3' not in op_types(fused, True)
    finally:
        hl.FusedBatchNormalization.enabled = True



def test_depthwise_stages_one_or_two_for_a_cascade():
    plain = hl.InvertedResidual(8, 8, 3, 6)
    cascade = hl.InvertedResidual(8, 8, 3, 6, cascade=True)
    assert [s[0] for s in plain.depthwise_stages()] == [plain.dw]
    assert [(s[0], s[1]) for s in cascade.depthwise_stages()] == [
        (cascade.dw, cascade.dw_bn), (cascade.dw2, cascade.dw2_bn)]


def test_nested_layers_are_the_layers_keras_tracks():
    """The public walk finds what Keras' private `_flatten_layers` does:
    in a built model (custom layers inside) and in a supernet."""
    from hournas_tf.blocks.nesting import nested_layers
    from hournas_tf.nas import supernet

    model = hournas_tf.build_model(spaces.get_reference(
        'efficientnet_b0', image_size=32, num_classes=10,
        width_multiplier=0.25), include_preprocessing=True)
    space = spaces.get_space('fbnet', image_size=32, num_classes=10,
                             width_multiplier=0.25)
    net = supernet.build_supernet(space, tuple(space.vital_layers))
    for m in (model, net):
        found = nested_layers(m)
        assert len({id(x) for x in found}) == len(found)  # each once
        assert {id(x) for x in found} == {
            id(x) for x in m._flatten_layers(include_self=False)}
    assert any(isinstance(x, keras.layers.BatchNormalization)
               for x in nested_layers(model.layers[-5]))
    assert nested_layers(keras.layers.Dense(2)) == []


@pytest.mark.parametrize('kwargs', [
    dict(c_in=8, c_out=8, kernel_size=3, expansion=1),
    dict(c_in=8, c_out=8, kernel_size=3, expansion=1, groups=2),
    dict(c_in=8, c_out=16, kernel_size=5, expansion=6, strides=2),
    dict(c_in=8, c_out=8, kernel_size=5, expansion=3, add_shortcut=False,
         bn_epsilon=1e-5, bn_momentum=0.9),
    dict(c_in=8, c_out=8, kernel_size=3, expansion=4, se_ratio=0.25,
         cascade=True, activation='swish', groups=2),
    dict(c_in=8, c_out=8, kernel_size=3, expansion=1, always_pw=True,
         activation='relu6'),
])
def test_raw_train_call_is_the_keras_training_call(kwargs):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    pair = [hl.InvertedResidual(**kwargs, name='b') for _ in range(2)]
    shape = (4, 8, 8, kwargs['c_in'])
    for layer in pair:
        layer.build(shape)
    for layer in pair[1:]:
        layer.set_weights([rng.normal(size=w.shape).astype('float32')
                           for w in pair[0].get_weights()])
        pair[0].set_weights(layer.get_weights())
    x = tf.constant(rng.normal(size=shape).astype('float32'))
    assert pair[1].raw_training(x)

    def step(layer, raw):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer.raw_train_call(x) if raw else layer(x, training=True)
            weights = tf.reshape(
                tf.range(tf.size(y), dtype=y.dtype) % 5.0, y.shape)
            loss = tf.reduce_sum(y * weights)
        return y, tape.gradient(loss, [x] + layer.trainable_weights)

    # Bit for bit as the search runs it (Grappler off, search_lib); with
    # Grappler on, oneDNN's fused kernels may round squeeze-excite's bias
    # gradient differently in one of the two graphs (1 ulp measured; equal
    # again with TF_ENABLE_ONEDNN_OPTS=0).
    for grappler in (False, True):
        tf.config.optimizer.set_experimental_options(
            {'disable_meta_optimizer': not grappler})
        try:
            y_k, g_k = tf.function(step)(pair[0], False)
            y_r, g_r = tf.function(step)(pair[1], True)
        finally:
            tf.config.optimizer.set_experimental_options(
                {'disable_meta_optimizer': False})
        np.testing.assert_array_equal(y_r, y_k)
        for a, b in zip(g_r, g_k):
            if grappler and kwargs.get('se_ratio'):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
            else:
                np.testing.assert_array_equal(a, b)
    for a, b in zip(pair[1].get_weights(), pair[0].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_raw_train_call_is_refused_where_it_would_differ():
    import tensorflow as tf

    x = tf.zeros((2, 8, 8, 8))
    assert not hl.InvertedResidual(8, 8, 3, 1, drop_path_rate=0.1,
                                   name='b').raw_training(x)
    assert not hl.InvertedResidual(8, 8, 3, 1, bn_synchronized=True,
                                   name='b').raw_training(x)
    hl.FusedBatchNormalization.enabled = False
    try:
        assert not hl.InvertedResidual(8, 8, 3, 1, name='b').raw_training(x)
    finally:
        hl.FusedBatchNormalization.enabled = True
