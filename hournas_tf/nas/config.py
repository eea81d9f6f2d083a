"""Search settings: `SearchConfig` in parts (`SpaceDataConfig`,
`AlgorithmConfig`, `RuntimeConfig`), each validating itself, the shared
validation rules, and named presets (pure Python).

Kept free of TensorFlow so that the commands can reject a bad value before
the slow imports.
"""

import dataclasses
import math
import numbers

from hournas_tf.common.errors import UserError
from hournas_tf.common.errors import choices
from hournas_tf.distribute import check_strategy
from hournas_tf.resources.counting import OBJECTIVES
from hournas_tf.resources.latency import OBJECTIVE as LATENCY

SAMPLERS = ('gumbel_max', 'gumbel_softmax', 'softmax')
DERIVATIONS = ('in_budget', 'argmax')
RESOURCE_ESTIMATES = ('expected', 'draw')
ORTHOGONALITY = ('centered', 'probabilities', 'logits')
REDUCTIONS = ('sum', 'mean')


# --- Validation rules (used by every config here and `SupernetConfig`) ----

def check_choice(obj, name, valid):
    """Raises UserError unless `obj.name` is one of `valid`."""
    if getattr(obj, name) not in valid:
        raise UserError(f'unknown {name} {getattr(obj, name)!r}; '
                        f'valid: {choices(valid)}')


def check_positive(obj, *names):
    """Raises UserError unless each `obj.name` is > 0 and finite (None
    passes: a default left open)."""
    for name in names:
        value = getattr(obj, name)
        if value is not None and not 0 < value < math.inf:
            raise UserError(f'{name}={value!r} must be > 0 and finite')


def check_nonnegative(obj, *names):
    """Raises UserError unless each `obj.name` is >= 0 and finite."""
    for name in names:
        if not 0 <= getattr(obj, name) < math.inf:
            raise UserError(f'{name}={getattr(obj, name)!r} must be >= '
                            '0 and finite')


def check_integer(obj, name, low):
    """Raises UserError unless `obj.name` is an integer >= `low` (None
    passes)."""
    value = getattr(obj, name)
    if value is None:
        return
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) \
            or value < low:
        raise UserError(f'{name}={value!r} must be an integer >= {low}')


def check_unit(obj, name, closed=True):
    """Raises UserError unless `obj.name` is in [0, 1] (`closed`) or
    [0, 1)."""
    value = getattr(obj, name)
    if not (0 <= value <= 1 if closed else 0 <= value < 1):
        raise UserError(f'{name}={value!r} must be in '
                        f'[0, 1{"]" if closed else ")"}')


def check_tau_decay(obj):
    if not 0 < obj.tau_decay <= 1:
        raise UserError(f'tau_decay={obj.tau_decay!r} must be in (0, 1]')


def check_replica_paths(obj):
    if obj.sync_batch_norm and obj.per_replica_paths:
        raise UserError('--sync_batch_norm needs one path for all replicas;'
                        ' valid: --per_replica_paths=false with it')


# --- The parts of a search's settings ---------------------------------------

@dataclasses.dataclass(frozen=True)
class SpaceDataConfig:
    """What is searched, on which data, for which budget."""

    space: str = 'fbnet'
    dataset: str = 'digits'
    data_dir: str = None
    image_size: int = None
    num_classes: int = None
    width_multiplier: float = 1.0
    targets: dict = dataclasses.field(default_factory=dict)
    # Several budgets (`budgets.BudgetSpec`s; `targets` is then the first
    # one's, which stage 1's within-tolerance metric reads).
    budgets: tuple = None
    latency_table: str = None  # a latency table file: `latency_ms` targets
    tolerance: float = 0.03
    # The last share of the training split held out (never read by the
    # search; `data.DataConfig.validation_fraction`).
    validation_fraction: float = 0.0

    def __post_init__(self):
        if self.budgets:  # from search_config.json: dicts
            from hournas_tf.nas.budgets import as_specs

            object.__setattr__(self, 'budgets', as_specs(self.budgets))

    def check(self):
        """Raises UserError for a target or tolerance out of range."""
        if not self.targets:
            raise UserError('no resource target: give --target_macs, '
                            '--target_params and/or --target_latency_ms')
        for obj, value in self.targets.items():
            if obj == LATENCY and not self.latency_table:
                raise UserError('a latency target needs --latency_table '
                                '(build one with '
                                'tools/build_latency_table.py)')
            if obj not in OBJECTIVES + (LATENCY,):
                raise UserError(f'unknown objective {obj!r}; valid: '
                                f'{choices(OBJECTIVES + (LATENCY,))}')
            if not value > 0:
                raise UserError(f'target {obj}={value!r} must be > 0')
        if not 0 < self.tolerance < 1:
            raise UserError(f'tolerance={self.tolerance!r} must be in '
                            '(0, 1)')
        check_unit(self, 'validation_fraction', closed=False)


