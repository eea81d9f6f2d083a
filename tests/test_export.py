"""Export: twins, TFLite conversion and LiteRT, SavedModel, parity, the
deployment check and the `python -m hournas_tf.export` command."""

import json
import os
import re
import zipfile

import numpy as np
import pytest
from conftest import REPO
from conftest import run_module
from conftest import run_python
from export_testing import SMALL
from export_testing import digits_eval
from export_testing import random_images
from export_testing import random_model
from export_testing import randomize_batch_norm
from export_testing import shared_trained_model

import hournas_tf
from hournas_tf.common import provenance
from hournas_tf.common.errors import UserError
from hournas_tf.common.runner import STDERR_LOG
from hournas_tf.exporting import benchmark
from hournas_tf.exporting import config as config_lib
from hournas_tf.exporting import export_lib
from hournas_tf.exporting import parity
from hournas_tf.exporting import qat
from hournas_tf.exporting import report
from hournas_tf.exporting import saved_model
from hournas_tf.exporting import source
from hournas_tf.exporting import tflite
from hournas_tf.exporting import twins
from hournas_tf.fuzzing import check_refused


def small(name):
    return hournas_tf.get_reference(name, image_size=32, num_classes=10,
                                    width_multiplier=0.25)


# Ops beyond the candidates: FBNet-B's cascade, MBConv without expansion.
EXTRA_OPS = {'fbnet': ('k3_sep_e6',), 'mnasnet': ('k3_e1',),
             'mobilenetv2': ('k3_e1',)}


def op_chain(space_name, seed=0):
    """A model chaining one block of every op of a space (and
    `EXTRA_OPS`) at its last identity-shortcut layer (32x32 input, width
    0.25), random weights and batch-norm statistics."""
    import keras

    from hournas_tf.blocks import layers as hl

    space = hournas_tf.get_space(space_name, image_size=32, num_classes=10,
                                 width_multiplier=0.25)
    layer = [lay for lay in space.layers if lay.has_shortcut][-1]
    ops = [op for op in space.op_names if op != 'skip']
    ops += EXTRA_OPS.get(space_name, ())
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((layer.in_size, layer.in_size, layer.c_in))
    x = inputs
    for k, op in enumerate(ops):
        x = hl.make_op(space, layer.index, op, name=f'block{k}')(x)
    model = keras.Model(inputs, x, name=f'{space_name}_ops')
    randomize_batch_norm(model, seed)
    return model


def tiny_model():
    """Stem-like block, pooling and a classifier on 8x8 images."""
    import keras

    from hournas_tf.blocks import layers as hl

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name='image')
    x = hl.ConvBNAct(8, 3, activation='relu6', name='stem')(inputs)
    x = keras.layers.GlobalAveragePooling2D(name='pool')(x)
    return keras.Model(inputs, keras.layers.Dense(3, name='classifier')(x))


@pytest.fixture(scope='session')
def trained_path(tmp_path_factory):
    return shared_trained_model(tmp_path_factory)


@pytest.fixture(scope='session')
def digits():
    return digits_eval()


# Twins.

def test_twins_of_a_model_with_its_preprocessing_take_raw_images():
    import keras

    keras.utils.set_random_seed(0)
    model = hournas_tf.build_model(SMALL, include_preprocessing=True)
    randomize_batch_norm(model)
    raw = np.random.default_rng(1).uniform(
        0, 255, size=(8, 32, 32, 3)).astype('float32')
    reference = model(raw, training=False).numpy()
    for flavor in twins.FLAVORS:
        got = np.asarray(twins.build_twin(model, flavor)(raw, training=False))
        assert np.abs(got - reference).max() <= 1e-5, flavor
    converted = tflite.run(tflite.convert(twins.build_twin(model)), raw)
    assert parity.max_rel_diff(reference, converted) <= 1e-4
    assert export_lib.raw_images(np.zeros(3, np.float32)) == \
        pytest.approx(np.float32(hournas_tf.normalization.MEAN_RGB))


