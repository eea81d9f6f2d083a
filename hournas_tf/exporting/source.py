"""The model to export: a `.keras` file, or an architecture file and a
weights file, with one-line errors for files of the wrong kind."""

import os
import re

from hournas_tf.common.errors import UserError
from hournas_tf.spaces.architecture import load_architecture


def check_file(path, what):
    """Raises UserError unless `path` is an existing file."""
    if not os.path.isfile(path):
        raise UserError(f'{what} {path} does not exist' if not
                        os.path.exists(path) else f'{what} {path} is not '
                        'a file')


def load_model_file(path):
    """A Keras 3 model from a `.keras` file (hournas_tf layers registered),
    uncompiled: `hournas_tf.blocks.model.load_model`."""
    check_file(path, 'model file')
    from hournas_tf.blocks import model

    return model.load_model(path, compile=False)


def default_weights(arch_file):
    """The weights file a search writes next to an architecture file."""
    stem = arch_file[:-len('.json')] if arch_file.endswith('.json') \
        else arch_file
    return f'{stem}.weights.h5'


_VARIABLE = re.compile(r'Target variable: <Variable path=([^,]+), '
                       r'shape=(\([^)]*\))')
_VALUE = re.compile(r'value\.shape=(\([^)]*\))')


def _mismatch(error):
    """'layer04/dw/kernel is (3, 3, 48, 1) in the architecture but
    (3, 3, 24, 1) in the file', or the error's first line."""
    text = str(error)
    variable, value = _VARIABLE.search(text), _VALUE.search(text)
    if variable and value:
        return (f'{variable.group(1)} is {variable.group(2)} in the '
                f'architecture but {value.group(1)} in the file')
    return (text.strip().splitlines() or [type(error).__name__])[0][:200]


def model_from_arch(arch_file, weights=None):
    """`build_model(load_architecture(arch_file))` with `weights` loaded
    (default: the `.weights.h5` next to the architecture file)."""
    check_file(arch_file, 'architecture file')
    arch = load_architecture(arch_file)
    weights = weights or default_weights(arch_file)
    check_file(weights, 'weights file')
    from hournas_tf.blocks.model import build_model

    model = build_model(arch)
    try:
        model.load_weights(weights)
    except Exception as e:  # noqa: BLE001 (Keras raises many kinds)
        raise UserError(f'weights {weights} do not fit the architecture '
                        f'of {arch_file}: {_mismatch(e)}') from None
    return model
