"""Uniform random architectures within tolerance of the targets (the
random-search baseline; numpy only).

Every free layer draws one of its candidate ops uniformly (the space's
prior, skip included where it is a candidate); an architecture is kept only
when it is within `tolerance` of every target. Layers in `fixed_ops` keep
their op (e.g. the vital ops a search fixed); `allowed_ops` limits a
free layer to some of its ops (e.g. those a supernet trained).
"""

import numpy as np

from hournas_tf.common.errors import UserError
from hournas_tf.nas import derive as derive_lib
from hournas_tf.resources import tables


def sample_within(space, targets, tolerance, count, seed, fixed_ops=None,
                  batch=100_000, max_draws=10_000_000, allowed_ops=None):
    """`count` distinct uniform random `Architecture`s within tolerance;
    `allowed_ops` {layer index: op names} draws those layers uniformly
    from these ops only.

    Returns (architectures, share of the draws within tolerance). Raises
    UserError when fewer than `count` are found in `max_draws` draws.
    """
    fixed_ops = dict(fixed_ops or {})
    free = [i for i in range(len(space.layers)) if i not in fixed_ops]
    table = tables.resource_table(space, free, fixed_ops, tuple(targets))
    rng = np.random.default_rng(seed)
    choices = [np.flatnonzero(table.mask[r]) for r in range(len(free))]
    for r, i in enumerate(free):
        if allowed_ops is not None and i in allowed_ops:
            keep = set(allowed_ops[i])
            choices[r] = np.array([c for c in choices[r]
                                   if space.op_names[c] in keep], int)
            if not len(choices[r]):
                raise UserError(f'layer {i} has none of its ops among '
                                f'the allowed {sorted(keep)}')
    found, seen, draws, hits = [], set(), 0, 0
    while len(found) < count and draws < max_draws:
        cols = np.stack([c[rng.integers(0, len(c), batch)]
                         for c in choices], axis=1)
        ok = tables.within(tables.totals(table, cols), targets, tolerance)
        draws += batch
        hits += int(ok.sum())
        for row in cols[ok]:
            key = tuple(row)
            if key in seen:
                continue
            seen.add(key)
            ops = dict(fixed_ops)
            ops.update({i: space.op_names[c] for i, c in zip(free, row)})
            found.append(derive_lib.evaluate(space, ops, targets,
                                             tolerance)[0])
            if len(found) == count:
                break
    if len(found) < count:
        raise UserError(f'only {len(found)} of {count} uniform random '
                        f'architectures within {tolerance:.0%} of the '
                        f'targets in {draws:,} draws')
    return found, hits / draws
