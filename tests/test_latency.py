"""Latency tables: the format, validation, the `latency_ms` objective, the
block measurements, the tools and the search with a latency target."""

import json
import os

import numpy as np
import pytest
from conftest import run_module
from conftest import run_python

import hournas_tf
from hournas_tf.common.errors import UserError
from hournas_tf.fuzzing import check_refused
from hournas_tf.resources import counting
from hournas_tf.resources import latency
from hournas_tf.resources import tables

DEMO = dict(image_size=32, num_classes=10, width_multiplier=0.25)


def demo_space():
    return hournas_tf.get_space('efficientnet', **DEMO)


def synthetic_table(space, calibration=None):
    """A table whose entries grow with MACs (1 ms per 100M, plus 2 us)."""
    def ms(macs):
        return 0.002 + macs * 1e-8

    timings = {'stem': {'median_ms': ms(counting.stem_cost(space).macs)},
               'head': {'median_ms': ms(counting.head_cost(space).macs)},
               'classifier': {'median_ms': ms(
                   counting.classifier_cost(space).macs), 'spread': 0.1}}
    for block in latency.space_blocks(space):
        if block.kind == 'op':
            timings[block.name] = {'median_ms': ms(counting.op_cost(
                space, block.layer, block.op).macs), 'spread': 0.05}
    table = latency.table_from_timings(space, timings, 1, 'fp32', 'test',
                                       'synthetic', {'note': 'test'})
    if calibration:
        import dataclasses

        table = dataclasses.replace(table, calibration=calibration)
    return table


def write_table(path, table):
    latency.save_table(table, str(path))
    return str(path)


def test_blocks_of_a_space_have_unique_names():
    space = demo_space()
    blocks = latency.space_blocks(space)
    names = [b.name for b in blocks]
    assert len(set(names)) == len(names)
    assert names[0] == 'stem' and names[-2:] == ['head', 'classifier']
    assert 'layer01_k3_e3_se0.25' in names
    ops = sum(len([o for o in space.allowed_ops(layer.index)
                   if o != 'skip']) for layer in space.layers)
    assert len(blocks) == ops + 3
    assert 'layer01_k3_e1_se0.25' in names  # EfficientNet-B0's first block
    assert len(latency.space_blocks(space, extra_ops=False)) < len(blocks)


def test_table_round_trips_through_its_file(tmp_path):
    space = demo_space()
    table = synthetic_table(space, {'a': 1.2, 'b': 0.01, 'r2': 0.9,
                                    'architectures': 3})
    path = write_table(tmp_path / 't.json', table)
    again = latency.load_table(path, space)
    assert again == table
    data = json.loads(open(path).read())
    assert data['format'] == latency.FORMAT and data['version'] == 1
    assert data['layers'][0]['k3_e3_se0.25']['spread'] == 0.05


def test_prediction_is_the_sum_of_entries_and_skip_is_free():
    space = demo_space()
    table = synthetic_table(space)
    ops = [[o for o in layer.candidates if o != 'skip'][0]
           for layer in space.layers]
    expected = table.fixed_raw_ms() + sum(
        table.entry_ms(i, op) for i, op in enumerate(ops))
    assert table.predict_ms(ops) == pytest.approx(expected)
    assert table.entry_ms(0, 'skip') == 0.0
    calibrated = synthetic_table(space, {'a': 2.0, 'b': 0.5})
    assert calibrated.scale == (2.0, 0.5)
    assert calibrated.predict_ms(ops) == pytest.approx(2 * expected + 0.5)
    assert calibrated.sum_ms(ops) == pytest.approx(expected)
    assert calibrated.op_ms(0, ops[0]) == 2 * table.entry_ms(0, ops[0])
    assert calibrated.fixed_ms() == pytest.approx(
        2 * table.fixed_raw_ms() + 0.5)
    with pytest.raises(UserError, match="layer 1 op 'k7_e6'"):
        table.entry_ms(0, 'k7_e6')


def test_a_table_of_another_space_or_size_is_refused(tmp_path):
    space = demo_space()
    path = write_table(tmp_path / 't.json', synthetic_table(space))
    other = hournas_tf.get_space('efficientnet', image_size=64,
                                 num_classes=10, width_multiplier=0.25)
    with pytest.raises(UserError) as e:
        latency.load_table(path, other)
    assert 'at image_size 32' in str(e.value)
    assert 'not space \'efficientnet\' at image_size 64' in str(e.value)
    assert '\n' not in str(e.value)
    with pytest.raises(UserError, match="not space 'mnasnet'"):
        latency.load_table(path, hournas_tf.get_space('mnasnet', **DEMO))


