"""The macro tables of the registered spaces and `get_space` (pure Python).

Each stage of a macro: (c_out, repeats, first stride). Candidates are the same
at every layer, minus `skip` where no identity shortcut exists and ops whose
channel groups do not divide the layer's widths.
"""

import dataclasses
import math

from hournas_tf.common.errors import UserError
from hournas_tf.common.errors import choices
from hournas_tf.spaces import vital
from hournas_tf.spaces.ops import fits
from hournas_tf.spaces.space import CIFAR_MAX_SIZE
from hournas_tf.spaces.space import BlockStyle
from hournas_tf.spaces.space import LayerSpec
from hournas_tf.spaces.space import SearchSpace
from hournas_tf.spaces.space import StemSpec
from hournas_tf.spaces.space import round_filters

_FBNET_OPS = ('k3_e1', 'k3_e1_g2', 'k3_e3', 'k3_e6', 'k5_e1', 'k5_e1_g2',
              'k5_e3', 'k5_e6', 'skip')
_EFBNET_OPS = ('k3_e1', 'k3_e3', 'k3_e6', 'k5_e1', 'k5_e3', 'k5_e6', 'k7_e1',
               'k7_e3', 'k7_e6', 'skip')
_MNASNET_OPS = ('k3_e3', 'k3_e6', 'k5_e3', 'k5_e6', 'k3_e3_se0.25',
                'k3_e6_se0.25', 'k5_e3_se0.25', 'k5_e6_se0.25', 'skip')
_EFFICIENTNET_OPS = ('k3_e3_se0.25', 'k3_e6_se0.25', 'k5_e3_se0.25',
                     'k5_e6_se0.25', 'skip')
_PROXYLESS_OPS = ('k3_e3', 'k3_e6', 'k5_e3', 'k5_e6', 'k7_e3', 'k7_e6', 'skip')

_FBNET_STAGES = ((16, 1, 1), (24, 4, 2), (32, 4, 2), (64, 4, 2), (112, 4, 1),
                 (184, 4, 2), (352, 1, 1))
_MNAS_STAGES = ((16, 1, 1), (24, 2, 2), (40, 3, 2), (80, 4, 2), (112, 2, 1),
                (160, 3, 2), (320, 1, 1))
_EFFICIENTNET_STAGES = ((16, 1, 1), (24, 2, 2), (40, 2, 2), (80, 3, 2),
                        (112, 3, 1), (192, 4, 2), (320, 1, 1))
_MOBILENETV2_STAGES = ((16, 1, 1), (24, 2, 2), (32, 3, 2), (64, 4, 2),
                       (96, 3, 1), (160, 3, 2), (320, 1, 1))
_PROXYLESS_STAGES = ((16, 1, 1), (32, 4, 2), (40, 4, 2), (80, 4, 2),
                     (96, 4, 1), (192, 4, 2), (320, 1, 1))

_IRF = BlockStyle('irf', 'relu', bn_momentum=0.9, bn_epsilon=1e-5)
_TPU_RELU = BlockStyle('mbconv', 'relu', bn_momentum=0.99, bn_epsilon=1e-3)
_TPU_SWISH = BlockStyle('mbconv', 'swish', bn_momentum=0.99, bn_epsilon=1e-3)
_MNV2 = BlockStyle('mbconv', 'relu6', bn_momentum=0.999, bn_epsilon=1e-3)


@dataclasses.dataclass(frozen=True)
class _Macro:
    stem: int
    stages: tuple
    head: int
    ops: tuple
    extra_ops: tuple
    style: BlockStyle
    dropout: float
    description: str


