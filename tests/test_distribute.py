"""Strategies by name, and one step on 2 replicas against one without.

The equality checks split the CPU into 2 logical devices, which only works
before TensorFlow initializes its devices: they run
`tests/distribute_checks.py` in processes of their own.
"""

import json
import os
import re
import socket

import numpy as np
import pytest
from conftest import REPO
from conftest import run_python

from hournas_tf import distribute
from hournas_tf.common.errors import UserError
from hournas_tf.nas import config as search_config
from hournas_tf.training import config as train_config

CHECKS = os.path.join(REPO, 'tests', 'distribute_checks.py')

# The largest difference allowed between the 2-replica step and the
# single-device step in float64, where the rounding is far below it (at
# most 3.3e-14 measured, docs/distribute.md; the distributed computation
# itself is checked). In float32 a variable may differ by FLOAT32_BOUND or
# as much as the one-device step differs from itself with the batch's
# examples in another order (`floor`): the architecture gradient of one
# step amplifies rounding.
BOUND = 1e-10
FLOAT32_BOUND = 1e-5
# The largest difference of an optimizer variable relative to its largest
# value (`relative` of the report, with a floor): the variables'
# absolute BOUND misses a gradient off by a relative 1e-8 (an update of
# lr x g differs by far less than 1e-10, and Adam's first step does not
# change with the gradient's scale); the moments and momenta do not.
RELATIVE_BOUND = 1e-9


def over_bound(report, floor=None, bound=BOUND):
    """{name: difference} of the variables beyond their bound: `bound`, or
    with `floor` max(bound, 2 x its floor)."""
    return {name: diff for name, diff in report['diffs'].items()
            if diff > max(bound, 2 * (floor or {}).get(name, 0.0))}


@pytest.mark.parametrize('kwargs, message', [
    (dict(name='horovod'), "unknown strategy 'horovod'"),
    (dict(name='tpu'), 'needs --tpu=ADDRESS'),
    (dict(name='mirrored', tpu='grpc://1.2.3.4:8470'), 'needs --strategy=tpu'),
    (dict(name='mirrored', cpu_replicas=0), 'cpu_replicas=0 must be'),
    (dict(name='default', cpu_replicas=2), 'needs --strategy=mirrored'),
])
def test_check_strategy_names_the_bad_value(kwargs, message):
    with pytest.raises(UserError, match=message):
        distribute.check_strategy(**kwargs)
    distribute.check_strategy('mirrored', cpu_replicas=2)
    distribute.check_strategy('tpu', tpu='local')


def test_configs_check_the_strategy_settings():
    with pytest.raises(UserError, match='needs --tpu'):
        search_config.check_config(search_config.SearchConfig(
            targets={'macs': 1e6}, strategy='tpu'))
    with pytest.raises(UserError, match='per_replica_paths=false'):
        search_config.check_config(search_config.SearchConfig(
            targets={'macs': 1e6}, strategy='mirrored', cpu_replicas=2,
            sync_batch_norm=True, per_replica_paths=True))
    with pytest.raises(UserError, match='needs --strategy=mirrored'):
        train_config.check_config(train_config.TrainConfig(
            arch='x', cpu_replicas=2))


def test_default_strategy_is_tensorflows():
    import tensorflow as tf

    assert distribute.make_strategy('default') is tf.distribute.get_strategy()


