"""Same seed, same result; exact resume; preemption and faults
(nas/checkpointing.py, the search command's --deterministic and --resume)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO
from conftest import run_module
from conftest import run_python

from hournas_tf.fuzzing import check_refused

# A tiny deterministic search: stage 2 has 2 epochs x 3 steps, a
# checkpoint after every step.
TINY = ['--max_steps_per_epoch=3', '--proposal_iters=50',
        '--num_proposals=2', '--batch_size=16', '--vital_epochs=1',
        '--nonvital_epochs=2', '--verbose=0', '--checkpoint_every=1',
        '--deterministic']


def _without_seconds(value):
    """`value` without its timings (the only part allowed to differ)."""
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items()
                if k != 'seconds'}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


def _arch(out):
    return _without_seconds(json.loads((out / 'arch.json').read_text()))


def _start(out, *flags, module='hournas_tf.search'):
    """Starts `python -m module --output_dir=out flags` in the background;
    returns (process, path of its log)."""
    log = open(str(out) + '.log', 'w')
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(
        [sys.executable, '-m', module, f'--output_dir={out}', *flags],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    return proc, str(out) + '.log'


def _finished(run, timeout=3600):
    """The folder of a background run once it ended with exit code 0."""
    proc, log, out = run
    try:
        code = proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, open(log).read()[-3000:]
    return out


def _newest(out):
    """The number of the newest checkpoint in `out` (-1 without one)."""
    path = out / 'checkpoints' / 'checkpoint'
    if not path.exists():
        return -1
    first = path.read_text().splitlines()[0]
    return int(first.split('ckpt-')[1].rstrip('"'))


def _resumed_not_restarted(out, stdout):
    """Checks that a finished search resumed in stage 2 ran only the steps
    its checkpoint had not: its newest checkpoint (stage 2's last) counts
    the stage's epochs x steps, no more (a stage restarted from its first
    step after the restore counts the restored steps twice)."""
    import re

    from hournas_tf.nas import checkpointing

    assert '(stage 2, step' in stdout
    assert 'stage 2, step 0)' not in stdout
    [(epochs, steps)] = re.findall(
        r'stage nonvital: (\d+) epoch\(s\) x (\d+) steps', stdout)
    _, stage, step = checkpointing.SearchCheckpoint(str(out)).latest()
    assert (stage, step) == (2, int(epochs) * int(steps)), (stage, step)


def _wait(proc, condition, timeout=3600):
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, 'the run ended too early'
        assert time.monotonic() < end, 'timed out'
        time.sleep(0.1)


def _kill_when(proc, condition, sig=signal.SIGKILL, code=-signal.SIGKILL,
               before=lambda: None, timeout=600):
    """Sends `sig` once `condition()` holds (after `before()`) and checks
    the exit code (within `timeout` seconds)."""
    try:
        _wait(proc, condition)
        before()
        proc.send_signal(sig)
        assert proc.wait(timeout) == code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.large
def test_sigkill_in_stage_2_then_resume_equals_an_unbroken_run(tiny_search,
                                                              tmp_path):
    """The unbroken run is conftest's shared tiny search; the killed one
    runs its flags with a checkpoint after every step (stage 2: 3 steps)."""
    from conftest import TINY_SEARCH

    out = tmp_path / 'killed'
    proc, log = _start(out, *TINY_SEARCH, '--checkpoint_every=1')
    _wait(proc, lambda: 'stage nonvital' in open(log).read())
    first = _newest(out)  # stage 2 at step 0
    _kill_when(proc, lambda: _newest(out) > first)  # after a stage-2 step
    assert not (out / 'arch.json').exists()
    res = run_module('hournas_tf.search', '--resume', f'--output_dir={out}',
                     timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'stage 1 finished' in res.stdout
    _resumed_not_restarted(out, res.stdout)  # resumed within stage 2
    # Also the check that one seed gives one result: a resumed run equals
    # the unbroken one only if both runs are deterministic.
    reference, _ = tiny_search
    assert _arch(out) == _arch(reference)


def _weights(path):
    """{name: array} of every dataset of a Keras `.weights.h5` file."""
    import h5py

    found = {}
    with h5py.File(path, 'r') as f:
        f.visititems(lambda name, item: found.__setitem__(name, item[()])
                     if isinstance(item, h5py.Dataset) else None)
    return found


def _assert_same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert sorted(wa) == sorted(wb) and wa
    for name in wa:
        assert (wa[name] == wb[name]).all(), name


@pytest.mark.large
def test_budgets_search_killed_in_stage_2_resumes_to_an_unbroken_run(
        tiny_budget_search, tmp_path):
    """conftest's shared two-budget search, and the same killed with
    SIGKILL after a stage-2 step and resumed: the same budgets, arch.json
    and weights (stage 2: 3 steps, budgets 0, 1, 0)."""
    import re

    from conftest import TINY_SEARCH
    from conftest import TWO_BUDGETS

    out = tmp_path / 'killed'
    proc, log = _start(out, *TINY_SEARCH, f'--budgets={TWO_BUDGETS}',
                       '--checkpoint_every=1')
    _wait(proc, lambda: 'stage nonvital' in open(log).read())
    first = _newest(out)  # stage 2 at step 0
    _kill_when(proc, lambda: _newest(out) > first)  # after a stage-2 step
    assert not (out / 'budgets.json').exists()
    stage1 = json.loads((out / 'stage1.json').read_text())
    assert stage1['owner'] == [0] * 4 + [1] * 4  # --num_proposals=4 each
    # The command that started it, with --resume added, is accepted.
    res = run_module('hournas_tf.search', *TINY_SEARCH,
                     f'--budgets={TWO_BUDGETS}', '--checkpoint_every=1',
                     '--resume', f'--output_dir={out}', timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'stage 1 finished' in res.stdout
    # Resumed within stage 2: the round robin goes on at budget step mod 2.
    [step] = re.findall(r'\(stage 2, step (\d+)\)', res.stdout)
    assert int(step) in (1, 2), res.stdout
    reference, _ = tiny_budget_search
    budgets = json.loads((out / 'budgets.json').read_text())
    assert _without_seconds(budgets) == _without_seconds(
        json.loads((reference / 'budgets.json').read_text()))
    assert _arch(out) == _arch(reference)
    for row in budgets['budgets']:
        name = row['arch_file'][:-len('.json')] + '.weights.h5'
        _assert_same_weights(out / name, reference / name)
    _assert_same_weights(out / 'supernet.weights.h5',
                         reference / 'supernet.weights.h5')


@pytest.mark.large
def test_sigterm_writes_a_checkpoint_and_exits_0(tmp_path):
    """Stage 1 of this run writes no checkpoint before step 1000
    (--checkpoint_every=1000) or its epoch's end (step 100): the one it
    writes is SIGTERM's, and --resume starts from it."""
    import re

    out = tmp_path / 'preempted'
    proc, log = _start(out, '--max_steps_per_epoch=100', '--vital_epochs=1',
                       '--batch_size=16', '--verbose=0',
                       '--checkpoint_every=1000')
    # As stage 1 starts (the train step is not built yet): the run stops
    # after the step it is in, the first (built and run on a loaded
    # machine within the hour).
    _kill_when(proc, lambda: 'stage vital' in open(log).read(),
               signal.SIGTERM, 0, timeout=3600)
    text = open(log).read()
    [(path, step)] = re.findall(r'SIGTERM: wrote (\S+) \(stage \w+, '
                                r'step (\d+)\)', text)
    assert f'--resume --output_dir={out}' in text
    assert _newest(out) == 1 and path.endswith('ckpt-1')
    assert 1 <= int(step) < 100
    # The resumed run starts from that checkpoint (stopped once it says so).
    proc, log = _start(out, '--resume')
    _kill_when(proc, lambda: 'resuming from' in open(log).read())
    line = next(t for t in open(log).read().splitlines()
                if 'resuming from' in t)
    assert f'resuming from {path} (stage ' in line, line
    assert line.endswith(f', step {step})'), line


