"""User-facing errors.

Library code raises `UserError` for anything a user can get wrong (a bad name,
a malformed file, an infeasible target); the command runner
(`common.runner.run`) turns it into a single line on stderr and exit code 2.
"""


class UserError(ValueError):
    """A mistake in user input; its message is one line naming the bad value."""


def choices(values):
    """Formats valid choices for an error message: `a, b, c`."""
    return ', '.join(str(v) for v in values)
