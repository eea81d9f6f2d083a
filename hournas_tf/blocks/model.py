"""Builds the plain functional Keras model of an architecture, and loads
a saved one."""

import os
import zipfile

import keras

from hournas_tf.blocks import layers as hl
from hournas_tf.common.errors import UserError
from hournas_tf.normalization import MEAN_RGB
from hournas_tf.normalization import PREPROCESSING_LAYER
from hournas_tf.normalization import STDDEV_RGB
from hournas_tf.spaces.architecture import Architecture


def build_model(arch, name=None, dropout=None, drop_path_rate=0.0,
                sync_batch_norm=False, include_preprocessing=False):
    """Returns a functional `keras.Model` for `arch`.

    Args:
        arch: an `Architecture` or its compact string.
        name: model name (default: the architecture's name or space).
        dropout: dropout rate before the classifier (default: the space's).
        drop_path_rate: stochastic depth of the last searchable layer; layer
            i of n drops its residual branch with `drop_path_rate * i / n`
            (EfficientNet's schedule), only in training.
        sync_batch_norm: batch statistics over all replicas of the
            `tf.distribute` strategy (every batch norm).
        include_preprocessing: the model takes RGB values in [0, 255], as
            keras.applications models do, and normalizes them itself (a
            `keras.layers.Normalization` named 'preprocessing', no
            weights: the same weights file loads either way).

    Dropout and stochastic depth create no weights: the same weights file
    loads into the model for any rates.

    The model takes float32 images of shape (image_size, image_size, 3),
    normalized by `hournas_tf.data.normalize` (or in [0, 255] with
    `include_preprocessing`), and returns logits.
    """
    if isinstance(arch, str):
        arch = Architecture.from_string(arch)
    space = arch.search_space()
    inputs = keras.Input((space.image_size, space.image_size, 3),
                         name='image')
    x = inputs
    if include_preprocessing:
        x = preprocessing_layer()(x)
    x = hl.make_stem(space, bn_synchronized=sync_batch_norm)(x)
    num_layers = len(arch.ops)
    for i, op in enumerate(arch.ops):
        rate = drop_path_rate * i / num_layers
        x = hl.make_op(space, i, op, drop_path_rate=rate,
                       bn_synchronized=sync_batch_norm)(x)
    x = hl.make_head(space, bn_synchronized=sync_batch_norm)(x)
    outputs = hl.make_classifier(space, x, dropout=dropout)
    return keras.Model(inputs, outputs, name=name or arch.name or arch.space)


def preprocessing_layer(layers=keras.layers):
    """`Normalization` by `MEAN_RGB` and `STDDEV_RGB` (of `layers`:
    Keras 3's, or tf_keras' for an export twin)."""
    return layers.Normalization(
        mean=list(MEAN_RGB), variance=[s * s for s in STDDEV_RGB],
        name=PREPROCESSING_LAYER)


def takes_raw_images(model):
    """True for a model built with `include_preprocessing`: it takes RGB
    values in [0, 255]."""
    return any(isinstance(layer, keras.layers.Normalization)
               and layer.name == PREPROCESSING_LAYER
               for layer in model.layers)


def load_model(path, compile=True):
    """The `keras.Model` of a `.keras` file of these blocks (train's
    model.keras and checkpoints, a saved `build_model`):
    `keras.saving.load_model` with the hournas_tf layers registered.
    UserError (one line) for a missing file, a file that is no Keras 3
    `.keras` zip, or one Keras cannot load."""
    if not os.path.isfile(path):
        raise UserError(f'model file {path} does not exist'
                        if not os.path.exists(path)
                        else f'model file {path} is not a file')
    if not path.endswith('.keras') or not zipfile.is_zipfile(path):
        raise UserError(f'model file {path} is not a Keras 3 model file '
                        '(.keras)')
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as e:  # noqa: BLE001 (Keras raises many kinds)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f'model file {path} cannot be loaded: '
                        f'{first[:200]}') from None
