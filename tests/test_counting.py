import random

import keras
import numpy as np
import pytest

import hournas_tf
from hournas_tf import spaces
from hournas_tf.blocks import keras_count
from hournas_tf.resources import counting
from hournas_tf.resources import tables

# Published numbers (../shared/reference/search_spaces.md).
FBNET_ZOO = {  # mobile-vision model zoo: weights, MACs
    'fbnet_a': (4_286_480, 249_921_848),
    'fbnet_b': (4_777_296, 295_561_032),
    'fbnet_c': (5_520_784, 382_984_480),
}
TRAINABLE = {  # tensorflow/tpu, Keras, ProxylessNAS log: params, ~MACs
    'mnasnet_a1': (3_887_038, 311.6e6),
    'efficientnet_b0': (5_288_548, 385.8e6),
    'mobilenet_v2': (3_504_872, 300.8e6),
    'proxylessnas_mobile': (4_080_512, 320.4e6),
}


@pytest.mark.parametrize('name', sorted(FBNET_ZOO))
def test_fbnet_model_zoo_numbers(name):
    cost = counting.arch_cost(spaces.get_reference(name)).total
    assert (cost.weights, cost.macs) == FBNET_ZOO[name]


@pytest.mark.parametrize('name', sorted(TRAINABLE))
def test_published_trainable_params_and_macs(name):
    params, macs = TRAINABLE[name]
    cost = counting.arch_cost(spaces.get_reference(name)).total
    assert cost.params == params
    assert round(cost.macs / 1e5) == round(macs / 1e5)


def test_keras_totals_of_keras_applications():
    # Keras applications: MobileNetV2 3,538,984; EfficientNetB0 5,330,571
    # minus the 7 statistics of its Normalization layer (we normalize in the
    # input pipeline instead).
    v2 = counting.arch_cost(spaces.get_reference('mobilenet_v2')).total
    b0 = counting.arch_cost(spaces.get_reference('efficientnet_b0')).total
    assert v2.keras_params == 3_538_984
    assert b0.keras_params == 5_330_571 - 7


def test_fbnet_b_backbone_and_per_layer_numbers():
    cost = counting.arch_cost(spaces.get_reference('fbnet_b'))
    assert cost.backbone.macs == 293_577_032
    assert cost.stem.weights == 432 and cost.stem.macs == 5_419_008
    assert cost.layers[8].weights == 15_744  # k3_sep_e6
    assert cost.layers[8].macs == 12_343_296
    assert cost.layers[21].macs == 29_482_320
    assert cost.head.macs == 34_220_032


def _check_against_keras(arch):
    model = hournas_tf.build_model(arch)
    counted = keras_count.count(model)
    cost = counting.arch_cost(arch).total
    assert counted.trainable_params == cost.params, arch.to_string()
    assert counted.total_params == cost.keras_params, arch.to_string()
    assert counted.macs == cost.macs, arch.to_string()


@pytest.mark.parametrize('name', spaces.REFERENCE_NAMES)
def test_reference_counts_equal_the_built_keras_model(name):
    _check_against_keras(spaces.get_reference(name))
    keras.backend.clear_session()


def random_arch(space_name, rng, **params):
    space = spaces.get_space(space_name, **params)
    ops = [rng.choice(space.allowed_ops(i)) for i in range(len(space.layers))]
    return spaces.Architecture(space_name, ops, **params)


def _check_random_architectures(space_name, start, stop):
    """Checks the random architectures start..stop-1 of one seeded stream,
    so that the two lanes check different ones."""
    rng = random.Random(space_name)
    settings = [dict(image_size=224), dict(image_size=32, num_classes=10),
                dict(image_size=160, width_multiplier=0.5)]
    for k in range(stop):
        arch = random_arch(space_name, rng, **settings[k % 3])
        if k >= start:
            _check_against_keras(arch)
        # Every 10 models, not after each: clearing the session (and the
        # kernel cache the next model refills) was a large share of a check's
        # time, and the models are freed without it (docs/testing.md).
        if k % 10 == 9:
            keras.backend.clear_session()


@pytest.mark.parametrize('space_name', spaces.SPACE_NAMES)
def test_10_random_architectures_equal_the_built_keras_model(space_name):
    _check_random_architectures(space_name, 0, 10)


@pytest.mark.large
@pytest.mark.parametrize('space_name', spaces.SPACE_NAMES)
def test_40_more_random_architectures_equal_the_built_keras_model(space_name):
    # Architectures 10-49 of the stream whose first 10 the fast lane checks:
    # 50 per space across the two lanes.
    _check_random_architectures(space_name, 10, 50)


def test_resource_table_totals_match_arch_cost():
    space = spaces.get_space('fbnet')
    arch = spaces.get_reference('fbnet_c')
    rows = [i for i in range(22) if arch.ops[i] in space.layers[i].candidates]
    fixed = {i: arch.ops[i] for i in range(22) if i not in rows}
    table = tables.resource_table(space, rows, fixed,
                                    objectives=counting.OBJECTIVES)
    columns = table.columns_of([arch.ops[i] for i in rows])
    total = counting.arch_cost(arch).total
    for obj in counting.OBJECTIVES:
        assert table.total(obj, columns) == total.get(obj)
    assert table.values['macs'].shape == (len(rows), len(space.op_names))
    assert not table.mask[rows.index(1), space.op_names.index('skip')]
    assert np.all(table.values['macs'][~table.mask] == 0)
