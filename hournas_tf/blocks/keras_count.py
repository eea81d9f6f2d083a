"""Counts MACs and parameters by reading a built Keras model.

This is the independent check of `counting`: it knows nothing about search
spaces or ops. It walks every Conv2D, DepthwiseConv2D and Dense layer of the
model, takes the kernel shape and groups from the layer and the output size
from the shape the layer was built with, and sums
k_h * k_w * (c_in / groups) * c_out * H_out * W_out (depthwise:
k_h * k_w * c * multiplier * H_out * W_out; dense: in * out) per image.
"""

import dataclasses
import math

import keras

from hournas_tf.blocks.nesting import nested_layers


@dataclasses.dataclass(frozen=True)
class KerasCount:
    macs: int
    trainable_params: int
    total_params: int


def _all_layers(model):
    return nested_layers(model)


def _output_hw(layer):
    shape = layer.get_build_config()['input_shape']
    out = layer.compute_output_shape(shape)
    return out[1] * out[2]


def layer_macs(layer):
    """MACs per image of one conv or dense layer (0 for other layers)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, c, mult = layer.kernel.shape
        return kh * kw * c * mult * _output_hw(layer)
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, c_in_per_group, c_out = layer.kernel.shape
        return kh * kw * c_in_per_group * c_out * _output_hw(layer)
    if isinstance(layer, keras.layers.Dense):
        c_in, c_out = layer.kernel.shape
        return c_in * c_out
    return 0


def count(model):
    """MACs per image and parameter counts of a built Keras model."""
    macs = sum(layer_macs(layer) for layer in _all_layers(model))
    trainable = sum(math.prod(v.shape) for v in model.trainable_variables)
    return KerasCount(macs=macs, trainable_params=trainable,
                      total_params=model.count_params())