def test_export_checks_a_model_with_its_preprocessing_on_raw_images(
        trained_path, digits, tmp_path):
    plain = hournas_tf.load_model(trained_path)
    model = hournas_tf.build_model(SMALL, include_preprocessing=True)
    model.set_weights(plain.get_weights())
    path = str(tmp_path / 'raw.keras')
    model.save(path)
    res = run_module('hournas_tf.export', f'--model={path}',
                     f'--output_dir={tmp_path / "raw"}',
                     '--formats=tflite,saved_model', '--threads=1')
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / 'raw' / 'export_report.json').read_text())
    # Fed [0, 255] images, the model scores as the plain one on the
    # normalized images (all 359 digits test images, the check's default
    # set), and every file agrees with it.
    images, labels = digits
    plain_accuracy = float(np.mean(
        plain.predict(images, verbose=0).argmax(-1) == labels))
    assert report['passed'] and not report['warnings']
    assert report['keras_accuracy'] == pytest.approx(plain_accuracy,
                                                     abs=0.003)
    assert report['keras_accuracy'] > 0.9


@pytest.mark.parametrize('which', ['small', 'fbnet_ops'])
def test_both_twins_equal_the_keras_model(which):
    """small: a whole network with squeeze-excite and swish; fbnet_ops:
    grouped convs, channel shuffle and the cascade."""
    model = random_model(SMALL) if which == 'small' else op_chain('fbnet')
    images = np.random.default_rng(1).normal(
        size=(8, *model.inputs[0].shape[1:])).astype('float32')
    reference = model(images, training=False).numpy()
    for flavor in twins.FLAVORS:
        twin = twins.build_twin(model, flavor)
        got = np.asarray(twin(images, training=False))
        assert np.abs(got - reference).max() <= 1e-5, flavor
    grouped = [layer.name for layer in twins.build_twin(model).layers
               if layer.name.endswith('_g1')]
    assert bool(grouped) == (which == 'fbnet_ops')


def test_twin_refuses_a_layer_that_is_not_a_block():
    import keras

    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.LayerNormalization(name='norm')(inputs)
    with pytest.raises(UserError, match="layer 'norm'"):
        twins.build_twin(keras.Model(inputs, outputs))


def test_channel_slice_round_trips_its_config():
    cls = twins.channel_slice_class()
    layer = cls(2, 5, name='s')
    assert cls.from_config(layer.get_config()).get_config() == \
        layer.get_config()
    assert layer(np.ones((1, 2, 2, 8), 'float32')).shape == (1, 2, 2, 3)


# TFLite and LiteRT.

@pytest.mark.parametrize('space_name', hournas_tf.SPACE_NAMES)
def test_every_op_of_every_space_converts_to_builtins_and_runs(space_name):
    """Grouped conv, channel shuffle, squeeze-excite, swish, ReLU6,
    cascade: float32 and int8, each run in LiteRT."""
    model = op_chain(space_name)
    size, channels = model.inputs[0].shape[1], model.inputs[0].shape[-1]
    images = np.random.default_rng(1).normal(
        size=(4, size, size, channels)).astype('float32')
    reference = model(images, training=False).numpy()
    twin = twins.build_twin(model)
    data = tflite.convert(twin, 'float32')
    ops = tflite.op_counts(data)
    assert parity.max_rel_diff(reference, tflite.run(data, images)) <= 1e-4
    # Batch norm folds everywhere, grouped convs included: a MUL is only a
    # squeeze-excite gate or swish.
    if space_name in ('fbnet', 'efbnet', 'proxyless', 'mobilenetv2'):
        assert 'MUL' not in ops, ops
    int8 = tflite.convert(twin, 'int8', images)
    assert tflite.float_ops(int8) == []
    assert tflite.run(int8, images).shape == reference.shape


def test_float16_parity():
    model = op_chain('efficientnet')
    images = np.random.default_rng(1).normal(
        size=(4, *model.inputs[0].shape[1:])).astype('float32')
    reference = model(images, training=False).numpy()
    fp16 = tflite.convert(twins.build_twin(model), 'float16')
    assert parity.max_rel_diff(reference, tflite.run(fp16, images)) <= 1e-2
    assert 'DEQUANTIZE' in tflite.op_counts(fp16)


def unquantizable_model():
    import keras

    inputs = keras.Input((8, 8, 3), name='image')
    x = keras.layers.Conv2D(4, 1)(inputs)
    return keras.Model(inputs, keras.layers.Lambda(keras.ops.sin)(x))


def test_an_op_without_an_int8_kernel_is_refused_by_name():
    model = unquantizable_model()
    assert tflite.float_ops(tflite.convert(model, 'float32')) == [
        'CONV_2D', 'SIN']
    with pytest.raises(UserError, match='SIN cannot be fully int8'):
        tflite.convert(model, 'int8', random_images(4, size=8))


