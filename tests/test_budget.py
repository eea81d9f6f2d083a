import itertools

import numpy as np
import pytest
import tensorflow as tf

from hournas_tf.common.errors import UserError
from hournas_tf.nas import budget as budget_lib
from hournas_tf.resources import tables
from hournas_tf.resources.tables import ResourceTable


def tiny_table():
    """3 rows x 3 ops, one op masked out, two objectives."""
    mask = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], bool)
    macs = np.array([[10., 30., 55.], [5., 0., 40.], [0., 12., 25.]])
    params = np.array([[1., 4., 2.], [3., 0., 9.], [0., 7., 1.]])
    return ResourceTable(('macs', 'params'), (1, 2, 4), ('a', 'b', 'c'),
                         {'macs': macs * mask, 'params': params * mask},
                         mask, {'macs': 100.0, 'params': 10.0})


def all_columns(table):
    return list(itertools.product(*[np.flatnonzero(r) for r in table.mask]))


def test_normalizers_are_the_maximum():
    table = tiny_table()
    brute = tables.totals(table, np.array(all_columns(table)))
    scale = tables.normalizers(table, {'macs': 150.0})
    assert scale == {'macs': max(brute['macs'])}


def test_expected_totals_and_resource_loss():
    table = tiny_table()
    columns = np.array([[0, 2, 1], [2, 0, 0]])
    weights = tf.Variable(np.eye(3)[columns])          # (2, rows, cols)
    targets = {'macs': 150.0, 'params': 20.0}
    with tf.GradientTape() as tape:
        got = budget_lib.expected_totals(table, weights)
        loss = budget_lib.resource_loss(table, targets, weights)
    exact = tables.totals(table, columns)
    for obj in table.objectives:
        np.testing.assert_allclose(got[obj].numpy(), exact[obj])
    scale = tables.normalizers(table, targets)
    manual = np.mean([np.mean([abs(exact[o][k] - t) / scale[o]
                               for o, t in targets.items()])
                      for k in range(2)])
    np.testing.assert_allclose(loss.numpy(), manual, rtol=1e-6)
    assert np.abs(tape.gradient(loss, weights).numpy()).max() > 0


def test_resource_loss_is_free_inside_the_slack():
    table = tiny_table()
    columns = np.array([[0, 2, 1]])
    exact = tables.totals(table, columns)
    weights = tf.Variable(np.eye(3)[columns])
    # Targets 2% off the architecture: inside a 3% box, outside a 1% one.
    targets = {o: float(exact[o][0]) * 1.02 for o in table.objectives}
    with tf.GradientTape(persistent=True) as tape:
        inside = budget_lib.resource_loss(table, targets, weights, 0.03)
        outside = budget_lib.resource_loss(table, targets, weights, 0.01)
    assert inside.numpy() == 0.0
    assert np.abs(tape.gradient(inside, weights).numpy()).max() == 0.0
    scale = tables.normalizers(table, targets)
    manual = np.mean([(t - exact[o][0] - 0.01 * t) / scale[o]
                      for o, t in targets.items()])
    np.testing.assert_allclose(outside.numpy(), manual, rtol=1e-5)
    assert np.abs(tape.gradient(outside, weights).numpy()).max() > 0


def test_expected_resource_loss_weights_each_proposal():
    table = tiny_table()
    columns = np.array([[0, 2, 1], [2, 0, 0]])
    probs = tf.Variable(np.eye(3)[columns] * 0.6 + 0.4 / 3 * table.mask)
    pi = tf.Variable([0.25, 0.75], dtype=tf.float64)
    targets = {'macs': 150.0, 'params': 20.0}
    with tf.GradientTape() as tape:
        loss = budget_lib.expected_resource_loss(table, targets, probs, pi)
    per = [budget_lib.resource_loss(table, targets, probs[j:j + 1]).numpy()
           for j in range(2)]
    np.testing.assert_allclose(loss.numpy(), 0.25 * per[0] + 0.75 * per[1],
                               rtol=1e-6)
    grads = tape.gradient(loss, [probs, pi])
    assert all(np.abs(g.numpy()).max() > 0 for g in grads)
    # Inside a wide box: zero loss, no gradient to either.
    with tf.GradientTape() as tape:
        free = budget_lib.expected_resource_loss(table, targets, probs, pi,
                                                 free_within=10.0)
    assert free.numpy() == 0.0
    grads = tape.gradient(free, [probs, pi])
    assert all(np.abs(g.numpy()).max() == 0 for g in grads)


def test_within_tolerance_equals_the_exact_check_on_every_architecture():
    table = tiny_table()
    columns = np.array(all_columns(table))
    exact_totals = tables.totals(table, columns)
    targets = {obj: float(exact_totals[obj][5]) for obj in table.objectives}
    budget = budget_lib.Budget(table, targets, 0.05)
    # Soft weights whose argmax is the architecture (as gumbel_softmax).
    weights = np.eye(3)[columns] * 0.7 + 0.1
    got = budget_lib.within_tolerance(budget, weights).numpy()
    exact = tables.within(tables.totals(table, columns), targets, 0.05)
    np.testing.assert_array_equal(got.astype(bool), exact)
    assert 0 < exact.sum() < len(exact)  # the check is not trivial


def test_within_tolerance_with_free_layers_means_completable():
    table = tiny_table()
    targets = {'macs': 200.0}
    columns = np.array(all_columns(table))
    base = tables.totals(table, columns)['macs']
    free = {'macs': (20.0, 60.0)}
    budget = budget_lib.Budget(table, targets, 0.03, free)
    got = budget_lib.within_tolerance(budget, np.eye(3)[columns]).numpy()
    expected = (base + 20.0 <= 206.0) & (base + 60.0 >= 194.0)
    np.testing.assert_array_equal(got.astype(bool), expected)
    assert 0 < expected.sum() < len(expected)


def test_budget_rejects_bad_values():
    table = tiny_table()
    with pytest.raises(UserError, match='unknown objective'):
        budget_lib.Budget(table, {'latency_ms': 3.0})
    with pytest.raises(UserError, match='tolerance'):
        budget_lib.Budget(table, {'macs': 3.0}, tolerance=0.0)
    with pytest.raises(UserError, match='at least one target'):
        budget_lib.Budget(table, {})


def test_free_range_is_the_rows_alone():
    table = tiny_table()
    low, high = tables.free_range(table, 'macs')
    brute = tables.totals(table, np.array(all_columns(table)))['macs'] - 100.0
    assert (low, high) == (brute.min(), brute.max())
