"""Dataset loading, the paper's search/retrain splits and tf.data pipelines.

One API for all dataset kinds (`parse_dataset_name`): `digits` (the
embedded offline default, `hournas_tf.data.digits`), `fashion_mnist` or
`fashion_mnist:PATH` (offline from the IDX files,
`hournas_tf.data.fashion_mnist`), `cifar10` and `imagenet2012` (prepared
tensorflow-datasets data dirs) and `image_folder:PATH`
(`hournas_tf.data.image_folder`).

Splits. The search (`load_search_data`) trains weights on
`weight_fraction` (80%) of the training split and architecture parameters
on the rest; retraining (`load_train_data`) uses all of the training split
and evaluates on the eval split (`test` for digits, fashion_mnist and
cifar10, `validation` for imagenet2012, `val`/`validation`/`test` or a
fixed 20% holdout for image folders).

Validation hold-out. `validation_fraction` > 0 holds out the last
`round(validation_fraction * N)` of the N training examples in their stored
order (fixed: the seed never changes it; tfds shuffles examples when it
prepares a set, so it is a random sample) and makes it the eval split,
named `train[A:N]`; training, and the search's 80/20 split, then see only
the first A examples (`_HeldOut`). The test split is then never read.

Training subset. `train_examples` N keeps only the first N examples of
the training split (after any hold-out) in their stored order (`_Subset`):
a cheaper retraining; the eval split is unchanged.

The 80/20 split is a window over the training
examples in their stored order: the architecture split is the
`num_examples - round(weight_fraction * num_examples)` examples starting
at an offset drawn from `numpy.random.RandomState(seed)` (wrapping around
the end), the weights split is everything else (`split_ranges`). It is
exact, disjoint, deterministic for a seed and different for another seed.
Because tfds shuffles examples when it prepares a set, and image folders
are listed in a hashed order, a window is a random sample; tfds reads only
the shards it needs (`train[a:b]+train[c:d]` split slicing).

Pipelines. Examples are decoded, cached in memory when `cache` says so
(`auto`: when the decoded split is estimated below `CACHE_LIMIT_BYTES`; the
cache is filled when the pipeline is made, see `_filled_cache`), shuffled
(training and architecture splits), preprocessed in a parallel map
(`hournas_tf.data.preprocessing`; the weights and retraining splits use
training augmentation, the architecture and eval splits the deterministic
eval transform, so architecture gradients see the images without
augmentation noise), batched and prefetched with AUTOTUNE (tf.data's
autotuning is off for a split cached in memory, see `_pipeline`). Elements
are (images float32 [B, S, S, 3] normalized by `normalize`, labels int32
[B]). The search's weights and arch datasets repeat before batching: they
are infinite streams of full batches, reshuffled every pass, so a split
smaller than one batch still works (the search counts its epochs in steps,
`SearchData.weight_steps` = ceil(examples / batch)). The retraining
datasets are finite (one pass per iteration, reshuffled each time); the
train dataset drops the last partial batch so every batch has the same
shape, the eval dataset keeps it.

Distribution. `batch_size` is the global batch: datasets are batched with
it, and `strategy.experimental_distribute_dataset` (which `model.fit` calls)
splits each batch into `batch_size / num_replicas_in_sync` per replica. A
batch size that does not divide evenly over the replicas is a `UserError`.
"""

import dataclasses
import os

import numpy as np

from hournas_tf.common.errors import UserError
from hournas_tf.common.errors import choices
from hournas_tf.data import preprocessing

KINDS = ('digits', 'fashion_mnist', 'cifar10', 'imagenet2012',
         'image_folder')
DATASET_NAMES = ('digits', 'fashion_mnist[:PATH]', 'cifar10', 'imagenet2012',
                 'image_folder:PATH')
