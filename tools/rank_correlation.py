"""Can the supernet rank? Inherited-weight against retrained accuracy.

    python -m tools.rank_correlation RUN_DIR --output_dir=runs/rank
    python -m tools.rank_correlation runs/demo --output_dir=runs/demo-rank \
        --num_archs=8 --epochs=2 --train_examples=640   # quick

For the search run RUN_DIR (a finished `python -m hournas_tf.search`
output folder): its family and uniform random architectures within its
budget, `--num_archs` in all, each scored by the run's supernet
(inherited weights, batch-norm recalibration, accuracy on the search's
architecture split: training images, never the test split) and
retrained (`--epochs`, `--train_examples`, `--retrain_seeds` seeds,
`--workers` at a time) to its test accuracy. Random
architectures use only ops the supernet trained (the others keep their
initial weights). Writes Kendall's tau and Spearman's rho with bootstrap
95% intervals to `results.json`, `scatter.png` and `summary.md`.
Rerunning the same command skips the finished architectures;
`--report_only` writes the report from those finished so far. The
experiment is `hournas_tf.experiments.rank_correlation`.
"""

import sys

from absl import flags

from hournas_tf.common import provenance
from hournas_tf.common import runner
from hournas_tf.common.errors import UserError
from hournas_tf.experiments import rank_correlation


def define_flags():
    flags.DEFINE_string('output_dir', None, 'Where the architectures\' '
                        'folders, results.json, scatter.png and summary.md '
                        'go (rerun to resume).')
    flags.DEFINE_integer('num_archs', 20, 'Architectures in all: the '
                         'run\'s family, then random ones.', lower_bound=3)
    flags.DEFINE_integer('epochs', 4, 'Retraining epochs of every '
                         'architecture.', lower_bound=1)
    flags.DEFINE_integer('train_examples', 0, 'Retrain on the first N '
                         'training images only (0: all).', lower_bound=0)
    flags.DEFINE_integer('estimate_batches', 10, 'Batches of batch-norm '
                         'recalibration before each inherited-weight '
                         'score.', lower_bound=1)
    flags.DEFINE_integer('seed', 0, 'Seed of the random architectures, '
                         'the retraining and the bootstrap.', lower_bound=0)
    flags.DEFINE_integer('bootstrap', 2000, 'Bootstrap resamples of the '
                         'confidence intervals.', lower_bound=100)
    flags.DEFINE_integer('retrain_seeds', 1, 'Retrain every architecture '
                         'with this many seeds (--seed, --seed + 1, ...): '
                         'its accuracy is their mean, and with 2 or more '
                         'the retraining\'s own noise is measured.',
                         lower_bound=1)
    flags.DEFINE_integer('workers', 1, 'Retrainings at a time, each in its '
                         'own process with its share of the cores (a '
                         'rerun may change it).', lower_bound=1)
    flags.DEFINE_bool('report_only', False, 'Write results.json, '
                      'scatter.png and summary.md from the architectures '
                      'finished so far, with the settings the run in '
                      '--output_dir started with; run nothing.')


def main(argv):
    if len(argv) != 2:
        raise UserError('give one search output folder: python -m '
                        'tools.rank_correlation RUN_DIR --output_dir=DIR')
    f = flags.FLAGS
    if not f.output_dir:
        raise UserError('--output_dir is required: the folder of the '
                        'results (rerun with it to resume)')
    config = rank_correlation.RankConfig(
        run_dir=argv[1], output_dir=f.output_dir, num_archs=f.num_archs,
        train_epochs=f.epochs, train_examples=f.train_examples,
        estimate_batches=f.estimate_batches, seed=f.seed,
        bootstrap=f.bootstrap, retrain_seeds=f.retrain_seeds,
        workers=f.workers)
    if f.report_only:
        # The run's own settings: the report needs no flag repeated.
        config = rank_correlation.stored_config(argv[1], f.output_dir)
        results = rank_correlation.finished(config)
    else:
        results = rank_correlation.run(config)
    # The report names the command that started the run (a rerun resumes
    # it, --report_only rewrites the report).
    command, _ = provenance.started_state(
        config.output_dir,
        ' '.join(['python -m tools.rank_correlation', *sys.argv[1:]]))
    results = rank_correlation.write_report(config, results, command)
    stats = results['statistics']
    line = f'wrote {config.output_dir}/results.json, scatter.png, summary.md'
    if stats:
        line = (f'Kendall tau {stats["kendall_tau"]:.3f} '
                f'{stats["kendall_ci"]}, Spearman rho '
                f'{stats["spearman_rho"]:.3f} {stats["spearman_ci"]} over '
                f'{stats["n"]} architectures; ' + line)
    noise = results['retraining_noise']
    if noise:
        rank_correlation.log(
            f'retraining noise: seed-to-seed sd '
            f'{100 * noise["noise_sd"]:.2f} points, between architectures '
            f'{100 * noise["architecture_sd"]:.2f}; Kendall tau of one seed '
            f'against another {noise["seed_kendall_tau"]:.3f}')
    rank_correlation.log(line)


if __name__ == '__main__':
    define_flags()
    runner.run(main)
