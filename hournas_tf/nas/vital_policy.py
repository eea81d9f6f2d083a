"""Vital-op policy: fixing the vital layers' ops between the two stages.

`resolve_vital_ops` reads `--vital_ops` (one op per vital layer, or `max`),
`max_vital_ops` picks the most expensive candidate, and `fit_vital_ops`
changes vital ops until every target stays reachable by the non-vital
layers (pure Python).
"""

from hournas_tf.common.errors import UserError
from hournas_tf.nas.stages import nonvital_layers
from hournas_tf.resources import counting
from hournas_tf.resources import tables


def max_vital_ops(space):
    """The most expensive candidate (by MACs) at every vital layer."""
    ops = {}
    for i in space.vital_layers:
        cands = space.layers[i].candidates
        ops[i] = max(cands, key=lambda op: counting.op_cost(space, i, op).macs)
    return ops


def resolve_vital_ops(space, spec):
    """Vital ops from `--vital_ops`: 'max' or one op per vital layer."""
    if spec in ('max', ('max',)):
        return max_vital_ops(space)
    spec = tuple(spec)
    vital = space.vital_layers
    if len(spec) != len(vital):
        raise UserError(f'--vital_ops has {len(spec)} ops but space '
                        f'{space.name!r} has {len(vital)} vital layers '
                        f'({[i + 1 for i in vital]}); or use max')
    for i, op in zip(vital, spec):
        space.check_op(i, op)
    return dict(zip(vital, spec))


def fit_vital_ops(space, vital_ops, targets, probabilities=None,
                  latency=None):
    """Keeps the targets reachable by the non-vital layers.

    If the fixed vital ops make a target infeasible for the rest of the
    network, the vital op change that most reduces the violation (ties: the
    most probable op) is applied until every target is feasible. Returns the
    (possibly changed) ops and the changed layer indices. `latency`: the
    latency table of a `latency_ms` target. `targets` may also be a list
    of target dicts (several budgets, `budgets.py`): every one must stay
    reachable with the same vital ops.
    """
    nonvital = nonvital_layers(space)
    ops = dict(vital_ops)
    target_sets = [targets] if isinstance(targets, dict) else list(targets)
    objectives = tuple(dict.fromkeys(o for t in target_sets for o in t))

    def violation(candidate_ops):
        table = tables.resource_table(space, nonvital, candidate_ops,
                                      objectives, latency)
        total = 0.0
        for one in target_sets:
            for obj, target in one.items():
                lo, hi = tables.feasible_range(table, obj)
                total += max(0.0, lo - target, target - hi) / target
        return total

    changed = []
    current = violation(ops)
    while current > 0:
        best = None
        for i in vital_ops:
            for op in space.layers[i].candidates:
                if op == ops[i]:
                    continue
                v = violation({**ops, i: op})
                p = 0.0 if probabilities is None else \
                    probabilities.get(i, {}).get(op, 0.0)
                key = (v, -p)
                if best is None or key < best[0]:
                    best = (key, i, op)
        if best is None or best[0][0] >= current:
            raise UserError('the targets cannot be reached with any choice '
                            'of vital ops')
        current, i, op = best[0][0], best[1], best[2]
        ops[i] = op
        changed.append(i)
    return ops, sorted(set(changed))