def test_used_output_dir_without_resume_is_refused_and_unchanged(tmp_path):
    (tmp_path / 'arch.json').write_text('mine')
    before = sorted(os.listdir(tmp_path))
    res = run_module('hournas_tf.search', f'--output_dir={tmp_path}',
                     '--max_steps_per_epoch=1')
    check_refused(res, '--resume')
    assert sorted(os.listdir(tmp_path)) == before
    assert (tmp_path / 'arch.json').read_text() == 'mine'


@pytest.mark.parametrize('flags, message', [
    (['--resume'], '--resume needs --output_dir'),
    (['--resume', '--output_dir={tmp}/missing'], 'does not exist'),
    (['--resume', '--output_dir={tmp}'], 'search_config.json'),
    (['--checkpoint_every=0'], 'checkpoint_every'),
])
def test_resume_mistakes_are_one_line_errors(flags, message, tmp_path):
    res = run_module('hournas_tf.search',
                     *[f.format(tmp=tmp_path) for f in flags])
    check_refused(res, message)


RESUME_FLAGS = """
import sys
from absl import flags
from hournas_tf import search
search.define_flags()
flags.FLAGS(['search'] + sys.argv[1:])
config = search.resume_config_from_flags(flags.FLAGS)
print(config.seed, config.deterministic, config.resume, config.arch_lr)
"""


