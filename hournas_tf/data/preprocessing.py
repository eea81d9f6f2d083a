"""Image preprocessing: one normalization and the three augmentation styles.

Every image that reaches a model (search, retraining, evaluation, export)
goes through `normalize`: RGB values in [0, 255] become
`(x - MEAN_RGB) / STDDEV_RGB` with the usual ImageNet statistics, in float32.

Styles (`STYLES`), each with a train and an eval transform that take a
decoded uint8 image [H, W, C] (C is 1 or 3) and return float32 [S, S, 3]
normalized:

- `imagenet`: train = random resized crop (area 8%-100%, aspect 3/4-4/3)
  resized to S, random horizontal flip; eval = central square crop of 87.5%
  of the shorter side resized to S (224 from 256 for ImageNet).
- `cifar`: the image is resized to S x S if needed; train = zero pad S/8,
  random S x S crop, random horizontal flip; eval = the resized image.
  Also fashion_mnist's 28x28 at any size (clothes may be mirrored).
- `digits`: grey 8x8 digits scaled up to S x S (bilinear); train = zero pad
  S/8 and random crop (no flip: a mirrored digit is another symbol); eval =
  the scaled image.

Grey images are replicated to 3 channels in all styles.

Cutout (DeVries & Taylor 2017, the paper's CIFAR-10 retraining): an
optional last training step that zeroes a square of the normalized image
(zero is the mean colour) at a uniformly random centre, clipped at the
borders. Only retraining uses it (`DataConfig.cutout`).
"""

import numpy as np

from hournas_tf.common.errors import UserError
from hournas_tf.common.errors import choices
from hournas_tf.normalization import MEAN_RGB
from hournas_tf.normalization import STDDEV_RGB

STYLES = ('imagenet', 'cifar', 'digits')

# ImageNet eval crops this fraction of the shorter side (224 / 256).
CENTER_CROP_FRACTION = 0.875

# Images at most this large (target size) use CIFAR-style augmentation.
SMALL_IMAGE_SIZE = 64


def normalized_range():
    """Returns per-channel (low, high) float32 arrays `normalize` can output."""
    mean = np.asarray(MEAN_RGB, np.float32)
    std = np.asarray(STDDEV_RGB, np.float32)
    return (0.0 - mean) / std, (255.0 - mean) / std


def normalize(image):
    """Maps RGB values in [0, 255] (any dtype) to normalized float32."""
    import tensorflow as tf

    image = tf.cast(image, tf.float32)
    mean = tf.constant(MEAN_RGB, tf.float32)
    std = tf.constant(STDDEV_RGB, tf.float32)
    return (image - mean) / std


def to_rgb(image):
    """Replicates a 1-channel image to 3 channels; 3 channels pass through."""
    import tensorflow as tf

    if image.shape[-1] == 3:
        return image
    if image.shape[-1] == 1:
        return tf.image.grayscale_to_rgb(image)
    return tf.cond(
        tf.equal(tf.shape(image)[-1], 1),
        lambda: tf.image.grayscale_to_rgb(image),
        lambda: image[..., :3],
    )


def style_for(kind, image_size):
    """The augmentation style for a dataset kind and target image size."""
    if kind == 'digits':
        return 'digits'
    if kind == 'imagenet2012':
        return 'imagenet'
    if kind in ('cifar10', 'fashion_mnist') or image_size <= SMALL_IMAGE_SIZE:
        return 'cifar'
    return 'imagenet'


def _check(style, size):
    if style not in STYLES:
        raise UserError(
            f'unknown preprocessing style {style!r}; valid: {choices(STYLES)}'
        )
    if int(size) < 1:
        raise UserError(f'image size must be positive, got {size}')


def _resize(image, size):
    """float32 [H, W, 3] resized to [size, size, 3] unless already so."""
    import tensorflow as tf

    if image.shape[0] == size and image.shape[1] == size:
        return image
    image = tf.image.resize(image, [size, size], method='bilinear')
    return tf.ensure_shape(image, [size, size, 3])


def _pad_crop(image, size, flip):
    import tensorflow as tf

    pad = max(1, size // 8)
    image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    image = tf.image.random_crop(image, [size, size, 3])
    if flip:
        image = tf.image.random_flip_left_right(image)
    return image


def _random_resized_crop(image, size):
    import tensorflow as tf

    shape = tf.shape(image)
    begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.zeros([1, 0, 4], tf.float32),
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(image, [size, size], method='bilinear')
    image = tf.ensure_shape(image, [size, size, 3])
    return tf.image.random_flip_left_right(image)


def _center_crop(image, size):
    import tensorflow as tf

    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    side = tf.cast(
        CENTER_CROP_FRACTION * tf.cast(tf.minimum(height, width), tf.float32),
        tf.int32,
    )
    side = tf.maximum(side, 1)
    top = (height - side) // 2
    left = (width - side) // 2
    image = image[top:top + side, left:left + side]
    image = tf.image.resize(image, [size, size], method='bilinear')
    return tf.ensure_shape(image, [size, size, 3])


def cutout(image, length):
    """Zeroes a `length` x `length` square of `image` [H, W, C] centred at a
    uniformly random pixel; the square is clipped at the borders."""
    import tensorflow as tf

    height, width = tf.shape(image)[0], tf.shape(image)[1]
    top = tf.random.uniform([], 0, height, tf.int32) - length // 2
    left = tf.random.uniform([], 0, width, tf.int32) - length // 2
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = ((rows >= top) & (rows < top + length)
              & (cols >= left) & (cols < left + length))
    return image * tf.cast(~inside, image.dtype)[..., None]


def preprocess_for_train(image, style, size, cutout_length=0):
    """Augments a decoded image for training; returns normalized float32.

    `cutout_length` > 0 adds cutout with that square side (after
    normalization).
    """
    import tensorflow as tf

    _check(style, size)
    image = tf.cast(to_rgb(image), tf.float32)
    if style == 'imagenet':
        image = _random_resized_crop(image, size)
    else:
        image = _pad_crop(_resize(image, size), size, flip=style == 'cifar')
    image = normalize(image)
    if cutout_length:
        image = cutout(image, int(cutout_length))
    return image


def preprocess_for_eval(image, style, size):
    """Deterministic eval transform of a decoded image; normalized float32."""
    import tensorflow as tf

    _check(style, size)
    image = tf.cast(to_rgb(image), tf.float32)
    if style == 'imagenet':
        image = _center_crop(image, size)
    else:
        image = _resize(image, size)
    return normalize(image)
