"""A search space as data: stem, searchable layers, head (pure Python).

A search space is a chain: a fixed stem, a list of searchable layers (each
with its input/output channels, stride, resolution and candidate ops), a fixed
1x1 head and a classifier. `macros.get_space` instantiates one of the macro
tables for an image size, a number of classes and a width multiplier.

Block semantics come from the space's `BlockStyle`: the FBNet v1 IRF block
(`irf`: the first 1x1 conv is present even when E = 1) or the
MnasNet/EfficientNet/MobileNetV2 MBConv block (`mbconv`: no expansion conv when
E = 1). See docs/spaces.md.
"""

import dataclasses
import math

from hournas_tf.common.errors import UserError
from hournas_tf.common.errors import choices
from hournas_tf.spaces.ops import fits
from hournas_tf.spaces.ops import parse_op

# Inputs at or below this size use the CIFAR layout: the stem and the first
# stride-2 layer run at stride 1, so a 32x32 image ends at 4x4.
CIFAR_MAX_SIZE = 64


@dataclasses.dataclass(frozen=True)
class BlockStyle:
    """Block semantics shared by all layers of a space."""

    family: str  # 'irf' (FBNet v1) or 'mbconv' (MnasNet/EfficientNet/MNv2)
    activation: str  # 'relu', 'relu6' or 'swish'
    bn_momentum: float
    bn_epsilon: float

    @property
    def always_pw(self):
        """FBNet v1 keeps the first 1x1 conv even for expansion 1."""
        return self.family == 'irf'


@dataclasses.dataclass(frozen=True)
class StemSpec:
    c_out: int
    stride: int
    kernel: int
    in_size: int
    out_size: int


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One searchable layer of the chain (`index` is 0-based)."""

    index: int
    c_in: int
    c_out: int
    stride: int
    in_size: int
    out_size: int
    candidates: tuple

    @property
    def has_shortcut(self):
        """True when an identity path can bypass the layer."""
        return self.stride == 1 and self.c_in == self.c_out


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """A search space instantiated for one input size and class count."""

    name: str
    image_size: int
    num_classes: int
    width_multiplier: float
    stem: StemSpec
    layers: tuple
    head_channels: int
    dropout: float
    style: BlockStyle
    extra_ops: tuple
    description: str
    # 0-based indices of the searchable layers every input-to-output path
    # goes through (`vital.vital_layers`, computed by `get_space`).
    vital_layers: tuple = ()

    @property
    def op_names(self):
        """The op vocabulary: columns of resource tables and logits."""
        names = []
        for layer in self.layers:
            for op in layer.candidates:
                if op not in names:
                    names.append(op)
        return tuple(names)

    @property
    def head_size(self):
        return self.layers[-1].out_size

    def candidate_mask(self):
        """Rows = layers, columns = `op_names`: True where op is a candidate."""
        names = self.op_names
        return [[op in layer.candidates for op in names]
                for layer in self.layers]

    def num_architectures(self):
        return math.prod(len(layer.candidates) for layer in self.layers)

    def allowed_ops(self, index):
        """Ops an architecture may use at layer `index`."""
        layer = self.layers[index]
        extra = tuple(op for op in self.extra_ops
                      if op not in layer.candidates and fits(layer, op))
        return layer.candidates + extra

    def check_op(self, index, op):
        """Raises UserError unless `op` may be used at layer `index`."""
        parse_op(op)
        allowed = self.allowed_ops(index)
        if op not in allowed:
            layer = self.layers[index]
            why = ''
            if op == 'skip':
                why = (f' (skip needs stride 1 and c_in == c_out, layer has '
                       f'stride {layer.stride}, {layer.c_in} -> {layer.c_out})')
            raise UserError(
                f'op {op!r} does not fit layer {index + 1} of space '
                f'{self.name!r}{why}; valid: {choices(allowed)}')


def round_filters(channels, width_multiplier, divisor=8):
    """Scales channels, rounds to `divisor`, never more than 10% down."""
    if width_multiplier == 1.0:
        return channels
    scaled = channels * width_multiplier
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)
