"""`hournas_fashion_mnist`: Fashion-MNIST from its IDX files, offline.

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 60,000 training and 10,000
test images of clothing, 28x28 grey, 10 classes of 6,000 + 1,000 images.
Nothing is ever downloaded; `builder(data_dir, folder)` returns, in order:

1. tfds's own `fashion_mnist` when it is already prepared in the data dir
   (`data_dir`, or tfds's default `~/tensorflow_datasets` when None);
2. our builder `hournas_fashion_mnist` when it is prepared in the data dir
   (`data_dir`, or `$HOURNAS_TF_DATA` / `~/.cache/hournas_tf/datasets`);
3. our builder, prepared there now (about a minute, once) from the four
   original gzipped IDX files in the first of: `folder` (the `PATH` of
   `--dataset=fashion_mnist:PATH`), `$HOURNAS_FASHION_MNIST_DIR`, and
   `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`).

Otherwise a one-line `UserError` names both ways to get the files. The IDX
files are read with numpy and checked (magic number, dimensions, counts,
label range) before anything is written; a malformed file is a one-line
`UserError` naming it.

Our builder has tfds `fashion_mnist`'s features (`image` uint8 [28, 28, 1],
`label` with the same class names) and splits (`train` 60,000, `test`
10,000), so the pipelines treat both sources alike.
"""

import gzip
import os

import numpy as np
import tensorflow_datasets as tfds

from hournas_tf.common.errors import UserError
from hournas_tf.data import digits

NAME = 'hournas_fashion_mnist'
TFDS_NAME = 'fashion_mnist'
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)
CLASS_NAMES = (
    'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
    'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
)
SPLIT_SIZES = {'train': 60000, 'test': 10000}
# split: (images file, labels file), gzipped; the original names.
FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
DIR_ENV = 'HOURNAS_FASHION_MNIST_DIR'
DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'
APT_COMMAND = 'sudo apt-get install dataset-fashion-mnist'
# IDX magic numbers: 0x0000 then the type (0x08, unsigned byte) and the
# number of dimensions.
_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801


def _open(path):
    """The file's bytes; gzip is recognized by its magic, not its name."""
    with open(path, 'rb') as f:
        raw = f.read()
    if raw[:2] == b'\x1f\x8b':
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise UserError(f'malformed Fashion-MNIST file {path}: broken '
                            f'gzip data ({e})') from None
    return raw


def read_idx(path, magic, shape):
    """The uint8 array of the IDX file `path`, checked against `magic` and
    `shape` (the expected dimensions); UserError if it does not match."""
    raw = _open(path)
    what = f'malformed Fashion-MNIST file {path}'
    ndim = magic & 0xff
    header = 4 * (1 + ndim)
    if len(raw) < header:
        raise UserError(f'{what}: {len(raw)} bytes, shorter than its '
                        f'{header}-byte header')
    found = int.from_bytes(raw[:4], 'big')
    if found != magic:
        raise UserError(f'{what}: magic number 0x{found:08x}, expected '
                        f'0x{magic:08x}')
    dims = tuple(int.from_bytes(raw[4 * (i + 1):4 * (i + 2)], 'big')
                 for i in range(ndim))
    if dims != tuple(shape):
        raise UserError(f'{what}: dimensions {dims}, expected {tuple(shape)}')
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise UserError(f'{what}: {len(raw) - header} data bytes, expected '
                        f'{size} for dimensions {tuple(shape)}')
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def find_files(folder):
    """{split: (images path, labels path)} in `folder`; a file may also be
    stored without its `.gz`. None if any of the four is missing."""
    found = {}
    for split, names in FILES.items():
        paths = []
        for name in names:
            candidates = [os.path.join(folder, name),
                          os.path.join(folder, name.removesuffix('.gz'))]
            path = next((p for p in candidates if os.path.isfile(p)), None)
            if path is None:
                return None
            paths.append(path)
        found[split] = tuple(paths)
    return found


