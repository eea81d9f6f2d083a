"""`hournas_digits`: scikit-learn's bundled handwritten digits as a tfds set.

The embedded offline default. `sklearn.datasets.load_digits()` reads a file
shipped inside the scikit-learn wheel (no download): 1,797 grey 8x8 images
of the digits 0-9 with values 0..16. The builder stores them as uint8
[8, 8, 1] images scaled to 0..255 (`round(v * 255 / 16)`); preprocessing
replicates the channel and scales them up to the model's image size.

Splits: a deterministic, class-stratified held-out `test` split of 20% of
each class (numpy `RandomState(TEST_SPLIT_SEED)`, independent of any user
seed) and `train` with the rest: 1,438 train and 359 test images. Each
example carries `index`, its row in `load_digits()`.

`prepare(data_dir)` builds the set on first use (a second or two) and
reuses it afterwards; concurrent processes are serialized by a lock file.
"""

import os

import numpy as np
import tensorflow_datasets as tfds

NAME = 'hournas_digits'
NUM_CLASSES = 10
TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 20210301
DEFAULT_DIR_ENV = 'HOURNAS_TF_DATA'


def default_data_dir():
    """`$HOURNAS_TF_DATA`, else `~/.cache/hournas_tf/datasets`."""
    path = os.environ.get(DEFAULT_DIR_ENV)
    if not path:
        path = os.path.join('~', '.cache', 'hournas_tf', 'datasets')
    return os.path.expanduser(path)


def load_arrays():
    """Returns (images uint8 [N, 8, 8, 1], labels int64 [N], is_test bool)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    rng = np.random.RandomState(TEST_SPLIT_SEED)
    is_test = np.zeros(len(labels), bool)
    for label in range(NUM_CLASSES):
        rows = np.flatnonzero(labels == label)
        rows = rows[rng.permutation(len(rows))]
        is_test[rows[:int(round(TEST_FRACTION * len(rows)))]] = True
    return images[..., None], labels, is_test


def code_path_property(path):
    """A builder's `code_path` class property: the file `path`. tfds
    4.9.10 looks it up through the `importlib_resources` backport, which it
    only requires before Python 3.9; our builders give it directly."""

    def code_path(cls):
        from etils import epath

        return epath.Path(path)

    return tfds.core.utils.classproperty(classmethod(code_path))


class HournasDigits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's 8x8 handwritten digits (offline, 10 classes)."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}
    code_path = code_path_property(__file__)

    def _info(self):
        return self.dataset_info_from_configs(
            description=__doc__.splitlines()[0],
            features=tfds.features.FeaturesDict({
                'image': tfds.features.Image(shape=(8, 8, 1)),
                'label': tfds.features.ClassLabel(
                    names=[str(i) for i in range(NUM_CLASSES)]
                ),
                'index': tfds.features.Scalar(dtype=np.int32),
            }),
            supervised_keys=('image', 'label'),
            homepage='https://scikit-learn.org/stable/modules/generated/'
            'sklearn.datasets.load_digits.html',
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return {
            'train': self._generate_examples(test=False),
            'test': self._generate_examples(test=True),
        }

    def _generate_examples(self, test):
        images, labels, is_test = load_arrays()
        for index in np.flatnonzero(is_test == test):
            yield int(index), {
                'image': images[index],
                'label': int(labels[index]),
                'index': int(index),
            }


def builder(data_dir=None):
    """The `HournasDigits` builder in `data_dir`, prepared if it was not."""
    import fcntl

    data_dir = os.path.expanduser(data_dir or default_data_dir())
    os.makedirs(data_dir, exist_ok=True)
    result = HournasDigits(data_dir=data_dir)
    if result.is_prepared():
        return result
    with open(os.path.join(data_dir, f'.{NAME}.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = HournasDigits(data_dir=data_dir)
        if not result.is_prepared():
            result.download_and_prepare(
                download_config=tfds.download.DownloadConfig(
                    try_download_gcs=False
                )
            )
            result = HournasDigits(data_dir=data_dir)
    return result
