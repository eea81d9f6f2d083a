"""common/: JSON files, provenance, progress lines (the runner and
preemption are tested in test_errors.py and test_checkpointing.py)."""

import json
import os
import subprocess

import pytest

from hournas_tf.common import errors
from hournas_tf.common import jsonio
from hournas_tf.common import provenance
from hournas_tf.common import runner


def test_write_json_is_atomic_and_round_trips(tmp_path, monkeypatch):
    path = tmp_path / 'a.json'
    jsonio.write_json(path, {'x': [1, 2]}, indent=1)
    assert path.read_text() == '{\n "x": [\n  1,\n  2\n ]\n}\n'
    assert jsonio.read_json(str(path), 'thing') == {'x': [1, 2]}
    # A failure half-way leaves the old file whole and no temporary one.
    with pytest.raises(TypeError):
        jsonio.write_json(path, {'x': object()})
    assert jsonio.read_json(str(path), 'thing') == {'x': [1, 2]}
    jsonio.write_json(path, {'x': {1}}, default=sorted)
    assert json.loads(path.read_text()) == {'x': [1]}


def test_read_json_refuses_in_one_line(tmp_path):
    with pytest.raises(errors.UserError, match='^thing .* does not exist$'):
        jsonio.read_json(str(tmp_path / 'no.json'), 'thing')


def test_choices_joins_with_commas():
    assert errors.choices(['a', 2]) == 'a, 2'


def test_log_prints_a_tagged_flushed_line(capsys):
    runner.log('hello')
    runner.log('there', tag='ablate')
    assert capsys.readouterr().out == '[hournas] hello\n[ablate] there\n'


def test_version_cpu_model_and_machine():
    assert provenance.version('numpy') == __import__('numpy').__version__
    assert provenance.version('no-such-package-hournas') is None
    assert provenance.cpu_model()
    info = provenance.machine()
    assert info['cpu'] == provenance.cpu_model()
    assert info['cpu_count'] == os.cpu_count()
    assert info['tensorflow'] == provenance.version('tensorflow')
    assert len(info['loadavg']) == 3
    json.dumps(info)  # JSON-ready


def test_git_commit_marks_a_dirty_tree(tmp_path):
    assert provenance.git_commit(str(tmp_path)) is None
    def git(*args):
        return subprocess.run(['git', *args], cwd=tmp_path, check=True,
                              capture_output=True, text=True).stdout.strip()
    git('init', '-q')
    (tmp_path / 'f').write_text('1')
    git('add', 'f')
    git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'x')
    head = git('rev-parse', '--short', 'HEAD')
    assert provenance.git_commit(str(tmp_path), mark_dirty=True) == head
    (tmp_path / 'f').write_text('2')
    assert provenance.git_commit(str(tmp_path), mark_dirty=True) == head + '+'
    assert provenance.git_commit(str(tmp_path)) == head


def test_the_command_that_started_an_experiment_stays_its_command(tmp_path):
    """A rerun that resumes an experiment (the ablation, the budget
    comparison, the rank correlation) or rewrites its table
    (--table_only) keeps the first command and start time."""
    out = str(tmp_path / 'cmp')
    first = provenance.started_state(out, 'python tools/budget_compare.py A')
    assert first[0] == 'python tools/budget_compare.py A'
    assert first[1].startswith('20')
    again = provenance.started_state(
        out, 'python tools/budget_compare.py A --table_only')
    assert again == first
    assert json.loads((tmp_path / 'cmp' / provenance.STARTED_FILE)
                      .read_text()) == {'command': first[0],
                                        'started': first[1]}
