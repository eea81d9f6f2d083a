"""Prints the README's table of reference architectures (analytic counts).

    python tools/reference_table.py [--image_size=224]
"""

import sys

from absl import app
from absl import flags

from hournas_tf import arch as arch_lib
from hournas_tf import counting

flags.DEFINE_integer('image_size', 224, 'Input size.')


def table(image_size):
    lines = ['| architecture | space | MACs | params (trainable) | weights '
             '(kernels) | Keras count_params |',
             '|---|---|---:|---:|---:|---:|']
    for name in arch_lib.REFERENCE_NAMES:
        arch = arch_lib.get_reference(name, image_size=image_size)
        c = counting.arch_cost(arch).total
        lines.append(f'| {name} | {arch.space} | {c.macs:,} | {c.params:,} '
                     f'| {c.weights:,} | {c.keras_params:,} |')
    return '\n'.join(lines)


def main(argv):
    del argv
    print(table(flags.FLAGS.image_size))


if __name__ == '__main__':
    sys.exit(app.run(main))
