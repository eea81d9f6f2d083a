"""Search spaces as data (pure Python, no TensorFlow import).

A search space is a chain: a fixed stem, a list of searchable layers (each
with its input/output channels, stride, resolution and candidate ops), a fixed
1x1 head and a classifier. Every space is a macro table below; `get_space`
instantiates it for an image size, a number of classes and a width multiplier.

Op names (the same grammar for every space):
- `skip`: identity. Only a candidate where the shape is unchanged (stride 1,
  c_in == c_out), so never at a vital layer.
- `k{K}_e{E}`: inverted residual block, depthwise K x K, expansion E.
- `_g{G}` suffix: both 1x1 convs grouped in G groups, channel shuffle after
  the first (FBNet's `k3_e1_g2`).
- `_se{R}` suffix: squeeze-excite with R x c_in reduced channels (MnasNet,
  EfficientNet).
- `k3_sep_e6`: two cascaded 3x3 depthwise convs in place of one (released
  FBNet-B/C only; never a search candidate).

Block semantics come from the space's `BlockStyle`: the FBNet v1 IRF block
(`irf`: the first 1x1 conv is present even when E = 1) or the
MnasNet/EfficientNet/MobileNetV2 MBConv block (`mbconv`: no expansion conv when
E = 1). See docs/spaces.md.
"""

import dataclasses
import math
import re

from hournas_tf.errors import UserError
from hournas_tf.errors import choices

# Inputs at or below this size use the CIFAR layout: the stem and the first
# stride-2 layer run at stride 1, so a 32x32 image ends at 4x4.
CIFAR_MAX_SIZE = 64

_OP_RE = re.compile(
    r'^k(?P<k>[1-9])(?P<sep>_sep)?_e(?P<e>[1-9])'
    r'(?:_g(?P<g>[1-9]))?(?:_se(?P<se>0?\.\d+))?$')


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """One candidate op, parsed from its name."""

    name: str
    kernel: int = 0
    expansion: int = 0
    groups: int = 1
    se_ratio: float = 0.0
    cascade: bool = False

    @property
    def is_skip(self):
        return self.name == 'skip'


def parse_op(name):
    """Parses an op name such as `k5_e6`, `k3_e1_g2`, `k3_e6_se0.25`, `skip`."""
    if name == 'skip':
        return OpSpec('skip')
    m = _OP_RE.match(str(name))
    if not m or int(m['k']) % 2 == 0:
        raise UserError(
            f'malformed op name {name!r}: expected skip or k<odd kernel>_e<'
            'expansion>[_g<groups>][_se<ratio>], e.g. k3_e6, k5_e1_g2, '
            'k3_e6_se0.25')
    return OpSpec(
        name=name,
        kernel=int(m['k']),
        expansion=int(m['e']),
        groups=int(m['g'] or 1),
        se_ratio=float(m['se'] or 0.0),
        cascade=bool(m['sep']),
    )


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

    @property
    def vital_layers(self):
        """0-based indices of the searchable layers every path goes through."""
        from hournas_tf import vital

        return vital.vital_layers(self)

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


def fits(layer, op):
    """Whether `op` can be built at `layer` (skip and channel groups)."""
    spec = parse_op(op)
    if spec.is_skip:
        return layer.has_shortcut
    mid = layer.c_in * spec.expansion
    return all(c % spec.groups == 0 for c in (layer.c_in, mid, layer.c_out))


def round_filters(channels, width_multiplier, divisor=8):
    """Scales channels, rounds to `divisor`, never more than 10% down."""
    if width_multiplier == 1.0:
        return channels
    scaled = channels * width_multiplier
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


# === Macro tables ===
# Each stage: (c_out, repeats, first stride). Candidates are the same at every
# layer, minus `skip` where no identity shortcut exists.

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
    if name not in _MACROS:
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
    return SearchSpace(
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


def _check_positive(flag, value, types, minimum=None):
    ok = isinstance(value, types) and not isinstance(value, bool)
    ok = ok and value > 0 and (minimum is None or value >= minimum)
    if not ok:
        need = f'>= {minimum}' if minimum else '> 0'
        raise UserError(f'invalid {flag} {value!r}: must be a number {need}')
