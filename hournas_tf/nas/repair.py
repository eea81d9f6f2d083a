"""Greedy repair: single-layer op changes until every target is met.

The search reports how far it landed by itself (`before_repair`); repair is
the visible safety net that moves an architecture into the tolerance box
when stage 2 drifted (pure numpy).
"""

import numpy as np

from hournas_tf.resources.tables import check_objective


def _log_softmax(logits, mask):
    logits = np.where(mask, np.asarray(logits, np.float64), -np.inf)
    top = logits.max(axis=-1, keepdims=True)
    shifted = logits - top
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def repair(table, columns, logits, targets, tol=0.03):
    """Greedy single-row fixes until `columns` (rows,) meets `targets`.

    Each step applies the op change that most reduces the summed relative
    miss sum_i |R_i - T_i| / T_i; if some changes already land within `tol`,
    the one with the smallest drop in log-probability under softmax(`logits`)
    (rows, cols) is taken instead, and exact ties in the miss also go to the
    smaller drop (then to the lower row, column). Stops when within `tol` or
    when no change improves. Returns (new columns, sorted changed rows).
    """
    columns = np.array(columns, dtype=np.int64)
    original = columns.copy()
    objectives = list(targets)
    for obj in objectives:
        check_objective(table, obj)
    mask = np.asarray(table.mask, dtype=bool)
    rows = np.arange(len(columns))
    goal = np.array([targets[o] for o in objectives], dtype=np.float64)
    values = np.stack([np.asarray(table.values[o], np.float64)
                       for o in objectives])             # (n, rows, cols)
    fixed = np.array([table.fixed[o] for o in objectives], np.float64)
    logp = _log_softmax(logits, mask)
    for _ in range(4 * values[0].size):
        current = fixed + values[:, rows, columns].sum(axis=-1)   # (n,)
        miss = np.abs(current - goal) / goal
        if (miss <= tol).all():
            break
        delta = values - values[:, rows, columns][:, :, None]
        new = current[:, None, None] + delta               # (n, rows, cols)
        new_miss = np.abs(new - goal[:, None, None]) / goal[:, None, None]
        error = new_miss.sum(axis=0)
        drop = logp[rows, columns][:, None] - logp
        allowed = mask.copy()
        allowed[rows, columns] = False
        feasible = allowed & (new_miss <= tol).all(axis=0)
        if feasible.any():
            keys = (np.where(feasible, drop, np.inf),
                    np.where(feasible, error, np.inf))
        else:
            better = allowed & (error < miss.sum() - 1e-12)
            if not better.any():
                break
            keys = (np.where(better, np.round(error, 12), np.inf),
                    np.where(better, drop, np.inf))
        # np.lexsort sorts by the last key first; flat order breaks ties.
        flat = np.lexsort((np.arange(error.size), keys[1].ravel(),
                           keys[0].ravel()))[0]
        r, c = np.unravel_index(flat, error.shape)
        columns[r] = c
    changed = tuple(int(r) for r in np.flatnonzero(columns != original))
    return columns, changed
