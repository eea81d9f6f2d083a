"""Flag groups that more than one command or tool defines: the space,
the targets, the architecture, the data, the distribution. One
definition each; a command passes its defaults."""

from absl import flags

from hournas_tf import distribute
from hournas_tf import spaces
from hournas_tf.spaces import references

# The flags belong to the command that defines them (its --help lists
# them), not to this module.
flags.disclaim_key_flags()

DATASETS = ('digits, fashion_mnist[:PATH] (offline from its IDX files in '
            'PATH), cifar10, imagenet2012 or image_folder:PATH (one '
            'subfolder of images per class)')


class _SpaceParser(flags.EnumParser):
    """`--space`: one of the spaces; the error names the bad value."""

    def parse(self, argument):
        if argument not in self.enum_values:
            raise ValueError(
                f'value should be one of <{"|".join(self.enum_values)}>: '
                f'unknown space {argument!r}')
        return argument


def _help(text, notes, name):
    note = (notes or {}).get(name)
    return f'{text} {note}' if note else text


def define_space_flags(defaults, notes=None):
    """Defines those of --space, --image_size, --width_multiplier and
    --num_classes that `defaults` (name -> default) names; `notes` (name
    -> text) adds to a flag's help, e.g. what its None default means."""
    if 'space' in defaults:
        flags.DEFINE(_SpaceParser(spaces.SPACE_NAMES), 'space',
                     defaults['space'], _help(
                         'Search space: ' + ', '.join(spaces.SPACE_NAMES)
                         + '.', notes, 'space'),
                     serializer=flags.ArgumentSerializer())
    if 'image_size' in defaults:
        flags.DEFINE_integer('image_size', defaults['image_size'], _help(
            'Input size; <= 64 uses the CIFAR layout.', notes,
            'image_size'), lower_bound=8)
    if 'width_multiplier' in defaults:
        flags.DEFINE_float('width_multiplier', defaults['width_multiplier'],
                           _help('Scales every channel count (rounded to '
                                 '8).', notes, 'width_multiplier'),
                           lower_bound=0.01)
    if 'num_classes' in defaults:
        flags.DEFINE_integer('num_classes', defaults['num_classes'], _help(
            'Classifier outputs.', notes, 'num_classes'), lower_bound=2)


def demo_space(**changes):
    """The space flags' defaults of the demo search (the `demo` preset; 10
    classes: digits'), with `changes`."""
    from hournas_tf.nas import config as config_lib

    demo = config_lib.preset('demo')
    return {'space': demo.space, 'image_size': demo.image_size,
            'width_multiplier': demo.width_multiplier, 'num_classes': 10,
            **changes}


def define_target_flags(macs=None, params=None, latency=False, notes=None):
    """--target_macs, --target_params (defaults `macs`, `params`),
    --tolerance, and with `latency` --target_latency_ms."""
    flags.DEFINE_float('target_macs', macs, _help(
        'Whole-network MACs target (e.g. 295e6).', notes, 'target_macs'))
    flags.DEFINE_float('target_params', params, _help(
        'Whole-network trainable-parameter target (e.g. 4.8e6).', notes,
        'target_params'))
    if latency:
        flags.DEFINE_float('target_latency_ms', None, 'Whole-network '
                           'latency target in ms, predicted by '
                           '--latency_table.')
    flags.DEFINE_float('tolerance', 0.03, 'Relative tolerance of "what you '
                       'set is what you get".')


def define_latency_table_flag(use):
    """--latency_table: a latency table of the space; `use` says what the
    command does with it."""
    flags.DEFINE_string('latency_table', None, 'A latency table of the '
                        f'space (tools/build_latency_table.py): {use}.')


def define_arch_flags(arch=True, notes=None):
    """--arch (unless not `arch`) and --arch_file."""
    if arch:
        flags.DEFINE_string('arch', None, _help(
            'A reference architecture name ('
            + ', '.join(references.REFERENCE_NAMES)
            + ') or a compact architecture string.', notes, 'arch'))
    flags.DEFINE_string('arch_file', None, _help(
        'An architecture JSON file (e.g. the arch.json a search wrote).',
        notes, 'arch_file'))


def define_data_flags(dataset, use=None):
    """--dataset (default `dataset`; `use` says what the command reads
    from it) and --data_dir."""
    flags.DEFINE_string('dataset', dataset, (f'{use}: ' if use else '')
                        + DATASETS + '.')
    flags.DEFINE_string('data_dir', None, 'tensorflow-datasets data dir '
                        '(digits: its cache).')


def define_validation_flag(default, reads):
    """--validation_fraction (default `default`); `reads` says what then
    reads the held-out part."""
    flags.DEFINE_float('validation_fraction', default,
                       'Hold out this fraction of the training split (its '
                       'last examples in stored order, fixed); ' + reads,
                       lower_bound=0.0, upper_bound=0.99)


def define_strategy_flags(default):
    """The distribution flags of search and train (`--strategy`
    defaults to `default`)."""
    flags.DEFINE_enum('strategy', default, distribute.STRATEGIES,
                      'tf.distribute strategy: default (one device), '
                      'mirrored (local GPUs, or --cpu_replicas CPU devices), '
                      'multi_worker_mirrored (TF_CONFIG) or tpu (--tpu).')
    flags.DEFINE_string('tpu', None, 'The TPU of --strategy=tpu: a name, '
                        'a grpc:// address or local (a TPU VM).')
    flags.DEFINE_integer('cpu_replicas', 1, 'Split the CPU into this many '
                         'logical devices for --strategy=mirrored (a '
                         'laptop run of the mirrored code path).',
                         lower_bound=1)
    flags.DEFINE_bool('sync_batch_norm', False, 'Batch-norm statistics over '
                      'all replicas, not per replica (docs/distribute.md).')
