"""Flag groups that more than one command defines (search, train)."""

from absl import flags

from hournas_tf import distribute

# The flags belong to the command that defines them (its --help lists
# them), not to this module.
flags.disclaim_key_flags()


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
