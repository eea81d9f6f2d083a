import json

import pytest

from hournas_tf import spaces
from hournas_tf.common.errors import UserError


@pytest.mark.parametrize('name', spaces.REFERENCE_NAMES)
def test_reference_round_trips_json_and_string(name, tmp_path):
    arch = spaces.get_reference(name, image_size=32, num_classes=10)
    again = spaces.Architecture.from_string(arch.to_string())
    assert again.ops == arch.ops and again.space == arch.space
    assert again.space_params() == arch.space_params()
    path = tmp_path / 'arch.json'
    arch.save(path, extra={'search': {'note': 'ignored on load'}})
    loaded = spaces.load_architecture(str(path))
    assert loaded == arch
    data = json.loads(path.read_text())
    assert data['format'] == 'hournas_tf.architecture'
    assert data['version'] == 1


def test_string_leaves_out_default_parameters():
    arch = spaces.get_reference('fbnet_b')
    assert arch.to_string().startswith('fbnet:k3_e1,k3_e6,')
    small = spaces.get_reference('fbnet_a', image_size=32)
    assert small.to_string().startswith(
        'fbnet[image_size=32,head_channels=1504]:skip,k3_e3,')


def test_reference_may_use_family_ops_that_are_not_candidates():
    b = spaces.get_reference('fbnet_b')
    space = b.search_space()
    assert b.ops[8] == 'k3_sep_e6'
    assert 'k3_sep_e6' not in space.layers[8].candidates
    v2 = spaces.get_reference('mobilenet_v2')
    assert v2.ops[0] == 'k3_e1'
    assert 'k3_e1' not in v2.search_space().layers[0].candidates


@pytest.mark.parametrize('text, message', [
    ('fbnet', 'malformed architecture string'),
    ('nope:k3_e1', "unknown space 'nope'"),
    ('fbnet[depth=3]:k3_e1', "unknown architecture parameter 'depth'"),
    ('fbnet:k3_e1,k3_e1', 'has 2 ops but space'),
    ('fbnet[image_size=x]:k3_e1', 'invalid image_size'),
])
def test_bad_strings_give_one_line_errors(text, message):
    with pytest.raises(UserError, match=message) as e:
        spaces.Architecture.from_string(text)
    assert '\n' not in str(e.value)


def test_bad_files_give_one_line_errors(tmp_path):
    with pytest.raises(UserError, match='does not exist'):
        spaces.load_architecture(str(tmp_path / 'missing.json'))
    bad = tmp_path / 'bad.json'
    bad.write_text('{not json')
    with pytest.raises(UserError, match='malformed architecture file'):
        spaces.load_architecture(str(bad))
    bad.write_text(json.dumps({'space': 'fbnet'}))
    with pytest.raises(UserError, match="lacks the 'ops' field"):
        spaces.load_architecture(str(bad))
    bad.write_text(json.dumps({'space': 'fbnet', 'ops': ['k9_e9'] * 22}))
    with pytest.raises(UserError, match="op 'k9_e9' does not fit layer 1"):
        spaces.load_architecture(str(bad))
    bad.write_text(json.dumps({'format': 'x', 'space': 'fbnet', 'ops': []}))
    with pytest.raises(UserError, match='not an architecture file'):
        spaces.load_architecture(str(bad))


def test_unknown_reference_lists_the_valid_names():
    with pytest.raises(UserError, match='unknown architecture.*fbnet_b'):
        spaces.get_reference('fbnet_z')
