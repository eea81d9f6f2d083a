"""hournas_tf.common.threads: each cell's share of the cores."""

import os

import pytest
from conftest import run_python

from hournas_tf.common import threads


def test_share_divides_the_cores_among_the_workers(monkeypatch):
    monkeypatch.setattr(threads, 'cores', lambda: 8)
    assert [threads.share(w) for w in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    with pytest.raises(ValueError, match='workers=0'):
        threads.share(0)
    monkeypatch.undo()
    assert threads.cores() == len(os.sched_getaffinity(0))


# Code run in a fresh process without the test session's thread
# variables, so the pools show what the code set.
ENV_FREE = ('import os\n'
            "for k in ('TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS'):"
            '\n    os.environ.pop(k, None)\n')


def test_limit_sets_both_tensorflow_pools_in_a_fresh_process():
    res = run_python('-c', ENV_FREE + (
        'from hournas_tf.common import threads\n'
        'threads.limit(3)\n'
        'import tensorflow as tf\n'
        'tf.constant(1.0) + 1.0\n'
        'print(tf.config.threading.get_intra_op_parallelism_threads(),'
        ' tf.config.threading.get_inter_op_parallelism_threads())\n'
        'try:\n'
        '    threads.limit(1)\n'
        'except RuntimeError:\n'
        "    print('refused after the first op')\n"), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split('\n')[:2] == ['3 3', 'refused after the first op']


def test_take_share_limits_the_pools_and_says_so():
    """One of 1,000 workers: the share is 1 thread per pool, never
    TensorFlow's default of one per core (0)."""
    res = run_python('-c', ENV_FREE + (
        'from hournas_tf.common import threads\n'
        'print(threads.take_share(1000))\n'
        'import tensorflow as tf\n'
        'tf.constant(1.0) + 1.0\n'
        'print(tf.config.threading.get_intra_op_parallelism_threads(),'
        ' tf.config.threading.get_inter_op_parallelism_threads())\n'),
        timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split('\n')[:2] == [
        '1 thread(s) per TensorFlow pool (1000 cell(s) at a time on '
        f'{threads.cores()} core(s))', '1 1']