def equality(case, dtype='float64'):
    """The report of `distribute_checks.py case dtype small` (16x16,
    stage 1 with 2 vital layers searched: docs/distribute.md's table is
    of `full`, which costs minutes more)."""
    res = run_python(CHECKS, case, dtype, 'small', timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report['dtype'] == dtype and report['image_size'] == 16
    assert report['moved'] > 0  # the step changed the variables
    return report


@pytest.mark.large
@pytest.mark.parametrize('case', ['search_logits', 'search_proposals'])
def test_one_search_step_on_two_replicas_equals_one_device(case):
    report = equality(case)
    names = ' '.join(report['diffs'])
    for part in ('arch_logits/theta' if case == 'search_logits' else
                 'arch_proposals/pi_logits', 'moving_mean', 'moving_variance',
                 'opt/', 'arch_opt/'):
        assert part in names, part
    assert not over_bound(report), over_bound(report)
    assert report['relative'], report
    beyond = {name: diff for name, diff in report['relative'].items()
              if diff > RELATIVE_BOUND}
    assert not beyond, beyond


@pytest.mark.large
def test_float32_search_step_differs_as_one_device_does_from_itself():
    report = equality('search_proposals', 'float32')
    beyond = over_bound(report, report['floor'], FLOAT32_BOUND)
    assert not beyond, beyond


@pytest.mark.large
def test_one_train_step_on_two_replicas_equals_one_device():
    report = equality('train')
    assert any('moving_mean' in n for n in report['diffs'])
    assert report['moved'] > 200  # the weights too, not only statistics
    assert report['max_diff'] <= BOUND, (report['worst'],
                                         report['max_diff'])


def test_bounds_catch_a_difference():
    report = {'diffs': {'model/stem/conv/kernel': 2e-5,
                        'arch_opt/theta_momentum': 2e-5,
                        'arch_opt/theta_velocity': 4e-5}}
    assert over_bound(report) == report['diffs']
    assert over_bound({'diffs': {'w': 1e-11}}) == {}
    floor = {'arch_opt/theta_momentum': 1.5e-5,
             'arch_opt/theta_velocity': 1e-5}
    assert over_bound(report, floor, FLOAT32_BOUND) == {
        'model/stem/conv/kernel': 2e-5,
        'arch_opt/theta_velocity': 4e-5}


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(('localhost', 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.large
def test_two_workers_end_with_the_same_architecture_parameters():
    import subprocess
    import sys

    workers = [f'localhost:{p}' for p in free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=REPO, TF_CONFIG=json.dumps({
            'cluster': {'worker': workers},
            'task': {'type': 'worker', 'index': index}}))
        procs.append(subprocess.Popen(
            [sys.executable, CHECKS, 'worker', '3'], env=env, cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0, err[-3000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    first, second = outputs
    assert first['replicas'] == second['replicas'] == 2
    assert first['step'] == second['step'] == 3
    assert sorted(first['arch']) == sorted(second['arch'])
    moved = False
    for name in first['arch']:
        a, b = np.array(first['arch'][name]), np.array(second['arch'][name])
        np.testing.assert_array_equal(a, b, err_msg=name)
        moved |= not np.array_equal(a, np.array(first['start'][name]))
    assert moved  # the steps changed the architecture parameters


def test_search_step_compiles_with_xla_under_tpu_rules():
    """TPUStrategy's rules: static shapes (drop_remainder), no Python side
    effects (one trace for every step), XLA (jit_compile) throughout.

    All paths (gumbel_softmax): XLA on a CPU compiles every branch of a
    single-path `switch_case` and its gradient, which had not finished
    after 20 minutes here (docs/distribute.md); the step's other TPU
    rules do not depend on the sampler."""
    import tensorflow as tf
    from testing import tiny_supernet

    net = tiny_supernet(image_size=16, total_steps=3, compile=False,
                        sampler='gumbel_softmax')
    net.compile(jit_compile=True)
    rng = np.random.default_rng(0)

    def split():
        return (rng.normal(size=(8, 16, 16, 3)).astype('float32'),
                rng.integers(0, 10, 8))

    data = tf.data.Dataset.from_tensor_slices((split(), split())).batch(
        4, drop_remainder=True).repeat()
    for spec in tf.nest.flatten(data.element_spec):
        assert spec.shape.is_fully_defined(), spec
    theta = net.arch_params.theta.numpy().copy()
    traces = []  # a Python side effect runs once per trace of the step
    step = net.train_step

    def counted_step(batch):
        traces.append(1)
        return step(batch)

    net.train_step = counted_step
    history = net.fit(data, epochs=1, steps_per_epoch=3, verbose=0,
                      shuffle=False).history
    assert net.jit_compile
    assert int(net.step.numpy()) == 3
    assert np.isfinite(history['loss'][0])
    assert np.abs(net.arch_params.theta.numpy() - theta).max() > 0
    assert len(traces) == 1


def test_synchronized_batch_norm_round_trips_its_config():
    import keras
    from testing import run_layer_test

    from hournas_tf.blocks import layers as hl

    block = run_layer_test(hl.InvertedResidual, dict(
        c_in=8, c_out=8, kernel_size=3, expansion=2, bn_synchronized=True),
        (2, 6, 6, 8), fit=False)
    stem = run_layer_test(hl.ConvBNAct, dict(
        filters=8, kernel_size=3, bn_synchronized=True), (2, 6, 6, 3),
        fit=False)
    norms = [layer for parent in (block, stem)
             for layer in parent._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 4 and all(n.synchronized for n in norms)
    plain = hl.InvertedResidual(8, 8, 3, 2)
    assert not plain.get_config()['bn_synchronized']
    assert not plain.pw_bn.synchronized


def test_build_model_and_supernet_synchronize_every_batch_norm():
    import keras

    from hournas_tf import spaces
    from hournas_tf.blocks.model import build_model
    from hournas_tf.nas import supernet
    from hournas_tf.spaces.architecture import Architecture

    space = spaces.get_space('fbnet', image_size=16, num_classes=10,
                             width_multiplier=0.25)
    ops = [layer.candidates[0] for layer in space.layers]
    model = build_model(Architecture('fbnet', ops, image_size=16,
                                     num_classes=10, width_multiplier=0.25),
                        sync_batch_norm=True)
    vital = space.vital_layers
    net = supernet.build_supernet(
        space, [i for i in range(len(space.layers)) if i not in vital][:2],
        {i: 'k3_e1' for i in vital},
        supernet.SupernetConfig(sync_batch_norm=True))
    for m in (model, net):
        norms = [layer for layer in m._flatten_layers()
                 if isinstance(layer, keras.layers.BatchNormalization)]
        assert norms and all(n.synchronized for n in norms)
    with pytest.raises(UserError, match='--per_replica_paths=false'):
        supernet.SupernetConfig(sync_batch_norm=True,
                                per_replica_paths=True).check()


def test_per_replica_paths_change_nothing_on_one_device():
    from hournas_tf import spaces
    from hournas_tf.nas import supernet

    space = spaces.get_space('fbnet', image_size=16, num_classes=10,
                             width_multiplier=0.25)
    vital = tuple(space.vital_layers)
    seeds = [supernet.build_supernet(space, vital, config=supernet.
                                     SupernetConfig(per_replica_paths=p))
             ._seed(1).numpy() for p in (False, True)]
    np.testing.assert_array_equal(seeds[0], seeds[1])


def test_sync_batch_norm_matches_keras_and_keeps_its_digits():
    """One device: SyncBatchNormalization computes Keras' batch norm
    (outputs, gradients, moving statistics); where a channel's mean is
    large against its spread it keeps the variance that Keras' synchronized
    E[x^2] - E[x]^2 loses."""
    import keras
    import tensorflow as tf

    from hournas_tf.blocks import layers as hl

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(4, 5, 5, 3)), tf.float32)
    ours = hl.batch_norm('bn', 0.9, 1e-3, synchronized=True)
    plain = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    results = []
    for layer in (ours, plain):
        layer.build(x.shape)
        layer.gamma.assign([1.5, 0.5, 2.0])
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.range(1.0, 4.0))
        results.append([y, *tape.gradient(loss, [x, layer.gamma]),
                        layer.moving_mean, layer.moving_variance])
    for a, b in zip(*results):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    assert isinstance(ours, hl.SyncBatchNormalization) and ours.synchronized
    assert type(hl.batch_norm('bn', 0.9, 1e-3)) is \
        hl.FusedBatchNormalization

    shifted = 1e4 + tf.constant(rng.normal(size=(64, 4, 4, 1)), tf.float32)
    _, variance = hl.synchronized_moments(shifted, [0, 1, 2])
    _, keras_variance = keras.ops.moments(shifted, [0, 1, 2],
                                          synchronized=True)
    truth = np.var(np.asarray(shifted, 'float64'))
    assert abs(float(variance[0]) - truth) < 1e-3 * truth
    assert abs(float(keras_variance[0]) - truth) > 0.1 * truth


@pytest.mark.large
def test_mirrored_search_killed_in_stage_1_resumes(tmp_path):
    """--strategy=mirrored --cpu_replicas=2 --sync_batch_norm: checkpoints
    of the mirrored supernet, SIGKILL in stage 1, --resume (devices given
    again). Stage 1 only (--nonvital_epochs=0): a checkpoint holds the same
    mirrored variables in either stage, and stage 2's first step under
    synchronized batch norm (every branch on both replicas) made the
    stage-2 version of this test the slowest (docs/testing.md); one-device
    stage-2 resumes are test_resilience.py's. The temperature decays by
    --tau_decay on every step and is checkpointed, so stage 1's last one
    counts its steps: a stage restarted after the restore would decay it
    further."""
    from conftest import run_module
    from test_resilience import TINY
    from test_resilience import _kill_when
    from test_resilience import _newest
    from test_resilience import _start
    from test_resilience import _wait

    out = tmp_path / 'run'
    devices = ['--strategy=mirrored', '--cpu_replicas=2']
    # Stage 1: 2 epochs x 3 steps, killed after its first step; no stage 2.
    flags = [f for f in TINY if f not in ('--deterministic',
                                          '--vital_epochs=1',
                                          '--nonvital_epochs=2')]
    proc, log = _start(out, *flags, *devices, '--sync_batch_norm',
                       '--vital_epochs=2', '--nonvital_epochs=0',
                       '--tau_init=5', '--tau_decay=0.9')
    _wait(proc, lambda: 'stage vital' in open(log).read())
    first = _newest(out)  # stage 1 at step 0
    _kill_when(proc, lambda: _newest(out) > first)  # after a stage-1 step
    assert not (out / 'stage1.json').exists()
    res = run_module('hournas_tf.search', '--resume', f'--output_dir={out}',
                     *devices)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    [step] = re.findall(r'resuming from \S+ \(stage 1, step (\d+)\)',
                        res.stdout)
    assert 0 < int(step) < 6, res.stdout
    records = [json.loads(line) for line in
               (out / 'history.jsonl').read_text().splitlines()]
    vital = [r for r in records if r['stage'] == 'vital']
    # (Epoch 1's line may be missing: a kill between the checkpoint after
    # step 3 and the line.)
    epochs = [r['epoch'] for r in vital]
    assert epochs[-1] == 2 and len(set(epochs)) == len(epochs), vital
    assert vital[-1]['tau'] == pytest.approx(5 * 0.9 ** 6, rel=1e-5)
    assert (out / 'arch.json').exists()
    config = json.loads((out / 'search_config.json').read_text())
    assert config['strategy'] == 'mirrored' and config['cpu_replicas'] == 2
    assert config['sync_batch_norm'] and not config['per_replica_paths']


@pytest.mark.large
def test_mirrored_search_with_per_replica_paths(tmp_path):
    """--per_replica_paths on 2 replicas through the command (stage 2 only,
    2 steps): the run finishes within tolerance of its targets."""
    from conftest import run_module

    from hournas_tf import spaces
    from hournas_tf.resources import counting

    out = tmp_path / 'run'
    res = run_module('hournas_tf.search', '--strategy=mirrored',
                     '--cpu_replicas=2', '--per_replica_paths',
                     '--vital_ops=max', '--nonvital_epochs=1',
                     '--max_steps_per_epoch=2', '--batch_size=16',
                     '--proposal_iters=50', '--num_proposals=2',
                     '--verbose=0', f'--output_dir={out}')
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    config = json.loads((out / 'search_config.json').read_text())
    assert config['per_replica_paths'] and config['cpu_replicas'] == 2
    arch = spaces.load_architecture(str(out / 'arch.json'))
    cost = counting.arch_cost(arch).total
    for obj, target in config['targets'].items():
        assert abs(cost.get(obj) - target) <= 0.03 * target, obj
    records = [json.loads(line) for line in
               (out / 'history.jsonl').read_text().splitlines()]
    assert [r['stage'] for r in records] == ['nonvital']


@pytest.mark.parametrize('command', ['search', 'train'])
def test_each_command_lists_the_strategy_flags_in_its_help(command):
    """`command_flags.define_strategy_flags` registers the flags as the
    command's own: its --help (not only --helpfull) shows them."""
    from conftest import run_module

    res = run_module(f'hournas_tf.{command}', '--help')  # absl exits 1
    assert 'Try --helpfull' in res.stdout, res.stderr[-2000:]
    for flag in ('strategy', 'tpu', 'cpu_replicas', 'sync_batch_norm'):
        assert f'{flag}: ' in res.stdout, flag  # the flag's own entry
    assert 'hournas_tf.command_flags' not in res.stdout
