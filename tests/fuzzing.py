"""Shared harness of the fuzz tests (tests/test_fuzz_*.py) and of
tools/fuzz_inputs.py: malformed inputs as hypothesis strategies, the
commands run in-process, and the checks every bad input must pass.

A command runs in-process exactly as `python -m hournas_tf.<command>` runs
it: its `define_flags()`, then `errors.run(main)` with `sys.argv`; stdout
and stderr (both `sys.stderr` and file descriptor 2, so C++ log lines too)
are captured. The slow part of each command (training, the proposals,
the export after the model is loaded) is replaced by a function that
raises `Reached`: a bad input must be refused before it, and an input
that gets there was accepted.
"""

import contextlib
import dataclasses
import importlib
import io
import json
import math
import os
import sys
import tempfile
import zipfile
from unittest import mock

from hypothesis import strategies as st

from hournas_tf import errors
from hournas_tf.errors import UserError

# Demo-sized instances: checked in milliseconds.
SPACE = dict(name='efficientnet', image_size=32, num_classes=10,
             width_multiplier=0.25)


def demo_space():
    from hournas_tf import spaces

    return spaces.get_space(**SPACE)


def demo_arch():
    """The EfficientNet-B0 ops in the demo space."""
    from hournas_tf import spaces

    return spaces.get_reference('efficientnet_b0', image_size=32,
                                num_classes=10, width_multiplier=0.25)


# ---------------------------------------------------------------------------
# Checks.


def check_user_error(error):
    """A UserError's message: one line, not empty."""
    message = str(error)
    assert isinstance(error, UserError), repr(error)
    assert message.strip(), 'an empty error message'
    assert '\n' not in message and '\r' not in message, repr(message)
    return message


# {target: {'refused': n, 'accepted': n, ...}}: the cases tried in this
# process (tools/fuzz_inputs.py prints them).
COUNTS = {}


def count(target, verdict):
    """Counts one case of `target` ending in `verdict`."""
    counts = COUNTS.setdefault(target, {})
    counts[verdict] = counts.get(verdict, 0) + 1
    return verdict


def refused_or_valid(parse, value, valid=None):
    """`parse(value)`: a one-line UserError, or a result that `valid`
    accepts (a parser may accept some of the fuzzed inputs). Returns
    'refused' or 'accepted'; any other exception propagates."""
    try:
        result = parse(value)
    except UserError as e:
        check_user_error(e)
        return 'refused'
    if valid is not None:
        valid(result)
    return 'accepted'


# ---------------------------------------------------------------------------
# JSON values and text.

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10 ** 20, 10 ** 20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 8, 32, 224, 1e308, 1e-308, 0.5, 2 ** 63]),
    st.text(max_size=12),
    st.sampled_from(['', 'fbnet', 'efficientnet', 'k3_e1', 'skip', 'nan',
                     'inf', '32', '1e400', 'fp32', 'int8']))
JSON = st.recursive(
    SCALARS, lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8)


def _json_text(value):
    """JSON text of `value`; nan and inf as Python's json writes them."""
    return json.dumps(value)


@st.composite
def mutated(draw, base):
    """`base` (a JSON dict) with one to three fields replaced by any JSON
    value, deleted, or (lists) shortened, lengthened or with one item
    replaced."""
    data = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(data) or ['space']))
        action = draw(st.sampled_from(['replace', 'delete', 'item']))
        if action == 'delete':
            data.pop(key, None)
        elif action == 'item' and isinstance(data.get(key), list) \
                and data[key]:
            items = data[key]
            i = draw(st.integers(0, len(items) - 1))
            how = draw(st.sampled_from(['replace', 'drop', 'extra']))
            if how == 'drop':
                del items[i]
            elif how == 'extra':
                items.insert(i, draw(JSON))
            elif isinstance(items[i], dict) and items[i]:
                sub = draw(st.sampled_from(sorted(items[i])))
                items[i][sub] = draw(JSON)
            else:
                items[i] = draw(JSON)
        else:
            data[key] = draw(JSON)
    return data


