"""The command runner: one-line errors, and stderr held back.

`run` turns a `UserError` into a single line on stderr and exit code 2,
never a traceback, with nothing before it: it hides the log lines of
TensorFlow, absl and tensorflow-datasets (they are written to stderr, partly
by C++ before any setting applies) unless the user asks for them, and shows
them after all when the command crashes. Once a command has its output
folder (`keep_log`), the held lines go to `<output_dir>/stderr.log` instead
of a temporary file, so a killed or hung run keeps its log.
"""

import contextlib
import os
import sys
import tempfile

from hournas_tf.common.errors import UserError


def log(message, tag='hournas'):
    """Prints a progress line `[tag] message` to stdout, flushed."""
    print(f'[{tag}] {message}', flush=True)


def fail(message):
    """Prints `error: message` to stderr and exits with code 2."""
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def flags_parser(argv):
    """An absl `flags_parser` that reports flag errors in one line, exit 2."""
    from absl import flags

    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        message = str(e).splitlines()[0]
        fail(message.removeprefix('ERROR:: '))


STDERR_LOG = 'stderr.log'


class _Held:
    """What a `held_stderr` block wrote to stderr (`text`, set at its end);
    while it runs, `file` receives it from byte `start` on (`path`: a
    stderr.log, or None for the temporary file)."""

    text = ''
    file = None
    start = 0
    path = None


_HOLDING = []  # the `_Held` of the running `held_stderr` block, if any


@contextlib.contextmanager
def held_stderr(enabled=True):
    """Holds back everything written to stderr inside the block (file
    descriptor 2, so C++ logging too); yields a `_Held` with the text."""
    held = _Held()
    if not enabled:
        yield held
        return
    sys.stderr.flush()
    saved = os.dup(2)
    held.file = tempfile.TemporaryFile()
    os.dup2(held.file.fileno(), 2)
    _HOLDING.append(held)
    try:
        yield held
    finally:
        _HOLDING.remove(held)
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        held.file.seek(held.start)
        held.text = held.file.read().decode('utf-8', 'replace')
        held.file.close()


def keep_log(folder):
    """While stderr is held: what was held so far is appended to
    `folder/stderr.log`, and stderr goes there for the rest of the block
    (a resumed run appends). Returns the path, or None when nothing is
    held (`--verbosity`, or a library call outside `run`)."""
    if not _HOLDING:
        return None
    held = _HOLDING[-1]
    path = os.path.join(folder, STDERR_LOG)
    if held.path == os.path.abspath(path):
        return path
    sys.stderr.flush()
    log = open(path, 'a+b')  # noqa: SIM115 (open until the block ends)
    start = log.tell()
    held.file.seek(held.start)
    log.write(held.file.read())
    log.flush()
    os.dup2(log.fileno(), 2)
    held.file.close()
    held.file, held.start, held.path = log, start, os.path.abspath(path)
    return path


def exit_without_teardown():
    """Exits with code 0 at once, flushing Python's logging handlers and
    the standard streams first but skipping the interpreter's teardown and
    `atexit` hooks: after a search, freeing its traced graphs took about
    5 s (docs/speed.md, "The end of a fit")."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run(main, show_logs=None, skip_teardown=False):
    """Runs an absl `main`, turning `UserError` into a one-line exit 2.

    TensorFlow's, absl's and tensorflow-datasets' log lines are held back
    unless absl's `--verbosity` is given or `show_logs(flags.FLAGS)` is
    true; they are printed before the traceback if `main` crashes. With
    `skip_teardown`, a `main` that succeeds ends in
    `exit_without_teardown` (for the commands that build large graphs; a
    `main` called in-process, as `hournas_tf.fuzzing` does, must not).
    """
    from absl import app
    from absl import flags

    def wrapped(argv):
        f = flags.FLAGS
        verbose = f['verbosity'].present or bool(show_logs and show_logs(f))
        if not verbose:
            # Fewer lines to hold; ERROR lines stay for a crash report.
            os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
        held = _Held()
        try:
            with held_stderr(enabled=not verbose) as held:
                status = main(argv)
        except UserError as e:
            fail(str(e))
        except Exception:
            sys.stderr.write(held.text)
            raise
        if skip_teardown and not status:
            exit_without_teardown()
        return status

    app.run(wrapped, flags_parser=flags_parser)
