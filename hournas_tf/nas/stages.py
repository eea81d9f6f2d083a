"""The two supernets of Algorithm 1, built in one place.

- stage 1: the vital layers only (the non-vital layers removed), no
  resource loss; its budget counts a draw as within tolerance when some
  choice of the non-vital layers (`free_ranges`) completes it.
- stage 2: the vital ops fixed, the non-vital layers (`nonvital_layers`)
  drawn through the proposals, with the resource budget.

The search (`search_lib.SearchRun`), the benchmarks
(`hournas_tf.benchmarking`) and `tools/build_time.py` build their
supernets here. Pure Python until a supernet is built (TensorFlow is
imported then), so the command's checks stay fast.
"""

import contextlib

from hournas_tf.common.errors import UserError
from hournas_tf.resources import tables


def nonvital_layers(space):
    """0-based indices of the layers that are not vital, in order."""
    vital = set(space.vital_layers)
    return [i for i in range(len(space.layers)) if i not in vital]


def searched_layers(space, vital_ops):
    """Stage 2's searched layers: the non-vital ones with vital ops fixed,
    every layer without (`vital_first` false)."""
    if vital_ops:
        return nonvital_layers(space)
    return list(range(len(space.layers)))


def layout(space, stage, searched_layers=None):
    """(searched, fixed_ops) of stage 1 or 2 with the largest vital ops,
    keeping the first `searched_layers` searched layers (all when None);
    the stage's other layers are removed (stage 1's vital layers past
    them keep their largest op: they have no identity shortcut) or fixed
    to their vital op (stage 2's vital layers)."""
    from hournas_tf.nas.vital_policy import max_vital_ops

    vital = list(space.vital_layers)
    vital_ops = max_vital_ops(space)
    if stage == 1:
        n = len(vital) if searched_layers is None else searched_layers
        return tuple(vital[:n]), {i: vital_ops[i] for i in vital[n:]}
    if stage != 2:
        raise UserError(f'stage {stage!r} must be 1 or 2')
    nonvital = nonvital_layers(space)
    n = len(nonvital) if searched_layers is None else searched_layers
    return tuple(nonvital[:n]), dict(vital_ops)


def free_ranges(space, objectives, latency=None):
    """{objective: (min, max)} the non-vital layers can still add once
    stage 2 searches them (stage 1's `Budget.free`)."""
    rest = tables.resource_table(space, nonvital_layers(space), {},
                                 tuple(objectives), latency)
    return {obj: tables.free_range(rest, obj) for obj in objectives}


def stage1_budget(space, targets, tolerance, latency=None, table=None):
    """Stage 1's `Budget`: `table` (default: the vital rows, nothing
    fixed) with the non-vital layers still free."""
    from hournas_tf.nas import budget as budget_lib

    objectives = tuple(targets)
    if table is None:
        table = tables.resource_table(space, space.vital_layers, {},
                                      objectives, latency)
    return budget_lib.Budget(table, targets, tolerance,
                             free_ranges(space, objectives, latency))


def stage2_budget(table, targets, tolerance):
    """Stage 2's `Budget` over the searched rows of `table`."""
    from hournas_tf.nas import budget as budget_lib

    return budget_lib.Budget(table, targets, tolerance)


def build(space, searched, fixed_ops, sconfig, budget, proposals=None,
          strategy=None):
    """A compiled `SuperNet` (built and compiled in `strategy`'s scope)."""
    from hournas_tf.nas import supernet as supernet_lib

    scope = strategy.scope() if strategy is not None else \
        contextlib.nullcontext()
    with scope:
        net = supernet_lib.build_supernet(space, tuple(searched), fixed_ops,
                                          sconfig, budget=budget,
                                          proposals=proposals)
        net.compile()
    return net


def supernet_config(config, stage, total_steps, temperature=1.0):
    """The `SupernetConfig` of stage `stage` (1 or 2) of the search
    `config` (a `SearchConfig`) over `total_steps` steps; stage 2 draws at
    `temperature` (the proposals' final one)."""
    from hournas_tf.nas import supernet as supernet_lib

    if stage == 1:
        sampler, alpha, tau_init = config.vital_sampler, 0.0, config.tau_init
        temperature, slack = 1.0, 0.0
    else:
        sampler, alpha = config.sampler, config.alpha
        tau_init, slack = config.nonvital_tau_init, config.resource_slack
    return supernet_lib.SupernetConfig(
        sampler=sampler, tau_init=tau_init,
        tau_decay=config.tau_decay, alpha=alpha,
        weight_lr=config.weight_lr, arch_lr=config.arch_lr,
        total_steps=max(1, total_steps), seed=config.seed,
        zero_init_residual=config.zero_init_residual,
        sample_temperature=temperature, budget_draws=config.budget_draws,
        resource_slack=slack, pi_tau=config.pi_tau,
        resource_estimate=config.resource_estimate,
        sync_batch_norm=config.sync_batch_norm,
        per_replica_paths=config.per_replica_paths)


def search_stage1(space, config, steps, strategy=None, latency=None):
    """Stage 1 of the search `config`, `steps` per epoch, compiled."""
    return build(space, space.vital_layers, {},
                 supernet_config(config, 1, steps * config.vital_epochs),
                 stage1_budget(space, config.targets, config.tolerance,
                               latency),
                 strategy=strategy)


def search_stage2(space, config, steps, vital_ops, table, proposals,
                  temperature, strategy=None):
    """Stage 2 of the search `config`: `table`'s rows searched through
    `proposals` (m, rows, cols) drawn at `temperature`, the `vital_ops`
    fixed, compiled."""
    return build(space, table.layer_indices, vital_ops,
                 supernet_config(config, 2, steps * config.nonvital_epochs,
                                 temperature),
                 stage2_budget(table, config.targets, config.tolerance),
                 proposals=proposals, strategy=strategy)
