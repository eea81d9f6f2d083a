import collections
import dataclasses
import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_python

import hournas_tf
from hournas_tf import data
from hournas_tf.common.errors import UserError
from hournas_tf.data import preprocessing


@pytest.fixture(scope='module')
def digits_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('digits'))


def _write_png(path, value, size=40):
    rng = np.random.default_rng(int(value))
    image = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    image[..., 0] = value
    tf.io.write_file(str(path), tf.io.encode_png(image))


def _make_folder(root, classes=('cat', 'dog', 'fox'), per_class=6):
    for c, name in enumerate(classes):
        os.makedirs(root / name, exist_ok=True)
        for i in range(per_class):
            _write_png(root / name / f'{i}.png', 40 * c + i)
    return root


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    return _make_folder(tmp_path_factory.mktemp('images'))


def test_parse_dataset_name():
    assert data.parse_dataset_name('digits') == ('digits', None)
    assert data.parse_dataset_name('cifar10') == ('cifar10', None)
    assert data.parse_dataset_name('imagenet2012') == ('imagenet2012', None)
    assert data.parse_dataset_name('image_folder:/x/y') == (
        'image_folder', '/x/y')
    assert data.parse_dataset_name('fashion_mnist') == (
        'fashion_mnist', None)
    assert data.parse_dataset_name('fashion_mnist:/x/y') == (
        'fashion_mnist', '/x/y')
    with pytest.raises(UserError, match='valid: digits, '
                       r'fashion_mnist\[:PATH\], cifar10, imagenet2012, '
                       'image_folder:PATH'):
        data.parse_dataset_name('mnist')
    with pytest.raises(UserError, match='image_folder:PATH'):
        data.parse_dataset_name('image_folder:')
    with pytest.raises(UserError, match='fashion_mnist:PATH'):
        data.parse_dataset_name('fashion_mnist: ')


def test_bad_config_values():
    for kwargs, word in [(dict(cache='disk'), 'cache'),
                         (dict(batch_size=0), 'batch_size'),
                         (dict(weight_fraction=1.0), 'weight_fraction')]:
        with pytest.raises(UserError, match=word):
            data.check_config(data.DataConfig(**kwargs))


def test_digits_loads_through_the_api(digits_dir):
    config = data.DataConfig(data_dir=digits_dir, batch_size=16)
    info = data.dataset_info(config)
    assert (info.num_classes, info.image_size) == (10, 32)
    assert info.class_names == tuple(str(i) for i in range(10))
    assert info.num_train + info.num_eval == 1797
    assert info.num_eval == 359
    train = data.load_train_data(config)
    low, high = preprocessing.normalized_range()
    for ds in (train.train, train.eval):
        images, labels = next(iter(ds))
        assert images.shape == (16, 32, 32, 3)
        assert images.dtype == tf.float32
        assert labels.dtype == tf.int32 and labels.shape == (16,)
        assert np.all((labels >= 0) & (labels < 10))
        x = images.numpy()
        assert np.all(x >= low - 1e-5) and np.all(x <= high + 1e-5)
        assert np.all(np.isfinite(x)) and x.std() > 0.1
    # Eval images: grey (3 equal channels before normalization) and the
    # black corner is exactly normalize(0).
    images, _ = next(iter(train.eval))
    raw = images.numpy() * np.float32(preprocessing.STDDEV_RGB) + np.float32(
        preprocessing.MEAN_RGB)
    np.testing.assert_allclose(raw[..., 0], raw[..., 2], atol=1e-3)
    np.testing.assert_allclose(images.numpy()[:, 0, 0], np.broadcast_to(
        data.normalize(tf.zeros([3])).numpy(), (16, 3)), atol=1e-6)
    assert sum(int(x.shape[0]) for x, _ in train.eval) == info.num_eval
    assert train.steps_per_epoch == info.num_train // 16