@st.composite
def file_bytes(draw, valid_text):
    """Bytes of a malformed file: random bytes, the valid text cut short,
    a few bytes of it changed, or not UTF-8."""
    data = valid_text.encode()
    kind = draw(st.sampled_from(['random', 'cut', 'flip', 'latin1',
                                 'empty']))
    if kind == 'random':
        return draw(st.binary(max_size=64))
    if kind == 'cut':
        return data[:draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == 'latin1':
        return data[:10] + b'\xff\xfe\xe9' + data[10:]
    if kind == 'empty':
        return b''
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.sampled_from(b'{}[]",:0 x\n\\'))
    return bytes(data)


# ---------------------------------------------------------------------------
# Architectures.


def valid_arch_json():
    return demo_arch().to_json()


def arch_json():
    """Malformed (or odd) architecture JSON values."""
    return st.one_of(mutated(valid_arch_json()), JSON)


def json_file(valid, values):
    """Bytes of a malformed JSON file: `file_bytes` of the valid JSON, or
    one of `values` written as JSON."""
    return st.one_of(file_bytes(json.dumps(valid)),
                     values.map(lambda v: _json_text(v).encode()))


def arch_file():
    return json_file(valid_arch_json(), arch_json())


_STRING_ALPHABET = st.sampled_from(list(
    'fbnetficiyprxlsmov[]=,:_k0123456789.-+eEa \n\t' + '\u00e9\uff13'))


@st.composite
def arch_string(draw):
    """Malformed architecture strings: the valid one edited, or random
    text from its alphabet."""
    valid = demo_arch().to_string()
    if draw(st.booleans()):
        return draw(st.text(_STRING_ALPHABET, max_size=60))
    text = list(valid)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(['insert', 'delete', 'replace']))
        char = draw(_STRING_ALPHABET)
        if action == 'insert' or not text:
            text.insert(i, char)
        elif action == 'delete':
            del text[min(i, len(text) - 1)]
        else:
            text[min(i, len(text) - 1)] = char
    return ''.join(text)


def valid_arch(arch):
    """An accepted architecture is whole: it round-trips and has its
    space's layer count."""
    from hournas_tf.spaces.architecture import Architecture

    assert len(arch.ops) == len(arch.search_space().layers)
    assert Architecture.from_string(arch.to_string()) == \
        Architecture(**{**arch.__dict__, 'name': None})
    named = dataclasses.replace(arch, name=arch.name or None)  # '' is none
    assert Architecture.from_json(arch.to_json()) == named


# ---------------------------------------------------------------------------
# Latency tables.


def valid_table_json():
    """A table of the demo space: 1 ms per block."""
    from hournas_tf.resources import latency

    space = demo_space()
    timings = {b.name: {'median_ms': 1.0, 'spread': 0.1}
               for b in latency.space_blocks(space)}
    table = latency.table_from_timings(space, timings, 1, 'fp32', 'fuzz',
                                       'litert')
    return table.to_json()


def latency_json():
    return st.one_of(mutated(valid_table_json()), JSON)


def latency_file():
    return json_file(valid_table_json(), latency_json())


def valid_table(table):
    """An accepted table predicts a finite latency for the demo space."""
    table.check_space(demo_space())
    ms = table.predict_ms(demo_arch().ops)
    assert math.isfinite(ms), ms


# ---------------------------------------------------------------------------
# Numbers outside a range.

NAN = float('nan')
INF = float('inf')


def floats_outside(low=None, high=None, low_open=True, high_open=True):
    """Floats outside [low, high] (open ends excluded too), nan and inf."""
    parts = [st.just(NAN), st.just(INF), st.just(-INF)]
    if low is not None:
        parts.append(st.floats(max_value=low, exclude_max=not low_open,
                               allow_nan=False))
    if high is not None:
        parts.append(st.floats(min_value=high, exclude_min=not high_open,
                               allow_nan=False))
    return st.one_of(parts)


def flag_float(value):
    """A float as a flag value absl parses back to it."""
    return repr(float(value))


NOT_INTEGERS = st.one_of(
    st.sampled_from(['', 'x', '1.5', '1e3', 'nan', 'inf', '0x', ' ', '--',
                     '١٢', '3 4', '2**3', 'None', 'True']),
    st.text(max_size=8).filter(lambda s: not _parses(int, s)))
NOT_FLOATS = st.one_of(
    st.sampled_from(['', 'x', '1,5', '1e', '--1', 'None', 'one', '0x1p3',
                     '1..2', '1e3e3']),
    st.text(max_size=8).filter(lambda s: not _parses(float, s)))
NOT_BOOLS = st.sampled_from(['maybe', '2', 'yes please', '', 'tru', 'on1'])