def test_flex_ops_are_refused():
    import keras
    import tensorflow as tf

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(keras.ops.erf)(inputs))
    with pytest.raises(UserError, match='op Erf has no builtin'):
        tflite.convert(model)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [tflite.serving_function(model)])
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    flex = converter.convert()
    assert 'CUSTOM:FlexErf' in tflite.op_counts(flex)
    with pytest.raises(UserError, match='FlexErf'):
        tflite.check_builtin(flex)


def test_int8_input_and_output_are_quantized_and_dequantized():
    detail = {'dtype': np.int8, 'quantization': (0.5, -3)}
    x = np.array([[-100.0, 0.0, 1.0, 100.0]])
    q = tflite.quantize_input(x, detail)
    assert q.dtype == np.int8 and q.tolist() == [[-128, -3, -1, 127]]
    assert tflite.dequantize_output(q, detail).tolist() == [
        [-62.5, 0.0, 1.0, 65.0]]
    assert tflite.quantize_input(x, {'dtype': np.float32}).dtype == \
        np.float32


def test_interpreter_and_latency_report_their_conditions():
    data = tflite.convert(twins.build_twin(tiny_model()))
    it, delegate = tflite.interpreter(data, threads=1)
    assert delegate == 'xnnpack'
    assert it.get_input_details()[0]['shape'].tolist() == [1, 8, 8, 3]
    result = benchmark.latency(data, threads=2, warmup=1, runs=3, repeats=2)
    assert result['median_ms'] > 0 and result['threads'] == 2
    assert {'spread', 'min_ms', 'p90_ms', 'load_average'} <= set(result)
    assert benchmark.summarize([1.0, 2.0, 3.0]) == {'median_ms': 2.0,
                                                    'spread': 1.0}
    assert benchmark.machine()['cores'] == os.cpu_count()
    assert benchmark.busy(load=1e9) and not benchmark.busy(load=0.0)
    assert benchmark.load_average() is None or benchmark.load_average() >= 0
    assert provenance.cpu_model()


def test_interpreter_falls_back_to_builtin_kernels(monkeypatch):
    """XNNPACK refusing a model (requantization scale >= 256) raises at
    allocation; the builtin kernels then run it."""
    from ai_edge_litert import interpreter as litert

    real = litert.Interpreter
    auto = litert.OpResolverType.AUTO

    class RefusingXnnpack(real):
        def allocate_tensors(self):
            if self.resolver == auto:
                raise RuntimeError('failed to create XNNPACK runtime')
            return super().allocate_tensors()

        def __init__(self, *args, experimental_op_resolver_type=auto,
                     **kwargs):
            super().__init__(*args, experimental_op_resolver_type=(
                experimental_op_resolver_type), **kwargs)
            self.resolver = experimental_op_resolver_type

    monkeypatch.setattr(litert, 'Interpreter', RefusingXnnpack)
    data = tflite.convert(twins.build_twin(tiny_model()))
    _, delegate = tflite.interpreter(data)
    assert delegate == 'builtin'
    assert tflite.run(data, random_images(2, size=8)).shape == (2, 3)


# SavedModel.

def test_saved_model_is_served_by_tensorflow_alone(tmp_path):
    model = random_model(SMALL)
    images = random_images(5)
    path = str(tmp_path / 'saved_model')
    saved_model.export_saved_model(model, path)
    logits = saved_model.serve_saved_model(path, images, batch_size=2)
    reference = model(images, training=False).numpy()
    assert parity.max_rel_diff(reference, logits) <= 1e-5
    assert saved_model.directory_bytes(path) > 0
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), 'rb') as f:
                assert b'hournas' not in f.read(), name


def test_parity_measures_and_bounds():
    reference = np.array([[1.0, 2.0], [4.0, -1.0]])
    same = parity.compare(reference, reference, labels=[1, 0])
    assert same == {'max_rel_diff': 0.0, 'max_abs_diff': 0.0,
                    'top1_agreement': 1.0, 'accuracy': 1.0}
    flipped = parity.compare(reference, reference[:, ::-1])
    assert flipped['top1_agreement'] == 0.0
    assert parity.max_rel_diff(reference, reference + 0.04) == \
        pytest.approx(0.01)
    assert parity.verdict('tflite', {'max_rel_diff': 2e-4}) == (
        False, 'max_rel_diff <= 0.0001')
    assert parity.verdict('tflite_int8', {'top1_agreement': 0.99})[0]
    assert parity.accuracy(reference, [1, 1]) == 0.5
    assert parity.top1(reference).tolist() == [1, 0]
    with pytest.raises(ValueError, match=r'logits of shape \(1, 2\)'):
        parity.compare(reference, reference[:1])


