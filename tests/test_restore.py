"""nas/restore.py: a search's stage-2 supernet saved and rebuilt."""

import dataclasses
import json

import numpy as np
import pytest

from hournas_tf import spaces
from hournas_tf.common.errors import UserError
from hournas_tf.nas import derive
from hournas_tf.nas import restore
from hournas_tf.nas import supernet as supernet_lib

SPACE = spaces.get_space('efficientnet', image_size=32, num_classes=10,
                         width_multiplier=0.25)
FIXED = {i: SPACE.layers[i].candidates[0] for i in SPACE.vital_layers}
SEARCHED = tuple(i for i in range(len(SPACE.layers)) if i not in FIXED)


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    """A stage-2-like supernet with random weights, saved."""
    folder = tmp_path_factory.mktemp('run')
    rng = np.random.default_rng(0)
    cols = len(SPACE.op_names)
    proposals = rng.normal(size=(3, len(SEARCHED), cols)).astype(np.float32)
    net = supernet_lib.build_supernet(
        SPACE, SEARCHED, FIXED, supernet_lib.SupernetConfig(
            sampler='gumbel_max', sample_temperature=0.5),
        proposals=proposals)
    for variable in net.weights:
        variable.assign(rng.normal(size=variable.shape).astype(
            variable.dtype))
    restore.save_supernet(net, str(folder))
    return folder, net


def test_spec_describes_the_supernet(saved):
    folder, net = saved
    spec = restore.supernet_spec(net)
    assert json.loads((folder / restore.SPEC_FILE).read_text()) == spec
    assert spec['searched'] == list(SEARCHED)
    assert spec['fixed_ops'] == {str(i): op for i, op in FIXED.items()}
    assert spec['proposals_shape'][0] == 3
    assert spec['sample_temperature'] == 0.5
    assert restore.spec_space(spec) == SPACE
    assert restore.load_spec(str(folder)) == spec


def test_load_supernet_restores_every_variable(saved):
    folder, net = saved
    loaded = restore.load_supernet(str(folder))
    assert [v.path for v in loaded.weights] == [v.path for v in net.weights]
    for a, b in zip(loaded.weights, net.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # Any architecture it covers gets the same inherited weights from
    # both.
    ops = [FIXED.get(i) or SPACE.layers[i].candidates[-1]
           for i in range(len(SPACE.layers))]
    arch = spaces.Architecture('efficientnet', tuple(ops), image_size=32,
                               num_classes=10, width_multiplier=0.25)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(
        np.float32)
    np.testing.assert_allclose(
        derive.standalone_model(loaded, arch)(x, training=False).numpy(),
        derive.standalone_model(net, arch)(x, training=False).numpy(),
        rtol=1e-5)


def test_covers_needs_the_same_space_and_fixed_ops(saved):
    spec = restore.load_spec(str(saved[0]))
    ops = [FIXED.get(i) or SPACE.layers[i].candidates[0]
           for i in range(len(SPACE.layers))]
    arch = spaces.Architecture('efficientnet', tuple(ops), image_size=32,
                               num_classes=10, width_multiplier=0.25)
    assert restore.covers(spec, arch)
    first = SPACE.vital_layers[0]
    changed = list(ops)
    changed[first] = SPACE.layers[first].candidates[1]
    assert not restore.covers(spec, dataclasses.replace(arch,
                                                        ops=tuple(changed)))
    assert not restore.covers(spec, dataclasses.replace(arch, image_size=64))


def test_load_spec_refuses_folders_without_one_or_other_versions(tmp_path):
    with pytest.raises(UserError, match='has no supernet.json'):
        restore.load_spec(str(tmp_path))
    (tmp_path / restore.SPEC_FILE).write_text('{"version": 7}')
    with pytest.raises(UserError, match='unsupported version 7; expected 1'):
        restore.load_spec(str(tmp_path))


def test_trained_ops_are_those_whose_batch_norm_statistics_moved():
    from hournas_tf.training import recalibration

    net = supernet_lib.build_supernet(SPACE, SEARCHED, FIXED,
                                      supernet_lib.SupernetConfig())
    # Fresh: nothing ran in training; only skip (no weights) counts.
    fresh = restore.trained_ops(net)
    assert all(ops <= {'skip'} for ops in fresh.values())
    ops = net.op_layers()
    layer = SEARCHED[0]
    op = SPACE.layers[layer].candidates[0]
    bns = recalibration.batch_norm_layers(ops[(layer, op)])
    for bn in bns[:-1]:
        bn.moving_mean.assign(bn.moving_mean + 0.5)
    assert op not in restore.trained_ops(net).get(layer, ())  # one left
    bns[-1].moving_variance.assign(bns[-1].moving_variance * 2)
    assert op in restore.trained_ops(net)[layer]
    vital = SPACE.vital_layers[0]
    for bn in recalibration.batch_norm_layers(ops[(vital, FIXED[vital])]):
        bn.moving_mean.assign(bn.moving_mean - 1)
    trained = restore.trained_ops(net)
    assert trained[vital] == {FIXED[vital]}
    assert sum(len(v - {'skip'}) for v in trained.values()) == 2
