import pytest

from hournas_tf import spaces
from hournas_tf.common.errors import UserError
from hournas_tf.spaces import space as space_lib


def test_fbnet_macro_matches_the_reference_table():
    space = spaces.get_space('fbnet')
    assert len(space.layers) == 22
    assert space.stem.c_out == 16 and space.stem.stride == 2
    assert space.head_channels == 1984
    widths = [layer.c_out for layer in space.layers]
    assert widths == [16] + [24] * 4 + [32] * 4 + [64] * 4 + [112] * 4 + \
        [184] * 4 + [352]
    strides = {layer.index + 1 for layer in space.layers if layer.stride == 2}
    assert strides == {2, 6, 10, 18}
    assert [layer.in_size for layer in space.layers][:2] == [112, 112]
    assert space.layers[-1].out_size == 7
    assert space.layers[2].candidates == (
        'k3_e1', 'k3_e1_g2', 'k3_e3', 'k3_e6', 'k5_e1', 'k5_e1_g2', 'k5_e3',
        'k5_e6', 'skip')


def test_skip_only_where_identity_shortcut_exists():
    for name in spaces.SPACE_NAMES:
        space = spaces.get_space(name)
        for layer in space.layers:
            assert ('skip' in layer.candidates) == layer.has_shortcut


def test_efbnet_removes_g2_and_adds_k7():
    ops = set(spaces.get_space('efbnet').op_names)
    assert not any('_g2' in op for op in ops)
    assert {'k7_e1', 'k7_e3', 'k7_e6'} <= ops


@pytest.mark.parametrize('name', spaces.SPACE_NAMES)
def test_cifar_layout_has_two_fewer_stride_2_steps(name):
    big = spaces.get_space(name, image_size=224)
    small = spaces.get_space(name, image_size=32)
    strides = lambda s: [s.stem.stride] + [x.stride for x in s.layers]  # noqa
    assert strides(big).count(2) - strides(small).count(2) == 2
    assert small.layers[-1].out_size == 4
    assert big.layers[-1].out_size == 7


def test_width_multiplier_rounds_to_multiples_of_8():
    space = spaces.get_space('fbnet', width_multiplier=0.5)
    assert space.stem.c_out == 8
    assert all(layer.c_out % 8 == 0 for layer in space.layers)
    assert space.layers[-1].c_out == 176
    assert space_lib.round_filters(16, 0.25) == 8


def test_parse_op_grammar():
    op = spaces.parse_op('k5_e1_g2')
    assert (op.kernel, op.expansion, op.groups) == (5, 1, 2)
    op = spaces.parse_op('k3_e6_se0.25')
    assert op.se_ratio == 0.25 and not op.cascade
    assert spaces.parse_op('k3_sep_e6').cascade
    assert spaces.parse_op('skip').is_skip
    for bad in ('k4_e1', 'conv3', 'k3e6', ''):
        with pytest.raises(UserError, match='malformed op name'):
            spaces.parse_op(bad)


def test_bad_space_inputs_name_the_value_and_choices():
    with pytest.raises(UserError, match="unknown space 'nope'.*fbnet"):
        spaces.get_space('nope')
    with pytest.raises(UserError, match='image_size 0'):
        spaces.get_space('fbnet', image_size=0)
    with pytest.raises(UserError, match='num_classes 1'):
        spaces.get_space('fbnet', num_classes=1)


def test_check_op_rejects_ops_that_do_not_fit():
    space = spaces.get_space('fbnet')
    with pytest.raises(UserError, match="'skip' does not fit layer 2"):
        space.check_op(1, 'skip')
    with pytest.raises(UserError, match='valid: k3_e1'):
        space.check_op(0, 'k7_e6')
    space.check_op(8, 'k3_sep_e6')  # a reference-only op of the family


def test_candidate_mask_matches_candidates():
    space = spaces.get_space('mnasnet')
    mask = space.candidate_mask()
    for layer, row in zip(space.layers, mask):
        assert [op for op, m in zip(space.op_names, row) if m] == \
            list(layer.candidates)
