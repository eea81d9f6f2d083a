"""hournas_tf.nas.stages: the two supernets of the search, built once."""

import numpy as np
import pytest

from hournas_tf import spaces
from hournas_tf.common.errors import UserError
from hournas_tf.nas import config as config_lib
from hournas_tf.nas import stages
from hournas_tf.nas import vital_policy
from hournas_tf.resources import tables


def tiny_space():
    return spaces.get_space('fbnet', image_size=32, num_classes=10,
                            width_multiplier=0.25)


def demo_config(**changes):
    return config_lib.SearchConfig(**{
        'space': 'efficientnet', 'image_size': 32, 'width_multiplier': 0.25,
        'targets': {'macs': 10e6, 'params': 0.25e6}, 'vital_epochs': 2,
        'nonvital_epochs': 3, **changes})


def test_nonvital_layers_are_the_rest_in_order():
    space = tiny_space()
    nonvital = stages.nonvital_layers(space)
    assert nonvital == sorted(nonvital)
    assert set(nonvital) | set(space.vital_layers) == set(
        range(len(space.layers)))
    assert not set(nonvital) & set(space.vital_layers)
    assert stages.searched_layers(space, {2: 'x'}) == nonvital
    assert stages.searched_layers(space, {}) == list(range(len(space.layers)))


def test_layout_matches_the_search_and_reduces():
    space = tiny_space()
    vital = list(space.vital_layers)
    searched, fixed = stages.layout(space, 2)
    assert set(searched) | set(fixed) == set(range(len(space.layers)))
    assert sorted(fixed) == vital and len(searched) == 17
    assert fixed == vital_policy.max_vital_ops(space)
    searched, fixed = stages.layout(space, 2, 3)
    assert len(searched) == 3 and sorted(fixed) == vital
    searched, fixed = stages.layout(space, 1)
    assert list(searched) == vital and fixed == {}
    searched, fixed = stages.layout(space, 1, 2)
    assert list(searched) == vital[:2] and sorted(fixed) == vital[2:]
    with pytest.raises(UserError, match='stage 3'):
        stages.layout(space, 3)


def test_budgets_free_ranges_are_the_nonvital_layers():
    space = tiny_space()
    free = stages.free_ranges(space, ('macs', 'params'))
    rest = tables.resource_table(space, stages.nonvital_layers(space), {},
                                 ('macs', 'params'))
    assert free['macs'] == tables.free_range(rest, 'macs')
    assert free['params'][0] < free['params'][1]
    targets = {'macs': 5e6, 'params': 0.3e6}
    one = stages.stage1_budget(space, targets, 0.05)
    assert one.table.layer_indices == tuple(space.vital_layers)
    assert one.free == free and one.tolerance == 0.05
    two = stages.stage2_budget(rest, targets, 0.04)
    assert two.free is None and two.table is rest


def test_supernet_config_of_each_stage():
    config = demo_config(alpha=3.0, resource_slack=0.5, tau_init=4.0,
                         nonvital_tau_init=2.0)
    one = stages.supernet_config(config, 1, 0)
    assert (one.sampler, one.alpha, one.tau_init) == (
        config.vital_sampler, 0.0, 4.0)
    assert one.total_steps == 1 and one.resource_slack == 0.0
    two = stages.supernet_config(config, 2, 40, temperature=0.5)
    assert (two.sampler, two.alpha, two.tau_init) == (config.sampler, 3.0,
                                                       2.0)
    assert two.total_steps == 40 and two.sample_temperature == 0.5
    assert two.resource_slack == 0.5 and two.seed == config.seed


def test_search_stages_build_compiled_supernets():
    config = demo_config()
    space = spaces.get_space('efficientnet', image_size=32, num_classes=10,
                             width_multiplier=0.25)
    one = stages.search_stage1(space, config, steps=4)
    assert one.searched == tuple(space.vital_layers)
    assert one.config.total_steps == 8 and one.optimizer is not None
    vital_ops = vital_policy.max_vital_ops(space)
    searched = stages.searched_layers(space, vital_ops)
    table = tables.resource_table(space, searched, vital_ops,
                                  ('macs', 'params'))
    proposals = np.zeros((2, len(searched), len(space.op_names)),
                         np.float32)
    two = stages.search_stage2(space, config, 5, vital_ops, table,
                               proposals, temperature=0.7)
    assert two.searched == tuple(searched)
    assert two.config.total_steps == 15
    assert two.config.sample_temperature == 0.7
    direct = stages.build(space, searched, vital_ops, two.config,
                          stages.stage2_budget(table, config.targets, 0.03),
                          proposals)
    assert direct.searched == two.searched