def _parses(kind, text):
    try:
        kind(text)
    except (ValueError, OverflowError):
        return False
    return True


# ---------------------------------------------------------------------------
# Image folders.

IMAGE_FORMATS = {'png': 'PNG', 'jpg': 'JPEG', 'bmp': 'BMP', 'gif': 'GIF'}
MODES = ('RGB', 'L', 'RGBA', 'P', 'LA', 'I;16', '1', 'CMYK')
_SAVES = {  # format -> modes PIL writes to it
    'PNG': ('RGB', 'L', 'RGBA', 'P', 'LA', 'I;16', '1'),
    'JPEG': ('RGB', 'L', 'CMYK'),
    'BMP': ('RGB', 'L', 'RGBA', 'P', '1'),
    'GIF': ('RGB', 'L', 'P', '1'),
}


def image_bytes(ext, mode, size, seed=0):
    """An image file's bytes: PIL `mode` in the format of `ext`."""
    import numpy as np
    from PIL import Image

    fmt = IMAGE_FORMATS[ext]
    if mode not in _SAVES[fmt]:
        mode = 'RGB'
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3),
                                       dtype=np.uint8))
    image = rgb.convert(mode) if mode not in ('I;16',) else \
        rgb.convert('L').convert('I;16')
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


GOOD = 'good'  # a decodable image in any format, mode and size
UNREADABLE = ('random', 'empty', 'text')  # refused by the listing
DAMAGED = 'truncated'  # right signature, body cut short


