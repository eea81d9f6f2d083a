"""nas/config.py: the search's settings in parts, their one set of
defaults (the presets), their validation, and the command's flags checked
against them."""

import dataclasses
import json

import pytest
from conftest import run_python

from hournas_tf.common.errors import UserError
from hournas_tf.nas import config as config_lib

# The search command's flags, by name, in a subprocess (absl's flags are
# process-wide).
FLAGS = """
import json
from absl import flags
from hournas_tf import search
before = set(flags.FLAGS)
search.define_flags()
flags.FLAGS(['search'])
print(json.dumps({name: flags.FLAGS[name].value
                  for name in set(flags.FLAGS) - before}))
"""


def names(cls):
    return [f.name for f in dataclasses.fields(cls)]


def test_every_field_has_a_flag_and_every_flag_a_field():
    from hournas_tf import search

    res = run_python('-c', FLAGS, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    flag_values = json.loads(res.stdout)
    fields = set(names(config_lib.SearchConfig)) - {'targets'}
    targets = {flag for flag, _ in search.TARGET_FLAGS}
    assert fields <= set(flag_values), fields - set(flag_values)
    assert set(flag_values) - fields == targets | set(search.COMMAND_FLAGS)
    # The flags' defaults are the demo preset's.
    demo = config_lib.preset('demo')
    for name in fields - {'output_dir', 'vital_ops'}:
        assert flag_values[name] == getattr(demo, name), name


def test_the_parts_cover_every_field_once():
    parts = [name for cls in config_lib.PARTS for name in names(cls)]
    assert len(parts) == len(set(parts))
    assert sorted(parts) == sorted(names(config_lib.SearchConfig))
    config = config_lib.SearchConfig(space='mnasnet', seed=3, verbose=0)
    algorithm = config.part(config_lib.AlgorithmConfig)
    assert isinstance(algorithm, config_lib.AlgorithmConfig)
    assert algorithm.seed == 3
    assert config.part(config_lib.SpaceDataConfig).space == 'mnasnet'
    assert config.part(config_lib.RuntimeConfig).verbose == 0


def test_presets_and_defaults():
    demo = config_lib.preset('demo', seed=4)
    assert demo.space == 'efficientnet' and demo.seed == 4
    assert demo.targets == {'macs': 10e6, 'params': 0.25e6}
    assert config_lib.default('arch_lr') == 0.05
    assert config_lib.default('alpha') == config_lib.SearchConfig().alpha
    with pytest.raises(UserError, match="unknown preset 'big'; valid: demo"):
        config_lib.preset('big')


@pytest.mark.parametrize('part, changes, message', [
    (config_lib.SpaceDataConfig, {'targets': {}}, 'no resource target'),
    (config_lib.SpaceDataConfig, {'targets': {'macs': 1.0},
                                  'tolerance': 1.0}, 'tolerance=1.0'),
    (config_lib.AlgorithmConfig, {'derive': 'x'}, "unknown derive 'x'"),
    (config_lib.AlgorithmConfig, {'batch_size': 0},
     'batch_size=0 must be an integer >= 1'),
    (config_lib.RuntimeConfig, {'checkpoint_every': 0},
     'checkpoint_every=0 must be'),
    (config_lib.RuntimeConfig, {'sync_batch_norm': True,
                                'per_replica_paths': True},
     'one path for all replicas'),
])
def test_each_part_checks_its_own_fields(part, changes, message):
    if part is not config_lib.SpaceDataConfig:  # it has no default target
        part().check()
    with pytest.raises(UserError, match=message):
        part(**changes).check()
    with pytest.raises(UserError, match=message):
        config_lib.check_config(config_lib.preset('demo', **changes))


@dataclasses.dataclass
class Values:
    a: float = 1.0
    b: object = 2


def test_the_shared_rules():
    config_lib.check_positive(Values(), 'a')
    with pytest.raises(UserError, match='a=0 must be > 0 and finite'):
        config_lib.check_positive(Values(a=0), 'a')
    with pytest.raises(UserError, match='a=-1 must be >= 0'):
        config_lib.check_nonnegative(Values(a=-1), 'a')
    config_lib.check_integer(Values(b=None), 'b', 1)
    with pytest.raises(UserError, match='b=True must be an integer >= 1'):
        config_lib.check_integer(Values(b=True), 'b', 1)
    config_lib.check_unit(Values(a=1), 'a')
    with pytest.raises(UserError, match=r'a=1 must be in \[0, 1\)'):
        config_lib.check_unit(Values(a=1), 'a', closed=False)
    with pytest.raises(UserError, match="unknown b 2; valid: x"):
        config_lib.check_choice(Values(), 'b', ('x',))
    with pytest.raises(UserError, match='tau_decay=0 must be in'):
        config_lib.check_tau_decay(config_lib.AlgorithmConfig(tau_decay=0))
    config_lib.check_replica_paths(config_lib.RuntimeConfig())
