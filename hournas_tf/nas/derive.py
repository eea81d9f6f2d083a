"""Derivation: from a searched supernet to architectures, before and after
repair, and the standalone Keras model with the supernet's weights.

Every proposal gives one architecture (the model family); the most probable
proposal gives the result. Each is reported as the search left it
(`before_repair`) and, when `repair` is on and it misses a target by more
than the tolerance, after the greedy repair (`repair.py`), so a miss of the
search itself is never hidden.
"""

import dataclasses

import numpy as np

from hournas_tf.nas import repair as repair_lib
from hournas_tf.resources import counting
from hournas_tf.resources import tables
from hournas_tf.resources.latency import OBJECTIVE as LATENCY
from hournas_tf.spaces import architecture as arch_lib


def space_params(space):
    """The architecture parameters of a space instance."""
    return dict(image_size=space.image_size, num_classes=space.num_classes,
                width_multiplier=space.width_multiplier)


def evaluate(space, ops_by_layer, targets, tolerance, latency=None):
    """(Architecture, report) of one op per layer: `ops`, `achieved`,
    `relative_error`, `within_tolerance` (`latency`: the latency table of a
    `latency_ms` target)."""
    arch = arch_lib.Architecture(
        space.name, [ops_by_layer[i] for i in range(len(space.layers))],
        **space_params(space))
    total = counting.arch_cost(arch).total
    achieved = {obj: latency.predict_ms(arch.ops) if obj == LATENCY
                else total.get(obj) for obj in targets}
    errors = tables.relative_errors(achieved, targets)
    return arch, {
        'ops': list(arch.ops),
        'achieved': achieved,
        'relative_error': errors,
        'within_tolerance': all(abs(e) <= tolerance
                                for e in errors.values()),
    }


@dataclasses.dataclass(frozen=True)
class Derived:
    """One derived architecture and its report (the `search` entry)."""

    arch: arch_lib.Architecture
    entry: dict


def derive_one(space, table, searched, fixed_ops, columns, probabilities,
               targets, tolerance, repair=True):
    """The architecture of `columns` (one per searched row), repaired if
    `repair` and it misses a target.

    Args:
        space: the `SearchSpace`.
        table: the `ResourceTable` of the `searched` rows.
        searched: searched layer indices (rows of `table`).
        fixed_ops: {layer index: op} of every other layer.
        columns: (rows,) op columns chosen by the search.
        probabilities: (rows, cols) op distribution the columns came from
            (repair prefers probable ops).
        targets: {objective: value}.
        tolerance: relative tolerance.
        repair: run the greedy repair when the choice misses a target.

    Returns:
        A `Derived` whose entry has the final `ops`, `achieved`,
        `relative_error`, `within_tolerance`, `before_repair` (the same
        four for the search's own choice) and `repaired_layers`.
    """
    def ops_of(cols):
        ops = dict(fixed_ops)
        ops.update({i: space.op_names[c] for i, c in zip(searched, cols)})
        return ops

    arch, before = evaluate(space, ops_of(columns), targets, tolerance,
                            table.latency)
    changed = ()
    if repair and not before['within_tolerance']:
        logits = np.log(np.maximum(probabilities, 1e-12))
        columns, changed = repair_lib.repair(table, columns, logits, targets,
                                             tolerance)
        arch, after = evaluate(space, ops_of(columns), targets, tolerance,
                               table.latency)
    else:
        after = before
    entry = {**after, 'before_repair': before,
             'repaired_layers': [searched[r] + 1 for r in changed]}
    return Derived(arch, entry)


DRAWS = 10_000


def most_probable_in_budget(table, probabilities, targets, tolerance,
                            seed=0, draws=DRAWS):
    """The most probable architecture within tolerance of every target.

    Candidates are the row-wise argmax of `probabilities` (rows, cols) and
    `draws` architectures drawn from it (numpy, `seed`); returns the
    columns (rows,) of the candidate with the highest log-probability
    among those within tolerance, or None if none is.
    """
    probabilities = np.asarray(probabilities, np.float64)
    logp = np.log(np.maximum(probabilities, 1e-300))
    rng = np.random.default_rng(seed)
    noise = rng.gumbel(size=(draws,) + probabilities.shape)
    drawn = np.argmax(np.where(probabilities > 0, logp, -np.inf) + noise,
                      axis=-1)
    candidates = np.concatenate([probabilities.argmax(-1)[None], drawn])
    ok = tables.within(tables.totals(table, candidates), targets, tolerance)
    if not ok.any():
        return None
    rows = np.arange(probabilities.shape[0])
    score = logp[rows, candidates].sum(axis=-1)
    return candidates[np.flatnonzero(ok)[np.argmax(score[ok])]]


def rows_changed(start_columns, columns, rows):
    """Per proposal, the layer numbers (1-based) whose column in `columns`
    (m, rows) differs from `start_columns` (m, rows)."""
    start = np.asarray(start_columns)
    now = np.asarray(columns)
    return [[int(rows[r]) + 1 for r in np.flatnonzero(start[j] != now[j])]
            for j in range(now.shape[0])]


def derive_family(supernet, table, fixed_ops, targets, tolerance,
                  repair=True, derive='argmax', seed=0, safety_net=None):
    """One `Derived` per proposal of a searched supernet (index j =
    proposal j), each entry with its `proposal` and `probability`.

    `derive`: 'argmax' takes each row's most probable op (the paper);
    'in_budget' the most probable architecture within tolerance of every
    target (`most_probable_in_budget`; the argmax when it is within), else
    the argmax. `safety_net[j]`: the layer numbers whose logits the
    proposals' safety net changed before stage 2; such a proposal counts
    as not within tolerance before repair (`before_repair`), and its entry
    lists them as `proposal_repaired_layers`.
    """
    pi = supernet.proposal_probabilities()
    per_proposal = supernet.proposal_op_probabilities()
    family = []
    for j, columns in enumerate(supernet.arch_params.derive_all()):
        if derive == 'in_budget':
            found = most_probable_in_budget(table, per_proposal[j], targets,
                                            tolerance, seed + j)
            columns = columns if found is None else found
        derived = derive_one(supernet.space, table, supernet.searched,
                             fixed_ops, columns, per_proposal[j], targets,
                             tolerance, repair)
        entry = {'proposal': j, 'probability': float(pi[j]),
                 'architecture': derived.arch.to_string(), **derived.entry}
        fixed_first = list(safety_net[j]) if safety_net else []
        if fixed_first:
            entry['proposal_repaired_layers'] = fixed_first
            entry['before_repair'] = {**entry['before_repair'],
                                      'within_tolerance': False}
        family.append(Derived(derived.arch, entry))
    return family


def standalone_model(supernet, arch):
    """`build_model(arch)` with the weights of its ops in `supernet`.

    Stem, head, classifier and, per layer, the branch (or fixed op) of the
    chosen op; batch-norm moving statistics come along as the supernet
    accumulated them (recalibrate them before trusting accuracy).
    Raises KeyError if the supernet lacks an op of `arch`.
    """
    from hournas_tf.blocks import model as model_lib
    from hournas_tf.nas.supernet import layer_name

    model = model_lib.build_model(arch)
    ops = supernet.op_layers()
    model.get_layer('stem').set_weights(supernet.stem.get_weights())
    model.get_layer('head').set_weights(supernet.head.get_weights())
    model.get_layer('classifier').set_weights(
        supernet.classifier.get_weights())
    for i, op in enumerate(arch.ops):
        weights = ops[(i, op)].get_weights() if op != 'skip' else []
        if weights:
            model.get_layer(layer_name(i)).set_weights(weights)
    return model
