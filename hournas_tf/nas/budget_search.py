"""The search with several budgets (`SearchConfig.budgets`, issue 23).

Stage 1 runs once (`search_lib`); then, for the vital ops that keep every
budget reachable (`budgets.fit_vital_ops`):

1. m proposals per budget over the same non-vital layers
   (`budgets.optimize_proposals`);
2. one stage-2 supernet (`budget_supernet.BudgetSuperNet`) trained on
   draws from all budgets, a round robin, each draw inside its own
   budget;
3. per budget its most probable architecture within tolerance, with the
   shared supernet's weights: `budgets/<name>/arch.json` and
   `arch.weights.h5` (`train --arch_file`, `--inherit_weights` and
   `export` take them), its inherited-weight accuracy (batch norm
   recalibrated on the weight split, evaluated on the architecture split)
   and `budgets.json`, the table of all. The run's `arch.json` is the
   first budget's, with the table in its `search.budgets`.

`dry_run(config, space, vital_ops)` is step 1 and its report only.
"""

import dataclasses
import os
import time

import numpy as np

from hournas_tf.nas import budgets as budgets_lib
from hournas_tf.nas import derive as derive_lib
from hournas_tf.nas.search_lib import _write_json
from hournas_tf.nas.search_lib import log
from hournas_tf.resources import counting
from hournas_tf.resources import tables

RECALIBRATION_BATCHES = 20
EVAL_BATCHES = 20


def preflight(config, space, latency=None):
    """The budgets' checks before TensorFlow: valid and distinct, inside
    the space, and reachable together with one choice of vital ops."""
    from hournas_tf.nas.vital_policy import resolve_vital_ops

    if config.resume:
        from hournas_tf.errors import UserError

        raise UserError('--resume of a search with --budgets is not '
                        'supported yet; start it again')
    specs = config.budgets
    budgets_lib.check_budgets(specs, config.tolerance, config.latency_table)
    budgets_lib.check_space(space, specs, latency)
    if config.vital_first:
        budgets_lib.fit_vital_ops(space, resolve_vital_ops(
            space, config.vital_ops or 'max'), specs, latency=latency)


def objectives(config):
    return tuple(config.budgets[0].targets)


def optimize(space, searched, vital_ops, config, pconfig, latency=None):
    """(table, BudgetProposals, report): the proposals of every budget
    and, per budget, its proposals' most probable architectures and the
    share of 10,000 draws at the sampling temperature within tolerance
    (before any repair)."""
    table = tables.resource_table(space, searched, vital_ops,
                                  objectives(config), latency)
    specs = config.budgets
    log(f'optimizing proposals for {len(specs)} budgets over '
        f'{len(searched)} layers for {pconfig.iters} iterations')
    start = time.perf_counter()
    result = budgets_lib.optimize_proposals(table, specs, pconfig)
    seconds = time.perf_counter() - start
    report = budgets_lib.proposal_report(table, specs, result,
                                         config.tolerance, pconfig.tau_end,
                                         config.seed + 100)
    for r in report:
        ok = sum(p['within_tolerance'] for p in r['proposals'])
        worst = {o: max(abs(p[f'{o}_error']) for p in r['proposals'])
                 for o in r['targets']}
        log(f'  budget {r["budget"]}: {ok}/{len(r["proposals"])} '
            f'proposals\' most probable architectures within '
            f'{config.tolerance:.0%} (largest miss ' + ', '.join(
                f'{o} {e:.2%}' for o, e in worst.items())
            + f'); {r["share_within_tolerance"]:.1%} of '
            f'{budgets_lib.NUM_SAMPLES:,} draws within tolerance')
    log(f'proposals of {len(specs)} budgets optimized in {seconds:.1f}s')
    return table, result, {'budgets': report, 'seconds': seconds,
                           'settings': dataclasses.asdict(pconfig)}


def dry_run(config, space, vital_ops, searched, pconfig, latency=None):
    """The budgets' proposals without training; writes dry_run.json."""
    _, _, info = optimize(space, searched, vital_ops, config, pconfig,
                          latency)
    summary = {'space': space.name, 'image_size': space.image_size,
               'budgets': [dataclasses.asdict(b) for b in config.budgets],
               'tolerance': config.tolerance,
               'vital_layers': [i + 1 for i in space.vital_layers],
               'vital_ops': {i + 1: op for i, op in vital_ops.items()},
               'proposal_optimization': info}
    _write_json(os.path.join(config.output_dir, 'dry_run.json'), summary)
    within = [p['within_tolerance'] for r in info['budgets']
              for p in r['proposals']]
    log(f'{sum(within)}/{len(within)} proposals of {len(config.budgets)} '
        f'budgets have their most probable architecture within '
        f'{config.tolerance:.0%} of their budget; wrote '
        f'{config.output_dir}/dry_run.json')
    return summary


