"""Builds the plain functional Keras model of an architecture."""

import keras

from hournas_tf.blocks import layers as hl
from hournas_tf.spaces.architecture import Architecture


def build_model(arch, name=None):
    """Returns a functional `keras.Model` for `arch`.

    Args:
        arch: an `Architecture` or its compact string.
        name: model name (default: the architecture's name or space).

    The model takes float32 images of shape (image_size, image_size, 3),
    normalized by `hournas_tf.data.normalize`, and returns logits.
    """
    if isinstance(arch, str):
        arch = Architecture.from_string(arch)
    space = arch.search_space()
    inputs = keras.Input((space.image_size, space.image_size, 3),
                         name='image')
    x = hl.make_stem(space)(inputs)
    for i, op in enumerate(arch.ops):
        x = hl.make_op(space, i, op)(x)
    x = hl.make_head(space)(x)
    outputs = hl.make_classifier(space, x)
    return keras.Model(inputs, outputs, name=name or arch.name or arch.space)
