"""Block importance of a trained model (the paper's figure 2).

    python tools/block_importance.py --model=runs/mbv2/model.keras
    python tools/block_importance.py --model=runs/demo-train/model.keras \\
        --probabilities=0.3,0.6,1.0 --seeds=3

One block at a time (stem, every searchable layer, head), each channel of
its output (of its residual branch, for a block with an identity
shortcut) is zeroed with probability p, and the test-split accuracy drop is
averaged over mask seeds. Writes block_importance.json and
block_importance.png (vital blocks marked) into `--output_dir` (default:
block_importance/ next to the model) and prints whether the vital blocks
lose more accuracy on average than the non-vital ones.
"""

import os

from absl import flags

from hournas_tf import command_flags
from hournas_tf.common import jsonio
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError


def define_flags():
    flags.DEFINE_string('model', None, 'A .keras model of a hournas_tf '
                        'architecture (e.g. model.keras of python -m '
                        'hournas_tf.train).')
    command_flags.define_arch_flags(notes={
        'arch': "The model's (default: the arch of train_config.json next "
                'to the model).',
        'arch_file': 'Instead of --arch.'})
    command_flags.define_data_flags('digits', use=(
        'Dataset whose test (eval) split is measured'))
    flags.DEFINE_list('probabilities', ['0.3', '0.6', '1.0'],
                      'Masking probabilities p.')
    flags.DEFINE_integer('seeds', 3, 'Mask seeds averaged per block and p.',
                         lower_bound=1)
    flags.DEFINE_integer('batch_size', 256, 'Evaluation batch size.',
                         lower_bound=1)
    flags.DEFINE_string('output_dir', None, 'Where the JSON and the plot '
                        'go (default: block_importance/ next to the '
                        'model).')


def resolve_arch(model_path, arch, arch_file):
    """The model's `Architecture`: `--arch` (a reference name or a compact
    string) or `--arch_file`, else the `arch` of the train_config.json
    next to the model."""
    from hournas_tf.spaces.architecture import Architecture
    from hournas_tf.training.resolve import resolve_architecture

    if arch or arch_file:
        return resolve_architecture(arch, arch_file)
    path = os.path.join(os.path.dirname(model_path), 'train_config.json')
    if not os.path.isfile(path):
        raise UserError(f'no --arch and no {path}: give the model\'s '
                        'architecture with --arch or --arch_file')
    return Architecture.from_string(
        jsonio.read_json(path, 'training config')['arch'])


def probabilities(values):
    """The masking probabilities of `--probabilities`, each in (0, 1]."""
    try:
        ps = [float(v) for v in values]
    except ValueError:
        raise UserError(f'--probabilities must be numbers, got '
                        f'{values}') from None
    for p in ps:
        if not 0 < p <= 1:
            raise UserError(f'probability {p:g} must be in (0, 1]')
    return ps


def main(argv):
    if len(argv) > 1:
        raise UserError(f'unexpected arguments {argv[1:]}; use --flags')
    f = flags.FLAGS
    if not f.model:
        raise UserError('give --model=PATH.keras')
    if not os.path.isfile(f.model):
        raise UserError(f'model {f.model} does not exist')
    ps = probabilities(f.probabilities)
    arch = resolve_arch(f.model, f.arch, f.arch_file)
    from hournas_tf.training import resolve

    # Known data sets' class counts, before TensorFlow loads.
    shape = resolve.dataset_shape(f.dataset, f.data_dir, arch.image_size,
                                  arch)
    if shape.num_classes != arch.num_classes:
        raise UserError(f'the model has {arch.num_classes} classes, '
                        f'{f.dataset} has {shape.num_classes}')
    output_dir = f.output_dir or os.path.join(
        os.path.dirname(os.path.abspath(f.model)), 'block_importance')
    import keras

    import hournas_tf.blocks.layers  # noqa: F401 (registers the layers)
    from hournas_tf import data as data_lib
    from hournas_tf.training import block_importance as bi

    model = keras.saving.load_model(f.model, compile=False)
    bi.check_model(model, arch)
    train_data = data_lib.load_train_data(data_lib.DataConfig(
        dataset=f.dataset, data_dir=f.data_dir, image_size=arch.image_size,
        batch_size=f.batch_size))
    info = train_data.info
    result = bi.importance(model, arch, train_data.eval, ps,
                           tuple(range(f.seeds)))
    result = {'model': f.model, 'architecture': arch.to_string(),
              'dataset': f.dataset, 'eval_split': info.eval_split,
              'num_eval': info.num_eval, **result}
    os.makedirs(output_dir, exist_ok=True)
    jsonio.write_json(os.path.join(output_dir, 'block_importance.json'),
                      result)
    bi.plot(result, f'block importance of {arch.name or arch.space} on '
            f'{f.dataset} ({info.eval_split})',
            os.path.join(output_dir, 'block_importance.png'))
    for r in result['blocks']:
        mark = 'vital' if r['vital'] else ''
        print(f'{r["name"]:>5} {mark:5} ' + ' '.join(
            f'p={p}: {100 * d["drop"]:+6.2f}'
            for p, d in r['drops'].items()))
    print(f'baseline accuracy {result["baseline_accuracy"]:.4f}; mean drop '
          f'vital {100 * result["vital_mean_drop"]:.2f} points, non-vital '
          f'{100 * result["non_vital_mean_drop"]:.2f}: vital blocks lose '
          + ('more' if result['vital_lose_more'] else 'NOT more')
          + f'; wrote {output_dir}')


if __name__ == '__main__':
    define_flags()
    runner.run(main)
