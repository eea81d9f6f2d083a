"""Search report command: one self-contained HTML page of a search run.

    python -m hournas_tf.report runs/demo          # runs/demo/report.html
    python -m hournas_tf.report runs/demo --train_dir=runs/demo-train

The search writes the page itself at its end; this command rewrites it,
e.g. once a retraining run (`--train_dir`, default `RUN_DIR/train`) or an
export report (`--export_report`, default `RUN_DIR/export/` or
`TRAIN_DIR/export/export_report.json`) exists. Images are embedded, so the
file opens offline in any browser.
"""

from absl import flags

from hournas_tf.common import runner
from hournas_tf.common.errors import UserError


def define_flags():
    """Defines the command's flags."""
    flags.DEFINE_string('train_dir', None, 'A python -m hournas_tf.train '
                        'output folder (its metrics.json); default: '
                        'RUN_DIR/train when it has one.')
    flags.DEFINE_string('export_report', None, 'An export_report.json of '
                        'python -m hournas_tf.export; default: '
                        'RUN_DIR/export/ or TRAIN_DIR/export/ when present.')


def main(argv):
    if len(argv) != 2:
        raise UserError('give one search run folder: python -m '
                        'hournas_tf.report RUN_DIR')
    from hournas_tf.reporting import page

    path = page.write_report(argv[1], flags.FLAGS.train_dir,
                             flags.FLAGS.export_report)
    print(f'wrote {path}')


if __name__ == '__main__':
    define_flags()
    runner.run(main)
