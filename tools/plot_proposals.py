"""The proposal distribution (the paper's figure 3) without training.

    python tools/plot_proposals.py --space=efficientnet --image_size=32 \\
        --width_multiplier=0.25 --target_macs=10e6 --target_params=0.25e6
    python tools/plot_proposals.py --space=fbnet --target_macs=295e6 \\
        --target_params=4.8e6 --num_proposals=8 --output=fig3.png

Fixes the vital ops (`--vital_ops`, default the largest op of each vital
layer, changed where needed to keep the targets reachable), optimizes the
m space proposals over the non-vital layers (`--vital_first=false`: over
every layer) and plots 10,000 architectures sampled from them at several
temperatures, with the target and the tolerance box: the same code as the
search's proposals_stage2.png (`nas.proposal_report.optimize`). Writes the PNG
(`--output`) and the numbers next to it as JSON.
"""

import os

from absl import flags

from hournas_tf import command_flags
from hournas_tf import spaces
from hournas_tf.common import jsonio
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError
from hournas_tf.nas import config as config_lib


def define_flags():
    d = config_lib.preset('demo')
    command_flags.define_space_flags(command_flags.demo_space())
    command_flags.define_target_flags()
    flags.DEFINE_integer('num_proposals', d.num_proposals,
                         'Number of space proposals m.',
                         lower_bound=1)
    flags.DEFINE_integer('proposal_iters', d.proposal_iters, 'Iterations '
                         'of the proposal optimization.', lower_bound=1)
    flags.DEFINE_float('beta', d.beta, 'Weight of the orthogonality term.')
    flags.DEFINE_bool('vital_first', d.vital_first, 'Fix the vital ops and '
                      'propose the non-vital layers (false: every layer).')
    flags.DEFINE_list('vital_ops', None, 'Vital ops (one per vital layer, '
                      'or "max", the default).')
    flags.DEFINE_integer('seed', d.seed, 'Random seed.')
    flags.DEFINE_string('output', 'proposals.png', 'The PNG to write (the '
                        'JSON goes next to it).')


def config_from_flags(f):
    targets = {obj: float(v) for obj, v in (('macs', f.target_macs),
                                            ('params', f.target_params))
               if v is not None}
    if not targets:
        raise UserError('give --target_macs and/or --target_params')
    folder = os.path.dirname(os.path.abspath(f.output))
    if not os.path.isdir(folder):
        raise UserError(f'folder {folder} does not exist')
    if not f.output.endswith('.png'):
        raise UserError(f'--output={f.output} must end in .png')
    return config_lib.SearchConfig(
        space=f.space, dataset='digits', image_size=f.image_size,
        num_classes=f.num_classes, width_multiplier=f.width_multiplier,
        targets=targets, num_proposals=f.num_proposals,
        proposal_iters=f.proposal_iters, beta=f.beta, tolerance=f.tolerance,
        vital_first=f.vital_first,
        vital_ops=tuple(f.vital_ops) if f.vital_ops else None, seed=f.seed,
        output_dir=folder)


def main(argv):
    if len(argv) > 1:
        raise UserError(f'unexpected arguments {argv[1:]}; use --flags')
    f = flags.FLAGS
    config = config_from_flags(f)
    from hournas_tf.nas import proposal_report
    from hournas_tf.nas import search_lib

    # The search's checks, less the data set's (no data is read here).
    config_lib.check_config(config)
    search_lib.whole_space_check(spaces.get_space(
        config.space, image_size=config.image_size,
        num_classes=config.num_classes,
        width_multiplier=config.width_multiplier), config.targets)
    space, vital_ops, searched = search_lib.untrained_plan(config)
    _, _, _, info = proposal_report.optimize(space, searched, vital_ops, config,
                                        f.output)
    path = f.output[:-len('.png')] + '.json'
    jsonio.write_json(path, {
        'space': space.name, 'image_size': space.image_size,
        'width_multiplier': space.width_multiplier,
        'targets': config.targets, 'tolerance': config.tolerance,
        'vital_ops': {i + 1: op for i, op in vital_ops.items()},
        'searched_layers': [i + 1 for i in searched], **info},
        default=float)
    print(f'wrote {f.output} and {path}')


if __name__ == '__main__':
    define_flags()
    runner.run(main)
