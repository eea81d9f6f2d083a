"""One several-budget search against one search per budget, paired by
seed (issue 23, "Quality").

    python tools/budget_compare.py \\
        --flagfile=configs/fashion_mnist_budgets.flags \\
        --seeds=5 --train_epochs=2 --train_examples=12000 \\
        --output_dir=runs/budget_comparison_fashion_mnist

(or `python -m tools.budget_compare ...`). It takes every flag of
`python -m hournas_tf.search` (the search's settings, `--budgets` with two
budgets or more) and runs, per seed, that several-budget search and one
single-budget search per budget, then retrains every derived architecture
with the ablation's recipe (`--train_epochs`, `--train_examples`; the
seed gives both rows of a seed the same retraining). Writes
`budget_comparison.md` (per budget: both rows' mean accuracy, the paired
difference with its 95% interval, the tests, the budget precision) and
`results.json`. Rerunning the same command skips the finished cells;
`--workers=N` runs N cells at a time; `--table_only` writes the table from
the finished cells. The experiment is
`hournas_tf.experiments.budget_comparison`.
"""

import os
import sys

from absl import flags

from hournas_tf import search as search_command
from hournas_tf.common import provenance
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError
from hournas_tf.experiments import budget_comparison


def define_flags():
    search_command.define_flags()
    flags.DEFINE_integer('seeds', 5, 'Seeds per row (0..n-1); the search '
                         'seed --seed is ignored.', lower_bound=1)
    flags.DEFINE_integer('train_epochs', 2, 'Retraining epochs of every '
                         'architecture.', lower_bound=1)
    flags.DEFINE_integer('train_examples', 0, 'Retrain on only the first '
                         'this many training images (after '
                         '--validation_fraction); 0: all.', lower_bound=0)
    flags.DEFINE_integer('workers', 2, 'Cells run at a time, each in its '
                         'own process.', lower_bound=1)
    flags.DEFINE_bool('table_only', False, 'Write the table from the '
                      'finished cells and run nothing.')
    flags.DEFINE_string('cell', None, 'internal: run one cell, ROW:SEED')


def config_from_flags(f):
    if not f.output_dir:
        raise UserError('--output_dir is required: the folder of the cells '
                        'and the table (rerun with it to resume)')
    if f.resume or f.dry_run:
        raise UserError('--resume and --dry_run are search flags; rerun '
                        'the same command to resume the comparison')
    search = search_command.config_from_flags(f)
    config = budget_comparison.BudgetComparisonConfig(
        output_dir=f.output_dir, search=search,
        train_epochs=f.train_epochs, train_examples=f.train_examples,
        seeds=tuple(range(f.seeds)), workers=f.workers)
    budget_comparison.check(config)
    return config


def main(argv):
    if len(argv) > 1:
        raise UserError(f'unexpected arguments {argv[1:]}; use --flags')
    f = flags.FLAGS
    config = config_from_flags(f)
    if f.cell:
        row, _, seed = f.cell.rpartition(':')
        budget_comparison.run_one_cell(config, row, int(seed))
        return
    from hournas_tf.nas import search_lib

    for row in budget_comparison.rows(config):
        search_lib.preflight(budget_comparison.search_config(config, row, 0))
    # The table names the command that started the comparison (a rerun
    # resumes it, --table_only rewrites its table).
    command, started = provenance.started_state(
        config.output_dir,
        ' '.join(['python', 'tools/budget_compare.py', *sys.argv[1:]]))
    if not f.table_only:
        budget_comparison.work(config, [sys.executable,
                                        os.path.abspath(__file__),
                                        *sys.argv[1:]])
    budget_comparison.write_outputs(config, command, started)
    print(open(os.path.join(config.output_dir,
                            budget_comparison.TABLE_FILE)).read())
    missing = sum(budget_comparison.result_of(config, *c) is None
                  for c in budget_comparison.cells(config))
    if missing:
        budget_comparison.log(f'{missing} cell(s) unfinished; rerun the '
                              'command to resume')


if __name__ == '__main__':
    define_flags()
    runner.run(main)
