"""nas/random_archs.py: the random-search baseline's architectures."""

import pytest

from hournas_tf import spaces
from hournas_tf.common.errors import UserError
from hournas_tf.nas import random_archs
from hournas_tf.resources import counting

SPACE = spaces.get_space('efficientnet', image_size=32, num_classes=10,
                         width_multiplier=0.25)
TARGETS = {'macs': 10e6, 'params': 0.25e6}


def test_sample_within_draws_distinct_architectures_within_tolerance():
    archs, share = random_archs.sample_within(SPACE, TARGETS, 0.03, 20,
                                              seed=0, batch=20_000)
    assert len(archs) == 20
    assert len({a.ops for a in archs}) == 20
    assert 0 < share < 0.5
    for arch in archs:
        total = counting.arch_cost(arch).total
        for obj, target in TARGETS.items():
            assert abs(total.get(obj) - target) <= 0.03 * target
        for i, op in enumerate(arch.ops):
            assert op in SPACE.layers[i].candidates
    again, _ = random_archs.sample_within(SPACE, TARGETS, 0.03, 20, seed=0,
                                          batch=20_000)
    assert [a.ops for a in again] == [a.ops for a in archs]
    other, _ = random_archs.sample_within(SPACE, TARGETS, 0.03, 20, seed=1,
                                          batch=20_000)
    assert [a.ops for a in other] != [a.ops for a in archs]


def test_sample_within_keeps_fixed_ops_and_draws_every_candidate():
    fixed = {i: 'k5_e6_se0.25' for i in SPACE.vital_layers}
    archs, _ = random_archs.sample_within(SPACE, {'params': 0.25e6}, 0.1,
                                          200, seed=0, fixed_ops=fixed,
                                          batch=20_000)
    for arch in archs:
        assert all(arch.ops[i] == op for i, op in fixed.items())
    free = [i for i in range(len(SPACE.layers)) if i not in fixed]
    # Uniform over the candidates: every op of a free layer shows up.
    for i in free:
        assert {a.ops[i] for a in archs} == set(SPACE.layers[i].candidates), i


def test_sample_within_fails_when_too_few_are_within_tolerance():
    with pytest.raises(UserError, match='only 0 of 3 uniform random '
                       'architectures within 0% of the targets in 1,000 '
                       'draws'):
        random_archs.sample_within(SPACE, {'macs': 10e6 + 1}, 1e-9, 3,
                                   seed=0, batch=1000, max_draws=1000)


def test_sample_within_draws_allowed_layers_from_their_allowed_ops():
    fixed = {i: 'k5_e6_se0.25' for i in SPACE.vital_layers}
    free = [i for i in range(len(SPACE.layers)) if i not in fixed]
    allowed = {free[0]: ['k3_e3_se0.25', 'skip'], free[1]: ['k5_e3_se0.25']}
    archs, _ = random_archs.sample_within(
        SPACE, {'params': 0.25e6}, 0.1, 100, seed=0, fixed_ops=fixed,
        batch=20_000, allowed_ops=allowed)
    assert {a.ops[free[0]] for a in archs} == {'k3_e3_se0.25', 'skip'}
    assert {a.ops[free[1]] for a in archs} == {'k5_e3_se0.25'}
    # The other free layers still draw every candidate.
    assert {a.ops[free[2]] for a in archs} == set(
        SPACE.layers[free[2]].candidates)
    with pytest.raises(UserError, match=f'layer {free[0]} has none of its '
                       "ops among the allowed \\['nope'\\]"):
        random_archs.sample_within(SPACE, TARGETS, 0.03, 1, seed=0,
                                   allowed_ops={free[0]: ['nope']})
