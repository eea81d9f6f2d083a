"""The fuzz harness of tools/fuzz_inputs.py and of the tests
(tests/test_fuzz_*.py; needs hypothesis, the test extra): malformed inputs
as hypothesis strategies, the commands run in-process, and the checks
every bad input must pass.

A command runs in-process exactly as `python -m hournas_tf.<command>` runs
it: its `define_flags()`, then `runner.run(main)` with `sys.argv`; stdout
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
import subprocess
import sys
import tempfile
import zipfile
from unittest import mock

from hypothesis import strategies as st

from hournas_tf.common import runner
from hournas_tf.common.errors import UserError
from hournas_tf.distribute import STRATEGIES

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


def floats_outside(low=None, high=None, with_low=True, with_high=True):
    """Floats below `low` and above `high`, the bounds themselves when
    `with_low` / `with_high` (they are invalid too), nan and +-inf."""
    parts = [st.just(NAN), st.just(INF), st.just(-INF)]
    if low is not None:
        parts.append(st.floats(max_value=low, exclude_max=not with_low,
                               allow_nan=False))
    if high is not None:
        parts.append(st.floats(min_value=high, exclude_min=not with_high,
                               allow_nan=False))
    return st.one_of(parts)


def flag_float(value):
    """A float as a flag value absl parses back to it."""
    return repr(float(value))


NOT_INTEGERS = st.one_of(
    st.sampled_from(['', 'x', '1.5', '1e3', 'nan', 'inf', '0x', ' ', '--',
                     '3 4', '2**3', 'None', 'True']),
    # Not 0x1f or 0o17 either: absl reads them.
    st.text(max_size=8).filter(lambda s: not _parses(int, s)
                               and not s.startswith('0')))
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
# Refused by the listing: no image signature, or a 1-bit BMP (TensorFlow
# decodes 8, 24 and 32 bits per pixel only).
UNREADABLE = ('random', 'empty', 'text', 'bmp_1bit')
DAMAGED = 'truncated'  # right signature, cut short: refused too


@st.composite
def image_file(draw, kinds=(GOOD,) + UNREADABLE + (DAMAGED,)):
    """(name, bytes, kind) of one file of a class folder."""
    kind = draw(st.sampled_from(kinds))
    ext = draw(st.sampled_from(sorted(IMAGE_FORMATS)))
    upper = draw(st.booleans())
    name = draw(st.text('abcxyz0123', min_size=1, max_size=6)) + '.' + (
        ext.upper() if upper else ext)
    if kind == 'bmp_1bit':
        ext, kind, upper = 'bmp', GOOD, False
        name = name.rsplit('.', 1)[0] + '.bmp'
        data = image_bytes('bmp', '1', (draw(st.integers(1, 40)), 3))
        return name, data, 'bmp_1bit'
    if kind == GOOD or kind == DAMAGED:
        mode = draw(st.sampled_from(MODES))
        if ext == 'bmp' and mode == '1':
            mode = 'L'
        size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
        data = image_bytes(ext, mode, size, draw(st.integers(0, 9)))
        if kind == DAMAGED:
            data = data[:max(len(data) // 2, 12)]
            while data.rstrip(b'\0').endswith(b';'):  # not a GIF's end
                data = data[:-1]
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
    if kinds is None:  # Half the folders have only good images.
        kinds = (GOOD,) if draw(st.booleans()) else \
            (GOOD,) + UNREADABLE + (DAMAGED,)
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
    classes, a class without images, an unreadable or truncated image) or
    'listed'."""
    classes = spec['classes']
    if len(classes) < 2 or any(not files for files in classes.values()):
        return 'refused'
    if any(kind != GOOD for files in classes.values()
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
    patches = [mock.patch('hournas_tf.distribute.make_strategy',
                          lambda name, tpu=None, cpu_replicas=1: None)]
    if command == 'search':
        from hournas_tf.nas import search_lib

        patches += [mock.patch.object(search_lib.SearchRun, 'run',
                                      _reached('search')),
                    mock.patch.object(search_lib.SearchRun, 'dry_run',
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
    if 'tensorflow' in sys.modules:
        # TensorFlow logs its failed CUDA probe to fd 2 once per process,
        # in whatever touches the devices first: let that be here, not a
        # case (which of them is first depends on the tests run before).
        sys.modules['tensorflow'].config.list_physical_devices()
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
                runner.run(module.main, show_logs=_SHOW_LOGS.get(command))
                code = 0
            except SystemExit as e:
                code = 0 if e.code is None else e.code
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
    (containing `expect` when given), no traceback. `outcome` is an
    `Outcome` of an in-process run or the `subprocess.CompletedProcess` of
    a real one. Returns the error line."""
    if isinstance(outcome, subprocess.CompletedProcess):
        outcome = Outcome(outcome.returncode, outcome.stdout,
                          outcome.stderr)
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


_TABLE = {}


def _table_path():
    """A valid latency table file of the demo space (written once)."""
    if 'path' not in _TABLE:
        _TABLE['path'] = write(os.path.join(tempfile.mkdtemp(),
                                            'table.json'),
                               json.dumps(valid_table_json()))
    return _TABLE['path']


@st.composite
def search_targets(draw):
    """A demo `SearchConfig` whose targets are outside the demo space's
    range, not > 0, or of an unknown objective (any tolerance)."""
    from hournas_tf.nas import config

    objectives = st.sampled_from(['macs', 'params', 'latency_ms', 'flops',
                                  'MACS', '', 'weights'])
    values = st.one_of(floats_outside(0), st.floats(1e-300, 1e3),
                       st.floats(1e10, 1e300))
    targets = draw(st.dictionaries(objectives, values, min_size=1,
                                   max_size=3))
    return config.SearchConfig(
        space='efficientnet', dataset='digits', image_size=32,
        width_multiplier=0.25, targets=targets,
        latency_table=draw(st.sampled_from([None, _table_path()])),
        tolerance=draw(st.floats(allow_nan=True, allow_infinity=True)))


def _preflight(config):
    from hournas_tf.nas import search_lib

    search_lib.preflight(config)


def _never(result):
    raise AssertionError(f'accepted: {result!r}')


def parsers():
    """{target: (strategy, parse, valid)} of the parser-level fuzzing
    (`valid` None: any result; `_never`: every input must be refused)."""
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
        'search targets': (search_targets(), _preflight, _never),
    }


def check_parser(target, value, table=None):
    """Runs parser `target` of `parsers()` (or of `table`) on `value`
    and counts the case."""
    _, parse, valid = (table or parsers())[target]
    return count(target, refused_or_valid(parse, value, valid))


def check_folder(spec):
    """Lists the folder of an `image_folder` spec; the verdict must be
    `folder_verdict(spec)`, a listing must hold every image under its
    class. Returns (verdict, listing or error line, folder)."""
    from hournas_tf.data import image_folder as folder_lib

    root = os.path.join(tempfile.mkdtemp(), 'images')
    write_folder(root, spec)
    try:
        listing = folder_lib.list_folder(root)
        verdict = 'listed'
    except UserError as e:
        listing, verdict = check_user_error(e), 'refused'
    count('image folder listing', verdict)
    assert verdict == folder_verdict(spec), (verdict, listing)
    if verdict == 'listed':
        assert listing.class_names == tuple(sorted(spec['classes']))
        files = sum(len(f) for f in spec['classes'].values())
        paths = listing.train_paths + listing.eval_paths
        assert len(paths) == files
        for path, label in zip(paths, listing.train_labels
                               + listing.eval_labels):
            folder = os.path.basename(os.path.dirname(path))
            assert listing.class_names[label] == folder
    return verdict, listing, root


def check_command(command, case, root):
    """`run_case`, counted."""
    line = run_case(command, case, root)
    count(command, 'refused')
    return line


# ---------------------------------------------------------------------------
# Command cases: one bad input each, in a workspace (see `workspace`).


@dataclasses.dataclass
class Case:
    """A command run: `argv`, the files it needs written first (relative
    path -> bytes; an image folder), and a text the error line must hold
    (None: any one-line error)."""

    argv: list
    expect: str = None
    files: dict = dataclasses.field(default_factory=dict)


def _flag(name, values, expect=None):
    """Cases `--name=value` for values of a strategy."""
    return values.map(lambda v: Case([f'--{name}={v}'], expect))


def _floats(name, strategy, expect=None):
    return _flag(name, strategy.map(flag_float), expect or name)


def _types(ints=(), floats=(), bools=(), enums=()):
    """Cases absl refuses: a flag of the wrong type or outside its enum."""
    parts = []
    for name in ints:
        parts.append(_flag(name, NOT_INTEGERS, f'flag --{name}='))
    for name in floats:
        parts.append(_flag(name, NOT_FLOATS, f'flag --{name}='))
    for name in bools:
        parts.append(_flag(name, NOT_BOOLS, name))
    for name, valid in enums:
        parts.append(_flag(name, st.text(max_size=10).filter(
            lambda s, valid=valid: s not in valid), f'flag --{name}='))
    return parts


def _unknown():
    """Cases with a flag no command (nor absl) defines: `--zz...`."""
    return st.text('abcdefghijklmnopqrstuvwxyz_', min_size=1,
                   max_size=12).map(lambda s: Case([f'--zz{s}=1'],
                                                   'Unknown command'))


POSITIONAL = st.lists(st.text('abc/._-0', min_size=1, max_size=8),
                      min_size=1, max_size=2).map(
    lambda args: Case(list(args)))
OUTPUTS = st.sampled_from(['existing', 'a_file', 'existing/sub'])


def _refused_string(text):
    from hournas_tf.spaces.architecture import Architecture

    try:
        Architecture.from_string(text)
    except UserError:
        return True
    return False


def _refused_file(content):
    from hournas_tf.spaces.architecture import load_architecture

    try:
        _in_file(load_architecture, 'arch.json')(content)
    except UserError:
        return True
    return False


BAD_ARCH_STRINGS = arch_string().filter(lambda t: ':' in t).filter(
    _refused_string)
BAD_ARCH_FILES = arch_file().filter(_refused_file)
# Tables refused whatever they hold: not JSON, not UTF-8, empty.
BAD_TABLE_FILES = st.one_of(
    st.binary(max_size=40).filter(lambda b: not _parses(json.loads, b)),
    st.just(b''), st.just(b'\xff\xfe{}'),
    st.integers(0, 400).map(
        lambda n: json.dumps(valid_table_json()).encode()[:n]))


def _with_file(path, content, argv, expect=None):
    return Case(argv, expect, {path: content})


def _folder_files(root, spec):
    """{relative path: bytes} of an `image_folder` spec under `root`."""
    files = {}
    for name, entries in spec['classes'].items():
        files[os.path.join(root, name, '.keep')] = b''
        for file, data, _ in entries:
            files[os.path.join(root, name, file)] = data
    for rel, data in spec['extra']:
        files[os.path.join(root, rel)] = data
    return files


BAD_FOLDERS = image_folder().filter(
    lambda spec: folder_verdict(spec) == 'refused').map(
    lambda spec: Case(['--dataset=image_folder:images'], 'image folder',
                      _folder_files('images', spec)))
MISSING_FOLDERS = st.sampled_from(['nowhere', 'a_file', 'existing',
                                   'existing/sub']).map(
    lambda p: Case([f'--dataset=image_folder:{p}'], 'image folder'))
DATASET_NAMES = _flag('dataset', st.text(max_size=12).filter(
    lambda s: s.strip() not in ('digits', 'cifar10', 'imagenet2012')
    and not s.strip().startswith('image_folder:')), 'dataset')


def _search_cases():
    ops = st.sampled_from(['k3_e3_se0.25', 'k5_e6_se0.25', 'skip', 'k3_e1',
                           'k9_e9', 'max', ''])
    return st.one_of(
        _floats('target_macs', st.one_of(floats_outside(0, None),
                                         st.floats(1e-300, 1e5),
                                         st.floats(1e9, 1e300)), 'macs'),
        _floats('target_params', st.one_of(floats_outside(0, None),
                                           st.floats(1e-300, 1e3),
                                           st.floats(1e8, 1e300)),
                'params'),
        _floats('target_latency_ms', st.floats(1e-3, 1e3), 'latency'),
        st.builds(lambda content, ms: _with_file(
            'bad_table.json', content,
            ['--latency_table=bad_table.json',
             f'--target_latency_ms={ms}'], 'bad_table.json'),
            BAD_TABLE_FILES, st.floats(1, 100)),
        st.floats(1e-3, 1e6).filter(lambda ms: not 1 <= ms <= 1e3).map(
            lambda ms: Case(['--latency_table=table.json',
                             f'--target_latency_ms={ms!r}'], 'latency')),
        st.just(Case(['--latency_table=table.json', '--width_multiplier=0.5',
                      '--target_latency_ms=20'], 'table.json is for')),
        _floats('tolerance', floats_outside(0, 1)),
        _floats('tau_decay', floats_outside(0, 1, True, False)),
        *[_floats(name, floats_outside(0)) for name in (
            'tau_init', 'nonvital_tau_init', 'weight_lr', 'arch_lr')],
        *[_floats(name, floats_outside(0, None, False)) for name in (
            'alpha', 'beta')],
        _flag('vital_ops', st.lists(ops, min_size=1, max_size=8).filter(
            lambda v: len(v) != 5 and v != ['max'] and any(v)).map(
            ','.join),
            'vital_ops'),
        st.lists(st.sampled_from(['k3_e3_se0.25', 'k9_e9', 'skip']),
                 min_size=5, max_size=5).filter(
            lambda v: 'k9_e9' in v or 'skip' in v).map(
            lambda v: Case([f'--vital_ops={",".join(v)}'], 'op ')),
        st.just(Case(['--vital_ops=max', '--vital_first=false'],
                     '--vital_first')),
        DATASET_NAMES, MISSING_FOLDERS, BAD_FOLDERS,
        _flag('num_classes', st.integers(2, 10 ** 6).filter(
            lambda n: n != 10), 'num_classes'),
        _flag('width_multiplier', st.sampled_from(['inf', '1e400', 'nan']),
              'width_multiplier'),
        _flag('output_dir', OUTPUTS, 'output_dir'),
        *_types(ints=('image_size', 'num_classes', 'num_proposals',
                      'batch_size', 'seed', 'vital_epochs'),
                floats=('target_macs', 'tolerance', 'alpha'),
                bools=('repair', 'vital_first', 'dry_run'),
                enums=(('space', SPACE_NAMES_ALL), ('sampler', SAMPLERS),
                       ('strategy', STRATEGIES))),
        *STRATEGY_MISTAKES,
        st.just(Case(['--sync_batch_norm', '--per_replica_paths'],
                     'per_replica_paths')),
        _flag('num_proposals', st.integers(-10, 0), 'num_proposals'),
        _flag('image_size', st.integers(-10, 7), 'image_size'),
        _unknown(), POSITIONAL)


# Distribution flags that do not fit together (search and train).
STRATEGY_MISTAKES = (
    st.just(Case(['--strategy=tpu'], '--tpu')),
    st.just(Case(['--tpu=local'], '--strategy=tpu')),
    st.sampled_from(['default', 'multi_worker_mirrored']).map(
        lambda s: Case([f'--strategy={s}', '--cpu_replicas=2'],
                       'cpu_replicas')),
    _flag('cpu_replicas', st.integers(-10, 0), 'cpu_replicas'),
)


SPACE_NAMES_ALL = ('fbnet', 'efbnet', 'mnasnet', 'efficientnet',
                   'proxyless', 'mobilenetv2')
SAMPLERS = ('gumbel_max', 'gumbel_softmax', 'softmax')


def _train_cases():
    unit = floats_outside(0, 1, False, True)
    return st.one_of(
        BAD_ARCH_STRINGS.map(lambda t: Case(['--arch_file=', f'--arch={t}'])),
        st.text('abcxyz_019', min_size=1, max_size=10).map(
            lambda t: Case(['--arch_file=', f'--arch={t}'], 'unknown arch')),
        BAD_ARCH_FILES.map(lambda content: _with_file(
            'bad_arch.json', content, ['--arch_file=bad_arch.json'],
            'bad_arch.json')),
        st.sampled_from(['nowhere.json', 'existing', '']).map(
            lambda p: Case([f'--arch_file={p}'], 'arch')),
        st.just(Case(['--arch=efficientnet_b0'], 'exactly one of')),
        st.just(Case(['--epochs=0'], 'epochs=0')),
        st.floats(3, 1e300).map(lambda w: Case(
            ['--epochs=3', f'--warmup_epochs={w!r}'], 'warmup_epochs')),
        _floats('learning_rate', floats_outside(0)),
        _floats('weight_decay', floats_outside(0, None, False)),
        *[_floats(name, unit) for name in (
            'label_smoothing', 'drop_path_rate', 'ema_momentum', 'dropout')],
        _flag('cutout', st.integers(33, 10 ** 4), 'cutout'),
        _flag('verbose', st.integers(3, 100) | st.integers(-100, -1),
              'verbose'),
        _flag('batch_size', st.integers(1439, 10 ** 6), 'batch_size'),
        _flag('inherit_weights', st.sampled_from([
            'nowhere.weights.h5', 'existing', 'a_file',
            'not_hdf5.weights.h5']), 'inherit_weights'),
        DATASET_NAMES, MISSING_FOLDERS, BAD_FOLDERS,
        _flag('output_dir', OUTPUTS, 'output_dir'),
        *_types(ints=('epochs', 'batch_size', 'cutout', 'image_size'),
                floats=('learning_rate', 'dropout'),
                bools=('mixed_precision', 'dry_run'),
                enums=(('strategy', STRATEGIES),)),
        *STRATEGY_MISTAKES,
        _flag('image_size', st.integers(-10, 7), 'image_size'),
        _unknown(), POSITIONAL)


def _export_cases():
    formats = ('saved_model', 'tflite', 'tflite_fp16', 'tflite_int8',
               'tflite_qat')
    return st.one_of(
        st.sampled_from([
            Case(['--arch_file=', '--model=nowhere.keras'], 'nowhere'),
            Case(['--arch_file=', '--model=not_a_zip.keras'], 'Keras 3'),
            Case(['--arch_file=', '--model=bad_zip.keras'], 'bad_zip'),
            Case(['--arch_file=', '--model=a_file'], 'Keras 3'),
            Case(['--model=bad_zip.keras'], 'either'),
            Case(['--arch_file='], 'either'),
            Case(['--arch_file=', '--model=bad_zip.keras',
                  '--weights=arch.weights.h5'], '--weights'),
            Case(['--weights=nowhere.weights.h5'], 'nowhere'),
            Case(['--weights=not_hdf5.weights.h5'], 'not_hdf5'),
            Case(['--weights=junk.weights.h5'], 'junk'),
            Case(['--weights=a_file'], 'a_file'),
            Case(['--formats='], 'format'),
            Case(['--arch_file=nowhere.json'], 'nowhere'),
        ]),
        BAD_ARCH_FILES.map(lambda content: _with_file(
            'bad_arch.json', content, ['--arch_file=bad_arch.json',
                                       '--weights=arch.weights.h5'],
            'bad_arch.json')),
        _flag('formats', st.lists(st.text(max_size=8), min_size=1,
                                  max_size=3).filter(
            lambda v: any(f not in formats for f in v) and all(
                ',' not in f for f in v)).map(','.join), 'format'),
        _flag('threads', st.lists(st.one_of(
            st.integers(-5, 0).map(str), NOT_INTEGERS.filter(
                lambda s: ',' not in s and s.strip())), min_size=1,
            max_size=3).map(','.join), 'threads'),
        _floats('qat_learning_rate', floats_outside(0)),
        DATASET_NAMES,
        _flag('output_dir', OUTPUTS, 'output_dir'),
        *_types(ints=('representative_steps', 'qat_steps', 'batch_size',
                      'check_examples', 'seed'),
                floats=('qat_learning_rate',), bools=('check',)),
        _flag('qat_steps', st.integers(-10, 0), 'qat_steps'),
        _unknown(), POSITIONAL)


def _describe_cases():
    demo = demo_arch().to_string()
    return st.one_of(
        BAD_ARCH_STRINGS.map(lambda t: Case([f'--arch={t}'])),
        st.text('abcxyz_019', min_size=1, max_size=10).map(
            lambda t: Case([f'--arch={t}'], 'unknown architecture')),
        BAD_ARCH_FILES.map(lambda content: _with_file(
            'bad_arch.json', content, ['--arch_file=bad_arch.json'],
            'bad_arch.json')),
        st.sampled_from([
            Case([], 'exactly one of'),
            Case(['--arch=fbnet_a', '--space=fbnet'], 'exactly one of'),
            Case(['--arch_file=arch.json', '--space=fbnet'], 'exactly one'),
            Case(['--space=fbnet', '--latency_table=table.json'],
                 '--latency_table goes with'),
            Case(['--arch=fbnet_a', '--latency_table=table.json'],
                 'table.json is for'),
            Case(['--arch_file=nowhere.json'], 'nowhere'),
            Case([f'--arch={demo}', '--latency_table=nowhere.json'],
                 'nowhere'),
        ]),
        BAD_TABLE_FILES.map(lambda content: _with_file(
            'bad_table.json', content,
            [f'--arch={demo}', '--latency_table=bad_table.json'],
            'bad_table.json')),
        st.builds(lambda target, key, value: Case(
            [target, f'--{key}={value}'], key),
            st.sampled_from(['--arch=fbnet_a', '--space=mnasnet',
                             '--arch_file=arch.json', f'--arch={demo}']),
            st.sampled_from(['width_multiplier']),
            floats_outside(0).map(flag_float)),
        st.builds(lambda target, size: Case(
            [target, f'--image_size={size}'], 'image_size'),
            st.sampled_from(['--arch=fbnet_a', '--space=mnasnet',
                             '--arch_file=arch.json']),
            st.integers(-10 ** 6, 7)),
        st.builds(lambda target, n: Case(
            [target, f'--num_classes={n}'], 'num_classes'),
            st.sampled_from(['--arch=fbnet_a', '--space=mnasnet',
                             '--arch_file=arch.json']),
            st.integers(-10 ** 6, 1)),
        *_types(ints=('image_size', 'num_classes'),
                floats=('width_multiplier',), bools=('json',)),
        _unknown(), POSITIONAL.map(
            lambda c: Case(['--arch=fbnet_a', *c.argv])))


def _report_cases():
    search = {'search': {'targets': {'macs': 1e6}}}
    arch = valid_arch_json()

    def run(files, argv=(), expect=None):
        return Case(['run', *argv], expect, {
            os.path.join('run', k): v for k, v in files.items()})

    return st.one_of(
        st.sampled_from([
            Case([], 'give one search run folder'),
            Case(['run', 'run2'], 'give one search run folder'),
            Case(['nowhere'], 'no arch.json'),
            Case(['existing'], 'no arch.json'),
            Case(['a_file'], 'no arch.json'),
            run({'arch.json': json.dumps(arch).encode()}, (),
                'no search section'),
            run({'arch.json': json.dumps({**arch, **search}).encode()},
                ['--train_dir=existing'], 'no metrics.json'),
            run({'arch.json': json.dumps({**arch, **search}).encode()},
                ['--export_report=nowhere.json'], 'nowhere.json'),
        ]),
        BAD_ARCH_FILES.map(lambda content: run({'arch.json': content})),
        JSON.filter(lambda v: not isinstance(v, dict)).map(
            lambda v: run({'arch.json': json.dumps(
                {**arch, 'search': v}).encode()}, (), 'search section')),
        st.builds(lambda content: run({
            'arch.json': json.dumps({**arch, **search}).encode(),
            'history.jsonl': content}, (), 'history.jsonl'),
            st.one_of(st.binary(min_size=1, max_size=30),
                      JSON.filter(lambda v: not isinstance(v, dict)).map(
                          lambda v: json.dumps(v).encode())).filter(
                lambda b: b.strip() and not _is_object_lines(b))),
        st.builds(lambda name, content: run({
            'arch.json': json.dumps({**arch, **search}).encode(),
            name: content}, (), 'malformed'),
            st.sampled_from(['train/metrics.json',
                             'export/export_report.json',
                             'search_config.json']),
            BAD_TABLE_FILES.filter(bool)),
        _unknown().map(
            lambda c: Case(['run', *c.argv], c.expect)))


def _is_object_lines(content):
    try:
        lines = content.decode().splitlines()
        return all(isinstance(json.loads(line), dict)
                   for line in lines if line.strip())
    except (ValueError, UnicodeDecodeError):
        return False


def command_cases():
    """{command: strategy of `Case`s it must refuse}."""
    return {'search': _search_cases(), 'train': _train_cases(),
            'export': _export_cases(), 'describe': _describe_cases(),
            'report': _report_cases()}


# Each command's arguments that make a valid run of the workspace: a case
# adds its bad input to them (absl: the last value of a flag wins).
BASES = {
    'search': [],
    'train': ['--arch_file=arch.json'],
    'export': ['--arch_file=arch.json', '--formats=tflite'],
    'describe': [],
    'report': [],
}


def run_case(command, case, root):
    """Writes the case's files into the workspace `root`, runs it and
    checks it is refused with nothing changed; returns the error line."""
    for path, content in case.files.items():
        write(os.path.join(root, path), content)
    try:
        return refused_untouched(command, BASES[command] + case.argv, root,
                                 case.expect)
    finally:
        for path in case.files:
            top = os.path.join(root, path.split(os.sep)[0])
            if os.path.isdir(top):
                import shutil

                shutil.rmtree(top)
            elif os.path.exists(top):
                os.remove(top)


_WEIGHTS = {}


def valid_weights():
    """The bytes of `build_model(demo_arch())`'s weights (TensorFlow;
    built once per process)."""
    if 'bytes' not in _WEIGHTS:
        from hournas_tf.blocks.model import build_model

        with tempfile.TemporaryDirectory() as root:
            path = os.path.join(root, 'arch.weights.h5')
            build_model(demo_arch()).save_weights(path)
            with open(path, 'rb') as f:
                _WEIGHTS['bytes'] = f.read()
    return _WEIGHTS['bytes']


def command_workspace(root, command):
    """`workspace(root)`, plus for export the weights of arch.json next to
    it (the export's base case is valid)."""
    workspace(root)
    if command == 'export':
        write(os.path.join(root, 'arch.weights.h5'), valid_weights())