def test_partial_reads_never_truncate_a_cached_split(digits_dir):
    # TF 2.21 can complete a shared in-memory cache from an iterator that
    # is destroyed part-way; under load this truncated later epochs to the
    # 16-18 images the partial reader had seen (5 of 30 trials). The
    # pipelines fill their cache when they are made.
    for _ in range(10):
        config = data.DataConfig(data_dir=digits_dir, batch_size=16,
                                 cache='memory')
        train = data.load_train_data(config)
        for ds in (train.train, train.eval, train.train.take(2)):
            next(iter(ds))
        assert sum(int(x.shape[0]) for x, _ in train.eval) == 359
        assert sum(int(x.shape[0]) for x, _ in train.train) == (
            train.steps_per_epoch * 16)


@pytest.mark.parametrize('cache', ['memory', 'none'])
def test_autotuning_is_off_only_for_splits_held_in_memory(digits_dir, cache):
    # tf.data's autotuning thread held the end of a `fit` for 17.7-17.8 s
    # in 2 of 5 fits (benchmarks/speed/31, fit_end_autotune.py); a split
    # held in memory does not need it, one read from disk keeps it.
    config = data.DataConfig(data_dir=digits_dir, batch_size=16, cache=cache)
    search = data.load_search_data(config)
    train = data.load_train_data(config)
    for ds in (search.weights, search.arch, train.train, train.eval):
        # None is tf.data's default: on.
        enabled = ds.options().autotune.enabled is not False
        assert enabled == (cache == 'none')


def _pipeline_labels(ds, take=None):
    """Labels of a batched pipeline: all batches, or the first `take`."""
    ds = ds.unbatch()
    if take is not None:
        ds = ds.take(take)
    return collections.Counter(int(y) for _, y in ds)


def _raw_labels(ds):
    return collections.Counter(int(ex['label']) for ex in ds)


def test_digits_pipelines_carry_the_raw_labels(digits_dir):
    """Every image of the raw splits reaches the pipelines with its label:
    train and test against scikit-learn's arrays, the search splits against
    their raw examples (one pass of the repeating pipelines)."""
    from hournas_tf.data import digits

    _, labels, is_test = digits.load_arrays()
    # 1,438 = 2 x 719: a batch of 719 drops no training example.
    train = data.load_train_data(data.DataConfig(data_dir=digits_dir,
                                                 batch_size=719))
    assert _pipeline_labels(train.train) == collections.Counter(
        labels[~is_test].tolist())
    assert _pipeline_labels(train.eval) == collections.Counter(
        labels[is_test].tolist())
    config = data.DataConfig(data_dir=digits_dir, batch_size=32, seed=5)
    search = data.load_search_data(config)
    raw_weights, raw_arch = data.search_split_examples(config)
    raw_weights, raw_arch = _raw_labels(raw_weights), _raw_labels(raw_arch)
    assert raw_weights + raw_arch == collections.Counter(
        labels[~is_test].tolist())
    assert _pipeline_labels(
        search.weights, search.num_weight_examples) == raw_weights
    assert _pipeline_labels(search.arch, search.num_arch_examples) == raw_arch


def _ids_and_hashes(ds):
    ids, hashes = [], []
    for ex in ds:
        ids.append(ex['id'].numpy())
        hashes.append(hashlib.sha1(ex['image'].numpy().tobytes()).hexdigest())
    return ids, hashes


def test_search_split_is_disjoint_and_deterministic(digits_dir):
    config = data.DataConfig(data_dir=digits_dir, seed=3)
    weights, arch = data.search_split_examples(config)
    w_ids, w_hashes = _ids_and_hashes(weights)
    a_ids, a_hashes = _ids_and_hashes(arch)
    info = data.dataset_info(config)
    assert len(w_ids) + len(a_ids) == info.num_train
    assert len(w_ids) == round(0.8 * info.num_train)
    assert len(set(w_ids)) == len(w_ids) and len(set(a_ids)) == len(a_ids)
    assert not set(w_ids) & set(a_ids)
    assert not set(w_hashes) & set(a_hashes)

    search = data.load_search_data(config)
    assert (search.num_weight_examples, search.num_arch_examples) == (
        len(w_ids), len(a_ids))

    same = _ids_and_hashes(data.search_split_examples(config)[1])[0]
    assert set(same) == set(a_ids)
    other = data.DataConfig(data_dir=digits_dir, seed=4)
    other_ids = _ids_and_hashes(data.search_split_examples(other)[1])[0]
    assert len(other_ids) == len(a_ids) and set(other_ids) != set(a_ids)


