"""hournas_tf: HourNAS neural architecture search for TensorFlow 2 / Keras 3.

The search spaces, architectures, resource counting and vital-block analysis
are pure Python; `build_model` (and everything else that needs Keras) imports
TensorFlow lazily, so `import hournas_tf` stays cheap.
"""

import os

# Keras 3 picks its backend at import time: make TensorFlow the default
# before any module of ours imports keras.
os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

__version__ = '0.1.0'

from hournas_tf.spaces import REFERENCE_NAMES  # noqa: E402
from hournas_tf.spaces import SPACE_NAMES  # noqa: E402
from hournas_tf.spaces import Architecture  # noqa: E402
from hournas_tf.spaces import get_reference  # noqa: E402
from hournas_tf.spaces import get_space  # noqa: E402
from hournas_tf.spaces import load_architecture  # noqa: E402


def build_model(arch, **kwargs):
    """Returns a plain functional `keras.Model` for an `Architecture`.

    See `hournas_tf.blocks.model.build_model` for the arguments.
    """
    from hournas_tf.blocks import model

    return model.build_model(arch, **kwargs)


def load_model(path, compile=True):
    """Loads a `.keras` file of hournas_tf blocks (train's model.keras or
    checkpoints/*.keras) as a `keras.Model`, the custom layers registered.

    See `hournas_tf.blocks.model.load_model`.
    """
    from hournas_tf.blocks import model

    return model.load_model(path, compile=compile)


__all__ = [
    'Architecture',
    'REFERENCE_NAMES',
    'SPACE_NAMES',
    'build_model',
    'get_reference',
    'get_space',
    'load_architecture',
    'load_model',
]
