"""Published reference architectures as `Architecture`s (pure Python).

Each entry is (space, ops, head_channels); sources in
../shared/reference/search_spaces.md and docs/spaces.md.
"""

from hournas_tf.common.errors import UserError
from hournas_tf.common.errors import choices
from hournas_tf.spaces.architecture import Architecture


def _stages(*groups):
    ops = []
    for group in groups:
        ops.extend(group.split())
    return tuple(ops)


_REFERENCES = {
    # FBNet model zoo (mobile-vision), v1 block semantics; head 1504 for A.
    'fbnet_a': ('fbnet', _stages(
        'skip', 'k3_e3 k3_e1 skip skip', 'k5_e6 k3_e3 k5_e1 k3_e3',
        'k5_e6 k5_e3 k5_e1_g2 k5_e6', 'k3_e6 k5_e1_g2 k5_e3 k3_e1_g2',
        'k5_e6 k5_e6 k5_e3 k5_e6', 'k5_e6'), 1504),
    'fbnet_b': ('fbnet', _stages(
        'k3_e1', 'k3_e6 k5_e1 k3_e1 k3_e1', 'k5_e6 k5_e3 k3_e6 k3_sep_e6',
        'k5_e6 k5_e1 skip k5_e3', 'k5_e6 k3_e1 k5_e1 k5_e3',
        'k5_e6 k5_e1 k5_e6 k5_e6', 'k3_e6'), None),
    'fbnet_c': ('fbnet', _stages(
        'k3_e1', 'k3_e6 skip k3_e1 k3_e1', 'k5_e6 k5_e3 k3_sep_e6 k3_e6',
        'k5_e6 k5_e3 k5_e6 k5_e6', 'k5_e6 k3_sep_e6 k5_e6 k5_e3',
        'k5_e6 k5_e6 k5_e6 k5_e6', 'k3_e6'), None),
    'fbnet_max': ('fbnet', ('k5_e6',) * 22, None),
    # tensorflow/tpu mnasnet_models.py, mnasnet_a1.
    'mnasnet_a1': ('mnasnet', _stages(
        'k3_e1', 'k3_e6 k3_e6', 'k5_e3_se0.25 k5_e3_se0.25 k5_e3_se0.25',
        'k3_e6 k3_e6 k3_e6 k3_e6', 'k3_e6_se0.25 k3_e6_se0.25',
        'k5_e6_se0.25 k5_e6_se0.25 k5_e6_se0.25', 'k3_e6'), None),
    # tensorflow/tpu efficientnet_builder.py, B0.
    'efficientnet_b0': ('efficientnet', _stages(
        'k3_e1_se0.25', 'k3_e6_se0.25 k3_e6_se0.25',
        'k5_e6_se0.25 k5_e6_se0.25', 'k3_e6_se0.25 ' * 3,
        'k5_e6_se0.25 ' * 3, 'k5_e6_se0.25 ' * 4, 'k3_e6_se0.25'), None),
    'efficientnet_max': ('efficientnet', ('k5_e6_se0.25',) * 16, None),
    # MobileNetV2 1.0: the first block has no expansion conv.
    'mobilenet_v2': ('mobilenetv2', ('k3_e1',) + ('k3_e6',) * 16, None),
    # ProxylessNAS-mobile (NNI load_searched_model('proxyless-mobile')).
    'proxylessnas_mobile': ('proxyless', _stages(
        'k3_e1', 'k5_e3 k3_e3 skip skip', 'k7_e3 k3_e3 k5_e3 k5_e3',
        'k7_e6 k5_e3 k5_e3 k5_e3', 'k5_e6 k5_e3 k5_e3 k5_e3',
        'k7_e6 k7_e6 k7_e3 k7_e3', 'k7_e6'), None),
}

REFERENCE_NAMES = tuple(_REFERENCES)


def get_reference(name, image_size=224, num_classes=1000,
                  width_multiplier=1.0):
    """A named reference architecture (`REFERENCE_NAMES`)."""
    if name not in _REFERENCES:
        raise UserError(f'unknown architecture {name!r}; valid: '
                        f'{choices(REFERENCE_NAMES)}')
    space, ops, head = _REFERENCES[name]
    return Architecture(space=space, ops=ops, image_size=image_size,
                        num_classes=num_classes,
                        width_multiplier=width_multiplier,
                        head_channels=head, name=name)