def test_train_examples_keep_the_first_of_train(digits_dir):
    """A training subset: the first N examples after the hold-out, the
    same for every seed; the held-out eval split is unchanged."""
    def ids(ds):
        return [x.decode() for x in ds.map(lambda ex: ex['id'])
                .as_numpy_iterator()]

    held = data.DataConfig(data_dir=digits_dir, validation_fraction=0.1)
    sub = data.DataConfig(data_dir=digits_dir, validation_fraction=0.1,
                          train_examples=100, seed=5)
    full, part = data.pipelines._source(held), data.pipelines._source(sub)
    assert part.info.num_train == 100
    assert part.info.num_eval == full.info.num_eval
    assert part.info.eval_split == full.info.eval_split
    assert ids(part.examples('train')) == ids(full.examples('train'))[:100]
    assert ids(part.examples('eval')) == ids(full.examples('eval'))
    train = data.load_train_data(dataclasses.replace(sub, batch_size=10))
    assert train.steps_per_epoch == 10
    with pytest.raises(UserError, match='train_examples 5000 is more than '
                       'the 1294 training examples'):
        data.dataset_info(dataclasses.replace(held, train_examples=5000))
    with pytest.raises(UserError, match='train_examples must be >= 0'):
        data.check_config(data.DataConfig(train_examples=-1))


@pytest.mark.parametrize('n, fraction, seed', [
    (10, 0.8, 0), (1438, 0.8, 3), (7, 0.5, 11), (100, 0.9, 123)])
def test_split_ranges_partition_the_examples(n, fraction, seed):
    weights, arch = data.split_ranges(n, fraction, seed)
    rows_w = [i for a, b in weights for i in range(a, b)]
    rows_a = [i for a, b in arch for i in range(a, b)]
    assert sorted(rows_w + rows_a) == list(range(n))
    assert len(rows_w) == round(fraction * n)
    assert (weights, arch) == data.split_ranges(n, fraction, seed)
    with pytest.raises(UserError, match='both splits'):
        data.split_ranges(1, fraction, seed)


def test_preprocessing_shapes_and_deterministic_eval():
    rng = np.random.default_rng(0)
    small = tf.constant(rng.integers(0, 256, (32, 32, 3)), tf.uint8)
    large = tf.constant(rng.integers(0, 256, (50, 70, 3)), tf.uint8)
    grey = tf.constant(rng.integers(0, 256, (8, 8, 1)), tf.uint8)
    for image, style, size in [(small, 'cifar', 32), (large, 'imagenet', 24),
                               (large, 'cifar', 16), (grey, 'digits', 32)]:
        train = data.preprocess_for_train(image, style, size)
        first = data.preprocess_for_eval(image, style, size)
        second = data.preprocess_for_eval(image, style, size)
        assert train.shape == first.shape == (size, size, 3)
        assert train.dtype == first.dtype == tf.float32
        np.testing.assert_array_equal(first.numpy(), second.numpy())
    # CIFAR eval of a 32x32 image is the normalized image itself.
    np.testing.assert_allclose(
        data.preprocess_for_eval(small, 'cifar', 32).numpy(),
        data.normalize(small).numpy(), atol=1e-6)
    with pytest.raises(UserError, match='style'):
        data.preprocess_for_eval(small, 'jpeg', 32)


