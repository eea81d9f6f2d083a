"""A run's output folder: new, never overwritten, and gone again when the run
fails before it produced anything worth keeping.

    with new_output_dir(config.output_dir) as output:
        ...              # a UserError here removes what was created
        output.keep()    # training starts: from now on the folder stays
        ...

So a command that failed (data not prepared, an infeasible target) can be
rerun as it was once the cause is fixed. Only what the run created is
removed: the folder and the parents it made, or the contents of a folder
that was there and empty; never anything that existed before.
"""

import contextlib
import os
import shutil

from hournas_tf.common.errors import UserError
from hournas_tf.common.runner import keep_log


def check_new(path):
    """Raises UserError unless `path` is missing or an empty folder."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f'output_dir {path!r} is a file, not a folder; '
                        'choose a new --output_dir (nothing was changed)')
    if os.path.isdir(path) and os.listdir(path):
        raise UserError(f'output_dir {path!r} already exists and is not '
                        'empty; choose a new --output_dir, or continue the '
                        'run in it with --resume (nothing was overwritten)')


class OutputDir:
    """A folder made by `new_output_dir`; `keep()`: it outlives a failure."""

    def __init__(self, path):
        self.path = path
        self.kept = False

    def keep(self):
        self.kept = True


def _top_missing(path):
    """The outermost folder of `path` that does not exist, or None."""
    top = None
    while not os.path.exists(path):
        top = path
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return top


@contextlib.contextmanager
def new_output_dir(path):
    """Creates `path` for a new run and yields its `OutputDir`.

    If the block raises before `keep()`, what was created is removed.
    In a command, the held log lines go to its stderr.log from now on
    (`common.runner.keep_log`).
    """
    check_new(path)
    top = _top_missing(os.path.abspath(path))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UserError(f'cannot create output_dir {path!r}: '
                        f'{e.strerror}') from None
    output = OutputDir(path)
    try:
        keep_log(path)
        yield output
    except BaseException:
        if not output.kept:
            _remove(path, top)
        raise


def _remove(path, top):
    if top is not None:
        shutil.rmtree(top, ignore_errors=True)
        return
    for name in os.listdir(path):  # The folder was there, empty: keep it.
        child = os.path.join(path, name)
        if os.path.isdir(child) and not os.path.islink(child):
            shutil.rmtree(child, ignore_errors=True)
        else:
            os.remove(child)
