"""Export as a library: `run_export(ExportConfig(...))`.

1. Checks the settings, loads the model (a `.keras` file, or an
   architecture and its weights) and builds its Keras 3 export twin
   (`twins.py`): every mistake fails here, before a file is written.
2. Loads the dataset where needed: the training split gives the int8
   calibration images and the QAT fine-tuning batches, the eval split the
   images of the deployment check.
3. Writes each requested format into a new output folder
   (`output_dir.new_output_dir`): the TFLite files first (a model that
   cannot be converted fails fast), then the SavedModel, then QAT. If
   anything fails the folder is removed, so a failed export leaves nothing
   behind; an existing non-empty folder is refused.
4. Runs the deployment check (`report.py`) and writes
   `export_report.json`.
"""

import dataclasses
import os
import time

import numpy as np

from hournas_tf.common import jsonio
from hournas_tf.common.errors import UserError
from hournas_tf.common.runner import log
from hournas_tf.exporting import config as config_lib
from hournas_tf.exporting import source
from hournas_tf.exporting import twins
from hournas_tf.normalization import MEAN_RGB
from hournas_tf.normalization import STDDEV_RGB
from hournas_tf.output_dir import new_output_dir

# Conversion order: fast, and most likely to fail on a bad op, first.
ORDER = ('tflite', 'tflite_fp16', 'tflite_int8', 'saved_model', 'tflite_qat')
TFLITE_MODES = {'tflite': 'float32', 'tflite_fp16': 'float16',
                'tflite_int8': 'int8'}


def load_model(config):
    """The Keras model named by `config` (UserError for a bad file)."""
    if config.model:
        return source.load_model_file(config.model)
    return source.model_from_arch(config.arch_file, config.weights)


@dataclasses.dataclass(frozen=True)
class ExportData:
    """Calibration images, QAT batches and the check's eval images."""

    calibration: np.ndarray
    train: object
    images: np.ndarray
    labels: np.ndarray


def _take(dataset, count):
    images, labels = [], []
    for x, y in dataset.unbatch().take(count).batch(256):
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def raw_images(images):
    """Normalized images (numpy or tensors) back in [0, 255], what a model
    built with `include_preprocessing` takes."""
    return images * np.float32(STDDEV_RGB) + np.float32(MEAN_RGB)


def load_data(config, model):
    """`ExportData` of `config.dataset` at the model's image size (in
    [0, 255] for a model with its preprocessing inside)."""
    from hournas_tf import data as data_lib
    from hournas_tf.blocks.model import takes_raw_images

    size = int(model.inputs[0].shape[1])
    classes = int(model.outputs[0].shape[-1])
    data_config = data_lib.DataConfig(
        dataset=config.dataset, data_dir=config.data_dir, image_size=size,
        batch_size=config.batch_size, seed=config.seed)
    info = data_lib.dataset_info(data_config)
    if info.num_classes != classes:
        raise UserError(f'dataset {config.dataset!r} has {info.num_classes}'
                        f' classes but the model outputs {classes}')
    train = data_lib.load_train_data(data_config)
    batches, evaluation = train.train, train.eval
    if takes_raw_images(model):
        batches = batches.map(lambda x, y: (raw_images(x), y))
        evaluation = evaluation.map(lambda x, y: (raw_images(x), y))
    calibration, _ = _take(batches, config.representative_steps)
    images, labels = _take(evaluation, config.check_examples)
    return ExportData(calibration, batches, images, labels)


def _write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def write_format(fmt, path, model, twin, data, config):
    """Writes one format to `path`; returns its seconds."""
    from hournas_tf.exporting import saved_model
    from hournas_tf.exporting import tflite

    start = time.perf_counter()
    if fmt == 'saved_model':
        saved_model.export_saved_model(model, path)
    elif fmt == 'tflite_qat':
        from hournas_tf.exporting import qat

        qat_model, metrics = qat.qat_model(
            model, data.train, config.qat_steps, config.qat_learning_rate)
        log(f'  QAT: {config.qat_steps} fine-tuning steps, last batch '
            f'accuracy {metrics.get("accuracy", float("nan")):.3f}')
        _write(path, tflite.convert(qat_model, 'qat_int8'))
    else:
        _write(path, tflite.convert(
            twin, TFLITE_MODES[fmt],
            data.calibration if data is not None else None))
    return time.perf_counter() - start


def _needs_data(config):
    return config.check or bool(
        {'tflite_int8', 'tflite_qat'} & set(config.formats))


def run_export(config):
    """Exports and checks; returns the report dict (see the module
    docstring). Raises UserError for a user mistake, before any file is
    written where it can be detected there."""
    config_lib.check_config(config)
    model = load_model(config)
    twin = twins.build_twin(model, 'keras')
    data = load_data(config, model) if _needs_data(config) else None
    log(f'exporting {model.name} ({model.count_params():,} parameters, '
        f'input {tuple(model.inputs[0].shape[1:])}) to {config.output_dir}')
    artifacts, seconds = {}, {}
    with new_output_dir(config.output_dir):
        jsonio.write_json(
            os.path.join(config.output_dir, config_lib.CONFIG_FILE),
            dataclasses.asdict(config))
        for fmt in (f for f in ORDER if f in config.formats):
            path = os.path.join(config.output_dir, config_lib.FILES[fmt])
            seconds[fmt] = write_format(fmt, path, model, twin, data, config)
            artifacts[fmt] = path
            log(f'wrote {path} in {seconds[fmt]:.1f}s')
        artifacts = {f: artifacts[f] for f in config_lib.FORMATS
                     if f in artifacts}
        report = {'model': config.model or config.arch_file,
                  'dataset': config.dataset, 'seconds': seconds,
                  'files': {f: os.path.basename(p)
                            for f, p in artifacts.items()}}
        if config.check:
            from hournas_tf.exporting import report as report_lib

            log(f'deployment check on {len(data.images)} eval images')
            report.update(report_lib.run_check(
                model, artifacts, data.images, data.labels, config.threads))
            print(report_lib.format_table(report), flush=True)
        jsonio.write_json(
            os.path.join(config.output_dir, config_lib.REPORT_FILE), report)
    return report