def test_check_table_names_every_artifact(tmp_path):
    model = tiny_model()
    images = random_images(6, size=8)
    labels = np.zeros(6, int)
    path = tmp_path / 'model_float32.tflite'
    path.write_bytes(tflite.convert(twins.build_twin(model)))
    row = report.check_artifact('tflite', str(path),
                                model.predict(images, verbose=0), images,
                                labels, threads=(1,))
    assert row['passed'] and row['bytes'] == report.file_bytes(str(path))
    assert set(row['latency']) == {'1'}
    result = report.run_check(model, {'tflite': str(path)}, images, labels,
                              threads=(1,))
    table = report.format_table(result)
    assert 'model_float32.tflite' in table and 'ok (max_rel_diff' in table
    assert 'load average' in table


WITHOUT_QAT = '''
import runpy, sys
sys.modules['tensorflow_model_optimization'] = None  # not installed
sys.argv = ['export'] + sys.argv[1:]
runpy.run_module('hournas_tf.export', run_name='__main__')
'''


def test_without_the_qat_extra_qat_is_refused_in_one_line(monkeypatch,
                                                         tmp_path):
    assert config_lib.qat_missing() == []  # the test extra has it
    assert config_lib.default_formats() == config_lib.FORMATS
    monkeypatch.setattr(config_lib, 'qat_missing', lambda: ['tf-keras'])
    assert 'tflite_qat' not in config_lib.default_formats()
    assert 'tflite_qat' not in config_lib.ExportConfig().formats
    message = ("the tflite_qat format needs tf-keras, not installed: pip "
               "install 'hournas_tf[qat]'")
    with pytest.raises(UserError, match=re.escape(message)):
        config_lib.check_config(config_lib.ExportConfig(
            model='m.keras', formats=('tflite', 'tflite_qat'),
            output_dir=str(tmp_path / 'out')))
    with pytest.raises(UserError, match='the tf_keras twin needs tf-keras'):
        twins.build_twin(random_model(SMALL), 'tf_keras')
    with pytest.raises(UserError, match='tflite_qat format needs tf-keras'):
        qat.quantize(None)
    monkeypatch.undo()
    # The command, with tensorflow-model-optimization unimportable.
    res = run_python('-c', WITHOUT_QAT, '--model=m.keras',
                     '--formats=tflite,tflite_qat',
                     f'--output_dir={tmp_path / "out"}')
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr == ('error: the tflite_qat format needs '
                          'tensorflow-model-optimization, not installed: '
                          "pip install 'hournas_tf[qat]'\n")
    # Without --formats, every other format (refused here for the
    # missing model file, after the formats were accepted).
    res = run_python('-c', WITHOUT_QAT, '--model=m.keras',
                     f'--output_dir={tmp_path / "out"}')
    assert res.returncode == 2
    assert res.stderr == 'error: model file m.keras does not exist\n'


def test_a_source_model_at_chance_is_warned_about():
    labels = np.array([8, 8, 1, 2, 3, 4, 5, 6, 7, 9] * 10)
    assert parity.chance(labels, 10) == 0.2
    assert parity.chance(np.arange(100) % 10, 10) == 0.1
    assert parity.near_chance(0.2, labels, 10)
    assert not parity.near_chance(0.5, labels, 10)
    assert parity.near_chance(0.0019, np.arange(1000), 1000)
    assert not parity.near_chance(0.003, np.arange(1000), 1000)
    assert not parity.near_chance(0.6, [0, 1], 2)
    # Every image classed as 8, as a checkpoint with the initial batch-norm
    # statistics was (issue 22).
    logits = np.zeros((100, 10))
    logits[:, 8] = 1.0

    class Constant:
        def predict(self, images, batch_size=None, verbose=0):
            return logits[:len(images)]

    result = report.run_check(Constant(), {}, np.zeros((100, 4, 4, 3)),
                              labels, threads=(1,))
    assert result['keras_accuracy'] == 0.2
    [warning] = result['warnings']
    assert warning.startswith('WARNING: the source model scores 0.200 on '
                              'the 100 eval images, chance level (0.200)')
    assert report.format_table(result).endswith(warning)
    logits[:50] = np.eye(10)[labels[:50]]  # half right: no warning
    result = report.run_check(Constant(), {}, np.zeros((100, 4, 4, 3)),
                              labels, threads=(1,))
    assert result['keras_accuracy'] > 0.5 and result['warnings'] == []


# The model source and the settings.

