"""Search spaces as data (pure Python, no TensorFlow import).

`ops` (op names), `space` (the dataclasses), `macros` (the registered
spaces and `get_space`), `vital` (vital layers from the topology),
`architecture` (one op per layer, JSON and compact string) and
`references` (published architectures).
"""

from hournas_tf.spaces.architecture import Architecture
from hournas_tf.spaces.architecture import load_architecture
from hournas_tf.spaces.macros import SPACE_NAMES
from hournas_tf.spaces.macros import get_space
from hournas_tf.spaces.ops import OpSpec
from hournas_tf.spaces.ops import parse_op
from hournas_tf.spaces.references import REFERENCE_NAMES
from hournas_tf.spaces.references import get_reference
from hournas_tf.spaces.space import CIFAR_MAX_SIZE
from hournas_tf.spaces.space import LayerSpec
from hournas_tf.spaces.space import SearchSpace

__all__ = [
    'CIFAR_MAX_SIZE',
    'REFERENCE_NAMES',
    'SPACE_NAMES',
    'Architecture',
    'LayerSpec',
    'OpSpec',
    'SearchSpace',
    'get_reference',
    'get_space',
    'load_architecture',
    'parse_op',
]