@pytest.mark.parametrize('change, message', [
    (lambda d: d.update(format='x'), 'is not a latency table'),
    (lambda d: d.update(version=9), 'version 9'),
    (lambda d: d.pop('head'), 'lacks head'),
    (lambda d: d.update(mode='fp8'), "unknown mode 'fp8'"),
    (lambda d: d.update(layers={}), 'must be a list'),
    (lambda d: d['layers'][0].update({'k3_e3_se0.25': {'median_ms': -1}}),
     "layer 1 op 'k3_e3_se0.25' median_ms=-1"),
    (lambda d: d['stem'].update(median_ms='fast'), 'non-numeric'),
    (lambda d: d.update(calibration={'a': 1}), 'needs "a" and "b"'),
])
def test_malformed_tables_give_one_line_errors(tmp_path, change, message):
    data = synthetic_table(demo_space()).to_json()
    change(data)
    path = tmp_path / 't.json'
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=message) as e:
        latency.load_table(str(path))
    assert '\n' not in str(e.value)


def test_missing_files_and_entries_are_named(tmp_path):
    with pytest.raises(UserError, match='does not exist'):
        latency.load_table(str(tmp_path / 'none.json'))
    (tmp_path / 'bad.json').write_text('{')
    with pytest.raises(UserError, match='is not JSON'):
        latency.load_table(str(tmp_path / 'bad.json'))
    data = synthetic_table(demo_space()).to_json()
    del data['layers'][3]['k5_e6_se0.25']
    (tmp_path / 'gap.json').write_text(json.dumps(data))
    with pytest.raises(UserError, match="layer 4 op 'k5_e6_se0.25'"):
        latency.load_table(str(tmp_path / 'gap.json'), demo_space())


def test_latency_is_one_more_objective_of_a_resource_table():
    space = demo_space()
    table = synthetic_table(space)
    rows = [i for i in range(len(space.layers)) if i not in (3, 5)]
    fixed_ops = {3: 'k3_e3_se0.25', 5: 'k5_e6_se0.25'}
    resources = tables.resource_table(space, rows, fixed_ops,
                                      ('macs', latency.OBJECTIVE), table)
    assert resources.latency is table
    c = space.op_names.index('k3_e6_se0.25')
    assert resources.values['latency_ms'][0, c] == table.op_ms(0,
                                                               'k3_e6_se0.25')
    assert resources.fixed['latency_ms'] == pytest.approx(
        table.fixed_ms() + table.op_ms(3, 'k3_e3_se0.25')
        + table.op_ms(5, 'k5_e6_se0.25'))
    arch_ops = ['skip'] * 3 + ['k3_e3_se0.25', 'skip', 'k5_e6_se0.25',
                               'skip', 'skip', 'k3_e3_se0.25'] \
        + ['skip'] * 7
    columns = resources.columns_of([arch_ops[i] for i in rows])
    assert resources.total('latency_ms', columns) == pytest.approx(
        table.predict_ms(arch_ops))
    low, high = tables.feasible_range(resources, 'latency_ms')
    assert 0 < low < high
    tables.check_targets(resources, {'latency_ms': (low + high) / 2})
    with pytest.raises(UserError, match='outside the feasible range'):
        tables.check_targets(resources, {'latency_ms': high * 2})


def test_the_latency_objective_needs_a_table():
    with pytest.raises(UserError, match='needs a latency table'):
        tables.resource_table(demo_space(), objectives=('latency_ms',))
    with pytest.raises(UserError, match='is for space'):
        tables.resource_table(hournas_tf.get_space('mnasnet', **DEMO),
                              objectives=('latency_ms',),
                              latency=synthetic_table(demo_space()))


def test_calibration_fit_and_errors():
    sums = np.array([1.0, 2.0, 3.0, 4.0])
    fit = latency.fit_calibration(sums, 1.5 * sums + 0.25)
    assert fit['a'] == pytest.approx(1.5) and fit['b'] == pytest.approx(0.25)
    assert fit['r2'] == pytest.approx(1.0) and fit['architectures'] == 4
    with pytest.raises(UserError, match='at least two'):
        latency.fit_calibration([1.0], [2.0])
    assert latency.relative_errors([1.1, 0.9], [1.0, 1.0]) == \
        pytest.approx([0.1, 0.1])


def write_csv(path, space, column='avg_us', rows=None):
    lines = [f'block,{column},std_us']
    for k, block in enumerate(latency.space_blocks(space)):
        lines.append(f'blocks/{block.name}.tflite,{100 + k},{5}')
    path.write_text('\n'.join(rows or lines) + '\n')
    return str(path)


