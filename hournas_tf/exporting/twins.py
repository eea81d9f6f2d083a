"""Export twins: a hournas_tf model rebuilt from standard Keras layers.

`build_twin(model, flavor)` walks a chain model of hournas_tf blocks (the
model of `build_model`, or one block of a latency table) and rebuilds it
from standard layers with the same weights, in Keras 3 (`flavor='keras'`,
the graph the float and int8 TFLite files are converted from) or in tf_keras
(`'tf_keras'`, the only Keras that tensorflow-model-optimization quantizes).
Both twins come from this one builder, so they cannot drift apart.

What the twins change, with the same arithmetic at inference:
- A grouped 1x1 conv and its batch norm become, per group, a channel slice,
  a conv and a batch norm (and the activation), then a concat. TFLite folds
  each batch norm into its conv; the batch norm after a concat of per-group
  convs (`blocks.layers.GroupedConv2D`) cannot be folded and stays as a MUL
  and an ADD.
- Batch norm is unfused (`fused=False` in tf_keras), the same arithmetic
  as Keras 3, so the tf_keras twin matches within float rounding.
- Squeeze-excite is pooling, two 1x1 convs and a `Multiply`; channel
  shuffle is Reshape, Permute, Reshape. Dropout stays; stochastic depth is
  an identity at inference and is left out.
"""

import functools

import keras

from hournas_tf.blocks import layers as hl
from hournas_tf.blocks import model as model_lib
from hournas_tf.common.errors import UserError
from hournas_tf.exporting.config import require_qat

FLAVORS = ('keras', 'tf_keras')


@functools.cache
def channel_slice_class():
    """The tf_keras layer `x[..., start:stop]` (tf_keras has none; Keras 3
    twins use `keras.ops.split`)."""
    require_qat('the tf_keras twin')
    import tf_keras

    class ChannelSlice(tf_keras.layers.Layer):
        """Channels [start, stop) of the last axis."""

        def __init__(self, start, stop, **kwargs):
            super().__init__(**kwargs)
            self.start = start
            self.stop = stop

        def call(self, inputs):
            return inputs[..., self.start:self.stop]

        def get_config(self):
            return {**super().get_config(), 'start': self.start,
                    'stop': self.stop}

    return ChannelSlice