@dataclasses.dataclass(frozen=True)
class AlgorithmConfig:
    """Algorithm 1's settings: the two stages, the proposals, derivation."""

    num_proposals: int = 8
    proposal_iters: int = 1000
    vital_epochs: int = 1
    nonvital_epochs: int = 1
    max_steps_per_epoch: int = None
    batch_size: int = 64
    sampler: str = 'gumbel_max'
    vital_sampler: str = 'gumbel_softmax'
    vital_first: bool = True
    vital_ops: tuple = None  # skip stage 1: ops of the vital layers, 'max'
    alpha: float = 5.0
    beta: float = 1e-2
    # Space proposals (`proposals.ProposalConfig`; docs/search.md).
    proposal_lr: float = 0.05
    proposal_tau_start: float = 5.0
    proposal_tau_end: float = 1.0     # stage 2 samples at this temperature
    proposal_hold: float = 0.0
    proposal_entropy: float = 0.015   # 0: the paper (no entropy bonus)
    proposal_min_share: float = 0.6   # back off the entropy below it
    proposal_slack: float = 0.5       # 0: the paper (every miss costs)
    proposal_mode_weight: float = 1.0  # 0: the paper (no mode term)
    proposal_orthogonality: str = 'centered'  # 'logits': the paper
    proposal_reduction: str = 'sum'   # 'mean': the paper's 1/(nm)
    proposal_repair: bool = False     # the proposals' safety net
    resource_slack: float = 1.0  # stage 2: free inside slack x tolerance
    resource_estimate: str = 'expected'  # or 'draw' (the paper)
    pi_tau: float = None     # pi's relaxation temperature (None: tau)
    derive: str = 'in_budget'  # or 'argmax' (the paper)
    tau_init: float = 5.0
    nonvital_tau_init: float = 1.0  # stage 2's relaxation temperature
    tau_decay: float = 0.9999
    weight_lr: float = 0.1
    arch_lr: float = 0.01
    budget_draws: int = 64   # draws per step to find one within tolerance
    repair: bool = True      # greedy repair of a derived architecture
    zero_init_residual: bool = True  # inserted blocks start as identity
    seed: int = 0

    def check(self):
        """Raises UserError for a setting outside its valid range."""
        for name, valid in (('sampler', SAMPLERS),
                            ('vital_sampler', SAMPLERS),
                            ('derive', DERIVATIONS),
                            ('resource_estimate', RESOURCE_ESTIMATES),
                            ('proposal_orthogonality', ORTHOGONALITY),
                            ('proposal_reduction', REDUCTIONS)):
            check_choice(self, name, valid)
        if self.vital_ops and not self.vital_first:
            raise UserError('--vital_ops needs --vital_first: with '
                            '--vital_first=false no layer is fixed first')
        for name, low in (('budget_draws', 1), ('num_proposals', 1),
                          ('proposal_iters', 1), ('vital_epochs', 0),
                          ('nonvital_epochs', 0), ('batch_size', 1),
                          ('max_steps_per_epoch', 1)):
            check_integer(self, name, low)
        check_tau_decay(self)
        check_positive(self, 'tau_init', 'nonvital_tau_init', 'weight_lr',
                       'arch_lr', 'proposal_lr', 'proposal_tau_start',
                       'proposal_tau_end', 'pi_tau')
        check_unit(self, 'proposal_min_share')
        check_unit(self, 'proposal_hold', closed=False)
        check_unit(self, 'proposal_slack', closed=False)
        # Checked again when stage 2 starts; here before anything trains.
        check_nonnegative(self, 'alpha', 'beta', 'proposal_entropy',
                          'proposal_mode_weight', 'resource_slack')


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Where and how a search runs and shows itself: the output folder,
    the devices, checkpoints, determinism, verbosity."""

    output_dir: str = 'runs/search'
    strategy: str = 'default'
    tpu: str = None          # the TPU of strategy 'tpu'
    cpu_replicas: int = 1    # logical CPU devices of strategy 'mirrored'
    sync_batch_norm: bool = False    # batch statistics over all replicas
    per_replica_paths: bool = False  # each replica draws its own path
    graph_optimizations: bool = False
    verbose: int = 1
    deterministic: bool = False  # op determinism: same seed, same result
    checkpoint_every: int = 200  # steps between checkpoints (+ epoch ends)
    resume: bool = False     # continue the run in output_dir

    def check(self):
        """Raises UserError for settings outside their valid range."""
        check_integer(self, 'checkpoint_every', 1)
        check_strategy(self.strategy, self.tpu, self.cpu_replicas)
        check_replica_paths(self)


PARTS = (SpaceDataConfig, AlgorithmConfig, RuntimeConfig)


@dataclasses.dataclass(frozen=True)
class SearchConfig(RuntimeConfig, AlgorithmConfig, SpaceDataConfig):
    """Everything a search needs: the fields of its `PARTS`, flat (as
    search_config.json stores them; the command fills them from flags)."""

    def part(self, cls):
        """This config's part `cls` (one of `PARTS`)."""
        return cls(**{f.name: getattr(self, f.name)
                      for f in dataclasses.fields(cls)})

    def check(self):
        """Raises UserError for a setting outside its valid range."""
        for cls in PARTS:
            cls.check(self)


