"""nas/checkpointing.py: the search's checkpoints, resume and faults."""

import json
import os
import signal

import numpy as np
import pytest
import tensorflow as tf
from testing import tiny_supernet

import hournas_tf  # noqa: F401  (sets KERAS_BACKEND)
from hournas_tf.common import jsonio
from hournas_tf.common import preemption
from hournas_tf.common.errors import UserError
from hournas_tf.nas import checkpointing


def tiny_net(seed=5):
    return tiny_supernet(seed=seed, total_steps=4)


@pytest.mark.parametrize('done, epochs, steps', [
    (0, 2, 3), (1, 2, 3), (3, 2, 3), (5, 2, 3), (6, 2, 3), (4, 3, 4)])
def test_segments_cover_the_remaining_steps_once(done, epochs, steps):
    segs = checkpointing.segments(done, epochs, steps)
    covered = []
    for first, end, per_epoch, skip in segs:
        assert skip == done + len(covered)  # the stream continues
        covered += [skip + k for k in range((end - first) * per_epoch)]
        assert first * steps <= skip < end * steps
    assert covered == list(range(done, epochs * steps))


def test_write_json_atomic_and_read_stage1(tmp_path):
    assert checkpointing.read_stage1(str(tmp_path)) is None
    data = {'vital_ops': {'3': 'k3_e1'}, 'x': np.float32(0.5)}
    jsonio.write_json(
        str(tmp_path / checkpointing.STAGE1_FILE), data,
        default=lambda v: v.item())
    assert checkpointing.read_stage1(str(tmp_path)) == {
        'vital_ops': {'3': 'k3_e1'}, 'x': 0.5}
    assert os.listdir(tmp_path) == [checkpointing.STAGE1_FILE]


