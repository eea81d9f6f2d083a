"""Analytic resource counting: MACs and parameters per (layer, op).

Conventions (docs/counting.md; they reproduce the published numbers):
- `macs`: multiply-accumulates per image of every Conv2D
  (k_h * k_w * c_in / groups * c_out * H_out * W_out), DepthwiseConv2D
  (k_h * k_w * c * H_out * W_out) and Dense (in * out), including the two
  1x1 convs of squeeze-excite on the pooled vector (also reported apart as
  `se_macs`). Batch norm, activations, residual adds, channel shuffle,
  pooling and bias adds count zero.
- `weights`: conv and dense kernels only (no biases, no batch norm), the
  mobile-vision convention of the FBNet model zoo.
- `params`: trainable parameters as Keras counts them: kernels, biases
  (classifier and squeeze-excite), batch-norm gamma and beta.
- `keras_params`: `model.count_params()`, i.e. `params` plus the batch-norm
  moving mean and variance.
"""

import dataclasses

from hournas_tf.spaces.ops import parse_op
from hournas_tf.spaces.ops import se_channels

OBJECTIVES = ('macs', 'params', 'weights', 'keras_params')


@dataclasses.dataclass(frozen=True)
class Cost:
    """Resources of one block or a whole network."""

    macs: int = 0
    params: int = 0
    weights: int = 0
    keras_params: int = 0
    se_macs: int = 0

    def __add__(self, other):
        return Cost(*(a + b for a, b in zip(dataclasses.astuple(self),
                                             dataclasses.astuple(other))))

    def get(self, objective):
        return getattr(self, objective)


def _conv(kernel_area, c_in, c_out, groups, out_size):
    """Cost of a bias-free conv followed by batch norm."""
    weights = kernel_area * (c_in // groups) * c_out
    return Cost(macs=weights * out_size * out_size,
                params=weights + 2 * c_out,
                weights=weights,
                keras_params=weights + 4 * c_out)


def stem_cost(space):
    stem = space.stem
    return _conv(stem.kernel ** 2, 3, stem.c_out, 1, stem.out_size)


def head_cost(space):
    return _conv(1, space.layers[-1].c_out, space.head_channels, 1,
                 space.head_size)


def classifier_cost(space):
    kernel = space.head_channels * space.num_classes
    params = kernel + space.num_classes
    return Cost(macs=kernel, params=params, weights=kernel,
                keras_params=params)


def op_cost(space, layer_index, op_name):
    """Cost of op `op_name` at searchable layer `layer_index` (0-based)."""
    layer = space.layers[layer_index]
    op = parse_op(op_name)
    if op.is_skip:
        return Cost()
    g = op.groups
    mid = layer.c_in * op.expansion
    total = Cost()
    if space.style.always_pw or op.expansion != 1:
        total += _conv(1, layer.c_in, mid, g, layer.in_size)
    for _ in range(2 if op.cascade else 1):
        total += _conv(op.kernel ** 2, mid, mid, mid, layer.out_size)
    if op.se_ratio:
        r = se_channels(layer.c_in, op.se_ratio)
        kernels = 2 * mid * r
        total += Cost(macs=kernels, params=kernels + r + mid,
                      weights=kernels, keras_params=kernels + r + mid,
                      se_macs=kernels)
    total += _conv(1, mid, layer.c_out, g, layer.out_size)
    return total


@dataclasses.dataclass(frozen=True)
class ArchCost:
    """Per-block and total cost of an architecture."""

    stem: Cost
    layers: tuple
    head: Cost
    classifier: Cost

    @property
    def total(self):
        out = self.stem + self.head + self.classifier
        for c in self.layers:
            out += c
        return out

    @property
    def backbone(self):
        """Everything but the classifier."""
        out = self.stem + self.head
        for c in self.layers:
            out += c
        return out


def arch_cost(arch):
    """Cost of an `Architecture`."""
    space = arch.search_space()
    return ArchCost(
        stem=stem_cost(space),
        layers=tuple(op_cost(space, i, op) for i, op in enumerate(arch.ops)),
        head=head_cost(space),
        classifier=classifier_cost(space),
    )


def human(value):
    """A short human-readable number: 295M, 4.8M, 12.5K, 1.2G, 3.25."""
    for scale, suffix in ((1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(value) >= scale:
            return f'{value / scale:.4g}{suffix}'
    return f'{value:.4g}'
