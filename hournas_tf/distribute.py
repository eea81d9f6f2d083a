"""tf.distribute strategies by name, and logical CPU devices.

`make_strategy(name, tpu, cpu_replicas)` is called by the commands (search,
train) before anything touches TensorFlow's devices; the libraries take the
strategy it returns. TensorFlow is imported lazily: `check_strategy` is
pure, so a bad value fails before the slow import.

- `default`: one device (TensorFlow's default strategy).
- `mirrored`: `MirroredStrategy` over all local GPUs, or with
  `cpu_replicas=N` over N logical CPU devices (the CPU split by
  `split_cpu`), so mirrored runs on a laptop and in tests.
- `multi_worker_mirrored`: `MultiWorkerMirroredStrategy`; the cluster comes
  from the `TF_CONFIG` environment variable of each worker.
- `tpu`: `TPUStrategy` on the TPU at `tpu` (a name or grpc:// address;
  `local` for a TPU VM).
"""

from hournas_tf.common.errors import UserError
from hournas_tf.common.errors import choices

STRATEGIES = ('default', 'mirrored', 'multi_worker_mirrored', 'tpu')


def check_strategy(name, tpu=None, cpu_replicas=1):
    """Raises UserError unless the strategy settings fit together."""
    if name not in STRATEGIES:
        raise UserError(f'unknown strategy {name!r}; valid: '
                        f'{choices(STRATEGIES)}')
    if name == 'tpu' and not tpu:
        raise UserError('strategy tpu needs --tpu=ADDRESS (a TPU name, a '
                        'grpc:// address or local)')
    if tpu and name != 'tpu':
        raise UserError(f'--tpu={tpu!r} needs --strategy=tpu, not {name!r}')
    if not isinstance(cpu_replicas, int) or cpu_replicas < 1:
        raise UserError(f'cpu_replicas={cpu_replicas!r} must be an '
                        'integer >= 1')
    if cpu_replicas > 1 and name != 'mirrored':
        raise UserError(f'cpu_replicas={cpu_replicas} needs '
                        f'--strategy=mirrored, not {name!r}')


def split_cpu(count):
    """Splits the CPU into `count` logical devices (before TensorFlow
    initializes its devices); returns their names."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices('CPU')[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is None or len(current) != count:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError as e:
            raise UserError(f'cannot split the CPU into {count} devices: '
                            f'TensorFlow has initialized its devices ({e})'
                            ) from None
    return [d.name for d in tf.config.list_logical_devices('CPU')]


def make_strategy(name, tpu=None, cpu_replicas=1):
    """The strategy called `name` (see the module docstring)."""
    check_strategy(name, tpu, cpu_replicas)
    import tensorflow as tf

    if name == 'mirrored':
        if cpu_replicas > 1:
            return tf.distribute.MirroredStrategy(split_cpu(cpu_replicas))
        return tf.distribute.MirroredStrategy()
    if name == 'multi_worker_mirrored':
        return _multi_worker_mirrored()
    if name == 'tpu':
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    return tf.distribute.get_strategy()


def _multi_worker_mirrored():
    """`MultiWorkerMirroredStrategy` whose `reduce` takes what Keras 3's
    `fit` gives it (tensorflow/tensorflow#72388):

    - a nested value: `fit` reduces its first batch to learn the input
      shapes, and this strategy reduces one tensor at a time (a nested
      value is not supported there yet), so with 2 or more workers
      `fit` failed with "Attempt to convert a value (PerReplica ...) with
      an unsupported type to a Tensor";
    - `axis=0` for a scalar: `fit` averages every log value with `axis=0`
      on this strategy ("Invalid reduction dimension 0 for input with 0
      dimensions"); a scalar is averaged over the replicas.
    """
    import tensorflow as tf

    class MultiWorkerMirrored(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            parent = super()

            def one(v):
                local = self.experimental_local_results(v)[0]
                scalar = getattr(local, 'shape', None) is not None and \
                    local.shape.rank == 0
                return parent.reduce(reduce_op, v,
                                     None if scalar else axis)

            return tf.nest.map_structure(one, value)

    return MultiWorkerMirrored()
