"""tools/*.py: the README's table is their output; user errors are one line."""

import json
import os

import pytest
from conftest import REPO
from conftest import run_python


def run_tool(name, *args):
    """Runs `python tools/<name> args...` as a user would."""
    return run_python(os.path.join('tools', name), *args, timeout=600)


def test_readme_reference_table_is_the_output_of_reference_table_py():
    out = run_tool('reference_table.py')
    assert out.returncode == 0, out.stderr
    with open(os.path.join(REPO, 'README.md')) as f:
        readme = f.read()
    start = readme.index('| architecture | space | MACs |')
    assert readme[start:readme.index('\n\n', start)] == out.stdout.strip()


@pytest.mark.parametrize('tool, args, message', [
    ('reference_table.py', ['--image_size=7'],
     'flag --image_size=7: 7 is not integer >= 8'),
    ('reference_table.py', ['--size=32'], "Unknown command line flag 'size'"),
    ('reference_table.py', ['32'], 'unexpected arguments'),
    ('bench_input.py', ['--dataset=mnist'], "unknown dataset 'mnist'"),
    ('bench_input.py', ['--batch_size=0'], 'flag --batch_size=0: 0 is not'),
    ('bench_input.py', ['--batches=-1'], 'flag --batches=-1: -1 is not'),
    ('bench_input.py', ['--cache=disk'], "unknown cache 'disk'"),
    ('bench_input.py', ['--json=/nonexistent/b.json'],
     'folder /nonexistent does not exist'),
    ('bench_input.py', ['--bogus'], "Unknown command line flag 'bogus'"),
    ('search_summary.py', [], 'give one or more search output folders'),
    ('search_summary.py', ['{tmp}'], 'history.jsonl does not exist'),
    # Fails after TensorFlow and tensorflow-datasets are loaded.
    ('bench_input.py', ['--dataset=cifar10', '--data_dir={tmp}'],
     'cifar10 is not prepared in data dir {tmp}'),
])
def test_tool_user_errors_are_one_line_with_exit_code_2(
        tool, args, message, tmp_path):
    args = [a.format(tmp=tmp_path) for a in args]
    out = run_tool(tool, *args)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.startswith('error: ')
    assert message.format(tmp=tmp_path) in out.stderr
    assert out.stderr.count('\n') == 1, out.stderr[-2000:]


def test_search_summary_reads_history_and_arch(tmp_path):
    records = [
        {'stage': 'vital', 'epoch': 1, 'accuracy': 0.4361, 'arch_accuracy':
         0.5, 'within_tolerance': 1.0, 'arch_grad_norm': {'4': 2e-3, '6':
         5e-3}, 'op_probabilities': {'4': {'a': 0.3, 'b': 0.7}, '6': {
             'a': 0.55, 'b': 0.45}}},
        {'stage': 'nonvital', 'epoch': 1, 'accuracy': 0.846, 'arch_accuracy':
         0.886, 'op_probabilities': {'2': {'a': 0.25, 'b': 0.75}}},
    ]
    with open(tmp_path / 'history.jsonl', 'w') as f:
        f.write('\n'.join(json.dumps(r) for r in records) + '\n')
    arch = {'string': 'demo[image_size=32]:k3_e1,skip', 'search': {
        'relative_error': {'macs': -0.01, 'params': 0.006},
        'before_repair': {'relative_error': {'macs': 0.05, 'params': 0.0}},
        'repaired_layers': [3], 'seconds': {'vital': 103.2, 'total': 498}}}
    with open(tmp_path / 'arch.json', 'w') as f:
        json.dump(arch, f)
    out = run_tool('search_summary.py', str(tmp_path))
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith('| ')]
    assert rows[1] == ('| vital | 1 | 0.436 | 0.500 | 1.00 | 2.0e-03 '
                       '| 0.55-0.70 |')
    assert rows[2] == '| nonvital | 1 | 0.846 | 0.886 | - | - | 0.75-0.75 |'
    assert rows[-1] == (f'| {tmp_path} | `k3_e1,skip` | macs +5.0%, params '
                        '+0.0% | macs -1.0%, params +0.6% | 3 '
                        '| vital 103 s, total 498 s |')