class _Builder:
    """Rebuilds layers in one flavor, copying weights as it goes."""

    def __init__(self, flavor):
        if flavor not in FLAVORS:
            raise ValueError(f'unknown flavor {flavor!r}; valid: {FLAVORS}')
        self.flavor = flavor
        if flavor == 'keras':
            self.keras = keras
        else:
            require_qat('the tf_keras twin')
            import tf_keras

            self.keras = tf_keras
        self.layers = self.keras.layers
        self.copied = 0

    def take(self, *variables):
        """The source weights as numpy arrays, counted once each."""
        self.copied += len(variables)
        return [v.value.numpy() for v in variables]

    @staticmethod
    def apply(layer, x, weights):
        """Calls `layer` on `x`, then sets its `weights`."""
        y = layer(x)
        layer.set_weights(weights)
        return y

    def activation(self, x, name, activation):
        L = self.layers
        if activation == 'relu':
            return L.ReLU(name=name)(x)
        if activation == 'relu6':
            return L.ReLU(max_value=6.0, name=name)(x)
        if activation == 'swish':
            return L.Activation('swish', name=name)(x)
        raise ValueError(f'unknown activation {activation!r}')

    def batch_norm(self, x, name, bn, weights):
        kwargs = {} if self.flavor == 'keras' else {'fused': False}
        layer = self.layers.BatchNormalization(
            momentum=bn.momentum, epsilon=bn.epsilon, name=name, **kwargs)
        return self.apply(layer, x, weights)

    def split(self, x, name, groups):
        if self.flavor == 'keras':
            return self.keras.ops.split(x, groups, axis=-1)
        width = x.shape[-1] // groups
        cls = channel_slice_class()
        return [cls(g * width, (g + 1) * width, name=f'{name}_slice{g}')(x)
                for g in range(groups)]

    def conv_bn(self, x, name, conv, bn, activation=None):
        """Conv (or depthwise conv), batch norm [, activation]; a grouped
        conv runs per group (see the module docstring)."""
        L = self.layers
        kernel, *bn_weights = self.take(conv.kernel, bn.gamma, bn.beta,
                                        bn.moving_mean, bn.moving_variance)
        groups = getattr(conv, 'groups', 1)
        if isinstance(conv, keras.layers.DepthwiseConv2D):
            make = functools.partial(L.DepthwiseConv2D, conv.kernel_size)
        else:
            make = functools.partial(L.Conv2D, conv.filters // groups,
                                     conv.kernel_size)

        def conv_bn_act(y, suffix, channels):
            y = self.apply(make(strides=conv.strides, padding=conv.padding,
                                use_bias=False, name=f'{name}{suffix}'), y,
                           [kernel[..., channels]])
            y = self.batch_norm(y, f'{name}_bn{suffix}', bn,
                                [w[channels] for w in bn_weights])
            if activation:
                y = self.activation(y, f'{name}_act{suffix}', activation)
            return y

        if groups == 1:
            return conv_bn_act(x, '', slice(None))
        width = conv.filters // groups
        outputs = [conv_bn_act(part, f'_g{g}',
                               slice(g * width, (g + 1) * width))
                   for g, part in enumerate(self.split(x, name, groups))]
        return L.Concatenate(name=f'{name}_concat')(outputs)

    def shuffle(self, x, name, groups):
        if groups == 1:
            return x
        L = self.layers
        h, w, c = x.shape[1:]
        x = L.Reshape((h, w, groups, c // groups), name=f'{name}_split')(x)
        x = L.Permute((1, 2, 4, 3), name=f'{name}_transpose')(x)
        return L.Reshape((h, w, c), name=f'{name}_merge')(x)

    def squeeze_excite(self, x, name, se):
        L = self.layers
        s = L.GlobalAveragePooling2D(keepdims=True, name=f'{name}_pool')(x)
        s = self.apply(L.Conv2D(se.reduced, 1, name=f'{name}_reduce'), s,
                       self.take(se.reduce.kernel, se.reduce.bias))
        s = self.activation(s, f'{name}_act', se.activation)
        s = self.apply(L.Conv2D(se.filters, 1, activation='sigmoid',
                                name=f'{name}_expand'), s,
                       self.take(se.expand.kernel, se.expand.bias))
        return L.Multiply(name=f'{name}_gate')([x, s])

    def inverted_residual(self, x, block):
        n = block.name
        inputs = x
        if block.pw is not None:
            x = self.conv_bn(x, f'{n}_pw', block.pw, block.pw_bn,
                             block.activation)
        x = self.shuffle(x, f'{n}_shuffle', block.groups)
        for dw, dw_bn, _ in block.depthwise_stages():
            x = self.conv_bn(x, f'{n}_{dw.name}', dw, dw_bn,
                             block.activation)
        if block.se is not None:
            x = self.squeeze_excite(x, f'{n}_se', block.se)
        x = self.conv_bn(x, f'{n}_pwl', block.pwl, block.pwl_bn)
        if block.residual:
            x = self.layers.Add(name=f'{n}_add')([x, inputs])
        return x

    def layer(self, x, layer):
        """The twin of one layer of the source chain model."""
        L = self.layers
        if isinstance(layer, hl.ConvBNAct):
            return self.conv_bn(x, layer.name, layer.conv, layer.bn,
                                layer.activation)
        if isinstance(layer, hl.InvertedResidual):
            return self.inverted_residual(x, layer)
        if isinstance(layer, hl.Skip):
            return x
        if (isinstance(layer, keras.layers.Normalization)
                and layer.name == model_lib.PREPROCESSING_LAYER):
            return model_lib.preprocessing_layer(L)(x)
        if isinstance(layer, keras.layers.GlobalAveragePooling2D):
            return L.GlobalAveragePooling2D(name=layer.name)(x)
        if isinstance(layer, keras.layers.Dropout):
            return L.Dropout(layer.rate, name=layer.name)(x)
        if isinstance(layer, keras.layers.Dense):
            return self.apply(L.Dense(layer.units, name=layer.name), x,
                              self.take(layer.kernel, layer.bias))
        raise UserError(f'layer {layer.name!r} ({type(layer).__name__}) is '
                        'not a hournas_tf block; only models of '
                        'hournas_tf.build_model can be exported')


def build_twin(model, flavor='keras'):
    """The `flavor` twin of a hournas_tf chain model, with its weights.

    Raises UserError for a layer that is not a hournas_tf block, and
    ValueError if a weight of `model` was not copied.
    """
    builder = _Builder(flavor)
    inputs = builder.keras.Input(tuple(model.inputs[0].shape[1:]),
                                 name='image')
    x = inputs
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        x = builder.layer(x, layer)
    if builder.copied != len(model.weights):
        raise ValueError(f'the twin took {builder.copied} of the '
                         f'{len(model.weights)} weights of {model.name!r}')
    return builder.keras.Model(inputs, x, name=f'{model.name}_{flavor}')
