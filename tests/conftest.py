"""Shared test set-up: Keras on the TF backend."""

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
