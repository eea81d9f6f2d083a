"""What to train, resolved before TensorFlow loads: the architecture from a
name, a compact string or a file, fitted to the dataset's image size and
class count; the dataset's split sizes where they are known.
"""

import dataclasses
import os

from hournas_tf import data
from hournas_tf.common.errors import UserError
from hournas_tf.spaces import architecture as arch_lib
from hournas_tf.spaces import references


@dataclasses.dataclass(frozen=True)
class DatasetShape:
    """A dataset's class count, the image size to train at, split sizes."""

    num_classes: int
    image_size: int
    num_train: int
    num_eval: int


def resolve_architecture(arch=None, arch_file=None):
    """The `Architecture` of exactly one of `arch` (a reference name or a
    compact string) and `arch_file` (an architecture JSON file)."""
    if bool(arch) == bool(arch_file):
        raise UserError('give exactly one of --arch (a reference name or '
                        'an architecture string) and --arch_file (an '
                        'architecture JSON file)')
    if arch_file:
        if os.path.isdir(arch_file):
            raise UserError(f'arch_file {arch_file!r} is a folder; give its '
                            'arch.json')
        try:
            return arch_lib.load_architecture(arch_file)
        except UserError as e:
            message = str(e)
            if arch_file not in message:
                message = f'{arch_file}: {message}'
            raise UserError(message) from None
    if ':' in arch:
        return arch_lib.Architecture.from_string(arch)
    return references.get_reference(arch)


def dataset_shape(dataset, data_dir=None, image_size=None, arch=None,
                  validation_fraction=0.0):
    """The `DatasetShape` of `dataset` without loading TensorFlow.

    `image_size` None: the dataset's standard size (digits, fashion_mnist
    and cifar10 32, imagenet2012 224); for image folders the architecture's
    size. Image folders are listed to count their classes and images.
    `validation_fraction` > 0: the training split less its held-out part,
    which is the eval split (`hournas_tf.data.DataConfig`).
    """
    kind, _ = data.parse_dataset_name(dataset)
    if image_size is None:
        image_size = (arch.image_size if kind == 'image_folder' and arch
                      else data.DEFAULT_IMAGE_SIZE[kind])
    if kind in data.KNOWN_DATASETS:
        num_classes, num_train, num_eval = data.KNOWN_DATASETS[kind]
        if validation_fraction:
            data.check_config(data.DataConfig(
                dataset=dataset, validation_fraction=validation_fraction))
            num_eval = int(round(validation_fraction * num_train))
            num_train -= num_eval
    else:
        info = data.dataset_info(data.DataConfig(
            dataset=dataset, data_dir=data_dir, image_size=image_size,
            validation_fraction=validation_fraction))
        num_classes, num_train, num_eval = (
            info.num_classes, info.num_train, info.num_eval)
    return DatasetShape(num_classes, int(image_size), num_train, num_eval)


def fit_architecture(arch, image_size, num_classes):
    """(architecture, note): `arch` rebuilt with the same ops for the
    dataset's image size and class count; the note says what changed (None
    when nothing did). Raises UserError when the ops do not fit."""
    if (arch.image_size, arch.num_classes) == (image_size, num_classes):
        return arch, None
    try:
        fitted = dataclasses.replace(arch, image_size=image_size,
                                     num_classes=num_classes)
    except UserError as e:
        raise UserError(f'architecture {arch.name or arch.space} does not '
                        f'fit {image_size}x{image_size} images and '
                        f'{num_classes} classes: {e}') from None
    note = (f'architecture {arch.name or arch.space} rebuilt for the '
            f'dataset with the same ops: {arch.image_size}x'
            f'{arch.image_size} -> {image_size}x{image_size} pixels, '
            f'{arch.num_classes} -> {num_classes} classes')
    return fitted, note
