"""Resource tables: per-(layer, op) costs, feasibility and exact totals.

A `ResourceTable` holds, for some searchable layers (rows) and the space's op
vocabulary (columns), the cost of every candidate for each objective, plus the
fixed cost of everything else; it is generic over objectives (`macs`,
`params`, `weights`, `keras_params`; a latency table adds `latency_ms`,
see `latency.py`).
Pure Python + numpy.
"""

import dataclasses

import numpy as np

from hournas_tf.common.errors import UserError
from hournas_tf.common.errors import choices
from hournas_tf.resources.counting import OBJECTIVES
from hournas_tf.resources.counting import classifier_cost
from hournas_tf.resources.counting import head_cost
from hournas_tf.resources.counting import human
from hournas_tf.resources.counting import op_cost
from hournas_tf.resources.counting import stem_cost
from hournas_tf.resources.latency import OBJECTIVE as LATENCY


@dataclasses.dataclass(frozen=True)
class ResourceTable:
    """Per-(layer, op) costs of some searchable layers, generic over objectives.

    Rows are `layer_indices`, columns the space's `op_names`; `values[obj]` is
    zero where `mask` is False. `fixed[obj]` is the cost of everything else
    (stem, head, classifier and the layers whose op is fixed), so `total`
    gives whole-network numbers.
    """

    objectives: tuple
    layer_indices: tuple
    op_names: tuple
    values: dict
    mask: np.ndarray
    fixed: dict
    latency: object = None  # the LatencyTable of `latency_ms`, if any

    def total(self, objective, columns):
        """Whole-network cost of one op column per row."""
        rows = np.arange(len(self.layer_indices))
        return float(self.fixed[objective]
                     + self.values[objective][rows, np.asarray(columns)].sum())

    def columns_of(self, ops):
        """Column indices of op names, one per row."""
        return [self.op_names.index(op) for op in ops]


def resource_table(space, layer_indices=None, fixed_ops=None,
                   objectives=('macs', 'params'), latency=None):
    """Builds the `ResourceTable` of `layer_indices` (default: all layers).

    `fixed_ops` maps every other layer index to its op; those costs go into
    `fixed` with the stem, head and classifier. A layer neither in the rows
    nor in `fixed_ops` is treated as removed (zero cost). `latency`: a
    `latency.LatencyTable` of `space`, needed by the `latency_ms` objective.
    """
    for obj in objectives:
        if obj == LATENCY and latency is None:
            raise UserError(f'objective {LATENCY} needs a latency table')
        if obj not in OBJECTIVES and obj != LATENCY:
            raise UserError(f'unknown objective {obj!r}; valid: '
                            f'{", ".join(OBJECTIVES + (LATENCY,))}')
    if latency is not None:
        latency.check_space(space)
    if layer_indices is None:
        layer_indices = range(len(space.layers))
    layer_indices = tuple(layer_indices)
    names = space.op_names
    mask = np.array(space.candidate_mask(), dtype=bool)[list(layer_indices)]
    values = {obj: np.zeros(mask.shape) for obj in objectives}
    for r, i in enumerate(layer_indices):
        for c, op in enumerate(names):
            if mask[r, c]:
                cost = op_cost(space, i, op)
                for obj in objectives:
                    values[obj][r, c] = latency.op_ms(i, op) \
                        if obj == LATENCY else cost.get(obj)
    fixed_ops = fixed_ops or {}
    fixed_cost = stem_cost(space) + head_cost(space) + classifier_cost(space)
    for i, op in fixed_ops.items():
        fixed_cost += op_cost(space, i, op)
    fixed = {obj: float(fixed_cost.get(obj)) for obj in objectives
             if obj != LATENCY}
    if LATENCY in objectives:
        fixed[LATENCY] = latency.fixed_ms() + sum(
            latency.op_ms(i, op) for i, op in fixed_ops.items())
    return ResourceTable(tuple(objectives), layer_indices, names, values,
                         mask, fixed, latency)


def check_objective(table, objective):
    if objective not in table.objectives:
        raise UserError(
            f'unknown objective {objective!r}; this table has '
            f'{choices(table.objectives)}')


def feasible_range(table, objective):
    """(min_total, max_total) of `objective` over all architectures, exact."""
    check_objective(table, objective)
    mask = np.asarray(table.mask, dtype=bool)
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size:
        raise UserError(
            f'layer {table.layer_indices[empty[0]] + 1} has no candidate op')
    values = np.asarray(table.values[objective], dtype=np.float64)
    low = np.where(mask, values, np.inf).min(axis=1).sum()
    high = np.where(mask, values, -np.inf).max(axis=1).sum()
    fixed = float(table.fixed[objective])
    return fixed + float(low), fixed + float(high)


def check_targets(table, targets):
    """Raises UserError for an unknown objective or an unreachable target."""
    if not targets:
        raise UserError(
            f'no resource targets given; choose from '
            f'{choices(table.objectives)}')
    for objective, target in targets.items():
        check_objective(table, objective)
        if not target > 0:
            raise UserError(
                f'target {objective}={target!r} must be > 0')
        low, high = feasible_range(table, objective)
        if not low <= target <= high:
            raise UserError(
                f'target {objective}={human(target)} is outside the feasible '
                f'range [{human(low)}, {human(high)}] of the searched layers '
                f'plus the fixed part')


def totals(table, columns):
    """Exact whole-network totals {objective: (n,)} of (n, rows) columns."""
    columns = np.asarray(columns)
    rows = np.arange(columns.shape[-1])
    return {obj: float(table.fixed[obj])
            + np.asarray(table.values[obj])[rows, columns].sum(axis=-1)
            for obj in table.objectives}


def within(totals_, targets, tol=0.03):
    """True where |R_i - T_i| / T_i <= tol for every targeted objective."""
    ok = True
    for objective, target in targets.items():
        ok = ok & (np.abs(np.asarray(totals_[objective]) - target)
                   <= tol * target)
    return np.asarray(ok)


def normalizers(table, targets):
    """M_i of eq. 5: the maximum total of each targeted objective."""
    result = {}
    for objective in targets:
        high = feasible_range(table, objective)[1]
        result[objective] = high if high > 0 else 1.0
    return result


def free_range(table, objective):
    """(min, max) of `objective` over the table's rows alone (no fixed
    part): what the rows can still add when they are chosen later."""
    low, high = feasible_range(table, objective)
    fixed = float(table.fixed[objective])
    return low - fixed, high - fixed


def relative_errors(achieved, targets):
    """{objective: (achieved - target) / target}."""
    return {obj: (achieved[obj] - t) / t for obj, t in targets.items()}
