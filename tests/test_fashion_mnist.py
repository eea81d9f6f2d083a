"""Fashion-MNIST from Debian's IDX files (`dataset-fashion-mnist`, which
.ci/run installs): the reader, the tfds builder, the errors, a search."""

import gzip
import json
import os

import numpy as np
import pytest
from conftest import run_module

from hournas_tf import data
from hournas_tf.common.errors import UserError
from hournas_tf.data import fashion_mnist

DEBIAN = fashion_mnist.DEBIAN_DIR
needs_files = pytest.mark.skipif(
    fashion_mnist.find_files(DEBIAN) is None,
    reason=f'no Fashion-MNIST in {DEBIAN}: apt-get install '
    'dataset-fashion-mnist (.ci/run does)')


@pytest.fixture(scope='module')
def prepared_dir(tmp_path_factory):
    """A data dir with `hournas_fashion_mnist` prepared from the Debian
    files, once per run (shared by the xdist workers; the builder locks)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        root = root.parent
    path = str(root / 'fashion_mnist_data')
    fashion_mnist.builder(path)
    return path


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(fashion_mnist.DIR_ENV, raising=False)


@needs_files
@pytest.mark.parametrize('split, count', [('train', 60000), ('test', 10000)])
def test_the_idx_files_read_as_fashion_mnist(split, count):
    images, labels = fashion_mnist.load_split(DEBIAN, split)
    assert images.shape == (count, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.int64
    # Balanced: 6,000 train and 1,000 test images per class.
    assert np.bincount(labels).tolist() == [count // 10] * 10
    assert images.min() == 0 and images.max() == 255


@needs_files
def test_the_builder_serves_both_splits_through_the_pipelines(
        prepared_dir, no_env):
    config = data.DataConfig('fashion_mnist', data_dir=prepared_dir,
                             batch_size=50, cache='none')
    info = data.dataset_info(config)
    assert (info.num_classes, info.image_size, info.num_train,
            info.num_eval, info.eval_split) == (10, 32, 60000, 10000, 'test')
    assert info.class_names[0] == 'T-shirt/top'
    assert info.class_names[-1] == 'Ankle boot'
    train = data.load_train_data(config)
    images, labels = next(iter(train.eval))
    assert images.shape == (50, 32, 32, 3) and images.dtype.name == 'float32'
    assert 0 <= int(labels.numpy().min()) and labels.numpy().max() <= 9
    # The whole test split, stored as the IDX file has it.
    builder = fashion_mnist.builder(prepared_dir)
    labels = np.array([int(ex['label']) for ex in builder.as_dataset(
        split='test').as_numpy_iterator()])
    assert np.bincount(labels).tolist() == [1000] * 10


@needs_files
def test_validation_holds_out_the_end_of_train(prepared_dir, no_env):
    config = data.DataConfig('fashion_mnist', data_dir=prepared_dir,
                             batch_size=100, validation_fraction=0.1,
                             cache='none')
    info = data.dataset_info(config)
    assert (info.num_train, info.num_eval, info.eval_split) == (
        54000, 6000, 'train[54000:60000]')
    weights, arch = data.search_split_examples(config)

    def ids(ds):
        batches = ds.map(lambda ex: ex['id']).batch(10000)
        return {x.decode() for batch in batches.as_numpy_iterator()
                for x in batch}

    source = data.pipelines._source(config)
    held_ids = ids(source.examples('eval'))
    assert len(held_ids) == 6000
    weight_ids, arch_ids = ids(weights), ids(arch)
    assert (len(weight_ids), len(arch_ids)) == (43200, 10800)
    assert not (weight_ids | arch_ids) & held_ids
    with pytest.raises(UserError, match='validation_fraction'):
        data.check_config(data.DataConfig(validation_fraction=1.0))


def test_missing_files_name_both_ways(tmp_path, monkeypatch):
    empty = tmp_path / 'empty'
    empty.mkdir()
    monkeypatch.setenv(fashion_mnist.DIR_ENV, str(empty))
    with pytest.raises(UserError) as e:
        data.dataset_info(data.DataConfig(
            'fashion_mnist', data_dir=str(tmp_path / 'tfds')))
    message = str(e.value)
    assert '\n' not in message and str(empty) in message
    assert 'apt-get install dataset-fashion-mnist' in message
    assert fashion_mnist.DIR_ENV in message
    assert '--dataset=fashion_mnist:FOLDER' in message
    # The flag's folder comes first, and Debian's is the last resort.
    with pytest.raises(UserError, match=f'not found in {tmp_path}/none '):
        fashion_mnist.source_folder(str(tmp_path / 'none'))
    monkeypatch.delenv(fashion_mnist.DIR_ENV)
    monkeypatch.setattr(fashion_mnist, 'DEBIAN_DIR', str(empty))
    with pytest.raises(UserError, match="Debian's dataset-fashion-mnist"):
        fashion_mnist.source_folder()


def test_commands_say_it_in_one_line_and_exit_2(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    res = run_module('hournas_tf.search', f'--dataset=fashion_mnist:{empty}',
                     f'--data_dir={tmp_path}/tfds',
                     f'--output_dir={tmp_path}/run')
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.startswith('error: Fashion-MNIST IDX files not found '
                                 f'in {empty} ')
    assert res.stderr.count('\n') == 1
    assert 'apt-get install dataset-fashion-mnist' in res.stderr
    assert sorted(os.listdir(tmp_path)) == ['empty']  # nothing left behind


def _write_idx(path, magic, dims, payload, compress=True):
    raw = magic.to_bytes(4, 'big') + b''.join(
        d.to_bytes(4, 'big') for d in dims) + payload
    with open(path, 'wb') as f:
        f.write(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize('magic, dims, size, word', [
    (0x0801, (3, 28, 28), 3 * 784, 'magic number 0x00000801, expected '
     '0x00000803'),
    (0x0803, (3, 28, 27), 3 * 756, r'dimensions \(3, 28, 27\), expected'),
    (0x0803, (3, 28, 28), 3 * 784 - 5, '2347 data bytes, expected 2352'),
])
def test_malformed_idx_files_are_one_line_errors(tmp_path, magic, dims,
                                                 size, word):
    path = tmp_path / 'x-idx3-ubyte.gz'
    _write_idx(path, magic, dims, bytes(size))
    with pytest.raises(UserError, match=f'malformed Fashion-MNIST file '
                       f'{path}: {word}'):
        fashion_mnist.read_idx(str(path), 0x0803, (3, 28, 28))


def test_a_malformed_folder_prepares_nothing(tmp_path, no_env):
    folder = tmp_path / 'idx'
    folder.mkdir()
    for split, count in fashion_mnist.SPLIT_SIZES.items():
        images, labels = fashion_mnist.FILES[split]
        _write_idx(folder / images, 0x0803, (count, 28, 28),
                   bytes(count * 784))
        _write_idx(folder / labels, 0x0801, (count,),
                   bytes([10]) + bytes(count - 1), compress=False)
    os.replace(folder / 'train-labels-idx1-ubyte.gz',
               folder / 'train-labels-idx1-ubyte')  # stored unzipped
    with pytest.raises(UserError, match='train-labels-idx1-ubyte: label 10, '
                       'expected 0..9'):
        data.dataset_info(data.DataConfig(
            f'fashion_mnist:{folder}', data_dir=str(tmp_path / 'tfds')))
    assert not fashion_mnist.HournasFashionMnist(
        data_dir=str(tmp_path / 'tfds')).is_prepared()
    with open(folder / 't10k-images-idx3-ubyte.gz', 'wb') as f:
        f.write(b'\x1f\x8bnot gzip')
    with pytest.raises(UserError, match='broken gzip data'):
        fashion_mnist.load_split(str(folder), 'test')


@needs_files
def test_train_dry_run_counts_the_held_out_split(tmp_path):
    res = run_module('hournas_tf.train', '--arch=mobilenet_v2',
                     '--dataset=fashion_mnist', '--validation_fraction=0.1',
                     '--dry_run', f'--data_dir={tmp_path}')
    assert res.returncode == 0, res.stderr[-2000:]
    text = res.stdout
    summary = json.loads(text[text.index('{'):text.rindex('}') + 1])
    assert (summary['num_train'], summary['num_eval']) == (54000, 6000)
    assert summary['config']['validation_fraction'] == 0.1
    assert summary['steps_per_epoch'] == 54000 // 64


@needs_files
@pytest.mark.large
def test_search_runs_on_fashion_mnist(tmp_path, prepared_dir):
    out = tmp_path / 'run'
    res = run_module(
        'hournas_tf.search', '--dataset=fashion_mnist',
        f'--data_dir={prepared_dir}', f'--output_dir={out}',
        '--width_multiplier=0.25', '--target_macs=10e6',
        '--target_params=0.25e6', '--vital_ops=max', '--nonvital_epochs=1',
        '--max_steps_per_epoch=2', '--proposal_iters=100',
        '--num_proposals=2', '--batch_size=32', '--verbose=0')
    assert res.returncode == 0, res.stderr[-4000:]
    arch = json.loads((out / 'arch.json').read_text())
    assert arch['num_classes'] == 10 and arch['image_size'] == 32
    config = json.loads((out / 'search_config.json').read_text())
    assert config['dataset'] == 'fashion_mnist'


@needs_files
@pytest.mark.large
def test_export_checks_on_fashion_mnist(tmp_path, tmp_path_factory,
                                        prepared_dir):
    """export --dataset=fashion_mnist: the check runs on its test split.
    The model is the digits-trained one of the export tests (above 90% on
    digits, tests/test_export.py): far below that here."""
    from export_testing import shared_trained_model

    trained = shared_trained_model(tmp_path_factory)
    out = tmp_path / 'export'
    res = run_module('hournas_tf.export', f'--model={trained}',
                     '--dataset=fashion_mnist', f'--data_dir={prepared_dir}',
                     '--formats=tflite', '--threads=1',
                     '--check_examples=500', f'--output_dir={out}')
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((out / 'export_report.json').read_text())
    assert report['dataset'] == 'fashion_mnist' and report['passed']
    assert report['examples'] == 500
    assert report['keras_accuracy'] < 0.5, report
    [row] = report['artifacts']
    assert row['format'] == 'tflite' and row['passed'], row