def test_model_sources_give_one_line_errors(tmp_path):
    with pytest.raises(UserError, match='does not exist'):
        source.load_model_file(str(tmp_path / 'missing.keras'))
    other = tmp_path / 'arch.json'
    other.write_text('{}')
    with pytest.raises(UserError, match='is not a Keras 3 model file'):
        source.load_model_file(str(other))
    assert source.default_weights('runs/a/arch.json') == \
        'runs/a/arch.weights.h5'
    arch = hournas_tf.Architecture.from_string(SMALL)
    arch.save(str(other))
    random_model(SMALL).save_weights(str(tmp_path / 'arch.weights.h5'))
    model = source.model_from_arch(str(other))
    assert model.count_params() > 0
    wider = arch.ops[:3] + ('k3_e6_se0.25',) + arch.ops[4:]
    hournas_tf.Architecture(arch.space, wider,
                            **arch.space_params()).save(
        str(tmp_path / 'b.json'))
    with pytest.raises(UserError, match=r'layer04/.* in the architecture '
                                        r'but .* in the file'):
        source.model_from_arch(str(tmp_path / 'b.json'),
                               str(tmp_path / 'arch.weights.h5'))


def test_check_config_refuses_bad_settings(tmp_path):
    model = tmp_path / 'm.keras'
    zipfile.ZipFile(model, 'w').close()
    good = config_lib.ExportConfig(model=str(model),
                                   output_dir=str(tmp_path / 'new'))
    config_lib.check_config(good)
    for changes, message in (
            ({'model': None}, 'give either --model'),
            ({'weights': 'w.h5'}, '--weights goes with --arch_file'),
            ({'model': 'missing.keras'}, 'model file missing.keras does '
                                          'not exist'),
            ({'formats': ('onnx',)}, "unknown format 'onnx'"),
            ({'formats': ()}, 'no format'),
            ({'qat_steps': 0}, 'qat_steps=0'),
            ({'model': os.path.join(REPO, 'configs', 'demo.flags')},
             'not a Keras 3 model file'),
            ({'threads': (0,)}, 'threads'),
            ({'output_dir': str(tmp_path)}, 'already exists')):
        with pytest.raises(UserError, match=message):
            config_lib.check_config(config_lib.ExportConfig(
                **{**good.__dict__, **changes}))


# The trained model: int8 and the command.

def test_int8_keeps_top1_agreement_on_digits(trained_path, digits):
    model = export_lib.load_model(config_lib.ExportConfig(
        model=trained_path))
    images, labels = digits
    config = config_lib.ExportConfig(model=trained_path,
                                     representative_steps=100,
                                     check_examples=len(images))
    data = export_lib.load_data(config, model)
    assert data.calibration.shape == (100, 32, 32, 3)
    np.testing.assert_array_equal(data.labels, labels)
    reference = model.predict(images, verbose=0)
    assert parity.accuracy(reference, labels) >= 0.9
    int8 = tflite.convert(twins.build_twin(model), 'int8', data.calibration)
    result = parity.compare(reference, tflite.run(int8, images), labels)
    assert result['top1_agreement'] >= 0.98, result


def test_export_command_writes_checks_and_reports(trained_path, tmp_path):
    out = tmp_path / 'export'
    res = run_module('hournas_tf.export', f'--model={trained_path}',
                     f'--output_dir={out}', '--formats=tflite,tflite_fp16',
                     '--threads=1')
    assert res.returncode == 0, res.stderr[-3000:]
    assert not res.stderr.strip(), res.stderr[-3000:]
    assert 'model_float16.tflite' in res.stdout
    data = json.loads((out / 'export_report.json').read_text())
    assert data['passed'] and data['files'] == {
        'tflite': 'model_float32.tflite',
        'tflite_fp16': 'model_float16.tflite'}
    assert {r['format'] for r in data['artifacts']} == {'tflite',
                                                        'tflite_fp16'}
    assert (out / 'export_config.json').exists()


@pytest.mark.large
def test_export_command_all_formats_pass_the_check(trained_path, tmp_path):
    out = tmp_path / 'export'
    res = run_module('hournas_tf.export', f'--model={trained_path}',
                     f'--output_dir={out}')
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    data = json.loads((out / 'export_report.json').read_text())
    rows = {r['format']: r for r in data['artifacts']}
    assert set(rows) == set(config_lib.FORMATS)
    assert all(r['passed'] for r in rows.values()), rows
    for fmt in ('tflite_int8', 'tflite_qat'):
        assert rows[fmt]['top1_agreement'] >= 0.98
        assert rows[fmt]['bytes'] < rows['tflite']['bytes'] / 2
    assert set(rows['tflite']['latency']) == {'1', '2'}
    assert sorted(os.listdir(out)) == sorted(
        [*config_lib.FILES.values(), config_lib.REPORT_FILE,
         config_lib.CONFIG_FILE, STDERR_LOG])


