"""Input pipeline speed beside the model's training-step consumption.

Measures the retraining input pipeline (`load_train_data(...).train`) in
images/s, then how many images/s a training step of FBNet-B (the
`fbnet_b` reference, built by `hournas_tf.build_model` for the dataset's
image size and classes) consumes on one fixed batch, and prints both and
their ratio; a ratio above 1 means the pipeline is not the bottleneck.

    python -m tools.bench_input --dataset=digits
    python tools/bench_input.py --dataset=image_folder:/data/pets --json=-
"""

import json
import os
import time

from absl import flags

from hournas_tf import command_flags
from hournas_tf.common import errors
from hournas_tf.common import jsonio
from hournas_tf.common import runner

FLAGS = flags.FLAGS


def define_flags():
    """Defines the tool's flags (only when run as a script)."""
    command_flags.define_data_flags('digits')
    command_flags.define_space_flags({'image_size': None}, notes={
        'image_size': "(default: the dataset's)"})
    flags.DEFINE_integer('batch_size', 64, 'Global batch size.',
                         lower_bound=1)
    flags.DEFINE_string('cache', 'auto', 'auto, memory or none.')
    flags.DEFINE_integer('batches', 100, 'Pipeline batches to time (after one '
                         'warm-up pass of at most 200 batches).',
                         lower_bound=1)
    flags.DEFINE_integer('train_steps', 10, 'Training steps to time (after 2 '
                         'warm-up steps).', lower_bound=1)
    flags.DEFINE_string('json', None, "Also write the results as JSON to this "
                        "file ('-' for stdout).")


def time_pipeline(dataset, warmup, batches):
    """(images/s, seconds) of `batches` batches after `warmup` batches."""
    iterator = iter(dataset.repeat())
    for _ in range(warmup):
        next(iterator)
    images = 0
    start = time.perf_counter()
    for _ in range(batches):
        x, _ = next(iterator)
        images += int(x.shape[0])
    seconds = time.perf_counter() - start
    return images / seconds, seconds


def time_training(model, x, y, steps):
    """(images/s, seconds) of `steps` train steps on one batch, warmed up."""
    for _ in range(2):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - start
    return steps * int(x.shape[0]) / seconds, seconds


def bench(config, batches, train_steps):
    """Returns the results dict for a `DataConfig`."""
    import keras

    import hournas_tf
    from hournas_tf import data

    if batches < 1 or train_steps < 1:
        raise errors.UserError('--batches and --train_steps must be positive')
    train = data.load_train_data(config)
    info = train.info
    warmup = min(train.steps_per_epoch, 200)
    pipeline_ips, pipeline_s = time_pipeline(train.train, warmup, batches)

    arch = hournas_tf.get_reference(
        'fbnet_b', image_size=info.image_size, num_classes=info.num_classes
    )
    model = hournas_tf.build_model(arch)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = next(iter(train.train))
    model_ips, model_s = time_training(model, x, y, train_steps)
    return {
        'dataset': config.dataset,
        'image_size': info.image_size,
        'batch_size': config.batch_size,
        'num_train': info.num_train,
        'model': 'fbnet_b',
        'pipeline_images_per_s': round(pipeline_ips, 1),
        'pipeline_batches': batches,
        'pipeline_seconds': round(pipeline_s, 3),
        'model_images_per_s': round(model_ips, 1),
        'train_steps': train_steps,
        'model_seconds': round(model_s, 3),
        'ratio': round(pipeline_ips / model_ips, 2),
    }


def main(argv):
    if len(argv) > 1:
        raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
    from absl import logging

    from hournas_tf import data

    if not FLAGS['verbosity'].present:
        logging.set_verbosity(logging.WARNING)  # tfds logs every read.
    config = data.DataConfig(
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        image_size=FLAGS.image_size,
        batch_size=FLAGS.batch_size,
        cache=FLAGS.cache,
    )
    data.check_config(config)
    if FLAGS.json not in (None, '-'):
        folder = os.path.dirname(os.path.abspath(FLAGS.json))
        if not os.path.isdir(folder):
            raise errors.UserError(f'--json={FLAGS.json}: folder {folder} '
                                   'does not exist')
    result = bench(config, FLAGS.batches, FLAGS.train_steps)
    verdict = (
        'the input pipeline is not the bottleneck' if result['ratio'] >= 1
        else 'the input pipeline is the bottleneck'
    )
    print(f"dataset {result['dataset']}, image size {result['image_size']}, "
          f"batch {result['batch_size']}")
    print(f"pipeline:  {result['pipeline_images_per_s']:10.1f} images/s")
    print(f"fbnet_b training step: {result['model_images_per_s']:10.1f} "
          f'images/s')
    print(f"ratio pipeline/model: {result['ratio']:.2f} ({verdict})")
    if FLAGS.json == '-':
        print(json.dumps(result, indent=2))
    elif FLAGS.json:
        jsonio.write_json(FLAGS.json, result)


if __name__ == '__main__':
    define_flags()
    runner.run(main)
