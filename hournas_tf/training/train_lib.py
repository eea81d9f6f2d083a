"""Retraining as a library: `run_training(config, strategy)` and
`dry_run(config, shape)`.

1. The output folder is checked (new, or an interrupted run of the same
   settings to resume; anything else is refused before it changes). A new
   folder is removed again if the run fails before training starts.
2. Data: all of the training split (augmented, optional cutout) and the
   eval split, labels one-hot.
3. The model is `build_model(arch)` with the run's dropout and stochastic
   depth. With inherited weights (checked layer by layer first), a plain
   `build_model(arch)` loads them, its batch-norm statistics are
   recalibrated on training batches and it is evaluated: the quick
   estimate. Its weights then start the training.
4. `model.fit` with the recipe (`recipes.py`) and the callbacks
   (`callbacks.py`); with EMA the averaged weights replace the trained ones
   at the end.
5. The batch-norm statistics of the final weights are recalibrated on
   training batches. Keras's moving averages (momentum 0.99 in most
   spaces) start at mean 0 / variance 1 and keep 0.99^steps of that start:
   after a short run (digits: 22 steps an epoch) they are far from the
   statistics of the trained weights, and EMA weights never had their own.
6. Evaluation on the eval split; model.keras and metrics.json.
   The checkpoints get recalibrated statistics too, so that every .keras
   file of a finished run is a usable model: `checkpoints/last.keras` is
   a copy of model.keras (the last epoch's weights), and
   `checkpoints/best.keras`, when an earlier epoch, is recalibrated the
   same way (`_finish_checkpoints`).

The eval split is only evaluated: nothing is chosen by it.
"""

import dataclasses
import json
import os
import shutil
import statistics
import sys
import time

from hournas_tf import data
from hournas_tf.common import jsonio
from hournas_tf.common import preemption
from hournas_tf.common.errors import UserError
from hournas_tf.common.preemption import oom_message
from hournas_tf.common.runner import log
from hournas_tf.resources import counting
from hournas_tf.spaces.architecture import Architecture
from hournas_tf.training import config as config_lib
from hournas_tf.training import run_dir

MODEL_FILE = 'model.keras'


def _architecture(config):
    return dataclasses.replace(Architecture.from_string(config.arch),
                               name=config.arch_name)


def schedule_steps(config, num_train):
    """(steps per epoch, total steps, warm-up steps) of `config`."""
    steps = num_train // config.batch_size
    return (steps, steps * config.epochs,
            round(config.warmup_epochs * steps))


def dry_run(config, shape):
    """The resolved settings, MACs/params and steps, without training;
    returns them as a dict (also printed)."""
    config_lib.check_config(config)
    check_batch(config, shape.num_train)
    cost = counting.arch_cost(_architecture(config)).total
    steps, total, warmup = schedule_steps(config, shape.num_train)
    summary = {
        'config': config_lib.to_json(config),
        'macs': int(cost.macs),
        'params': int(cost.params),
        'num_train': shape.num_train,
        'num_eval': shape.num_eval,
        'num_classes': shape.num_classes,
        'steps_per_epoch': steps,
        'total_steps': total,
        'warmup_steps': warmup,
    }
    print(json.dumps(summary, indent=2), flush=True)
    log(f'{config.arch_name}: {counting.human(cost.macs)} MACs, '
        f'{counting.human(cost.params)} params; {steps} steps per epoch x '
        f'{config.epochs} epochs = {total} steps ({warmup} warm-up), batch '
        f'{config.batch_size}; dry run, nothing trained or written')
    return summary


def check_batch(config, num_train):
    """Raises UserError when the batch is larger than the training split."""
    if config.batch_size > num_train:
        raise UserError(f'batch_size {config.batch_size} is larger than the '
                        f'{num_train} training images of {config.dataset}; '
                        'use a smaller batch_size')


def _data_config(config):
    return data.DataConfig(dataset=config.dataset, data_dir=config.data_dir,
                           image_size=config.image_size,
                           batch_size=config.batch_size, seed=config.seed,
                           cutout=config.cutout,
                           validation_fraction=config.validation_fraction,
                           train_examples=config.train_examples)


def _one_hot(dataset, num_classes):
    import tensorflow as tf

    return dataset.map(lambda x, y: (x, tf.one_hot(y, num_classes)),
                       num_parallel_calls=tf.data.AUTOTUNE)


def _compile(model, config, steps_per_epoch, num_classes):
    from hournas_tf.training import recipes

    model.compile(optimizer=recipes.make_optimizer(config, steps_per_epoch),
                  loss=recipes.make_loss(config.label_smoothing),
                  metrics=recipes.make_metrics(num_classes))
    recipes.add_kernel_weight_decay(model, config.weight_decay)


def _evaluate(model, dataset):
    """{metric name: value} of `model` on `dataset`."""
    results = model.evaluate(dataset, verbose=0, return_dict=True)
    return {k: float(v) for k, v in results.items()}