DEFAULT_IMAGE_SIZE = {
    'digits': 32, 'fashion_mnist': 32, 'cifar10': 32, 'imagenet2012': 224,
    'image_folder': 224,
}
# (classes, training examples, eval examples) of the tfds sets; digits is
# the fixed 80/20 split of scikit-learn's 1,797 images (docs/data.md).
KNOWN_DATASETS = {
    'digits': (10, 1438, 359),
    'fashion_mnist': (10, 60000, 10000),
    'cifar10': (10, 50000, 10000),
    'imagenet2012': (1000, 1281167, 50000),
}
# The search's share of the training split that trains the weights.
WEIGHT_FRACTION = 0.8
EVAL_SPLIT = {'digits': 'test', 'fashion_mnist': 'test', 'cifar10': 'test',
              'imagenet2012': 'validation'}
CACHE_MODES = ('auto', 'memory', 'none')
CACHE_LIMIT_BYTES = 2 * 1024 ** 3
# Decoded size over file size, to estimate image folders and tfds sets whose
# image shape is not fixed.
_DECODED_PER_FILE_BYTE = 10
_IMAGENET_TARS = ('ILSVRC2012_img_train.tar', 'ILSVRC2012_img_val.tar')


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What to load and how; see the module docstring.

    `dataset`: 'digits' | 'fashion_mnist' | 'fashion_mnist:PATH' |
    'cifar10' | 'imagenet2012' | 'image_folder:PATH' (fashion_mnist's PATH:
    the folder of its IDX files).
    `data_dir`: the tfds data dir (digits and fashion_mnist: a cache dir,
    default `$HOURNAS_TF_DATA` or `~/.cache/hournas_tf/datasets`; cifar10,
    imagenet2012 and tfds's own fashion_mnist: tfds's default
    `~/tensorflow_datasets`).
    `image_size`: None for the dataset's default (`DEFAULT_IMAGE_SIZE`).
    `batch_size`: the global batch size.
    `cache`: 'auto', 'memory' or 'none'.
    `cutout`: side of the cutout square in retraining (`load_train_data`);
    0 is off. The search splits never use it.
    `validation_fraction`: 0, or the fraction of the training split held
    out as the eval split (see the module docstring).
    `train_examples`: 0, or train on only the first this many examples of
    the training split (after the hold-out), in stored order: the same
    subset for every seed.
    """

    dataset: str = 'digits'
    data_dir: str | None = None
    image_size: int | None = None
    batch_size: int = 64
    seed: int = 0
    weight_fraction: float = WEIGHT_FRACTION
    cache: str = 'auto'
    shuffle_buffer: int = 10000
    cutout: int = 0
    validation_fraction: float = 0.0
    train_examples: int = 0


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """A loaded dataset: counts are examples of the train and eval splits."""

    name: str
    num_classes: int
    image_size: int
    num_train: int
    num_eval: int
    class_names: tuple
    eval_split: str = 'test'


@dataclasses.dataclass(frozen=True)
class SearchData:
    """The search's splits of the training data (see the module docstring).

    `weights`: augmented batches of the weight split; `arch`: eval-style
    batches of the architecture split. Both infinite (repeated before
    batching), reshuffled each pass.
    """

    weights: object
    arch: object
    info: DatasetInfo
    num_weight_examples: int
    num_arch_examples: int
    global_batch_size: int
    per_replica_batch_size: int

    @property
    def weight_steps(self):
        """Batches that make one pass over the weights split (rounded up)."""
        return -(-self.num_weight_examples // self.global_batch_size)

    @property
    def arch_steps(self):
        """Batches that make one pass over the arch split (rounded up)."""
        return -(-self.num_arch_examples // self.global_batch_size)

    def alternating(self):
        """((weight images, labels), (arch images, labels)) pairs, infinite.
        """
        import tensorflow as tf

        return tf.data.Dataset.zip((self.weights, self.arch))


@dataclasses.dataclass(frozen=True)
class TrainData:
    """Retraining data: all of train (augmented) and the eval split."""

    train: object
    eval: object
    info: DatasetInfo
    global_batch_size: int
    per_replica_batch_size: int

    @property
    def steps_per_epoch(self):
        return self.info.num_train // self.global_batch_size

    @property
    def eval_steps(self):
        return -(-self.info.num_eval // self.global_batch_size)


def parse_dataset_name(name):
    """'image_folder:PATH' -> ('image_folder', PATH), 'fashion_mnist:PATH'
    -> ('fashion_mnist', PATH); others -> (name, None)."""
    text = str(name).strip()
    kind, sep, path = text.partition(':')
    if kind == 'fashion_mnist' and sep:
        if not path.strip():
            raise UserError(
                f'dataset {name!r} needs the folder of its IDX files: '
                'fashion_mnist:PATH (or just fashion_mnist)'
            )
        return kind, path.strip()
    if kind == 'image_folder':
        if not sep or not path.strip():
            raise UserError(
                f'dataset {name!r} needs a folder: image_folder:PATH'
            )
        return kind, path.strip()
    if text in KINDS and text != 'image_folder':
        return text, None
    raise UserError(
        f'unknown dataset {name!r}; valid: {choices(DATASET_NAMES)}'
    )


def check_config(config):
    """Raises UserError for a bad `DataConfig` value."""
    parse_dataset_name(config.dataset)
    if config.image_size is not None and int(config.image_size) < 8:
        raise UserError(
            f'image_size must be at least 8, got {config.image_size}'
        )
    if int(config.batch_size) < 1:
        raise UserError(
            f'batch_size must be positive, got {config.batch_size}'
        )
    if not 0.0 < float(config.weight_fraction) < 1.0:
        raise UserError(
            f'weight_fraction must be in (0, 1), got {config.weight_fraction}'
        )
    if config.cache not in CACHE_MODES:
        raise UserError(
            f'unknown cache {config.cache!r}; valid: {choices(CACHE_MODES)}'
        )
    if int(config.shuffle_buffer) < 1:
        raise UserError(
            f'shuffle_buffer must be positive, got {config.shuffle_buffer}'
        )
    if int(config.cutout) < 0:
        raise UserError(f'cutout must be >= 0, got {config.cutout}')
    if not 0.0 <= float(config.validation_fraction) < 1.0:
        raise UserError(
            'validation_fraction must be in [0, 1), got '
            f'{config.validation_fraction}'
        )
    if int(config.train_examples) < 0:
        raise UserError(
            f'train_examples must be >= 0 (0: all), got '
            f'{config.train_examples}'
        )


def split_ranges(num_examples, weight_fraction, seed):
    """(weight ranges, arch ranges) of [start, stop) over the train split.

    The arch split is a window of `num_examples - round(weight_fraction *
    num_examples)` examples at a seed-dependent offset, wrapping around; the
    weight split is its complement. Both are non-empty.
    """
    num_weights = int(round(weight_fraction * num_examples))
    num_arch = num_examples - num_weights
    if num_weights < 1 or num_arch < 1:
        raise UserError(
            f'cannot split {num_examples} training examples with '
            f'weight_fraction {weight_fraction}: both splits need examples'
        )
    start = int(np.random.RandomState(seed).randint(num_examples))
    stop = start + num_arch
    if stop <= num_examples:
        arch = [(start, stop)]
        weights = [(0, start), (stop, num_examples)]
    else:
        arch = [(start, num_examples), (0, stop - num_examples)]
        weights = [(stop - num_examples, start)]
    weights = [(a, b) for a, b in weights if b > a]
    return weights, arch


def _replicas(config, strategy):
    """(global batch, per-replica batch) for a strategy (or None)."""
    replicas = 1 if strategy is None else int(strategy.num_replicas_in_sync)
    batch = int(config.batch_size)
    if batch % replicas:
        raise UserError(
            f'batch_size {batch} is the global batch and must divide evenly '
            f'over the {replicas} replicas; use a multiple of {replicas}'
        )
    return batch, batch // replicas


class _TfdsSource:
    """digits, fashion_mnist, cifar10 or imagenet2012 through a tfds
    builder."""

    def __init__(self, kind, config, path=None):
        self.kind = kind
        self.seed = int(config.seed)
        if kind == 'digits':
            from hournas_tf.data import digits

            self.builder = digits.builder(config.data_dir)
        elif kind == 'fashion_mnist':
            from hournas_tf.data import fashion_mnist

            self.builder = fashion_mnist.builder(config.data_dir, path)
        else:
            self.builder = _prepared_builder(kind, config.data_dir)
        self.eval_split = EVAL_SPLIT[kind]
        label = self.builder.info.features['label']
        splits = self.builder.info.splits
        self.info = DatasetInfo(
            name=config.dataset,
            num_classes=int(label.num_classes),
            image_size=int(config.image_size or DEFAULT_IMAGE_SIZE[kind]),
            num_train=int(splits['train'].num_examples),
            num_eval=int(splits[self.eval_split].num_examples),
            class_names=tuple(label.names),
            eval_split=self.eval_split,
        )
        self.auto_shard_data = kind in ('digits', 'fashion_mnist')

    def decoded_bytes(self, num_examples):
        shape = self.builder.info.features['image'].shape
        if all(d is not None for d in shape):
            return num_examples * int(np.prod(shape))
        info = self.builder.info.splits['train']
        per_example = info.num_bytes / max(1, info.num_examples)
        return num_examples * per_example * _DECODED_PER_FILE_BYTE

    def examples(self, split, ranges=None, shuffle_files=False):
        import tensorflow as tf
        import tensorflow_datasets as tfds

        name = 'train' if split == 'train' else self.eval_split
        spec = name
        if ranges is not None:
            spec = '+'.join(f'{name}[{a}:{b}]' for a, b in ranges)
        ds = self.builder.as_dataset(
            split=spec,
            shuffle_files=shuffle_files,
            read_config=tfds.ReadConfig(
                add_tfds_id=True, shuffle_seed=self.seed
            ),
        )
        return ds.map(
            lambda ex: {
                'image': ex['image'],
                'label': tf.cast(ex['label'], tf.int32),
                'id': ex['tfds_id'],
            },
            num_parallel_calls=tf.data.AUTOTUNE,
        )


class _FolderSource:
    """image_folder:PATH."""

    def __init__(self, path, config):
        from hournas_tf.data import image_folder

        self.kind = 'image_folder'
        self.listing = image_folder.list_folder(path)
        self.info = DatasetInfo(
            name=config.dataset,
            num_classes=len(self.listing.class_names),
            image_size=int(
                config.image_size or DEFAULT_IMAGE_SIZE['image_folder']
            ),
            num_train=len(self.listing.train_paths),
            num_eval=len(self.listing.eval_paths),
            class_names=self.listing.class_names,
            eval_split=self.listing.eval_split,
        )
        self.auto_shard_data = True

    def decoded_bytes(self, num_examples):
        per_example = self.listing.num_bytes / max(1, self.info.num_train)
        return num_examples * per_example * _DECODED_PER_FILE_BYTE

    def examples(self, split, ranges=None, shuffle_files=False):
        from hournas_tf.data import image_folder

        del shuffle_files  # Shuffled by the pipeline.
        return image_folder.examples(self.listing, split, ranges)


def _prepare_command(kind, data_dir):
    return (
        'python -c "import tensorflow_datasets as tfds; '
        f"tfds.builder('{kind}', data_dir='{data_dir}')"
        '.download_and_prepare()"'
    )


def _not_prepared(kind, data_dir, missing_dir=False):
    """The one-line UserError saying how to prepare a tfds dataset."""
    where = (
        f'data dir {data_dir} does not exist' if missing_dir
        else f'{kind} is not prepared in data dir {data_dir}'
    )
    command = _prepare_command(kind, data_dir)
    if kind == 'imagenet2012':
        manual = os.path.join(data_dir, 'downloads', 'manual')
        return UserError(
            f'{where}; put {" and ".join(_IMAGENET_TARS)} (from '
            f'image-net.org) in {manual}/ and run once (takes hours): '
            f'{command}'
        )
    return UserError(
        f'{where}; prepare it once on a machine with internet: {command} '
        f'(then copy {data_dir} here, or pass its location as data_dir)'
    )


def _prepared_builder(kind, data_dir):
    import tensorflow_datasets as tfds

    if data_dir is not None:
        data_dir = os.path.abspath(os.path.expanduser(data_dir))
        if not os.path.isdir(data_dir):
            raise _not_prepared(kind, data_dir, missing_dir=True)
    try:
        builder = tfds.builder(kind, data_dir=data_dir)
    except Exception as e:  # tfds raises many types for a broken data dir.
        root = data_dir or '~/tensorflow_datasets'
        raise _not_prepared(kind, root) from e
    if not builder.is_prepared():
        raise _not_prepared(kind, os.fspath(builder.data_dir_root))
    return builder


class _HeldOut:
    """A source whose training split's last `round(fraction * N)` examples
    are its eval split (`DataConfig.validation_fraction`)."""

    def __init__(self, source, fraction):
        self.source = source
        self.kind = source.kind
        self.auto_shard_data = source.auto_shard_data
        total = source.info.num_train
        held = int(round(fraction * total))
        self.start = total - held
        self.total = total
        if held < 1 or self.start < 1:
            raise UserError(
                f'validation_fraction {fraction} of the {total} training '
                f'examples of {source.info.name} leaves '
                f'{"no validation" if held < 1 else "no training"} examples'
            )
        self.info = dataclasses.replace(
            source.info, num_train=self.start, num_eval=held,
            eval_split=f'train[{self.start}:{total}]',
        )

    def decoded_bytes(self, num_examples):
        return self.source.decoded_bytes(num_examples)

    def examples(self, split, ranges=None, shuffle_files=False):
        if split != 'train':
            ranges = [(self.start, self.total)]
        elif ranges is None:
            ranges = [(0, self.start)]
        # Search ranges lie in [0, start): the held-out part is a suffix.
        return self.source.examples('train', ranges, shuffle_files)


class _Subset:
    """A source whose training split is the first `count` examples of
    `source`'s (`DataConfig.train_examples`)."""

    def __init__(self, source, count):
        self.source = source
        self.kind = source.kind
        self.auto_shard_data = source.auto_shard_data
        if count > source.info.num_train:
            raise UserError(
                f'train_examples {count} is more than the '
                f'{source.info.num_train} training examples of '
                f'{source.info.name}'
            )
        self.count = count
        self.info = dataclasses.replace(source.info, num_train=count)

    def decoded_bytes(self, num_examples):
        return self.source.decoded_bytes(num_examples)

    def examples(self, split, ranges=None, shuffle_files=False):
        if split == 'train' and ranges is None:
            ranges = [(0, self.count)]
        return self.source.examples(split, ranges, shuffle_files)


