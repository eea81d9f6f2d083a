import json

import pytest
from conftest import run_module

from hournas_tf.fuzzing import check_refused


def test_describe_fbnet_b_prints_published_macs():
    out = run_module('hournas_tf.describe', '--arch=fbnet_b')
    assert out.returncode == 0, out.stderr
    assert '295.56M' in out.stdout
    assert '4,777,296' in out.stdout
    assert 'k3_sep_e6' in out.stdout


def test_describe_json_gives_the_published_counts():
    out = run_module('hournas_tf.describe', '--arch=mnasnet_a1', '--json')
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    # tensorflow/tpu's MnasNet-A1: 311.6M MACs, 3,887,038 trainable.
    assert info['macs'] == 311_579_072
    assert info['weights'] == 3_848_312
    assert info['params'] == 3_887_038
    assert info['keras_params'] == 3_920_526
    assert info['vital_layers'] == [1, 2, 4, 7, 11, 13, 16]
    assert len(info['layers']) == 16 + 3
    assert sum(row['macs'] for row in info['layers']) == info['macs']


def test_describe_space_and_arch_file(tmp_path):
    out = run_module('hournas_tf.describe', '--space=fbnet', '--json')
    info = json.loads(out.stdout)
    assert info['vital_layers'] == [2, 6, 10, 14, 18, 22]
    assert info['num_architectures'] == 8 ** 6 * 9 ** 16
    # The space's largest network is fbnet_max (k5_e6 everywhere).
    assert (info['max_macs'], info['max_params']) == (572_634_080,
                                                      5_754_072)
    assert info['min_macs'] < 295_561_032
    out = run_module('hournas_tf.describe', '--arch=fbnet_c',
                     '--image_size=32', '--num_classes=10', '--json')
    small = json.loads(out.stdout)
    path = tmp_path / 'a.json'
    path.write_text(json.dumps({'space': 'fbnet',
                                'ops': small['architecture'].split(':')[1]
                                .split(','), 'image_size': 32,
                                'num_classes': 10}))
    out = run_module('hournas_tf.describe', f'--arch_file={path}', '--json')
    assert json.loads(out.stdout)['macs'] == small['macs']


@pytest.mark.parametrize('flags, message', [
    (['--arch=fbnet_q'], "unknown architecture 'fbnet_q'"),
    (['--space=resnet'], "unknown space 'resnet'"),
    (['--arch_file=/nonexistent.json'], 'does not exist'),
    (['--image_size=abc'], "flag --image_size=abc: invalid literal"),
    (['--arch=fbnet:k3_e1'], 'has 1 ops'),
    ([], 'give exactly one of --arch, --arch_file, --space (got 0)'),
    (['--arch=fbnet_b', '--space=fbnet'],
     'give exactly one of --arch, --arch_file, --space (got 2)'),
    (['--arch=fbnet_b', '--arch_file=a.json'],
     'give exactly one of --arch, --arch_file, --space (got 2)'),
    (['--flagfile=/nonexistent.flags'], 'Unable to open flagfile'),
])
def test_bad_input_exits_2_with_one_line(flags, message):
    out = run_module('hournas_tf.describe', *flags)
    check_refused(out, message)
    assert out.stdout == ''
