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


def derive_family(supernet, table, fixed_ops, targets, tolerance,
                  repair=True):
    """One `Derived` per proposal of a searched supernet (index j =
    proposal j), each entry with its `proposal` and `probability`."""
    pi = supernet.proposal_probabilities()
    per_proposal = supernet.proposal_op_probabilities()
    family = []
    for j, columns in enumerate(supernet.arch_params.derive_all()):
        derived = derive_one(supernet.space, table, supernet.searched,
                             fixed_ops, columns, per_proposal[j], targets,
                             tolerance, repair)
        entry = {'proposal': j, 'probability': float(pi[j]),
                 'architecture': derived.arch.to_string(), **derived.entry}
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
