"""Keeping the export's output to its own lines.

TensorFlow's native code prints start-up notices, the TFLite converter
prints MLIR diagnostics and LiteRT announces its delegate, all straight to
the process's stdout and stderr; `native_output_silenced` sends those file
descriptors to /dev/null for a block (Python exceptions still carry the
error). `quiet_python_logging` lowers absl's and TensorFlow's Python
loggers to errors.
"""

import contextlib
import logging
import os
import sys
import warnings


@contextlib.contextmanager
def native_output_silenced():
    """Redirects file descriptors 1 and 2 to /dev/null inside the block,
    and ignores Python warnings there."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def quiet_python_logging():
    """absl and TensorFlow Python logging: errors only."""
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    for name in ('absl', 'tensorflow', 'h5py'):
        logging.getLogger(name).setLevel(logging.ERROR)
