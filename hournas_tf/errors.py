"""User-facing errors and the command-line wrapper that reports them.

Library code raises `UserError` for anything a user can get wrong (a bad name,
a malformed file, an infeasible target). The commands turn it into a single
line on stderr and exit code 2, never a traceback.
"""

import sys


class UserError(ValueError):
    """A mistake in user input; its message is one line naming the bad value."""


def choices(values):
    """Formats valid choices for an error message: `a, b, c`."""
    return ', '.join(str(v) for v in values)


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
        fail(str(e).splitlines()[0])


def run(main):
    """Runs an absl `main`, turning `UserError` into a one-line exit 2."""
    from absl import app

    def wrapped(argv):
        try:
            return main(argv)
        except UserError as e:
            fail(str(e))

    app.run(wrapped, flags_parser=flags_parser)