def _recalibrate(model, arch, train, config):
    """Recalibrates the batch-norm statistics of `model` on training
    batches; returns the batches used. Dropout acts after the last batch
    norm, but stochastic depth would put its noise into the statistics:
    with it on, a plain twin with the same weights is recalibrated and its
    weights are copied back."""
    from hournas_tf.blocks.model import build_model
    from hournas_tf.training import recalibration

    target = model
    if config.drop_path_rate:
        target = build_model(arch)
        target.set_weights(model.get_weights())
    used = recalibration.recalibrate_batch_norm(
        target, train, config.bn_recalibration_batches)
    if target is not model:
        model.set_weights(target.get_weights())
    return used


def _finish_checkpoints(config, arch, train, evaluation, model_accuracy):
    """Recalibrated batch-norm statistics in `checkpoints/`: last.keras
    becomes a copy of model.keras; best.keras, the epoch with the lowest
    training loss, is model.keras too when that is the last epoch, or
    else is loaded, recalibrated like the model and saved again. Returns
    {file name: eval accuracy} of the checkpoints: `model_accuracy`
    (model.keras's) for a copy, which is the same file, and a loaded
    checkpoint's own score for the other."""
    import keras

    from hournas_tf.training import callbacks as callbacks_lib

    folder = os.path.join(config.output_dir, callbacks_lib.CHECKPOINT_DIR)
    model_file = os.path.join(config.output_dir, MODEL_FILE)
    losses = [row[callbacks_lib.MONITOR] for row in
              callbacks_lib.read_history(config.output_dir)
              if callbacks_lib.MONITOR in row]
    last_is_best = bool(losses) and losses[-1] == min(losses)
    accuracies = {}
    for name in ('last.keras', 'best.keras'):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        partial = f'{path}.partial.keras'
        if name == 'last.keras' or last_is_best:
            shutil.copyfile(model_file, partial)
            accuracies[name] = model_accuracy
        else:
            checkpoint = keras.saving.load_model(path)
            _recalibrate(checkpoint, arch, train, config)
            checkpoint.save(partial)
            accuracies[name] = _evaluate(checkpoint, evaluation)['accuracy']
        os.replace(partial, path)
    return accuracies


def _inherited_estimate(arch, config, train, evaluation, num_classes):
    """A plain `build_model(arch)` with the inherited weights and
    recalibrated batch-norm statistics, and its scores on the eval split
    before and after the recalibration."""
    from hournas_tf.blocks.model import build_model
    from hournas_tf.training import recipes

    plain = build_model(arch)
    plain.load_weights(config.inherit_weights)
    plain.compile(loss=recipes.make_loss(0.0),
                  metrics=recipes.make_metrics(num_classes))
    before = _evaluate(plain, evaluation)
    _recalibrate(plain, arch, train, config)
    scores = _evaluate(plain, evaluation)
    return plain, {
        'weights': config.inherit_weights,
        'accuracy': scores['accuracy'],
        'cross_entropy': scores['cross_entropy'],
        'accuracy_before_recalibration': before['accuracy'],
    }


def _images_per_second(durations, steps, batch):
    """Training throughput, leaving out the first epoch (tracing) when
    there are others."""
    if not durations:
        return None
    steady = durations[1:] or durations
    return steps * batch / statistics.median(steady)


def _versions():
    import keras
    import tensorflow as tf

    return {'tensorflow': tf.__version__, 'keras': keras.__version__}


def _load_data(config, arch, strategy):
    """(TrainData, one-hot train, one-hot eval) for `config`."""
    train_data = data.load_train_data(_data_config(config), strategy)
    info = train_data.info
    if (info.image_size, info.num_classes) != (arch.image_size,
                                               arch.num_classes):
        raise UserError(f'architecture is for {arch.image_size}px images '
                        f'and {arch.num_classes} classes, the data for '
                        f'{info.image_size}px and {info.num_classes}')
    return (train_data, _one_hot(train_data.train, info.num_classes),
            _one_hot(train_data.eval, info.num_classes))


def _metrics(config, info, scores, history, durations, steps):
    """The metrics.json dict (timings and the estimate are added later)."""
    cost = counting.arch_cost(_architecture(config)).total
    metrics = {
        'architecture': config.arch,
        'arch_name': config.arch_name,
        'dataset': config.dataset,
        'eval_split': info.eval_split,
        'num_train': info.num_train,
        'num_eval': info.num_eval,
        'macs': int(cost.macs),
        'params': int(cost.params),
        'epochs': config.epochs,
        'test_accuracy': scores['accuracy'],
        'test_cross_entropy': scores['cross_entropy'],
        'test_loss': scores['loss'],
        'train_loss': _last(history, 'loss'),
        'train_accuracy': _last(history, 'accuracy'),
        'epochs_run': len(durations),
        'resumed_from_epoch': (config.epochs - len(durations)
                               if config.epochs else 0),
        'images_per_second': _images_per_second(durations, steps,
                                                config.batch_size),
        'versions': _versions(),
    }
    if 'top5_accuracy' in scores:
        metrics['test_top5_accuracy'] = scores['top5_accuracy']
    return metrics


def _last(history, key):
    if history is None or not history.history.get(key):
        return None
    return float(history.history[key][-1])