def test_resume_accepts_the_command_it_resumes(tmp_path):
    out = tmp_path / 'run'
    command = ['--deterministic', '--seed=7', f'--output_dir={out}',
               '--target_macs=10e6', '--target_params=0.25e6',
               '--vital_ops=max']
    res = run_module('hournas_tf.search', *command, '--dry_run')
    assert res.returncode == 0, res.stderr[-2000:]
    # The same command with --resume added, and a resume flag changed.
    res = run_python('-c', RESUME_FLAGS, *command, '--resume',
                     '--arch_lr=0.001')
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ['7', 'True', 'True', '0.001']
    for flag, message in (
            ('--seed=8', f'--seed cannot change on --resume: {out}/'
             'search_config.json has 7, the command 8 (may change: '
             'weight_lr, arch_lr'),
            ('--nodeterministic', 'has True, the command False'),
            ('--vital_ops=min', "has ('max',), the command ('min',)"),
            ('--target_macs=5e6', "--target_macs cannot change on --resume:"
             f" {out}/search_config.json has {{'macs': 10000000.0, 'params'"
             ": 250000.0}, the command {'macs': 5000000.0, 'params': "
             "250000.0}"),
            ('--dry_run', '--dry_run cannot be given with --resume')):
        res = run_module('hournas_tf.search', *command, flag, '--resume')
        assert res.returncode == 2, res.stderr[-2000:]
        [line] = res.stderr.strip().splitlines()
        assert line.startswith('error: ') and message in line, line


def test_resume_of_a_budgets_search_accepts_its_command(tmp_path):
    """The resume rules of a budgets search: its command with --resume
    added passes (--budgets compared as parsed), other budgets do not."""
    import dataclasses

    from conftest import TWO_BUDGETS

    from hournas_tf.nas import budgets as budgets_lib
    from hournas_tf.nas import config as config_lib
    from hournas_tf.nas import search_lib

    out = tmp_path / 'run'
    command = [f'--budgets={TWO_BUDGETS}', f'--output_dir={out}',
               '--vital_ops=max', '--seed=3']
    # search_config.json as that command writes it (the demo preset's
    # values but these).
    specs = budgets_lib.parse_budgets(TWO_BUDGETS)
    out.mkdir()
    (out / 'search_config.json').write_text(json.dumps(
        search_lib._config_json(config_lib.preset(
            'demo', budgets=specs, targets=dict(specs[0].targets),
            output_dir=str(out), vital_ops=('max',), seed=3))))
    res = run_python('-c', RESUME_FLAGS, *command, '--resume',
                     '--arch_lr=0.002')
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ['3', 'False', 'True', '0.002']
    config = search_lib.resume_config(str(out))
    assert [b.name for b in config.budgets] == ['small', 'large']
    search_lib.preflight(config)  # a budgets search may resume
    other = TWO_BUDGETS.replace('macs:13e6', 'macs:14e6')
    res = run_module('hournas_tf.search', *command, f'--budgets={other}',
                     '--resume')
    assert res.returncode == 2, res.stderr[-2000:]
    [line] = res.stderr.strip().splitlines()
    stored = [dataclasses.asdict(b) for b in config.budgets]
    assert line.startswith(f'error: --budgets cannot change on --resume: '
                           f'{out}/search_config.json has {stored!r}, the '
                           'command '), line
    assert "'macs': 14000000.0" in line, line


