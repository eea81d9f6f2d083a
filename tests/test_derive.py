"""Derivation helpers: the most probable architecture in the budget and
the rows stage 2 changed."""

import itertools

import numpy as np
from test_budget import tiny_table

from hournas_tf.nas import derive
from hournas_tf.resources import tables


def test_most_probable_in_budget_is_the_best_feasible_architecture():
    table = tiny_table()
    rng = np.random.default_rng(3)
    probs = rng.random(table.mask.shape) * table.mask
    probs /= probs.sum(axis=-1, keepdims=True)
    every = np.array(list(itertools.product(
        *[np.flatnonzero(r) for r in table.mask])))
    tot = tables.totals(table, every)
    argmax = probs.argmax(-1)
    # Targets at an architecture other than the argmax.
    k = next(k for k in range(len(every))
             if not np.array_equal(every[k], argmax))
    targets = {o: float(tot[o][k]) for o in table.objectives}
    ok = tables.within(tot, targets, 0.03)
    logp = np.log(probs[np.arange(3), every]).sum(-1)
    best = every[np.flatnonzero(ok)[np.argmax(logp[ok])]]
    found = derive.most_probable_in_budget(table, probs, targets, 0.03)
    np.testing.assert_array_equal(found, best)
    # The argmax itself when it is within tolerance.
    targets = {o: float(tables.totals(table, argmax[None])[o][0])
               for o in table.objectives}
    np.testing.assert_array_equal(
        derive.most_probable_in_budget(table, probs, targets, 0.03), argmax)
    # Nothing within tolerance: None.
    assert derive.most_probable_in_budget(
        table, probs, {'macs': 1e6}, 0.03) is None


def test_rows_changed_lists_layer_numbers_per_proposal():
    start = np.array([[0, 1, 2], [2, 2, 2]])
    now = np.array([[0, 2, 2], [1, 2, 0]])
    assert derive.rows_changed(start, now, [4, 7, 9]) == [[8], [5, 10]]
    assert derive.rows_changed(start, start, [4, 7, 9]) == [[], []]
