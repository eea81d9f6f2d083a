"""Ablations of the search and the random-search baseline, as one table.

    python tools/ablate.py         # digits, the full table, 2 workers
    python tools/ablate.py --variants=hournas,random,no_stage2 --seeds=5
    python tools/ablate.py --seeds=5 --search_epochs=5 --train_epochs=10
    python tools/ablate.py --flagfile=configs/ablate_fashion_mnist.flags
    python tools/ablate.py --reanalyze=docs/ablation_results.json
    python tools/ablate.py --flagfile=configs/ablate_fashion_mnist.flags \
        --restore_cells=docs/ablation_fashion_mnist_results.json
    python tools/ablate.py --flagfile=configs/ablate_fashion_mnist.flags \
        --recipe_epochs=1,2,6 --validation_fraction=0.1 --seeds=2 \
        --variants=hournas,random \
        --architectures_from=runs/ablation_fashion_mnist \
        --output_dir=runs/recipe_fashion_mnist

(or `python -m tools.ablate ...`). The experiment is
`hournas_tf.experiments.ablation` (variants, cells, the pool that runs
each cell in a child process) and its table
`hournas_tf.experiments.ablation_report`. Rerunning the same command skips
the finished cells (resumable); `--workers=N` runs N cells at a time.
`results.json` holds every number, `ablation.md` the table (each row
paired by seed with the default: `experiments.paired`);
`--reanalyze=results.json` recomputes its statistics. `--recipe_epochs`
retrains the architectures of finished cells at several lengths on the
validation split, to choose the retraining recipe
(`hournas_tf.experiments.recipe_length`).
"""

import os
import sys

from absl import flags

from hournas_tf import command_flags
from hournas_tf.common import errors
from hournas_tf.common import provenance
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError
from hournas_tf.experiments import ablation
from hournas_tf.experiments import ablation_report
from hournas_tf.experiments import ablation_restore
from hournas_tf.experiments import recipe_length
from hournas_tf.nas import config as config_lib


def define_flags():
    d = config_lib.preset('demo')
    flags.DEFINE_string('output_dir', 'runs/ablation', 'Where the cells, '
                        'results.json and ablation.md go (rerun to resume).')
    command_flags.define_space_flags(
        {k: getattr(d, k) for k in ('space', 'image_size',
                                    'width_multiplier')})
    command_flags.define_data_flags(d.dataset)
    command_flags.define_validation_flag(
        0.0, 'no search reads it, and every row is retrained without it '
        'and evaluated on it instead of the test split (choose settings '
        'with it; the test split serves the final table only).')
    command_flags.define_target_flags(d.targets['macs'], d.targets['params'])
    flags.DEFINE_integer('search_epochs', 2, 'Epochs of each search stage '
                         '(the demo search runs 5 + 4; 0 trains no '
                         'supernet: a quick check of the plumbing).',
                         lower_bound=0)
    flags.DEFINE_integer('max_steps_per_epoch', None, 'Cap on search steps '
                         'per epoch.', lower_bound=1)
    flags.DEFINE_integer('proposal_iters', d.proposal_iters,
                         'Iterations of the proposal optimization.',
                         lower_bound=1)
    flags.DEFINE_integer('train_epochs', 4, 'Retraining epochs of every '
                         'row.', lower_bound=1)
    flags.DEFINE_integer('train_examples', 0, 'Retrain every row on only '
                         'the first this many training images (after '
                         '--validation_fraction; the same for every seed); '
                         '0: all.', lower_bound=0)
    flags.DEFINE_integer('seeds', 3, 'Seeds per variant (0..n-1).',
                         lower_bound=1)
    flags.DEFINE_list('variants', list(ablation.VARIANTS), 'Rows to run.')
    flags.DEFINE_integer('random_k', 20, 'Random architectures scored by '
                         'the supernet for the best-of-k row.',
                         lower_bound=1)
    flags.DEFINE_integer('workers', 2, 'Cells run at a time, each in its '
                         'own process (tracing a supernet is '
                         'single-threaded, so 2 suit 2 cores).', lower_bound=1)
    flags.DEFINE_bool('table_only', False, 'Write the table from the '
                      'finished cells and run nothing.')
    flags.DEFINE_string('reanalyze', None, 'A results.json: recompute its '
                        'rows, statistics and conclusion from its cells\' '
                        'results, rewrite it and print its ablation.md '
                        '(runs nothing; other flags are ignored).')
    flags.DEFINE_list('recipe_epochs', None, 'Instead of the table: '
                      'retrain the architectures of the finished cells of '
                      '--architectures_from (--variants, --seeds) with '
                      'the same recipe at each of these lengths in epochs '
                      'and score them on the --validation_fraction split, '
                      'to choose --train_epochs (writes recipe_length.md, '
                      '.json and .png to --output_dir).')
    flags.DEFINE_string('architectures_from', None, 'With '
                        '--recipe_epochs: the output_dir of a tools/ablate.py '
                        'run whose cells give the architectures.')
    flags.DEFINE_string('restore_cells', None, 'A results.json of an '
                        'earlier run of these settings whose cell folders '
                        'are gone (e.g. a committed one): its cells are '
                        'written into --output_dir as finished cells, so '
                        'the run adds only the rows and seeds it lacks.')
    # Internal: the pool runs each cell as a child with --cell;
    # --worker_only runs the cells and writes no table.
    flags.DEFINE_string('cell', None, 'internal: run one cell, '
                        'VARIANT:SEED')
    flags.DEFINE_bool('worker_only', False, 'internal: run the cells and '
                      'write no table')


