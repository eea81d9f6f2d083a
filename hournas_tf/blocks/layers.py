"""Candidate ops as Keras 3 layers.

Every layer here is registered for Keras saving (package `hournas_tf`) and
round-trips `get_config`. Sublayers are created in `__init__` with derived
names; the first call (or `build`) creates their weights.
"""

import keras
import tensorflow as tf
from keras import layers
from keras import ops

from hournas_tf.spaces.ops import parse_op
from hournas_tf.spaces.ops import se_channels

PACKAGE = 'hournas_tf'


def build_once(layer, input_shape):
    """Builds a sublayer unless it is built (a deserialized layer is)."""
    if not layer.built:
        layer.build(input_shape)


def activation_layer(name, activation):
    """ReLU, ReLU6 or swish as a Keras layer."""
    if activation == 'relu':
        return layers.ReLU(name=name)
    if activation == 'relu6':
        return layers.ReLU(max_value=6.0, name=name)
    if activation == 'swish':
        return layers.Activation('swish', name=name)
    raise ValueError(f'unknown activation {activation!r}')


def synchronized_moments(x, axes):
    """Mean and variance of `x` over `axes` and over every replica of the
    `tf.distribute` strategy, in two passes: the all-reduced sum gives the
    mean, then the all-reduced sum of squared deviations from it the
    variance. (Keras' synchronized batch norm takes E[x^2] - E[x]^2 from
    one all-reduce, which loses the variance's digits wherever a channel's
    mean is large against its spread; docs/distribute.md.) On one replica
    there is no all-reduce."""
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync == 1:
        context = None  # no all-reduce: allowed inside tf.switch_case
    count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), x.dtype)
    total = tf.reduce_sum(x, axis=axes, keepdims=True)
    if context is not None:
        total, count = context.all_reduce('SUM', [total, count])
    mean = total / count
    squares = tf.reduce_sum(tf.square(x - tf.stop_gradient(mean)),
                            axis=axes, keepdims=True)
    if context is not None:
        squares = context.all_reduce('SUM', squares)
    return tf.squeeze(mean, axes), tf.squeeze(squares / count, axes)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SyncBatchNormalization(layers.BatchNormalization):
    """Batch norm with statistics over all replicas (TensorFlow backend),
    numerically stable: two-pass moments (`synchronized_moments`), and in
    training it normalizes as (x - mean) * gamma / sqrt(var + eps) + beta,
    so the gradients of the statistics are sums over centered values
    (`tf.nn.batch_normalization` computes x * s + (beta - mean * s), whose
    gradient cancels where the mean is large against the spread). The
    weights and config are `BatchNormalization(synchronized=True)`'s;
    masks and renorm are not supported."""

    def __init__(self, **kwargs):
        kwargs['synchronized'] = True
        super().__init__(**kwargs)
        if self.renorm:
            raise ValueError('SyncBatchNormalization has no renorm')

    def call(self, inputs, training=None, mask=None):
        if mask is not None:
            raise ValueError('SyncBatchNormalization takes no mask')
        if not (training and self.trainable):
            return super().call(inputs, training=training)
        x = tf.cast(inputs, keras.backend.result_type(inputs.dtype,
                                                      'float32'))
        mean, variance = synchronized_moments(x, self._reduction_axes)
        m = self.momentum
        self.moving_mean.assign(
            tf.cast(self.moving_mean, x.dtype) * m + mean * (1.0 - m))
        self.moving_variance.assign(
            tf.cast(self.moving_variance, x.dtype) * m + variance * (1.0 - m))
        shape = [1] * len(x.shape)
        shape[self.axis] = x.shape[self.axis]
        scale = tf.math.rsqrt(variance + self.epsilon)
        if self.scale:
            scale = scale * tf.cast(self.gamma, x.dtype)
        y = (x - tf.reshape(mean, shape)) * tf.reshape(scale, shape)
        if self.center:
            y = y + tf.reshape(tf.cast(self.beta, x.dtype), shape)
        return tf.cast(y, self.compute_dtype)


