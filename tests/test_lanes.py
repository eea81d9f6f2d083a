"""The two test lanes of tests/conftest.py: the fast lane by default, the
large lane with -m large, both with --run_large (the large tests first)."""

import conftest
from conftest import REPO
from conftest import run_python


class _Item:
    def __init__(self, name, large):
        self.name, self.large = name, large

    def get_closest_marker(self, name):
        return object() if name == 'large' and self.large else None


def test_large_first_keeps_collection_order_in_each_lane():
    items = [_Item('a', False), _Item('B', True), _Item('c', False),
             _Item('D', True), _Item('e', False)]
    assert [i.name for i in conftest.large_first(items)] == [
        'B', 'D', 'a', 'c', 'e']


# Two files that hold tests of both lanes (collecting all of tests/ takes
# 10 s a time).
FILES = ('tests/test_distribute.py', 'tests/test_budget_compare.py')


def _collected(*args):
    res = run_python('-m', 'pytest', '--co', '-q', '-p', 'no:cacheprovider',
                     *args, *FILES, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    return [line for line in res.stdout.splitlines() if '::' in line]


def test_both_lanes_run_every_test_once_with_the_large_ones_first():
    fast, large = _collected(), _collected('-m', 'large')
    both = _collected('--run_large')
    assert fast and large and not set(fast) & set(large)
    assert sorted(both) == sorted(fast + large)
    assert both[:len(large)] == large  # large first, in collection order
    assert both[len(large):] == fast
    # CI runs this session, one test at a time per worker.
    ci = open(f'{REPO}/.ci/run').read()
    assert 'pytest -n 2 --run_large --maxschedchunk=1 tests' in ci
