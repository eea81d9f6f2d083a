"""Fuzzed bad input at the parsers: architecture JSON and compact strings,
latency tables, targets, op and dataset names. Every input is refused with a
one-line UserError or accepted as something whole; never another exception.
Regression cases of the bugs the fuzzing found are listed first
(docs/fuzzing.md)."""

import math

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from hournas_tf import fuzzing
from hournas_tf import spaces
from hournas_tf.common.errors import UserError
from hournas_tf.nas import config as search_config
from hournas_tf.resources import latency
from hournas_tf.spaces.architecture import Architecture
from hournas_tf.training import config as train_config

# Bounded, reproducible: the same examples on every run (CI).
FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


def _refused(function, *args):
    with pytest.raises(UserError) as info:
        function(*args)
    return fuzzing.check_user_error(info.value)


# ---------------------------------------------------------------------------
# Regression cases: each crashed before the fix (TypeError, OverflowError,
# ValueError, AttributeError, or an accepted nonsense value).

OPS = list(fuzzing.demo_arch().ops)


@pytest.mark.parametrize('data, message', [
    ({'space': ['fbnet'], 'ops': OPS}, "unknown space ['fbnet']"),
    ({'space': {'a': 1}, 'ops': OPS}, "unknown space {'a': 1}"),
    ({'space': 'efficientnet', 'ops': OPS, 'image_size': 32,
      'num_classes': 10, 'width_multiplier': float('inf')},
     'invalid width_multiplier inf: must be a finite number > 0'),
    ({'space': 'efficientnet', 'ops': OPS, 'image_size': 32,
      'num_classes': 10, 'width_multiplier': 0.25, 'name': []},
     'architecture "name" [] must be a string'),
])
def test_architecture_json_regressions(data, message):
    assert message in _refused(Architecture.from_json, data)


def test_architecture_string_with_infinite_width_is_refused():
    text = fuzzing.demo_arch().to_string().replace(
        'width_multiplier=0.25', 'width_multiplier=inf')
    assert 'invalid width_multiplier inf' in _refused(
        Architecture.from_string, text)


@pytest.mark.parametrize('key', ['width_multiplier', 'image_size'])
def test_an_integer_too_large_for_a_float_is_refused(key):
    assert f'invalid {key} 1000' in _refused(
        lambda: spaces.get_space('fbnet', **{key: 10 ** 400}))


@pytest.mark.parametrize('key, value, message', [
    ('layers', [1] * 16, '"layers" must be a list, one object per'),
    ('layers', [[]] * 16, '"layers" must be a list, one object per'),
    ('image_size', 'abc', '"image_size" \'abc\' must be an integer >= 8'),
    ('image_size', None, '"image_size" None must be an integer >= 8'),
    ('image_size', 32.7, '"image_size" 32.7 must be an integer'),
    ('threads', float('inf'), '"threads" inf must be an integer >= 1'),
    ('threads', 0, '"threads" 0 must be an integer >= 1'),
    ('num_classes', True, '"num_classes" True must be an integer'),
    ('width_multiplier', 'x', '"width_multiplier" \'x\' must be a finite'),
    ('width_multiplier', float('nan'), '"width_multiplier" nan must be'),
    ('space', ['fbnet'], '"space" [\'fbnet\'] must be a space name'),
    ('calibration', 'ab', 'calibration needs "a" and "b"'),
    ('calibration', 5, 'calibration needs "a" and "b"'),
    ('calibration', {'a': 'x', 'b': 1}, "calibration a='x', b=1 must be"),
    ('calibration', {'a': None, 'b': 1}, 'calibration a=None, b=1 must be'),
    ('calibration', {'a': float('nan'), 'b': 0}, 'calibration a=nan'),
    ('calibration', {'a': -1, 'b': 0}, 'with a > 0'),
])
def test_latency_table_regressions(key, value, message):
    data = fuzzing.valid_table_json()
    data[key] = value
    assert message in _refused(latency.from_json, data, 'table.json')


def test_a_valid_table_with_calibration_still_loads():
    data = fuzzing.valid_table_json()
    data['calibration'] = {'a': 1.1, 'b': -0.5, 'r2': 0.9,
                           'architectures': 3}
    table = latency.from_json(data)
    fuzzing.valid_table(table)
    assert table.scale == (1.1, -0.5)


@pytest.mark.parametrize('name, value', [
    ('alpha', float('nan')), ('alpha', -1.0), ('alpha', float('inf')),
    ('beta', -1.0), ('beta', float('nan')), ('weight_lr', float('inf')),
    ('arch_lr', float('inf')), ('tau_init', float('inf')),
    ('nonvital_tau_init', float('inf')),
])
def test_search_settings_regressions(name, value):
    config = search_config.SearchConfig(targets={'macs': 1e6},
                                        **{name: value})
    assert f'{name}={value!r}' in _refused(search_config.check_config,
                                           config)


@pytest.mark.parametrize('name, value', [
    ('learning_rate', float('nan')), ('learning_rate', float('inf')),
    ('weight_decay', float('nan')), ('label_smoothing', float('nan')),
    ('dropout', float('nan')), ('warmup_epochs', float('inf')),
    ('drop_path_rate', float('nan')), ('ema_momentum', float('nan')),
])
def test_train_settings_regressions(name, value):
    config = train_config.TrainConfig(arch='x', epochs=3, **{name: value})
    assert f'{name}={value!r}' in _refused(train_config.check_config,
                                           config)


# ---------------------------------------------------------------------------
# Properties.


PARSERS = fuzzing.parsers()


@pytest.mark.parametrize('target', sorted(PARSERS))
@FAST
@given(data=st.data())
def test_fuzzed_parser_input(target, data):
    value = data.draw(PARSERS[target][0], label=target)
    fuzzing.check_parser(target, value, PARSERS)


def test_the_valid_inputs_are_accepted():
    """The bases the fuzzing mutates are valid: a mutation is what fails."""
    fuzzing.valid_arch(Architecture.from_json(fuzzing.valid_arch_json()))
    fuzzing.valid_arch(Architecture.from_string(
        fuzzing.demo_arch().to_string()))
    fuzzing.valid_table(latency.from_json(fuzzing.valid_table_json()))
    assert math.isfinite(fuzzing.demo_space().width_multiplier)
