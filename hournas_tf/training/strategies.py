"""tf.distribute strategies by name (TensorFlow is imported lazily)."""

from hournas_tf.errors import UserError
from hournas_tf.errors import choices

STRATEGIES = ('default', 'mirrored')


def check_strategy(name):
    """Raises UserError unless `name` is one of STRATEGIES."""
    if name not in STRATEGIES:
        raise UserError(f'unknown strategy {name!r}; valid: '
                        f'{choices(STRATEGIES)}')


def make_strategy(name):
    """The strategy called `name`: `default` (one device) or `mirrored`."""
    check_strategy(name)
    import tensorflow as tf

    if name == 'mirrored':
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
