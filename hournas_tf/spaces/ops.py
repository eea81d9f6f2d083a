"""Candidate ops: names, their parsed form and where they fit (pure Python).

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
"""

import dataclasses
import re

from hournas_tf.common.errors import UserError

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


def se_channels(c_in, se_ratio):
    """Reduced width of squeeze-excite (relative to the block input)."""
    return max(1, int(c_in * se_ratio))


def fits(layer, op):
    """Whether `op` can be built at `layer` (skip and channel groups).

    `layer` is anything with `c_in`, `c_out` and `has_shortcut`
    (a `LayerSpec`).
    """
    spec = parse_op(op)
    if spec.is_skip:
        return layer.has_shortcut
    mid = layer.c_in * spec.expansion
    return all(c % spec.groups == 0 for c in (layer.c_in, mid, layer.c_out))