def check_config(config):
    """Raises UserError for settings outside their valid range."""
    config.check()


# --- Presets -----------------------------------------------------------------

# Named settings over the `SearchConfig` defaults; configs/*.flags are the
# presets of the command line. 'demo' is the command's embedded default
# (keep configs/demo.flags identical; a test checks): the EfficientNet-B0
# space at 32x32 and width 0.25 on scikit-learn's digits, with targets in
# the middle of that space's range.
PRESETS = {
    'demo': {
        'space': 'efficientnet',
        'dataset': 'digits',
        'image_size': 32,
        'width_multiplier': 0.25,
        'targets': {'macs': 10e6, 'params': 0.25e6},
        'num_proposals': 8,
        'proposal_iters': 1000,
        # 5 + 4 epochs of 18 steps: stage 2 passes 0.95 training accuracy
        # by its third epoch, and the whole search fits in 5 minutes on a
        # 2-core CPU (docs/search.md, "The demo, measured").
        'vital_epochs': 5,
        'nonvital_epochs': 4,
        'batch_size': 64,
        # 72-90 steps per stage instead of the paper's thousands: a 5x
        # Adam step lets the architecture decide within them
        # (docs/search.md).
        'arch_lr': 0.05,
    },
}


def preset(name, **changes):
    """The `SearchConfig` of preset `name` (`PRESETS`) with `changes`."""
    if name not in PRESETS:
        raise UserError(f'unknown preset {name!r}; valid: '
                        f'{choices(tuple(PRESETS))}')
    return SearchConfig(**{**PRESETS[name], **changes})


def default(name, preset_name='demo'):
    """The default of setting `name`: the preset's, else `SearchConfig`'s."""
    return getattr(preset(preset_name), name)


def latency_table(config, space):
    """The `latency_table` of `config` checked against `space` (None
    without one)."""
    if not config.latency_table:
        return None
    from hournas_tf.resources import latency

    return latency.load_table(config.latency_table, space)