def test_checkpoints_restore_and_skip_a_damaged_newest(tmp_path, capsys):
    net = tiny_net()
    ckpt = checkpointing.SearchCheckpoint(str(tmp_path))
    ckpt.attach('nonvital', net)
    assert ckpt.latest() is None
    paths = []
    for _ in range(2):
        net.step.assign_add(1)
        net.tau.assign(net.tau * 0.5)
        paths.append(ckpt.save())
    assert ckpt.paths() == paths[::-1]
    assert ckpt.latest() == (paths[1], 2, 2)
    other = tiny_net(seed=5)
    assert ckpt.restore(paths[1], 'nonvital', other) == 2
    for a, b in zip(net.variables, other.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), a.path)
    # Damage the newest: the previous one, with a one-line warning.
    data = paths[1] + '.data-00000-of-00001'
    with open(data, 'r+b') as f:
        f.seek(os.path.getsize(data) // 2)
        f.write(b'\xff' * 64)
    capsys.readouterr()
    assert ckpt.latest() == (paths[0], 2, 1)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and 'WARNING' in out[0]
    assert os.path.basename(paths[0]) in out[0]


class _Fake:
    """Just what StageCallback reads of a model."""

    def __init__(self, step):
        self.step = tf.Variable(step, dtype=tf.int64)


def _callback(tmp_path, every, sigterm=None):
    net = tiny_net()
    ckpt = checkpointing.SearchCheckpoint(str(tmp_path))
    ckpt.attach('vital', net)
    cb = checkpointing.StageCallback(ckpt, 'vital', every, sigterm)
    cb.set_model(net)
    return cb, net, ckpt


def test_stage_callback_saves_every_n_steps_and_at_epoch_end(tmp_path):
    cb, net, ckpt = _callback(tmp_path, every=2)
    for step in (1, 2, 3):
        net.step.assign(step)
        cb.on_train_batch_end(step, {'loss': 1.0, 'arch_loss': 1.0})
    assert len(ckpt.paths()) == 1
    cb.on_epoch_end(0, {'loss': 1.0})
    assert [checkpointing._read_whole(p)[1] for p in ckpt.paths()] == [3, 2]
    net.step.assign(4)
    cb.on_train_batch_end(4, {'loss': 1.0})
    cb.on_epoch_end(1, {'loss': 1.0})  # no second copy of step 4
    assert [checkpointing._read_whole(p)[1] for p in ckpt.paths()] == [
        4, 3, 2]


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_non_finite_loss_stops_before_a_checkpoint(tmp_path, bad):
    cb, net, ckpt = _callback(tmp_path, every=1)
    net.step.assign(1)
    cb.on_train_batch_end(0, {'loss': 1.0})
    net.step.assign(2)
    with pytest.raises(UserError, match='stage vital step 2') as e:
        cb.on_train_batch_end(1, {'loss': 1.0, 'arch_loss': bad})
    assert 'ckpt-1' in str(e.value) and '--resume' in str(e.value)
    assert len(ckpt.paths()) == 1  # the last good one only
    checkpointing.check_finite({'loss': 2.0}, 'vital', 3, ckpt)


def test_sigterm_is_caught_then_checkpointed(tmp_path):
    with preemption.catch_sigterm() as sigterm:
        os.kill(os.getpid(), signal.SIGTERM)
        assert sigterm.received
        cb, net, ckpt = _callback(tmp_path, every=100, sigterm=sigterm)
        net.step.assign(7)
        with pytest.raises(preemption.Preempted, match='--resume'):
            cb.on_train_batch_end(6, {'loss': 1.0})
    assert signal.getsignal(signal.SIGTERM) is not sigterm.handler
    assert checkpointing._read_whole(ckpt.paths()[0]) == (1, 7)


def test_catch_sigterm_outside_the_main_thread_is_a_no_op():
    import threading

    seen = []

    def run():
        with preemption.catch_sigterm() as sigterm:
            seen.append(sigterm.received)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [False]


def test_oom_message_suggests_a_smaller_batch():
    message = preemption.oom_message(
        tf.errors.ResourceExhaustedError(None, None, 'OOM when allocating\n'
                                         'tensor of shape [64,...]'), 64)
    assert '--batch_size (e.g. 32)' in message
    assert 'OOM when allocating' in message and '\n' not in message


def test_check_resumable(tmp_path):
    with pytest.raises(UserError, match='does not exist'):
        checkpointing.check_resumable(str(tmp_path / 'missing'))
    with pytest.raises(UserError, match='no search_config.json'):
        checkpointing.check_resumable(str(tmp_path))
    (tmp_path / 'search_config.json').write_text(json.dumps({}))
    checkpointing.check_resumable(str(tmp_path))
    (tmp_path / 'arch.json').write_text('{}')
    with pytest.raises(UserError, match='finished'):
        checkpointing.check_resumable(str(tmp_path))


def test_seed_states_make_dropout_draws_resume_exactly(tmp_path):
    """Dropout's seed generator is not a tracked model variable: without
    `seed_states` in the checkpoint a resumed run draws other masks."""
    import keras
    import tensorflow as tf

    from hournas_tf.nas import checkpointing

    keras.layers.Dropout(0.5)  # another generator: names get a suffix
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dropout(0.5)])
    states = checkpointing.seed_states(model)
    # The dropout's own generator (its name depends on the generators made
    # before in this process, e.g. by other tests).
    assert len(states) == 1
    assert states[0] is model.layers[-1].seed_generator.state
    ones = tf.ones((1, 64))
    model(ones, training=True)
    prefix = tf.train.Checkpoint(model=model, seed_states=states).write(
        str(tmp_path / 'ckpt'))
    expected = model(ones, training=True).numpy()
    model(ones, training=True)  # the state moves on
    tf.train.Checkpoint(model=model, seed_states=states).read(
        prefix).assert_consumed()
    np.testing.assert_array_equal(model(ones, training=True).numpy(),
                                  expected)
    # Without the states the model alone restores nothing random.
    prefix = tf.train.Checkpoint(model=model).write(str(tmp_path / 'bare'))
    assert not any('seed' in name or name.startswith('seed_states')
                   for name, _ in tf.train.list_variables(prefix)[1:])
