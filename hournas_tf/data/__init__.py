"""Input pipelines: tfds datasets, the search/retrain splits, preprocessing.

`load_search_data(DataConfig(...))` gives the paper's 80/20 split of the
training data for weights and architecture parameters;
`load_train_data(...)` all of train plus the eval split. See
`hournas_tf.data.pipelines` for the details and `docs/data.md` for users.
"""

from hournas_tf.data.pipelines import CACHE_MODES
from hournas_tf.data.pipelines import DATASET_NAMES
from hournas_tf.data.pipelines import DEFAULT_IMAGE_SIZE
from hournas_tf.data.pipelines import KINDS
from hournas_tf.data.pipelines import KNOWN_DATASETS
from hournas_tf.data.pipelines import WEIGHT_FRACTION
from hournas_tf.data.pipelines import DataConfig
from hournas_tf.data.pipelines import DatasetInfo
from hournas_tf.data.pipelines import SearchData
from hournas_tf.data.pipelines import TrainData
from hournas_tf.data.pipelines import check_config
from hournas_tf.data.pipelines import dataset_info
from hournas_tf.data.pipelines import load_search_data
from hournas_tf.data.pipelines import load_train_data
from hournas_tf.data.pipelines import parse_dataset_name
from hournas_tf.data.pipelines import search_split_examples
from hournas_tf.data.pipelines import split_ranges
from hournas_tf.data.preprocessing import MEAN_RGB
from hournas_tf.data.preprocessing import STDDEV_RGB
from hournas_tf.data.preprocessing import normalize
from hournas_tf.data.preprocessing import preprocess_for_eval
from hournas_tf.data.preprocessing import preprocess_for_train

__all__ = [
    'CACHE_MODES',
    'DATASET_NAMES',
    'DEFAULT_IMAGE_SIZE',
    'KINDS',
    'KNOWN_DATASETS',
    'MEAN_RGB',
    'STDDEV_RGB',
    'DataConfig',
    'DatasetInfo',
    'SearchData',
    'TrainData',
    'WEIGHT_FRACTION',
    'check_config',
    'dataset_info',
    'load_search_data',
    'load_train_data',
    'normalize',
    'parse_dataset_name',
    'preprocess_for_eval',
    'preprocess_for_train',
    'search_split_examples',
    'split_ranges',
]
