"""Inherited weights: find the file, check that it fits the model, load it.

A search run directory holds `arch.weights.h5`, the weights of
`hournas_tf.build_model(arch)` for its `arch.json` copied from the supernet
(and `family/proposal<j>.weights.h5` for each family member). Keras stores
a model's weights by layer class and position
(`layers/inverted_residual_3/pw/vars/0`), so a file written for another
architecture may still load without error into the wrong layers; the check
compares every stored array with the model's before loading and names the
first layer that differs.
"""

import os
import re
import tempfile

from hournas_tf.common.errors import UserError

WEIGHTS_FILE = 'arch.weights.h5'
WEIGHTS_SUFFIX = '.weights.h5'
_HDF5_SIGNATURE = b'\x89HDF\r\n\x1a\n'


def resolve_weights_file(path):
    """The `.weights.h5` file of `path`: a search run directory (its
    arch.weights.h5) or the file itself. Raises UserError."""
    if os.path.isdir(path):
        inside = os.path.join(path, WEIGHTS_FILE)
        if not os.path.isfile(inside):
            raise UserError(f'inherit_weights folder {path!r} holds no '
                            f'{WEIGHTS_FILE} (a search run directory has it '
                            'next to arch.json)')
        path = inside
    elif not os.path.exists(path):
        raise UserError(f'inherit_weights {path!r} does not exist')
    if not path.endswith(WEIGHTS_SUFFIX):
        raise UserError(f'inherit_weights {path!r} is not a Keras weights '
                        f'file (*{WEIGHTS_SUFFIX}) or a search run directory')
    with open(path, 'rb') as f:
        if f.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
            raise UserError(f'inherit_weights {path!r} is not an HDF5 file')
    return path


def stored_shapes(path):
    """{array path: shape} of the model arrays (under `layers/`) in a Keras
    `.weights.h5` file."""
    import h5py

    shapes = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset) and name.startswith('layers/'):
            shapes[name] = tuple(item.shape)

    try:
        with h5py.File(path, 'r') as f:
            f.visititems(visit)
    except OSError as e:
        raise UserError(f'cannot read weights file {path!r}: {e}') from None
    return shapes


def _snake_case(name):
    """Keras's `to_snake_case`: `InvertedResidual` -> `inverted_residual`."""
    name = re.sub(r'(.)([A-Z][a-z]+)', r'\1_\2', re.sub(r'\W+', '', name))
    return re.sub(r'([a-z])([A-Z])', r'\1_\2', name).lower()


def _saved_names(model):
    """{name in a weights file: layer name} for the model's top layers
    (Keras names them by class, numbered in order: `dense`, `dense_1`)."""
    names, seen = {}, {}
    for layer in model.layers:
        stem = _snake_case(layer.__class__.__name__)
        count = seen.get(stem, -1) + 1
        seen[stem] = count
        names[stem if count == 0 else f'{stem}_{count}'] = layer.name
    return names


def _layer_key(array_path):
    return array_path.split('/')[1]


def mismatch(model, path):
    """None when the weights file `path` fits `model` array by array;
    otherwise one line naming the first layer (in model order) that
    differs."""
    with tempfile.TemporaryDirectory() as tmp:
        expected_path = os.path.join(tmp, 'model' + WEIGHTS_SUFFIX)
        model.save_weights(expected_path)
        expected = stored_shapes(expected_path)
    found = stored_shapes(path)
    names = _saved_names(model)
    order = {key: i for i, key in enumerate(names)}
    keys = sorted(set(map(_layer_key, expected)) | set(map(_layer_key,
                                                            found)),
                  key=lambda k: (order.get(k, len(order)), k))
    for key in keys:
        want = {p: s for p, s in expected.items() if _layer_key(p) == key}
        have = {p: s for p, s in found.items() if _layer_key(p) == key}
        if want == have:
            continue
        layer = f'layer {names[key]!r}' if key in names else \
            f'stored layer {key!r}'
        for array in sorted(set(want) | set(have)):
            if want.get(array) != have.get(array):
                part = array.split('/', 2)[2]
                return (f'{layer}: {part} is {_shape(have.get(array))} in '
                        f'the file, {_shape(want.get(array))} in the model')
    return None


def _shape(shape):
    return 'missing' if shape is None else f'shape {shape}'


def load_weights(model, path):
    """Loads the weights file `path` into `model` after `mismatch` found
    nothing; raises UserError naming the file and the layer otherwise."""
    problem = mismatch(model, path)
    if problem:
        raise UserError(f'weights {path} do not fit the architecture: '
                        f'{problem}')
    model.load_weights(path)
