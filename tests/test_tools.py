"""tools/*.py: the README's table is their output; user errors are one line."""

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