def inherited_accuracy(model, search_data):
    """Accuracy of a standalone model with inherited weights: batch norm
    recalibrated on `RECALIBRATION_BATCHES` batches of the weight split,
    evaluated on `EVAL_BATCHES` of the architecture split."""
    import tensorflow as tf

    from hournas_tf.blocks.recalibration import recalibrate_batch_norm

    recalibrate_batch_norm(model, search_data.weights,
                           RECALIBRATION_BATCHES)
    forward = tf.function(lambda x: model(x, training=False))
    correct = total = 0
    for x, y in search_data.arch.take(EVAL_BATCHES):
        pred = tf.argmax(forward(x), axis=-1, output_type=tf.int64)
        y = tf.cast(tf.reshape(y, [-1]), tf.int64) if y.shape.rank == 1 \
            else tf.argmax(y, axis=-1)
        correct += int(tf.reduce_sum(tf.cast(pred == y, tf.int32)))
        total += int(tf.shape(y)[0])
    return correct / max(total, 1)


def stage2(config, space, vital_ops, searched, stage1, search_data, steps,
           strategy, train, latency=None):
    """Proposals per budget, the shared stage-2 supernet and the budgets'
    architectures. `train(net, table, start_columns)` runs the stage
    (`search_lib.train_stage` with the run's checkpoint and data) and
    returns its seconds. Returns (supernet, table, derived list, info)."""
    import keras

    from hournas_tf.nas import budget as budget_lib
    from hournas_tf.nas import budget_supernet
    from hournas_tf.nas import search_lib

    pconfig = search_lib.proposal_config(config)
    table, result, info = optimize(space, searched, vital_ops, config,
                                   pconfig, latency)
    sconfig = search_lib._supernet_config(
        config, config.sampler, steps * config.nonvital_epochs,
        alpha=config.alpha, tau_init=config.nonvital_tau_init,
        temperature=pconfig.tau_end, resource_slack=config.resource_slack)
    keras.utils.set_random_seed(config.seed + 1)
    budgets = [budget_lib.Budget(table, b.targets, config.tolerance)
               for b in config.budgets]
    with strategy.scope():
        net = budget_supernet.build_budget_supernet(
            space, searched, vital_ops, sconfig, budgets, result.logits,
            result.owner)
        net.compile()
        if stage1 is not None:
            net.copy_weights_from(stage1)
    start_columns = search_lib._proposals_argmax(result.logits, table.mask)
    seconds = train(net, table, start_columns)
    pi = net.proposal_probabilities()
    end = budgets_lib.proposal_report(
        table, config.budgets, budgets_lib.BudgetProposals(
            np.log(np.maximum(net.proposal_op_probabilities(), 1e-12)),
            result.owner, ()), config.tolerance, 1.0, config.seed, pi=pi)
    for r in end:
        log(f'  budget {r["budget"]}: stage 2 ends with '
            f'{r["share_within_tolerance"]:.1%} of '
            f'{budgets_lib.NUM_SAMPLES:,} draws within tolerance')
    derived = budgets_lib.derive(
        space, table, searched, vital_ops, config.budgets,
        net.proposal_op_probabilities(), net.arch_params.pi_logits.numpy(),
        result.owner, config.tolerance, config.repair, config.derive,
        config.seed)
    changed = derive_lib.rows_changed(start_columns,
                                      net.arch_params.derive_all(),
                                      searched)
    info.update(stage2_end=end, nonvital_seconds=seconds,
                rows_changed={'total': sum(len(c) for c in changed),
                              'rows': int(np.size(start_columns)),
                              'per_proposal': changed},
                owner=result.owner.tolist())
    return net, table, derived, info


def write_budgets(config, net, derived, search_data, info, summary):
    """budgets/<name>/arch.json and arch.weights.h5 per budget, their
    inherited-weight accuracies and budgets.json; returns the rows."""
    accuracies = {}
    for d in derived:
        name = d.entry['budget']
        path = budgets_lib.arch_path(config.output_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        model = derive_lib.standalone_model(net, d.arch)
        model.save_weights(path[:-len('.json')] + '.weights.h5')
        accuracies[name] = inherited_accuracy(model, search_data)
        entry = {**d.entry, 'inherited_accuracy': accuracies[name],
                 'tolerance': config.tolerance}
        d.arch.save(path, {'search': entry})
        before = d.entry['before_repair']
        log(f'budget {name}: ' + ', '.join(
            f'{o} {counting.human(d.entry["achieved"][o])} (target '
            f'{counting.human(t)}, {d.entry["relative_error"][o]:+.2%}; '
            f'search alone {before["relative_error"][o]:+.2%})'
            for o, t in d.entry['targets'].items())
            + f'; inherited-weight accuracy {accuracies[name]:.3f}; wrote '
            f'{path}')
    rows = budgets_lib.table_rows(derived, accuracies)
    budgets_lib.write_table(config.output_dir, rows, {
        'tolerance': config.tolerance,
        'proposal_optimization': info['budgets'],
        'stage2_end': info['stage2_end'],
        'seconds': summary.get('seconds', {}),
        'inherited_accuracy': {
            'recalibration_batches': RECALIBRATION_BATCHES,
            'eval_batches': EVAL_BATCHES,
            'split': 'architecture (20%) split of the search data'}})
    return rows
