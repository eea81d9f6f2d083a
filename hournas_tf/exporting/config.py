"""Export settings: `ExportConfig` and its validation (pure Python).

Kept free of TensorFlow so the command rejects a bad value, a missing file
or an existing output folder before the slow imports.
"""

import dataclasses
import importlib.util
import math
import os
import zipfile

from hournas_tf.common.errors import UserError
from hournas_tf.common.errors import choices
from hournas_tf.data.pipelines import parse_dataset_name
from hournas_tf.output_dir import check_new

FORMATS = ('saved_model', 'tflite', 'tflite_fp16', 'tflite_int8',
           'tflite_qat')
# Format -> file or folder in the output folder.
FILES = {
    'saved_model': 'saved_model',
    'tflite': 'model_float32.tflite',
    'tflite_fp16': 'model_float16.tflite',
    'tflite_int8': 'model_int8.tflite',
    'tflite_qat': 'model_qat_int8.tflite',
}
# The modules of the QAT format and of the tf_keras twin: the `qat` extra
# (pip install 'hournas_tf[qat]'), module -> its package.
QAT_MODULES = {'tensorflow_model_optimization':
               'tensorflow-model-optimization', 'tf_keras': 'tf-keras'}
REPORT_FILE = 'export_report.json'
CONFIG_FILE = 'export_config.json'


def qat_missing():
    """The packages of the `qat` extra that are not installed."""
    return [package for module, package in QAT_MODULES.items()
            if importlib.util.find_spec(module) is None]


def require_qat(what='the tflite_qat format'):
    """Raises UserError (one line) unless the `qat` extra is installed."""
    missing = qat_missing()
    if missing:
        raise UserError(f'{what} needs {" and ".join(missing)}, not '
                        "installed: pip install 'hournas_tf[qat]'")


def default_formats():
    """Every format, but tflite_qat without the `qat` extra."""
    if qat_missing():
        return tuple(f for f in FORMATS if f != 'tflite_qat')
    return FORMATS


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Everything an export needs (the command fills it from flags).

    `formats` defaults to every format, tflite_qat only with the `qat`
    extra. `model` is a `.keras` file; otherwise `arch_file` and `weights`
    (default: the `.weights.h5` next to `arch_file`). `dataset` and
    `data_dir` give calibration images and QAT fine-tuning batches (the
    training split) and the check's images (the eval split).
    """

    model: str = None
    arch_file: str = None
    weights: str = None
    formats: tuple = dataclasses.field(default_factory=default_formats)
    output_dir: str = None
    dataset: str = 'digits'
    data_dir: str = None
    representative_steps: int = 200
    qat_steps: int = 100
    qat_learning_rate: float = 1e-5
    batch_size: int = 32
    check: bool = True
    check_examples: int = 1000
    threads: tuple = (1, 2)
    seed: int = 0


def check_config(config):
    """Raises UserError for a bad setting, a missing input file or an
    existing output folder; touches nothing."""
    if bool(config.model) == bool(config.arch_file):
        raise UserError('give either --model (a .keras file) or --arch_file '
                        '(with --weights)')
    if config.weights and not config.arch_file:
        raise UserError('--weights goes with --arch_file; a .keras model '
                        'file has its weights')
    if not config.formats:
        raise UserError(f'no format given; choose from {choices(FORMATS)}')
    for fmt in config.formats:
        if fmt not in FORMATS:
            raise UserError(f'unknown format {fmt!r}; valid: '
                            f'{choices(FORMATS)}')
    if 'tflite_qat' in config.formats:
        require_qat()
    for name in ('representative_steps', 'qat_steps', 'batch_size',
                 'check_examples'):
        if getattr(config, name) < 1:
            raise UserError(f'{name}={getattr(config, name)!r} must be >= 1')
    if not 0 < config.qat_learning_rate < math.inf:
        raise UserError(f'qat_learning_rate={config.qat_learning_rate!r} '
                        'must be > 0 and finite')
    parse_dataset_name(config.dataset)
    if not config.threads or any(t < 1 for t in config.threads):
        raise UserError(f'threads={list(config.threads)!r} must be '
                        'positive thread counts')
    for what, path in (('model file', config.model),
                       ('architecture file', config.arch_file),
                       ('weights file', config.weights)):
        if path and not os.path.isfile(path):
            raise UserError(f'{what} {path} does not exist')
    if config.model and not (config.model.endswith('.keras')
                             and zipfile.is_zipfile(config.model)):
        raise UserError(f'model file {config.model} is not a Keras 3 model '
                        'file (.keras, written by model.save); for an '
                        'architecture and weights use --arch_file and '
                        '--weights')
    if not config.output_dir:
        raise UserError('no output_dir given')
    check_new(config.output_dir)