def _prepare_model(config, arch, strategy, train, evaluation, info, steps):
    """(compiled model, inherited-weight estimate or None)."""
    from hournas_tf.blocks.model import build_model
    from hournas_tf.training import recipes
    from hournas_tf.training import weights as weights_lib

    with recipes.precision_policy(config.mixed_precision), strategy.scope():
        model = build_model(arch, name=config.arch_name,
                            dropout=config.dropout,
                            drop_path_rate=config.drop_path_rate,
                            sync_batch_norm=config.sync_batch_norm)
        inherited = None
        if config.inherit_weights:
            weights_lib.load_weights(model, config.inherit_weights)
            plain, inherited = _inherited_estimate(
                arch, config, train, evaluation, info.num_classes)
            model.set_weights(plain.get_weights())
            log(f'inherited weights {config.inherit_weights}: eval accuracy '
                f'{inherited["accuracy"]:.4f} after batch-norm '
                'recalibration '
                f'({inherited["accuracy_before_recalibration"]:.4f} before)')
        _compile(model, config, steps, info.num_classes)
    return model, inherited


def run_training(config, strategy=None, callbacks=()):
    """`train` below; SIGTERM: a backup, then a line saying how to resume
    (returns None)."""
    return preemption.preemptible(train, config, strategy, callbacks)


def train(config, strategy=None, callbacks=(), sigterm=None):
    """Trains `config.arch`; returns the dict written to metrics.json.

    `callbacks` are added after the run's own (see `callbacks.py`). A new
    output folder is removed again when the run fails before training
    starts (bad data, weights that do not fit).
    """
    start = time.perf_counter()
    config_lib.check_config(config)
    state = run_dir.check_output_dir(config)
    arch = _architecture(config)
    import keras
    import tensorflow as tf

    from hournas_tf.training import callbacks as callbacks_lib
    from hournas_tf.training import recipes

    with run_dir.output_folder(config, state) as output:
        if state == run_dir.RESUME:
            log(f'resuming the interrupted run in {config.output_dir}')
        keras.utils.set_random_seed(config.seed)
        strategy = strategy or tf.distribute.get_strategy()
        train_data, train, evaluation = _load_data(config, arch, strategy)
        info, steps = train_data.info, train_data.steps_per_epoch
        model, inherited = _prepare_model(config, arch, strategy, train,
                                          evaluation, info, steps)
        output.keep()  # Training starts: a failure now keeps the folder.
    cost = counting.arch_cost(arch).total
    if config.epochs:
        log(f'training {config.arch_name} ({counting.human(cost.macs)} '
            f'MACs, {counting.human(cost.params)} params) on '
            f'{config.dataset}: {info.num_train} images, {steps} steps x '
            f'{config.epochs} epochs, batch {config.batch_size}')
    run_callbacks = callbacks_lib.make_callbacks(
        config.output_dir, ema=config.ema_momentum > 0,
        every=config.checkpoint_every, sigterm=sigterm,
        resume=' '.join(['python -m hournas_tf.train'] + sys.argv[1:]))
    timer = run_callbacks[-1]
    fit_start = time.perf_counter()
    history = None
    if config.epochs:
        try:
            history = model.fit(train.repeat(), epochs=config.epochs,
                                steps_per_epoch=steps,
                                callbacks=run_callbacks + list(callbacks),
                                verbose=config.verbose, shuffle=False)
        except tf.errors.ResourceExhaustedError as e:
            raise UserError(oom_message(e, config.batch_size)) from None
    fit_seconds = time.perf_counter() - fit_start
    recalibrated = 0
    if config.epochs:
        with recipes.precision_policy(config.mixed_precision), \
                strategy.scope():
            recalibrated = _recalibrate(model, arch, train, config)
    scores = _evaluate(model, evaluation)
    model.save(os.path.join(config.output_dir, MODEL_FILE))
    checkpoints = {}
    if config.epochs:
        with recipes.precision_policy(config.mixed_precision), \
                strategy.scope():
            checkpoints = _finish_checkpoints(config, arch, train,
                                              evaluation,
                                              scores['accuracy'])
    metrics = _metrics(config, info, scores, history, timer.durations, steps)
    metrics['checkpoint_test_accuracy'] = checkpoints
    metrics.update(bn_recalibration_batches=recalibrated,
                   train_seconds=fit_seconds,
                   wall_seconds=time.perf_counter() - start)
    if inherited:
        metrics['inherited'] = inherited
    jsonio.write_json(os.path.join(config.output_dir,
                                    run_dir.METRICS_FILE), metrics)
    shutil.rmtree(os.path.join(config.output_dir, callbacks_lib.BACKUP_DIR),
                  ignore_errors=True)
    log(f'test accuracy {metrics["test_accuracy"]:.4f} on the '
        f'{info.num_eval} images of the {info.eval_split} split'
        + (f' (inherited weights alone: {inherited["accuracy"]:.4f})'
           if inherited else '')
        + (f'; {fit_seconds:.0f}s training' if config.epochs else '')
        + f'; wrote {config.output_dir}')
    return metrics