# The train command: StepBackup (BackupAndRestore) and Preemption.


def _metadata(out):
    path = out / 'backup' / 'training_metadata.json'
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def test_step_backup_saves_mid_epoch_and_preemption_stops(tmp_path):
    import keras
    import numpy as np

    from hournas_tf.training import callbacks as callbacks_lib

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05), 'mse')
    x, y = np.ones((8, 2), 'float32'), np.zeros(8)

    class Sigterm:
        received = False

    class Stop(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                Sigterm.received = True

    backup = callbacks_lib.StepBackup(str(tmp_path / 'backup'), every=100)
    stop = callbacks_lib.Preemption(Sigterm, backup, 'again')
    with pytest.raises(callbacks_lib.Preempted, match='again'):
        model.fit(x, y, batch_size=2, epochs=2, verbose=0,
                  callbacks=[backup, Stop(), stop])
    assert _metadata(tmp_path) == {'epoch': 0, 'batch': 2}
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[
        callbacks_lib.StepBackup(str(tmp_path / 'backup'), every=100)])
    assert _metadata(tmp_path)['epoch'] == 1  # saved at the epoch end


@pytest.mark.large
def test_train_killed_mid_epoch_resumes(tmp_path):
    from hournas_tf import spaces

    space = spaces.get_space('efficientnet', image_size=16, num_classes=10,
                             width_multiplier=0.25)
    ops = ['skip' if 'skip' in layer.candidates else 'k3_e3_se0.25'
           for layer in space.layers]
    arch = spaces.Architecture('efficientnet', ops, image_size=16,
                               num_classes=10, width_multiplier=0.25,
                               name='tiny')
    arch.save(str(tmp_path / 'arch.json'))
    out = tmp_path / 'run'
    args = [f'--arch_file={tmp_path}/arch.json',
            f'--data_dir={tmp_path}/digits', '--image_size=16',
            '--epochs=2', '--warmup_epochs=0.2', '--batch_size=32',
            '--checkpoint_every=3', '--verbose=0']
    proc, _ = _start(out, *args, module='hournas_tf.train')
    _kill_when(proc, lambda: (_metadata(out) or {}).get('batch', 0) > 0)
    assert not (out / 'metrics.json').exists()
    backup = _metadata(out)
    res = run_module('hournas_tf.train', f'--output_dir={out}', *args,
                     timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'resuming the interrupted run' in res.stdout
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['epochs'] == 2 and metrics['test_accuracy'] > 0.1
    # Resumed, not restarted: the optimizer's step count goes on from the
    # backup's (the interrupted epoch runs again from its first batch), so
    # it ends `batch` (+1) steps past two full epochs; a restart from
    # scratch would end at exactly 2 x steps per epoch.
    from hournas_tf import load_model

    steps = int(res.stdout.split(' steps x 2 epochs')[0].split()[-1])
    done = int(load_model(str(out / 'model.keras')).optimizer.iterations)
    assert done - 2 * steps in (backup['batch'], backup['batch'] + 1), (
        done, steps, backup)
