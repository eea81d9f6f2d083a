"""The resource budget of a supernet: expected totals, the resource loss
(eq. 6) and whether sampled architectures land within tolerance (TF).

A `Budget` holds a `ResourceTable` whose rows are the supernet's searched
layers (its `fixed` part: stem, head, classifier and the layers whose op is
fixed), the targets and the tolerance. `free` gives, per objective, the
(min, max) that layers absent from the supernet can still add once they are
searched later: stage 1 holds only the vital layers, and a sampled vital
choice counts as within tolerance when some choice of the non-vital layers
completes it to an architecture within tolerance of every target.
"""

import dataclasses

import tensorflow as tf

from hournas_tf.common.errors import UserError
from hournas_tf.resources import tables


@dataclasses.dataclass(frozen=True)
class Budget:
    """Targets over the rows of `table`; see the module docstring."""

    table: tables.ResourceTable
    targets: dict
    tolerance: float = 0.03
    free: dict = None  # {objective: (min, max)} of layers searched later

    def __post_init__(self):
        if not self.targets:
            raise UserError('a budget needs at least one target')
        for objective in self.targets:
            tables.check_objective(self.table, objective)
        if not 0 < self.tolerance < 1:
            raise UserError(
                f'tolerance={self.tolerance!r} must be in (0, 1)')


def expected_totals(table, weights):
    """R_i(A) = fixed_i + sum(A * F_i) for op weights (..., rows, cols).

    Differentiable and batched over the leading dims of `weights`.
    """
    weights = tf.convert_to_tensor(weights)
    if not weights.dtype.is_floating:
        weights = tf.cast(weights, tf.float32)
    result = {}
    for objective in table.objectives:
        values = tf.constant(table.values[objective], dtype=weights.dtype)
        result[objective] = (
            tf.constant(table.fixed[objective], dtype=weights.dtype)
            + tf.reduce_sum(weights * values, axis=[-2, -1]))
    return result


def _per_row_terms(table, targets, weights, free_within):
    scale = tables.normalizers(table, targets)
    totals = expected_totals(table, weights)
    terms = [tf.nn.relu(tf.abs(totals[obj] - target) - free_within * target)
             / scale[obj] for obj, target in targets.items()]
    return tf.add_n(terms) / len(terms)


def expected_resource_loss(table, targets, probabilities, proposal_weights,
                           free_within=0.0):
    """sum_j w_j L(E_j[R]): the resource loss (`resource_loss`) of each
    proposal's expected totals under its op probabilities (m, rows, cols),
    weighted by `proposal_weights` (m,) (pi's probabilities).

    Deterministic and smooth: with `free_within` it is zero while every
    proposal's expected totals stay inside the box, and then only the
    other losses move the architecture."""
    for objective in targets:
        tables.check_objective(table, objective)
    per = _per_row_terms(table, targets, probabilities, free_within)
    weights = tf.cast(proposal_weights, per.dtype)
    return tf.reduce_sum(weights * per)


def resource_loss(table, targets, weights, free_within=0.0):
    """mean_i |R_i(A) - T_i| / M_i (eq. 6), averaged over leading dims.

    With `free_within` = d > 0, misses up to d * T_i cost nothing:
    max(0, |R_i - T_i| - d T_i) / M_i, so that inside that box only the
    other losses move the architecture (d = the tolerance: zero for any
    architecture within tolerance of every target).
    """
    for objective in targets:
        tables.check_objective(table, objective)
    return tf.reduce_mean(_per_row_terms(table, targets, weights,
                                         free_within))


def within_tolerance(budget, weights):
    """1.0 where the architecture drawn as `weights` (..., rows, cols) is
    within tolerance of every target (argmax per row; with `budget.free`,
    where it can still be completed to one), else 0.0."""
    weights = tf.convert_to_tensor(weights)
    hard = tf.one_hot(tf.argmax(weights, axis=-1), tf.shape(weights)[-1],
                      dtype=tf.float32)
    totals = expected_totals(budget.table, hard)
    ok = None
    for objective, target in budget.targets.items():
        low, high = (budget.free or {}).get(objective, (0.0, 0.0))
        tol = budget.tolerance * target
        hit = tf.logical_and(totals[objective] + low <= target + tol,
                             totals[objective] + high >= target - tol)
        ok = hit if ok is None else tf.logical_and(ok, hit)
    return tf.cast(ok, tf.float32)