def load_split(folder, split):
    """(images uint8 [N, 28, 28, 1], labels int64 [N]) of a split, read and
    checked from the IDX files in `folder`."""
    files = find_files(folder)
    if files is None:
        raise _missing(folder, 'given')
    images_path, labels_path = files[split]
    count = SPLIT_SIZES[split]
    images = read_idx(images_path, _IMAGES_MAGIC, (count,) + IMAGE_SHAPE)
    labels = read_idx(labels_path, _LABELS_MAGIC, (count,))
    if labels.max() >= NUM_CLASSES:
        raise UserError(f'malformed Fashion-MNIST file {labels_path}: label '
                        f'{int(labels.max())}, expected 0..{NUM_CLASSES - 1}')
    return images[..., None], labels.astype(np.int64)


def _ways():
    return (f'install the files with `{APT_COMMAND}` (into {DEBIAN_DIR}), or '
            'put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, '
            't10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in a '
            f'folder and pass --dataset=fashion_mnist:FOLDER or set {DIR_ENV}'
            '=FOLDER')


def _missing(folder, how):
    return UserError(f'Fashion-MNIST IDX files not found in {folder} '
                     f'({how}); {_ways()}')


def source_folder(folder=None):
    """The folder to read the IDX files from: `folder`, else `$HOURNAS_
    FASHION_MNIST_DIR`, else Debian's; UserError if it lacks a file."""
    if folder:
        where, how = folder, 'from --dataset=fashion_mnist:FOLDER'
    elif os.environ.get(DIR_ENV):
        where, how = os.environ[DIR_ENV], f'from ${DIR_ENV}'
    else:
        where, how = DEBIAN_DIR, 'Debian\'s dataset-fashion-mnist'
    where = os.path.abspath(os.path.expanduser(where))
    if find_files(where) is None:
        raise _missing(where, how)
    return where


class HournasFashionMnist(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST from the original IDX files (offline, 10 classes)."""

    VERSION = tfds.core.Version('1.0.0')
    RELEASE_NOTES = {'1.0.0': 'Initial release.'}
    # Set by `builder` before preparing: the folder of the IDX files.
    idx_folder = None
    code_path = digits.code_path_property(__file__)

    def _info(self):
        return self.dataset_info_from_configs(
            description=__doc__.splitlines()[0],
            features=tfds.features.FeaturesDict({
                # Stored raw (784 bytes): preparing is 10x faster than
                # PNG, and it reads as the same uint8 tensor.
                'image': tfds.features.Tensor(shape=IMAGE_SHAPE + (1,),
                                              dtype=np.uint8),
                'label': tfds.features.ClassLabel(names=list(CLASS_NAMES)),
            }),
            supervised_keys=('image', 'label'),
            homepage='https://github.com/zalandoresearch/fashion-mnist',
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        # Read and check all four files before writing anything.
        arrays = {split: load_split(self.idx_folder, split)
                  for split in FILES}
        return {split: self._generate_examples(*arrays[split])
                for split in FILES}

    def _generate_examples(self, images, labels):
        for index in range(len(labels)):
            yield index, {'image': images[index],
                          'label': int(labels[index])}


def _tfds_builder(data_dir):
    """tfds's own `fashion_mnist` if it is prepared in `data_dir` (None:
    tfds's default data dir), else None."""
    root = data_dir or tfds.core.constants.DATA_DIR
    if not os.path.isdir(os.path.join(os.path.expanduser(root), TFDS_NAME)):
        return None
    try:
        result = tfds.builder(TFDS_NAME, data_dir=data_dir)
    except Exception:  # tfds raises many types for a broken data dir.
        return None
    return result if result.is_prepared() else None


def builder(data_dir=None, folder=None):
    """A prepared Fashion-MNIST tfds builder (see the module docstring)."""
    import fcntl

    if data_dir is not None:
        data_dir = os.path.abspath(os.path.expanduser(data_dir))
    tfds_own = _tfds_builder(data_dir)
    if tfds_own is not None:
        return tfds_own
    data_dir = data_dir or digits.default_data_dir()
    if os.path.isdir(data_dir):
        result = HournasFashionMnist(data_dir=data_dir)
        if result.is_prepared():
            return result
    idx_folder = source_folder(folder)
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, f'.{NAME}.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = HournasFashionMnist(data_dir=data_dir)
        if not result.is_prepared():
            result.idx_folder = idx_folder
            result.download_and_prepare(
                download_config=tfds.download.DownloadConfig(
                    try_download_gcs=False
                )
            )
            result = HournasFashionMnist(data_dir=data_dir)
    return result
