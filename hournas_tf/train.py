"""Retrains an architecture with plain Keras `model.fit`.

    python -m hournas_tf.train --arch_file=runs/demo/arch.json   # digits
    python -m hournas_tf.train --arch=fbnet_b \\
        --flagfile=configs/train_fbnet_imagenet.flags --data_dir=/data/tfds
    python -m hournas_tf.train --arch_file=runs/demo/arch.json \\
        --inherit_weights=runs/demo --epochs=0     # the quick estimate

The flag defaults are the embedded digits run (a few minutes on a laptop
CPU); the paper's recipes are flagfiles in configs/ (docs/train.md).
"""

from absl import flags

from hournas_tf import command_flags
from hournas_tf import distribute
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError
from hournas_tf.training import config as config_lib
from hournas_tf.training import resolve
from hournas_tf.training import run_dir
from hournas_tf.training import train_lib
from hournas_tf.training import weights

DEFAULTS = config_lib.TrainConfig(arch='')


def define_flags():
    """Defines the command's flags (`--flagfile` reads them from a file)."""
    d = DEFAULTS
    # Architecture and data.
    command_flags.define_arch_flags()
    command_flags.define_data_flags(d.dataset)
    command_flags.define_validation_flag(
        d.validation_fraction, 'evaluate on it instead of the eval split; '
        '0: train on all of train, evaluate on the eval split (test).')
    command_flags.define_space_flags({'image_size': None}, notes={
        'image_size': '(default: 32 for digits, fashion_mnist and cifar10, '
                      "224 for imagenet2012, the architecture's for image "
                      'folders). The architecture is rebuilt for it with '
                      'the same ops.'})
    # Recipe.
    flags.DEFINE_integer('epochs', d.epochs, 'Training epochs (0: only '
                         'evaluate --inherit_weights).', lower_bound=0)
    flags.DEFINE_integer('batch_size', d.batch_size, 'Global batch size '
                         '(split over replicas).', lower_bound=1)
    flags.DEFINE_float('learning_rate', d.learning_rate, 'Peak learning '
                       'rate of SGD (momentum 0.9), reached after the '
                       'warm-up, then cosine decay to 0.')
    flags.DEFINE_float('warmup_epochs', d.warmup_epochs, 'Linear warm-up '
                       'epochs from 0.')
    flags.DEFINE_float('weight_decay', d.weight_decay, 'L2 on conv and '
                       'dense kernels (gradient weight_decay * w).')
    flags.DEFINE_float('label_smoothing', d.label_smoothing,
                       'Label smoothing of the cross-entropy.')
    flags.DEFINE_float('dropout', d.dropout, 'Dropout before the '
                       "classifier (default: the space's, 0.2 for mnasnet "
                       'and efficientnet, else 0).')
    flags.DEFINE_float('drop_path_rate', d.drop_path_rate, 'Stochastic '
                       'depth of the last layer (linear in depth).')
    flags.DEFINE_float('ema_momentum', d.ema_momentum, 'Exponential moving '
                       'average of the weights (e.g. 0.9999; 0: off).')
    flags.DEFINE_integer('cutout', d.cutout, 'Cutout square side in pixels '
                         '(0: off).', lower_bound=0)
    flags.DEFINE_bool('mixed_precision', d.mixed_precision, 'Train under '
                      'the mixed_float16 policy (GPUs).')
    # Inherited weights.
    flags.DEFINE_string('inherit_weights', None, 'A search run directory '
                        '(its arch.weights.h5) or a .weights.h5 file of '
                        'build_model(arch): start from these weights after '
                        'batch-norm recalibration, and report their '
                        'accuracy as a quick estimate.')
    flags.DEFINE_integer('bn_recalibration_batches',
                         d.bn_recalibration_batches, 'Training batches '
                         'for the batch-norm recalibration (of inherited '
                         'weights, and of the weights after training).',
                         lower_bound=1)
    # Run.
    flags.DEFINE_string('output_dir', None, 'Where to write the run '
                        '(default: runs/train-<arch>-<time>). Rerunning '
                        'the same command resumes an interrupted run; '
                        'other folders in use are refused.')
    command_flags.define_strategy_flags(d.strategy)
    flags.DEFINE_integer('seed', d.seed, 'Random seed.')
    flags.DEFINE_integer('checkpoint_every', d.checkpoint_every, 'Steps '
                         'between backups in <output_dir>/backup (also at '
                         'every epoch end); rerun the same command to '
                         'resume.', lower_bound=1)
    flags.DEFINE_bool('dry_run', False, 'Print the resolved settings, the '
                      "model's MACs/params and the steps per epoch; train "
                      'nothing.')
    flags.DEFINE_integer('verbose', d.verbose, 'Keras fit verbosity: 0 '
                         'quiet, 1 progress bars, 2 one line per epoch and '
                         'the log lines of TensorFlow, absl and '
                         'tensorflow-datasets (held back otherwise).')


def config_from_flags(f):
    """(TrainConfig, DatasetShape) from parsed flags; the architecture is
    fitted to the dataset (one log line when it changes)."""
    arch = resolve.resolve_architecture(f.arch, f.arch_file)
    shape = resolve.dataset_shape(f.dataset, f.data_dir, f.image_size, arch,
                                  f.validation_fraction)
    arch, note = resolve.fit_architecture(arch, shape.image_size,
                                          shape.num_classes)
    if note:
        train_lib.log(note)
    inherit = (weights.resolve_weights_file(f.inherit_weights)
               if f.inherit_weights else None)
    name = arch.name or arch.space
    config = config_lib.TrainConfig(
        arch=arch.to_string(), arch_name=name, dataset=f.dataset,
        data_dir=f.data_dir, image_size=shape.image_size,
        validation_fraction=f.validation_fraction, epochs=f.epochs,
        batch_size=f.batch_size, learning_rate=f.learning_rate,
        warmup_epochs=f.warmup_epochs, weight_decay=f.weight_decay,
        label_smoothing=f.label_smoothing, dropout=f.dropout,
        drop_path_rate=f.drop_path_rate, ema_momentum=f.ema_momentum,
        cutout=f.cutout, mixed_precision=f.mixed_precision,
        inherit_weights=inherit,
        bn_recalibration_batches=f.bn_recalibration_batches, seed=f.seed,
        output_dir=f.output_dir or run_dir.default_output_dir(name),
        strategy=f.strategy, tpu=f.tpu, cpu_replicas=f.cpu_replicas,
        sync_batch_norm=f.sync_batch_norm, verbose=f.verbose,
        checkpoint_every=f.checkpoint_every)
    return config, shape


def main(argv):
    if len(argv) > 1:
        raise UserError(f'unexpected arguments {argv[1:]}; use --flags')
    config, shape = config_from_flags(flags.FLAGS)
    if flags.FLAGS.dry_run:
        train_lib.dry_run(config, shape)
        return
    # Cheap checks first: bad values fail before TensorFlow loads.
    config_lib.check_config(config)
    train_lib.check_batch(config, shape.num_train)
    run_dir.check_output_dir(config)
    train_lib.run_training(config, distribute.make_strategy(
        config.strategy, config.tpu, config.cpu_replicas))


if __name__ == '__main__':
    define_flags()
    runner.run(main, show_logs=lambda f: f.verbose >= 2,
               skip_teardown=True)
