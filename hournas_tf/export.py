"""Export command: SavedModel and TFLite files of a trained model, checked.

    python -m hournas_tf.export --model=runs/train/model.keras
    python -m hournas_tf.export --arch_file=runs/demo/arch.json \\
        --formats=saved_model,tflite --check=false

Writes the requested formats (default: all) into `--output_dir` (default:
`export` next to the model file; an existing folder is refused), then runs
the deployment check on the dataset's eval split: parity with the Keras
model, accuracy and LiteRT latency per file, printed as a table and
written to `export_report.json`. Exit code 1 if a file misses its bound.
"""

import os
import sys

from absl import flags

from hournas_tf import command_flags
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError
from hournas_tf.exporting import config as config_lib


def define_flags():
    """Defines the command's flags (`--flagfile` reads them from a file)."""
    flags.DEFINE_string('model', None, 'A Keras 3 model file (.keras) of '
                        'a hournas_tf architecture, e.g. the model.keras '
                        'of python -m hournas_tf.train.')
    command_flags.define_arch_flags(arch=False, notes={
        'arch_file': 'Instead of --model, with --weights.'})
    flags.DEFINE_string('weights', None, 'Weights of --arch_file (default: '
                        'the .weights.h5 next to it, as a search writes).')
    flags.DEFINE_list('formats', list(config_lib.FORMATS),
                      'Formats to write: ' + ', '.join(config_lib.FORMATS)
                      + ' (tflite_qat needs the qat extra: pip install '
                      "'hournas_tf[qat]'; left out of the default "
                      'without it).')
    flags.DEFINE_string('output_dir', None, 'New folder for the files '
                        '(default: export/ next to the model file; an '
                        'existing folder is refused).')
    command_flags.define_data_flags('digits', use=(
        'Dataset of the int8 calibration and QAT (training split) and of '
        'the check (eval split)'))
    flags.DEFINE_integer('representative_steps', 200, 'Training images '
                         'that calibrate the int8 ranges.', lower_bound=1)
    flags.DEFINE_integer('qat_steps', 100, 'Quantization-aware '
                         'fine-tuning steps.', lower_bound=1)
    flags.DEFINE_float('qat_learning_rate', 1e-5, 'Adam learning rate of '
                       'the QAT fine-tuning.')
    flags.DEFINE_integer('batch_size', 32, 'Batch size of the QAT '
                         'fine-tuning.', lower_bound=1)
    flags.DEFINE_bool('check', True, 'Run the deployment check and print '
                      'its table.')
    flags.DEFINE_integer('check_examples', 1000, 'Eval images of the '
                         'check (at most).', lower_bound=1)
    flags.DEFINE_list('threads', ['1', '2'], 'LiteRT thread counts to '
                      'time.')
    flags.DEFINE_integer('seed', 0, 'Random seed.')


def _threads(values):
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise UserError(f'--threads={",".join(values)} must be integers') \
            from None


def config_from_flags(f):
    """An `ExportConfig` from parsed flags."""
    output_dir = f.output_dir or os.path.join(
        os.path.dirname(f.model or f.arch_file or '.'), 'export')
    return config_lib.ExportConfig(
        model=f.model, arch_file=f.arch_file, weights=f.weights,
        formats=(tuple(f.formats) if f['formats'].present
                 else config_lib.default_formats()),
        output_dir=output_dir,
        dataset=f.dataset, data_dir=f.data_dir,
        representative_steps=f.representative_steps,
        qat_steps=f.qat_steps, qat_learning_rate=f.qat_learning_rate,
        batch_size=f.batch_size, check=f.check,
        check_examples=f.check_examples, threads=_threads(f.threads),
        seed=f.seed)


def main(argv):
    if len(argv) > 1:
        raise UserError(f'unexpected arguments {argv[1:]}; use --flags')
    config = config_from_flags(flags.FLAGS)
    # Cheap checks first: a bad value fails before TensorFlow loads.
    config_lib.check_config(config)
    from hournas_tf.exporting import export_lib

    report = export_lib.run_export(config)
    failed = [f'{r["format"]} ({r["bound"]})'
              for r in report.get('artifacts', []) if not r['passed']]
    if failed:
        print(f'deployment check FAILED: {", ".join(failed)}; see '
              f'{config.output_dir}/{config_lib.REPORT_FILE}', flush=True)
        sys.exit(1)


if __name__ == '__main__':
    define_flags()
    runner.run(main)
