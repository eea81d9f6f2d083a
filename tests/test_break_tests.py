"""tools/break_tests.py: mutations apply exactly once or say they are stale,
the copy leaves the history and the environment out, and the tool reports
a caught break, a missed one and an error as such."""

import json
import os

import pytest
from conftest import REPO
from conftest import run_module

from hournas_tf.common.errors import UserError
from hournas_tf.fuzzing import check_refused
from tools import break_tests as bt


def _mutation(name='m', path='a.py', old='x = 1\n', new='x = 2\n',
              tests=('tests/test_a.py',)):
    return bt.Mutation(name=name, path=path, old=old, new=new, tests=tests,
                       why='a test mutation')


def test_apply_replaces_the_text_found_exactly_once(tmp_path):
    (tmp_path / 'a.py').write_text('x = 1\ny = 1\n')
    bt.apply(_mutation(), str(tmp_path))
    assert (tmp_path / 'a.py').read_text() == 'x = 2\ny = 1\n'
    # Now gone: the mutation is stale, and says so.
    with pytest.raises(UserError, match=r'stale mutation m: its old text '
                       r'occurs 0 times in a\.py'):
        bt.apply(_mutation(), str(tmp_path))
    (tmp_path / 'a.py').write_text('x = 1\nx = 1\n')
    with pytest.raises(UserError, match='occurs 2 times'):
        bt.apply(_mutation(), str(tmp_path))
    assert (tmp_path / 'a.py').read_text() == 'x = 1\nx = 1\n'
    with pytest.raises(UserError, match='stale mutation m: b.py does not '
                       'exist'):
        bt.apply(_mutation(path='b.py'), str(tmp_path))


def test_every_mutation_applies_to_this_repository():
    names = [m.name for m in bt.MUTATIONS]
    assert len(set(names)) == len(names)
    for m in bt.MUTATIONS:
        bt.check_fresh(m, REPO)
        assert m.old != m.new and m.tests and m.why, m.name
        for test in m.tests:
            assert os.path.isfile(os.path.join(REPO, test.split('::')[0])), (
                m.name, test)
    assert any(m.large for m in bt.MUTATIONS)
    assert [m.name for m in bt.select(bt.MUTATIONS)] == [
        m.name for m in bt.MUTATIONS if not m.large]
    assert len(bt.select(bt.MUTATIONS, large=True)) == len(bt.MUTATIONS)
    large = next(m.name for m in bt.MUTATIONS if m.large)
    assert [m.name for m in bt.select(bt.MUTATIONS, [large])] == [large]
    with pytest.raises(UserError, match="unknown mutation.*nope"):
        bt.select(bt.MUTATIONS, ['nope'])


def test_the_copy_leaves_out_the_history_environment_and_caches(tmp_path):
    repo = tmp_path / 'repo'
    for path in ('.git/HEAD', '.venv/bin/python', 'runs/demo/arch.json',
                 'hournas_tf/__pycache__/a.pyc', '.pytest_cache/v',
                 'hournas_tf/a.py', 'docs/testing.md', 'configs/c.cfg',
                 'tests/test_a.py'):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text('x')
    copy = bt.copy_repo(str(repo), str(tmp_path / 'copy'))
    found = sorted(os.path.relpath(os.path.join(d, f), copy)
                   for d, _, files in os.walk(copy) for f in files)
    assert found == ['configs/c.cfg', 'docs/testing.md', 'hournas_tf/a.py',
                     'tests/test_a.py']


def test_a_break_is_caught_a_harmless_change_missed_and_an_error_named():
    """One real run each: the runner's one-line error broken (its test
    runs a command, so the command imports the mutated copy too), a
    comment changed (nothing to catch: MISSED), and a test that does not
    exist (an error, not a catch)."""
    test = 'tests/test_errors.py::test_a_user_error_is_the_only_line_on_stderr'
    broken = next(m for m in bt.MUTATIONS if m.name == 'user-error-traceback')
    assert broken.tests == (test,) and not broken.large
    harmless = _mutation(
        'harmless', broken.path,
        '            # Fewer lines to hold; ERROR lines stay for a crash '
        'report.\n', '            # (a comment changed)\n', (test,))
    missing = _mutation('missing', broken.path, broken.old, broken.new,
                        ('tests/test_no_such_file.py',))
    lines = []
    results = bt.run_all([broken, harmless, missing], REPO, timeout=600,
                         progress=lines.append)
    assert [r['status'] for r in results] == ['caught', 'MISSED', 'error']
    assert [r['returncode'] for r in results[:2]] == [1, 0]
    assert 'FAILED tests/test_errors.py' in results[0]['tail']
    assert 'file or directory not found' in results[2]['tail']
    assert all(r['seconds'] > 0 and r['copy'] is None for r in results)
    assert len(lines) == 6 and lines[0].startswith('1/3 user-error-traceback')
    assert 'user-error-traceback: caught in' in lines[1]
    assert 'harmless: MISSED in' in lines[3]
    assert 'missing: error in' in lines[5]
    table = bt.markdown(results)
    assert '**caught**' in table and '**MISSED**' in table
    assert table.endswith('1 of 3 caught.')


def test_the_command_lists_and_refuses_in_one_line(tmp_path):
    res = run_module('tools.break_tests', '--list', '--large')
    assert res.returncode == 0, res.stderr[-2000:]
    for m in bt.MUTATIONS:
        assert f'{m.name} [{"large" if m.large else "fast"}]' in res.stdout
    check_refused(run_module('tools.break_tests', '--only=nope'),
                  'unknown mutation(s) nope')
    check_refused(run_module('tools.break_tests', '--only=kept-share-formula',
                             f'--output={tmp_path}/table.txt'),
                  'must end with .md')
    check_refused(run_module('tools.break_tests', '--timeout=0'),
                  '--timeout=0')


def test_the_command_writes_the_table_and_the_results(tmp_path):
    out = tmp_path / 'break.md'
    res = run_module('tools.break_tests', '--only=kept-share-formula',
                     f'--output={out}', timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert 'kept-share-formula: caught' in res.stdout
    data = json.loads((tmp_path / 'break.json').read_text())
    [result] = data['results']
    assert result['status'] == 'caught' and result['returncode'] == 1
    assert data['machine']['tensorflow'] and data['date'] and data['commit']
    text = out.read_text()
    assert data['machine']['tensorflow'] in text and '**caught**' in text