def _class_of_image(image):
    """The class `_make_folder` wrote into the red channel (40 c + i)."""
    red = image[..., 0] * preprocessing.STDDEV_RGB[0] + \
        preprocessing.MEAN_RGB[0]
    return int(round(float(red.max()))) // 40


def _labels_and_classes(ds, take=None):
    """(label, class read off the image) of every example of a pipeline."""
    ds = ds.unbatch()
    if take is not None:
        ds = ds.take(take)
    return [(int(y), _class_of_image(x.numpy())) for x, y in ds]


def test_image_folder_loads(folder):
    config = data.DataConfig(dataset=f'image_folder:{folder}', image_size=32,
                             batch_size=5, weight_fraction=0.8)
    info = data.dataset_info(config)
    assert info.class_names == ('cat', 'dog', 'fox')
    assert (info.num_train, info.num_eval) == (15, 3)
    assert info.eval_split == 'holdout'
    train = data.load_train_data(config)
    images, labels = next(iter(train.train))
    assert images.shape == (5, 32, 32, 3) and labels.dtype == tf.int32
    # Every label is the class index of the image's folder.
    pairs = _labels_and_classes(train.train)
    assert len(pairs) == 15 and all(y == c for y, c in pairs)
    pairs = _labels_and_classes(train.eval)
    assert sorted(pairs) == [(0, 0), (1, 1), (2, 2)]
    search = data.load_search_data(
        data.DataConfig(dataset=config.dataset, image_size=32, batch_size=3))
    assert (search.num_weight_examples, search.num_arch_examples) == (12, 3)
    assert next(iter(search.arch))[0].shape == (3, 32, 32, 3)
    for ds, n in ((search.weights, 12), (search.arch, 3)):
        pairs = _labels_and_classes(ds, n)
        assert len(pairs) == n and all(y == c for y, c in pairs)
    weights, arch = data.search_split_examples(config)
    for ex in [*weights, *arch]:
        folder_name = ex['id'].numpy().decode().split(os.sep)[0]
        assert int(ex['label']) == info.class_names.index(folder_name)
    w_ids = {ex['id'].numpy() for ex in weights}
    a_ids = {ex['id'].numpy() for ex in arch}
    assert len(w_ids) == 12 and len(a_ids) == 3 and not w_ids & a_ids


def test_image_folder_with_split_folders(tmp_path):
    _make_folder(tmp_path / 'train', per_class=3)
    _make_folder(tmp_path / 'val', classes=('cat', 'dog'), per_class=2)
    info = data.dataset_info(
        data.DataConfig(dataset=f'image_folder:{tmp_path}', image_size=96))
    assert info.class_names == ('cat', 'dog', 'fox')
    assert (info.num_train, info.num_eval, info.eval_split) == (9, 4, 'val')
    train = data.load_train_data(data.DataConfig(
        dataset=f'image_folder:{tmp_path}', image_size=96, batch_size=2))
    assert next(iter(train.train))[0].shape == (2, 96, 96, 3)
    assert next(iter(train.eval))[0].shape == (2, 96, 96, 3)
    pairs = _labels_and_classes(train.eval)
    assert sorted(pairs) == [(0, 0), (0, 0), (1, 1), (1, 1)]


def _folder_error(path):
    with pytest.raises(UserError, match='^image folder ') as e:
        data.dataset_info(data.DataConfig(dataset=f'image_folder:{path}'))
    message = str(e.value)
    assert '\n' not in message
    return message


def test_image_folder_errors(tmp_path):
    assert 'does not exist' in _folder_error(tmp_path / 'nope')
    (tmp_path / 'empty').mkdir()
    assert '0 class folder(s)' in _folder_error(tmp_path / 'empty')
    one = _make_folder(tmp_path / 'one', classes=('only',), per_class=2)
    assert '1 class folder(s) (only)' in _folder_error(one)
    none = tmp_path / 'none'
    for name in ('a', 'b'):
        (none / name).mkdir(parents=True)
        (none / name / 'notes.txt').write_text('x')
    assert 'no images' in _folder_error(none)
    partly = _make_folder(tmp_path / 'partly', classes=('a', 'b'))
    (partly / 'c').mkdir()
    assert 'class folders without images: c' in _folder_error(partly)
    bad = _make_folder(tmp_path / 'bad', classes=('a', 'b'))
    (bad / 'b' / 'broken.png').write_bytes(b'not an image at all')
    message = _folder_error(bad)
    assert '1 unreadable' in message and 'b/broken.png' in message


