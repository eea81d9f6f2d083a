"""JSON files: one reader with one-line errors, one atomic writer."""

import json
import os

from hournas_tf.common.errors import UserError


def read_json(path, what):
    """The JSON content of the user's file `path` (`what` names it in the
    errors: missing, or malformed because it is not JSON)."""
    if not os.path.isfile(path):
        raise UserError(f'{what} {path!r} does not exist')
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(
            f'malformed {what} {path!r}: it is not JSON ({e})') from None


def write_json(path, data, default=None, indent=2):
    """Writes `data` as JSON (and a final newline) to `path` through a
    temporary file and a rename, so `path` is either complete or absent;
    `default` converts what `json` cannot."""
    path = os.fspath(path)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=indent, default=default)
        f.write('\n')
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