@st.composite
def image_file(draw, kinds=(GOOD,) + UNREADABLE + (DAMAGED,)):
    """(name, bytes, kind) of one file of a class folder."""
    kind = draw(st.sampled_from(kinds))
    ext = draw(st.sampled_from(sorted(IMAGE_FORMATS)))
    upper = draw(st.booleans())
    name = draw(st.text('abcxyz0123', min_size=1, max_size=6)) + '.' + (
        ext.upper() if upper else ext)
    if kind == GOOD or kind == DAMAGED:
        mode = draw(st.sampled_from(MODES))
        size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
        data = image_bytes(ext, mode, size, draw(st.integers(0, 9)))
        if kind == DAMAGED:
            data = data[:max(len(data) // 2, 12)]
    elif kind == 'random':
        data = draw(st.binary(min_size=0, max_size=40).filter(
            lambda b: not b.startswith((b'\x89PNG', b'\xff\xd8\xff', b'BM',
                                        b'GIF8'))))
    elif kind == 'empty':
        data = b''
    else:
        data = b'not an image\n'
    return name, data, kind


@st.composite
def image_folder(draw, min_classes=0, max_classes=4, kinds=None):
    """A folder spec: {'classes': {name: [(file, bytes, kind), ...]},
    'extra': [(relative path, bytes)]} (files that are no images, hidden
    files), or None for a missing folder."""
    kinds = kinds or (GOOD,) + UNREADABLE + (DAMAGED,)
    names = draw(st.lists(st.text('abcdefgh', min_size=1, max_size=5),
                          min_size=min_classes, max_size=max_classes,
                          unique=True))
    classes = {}
    for name in names:
        files = draw(st.lists(image_file(kinds), max_size=4,
                              unique_by=lambda f: f[0].lower()))
        classes[name] = files
    extra = draw(st.lists(st.sampled_from([
        ('README.txt', b'hello'), ('.DS_Store', b'\0\0'),
        ('notes.md', b'# no images here'), ('.hidden/x.png', b'junk')]),
        max_size=2, unique=True))
    return {'classes': classes, 'extra': extra}


def write_folder(root, spec):
    """Creates the folder of an `image_folder` spec under `root`."""
    os.makedirs(root, exist_ok=True)
    for name, files in spec['classes'].items():
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for file, data, _ in files:
            with open(os.path.join(root, name, file), 'wb') as f:
                f.write(data)
    for rel, data in spec['extra']:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)


def folder_verdict(spec):
    """What `list_folder` must do with a spec: 'refused' (fewer than two
    classes, a class without images, an unreadable image) or 'listed'."""
    classes = spec['classes']
    if len(classes) < 2 or any(not files for files in classes.values()):
        return 'refused'
    if any(kind in UNREADABLE for files in classes.values()
           for _, _, kind in files):
        return 'refused'
    return 'listed'


# ---------------------------------------------------------------------------
# Workspace: files a case may name, and the check that none changed.


def snapshot(root):
    """{relative path: bytes, or None for a folder} of everything in
    `root`."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            out[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in files:
            path = os.path.join(folder, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def write(path, data):
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with open(path, 'wb' if isinstance(data, bytes) else 'w') as f:
        f.write(data)
    return path


def workspace(root):
    """Fills `root` with what the cases name: a finished-looking output
    folder, a file, a valid architecture and latency table of the demo
    space. Paths are relative to `root` (the commands run in it)."""
    write(os.path.join(root, 'existing', 'result.txt'), 'keep me\n')
    write(os.path.join(root, 'existing', 'sub', 'model.keras'), b'PK\0\0')
    write(os.path.join(root, 'a_file'), 'a file, not a folder\n')
    write(os.path.join(root, 'arch.json'), json.dumps(valid_arch_json()))
    write(os.path.join(root, 'table.json'), json.dumps(valid_table_json()))
    write(os.path.join(root, 'not_a_zip.keras'), b'junk')
    with zipfile.ZipFile(os.path.join(root, 'bad_zip.keras'), 'w') as z:
        z.writestr('config.json', '{"class_name": "Nope"}')
    write(os.path.join(root, 'junk.weights.h5'), b'\x89HDF\r\n\x1a\njunk')
    write(os.path.join(root, 'not_hdf5.weights.h5'), b'junk')


# ---------------------------------------------------------------------------
# Commands in-process.

COMMANDS = ('search', 'train', 'export', 'describe', 'report')
_SHOW_LOGS = {'search': lambda f: f.verbose >= 2,
              'train': lambda f: f.verbose >= 2}


class Reached(Exception):
    """A case got past every check to the slow part of a command."""


def _reached(what):
    def stop(*args, **kwargs):
        raise Reached(what)
    return stop


def _slow_parts(command):
    """mock.patch objects replacing the slow part of `command`."""
    patches = [mock.patch('hournas_tf.training.strategies.make_strategy',
                          lambda name: None)]
    if command == 'search':
        from hournas_tf.nas import search_lib

        patches += [mock.patch.object(search_lib, '_run_search',
                                      _reached('search')),
                    mock.patch.object(search_lib, '_run_dry',
                                      _reached('search --dry_run'))]
    elif command == 'train':
        from hournas_tf.training import train_lib

        patches += [mock.patch.object(train_lib, 'run_training',
                                      _reached('training')),
                    mock.patch.object(train_lib, 'dry_run',
                                      _reached('train --dry_run'))]
    elif command == 'export':
        from hournas_tf.exporting import export_lib

        load = export_lib.load_model

        def load_then_stop(config):
            load(config)
            raise Reached('export (the model loaded)')

        patches.append(mock.patch.object(export_lib, 'load_model',
                                         load_then_stop))
    return patches


@contextlib.contextmanager
def _captured():
    """Captures sys.stdout, sys.stderr and file descriptor 2; yields a
    dict that gets 'stdout' and 'stderr' at the end."""
    out = {}
    stdout, stderr = io.StringIO(), io.StringIO()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as fd2:
        os.dup2(fd2.fileno(), 2)
        try:
            with contextlib.redirect_stdout(stdout), \
                    contextlib.redirect_stderr(stderr):
                yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            fd2.seek(0)
            out['stdout'] = stdout.getvalue()
            out['stderr'] = (fd2.read().decode('utf-8', 'replace')
                             + stderr.getvalue())


class Outcome:
    """How an in-process command ended: `code` (SystemExit code, 0 when
    main returned), `stdout`, `stderr`, `reached` (the slow part it got
    to, or None)."""

    def __init__(self, code, stdout, stderr, reached=None):
        self.code, self.stdout, self.stderr = code, stdout, stderr
        self.reached = reached

    def __repr__(self):
        return (f'Outcome(code={self.code!r}, reached={self.reached!r}, '
                f'stderr={self.stderr!r})')


def run_command(command, argv, cwd):
    """Runs `python -m hournas_tf.<command> argv...` in-process in `cwd`
    with its slow part replaced (`Reached`); returns an `Outcome`. A crash
    (any other exception) propagates, as the traceback would."""
    from absl import app
    from absl import flags

    module = importlib.import_module(f'hournas_tf.{command}')
    # app.run registers its flags once per process; each case is a process.
    app._register_and_parse_flags_with_usage.done = False
    FLAGS = flags.FLAGS
    before = set(FLAGS)
    module.define_flags()
    added = [name for name in FLAGS if name not in before]
    old_argv, old_cwd = sys.argv, os.getcwd()
    reached = None
    try:
        os.chdir(cwd)
        sys.argv = [f'hournas_tf.{command}', *argv]
        with contextlib.ExitStack() as stack:
            for patch in _slow_parts(command):
                stack.enter_context(patch)
            out = stack.enter_context(_captured())
            try:
                errors.run(module.main, show_logs=_SHOW_LOGS.get(command))
                code = 0
            except SystemExit as e:
                code = e.code
            except Reached as e:
                code, reached = None, str(e)
    finally:
        os.chdir(old_cwd)
        sys.argv = old_argv
        FLAGS.unparse_flags()
        for name in added:
            if name in FLAGS:
                delattr(FLAGS, name)
    return Outcome(code, out['stdout'], out['stderr'], reached)


def check_refused(outcome, expect=None):
    """A refused case: exit code 2 and one line on stderr, `error: ...`
    (containing `expect` when given), no traceback."""
    assert outcome.reached is None, f'accepted: {outcome!r}'
    assert outcome.code == 2, outcome
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), outcome
    assert outcome.stderr.endswith('\n') and 'Traceback' not in \
        outcome.stderr
    if expect:
        assert expect in lines[0], (expect, lines[0])
    return lines[0]


def refused_untouched(command, argv, root, expect=None):
    """Runs a case in the workspace `root` and checks that it is refused
    and that nothing in `root` changed (no output folder made or left,
    no file changed). Returns the error line."""
    before = snapshot(root)
    outcome = run_command(command, argv, root)
    line = check_refused(outcome, expect)
    after = snapshot(root)
    changed = sorted(k for k in set(before) | set(after)
                     if before.get(k, 0) != after.get(k, 0))
    assert not changed, (argv, changed)
    return line


# ---------------------------------------------------------------------------
# Parser targets: name -> (strategy, parse, check of an accepted result).


def _in_file(parse, name):
    def parse_file(content):
        with tempfile.TemporaryDirectory() as root:
            return parse(write(os.path.join(root, name), content))
    return parse_file


def _parse_table(value):
    from hournas_tf.resources import latency

    table = latency.from_json(value, 'table.json')
    table.check_space(demo_space())
    return table


def _load_table(path):
    from hournas_tf.resources import latency

    return latency.load_table(path, demo_space())


def _parse_op(name):
    from hournas_tf.spaces import parse_op

    op = parse_op(name)
    assert op.is_skip or (op.kernel % 2 == 1 and op.expansion >= 1)
    return op


def _parse_dataset(name):
    from hournas_tf import data

    kind, path = data.parse_dataset_name(name)
    assert kind in data.KINDS
    assert (path is None) == (kind != 'image_folder'), (kind, path)


def parsers():
    """{target: (strategy, parse, valid)} of the parser-level fuzzing."""
    from hournas_tf.spaces.architecture import Architecture
    from hournas_tf.spaces.architecture import load_architecture

    return {
        'architecture JSON': (arch_json(), Architecture.from_json,
                              valid_arch),
        'architecture file': (arch_file(), _in_file(load_architecture,
                                                    'arch.json'), valid_arch),
        'architecture string': (arch_string(), Architecture.from_string,
                                valid_arch),
        'latency table JSON': (latency_json(), _parse_table, valid_table),
        'latency table file': (latency_file(), _in_file(_load_table,
                                                        'table.json'),
                               valid_table),
        'op name': (st.one_of(st.text(max_size=20), st.sampled_from([
            'k4_e6', 'k3_e0', 'k3_e6_se', 'k3_e6_se1', 'k3_sep_e', 'skip ',
            'SKIP', 'k3_e6_g', 'k3_e6_g0', 'k0_e1', 'k33_e1'])),
            _parse_op, None),
        'dataset name': (st.one_of(st.text(max_size=20), st.sampled_from([
            'image_folder', 'image_folder:', 'image_folder: ', 'cifar',
            'CIFAR10', 'digits ', 'imagenet', 'mnist', 'image_folder:\n'])),
            _parse_dataset, None),
    }
