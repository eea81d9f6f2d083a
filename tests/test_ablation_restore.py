"""experiments/ablation_restore.py (tools/ablate.py --restore_cells):
finished cells written back from a results.json."""

import dataclasses
import json
import os

import pytest
from conftest import run_python

from hournas_tf.common import jsonio
from hournas_tf.common.errors import UserError
from hournas_tf.experiments import ablation
from hournas_tf.experiments import ablation_report
from hournas_tf.experiments import ablation_restore as restore
from hournas_tf.fuzzing import check_refused
from hournas_tf.nas import config as config_lib

TARGETS = {'macs': 10e6, 'params': 0.25e6}


def config(path, **kw):
    kw.setdefault('variants', ('hournas', 'random', 'm1'))
    return ablation.AblationConfig(
        output_dir=str(path), search=config_lib.SearchConfig(
            targets=TARGETS), train_epochs=2, **kw)


def result(variant, seed, accuracy):
    return {'variant': variant, 'seed': seed, 'test_accuracy': accuracy,
            'search_seconds': 10.0, 'achieved': {'macs': 10.1e6,
                                                 'params': 0.245e6},
            'relative_error': {'macs': 0.01, 'params': -0.02},
            'within_tolerance': True, 'before_repair_within_tolerance': True,
            'job_wall_seconds': 60.0, 'job_cpu_seconds': 50.0}


def results_file(tmp_path, c, rows=('hournas', 'random'), seeds=(0, 1, 2)):
    """A results.json of `c`'s settings with `rows` x `seeds` cells."""
    data = {'command': 'python tools/ablate.py --seeds=3',
            'started': '2026-12-03T21:41:58',
            'machine': {'commit': 'abc1234'},
            'search_config': dataclasses.asdict(c.search),
            'train_epochs': c.train_epochs,
            'train_examples': c.train_examples, 'random_k': c.random_k,
            'results': {v: [result(v, s, 0.8 + 0.01 * s + 0.001 * len(v))
                            for s in seeds] for v in rows}}
    path = tmp_path / 'results.json'
    path.write_text(json.dumps(data))
    return str(path), data


def test_restored_cells_are_finished_cells_and_kept_ones_stay(tmp_path):
    c = config(tmp_path / 'run', seeds=(0, 1))
    path, data = results_file(tmp_path, c)
    # A cell of this run that is already there is not overwritten.
    mine = result('random', 1, 0.5)
    os.makedirs(ablation.cell_dir(c, 'random', 1))
    jsonio.write_json(os.path.join(ablation.cell_dir(c, 'random', 1),
                                   ablation.RESULT_FILE), mine)
    assert restore.restore_cells(c, path) == 3  # seed 2 is not this run's
    for variant, seed in (('hournas', 0), ('hournas', 1), ('random', 0)):
        assert ablation.is_done(c, variant, seed)
        assert jsonio.read_json(os.path.join(
            ablation.cell_dir(c, variant, seed), ablation.RESULT_FILE),
            'cell') == data['results'][variant][seed]
    assert jsonio.read_json(os.path.join(ablation.cell_dir(c, 'random', 1),
                                         ablation.RESULT_FILE), 'c') == mine
    assert not ablation.is_done(c, 'hournas', 2)
    assert not ablation.is_done(c, 'm1', 0)  # the row the run adds
    record = restore.restored_from(c.output_dir)
    assert record == {'path': path, 'command': data['command'],
                      'started': data['started'], 'commit': 'abc1234',
                      'cells': ['hournas:0', 'hournas:1', 'random:0',
                                'random:1']}
    # Again (a rerun of the same command): nothing left to write.
    assert restore.restore_cells(c, path) == 0
    # The table names where the cells came from.
    out = ablation_report.write_outputs(c, 'python tools/ablate.py', '2026-'
                                        '12-04T10:00:00')
    assert out['restored_from'] == record
    page = (tmp_path / 'run' / 'ablation.md').read_text()
    assert ('4 cells restored from ' + path + ' (`python tools/ablate.py '
            '--seeds=3`, started 2026-12-03T21:41:58, commit abc1234)') \
        in page
    assert restore.restored_from(str(tmp_path)) is None


@pytest.mark.parametrize('change, message', [
    (dict(train_epochs=3), 'was run with train_epochs=2, this run has 3'),
    (dict(search=config_lib.SearchConfig(targets={'macs': 12e6,
                                                  'params': 0.25e6})),
     'was run with search_config.targets.macs=10000000.0, this run has '
     '12000000.0'),
    (dict(search=config_lib.SearchConfig(targets=TARGETS,
                                         validation_fraction=0.1)),
     'search_config.validation_fraction=0.0, this run has 0.1'),
])
def test_other_settings_are_refused_and_nothing_is_written(tmp_path,
                                                           change, message):
    path, _ = results_file(tmp_path, config(tmp_path / 'run'))
    c = dataclasses.replace(config(tmp_path / 'run'), **change)
    with pytest.raises(UserError, match=message.replace('.', r'\.')):
        restore.restore_cells(c, path)
    assert not os.path.exists(c.output_dir)


def test_a_row_that_needs_the_default_search_folder_is_refused(tmp_path):
    c = config(tmp_path / 'run', variants=('hournas', 'no_stage2'))
    path, _ = results_file(tmp_path, c)
    with pytest.raises(UserError, match='no_stage2 seed 0 needs the hournas '
                       'search folder'):
        restore.restore_cells(c, path)
    assert not os.path.exists(c.output_dir)
    # Where the default search of a seed ran here (its folder is there),
    # the row can read it: that seed is not refused.
    ran = tmp_path / 'ran'
    c = config(ran, variants=('hournas', 'no_stage2'), seeds=(0,))
    search = os.path.join(ablation.cell_dir(c, 'hournas', 0), 'search')
    os.makedirs(search)
    jsonio.write_json(os.path.join(search, 'supernet.json'), {})
    jsonio.write_json(os.path.join(ablation.cell_dir(c, 'hournas', 0),
                                   ablation.RESULT_FILE),
                      result('hournas', 0, 0.9))
    assert restore.restore_cells(c, path) == 0  # its own cell is kept
    # Restored with the default's cells of every seed it runs, it is fine.
    c = config(tmp_path / 'run', variants=('hournas', 'no_stage2'))
    path, _ = results_file(tmp_path, c, rows=('hournas', 'no_stage2'))
    assert restore.restore_cells(c, path) == 6
    # Cells of another results.json are not mixed into the same folder.
    other = tmp_path / 'other.json'
    other.write_text(open(path).read())
    with pytest.raises(UserError, match='already holds cells restored from '
                       + path):
        restore.restore_cells(c, str(other))


def test_what_is_not_a_results_file_is_refused(tmp_path):
    c = config(tmp_path / 'run')
    with pytest.raises(UserError, match='no such file'):
        restore.restore_cells(c, str(tmp_path / 'nowhere.json'))
    other = tmp_path / 'other.json'
    other.write_text('[1, 2]')
    with pytest.raises(UserError, match='is not a results.json'):
        restore.restore_cells(c, str(other))


def test_the_command_refuses_a_missing_file_in_one_line(tmp_path):
    out = tmp_path / 'ablation'
    res = run_python('tools/ablate.py', f'--output_dir={out}',
                     f'--restore_cells={tmp_path / "nowhere.json"}',
                     '--table_only', timeout=300)
    check_refused(res, 'nowhere.json: no such file')
    assert not out.exists()
