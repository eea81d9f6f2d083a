"""The search with several budgets: `BudgetSearchRun`, the `SearchRun`
mode of `SearchConfig.budgets` (issue 23).

Stage 1 runs once (`SearchRun.stage1`); then, for the vital ops that keep
every budget reachable (`budgets.fit_vital_ops`):

1. `proposals`: m proposals per budget over the same non-vital layers
   (`budgets.optimize_proposals`);
2. `stage2`: one stage-2 supernet (`budget_supernet.BudgetSuperNet`)
   trained on draws from all budgets, a round robin, each draw inside its
   own budget;
3. `derive`: per budget its most probable architecture within tolerance;
4. `write`: `budgets/<name>/arch.json` and `arch.weights.h5` with the
   shared supernet's weights (`train --arch_file`, `--inherit_weights`
   and `export` take them), each one's inherited-weight accuracy (batch
   norm recalibrated on the weight split, evaluated on the architecture
   split) and `budgets.json`, the table of all. The run's `arch.json` is
   the first budget's, with the table in its `search.budgets`.

`dry_run` is step 1 and its report only. `--resume` works as in a
single search: stage1.json holds every budget's proposals with their
`owner`, and the stage-2 checkpoint the supernet with its step counter,
so the round robin goes on with the budget it stopped at.
"""

import dataclasses
import os
import shutil
import time

import numpy as np

from hournas_tf.common.runner import log
from hournas_tf.nas import budgets as budgets_lib
from hournas_tf.nas import derive as derive_lib
from hournas_tf.nas import stages
from hournas_tf.nas.search_lib import ProposalsResult
from hournas_tf.nas.search_lib import SearchRun
from hournas_tf.nas.search_lib import _config_json
from hournas_tf.nas.search_lib import _write_json
from hournas_tf.nas.search_lib import untrained_plan
from hournas_tf.nas.search_lib import weights_path
from hournas_tf.nas.search_lib import write_report
from hournas_tf.resources import counting
from hournas_tf.resources import tables

RECALIBRATION_BATCHES = 20
EVAL_BATCHES = 20


def preflight(config, space, latency=None):
    """The budgets' checks before TensorFlow: valid and distinct, inside
    the space, and reachable together with one choice of vital ops."""
    from hournas_tf.nas.vital_policy import resolve_vital_ops

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


@dataclasses.dataclass(frozen=True)
class BudgetProposalsResult(ProposalsResult):
    """The proposals of every budget over the searched layers: `logits`
    (M, rows, cols) all budgets' proposals, `owner` (M,) the budget of
    each, `report` per budget its proposals and draws in budget; in
    stage1.json with the owner."""

    owner: object = None  # (M,) int32

    def to_json(self):
        return {**super().to_json(), 'owner': self.owner}

    @classmethod
    def _more_from_json(cls, data):
        return {'owner': np.asarray(data['owner'], np.int32)}


