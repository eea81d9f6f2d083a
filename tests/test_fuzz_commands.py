"""Fuzzed bad input at the commands, run in-process the way `python -m`
runs them (hournas_tf/fuzzing.py): search, train, export, describe and report
each refuse every case with exit code 2 and one `error:` line on stderr,
no traceback, and nothing in the workspace changed (no existing output
touched, no output folder left behind). A few real subprocesses check that
the in-process runs are the real thing."""

import json
import os

import pytest
from conftest import run_module
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings

from hournas_tf import fuzzing
from hournas_tf.fuzzing import check_refused

CASES = fuzzing.command_cases()
# Bounded and reproducible; tools/fuzz_inputs.py runs many more.
EXAMPLES = {'search': 60, 'train': 60, 'export': 25, 'describe': 60,
            'report': 40}


# A case runs a command: slow, and a workspace's files make large data.
# Every other health check (filter_too_much among them) stays on.
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]


def _fuzz(command):
    @settings(max_examples=EXAMPLES[command], deadline=None,
              derandomize=True, database=None,
              suppress_health_check=SLOW)
    @given(case=CASES[command])
    def check(root, case):
        fuzzing.check_command(command, case, root)
    return check


@pytest.fixture(scope='module')
def workspaces(tmp_path_factory):
    roots = {}
    for command in fuzzing.COMMANDS:
        roots[command] = str(tmp_path_factory.mktemp(command))
        fuzzing.command_workspace(roots[command], command)
    return roots


# report has no valid base: every case names its run.
@pytest.mark.parametrize('command', [c for c in fuzzing.COMMANDS
                                     if c != 'report'])
def test_the_base_case_is_accepted(workspaces, command):
    """Without a bad input each command gets to its slow part (or, for
    describe, succeeds): a refused case is refused for its bad input."""
    argv = fuzzing.BASES[command] or (['--arch=fbnet_a'] if command ==
                                      'describe' else [])
    outcome = fuzzing.run_command(command, argv, workspaces[command])
    if command == 'describe':
        assert outcome.code == 0 and 'fbnet_a' in outcome.stdout, outcome
    else:
        assert outcome.reached, outcome


@pytest.mark.parametrize('command', fuzzing.COMMANDS)
def test_fuzzed_command_input(workspaces, command):
    _fuzz(command)(workspaces[command])


def test_a_crash_is_not_taken_for_a_refusal(tmp_path):
    """The harness can fail: a traceback propagates, an accepted case and a
    second stderr line are reported."""
    fuzzing.workspace(str(tmp_path))
    with pytest.raises(AssertionError, match='accepted'):
        fuzzing.run_case('search', fuzzing.Case([]), str(tmp_path))
    with pytest.raises(AssertionError):
        fuzzing.check_refused(fuzzing.Outcome(2, '', 'warn\nerror: x\n'))
    with pytest.raises(AssertionError):
        fuzzing.check_refused(fuzzing.Outcome(1, '', 'error: x\n'))
    with pytest.raises(AssertionError, match='expected'):
        fuzzing.check_refused(fuzzing.Outcome(2, '', 'error: x\n'),
                              'expected')


@pytest.mark.parametrize('line', [b'null', b'[1]', b'{"a": 1', b'\xff'])
def test_report_refuses_history_lines_that_are_not_objects(tmp_path, line):
    """Regression: `null` was skipped like a blank line and the page
    crashed (KeyError); other lines raised JSONDecodeError."""
    root = str(tmp_path)
    fuzzing.workspace(root)
    arch = {**fuzzing.valid_arch_json(), 'search': {'targets': {}}}
    case = fuzzing.Case(['run'], 'history.jsonl line 2 is not a JSON object',
                        {'run/arch.json': json.dumps(arch).encode(),
                         'run/history.jsonl': b'{"stage": 1}\n' + line})
    fuzzing.run_case('report', case, root)


def test_a_changed_workspace_is_reported(tmp_path):
    root = str(tmp_path)
    fuzzing.workspace(root)
    before = fuzzing.snapshot(root)
    fuzzing.write(os.path.join(root, 'existing', 'result.txt'), 'changed')
    assert fuzzing.snapshot(root) != before


# Real subprocesses: the same refusals as `python -m` (about 5-10 s each).
@pytest.mark.parametrize('command, case', [
    ('search', fuzzing.Case(['--tolerance=nan'], 'tolerance=nan')),
    ('search', fuzzing.Case(['--width_multiplier=inf'], 'width_multiplier')),
    ('train', fuzzing.Case(['--arch_file=arch.json', '--learning_rate=inf'],
                           'learning_rate=inf')),
    ('describe', fuzzing.Case(['--arch=fbnet_a',
                               '--latency_table=table.json'], 'is for')),
    ('export', fuzzing.Case(['--arch_file=arch.json',
                             '--qat_learning_rate=nan'],
                            'qat_learning_rate=nan')),
])
def test_real_subprocesses_refuse_the_same_cases(tmp_path, command, case):
    root = str(tmp_path)
    fuzzing.workspace(root)
    before = fuzzing.snapshot(root)
    out = run_module(f'hournas_tf.{command}', *case.argv, cwd=root)
    fuzzing.check_refused(fuzzing.Outcome(out.returncode, out.stdout,
                                          out.stderr), case.expect)
    assert fuzzing.snapshot(root) == before


def test_fuzz_tool_runs_and_counts_the_cases(tmp_path):
    counts = tmp_path / 'counts.json'
    out = run_module('tools.fuzz_inputs', '--examples=7',
                     '--command_examples=3', '--targets=op_name,describe',
                     f'--counts_json={counts}')
    assert out.returncode == 0, out.stderr
    assert 'op name: 7 cases' in out.stdout
    assert 'describe: 3 cases (3 refused)' in out.stdout
    assert 'total: 10 cases, 0 target(s) failed' in out.stdout
    data = json.loads(counts.read_text())
    assert [r['target'] for r in data['targets']] == ['op name', 'describe']
    line = check_refused(run_module('tools.fuzz_inputs', '--targets=nope'))
    assert line.startswith('error: unknown target(s) nope; valid: ')


def test_fuzz_tool_reports_a_failing_target():
    from hypothesis import strategies as st

    from tools import fuzz_inputs

    assert fuzz_inputs.run_target(lambda v: None, st.integers(), 5, 0) \
        is None
    failure = fuzz_inputs.run_target(lambda v: 1 / (v - 3),
                                     st.integers(0, 9), 50, 0)
    assert isinstance(failure, ZeroDivisionError)
    names = fuzz_inputs.target_names({'op name': None})
    assert names == ['op_name', 'image_folder_listing', 'search', 'train',
                     'export', 'describe', 'report']