@pytest.mark.large
def test_export_command_from_an_arch_file_and_its_weights(trained_path,
                                                          tmp_path):
    """--arch_file with --weights elsewhere (not next to it): the trained
    weights are the ones exported (a random model scores ~10%)."""
    model = hournas_tf.load_model(trained_path)
    arch_file, weights = tmp_path / 'arch.json', tmp_path / 'w.weights.h5'
    hournas_tf.Architecture.from_string(SMALL).save(str(arch_file))
    model.save_weights(str(weights))
    out = tmp_path / 'export'
    res = run_module('hournas_tf.export', f'--arch_file={arch_file}',
                     f'--weights={weights}', f'--output_dir={out}',
                     '--formats=tflite', '--threads=1')
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads((out / 'export_report.json').read_text())
    assert data['model'] == str(arch_file) and data['passed']
    assert data['files'] == {'tflite': 'model_float32.tflite'}
    assert data['keras_accuracy'] >= 0.9, data
    [row] = data['artifacts']
    assert row['passed'] and row['top1_agreement'] >= 0.99, row


@pytest.mark.large
def test_qat_model_is_fully_integer_and_agrees(trained_path, digits,
                                               monkeypatch):
    from hournas_tf.exporting import qat

    # Importing tfmot sets TF_USE_LEGACY_KERAS; keep it out of other tests.
    monkeypatch.setenv('TF_USE_LEGACY_KERAS', os.environ.get(
        'TF_USE_LEGACY_KERAS', '0'))
    model = export_lib.load_model(config_lib.ExportConfig(
        model=trained_path))
    images, labels = digits
    config = config_lib.ExportConfig(model=trained_path)
    data = export_lib.load_data(config, model)
    qat_model, metrics = qat.qat_model(model, data.train, config.qat_steps,
                                       config.qat_learning_rate)
    assert 'accuracy' in metrics
    int8 = tflite.convert(qat_model, 'qat_int8')
    assert tflite.float_ops(int8) == []
    reference = model.predict(images, verbose=0)
    result = parity.compare(reference, tflite.run(int8, images), labels)
    assert result['top1_agreement'] >= 0.98, result
    again = qat.quantize(twins.build_twin(model, 'tf_keras'))
    assert qat.fine_tune(again, data.train, steps=1)['loss'] > 0


def test_bad_inputs_exit_2_with_one_line_and_leave_nothing(tmp_path):
    out = tmp_path / 'out'
    cases = (
        ([f'--model={tmp_path / "missing.keras"}'], 'does not exist'),
        (['--model=configs/demo.flags'], 'not a Keras 3 model file'),
        (['--model=x.keras', '--arch_file=a.json'], 'give either'),
    )
    for args, message in cases:
        res = run_module('hournas_tf.export', *args, f'--output_dir={out}')
        assert message in check_refused(res)
        assert not out.exists()


def test_weights_of_another_architecture_name_the_layer(tmp_path):
    arch = hournas_tf.Architecture.from_string(SMALL)
    arch.save(str(tmp_path / 'arch.json'))
    wider = arch.ops[:3] + ('k5_e6_se0.25',) + arch.ops[4:]
    other = hournas_tf.Architecture(arch.space, wider, **arch.space_params())
    random_model(other).save_weights(str(tmp_path / 'arch.weights.h5'))
    out = tmp_path / 'out'
    res = run_module('hournas_tf.export',
                     f'--arch_file={tmp_path / "arch.json"}',
                     f'--output_dir={out}')
    line = check_refused(res)
    assert 'do not fit the architecture' in line and 'layer04/' in line
    assert not out.exists()


def test_an_existing_export_folder_is_refused_untouched(tmp_path):
    out = tmp_path / 'export'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    model = tmp_path / 'model.keras'
    zipfile.ZipFile(model, 'w').close()  # never opened: refused before
    res = run_module('hournas_tf.export', f'--model={model}',
                     f'--output_dir={out}')
    assert 'already exists' in check_refused(res)
    assert os.listdir(out) == ['keep.txt']
    assert (out / 'keep.txt').read_text() == 'mine'
