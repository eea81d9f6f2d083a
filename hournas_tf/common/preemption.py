"""Preemption: SIGTERM remembered instead of fatal, and out-of-memory
messages. The search and retraining checkpoint, then raise `Preempted`."""

import signal
import threading

from hournas_tf.common.runner import log


class Preempted(Exception):
    """SIGTERM arrived; a checkpoint was written (the message says where)."""


class _Sigterm:
    """Remembers a SIGTERM instead of dying at once."""

    def __init__(self):
        self.received = False
        self.previous = None

    def handler(self, signum, frame):
        del signum, frame
        self.received = True

    def __enter__(self):
        # Python sets signal handlers in the main thread only.
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self.handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def catch_sigterm():
    """A context manager: inside it SIGTERM sets `.received`."""
    return _Sigterm()


def preemptible(run, *args):
    """`run(*args, sigterm=catcher)` with SIGTERM caught: `Preempted`
    (raised after a checkpoint) is logged, saying how to resume, and
    None returned."""
    with catch_sigterm() as sigterm:
        try:
            return run(*args, sigterm=sigterm)
        except Preempted as e:
            log(str(e))
            return None


def oom_message(error, batch_size):
    """The one-line message for an out-of-memory error on a batch."""
    smaller = max(1, batch_size // 2)
    first = str(error).strip().splitlines()[0] if str(error).strip() else ''
    return (f'out of memory on a batch of {batch_size} ({first[:120]}); '
            f'use a smaller --batch_size (e.g. {smaller}) in a new '
            f'--output_dir')