_MACROS = {
    'fbnet': _Macro(
        16, _FBNET_STAGES, 1984, _FBNET_OPS, ('k3_sep_e6',), _IRF, 0.0,
        'FBNet (Wu et al. 2019): 22 layers x 9 IRF ops, ReLU.'),
    'efbnet': _Macro(
        16, _FBNET_STAGES, 1984, _EFBNET_OPS,
        ('k3_sep_e6', 'k3_e1_g2', 'k5_e1_g2'), _IRF, 0.0,
        'Enlarged FBNet (HourNAS): g2 ops removed, k7_e1/e3/e6 added.'),
    'mnasnet': _Macro(
        32, _MNAS_STAGES, 1280, _MNASNET_OPS,
        ('k3_e1', 'k5_e1', 'k3_e1_se0.25', 'k5_e1_se0.25'), _TPU_RELU, 0.2,
        'MnasNet-A1 macro, per-layer MBConv k3/k5 x e3/e6 x SE 0/0.25, '
        'ReLU.'),
    'efficientnet': _Macro(
        32, _EFFICIENTNET_STAGES, 1280, _EFFICIENTNET_OPS,
        ('k3_e1_se0.25', 'k5_e1_se0.25'), _TPU_SWISH, 0.2,
        'EfficientNet-B0 macro, per-layer MBConv k3/k5 x e3/e6, SE 0.25, '
        'swish.'),
    'proxyless': _Macro(
        32, _PROXYLESS_STAGES, 1280, _PROXYLESS_OPS,
        ('k3_e1', 'k5_e1', 'k7_e1'), _MNV2, 0.0,
        'ProxylessNAS supernet on the MobileNetV2 macro: MBConv k3/k5/k7 x '
        'e3/e6, ReLU6, up to 4 layers per stage.'),
    'mobilenetv2': _Macro(
        32, _MOBILENETV2_STAGES, 1280, _PROXYLESS_OPS,
        ('k3_e1', 'k5_e1', 'k7_e1'), _MNV2, 0.0,
        'MobileNetV2 widths and depths with the ProxylessNAS ops.'),
}

SPACE_NAMES = tuple(_MACROS)


def _out(size, stride):
    return -(-size // stride)  # 'same' padding


def get_space(name, image_size=224, num_classes=1000, width_multiplier=1.0,
              head_channels=None):
    """Instantiates a registered search space.

    Args:
        name: one of `SPACE_NAMES`.
        image_size: input height and width. Sizes up to `CIFAR_MAX_SIZE` use
            the CIFAR layout (two fewer stride-2 steps).
        num_classes: classifier outputs.
        width_multiplier: scales every channel count (rounded to 8).
        head_channels: overrides the head width before scaling (the released
            FBNet-A uses 1504 instead of 1984).

    Returns:
        A `SearchSpace`.
    """
    if not isinstance(name, str) or name not in _MACROS:
        raise UserError(
            f'unknown space {name!r}; valid: {choices(SPACE_NAMES)}')
    _check_positive('image_size', image_size, int, minimum=8)
    _check_positive('num_classes', num_classes, int, minimum=2)
    _check_positive('width_multiplier', width_multiplier, (int, float))
    if head_channels is not None:
        _check_positive('head_channels', head_channels, int, minimum=8)
    macro = _MACROS[name]
    cifar = image_size <= CIFAR_MAX_SIZE
    scale = lambda c: round_filters(c, float(width_multiplier))  # noqa: E731

    stem_stride = 1 if cifar else 2
    stem = StemSpec(scale(macro.stem), stem_stride, 3, image_size,
                    _out(image_size, stem_stride))
    layers = []
    c_in, size = stem.c_out, stem.out_size
    first_downsample = True
    for c_out, repeats, stride in macro.stages:
        c_out = scale(c_out)
        for r in range(repeats):
            s = stride if r == 0 else 1
            if s == 2 and first_downsample:
                first_downsample = False
                if cifar:
                    s = 1
            layer = LayerSpec(len(layers), c_in, c_out, s, size,
                              _out(size, s), ())
            cands = tuple(op for op in macro.ops if fits(layer, op))
            layers.append(dataclasses.replace(layer, candidates=cands))
            c_in, size = c_out, layer.out_size
    head = scale(head_channels or macro.head)
    space = SearchSpace(
        name=name,
        image_size=image_size,
        num_classes=num_classes,
        width_multiplier=float(width_multiplier),
        stem=stem,
        layers=tuple(layers),
        head_channels=head,
        dropout=macro.dropout,
        style=macro.style,
        extra_ops=macro.extra_ops,
        description=macro.description,
    )
    return dataclasses.replace(space, vital_layers=vital.vital_layers(space))


def _check_positive(flag, value, types, minimum=None):
    ok = isinstance(value, types) and not isinstance(value, bool)
    ok = ok and _finite(value) and value > 0 and (
        minimum is None or value >= minimum)
    if not ok:
        need = f'>= {minimum}' if minimum else '> 0'
        raise UserError(f'invalid {flag} {value!r}: must be a finite number '
                        f'{need}')


def _finite(value):
    """False for nan, inf and an int too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