def test_benchmark_csv_becomes_a_table(tmp_path):
    space = demo_space()
    timings = latency.read_benchmark_csv(write_csv(tmp_path / 'p.csv',
                                                   space))
    assert timings['stem'] == {'median_ms': pytest.approx(0.1),
                               'spread': pytest.approx(0.05)}
    table = latency.table_from_timings(space, timings, 4, 'int8', 'phone',
                                       'benchmark_csv')
    assert table.entry_ms(0, 'k3_e3_se0.25') == pytest.approx(0.101)
    partial = write_csv(tmp_path / 'q.csv', space,
                        rows=['block,median_ms', 'stem,0.5'])
    with pytest.raises(UserError, match='no timing for block'):
        latency.table_from_timings(space, latency.read_benchmark_csv(
            partial), 1, 'fp32', 'x', 'y')
    wrong = write_csv(tmp_path / 'r.csv', space,
                      rows=['name,time', 'stem,0.5'])
    with pytest.raises(UserError, match='needs a "block" column'):
        latency.read_benchmark_csv(wrong)
    bad = write_csv(tmp_path / 's.csv', space,
                    rows=['block,avg_ms', 'stem,fast'])
    with pytest.raises(UserError, match="line 2: 'fast' is not a number"):
        latency.read_benchmark_csv(bad)


def test_build_latency_table_from_a_benchmark_csv(tmp_path):
    space = demo_space()
    csv_path = write_csv(tmp_path / 'p.csv', space)
    out = tmp_path / 'phone.json'
    args = ('tools/build_latency_table.py', '--space=efficientnet',
            '--image_size=32', '--width_multiplier=0.25', '--num_classes=10',
            f'--from_benchmark_csv={csv_path}', '--device=Pixel',
            f'--output={out}')
    res = run_tool(*args)
    assert res.returncode == 0, res.stderr[-2000:]
    assert not res.stderr
    table = latency.load_table(str(out), space)
    assert table.device == 'Pixel' and table.source == 'benchmark_csv'
    for bad, message in ((args, 'already exists'),
                         (args[:1] + args[2:], 'give --space'),
                         (args + ('--calibrate=1',), 'at least 2')):
        check_refused(run_tool(*bad), message)


def run_tool(script, *args):
    return run_python(script, *args, timeout=1800)


def test_blocks_convert_and_time_round_robin():
    from hournas_tf.exporting import latency_measure

    space = demo_space()
    blocks = [latency.Block('stem'), latency.Block('op', 15, 'k5_e6_se0.25'),
              latency.Block('classifier')]
    models = {b.name: latency_measure.block_tflite(space, b, 'fp32')
              for b in blocks}
    models['int8'] = latency_measure.block_tflite(space, blocks[1], 'int8')
    timings, info = latency_measure.time_round_robin(models, rounds=2,
                                                     runs=3, warmup=1)
    assert set(timings) == set(models)
    assert all(t['median_ms'] > 0 for t in timings.values())
    assert info['rounds'] == 2 and len(info['load_average']) == 2
    model = latency_measure.block_model(space, latency.Block('head'))
    assert tuple(model.inputs[0].shape[1:]) == (4, 4, 80)


def test_random_architectures_are_valid_and_seeded():
    from hournas_tf.exporting import latency_measure

    space = demo_space()
    first = latency_measure.random_architectures(space, 5, seed=3)
    again = latency_measure.random_architectures(space, 5, seed=3)
    assert [a.to_string() for a in first] == [a.to_string() for a in again]
    for arch in first:
        for i, op in enumerate(arch.ops):
            space.check_op(i, op)
    strings = [a.to_string() for a in first]
    other = latency_measure.random_architectures(space, 5, seed=3,
                                                 exclude=strings[:2])
    assert len(other) == 5 and not {a.to_string() for a in other} & set(
        strings[:2])


def test_arch_tflite_times_a_whole_network():
    from hournas_tf.exporting import latency_measure
    from hournas_tf.exporting import tflite

    arch = latency_measure.random_architectures(demo_space(), 1, seed=0)[0]
    data = latency_measure.arch_tflite(arch, 'fp32')
    assert tflite.op_counts(data)['FULLY_CONNECTED'] == 1


# The search and describe with a latency table.

def test_describe_prints_the_predicted_latency(tmp_path):
    space = demo_space()
    table = synthetic_table(space)
    path = write_table(tmp_path / 't.json', table)
    arch = hournas_tf.get_reference('efficientnet_b0', **DEMO)
    res = run_module('hournas_tf.describe', '--arch=efficientnet_b0',
                     '--image_size=32', '--num_classes=10',
                     '--width_multiplier=0.25', f'--latency_table={path}',
                     '--json')
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info['latency_ms'] == pytest.approx(table.predict_ms(arch.ops))
    check_refused(run_module('hournas_tf.describe', '--arch=efficientnet_b0',
                             f'--latency_table={path}'),
                  'not space \'efficientnet\' at image_size 224')