def test_unprepared_tfds_sets_say_how_to_prepare(tmp_path):
    with pytest.raises(UserError, match='cifar10 is not prepared') as e:
        data.load_train_data(data.DataConfig('cifar10', data_dir=tmp_path))
    message = str(e.value)
    assert 'not prepared' in message and str(tmp_path) in message
    assert ("tfds.builder('cifar10', data_dir='" in message
            and 'download_and_prepare()' in message)
    with pytest.raises(UserError, match='imagenet2012 is not prepared') as e:
        data.dataset_info(data.DataConfig('imagenet2012', data_dir=tmp_path))
    message = str(e.value)
    manual = os.path.join(str(tmp_path), 'downloads', 'manual')
    assert 'ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar' in message
    assert manual in message and 'download_and_prepare()' in message
    with pytest.raises(UserError, match='does not exist.*download_and_prep'):
        data.dataset_info(data.DataConfig(
            'cifar10', data_dir=str(tmp_path / 'missing')))


def test_generated_folder_trains_one_step_of_build_model(folder):
    import keras

    config = data.DataConfig(dataset=f'image_folder:{folder}', image_size=32,
                             batch_size=4)
    train = data.load_train_data(config)
    model = hournas_tf.build_model(hournas_tf.get_reference(
        'fbnet_b', image_size=32, num_classes=train.info.num_classes))
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(train.train.repeat(), steps_per_epoch=1, epochs=1,
                        shuffle=False, verbose=0)
    assert np.isfinite(history.history['loss'][0])


# Logical devices must be set before TensorFlow initializes its devices,
# so this runs in a process of its own.
TWO_REPLICAS = """
import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from hournas_tf import data
from hournas_tf.common.errors import UserError

strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
assert strategy.num_replicas_in_sync == 2
config = data.DataConfig(data_dir=sys.argv[1], batch_size=8)
search = data.load_search_data(config, strategy=strategy)
assert (search.global_batch_size, search.per_replica_batch_size) == (8, 4)
assert next(iter(search.weights))[0].shape[0] == 8
for ds in (search.weights, search.arch):
    x, y = next(iter(strategy.experimental_distribute_dataset(ds)))
    xs = strategy.experimental_local_results(x)
    ys = strategy.experimental_local_results(y)
    assert [tuple(v.shape) for v in xs] == [(4, 32, 32, 3)] * 2
    assert [tuple(v.shape) for v in ys] == [(4,)] * 2
    assert not np.array_equal(xs[0].numpy(), xs[1].numpy())
try:
    data.load_train_data(data.DataConfig(data_dir=sys.argv[1], batch_size=7),
                         strategy=strategy)
    raise SystemExit('batch 7 over 2 replicas was accepted')
except UserError as e:
    assert 'must divide evenly over the 2 replicas' in str(e), e
train = data.load_train_data(
    data.DataConfig(data_dir=sys.argv[1], batch_size=6), strategy=strategy)
assert (train.global_batch_size, train.per_replica_batch_size) == (6, 3)
x, _ = next(iter(strategy.experimental_distribute_dataset(train.train)))
assert [v.shape[0] for v in strategy.experimental_local_results(x)] == [3, 3]
print('ok')
"""