@keras.saving.register_keras_serializable(package=PACKAGE)
class GroupedConv2D(layers.Conv2D):
    """Conv2D with `groups`, computed as one conv per group and a concat.

    Same kernel layout and result as `keras.layers.Conv2D(groups=g)`, but
    TensorFlow's grouped convolution is not implemented on CPU and Keras
    falls back to an XLA-compiled op per call site, which makes tracing a
    supernet with many grouped branches very slow. Per-group convs also
    convert to plain TFLite convs.
    """

    def convolution_op(self, inputs, kernel):
        if self.groups == 1:
            return super().convolution_op(inputs, kernel)
        xs = ops.split(inputs, self.groups, axis=-1)
        ks = ops.split(kernel, self.groups, axis=-1)
        return ops.concatenate(
            [super(GroupedConv2D, self).convolution_op(x, k)
             for x, k in zip(xs, ks)], axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelShuffle(layers.Layer):
    """ShuffleNet channel shuffle: interleaves the channels of `groups`."""

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups
        self.built = True  # no weights

    def call(self, inputs):
        if self.groups == 1:
            return inputs
        shape = ops.shape(inputs)
        c = inputs.shape[-1]
        if c is None:  # a body traced for kernels of any width
            c = shape[3]
        x = ops.reshape(inputs, (-1, shape[1], shape[2], self.groups,
                                 c // self.groups))
        x = ops.transpose(x, (0, 1, 2, 4, 3))
        return ops.reshape(x, (-1, shape[1], shape[2], c))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), 'groups': self.groups}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SqueezeExcite(layers.Layer):
    """Squeeze-excite: pooled 1x1 conv down to `reduced`, up, sigmoid gate."""

    def __init__(self, filters, reduced, activation='relu', **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.reduced = reduced
        self.activation = activation
        self.reduce = layers.Conv2D(reduced, 1, name='reduce')
        self.act = activation_layer('act', activation)
        self.expand = layers.Conv2D(filters, 1, activation='sigmoid',
                                    name='expand')

    def build(self, input_shape):
        pooled = (input_shape[0], 1, 1, input_shape[-1])
        build_once(self.reduce, pooled)
        build_once(self.expand, pooled[:-1] + (self.reduced,))

    def call(self, inputs):
        x = ops.mean(inputs, axis=(1, 2), keepdims=True)
        x = self.expand(self.act(self.reduce(x)))
        return inputs * x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), 'filters': self.filters,
                'reduced': self.reduced, 'activation': self.activation}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FusedBatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training pass on TensorFlow
    is one fused kernel (`FusedBatchNormV3` and its fused gradient).

    Keras 3 computes batch norm from moments and elementwise ops: about
    ten graph nodes forward and as many backward per layer, where the fused
    kernel needs one each. A supernet holds hundreds of batch norms in its
    branches, and its first step (tracing, differentiating and
    instantiating every branch) and its steady step both scale with the
    node count. Same variables, same config, same results up to float
    rounding: the moving variance is updated with the biased batch
    variance, as Keras does (the kernel returns the unbiased one). Inference,
    other backends, masks, renorm, synchronized batch norm, inputs that
    are not NHWC and compute dtypes other than `FUSED_DTYPES` (the kernel
    computes in float32: float64 would lose its digits) take Keras' own
    path, and so does every instance while
    the class attribute `enabled` is False (for measurements:
    `tools/build_time.py --nofused_batch_norm`).
    """

    enabled = True
    FUSED_DTYPES = ('float32', 'float16', 'bfloat16')

    def _fused_training(self, inputs, training, mask):
        return (self.enabled and training and self.trainable
                and mask is None
                and self.compute_dtype in self.FUSED_DTYPES
                and not self.renorm and not getattr(self, 'synchronized',
                                                    False)
                and keras.backend.backend() == 'tensorflow'
                and len(inputs.shape) == 4 and self.axis in (-1, 3)
                and self.epsilon >= 1e-5)  # cuDNN's minimum

    def call(self, inputs, training=None, mask=None):
        if not self._fused_training(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        return self.fused_train(inputs)

    def fused_train(self, inputs):
        """The training pass (NHWC): normalized output, moving statistics
        updated."""
        y, mean, variance = self.fused_forward(inputs)
        self.update_moving(mean, variance)
        return y

    def fused_forward(self, inputs, gamma=None, beta=None):
        """(output, batch mean, biased batch variance) of the training pass
        with this layer's gamma and beta (or the given ones, the same
        shapes), moving statistics untouched. `FusedBatchNormV3` is called
        directly: the `tf.nn.fused_batch_norm` wrapper raises epsilon to
        1.001e-5, which would change the function of a space with epsilon
        1e-5 (FBNet); the kernels take 1e-5 (cuDNN's minimum) and up."""
        x = tf.cast(inputs, tf.float32)
        channels = x.shape[-1]
        if gamma is None:
            gamma = (tf.cast(self.gamma, tf.float32) if self.scale
                     else tf.ones([channels], tf.float32))
        if beta is None:
            beta = (tf.cast(self.beta, tf.float32) if self.center
                    else tf.zeros([channels], tf.float32))
        empty = tf.constant([], tf.float32)
        y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=empty, variance=empty,
            epsilon=self.epsilon, exponential_avg_factor=1.0,
            data_format='NHWC', is_training=True)
        # The kernel's variance is Bessel-corrected; Keras averages the
        # biased one into the moving variance.
        if channels is None:
            channels = tf.shape(x)[-1]
        n = tf.cast(tf.size(x) // channels, tf.float32)
        variance = variance * tf.maximum(n - 1.0, 1.0) / tf.maximum(n, 1.0)
        return tf.cast(y, self.compute_dtype), mean, variance

    def update_moving(self, mean, variance):
        """Moves the moving statistics towards a batch's (biased)."""
        if not mean.shape.is_fully_defined():  # weights gathered by shape
            mean = tf.ensure_shape(mean, self.moving_mean.shape)
            variance = tf.ensure_shape(variance, self.moving_variance.shape)
        momentum = self.momentum
        self.moving_mean.assign(
            tf.cast(self.moving_mean, tf.float32) * momentum
            + mean * (1.0 - momentum))
        self.moving_variance.assign(
            tf.cast(self.moving_variance, tf.float32) * momentum
            + variance * (1.0 - momentum))


def batch_norm(name, momentum, epsilon, synchronized=False):
    """The batch norm of every block here: `FusedBatchNormalization`, or
    with `synchronized` `SyncBatchNormalization` (statistics over all
    replicas)."""
    if synchronized:
        return SyncBatchNormalization(momentum=momentum, epsilon=epsilon,
                                      name=name)
    return FusedBatchNormalization(momentum=momentum, epsilon=epsilon,
                                   name=name)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvBNAct(layers.Layer):
    """Bias-free conv, batch norm, activation (stem and head)."""

    def __init__(self, filters, kernel_size, strides=1, activation='relu',
                 bn_momentum=0.99, bn_epsilon=1e-3, bn_synchronized=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.activation = activation
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.bn_synchronized = bool(bn_synchronized)
        self.conv = layers.Conv2D(filters, kernel_size, strides=strides,
                                  padding='same', use_bias=False, name='conv')
        self.bn = batch_norm('bn', bn_momentum, bn_epsilon,
                             self.bn_synchronized)
        self.act = activation_layer('act', activation)

    def build(self, input_shape):
        build_once(self.conv, input_shape)
        build_once(self.bn, self.conv.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        return self.act(self.bn(self.conv(inputs), training=training))

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), 'filters': self.filters,
                'kernel_size': self.kernel_size, 'strides': self.strides,
                'activation': self.activation,
                'bn_momentum': self.bn_momentum,
                'bn_epsilon': self.bn_epsilon,
                'bn_synchronized': self.bn_synchronized}


@keras.saving.register_keras_serializable(package=PACKAGE)
class InvertedResidual(layers.Layer):
    """FBNet IRF / MobileNetV2-MnasNet-EfficientNet MBConv block.

    1x1 conv (groups, BN, act; left out when `expansion` is 1 unless
    `always_pw`) -> channel shuffle (groups > 1) -> k x k depthwise conv with
    the stride (BN, act; twice when `cascade`) -> optional squeeze-excite ->
    1x1 conv (groups, BN, no activation) -> residual add when the stride is 1
    and the channel count is unchanged.

    `add_shortcut=False` returns the residual branch F(x) alone (a supernet
    adds x itself: x + w * F(x)); the weights are the same either way.

    `bn_synchronized`: batch statistics over all replicas of a
    `tf.distribute` strategy (`SyncBatchNormalization`).

    `drop_path_rate` (stochastic depth, off by default): in training, the
    residual branch of each example is dropped with this probability and
    scaled by 1 / (1 - rate) otherwise; blocks without a residual add (or
    with `add_shortcut=False`) ignore it.
    """

    def __init__(self, c_in, c_out, kernel_size, expansion, strides=1,
                 groups=1, se_ratio=0.0, cascade=False, always_pw=False,
                 activation='relu', bn_momentum=0.99, bn_epsilon=1e-3,
                 add_shortcut=True, drop_path_rate=0.0,
                 bn_synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self.c_in = c_in
        self.c_out = c_out
        self.kernel_size = kernel_size
        self.expansion = expansion
        self.strides = strides
        self.groups = groups
        self.se_ratio = se_ratio
        self.cascade = cascade
        self.always_pw = always_pw
        self.activation = activation
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.add_shortcut = bool(add_shortcut)
        self.drop_path_rate = drop_path_rate
        self.bn_synchronized = bool(bn_synchronized)
        self.mid = c_in * expansion
        self.residual = strides == 1 and c_in == c_out
        self.seed_generator = None
        if self.residual and drop_path_rate:
            self.seed_generator = keras.random.SeedGenerator(name='drop_path')
        bn = dict(momentum=bn_momentum, epsilon=bn_epsilon,
                  synchronized=self.bn_synchronized)
        self.pw = None
        if always_pw or expansion != 1:
            self.pw = GroupedConv2D(self.mid, 1, groups=groups,
                                    use_bias=False, name='pw')
            self.pw_bn = batch_norm('pw_bn', **bn)
            self.pw_act = activation_layer('pw_act', activation)
        self.shuffle = ChannelShuffle(groups, name='shuffle')
        # Sublayers are attributes, not lists: Keras 3 leaves list-held
        # layers out of tf.train.Checkpoint.
        first = 'dw1' if cascade else 'dw'
        self.dw = layers.DepthwiseConv2D(kernel_size, strides=strides,
                                         padding='same', use_bias=False,
                                         name=first)
        self.dw_bn = batch_norm(f'{first}_bn', **bn)
        self.dw_act = activation_layer(f'{first}_act', activation)
        self.dw2 = None
        if cascade:
            self.dw2 = layers.DepthwiseConv2D(kernel_size, padding='same',
                                              use_bias=False, name='dw2')
            self.dw2_bn = batch_norm('dw2_bn', **bn)
            self.dw2_act = activation_layer('dw2_act', activation)
        self.se = None
        if se_ratio:
            self.se = SqueezeExcite(self.mid, se_channels(c_in, se_ratio),
                                    activation, name='se')
        self.pwl = GroupedConv2D(c_out, 1, groups=groups, use_bias=False,
                                 name='pwl')
        self.pwl_bn = batch_norm('pwl_bn', **bn)

    def depthwise_stages(self):
        """(depthwise conv, its batch norm, its activation) of each
        depthwise stage: one, or two for a cascade op."""
        yield self.dw, self.dw_bn, self.dw_act
        if self.dw2 is not None:
            yield self.dw2, self.dw2_bn, self.dw2_act

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.pw is not None:
            build_once(self.pw, shape)
            shape = self.pw.compute_output_shape(shape)
            build_once(self.pw_bn, shape)
        for dw, dw_bn, _ in self.depthwise_stages():
            build_once(dw, shape)
            shape = dw.compute_output_shape(shape)
            build_once(dw_bn, shape)
        if self.se is not None:
            build_once(self.se, shape)
        build_once(self.pwl, shape)
        build_once(self.pwl_bn, self.pwl.compute_output_shape(shape))

    def call(self, inputs, training=None):
        x = inputs
        if self.pw is not None:
            x = self.pw_act(self.pw_bn(self.pw(x), training=training))
        x = self.shuffle(x)
        for dw, dw_bn, act in self.depthwise_stages():
            x = act(dw_bn(dw(x), training=training))
        if self.se is not None:
            x = self.se(x)
        x = self.pwl_bn(self.pwl(x), training=training)
        if self.residual and self.add_shortcut:
            if training and self.seed_generator is not None:
                x = self._drop_path(x)
            x = x + inputs
        return x

    def _batch_norms(self):
        if self.pw is not None:
            yield self.pw_bn
        for _, dw_bn, _ in self.depthwise_stages():
            yield dw_bn
        yield self.pwl_bn

    def raw_training(self, inputs):
        """True where `raw_train_call(inputs)` computes
        `self(inputs, training=True)`: TensorFlow, float32, every batch
        norm fused (`FusedBatchNormalization`) with gamma and beta, no
        stochastic depth."""
        return (keras.backend.backend() == 'tensorflow'
                and self.compute_dtype == 'float32'
                and self.variable_dtype == 'float32'
                and not (self.residual and self.add_shortcut
                         and self.seed_generator is not None)
                and all(isinstance(bn, FusedBatchNormalization)
                        and bn.scale and bn.center
                        and bn._fused_training(inputs, True, None)
                        for bn in self._batch_norms()))

    def raw_structure(self):
        """A key: blocks with equal keys run the same `raw_forward` ops
        (on weights of other shapes, e.g. k3_e3 and k5_e6), so a supernet
        can run any of them as one graph on the chosen block's
        `raw_variables`."""
        return ('irf', self.pw is not None, self.groups,
                self.mid if self.groups > 1 else None, self.cascade,
                self.strides, self.residual and self.add_shortcut,
                self.activation, self.bn_momentum, self.bn_epsilon,
                self.se is not None and self.se.activation)

    def raw_variables(self):
        """The variables `raw_forward` reads from `tensors`, in its order."""
        variables = []
        if self.pw is not None:
            variables += [self.pw.kernel, self.pw_bn.gamma, self.pw_bn.beta]
        for dw, dw_bn, _ in self.depthwise_stages():
            variables += [dw.kernel, dw_bn.gamma, dw_bn.beta]
        if self.se is not None:
            variables += [self.se.reduce.kernel, self.se.reduce.bias,
                          self.se.expand.kernel, self.se.expand.bias]
        return variables + [self.pwl.kernel, self.pwl_bn.gamma,
                            self.pwl_bn.beta]

    def raw_train_call(self, inputs):
        """The training pass in TensorFlow ops on this layer's variables,
        without a Keras `__call__` per sublayer (a supernet traces and
        differentiates hundreds of such blocks in one step); the same ops
        and values as `self(inputs, training=True)` where `raw_training`
        holds. Builds the layer if needed."""
        if not self.built:
            self.build(tuple(inputs.shape))
            self.built = True
        y, stats = self.raw_forward(
            inputs, [tf.convert_to_tensor(v) for v in self.raw_variables()])
        self.update_moving(stats)
        return y

    def raw_forward(self, inputs, tensors):
        """(output, batch statistics) of the training pass on `tensors`
        (values of `raw_variables`, of this block or of one with the same
        `raw_structure`); moving statistics untouched."""
        tensors = list(tensors)
        stats = []

        def conv_bn(x, bn, conv):
            kernel, gamma, beta = tensors[:3]
            del tensors[:3]
            x = conv(x, kernel)
            y, mean, variance = bn.fused_forward(x, gamma, beta)
            stats.append((mean, variance))
            return y

        def pointwise(x, kernel):
            return _raw_conv(x, kernel, 1, self.groups)

        x = inputs
        if self.pw is not None:
            x = _raw_act(self.pw_act, conv_bn(x, self.pw_bn, pointwise))
        x = self.shuffle.call(x)
        for dw, dw_bn, act in self.depthwise_stages():
            def depthwise(v, kernel, dw=dw):
                return _raw_depthwise(v, kernel, dw)
            x = _raw_act(act, conv_bn(x, dw_bn, depthwise))
        if self.se is not None:
            x = _raw_squeeze_excite(self.se, x, tensors[:4])
            del tensors[:4]
        x = conv_bn(x, self.pwl_bn, pointwise)
        if self.residual and self.add_shortcut:
            x = x + inputs
        return x, stats

    def update_moving(self, stats):
        """Moves every batch norm's statistics (`raw_forward`'s)."""
        for bn, (mean, variance) in zip(self._batch_norms(), stats):
            bn.update_moving(mean, variance)

    def _drop_path(self, x):
        """Drops the whole branch of an example with `drop_path_rate`."""
        noise_shape = (ops.shape(x)[0], 1, 1, 1)
        return keras.random.dropout(x, self.drop_path_rate,
                                    noise_shape=noise_shape,
                                    seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        size = [None if d is None else -(-d // self.strides)
                for d in input_shape[1:3]]
        return (input_shape[0], *size, self.c_out)

    def get_config(self):
        return {**super().get_config(), 'c_in': self.c_in,
                'c_out': self.c_out, 'kernel_size': self.kernel_size,
                'expansion': self.expansion, 'strides': self.strides,
                'groups': self.groups, 'se_ratio': self.se_ratio,
                'cascade': self.cascade, 'always_pw': self.always_pw,
                'activation': self.activation,
                'bn_momentum': self.bn_momentum,
                'bn_epsilon': self.bn_epsilon,
                'add_shortcut': self.add_shortcut,
                'drop_path_rate': self.drop_path_rate,
                'bn_synchronized': self.bn_synchronized}


def _raw_conv(x, kernel, strides, groups):
    """`GroupedConv2D`'s convolution ('same', NHWC) in TensorFlow ops."""
    kernel = tf.convert_to_tensor(kernel)
    if groups == 1:
        return tf.nn.convolution(x, kernel, (strides, strides), 'SAME',
                                 data_format='NHWC', dilations=(1, 1))
    xs = tf.split(x, groups, axis=-1)
    ks = tf.split(kernel, groups, axis=-1)
    return tf.concat(
        [tf.nn.convolution(a, k, (strides, strides), 'SAME',
                           data_format='NHWC', dilations=(1, 1))
         for a, k in zip(xs, ks)], axis=-1)


def _raw_depthwise(x, kernel, layer):
    """A `DepthwiseConv2D` layer's convolution ('same', NHWC, no bias) on
    `kernel` in TensorFlow ops."""
    return tf.nn.depthwise_conv2d(
        x, tf.convert_to_tensor(kernel),
        (1, layer.strides[0], layer.strides[1], 1), 'SAME',
        data_format='NHWC', dilations=layer.dilation_rate)


def _raw_squeeze_excite(se, x, tensors):
    """`SqueezeExcite.call` on the values of its reduce and expand kernels
    and biases `tensors`, in TensorFlow ops."""
    reduce_kernel, reduce_bias, expand_kernel, expand_bias = tensors
    s = tf.reduce_mean(x, axis=(1, 2), keepdims=True)
    s = _raw_conv(s, reduce_kernel, 1, 1) + tf.reshape(reduce_bias,
                                                       (1, 1, 1, -1))
    s = _raw_act(se.act, s)
    s = _raw_conv(s, expand_kernel, 1, 1) + tf.reshape(expand_bias,
                                                       (1, 1, 1, -1))
    return x * tf.sigmoid(s)


def _raw_act(layer, x):
    """An `activation_layer`'s function without its Keras `__call__`."""
    if isinstance(layer, layers.ReLU) and layer.max_value is None \
            and not layer.negative_slope and not layer.threshold:
        return tf.nn.relu(x)
    return layer.call(x)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Skip(layers.Layer):
    """The `skip` op: identity."""

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def make_op(space, layer_index, op_name, name=None, add_shortcut=True,
            drop_path_rate=0.0, bn_synchronized=False):
    """The Keras layer for op `op_name` at searchable layer `layer_index`.

    `add_shortcut=False`: the residual branch only (see InvertedResidual);
    `bn_synchronized`: batch statistics over all replicas.
    """
    layer = space.layers[layer_index]
    op = parse_op(op_name)
    name = name or f'layer{layer_index + 1:02d}'
    if op.is_skip:
        return Skip(name=name)
    style = space.style
    return InvertedResidual(
        layer.c_in, layer.c_out, op.kernel, op.expansion,
        strides=layer.stride, groups=op.groups, se_ratio=op.se_ratio,
        cascade=op.cascade, always_pw=style.always_pw,
        activation=style.activation, bn_momentum=style.bn_momentum,
        bn_epsilon=style.bn_epsilon, add_shortcut=add_shortcut,
        drop_path_rate=drop_path_rate, bn_synchronized=bn_synchronized,
        name=name)


def make_stem(space, name='stem', bn_synchronized=False):
    style = space.style
    return ConvBNAct(space.stem.c_out, space.stem.kernel, space.stem.stride,
                     style.activation, style.bn_momentum, style.bn_epsilon,
                     bn_synchronized, name=name)


def make_head(space, name='head', bn_synchronized=False):
    style = space.style
    return ConvBNAct(space.head_channels, 1, 1, style.activation,
                     style.bn_momentum, style.bn_epsilon, bn_synchronized,
                     name=name)


def make_classifier(space, x, name='classifier', dropout=None):
    """Global pooling, dropout and the dense classifier (logits) on `x`.

    `dropout`: the rate before the classifier (default: the space's).
    """
    x = layers.GlobalAveragePooling2D(name='pool')(x)
    rate = space.dropout if dropout is None else dropout
    if rate:
        x = layers.Dropout(rate, name='dropout')(x)
    return layers.Dense(space.num_classes, name=name)(x)