def test_search_refuses_bad_latency_settings_before_training(tmp_path):
    path = write_table(tmp_path / 't.json', synthetic_table(demo_space()))
    cases = (
        (['--target_latency_ms=1'], 'needs --latency_table'),
        ([f'--latency_table={path}', '--target_latency_ms=1000'],
         'outside the feasible range'),
        ([f'--latency_table={path}', '--target_latency_ms=1',
          '--image_size=64'], 'at image_size 32'),
    )
    for args, message in cases:
        res = run_module('hournas_tf.search', *args, '--dry_run',
                         f'--output_dir={tmp_path / "run"}')
        check_refused(res, message)
        assert not (tmp_path / 'run').exists()


def latency_target(space, table):
    resources = tables.resource_table(space, objectives=('latency_ms',),
                                      latency=table)
    low, high = tables.feasible_range(resources, 'latency_ms')
    return round(low + 0.4 * (high - low), 4)


def latency_search(tmp_path):
    """(table, its file, a feasible latency target, the run's folder)."""
    space = demo_space()
    table = synthetic_table(space)
    path = write_table(tmp_path / 't.json', table)
    return table, path, latency_target(space, table), tmp_path / 'run'


def test_dry_run_proposals_land_on_the_latency_target(tmp_path):
    _, path, target, out = latency_search(tmp_path)
    res = run_module('hournas_tf.search', '--dry_run',
                     f'--target_latency_ms={target}',
                     f'--latency_table={path}', '--proposal_iters=200',
                     '--num_proposals=2', f'--output_dir={out}')
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((out / 'dry_run.json').read_text())
    assert report['targets'] == {'latency_ms': target}
    for row in report['proposals']:
        assert abs(row['latency_ms_error']) <= 0.03, row


@pytest.mark.large
def test_search_lands_within_3_percent_of_the_latency_target(tmp_path):
    # Stage 2 only (--vital_ops=max): stage 1 has no resource loss.
    table, path, target, out = latency_search(tmp_path)
    res = run_module(
        'hournas_tf.search', f'--target_latency_ms={target}',
        f'--latency_table={path}',
        '--max_steps_per_epoch=2', '--proposal_iters=200',
        '--num_proposals=2', '--batch_size=16', '--vital_ops=max',
        '--nonvital_epochs=1', '--verbose=0', f'--output_dir={out}')
    assert res.returncode == 0, res.stderr[-3000:]
    arch = hournas_tf.load_architecture(str(out / 'arch.json'))
    predicted = table.predict_ms(arch.ops)
    assert abs(predicted - target) <= 0.03 * target
    search = json.loads((out / 'arch.json').read_text())['search']
    assert search['achieved']['latency_ms'] == pytest.approx(predicted)


@pytest.mark.large
def test_build_latency_table_measures_calibrates_and_evaluates(tmp_path):
    out = tmp_path / 'eff32.json'
    common = ('--space=efficientnet', '--image_size=32',
              '--width_multiplier=0.25', '--num_classes=10')
    res = run_tool('tools/build_latency_table.py', *common, '--rounds=2',
                   '--runs=3', '--calibrate=2', '--evaluate=2',
                   f'--output={out}', f'--json={tmp_path / "acc.json"}')
    assert res.returncode == 0, res.stderr[-3000:]
    table = latency.load_table(str(out), demo_space())
    assert table.calibration['architectures'] == 2
    assert table.info['rounds'] == 2 and table.source == 'litert'
    result = json.loads((tmp_path / 'acc.json').read_text())['evaluation']
    rows = result['architectures']
    assert len(rows) == 2
    # Each evaluated architecture: timed, and predicted by the table as
    # written (calibrated); the errors are those of these rows.
    errors = {'raw_error': [], 'calibrated_error': []}
    for row in rows:
        ops = hournas_tf.Architecture.from_string(row['architecture']).ops
        assert row['measured_ms'] > 0
        assert row['sum_ms'] == pytest.approx(table.sum_ms(ops))
        assert row['predicted_ms'] == pytest.approx(table.predict_ms(ops))
        for key, value in (('raw_error', row['sum_ms']),
                           ('calibrated_error', row['predicted_ms'])):
            errors[key].append(abs(value / row['measured_ms'] - 1))
    for key, values in errors.items():
        assert result[key]['max'] == pytest.approx(max(values))
        assert result[key]['median'] == pytest.approx(np.median(values))
    # 2 architectures timed in 2 rounds on a possibly busy machine: a loose
    # bound (docs/deploy.md measures 3.2% median, 12.7% largest), which a
    # prediction of the wrong scale exceeds.
    assert result['calibrated_error']['max'] < 0.5, result
    blocks = tmp_path / 'blocks'
    res = run_tool('tools/build_latency_table.py', *common,
                   f'--export_blocks={blocks}')
    assert res.returncode == 0, res.stderr[-3000:]
    names = {b.name for b in latency.space_blocks(demo_space())}
    assert {f'{n}.tflite' for n in names} | {'blocks.json'} == set(
        os.listdir(blocks))