def config_from_flags(f):
    for v in f.variants:
        if v not in ablation.VARIANTS:
            raise UserError(f'unknown variant {v!r}; valid: '
                            f'{errors.choices(ablation.VARIANTS)}')
    for v in ablation.NEEDS_DEFAULT:
        if v in f.variants and ablation.DEFAULT not in f.variants:
            raise UserError(f'{v} needs the {ablation.DEFAULT} variant (it '
                            'reads the default search of its seed)')
    targets = {obj: float(v) for obj, v in (('macs', f.target_macs),
                                            ('params', f.target_params))
               if v}
    search = config_lib.preset(
        'demo', space=f.space, dataset=f.dataset, data_dir=f.data_dir,
        image_size=f.image_size, width_multiplier=f.width_multiplier,
        targets=targets, proposal_iters=f.proposal_iters,
        vital_epochs=f.search_epochs, nonvital_epochs=f.search_epochs,
        max_steps_per_epoch=f.max_steps_per_epoch, tolerance=f.tolerance,
        validation_fraction=f.validation_fraction, verbose=0)
    config = ablation.AblationConfig(
        output_dir=f.output_dir, search=search,
        train_epochs=f.train_epochs, train_examples=f.train_examples,
        seeds=tuple(range(f.seeds)),
        variants=tuple(v for v in ablation.VARIANTS if v in f.variants),
        random_k=f.random_k, workers=f.workers)
    return config


def _epochs(values):
    try:
        return [int(v) for v in values]
    except ValueError:
        raise UserError(f'recipe_epochs {",".join(values)}: give whole '
                        'numbers of epochs, e.g. 1,2,6') from None


def main(argv):
    if len(argv) > 1:
        raise UserError(f'unexpected arguments {argv[1:]}; use --flags')
    f = flags.FLAGS
    if f.reanalyze:
        if not os.path.isfile(f.reanalyze):
            raise UserError(f'--reanalyze={f.reanalyze}: no such file; '
                            'give a results.json of tools/ablate.py')
        print(ablation_report.reanalyze(f.reanalyze)[1], end='')
        return
    config = config_from_flags(f)
    if f.recipe_epochs:
        lengths = _epochs(f.recipe_epochs)
        recipe_length.check(config, lengths, f.architectures_from)
        recipe_length.run(config, lengths, f.architectures_from)
        command = ' '.join(['python', 'tools/ablate.py', *sys.argv[1:]])
        recipe_length.write_report(config, lengths, f.architectures_from,
                                   command)
        print(open(os.path.join(config.output_dir,
                                recipe_length.SUMMARY_FILE)).read())
        return
    if f.cell:
        variant, _, seed = f.cell.rpartition(':')
        ablation.run_one_cell(config, variant, int(seed))
        return
    if f.worker_only:
        ablation.work(config, sys.argv[1:], program=__file__)
        return
    ablation.preflight(config)
    if f.restore_cells:
        written = ablation_restore.restore_cells(config, f.restore_cells)
        ablation.log(f'{written} cell(s) restored from {f.restore_cells}')
    os.makedirs(config.output_dir, exist_ok=True)
    # The table names the command that started it (a rerun resumes it).
    command, started = provenance.started_state(
        config.output_dir,
        ' '.join(['python', 'tools/ablate.py', *sys.argv[1:]]))
    if not f.table_only:
        ablation.work(config, sys.argv[1:], program=__file__)
    data = ablation_report.write_outputs(config, command, started)
    print(open(os.path.join(config.output_dir, 'ablation.md')).read())
    missing = len(ablation.cells(config)) - sum(
        len(r) for r in data['results'].values())
    if missing:
        ablation.log(f'{missing} cell(s) unfinished; rerun the command to '
                     'resume')


if __name__ == '__main__':
    define_flags()
    runner.run(main)
