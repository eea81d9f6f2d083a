"""Shared test set-up: Keras on the TF backend, and the two test lanes.

The fast lane is the default: `python -m pytest -n 2 tests`. Tests marked
`@pytest.mark.large` (end-to-end searches and training runs, killed and
resumed runs, two-replica runs, the benchmark tool) form the large lane:
deselected unless `--run_large` or a `-m` expression is given.
`python -m pytest -n 2 --run_large tests` runs both lanes,
`python -m pytest -n 2 -m large tests` the large lane alone (.ci/run runs
the two lanes one after the other).
"""

import os
import subprocess
import sys

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

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


def pytest_addoption(parser):
    parser.addoption('--run_large', action='store_true', default=False,
                     help='also run the tests marked large (the large lane; '
                     '-m large runs it alone)')


def pytest_collection_modifyitems(config, items):
    if config.getoption('--run_large') or config.option.markexpr:
        return  # both lanes, or the lanes that -m selects
    large = [item for item in items if item.get_closest_marker('large')]
    if large:
        config.hook.pytest_deselected(items=large)
        items[:] = [item for item in items
                    if not item.get_closest_marker('large')]
