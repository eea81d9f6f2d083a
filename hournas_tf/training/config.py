"""Retraining settings: `TrainConfig` and its validation (pure Python).

Kept free of TensorFlow so that the train command rejects a bad value before
the slow imports. The defaults are the embedded digits run (docs/train.md);
the paper's recipes are flagfiles in configs/.
"""

import dataclasses
import math

from hournas_tf.common.errors import UserError
from hournas_tf.distribute import check_strategy

# Fields that do not change what is trained: a run resumed with other
# values of these is the same run (the folder is the run).
NOT_COMPARED = ('output_dir', 'verbose', 'checkpoint_every', 'tpu')


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a retraining run needs (the command fills it from flags).

    `arch` is the compact string of the architecture as trained, already
    fitted to the dataset's image size and classes. `inherit_weights` is a
    `.weights.h5` file of `build_model(arch)` (or None). `dropout` None keeps
    the space's rate. `ema_momentum` 0 is off. `warmup_epochs` may be a
    fraction. `validation_fraction` > 0 trains on the training split less
    its last `validation_fraction` and evaluates on that held-out part
    instead of the eval split (`hournas_tf.data.DataConfig`).
    `train_examples` 0 trains on all of the training split, N on its
    first N examples (a cheaper run; the eval split is unchanged).
    """

    arch: str
    arch_name: str = None
    dataset: str = 'digits'
    data_dir: str = None
    image_size: int = 32
    validation_fraction: float = 0.0
    train_examples: int = 0  # 0: all; else the first N (data.DataConfig)
    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 0.1
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    dropout: float = None
    drop_path_rate: float = 0.0
    ema_momentum: float = 0.0
    cutout: int = 0
    mixed_precision: bool = False
    inherit_weights: str = None
    bn_recalibration_batches: int = 50
    seed: int = 0
    output_dir: str = 'runs/train'
    strategy: str = 'default'
    tpu: str = None          # the TPU of strategy 'tpu'
    cpu_replicas: int = 1    # logical CPU devices of strategy 'mirrored'
    sync_batch_norm: bool = False  # batch statistics over all replicas
    verbose: int = 1
    checkpoint_every: int = 200  # steps between backups (+ epoch ends)


def _finite(value):
    """False for nan, inf and an int too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_range(config, name, low, high=None, low_open=False):
    value = getattr(config, name)
    too_low = value <= low if low_open else value < low
    finite = _finite(value)
    if too_low or (high is not None and value >= high) or not finite:
        bound = f'> {low}' if low_open else f'>= {low}'
        if high is not None:
            bound += f' and < {high}'
        kind = '' if finite else 'a finite number '
        raise UserError(f'{name}={value!r} must be {kind}{bound}')


def check_config(config):
    """Raises UserError for settings outside their valid range."""
    for name, low in (('epochs', 0), ('batch_size', 1), ('cutout', 0),
                      ('train_examples', 0),
                      ('bn_recalibration_batches', 1), ('image_size', 8),
                      ('checkpoint_every', 1),
                      ('warmup_epochs', 0), ('weight_decay', 0)):
        _check_range(config, name, low)
    _check_range(config, 'learning_rate', 0, low_open=True)
    for name in ('momentum', 'label_smoothing', 'drop_path_rate',
                 'ema_momentum'):
        _check_range(config, name, 0, 1)
    _check_range(config, 'validation_fraction', 0, 1)
    if config.dropout is not None:
        _check_range(config, 'dropout', 0, 1)
    if config.epochs and config.warmup_epochs >= config.epochs:
        raise UserError(f'warmup_epochs={config.warmup_epochs!r} must be '
                        f'below epochs={config.epochs!r}; lower '
                        '--warmup_epochs')
    if config.epochs == 0 and not config.inherit_weights:
        raise UserError('epochs=0 trains nothing: it only evaluates '
                        'inherited weights; give --inherit_weights or '
                        'epochs >= 1')
    if config.cutout > config.image_size:
        raise UserError(f'cutout={config.cutout} is larger than the '
                        f'image_size {config.image_size}')
    if config.verbose not in (0, 1, 2):
        raise UserError(f'verbose={config.verbose!r} must be 0, 1 or 2')
    check_strategy(config.strategy, config.tpu, config.cpu_replicas)


def to_json(config):
    """A JSON-ready dict of `config` (train_config.json)."""
    return dataclasses.asdict(config)


def first_difference(config, stored):
    """(name, value here, value stored) of the first setting in which
    `config` differs from the dict `stored`, ignoring `NOT_COMPARED`;
    None when they are the same run."""
    here = to_json(config)
    for name in sorted(set(here) | set(stored)):
        if name in NOT_COMPARED:
            continue
        if here.get(name) != stored.get(name):
            return name, here.get(name), stored.get(name)
    return None