def test_global_batch_splits_over_two_replicas(digits_dir):
    res = run_python('-c', TWO_REPLICAS, digits_dir, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == 'ok'


def test_search_splits_smaller_than_a_batch_repeat_into_full_batches(
        folder):
    config = data.DataConfig(dataset=f'image_folder:{folder}', image_size=32,
                             batch_size=16)
    search = data.load_search_data(config)
    assert search.num_arch_examples < 16
    assert search.arch_steps == 1
    for images, labels in search.arch.take(3):
        assert images.shape[0] == 16 and labels.shape[0] == 16
    # Every example of the split appears within one batch's worth.
    _, raw_arch = data.search_split_examples(config)
    ids = sorted(int(y) for _, y in search.arch.unbatch().take(
        search.num_arch_examples * 4))
    raw = sorted(int(ex['label']) for ex in raw_arch)
    assert set(ids) == set(raw)


def test_retraining_batch_larger_than_the_train_split_is_a_user_error(
        folder):
    with pytest.raises(UserError, match='batch_size 64 is larger'):
        data.load_train_data(data.DataConfig(
            dataset=f'image_folder:{folder}', image_size=32, batch_size=64))


def test_cutout_zeroes_one_clipped_square():
    image = tf.ones((32, 32, 3))
    tf.random.set_seed(0)
    areas = []
    for _ in range(50):
        out = preprocessing.cutout(image, 16).numpy()
        zero = out[..., 0] == 0
        rows, cols = np.nonzero(zero)
        assert np.all(out[zero] == 0) and np.all(out[~zero] == 1)
        # One axis-aligned rectangle, at most 16 x 16, clipped at a border
        # when smaller.
        height = rows.max() - rows.min() + 1
        width = cols.max() - cols.min() + 1
        assert zero.sum() == height * width
        assert height <= 16 and width <= 16
        if height < 16:
            assert rows.min() == 0 or rows.max() == 31
        areas.append(zero.sum())
    assert max(areas) == 256 and min(areas) < 256


def test_cutout_only_in_retraining(digits_dir):
    config = data.DataConfig(dataset='digits', data_dir=digits_dir,
                             batch_size=32, cutout=16)
    train = data.load_train_data(config)
    images, _ = next(iter(train.train))
    zero_pixels = np.all(images.numpy() == 0, axis=-1).sum(axis=(1, 2))
    assert np.all(zero_pixels >= 64)  # a square of at least 8 x 8
    evaluation, _ = next(iter(train.eval))
    assert np.all(np.all(evaluation.numpy() == 0, axis=-1).sum(
        axis=(1, 2)) == 0)
    search = data.load_search_data(config)
    weights, _ = next(iter(search.weights))
    assert np.all(np.all(weights.numpy() == 0, axis=-1).sum(
        axis=(1, 2)) == 0)
    with pytest.raises(UserError, match='cutout'):
        data.check_config(data.DataConfig(cutout=-1))


def test_train_examples_keeps_the_first_training_examples(digits_dir):
    config = data.DataConfig(data_dir=digits_dir, batch_size=16,
                             train_examples=100, cache='none')
    info = data.dataset_info(config)
    full = data.dataset_info(data.DataConfig(data_dir=digits_dir))
    assert (info.num_train, info.num_eval) == (100, full.num_eval)
    source = data.pipelines._source(config)
    whole = data.pipelines._source(data.DataConfig(data_dir=digits_dir))

    def ids(ds):
        return [x.decode() for x in ds.map(
            lambda ex: ex['id']).as_numpy_iterator()]

    assert ids(source.examples('train')) == ids(
        whole.examples('train', [(0, 100)]))
    assert ids(source.examples('eval')) == ids(whole.examples('eval'))
    train = data.load_train_data(config)
    assert train.steps_per_epoch == 100 // 16
    assert sum(int(b[1].shape[0]) for b in train.train) == 6 * 16
    with pytest.raises(UserError, match='train_examples 5000 is more than '
                       f'the {full.num_train} training examples'):
        data.dataset_info(dataclasses.replace(config, train_examples=5000))
    with pytest.raises(UserError, match='train_examples must be >= 0'):
        data.check_config(data.DataConfig(train_examples=-1))
