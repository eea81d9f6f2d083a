"""Shared test set-up: Keras on the TF backend, and the two test lanes.

The fast lane is the default: `python -m pytest -n 2 tests`. Tests marked
`@pytest.mark.large` (end-to-end searches and training runs, killed and
resumed runs, two-replica runs, the benchmark tool) form the large lane:
deselected unless `--run_large` or a `-m` expression is given, or the test
is named (`tests/test_x.py::test_y`).
`python -m pytest -n 2 --run_large tests` runs both lanes in one session,
the large tests first (.ci/run does, with `--maxschedchunk=1`: see
`pytest_collection_modifyitems`), `python -m pytest -n 2 -m large tests`
the large lane alone.
"""

import os
import subprocess
import sys
import time

import pytest

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
# One intra-op and one inter-op thread in each test process and in every
# process a test starts (TensorFlow's runtime reads these variables): with
# two pytest workers on two cores, TensorFlow's default pools (one thread
# per core each) contend for the cores; one thread each was 10% faster for
# two retrainings side by side (benchmarks/speed/worker_threads.py) and
# shortened the CI session (docs/testing.md). Set them to run otherwise.
for _pool in ('TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS'):
    os.environ.setdefault(_pool, '1')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(*args, cwd=None, timeout=900):
    """Runs `python args...` as a user would (the repository's code, no log
    settings of ours) and returns the CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop('TF_CPP_MIN_LOG_LEVEL', None)
    return subprocess.run([sys.executable, *args], capture_output=True,
                          text=True, cwd=cwd or REPO, env=env,
                          timeout=timeout)


def run_module(module, *args, cwd=None, timeout=900):
    """Runs `python -m module args...` and returns the CompletedProcess."""
    return run_python('-m', module, *args, cwd=cwd, timeout=timeout)


def shared_once(tmp_path_factory, name, make, timeout=1800):
    """Path of `name` in a folder shared by the pytest-xdist workers of this
    run: the first worker that asks calls `make(path)`, which writes it;
    the others wait for it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        root = root.parent  # shared by the workers of this run
    path = root / name
    lock, done, failed = (root / f'{name}.{end}'
                          for end in ('lock', 'done', 'failed'))
    try:
        os.close(os.open(lock, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        deadline = time.time() + timeout
        while not done.exists():
            if failed.exists() or time.time() > deadline:
                raise RuntimeError(f'{path} was not made (see the worker '
                                   'that makes it)')
            time.sleep(2)
        return path
    try:
        make(path)
    except BaseException:
        failed.touch()
        raise
    done.touch()
    return path


# One tiny deterministic two-stage search on digits, shared by the tests
# that check its outputs (tests/test_search.py, tests/test_report.py).
TINY_SEARCH = ['--vital_epochs=1', '--nonvital_epochs=1',
               '--max_steps_per_epoch=3', '--proposal_iters=200',
               '--num_proposals=4', '--batch_size=32', '--verbose=2',
               '--deterministic']


# Two budgets of the demo space (with the vital layers at their largest ops
# the rest reaches 4.3M-17.0M MACs, 0.13M-0.34M params).
TWO_BUDGETS = 'small=macs:8e6/params:0.2e6,large=macs:13e6/params:0.28e6'


def _shared_search(tmp_path_factory, name, *flags):
    """(folder, stdout) of `python -m hournas_tf.search TINY_SEARCH
    flags`, run once per test run (`shared_once`)."""
    def make(path):
        res = run_module('hournas_tf.search', *TINY_SEARCH, *flags,
                         f'--output_dir={path / "run"}', timeout=3600)
        assert res.returncode == 0, res.stderr[-4000:]
        (path / 'stdout.txt').write_text(res.stdout)

    path = shared_once(tmp_path_factory, name, make, timeout=3600)
    return path / 'run', (path / 'stdout.txt').read_text()


@pytest.fixture(scope='session')
def tiny_search(tmp_path_factory):
    """(folder, stdout) of `python -m hournas_tf.search TINY_SEARCH`, run
    once per test run. Read it only: a test that writes copies it."""
    return _shared_search(tmp_path_factory, 'tiny_search')


@pytest.fixture(scope='session')
def tiny_budget_search(tmp_path_factory):
    """`tiny_search` with `--budgets=TWO_BUDGETS` (tests/test_budgets.py,
    tests/test_resilience.py). Read it only."""
    return _shared_search(tmp_path_factory, 'tiny_budget_search',
                          f'--budgets={TWO_BUDGETS}')


def pytest_addoption(parser):
    parser.addoption('--run_large', action='store_true', default=False,
                     help='also run the tests marked large (the large lane; '
                     '-m large runs it alone)')


def large_first(items):
    """`items` with the large tests first, each group in collection order.

    With both lanes in one session, pytest-xdist's load scheduling (one
    test at a time: `--maxschedchunk=1`) then starts every long test while
    the short ones remain to fill in behind them, so the tests that run
    last are short ones and neither worker waits long for the other at the
    end; the shared searches (`tiny_search`, ...) run once for both
    lanes."""
    return sorted(items, key=lambda item: not item.get_closest_marker(
        'large'))


def pytest_collection_modifyitems(config, items):
    if config.getoption('--run_large') or config.option.markexpr:
        items[:] = large_first(items)
        return  # both lanes, or the lanes that -m selects
    named = set()  # (file, test) named on the command line: they run
    for arg in config.args:
        path, _, name = arg.partition('::')
        if name:
            named.add((os.path.join(config.invocation_params.dir, path),
                       name))

    def deselected(item):
        if not item.get_closest_marker('large'):
            return False
        name = item.nodeid.split('::', 1)[-1]
        return not any(
            os.path.samefile(path, item.path) and
            (name == test or name.startswith(test + '['))
            for path, test in named if os.path.exists(path))

    large = [item for item in items if deselected(item)]
    if large:
        config.hook.pytest_deselected(items=large)
        items[:] = [item for item in items if not deselected(item)]
