"""Prints the README's table of reference architectures (analytic counts).

    python tools/reference_table.py [--image_size=224]
"""



from absl import flags

from hournas_tf import command_flags
from hournas_tf import spaces
from hournas_tf.common import errors
from hournas_tf.common import runner
from hournas_tf.resources import counting


def define_flags():
    """Defines the tool's flags (only when run as a script)."""
    command_flags.define_space_flags({'image_size': 224})


def table(image_size):
    """The markdown table of every reference architecture at `image_size`."""
    lines = ['| architecture | space | MACs | params (trainable) | weights '
             '(kernels) | Keras count_params |',
             '|---|---|---:|---:|---:|---:|']
    for name in spaces.REFERENCE_NAMES:
        arch = spaces.get_reference(name, image_size=image_size)
        c = counting.arch_cost(arch).total
        lines.append(f'| {name} | {arch.space} | {c.macs:,} | {c.params:,} '
                     f'| {c.weights:,} | {c.keras_params:,} |')
    return '\n'.join(lines)


def main(argv):
    if len(argv) > 1:
        raise errors.UserError(f'unexpected arguments {argv[1:]}; use --flags')
    print(table(flags.FLAGS.image_size))


if __name__ == '__main__':
    define_flags()
    runner.run(main)
