"""The space proposals of a search, optimized and reported (step 3 of
Algorithm 1): `optimize` builds the table of the searched layers, runs
`proposals.optimize_proposals`, samples `NUM_SAMPLES` architectures from
the result at several temperatures and plots them (the paper's figure 3).
Used by the search, its dry run and tools/plot_proposals.py."""

import dataclasses

import numpy as np

from hournas_tf.common.runner import log
from hournas_tf.nas.config import latency_table
from hournas_tf.resources import counting
from hournas_tf.resources import tables

SAMPLE_TEMPERATURES = (5.0, 1.0, 0.5, 0.1)
NUM_SAMPLES = 10_000


def _h(value):
    return counting.human(value)


def _proposals():
    """The proposals module, imported late (it imports TensorFlow)."""
    from hournas_tf.nas import proposals

    return proposals


def sample_report(table, logits, targets, tolerance, seed, pi=None,
                  temperatures=SAMPLE_TEMPERATURES):
    """Samples `NUM_SAMPLES` architectures at each temperature."""
    report, scatter = {}, {}
    for k, tau in enumerate(temperatures):
        cols = _proposals().sample_architectures(
            logits, NUM_SAMPLES, tau, seed + k, pi=pi)
        tot = tables.totals(table, cols)
        ok = tables.within(tot, targets, tolerance)
        report[f'{tau:g}'] = {
            'share_within_tolerance': float(ok.mean()),
            **{f'median_{obj}': float(np.median(tot[obj])) for obj in tot}}
        scatter[tau] = (tot.get('params', np.zeros(NUM_SAMPLES)),
                        tot.get('macs', np.zeros(NUM_SAMPLES)))
    return report, scatter


def kept_share(share, budget_draws):
    """The share of steps that find an architecture within tolerance in
    `budget_draws` independent draws, each within it with prob. `share`."""
    return float(1.0 - (1.0 - share) ** budget_draws)


def proposal_config(config):
    """The `ProposalConfig` of a `SearchConfig`."""
    return _proposals().ProposalConfig(
        num_proposals=config.num_proposals, iters=config.proposal_iters,
        learning_rate=config.proposal_lr, beta=config.beta,
        tau_start=config.proposal_tau_start,
        tau_end=config.proposal_tau_end, hold=config.proposal_hold,
        entropy_weight=config.proposal_entropy,
        min_share=config.proposal_min_share,
        slack=config.proposal_slack, mode_weight=config.proposal_mode_weight,
        orthogonality=config.proposal_orthogonality,
        reduction=config.proposal_reduction, seed=config.seed,
        tol=config.tolerance, repair=config.proposal_repair)


def optimize(space, searched, fixed_ops, config, plot_path):
    """Builds the table of `searched` layers, optimizes the proposals and
    plots `NUM_SAMPLES` architectures sampled from them into `plot_path`
    (the paper's figure 3).

    Returns (table, ProposalResult, ProposalConfig, report dict).
    """
    from hournas_tf.nas import plots

    table = tables.resource_table(space, searched, fixed_ops,
                                  tuple(config.targets),
                                  latency_table(config, space))
    tables.check_targets(table, config.targets)
    pconfig = proposal_config(config)
    log(f'optimizing {config.num_proposals} space proposals over '
        f'{len(searched)} layers for {config.proposal_iters} iterations')
    result = _proposals().optimize_proposals(table, config.targets, pconfig)
    log(f'proposals optimized in {result.seconds:.2f}s (final loss '
        f'{result.loss_history[-1]:.4f}, orthogonality '
        f'{result.orthogonality_history[-1]:.3f}, row entropy '
        f'{result.entropy_history[-1]:.3f}, entropy weight '
        f'{result.entropy_weight:g})')
    rows = []
    for j, cols in enumerate(result.columns):
        tot = tables.totals(table, cols)
        errs = tables.relative_errors(tot, config.targets)
        rows.append({'proposal': j, **{o: float(tot[o]) for o in tot},
                     **{f'{o}_error': e for o, e in errs.items()},
                     'within_tolerance': bool(all(
                         abs(e) <= config.tolerance for e in errs.values())),
                     'repaired_layers': [searched[r] + 1
                                         for r in result.repaired[j]]})
        log(f'  proposal {j}: ' + ', '.join(
            f'{o} {_h(tot[o])} ({errs[o]:+.2%})' for o in config.targets)
            + (f' (safety net changed layers '
               f'{rows[-1]["repaired_layers"]})'
               if result.repaired[j] else ''))
    report, scatter = sample_report(table, result.logits, config.targets,
                                    config.tolerance, config.seed)
    for tau, r in report.items():
        log(f'  {NUM_SAMPLES:,} samples at tau={tau}: '
            f'{r["share_within_tolerance"]:.1%} within '
            f'{config.tolerance:.0%} of every target')
    # Stage 2 draws from softmax(theta / tau_end): report that distribution
    # (fresh samples, another seed).
    start, _ = sample_report(table, result.logits, config.targets,
                             config.tolerance, config.seed + 100,
                             temperatures=(pconfig.tau_end,))
    start = {'sample_temperature': pconfig.tau_end,
             **start[f'{pconfig.tau_end:g}'],
             'mean_top_probability': _proposals().mean_top_probability(
                 result.logits, table.mask, pconfig.tau_end)}
    start['budget_draws'] = config.budget_draws
    start['share_trained_within_tolerance'] = kept_share(
        start['share_within_tolerance'], config.budget_draws)
    log(f'  stage 2 starts from these draws: '
        f'{start["share_within_tolerance"]:.1%} of {NUM_SAMPLES:,} within '
        f'{config.tolerance:.0%} of every target, mean top probability '
        f'{start["mean_top_probability"]:.3f} per searched layer; with '
        f'{config.budget_draws} draw(s) per step '
        f'{start["share_trained_within_tolerance"]:.2%} of the trained '
        f'architectures are')
    plots.proposal_scatter(
        scatter, config.targets, config.tolerance,
        f'{space.name}: {NUM_SAMPLES:,} architectures from '
        f'{config.num_proposals} proposals', plot_path)
    return table, result, pconfig, {
        'proposals': rows, 'samples': report, 'stage2_start': start,
        'settings': dataclasses.asdict(pconfig),
        'entropy_weight_used': result.entropy_weight,
        'seconds': result.seconds}
