"""Search settings: `SearchConfig` and its validation (pure Python).

Kept free of TensorFlow so that the commands can reject a bad value before
the slow imports.
"""

import dataclasses
import math

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


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Everything a search needs (the command fills it from flags)."""

    space: str = 'fbnet'
    dataset: str = 'digits'
    data_dir: str = None
    image_size: int = None
    num_classes: int = None
    width_multiplier: float = 1.0
    targets: dict = dataclasses.field(default_factory=dict)
    latency_table: str = None  # a latency table file: `latency_ms` targets
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
    tolerance: float = 0.03
    budget_draws: int = 8    # draws per step to find one within tolerance
    repair: bool = True      # greedy repair of a derived architecture
    zero_init_residual: bool = True  # inserted blocks start as identity
    seed: int = 0
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


def check_config(config):
    """Raises UserError for settings outside their valid range."""
    for name in ('sampler', 'vital_sampler'):
        if getattr(config, name) not in SAMPLERS:
            raise UserError(f'unknown {name} {getattr(config, name)!r}; '
                            f'valid: {choices(SAMPLERS)}')
    if not config.targets:
        raise UserError('no resource target: give --target_macs, '
                        '--target_params and/or --target_latency_ms')
    for obj, value in config.targets.items():
        if obj == LATENCY and not config.latency_table:
            raise UserError('a latency target needs --latency_table (build '
                            'one with tools/build_latency_table.py)')
        if obj not in OBJECTIVES + (LATENCY,):
            raise UserError(f'unknown objective {obj!r}; valid: '
                            f'{choices(OBJECTIVES + (LATENCY,))}')
        if not value > 0:
            raise UserError(f'target {obj}={value!r} must be > 0')
    if config.vital_ops and not config.vital_first:
        raise UserError('--vital_ops needs --vital_first: with '
                        '--vital_first=false no layer is fixed first')
    if not isinstance(config.budget_draws, int) or \
            isinstance(config.budget_draws, bool) or config.budget_draws < 1:
        raise UserError(f'budget_draws={config.budget_draws!r} must be an '
                        'integer >= 1')
    for name, low in (('num_proposals', 1), ('proposal_iters', 1),
                      ('vital_epochs', 0), ('nonvital_epochs', 0),
                      ('batch_size', 1)):
        if getattr(config, name) < low:
            raise UserError(f'{name}={getattr(config, name)!r} must be '
                            f'>= {low}')
    if config.max_steps_per_epoch is not None and \
            config.max_steps_per_epoch < 1:
        raise UserError(f'max_steps_per_epoch={config.max_steps_per_epoch!r}'
                        ' must be >= 1')
    if not isinstance(config.checkpoint_every, int) or \
            isinstance(config.checkpoint_every, bool) or \
            config.checkpoint_every < 1:
        raise UserError(f'checkpoint_every={config.checkpoint_every!r} '
                        'must be an integer >= 1')
    if not 0 < config.tolerance < 1:
        raise UserError(f'tolerance={config.tolerance!r} must be in (0, 1)')
    if not 0 < config.tau_decay <= 1:
        raise UserError(f'tau_decay={config.tau_decay!r} must be in (0, 1]')
    check_strategy(config.strategy, config.tpu, config.cpu_replicas)
    if config.sync_batch_norm and config.per_replica_paths:
        raise UserError('--sync_batch_norm needs one path for all replicas;'
                        ' valid: --per_replica_paths=false with it')
    for name in ('tau_init', 'nonvital_tau_init', 'weight_lr', 'arch_lr'):
        if not 0 < getattr(config, name) < math.inf:
            raise UserError(f'{name}={getattr(config, name)!r} must be > 0 '
                            'and finite')
    for name, valid in (('derive', DERIVATIONS),
                        ('resource_estimate', RESOURCE_ESTIMATES),
                        ('proposal_orthogonality', ORTHOGONALITY),
                        ('proposal_reduction', REDUCTIONS)):
        if getattr(config, name) not in valid:
            raise UserError(f'unknown {name} {getattr(config, name)!r}; '
                            f'valid: {choices(valid)}')
    for name in ('proposal_lr', 'proposal_tau_start', 'proposal_tau_end'):
        if not 0 < getattr(config, name) < math.inf:
            raise UserError(f'{name}={getattr(config, name)!r} must be > 0 '
                            'and finite')
    if config.pi_tau is not None and not 0 < config.pi_tau < math.inf:
        raise UserError(f'pi_tau={config.pi_tau!r} must be > 0 and finite')
    if not 0 <= config.proposal_min_share <= 1:
        raise UserError(f'proposal_min_share={config.proposal_min_share!r} '
                        'must be in [0, 1]')
    for name in ('proposal_hold', 'proposal_slack'):
        if not 0 <= getattr(config, name) < 1:
            raise UserError(f'{name}={getattr(config, name)!r} must be in '
                            '[0, 1)')
    # Checked again when stage 2 starts; here before anything trains.
    for name in ('alpha', 'beta', 'proposal_entropy', 'proposal_mode_weight',
                 'resource_slack'):
        if not 0 <= getattr(config, name) < math.inf:
            raise UserError(f'{name}={getattr(config, name)!r} must be >= '
                            '0 and finite')