class BudgetSearchRun(SearchRun):
    """`SearchRun` with several budgets: stage 1 once, then proposals,
    one stage-2 supernet and one architecture per budget."""

    PROPOSALS = BudgetProposalsResult

    def _fit_vital_ops(self, stage1):
        return budgets_lib.fit_vital_ops(
            self.env.space, stage1.vital_ops, self.config.budgets,
            stage1.probabilities, self.env.latency)

    def _optimize_proposals(self, vital, seconds):
        from hournas_tf.nas import proposal_report

        searched = stages.searched_layers(self.env.space, vital.ops)
        pconfig = proposal_report.proposal_config(self.config)
        table, result, report = optimize(
            self.env.space, searched, vital.ops, self.config, pconfig,
            self.env.latency)
        return BudgetProposalsResult(vital.ops, vital.changed,
                                     result.logits, pconfig.tau_end, report,
                                     dict(seconds), table, result.owner)

    def stage2(self, proposals, stage1=None):
        import keras

        from hournas_tf.nas import budget as budget_lib
        from hournas_tf.nas import budget_supernet
        from hournas_tf.nas.search_lib import Stage2Result

        config, env = self.config, self.env
        table, owner = proposals.table, proposals.owner
        keras.utils.set_random_seed(config.seed + 1)
        sconfig = stages.supernet_config(
            config, 2, env.steps * config.nonvital_epochs, proposals.tau_end)
        budgets = [budget_lib.Budget(table, b.targets, config.tolerance)
                   for b in config.budgets]
        with self.strategy.scope():
            net = budget_supernet.build_budget_supernet(
                env.space, table.layer_indices, proposals.vital_ops,
                sconfig, budgets, proposals.logits, owner)
            net.compile()
        seconds, start_columns = self._run_stage2(net, stage1,
                                                  proposals.logits, table)
        pi = net.proposal_probabilities()
        end = budgets_lib.proposal_report(
            table, config.budgets, budgets_lib.BudgetProposals(
                np.log(np.maximum(net.proposal_op_probabilities(), 1e-12)),
                owner, ()), config.tolerance, 1.0, config.seed,
            pi=pi)
        for r in end:
            log(f'  budget {r["budget"]}: stage 2 ends with '
                f'{r["share_within_tolerance"]:.1%} of '
                f'{budgets_lib.NUM_SAMPLES:,} draws within tolerance')
        return Stage2Result(net, pi, int(np.argmax(pi)), start_columns, end,
                            seconds)

    def derive(self, stage2, proposals):
        config = self.config
        searched = list(proposals.table.layer_indices)
        net = stage2.supernet
        changed = derive_lib.rows_changed(
            stage2.start_columns, net.arch_params.derive_all(), searched)
        moved = {'total': sum(len(c) for c in changed),
                 'rows': int(np.size(stage2.start_columns)),
                 'per_proposal': changed}
        derived = budgets_lib.derive(
            self.env.space, proposals.table, searched, proposals.vital_ops,
            config.budgets, net.proposal_op_probabilities(),
            net.arch_params.pi_logits.numpy(), proposals.owner,
            config.tolerance, config.repair, config.derive, config.seed)
        return derived, moved

    def write(self, stage2, proposals, derived):
        config, space = self.config, self.env.space
        derived, moved = derived
        net = stage2.supernet
        accuracies = {}
        for d in derived:
            name = d.entry['budget']
            path = budgets_lib.arch_path(config.output_dir, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            model = derive_lib.standalone_model(net, d.arch)
            model.save_weights(weights_path(path))
            accuracies[name] = inherited_accuracy(model,
                                                  self.env.search_data)
            d.arch.save(path, {'search': {
                **d.entry, 'inherited_accuracy': accuracies[name],
                'tolerance': config.tolerance}})
            _log_budget(d.entry, accuracies[name], path)
        rows = budgets_lib.table_rows(derived, accuracies)
        seconds = {**proposals.seconds, 'nonvital': stage2.seconds,
                   'total': time.perf_counter() - self.started}
        budgets_lib.write_table(config.output_dir, rows, {
            'tolerance': config.tolerance,
            'proposal_optimization': proposals.report['budgets'],
            'stage2_end': stage2.end, 'seconds': seconds,
            'inherited_accuracy': {
                'recalibration_batches': RECALIBRATION_BATCHES,
                'eval_batches': EVAL_BATCHES,
                'split': 'architecture (20%) split of the search data'}})
        first = derived[0]
        summary = {
            **first.entry, 'tolerance': config.tolerance,
            'repair': config.repair, 'budgets': rows,
            'vital_layers': [i + 1 for i in space.vital_layers],
            'vital_ops': {i + 1: op for i, op in
                          proposals.vital_ops.items()},
            'vital_ops_changed_for_feasibility': [
                i + 1 for i in proposals.changed_vital],
            'proposal_optimization': proposals.report,
            'stage2_end': stage2.end, 'rows_changed': moved,
            'derive': config.derive, 'sampler': config.sampler,
            'vital_sampler': config.vital_sampler,
            'vital_first': config.vital_first, 'seconds': seconds}
        # The first budget's network: a copy of its weights file, as
        # `SearchRun.write` does for the best family member.
        first.arch.save(self.path('arch.json'), {'search': summary})
        shutil.copyfile(
            weights_path(budgets_lib.arch_path(config.output_dir,
                                               first.entry['budget'])),
            weights_path(self.path('arch.json')))
        from hournas_tf.nas import restore

        restore.save_supernet(net, config.output_dir)
        misses = [r['budget'] for r in rows if not r['within_tolerance']]
        log(f'{len(rows)} budgets derived in {seconds["total"]:.0f}s; wrote '
            f'{config.output_dir}/budgets.json'
            + (f'; WARNING: not within {config.tolerance:.0%}: {misses}'
               if misses else ''))
        write_report(config.output_dir)
        return summary

    def dry_run(self):
        from hournas_tf.nas import proposal_report

        config = self.config
        space, vital_ops, searched = untrained_plan(config)
        latency = config_latency(config, space)
        _, _, info = optimize(space, searched, vital_ops, config,
                              proposal_report.proposal_config(config),
                              latency)
        summary = {'space': space.name, 'image_size': space.image_size,
                   'budgets': [dataclasses.asdict(b)
                               for b in config.budgets],
                   'tolerance': config.tolerance,
                   'vital_layers': [i + 1 for i in space.vital_layers],
                   'vital_ops': {i + 1: op for i, op in vital_ops.items()},
                   'proposal_optimization': info}
        _write_json(self.path('dry_run.json'), summary)
        _write_json(self.path('search_config.json'), _config_json(config))
        within = [p['within_tolerance'] for r in info['budgets']
                  for p in r['proposals']]
        log(f'{sum(within)}/{len(within)} proposals of '
            f'{len(config.budgets)} budgets have their most probable '
            f'architecture within {config.tolerance:.0%} of their budget; '
            f'wrote {config.output_dir}/dry_run.json')
        return summary


def config_latency(config, space):
    from hournas_tf.nas.config import latency_table

    return latency_table(config, space)


def _log_budget(entry, accuracy, path):
    before = entry['before_repair']
    log(f'budget {entry["budget"]}: ' + ', '.join(
        f'{o} {counting.human(entry["achieved"][o])} (target '
        f'{counting.human(t)}, {entry["relative_error"][o]:+.2%}; search '
        f'alone {before["relative_error"][o]:+.2%})'
        for o, t in entry['targets'].items())
        + f'; inherited-weight accuracy {accuracy:.3f}; wrote {path}')
