import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf

import hournas_tf
from hournas_tf import data
from hournas_tf.data import preprocessing
from hournas_tf.errors import UserError


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
    with pytest.raises(UserError, match='valid: digits, cifar10, '
                       'imagenet2012, image_folder:PATH'):
        data.parse_dataset_name('mnist')
    with pytest.raises(UserError, match='image_folder:PATH'):
        data.parse_dataset_name('image_folder:')


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


def test_image_folder_loads(folder):
    config = data.DataConfig(dataset=f'image_folder:{folder}', image_size=32,
                             batch_size=4, weight_fraction=0.8)
    info = data.dataset_info(config)
    assert info.class_names == ('cat', 'dog', 'fox')
    assert (info.num_train, info.num_eval) == (15, 3)
    assert info.eval_split == 'holdout'
    train = data.load_train_data(config)
    images, labels = next(iter(train.train))
    assert images.shape == (4, 32, 32, 3) and labels.dtype == tf.int32
    labels = np.concatenate([y.numpy() for _, y in train.eval])
    assert sorted(labels) == [0, 1, 2]
    search = data.load_search_data(
        data.DataConfig(dataset=config.dataset, image_size=32, batch_size=3))
    assert (search.num_weight_examples, search.num_arch_examples) == (12, 3)
    assert next(iter(search.arch))[0].shape == (3, 32, 32, 3)
    weights, arch = data.search_split_examples(config)
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


def _folder_error(path):
    with pytest.raises(UserError) as e:
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
    with pytest.raises(UserError) as e:
        data.load_train_data(data.DataConfig('cifar10', data_dir=tmp_path))
    message = str(e.value)
    assert 'not prepared' in message and str(tmp_path) in message
    assert ("tfds.builder('cifar10', data_dir='" in message
            and 'download_and_prepare()' in message)
    with pytest.raises(UserError) as e:
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


def test_global_batch_under_a_strategy(digits_dir):
    strategy = tf.distribute.MirroredStrategy(['/cpu:0'])
    config = data.DataConfig(data_dir=digits_dir, batch_size=8)
    search = data.load_search_data(config, strategy=strategy)
    assert search.global_batch_size == 8
    assert search.per_replica_batch_size == 8 // strategy.num_replicas_in_sync
    images, _ = next(iter(search.weights))
    assert images.shape[0] == 8
    dist = strategy.experimental_distribute_dataset(search.arch)
    per_replica, _ = next(iter(dist))
    values = strategy.experimental_local_results(per_replica)
    assert sum(int(v.shape[0]) for v in values) == 8

    class ThreeReplicas:
        num_replicas_in_sync = 3

    with pytest.raises(UserError, match='3 replicas'):
        data.load_train_data(config, strategy=ThreeReplicas())
    train = data.load_train_data(
        data.DataConfig(data_dir=digits_dir, batch_size=6),
        strategy=ThreeReplicas())
    assert (train.global_batch_size, train.per_replica_batch_size) == (6, 2)


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