def _source(config):
    check_config(config)
    kind, path = parse_dataset_name(config.dataset)
    if kind == 'image_folder':
        source = _FolderSource(path, config)
    else:
        source = _TfdsSource(kind, config, path)
    if float(config.validation_fraction) > 0:
        source = _HeldOut(source, float(config.validation_fraction))
    if int(config.train_examples) > 0:
        source = _Subset(source, int(config.train_examples))
    return source


def dataset_info(config):
    """The `DatasetInfo` of `config.dataset` (prepares digits if needed)."""
    return _source(config).info


def _search_ranges(source, config):
    return split_ranges(
        source.info.num_train, float(config.weight_fraction), int(config.seed)
    )


def _count(ranges):
    return sum(b - a for a, b in ranges)


def search_split_examples(config):
    """(weights, arch): the raw, unbatched search splits as tf.data.

    Elements are dicts {'image' uint8 [H, W, C], 'label' int32, 'id' string}
    in stored order; `id` identifies the example (tfds id or relative path).
    `load_search_data` preprocesses exactly these examples.
    """
    source = _source(config)
    weight_ranges, arch_ranges = _search_ranges(source, config)
    return (
        source.examples('train', weight_ranges),
        source.examples('train', arch_ranges),
    )


def _pipeline(source, ds, config, *, split, num_examples, batch, augment,
              shuffle, drop_remainder, strategy, repeat=False, cutout=0):
    import tensorflow as tf

    size = source.info.image_size
    style = preprocessing.style_for(source.kind, size)
    if drop_remainder and not repeat and num_examples < batch:
        raise UserError(
            f'batch_size {batch} is larger than the {num_examples} examples '
            f'of the {split} split of {config.dataset}; use a smaller '
            f'batch_size'
        )
    ds = ds.map(
        lambda ex: (ex['image'], ex['label']),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    cache = config.cache == 'memory' or (
        config.cache == 'auto'
        and source.decoded_bytes(num_examples) < CACHE_LIMIT_BYTES
    )
    if cache:
        ds = _filled_cache(ds)
    if shuffle:
        ds = ds.shuffle(
            min(int(config.shuffle_buffer), num_examples),
            seed=int(config.seed),
            reshuffle_each_iteration=True,
        )
    if repeat:
        ds = ds.repeat()
    if augment:
        def transform(image):
            return preprocessing.preprocess_for_train(image, style, size,
                                                      cutout)
    else:
        def transform(image):
            return preprocessing.preprocess_for_eval(image, style, size)
    ds = ds.map(
        lambda image, label: (transform(image), label),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not shuffle,
    )
    ds = ds.batch(batch, drop_remainder=drop_remainder)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    if cache:
        # Reading is not the bottleneck of a split held in memory, and
        # tf.data's autotuning thread can hold the destruction of an
        # iterator, that is the end of a `fit` or `evaluate`, for about
        # 20 s (docs/speed.md, "The end of a fit"). Without it, AUTOTUNE
        # means min(16, CPU cores).
        options.autotune.enabled = False
    if strategy is not None and source.auto_shard_data:
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
    return ds.with_options(options)


def _filled_cache(ds):
    """`ds.cache()` read through once, so every later iterator reads the
    finished cache. In TF 2.21 an iterator destroyed part-way (a few
    batches taken, e.g. for batch-norm recalibration) can complete the
    shared in-memory cache with the elements it had read, and every later
    epoch then sees only those (tests/test_data.py reproduces it under
    load)."""
    import tensorflow as tf

    ds = ds.cache()
    ds.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
    return ds


def load_search_data(config, strategy=None):
    """`SearchData`: the weights (80%) and arch (20%) splits of train."""
    source = _source(config)
    batch, per_replica = _replicas(config, strategy)
    weight_ranges, arch_ranges = _search_ranges(source, config)
    num_weights, num_arch = _count(weight_ranges), _count(arch_ranges)
    weights = _pipeline(
        source, source.examples('train', weight_ranges, shuffle_files=True),
        config, split='weights', num_examples=num_weights, batch=batch,
        augment=True, shuffle=True, drop_remainder=True, strategy=strategy,
        repeat=True,
    )
    arch = _pipeline(
        source, source.examples('train', arch_ranges, shuffle_files=True),
        config, split='arch', num_examples=num_arch, batch=batch,
        augment=False, shuffle=True, drop_remainder=True, strategy=strategy,
        repeat=True,
    )
    return SearchData(
        weights=weights,
        arch=arch,
        info=source.info,
        num_weight_examples=num_weights,
        num_arch_examples=num_arch,
        global_batch_size=batch,
        per_replica_batch_size=per_replica,
    )


def load_train_data(config, strategy=None):
    """`TrainData`: all of train (augmented, with `config.cutout`) and the
    eval split."""
    source = _source(config)
    batch, per_replica = _replicas(config, strategy)
    info = source.info
    if info.num_eval < 1:
        raise UserError(f'{config.dataset} has no images to evaluate on')
    train = _pipeline(
        source, source.examples('train', shuffle_files=True), config,
        split='train', num_examples=info.num_train, batch=batch,
        augment=True, shuffle=True, drop_remainder=True, strategy=strategy,
        cutout=int(config.cutout),
    )
    evaluation = _pipeline(
        source, source.examples('eval'), config, split=info.eval_split,
        num_examples=info.num_eval, batch=batch, augment=False,
        shuffle=False, drop_remainder=False, strategy=strategy,
    )
    return TrainData(
        train=train,
        eval=evaluation,
        info=info,
        global_batch_size=batch,
        per_replica_batch_size=per_replica,
    )
