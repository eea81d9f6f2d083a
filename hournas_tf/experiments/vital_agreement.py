"""Does stage 1 choose its vital ops for a reason? Measured on an
ablation's cells (numpy, no TensorFlow).

If the vital ops stage 1 fixes were decided by the problem, searches of
the same problem would agree on them. Two measures, per row that runs
stage 1:

- **across seeds:** the share of (seed pair, vital layer) with the same
  op, against the share that uniform picks give (1 / the layer's
  candidates) and a Monte Carlo p-value of agreeing at least that often
  under uniform picks;
- **same seed, another row:** the share of (seed, vital layer) where the
  default's vital op is the other row's, against the same share with the
  other row's seeds shuffled (a permutation p-value). Rows that share
  the default's stage-1 settings (e.g. `m1`, whose only change is the
  number of proposals) run the same stage 1 from the same seed.

The `random` row (uniform over every layer, within the budget) draws its
vital ops at random: its agreement is the measured chance level.
"""

import numpy as np

from hournas_tf.spaces.architecture import Architecture

# Rows that copy another row's vital ops (no stage 1 of their own).
COPIES = ('no_stage2', 'random_best_of_k')


def vital_ops_by_seed(cells):
    """({seed: (op of each vital layer)}, (candidates of each vital
    layer)) of a row's cells ('seed', 'architecture'); cells without
    an architecture are left out."""
    ops, counts = {}, None
    for cell in cells:
        if not cell.get('architecture'):
            continue
        arch = Architecture.from_string(cell['architecture'])
        space = arch.search_space()
        vital = space.vital_layers
        ops[cell['seed']] = tuple(arch.ops[i] for i in vital)
        counts = tuple(len(space.layers[i].candidates) for i in vital)
    return ops, counts


def _pair_agreement(codes, levels):
    """Share of (seed pair, layer) with the same op. codes: [..., seeds,
    layers] integer op codes below `levels`; returns [...]."""
    codes = np.asarray(codes)
    n, layers = codes.shape[-2:]
    counts = (codes[..., None] == np.arange(levels)).sum(axis=-3)
    same = (counts * (counts - 1) / 2).sum(axis=(-2, -1))
    return same / (n * (n - 1) / 2 * layers)


def across_seeds(ops_by_seed, candidates, draws=10000, seed=0):
    """{'seeds', 'agreement', 'chance', 'p', 'modal_share'} of one row:
    `p` is the chance of an agreement at least as high when every seed
    picks every layer's op uniformly (Monte Carlo, `draws` draws);
    `modal_share` the mean share of seeds that picked each layer's most
    frequent op."""
    names = sorted(ops_by_seed)
    if len(names) < 2:
        return None
    rows = [ops_by_seed[s] for s in names]
    vocabulary = sorted({op for r in rows for op in r})
    codes = [[vocabulary.index(op) for op in r] for r in rows]
    levels = max(len(vocabulary), *candidates)
    observed = float(_pair_agreement(codes, levels))
    rng = np.random.default_rng(seed)
    fake = np.stack([rng.integers(0, k, (draws, len(names)))
                     for k in candidates], axis=-1)
    hits = int((_pair_agreement(fake, levels) >= observed - 1e-12).sum())
    modal = [max(col.count(op) for op in set(col)) / len(col)
             for col in map(list, zip(*rows))]
    return {'seeds': len(names), 'agreement': observed,
            'chance': float(np.mean([1.0 / k for k in candidates])),
            'p': (hits + 1) / (draws + 1),
            'modal_share': float(np.mean(modal))}


def same_seed(a, b, permutations=10000, seed=0):
    """{'seeds', 'agreement', 'shuffled', 'p'}: how often rows `a` and `b`
    ({seed: vital ops}) pick the same op of a vital layer for the same
    seed, the mean of that share with `b`'s seeds shuffled, and the
    permutation p-value of an agreement at least as high."""
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    x = np.asarray([a[s] for s in common])
    y = np.asarray([b[s] for s in common])
    observed = float(np.mean(x == y))
    rng = np.random.default_rng(seed)
    shuffled = [float(np.mean(x == y[rng.permutation(len(common))]))
                for _ in range(permutations)]
    hits = sum(s >= observed - 1e-12 for s in shuffled)
    return {'seeds': len(common), 'agreement': observed,
            'shuffled': float(np.mean(shuffled)),
            'p': (hits + 1) / (permutations + 1)}


def analyze(results, default='hournas'):
    """{'across_seeds': {row: ...}, 'same_seed': {row: ...}} of an
    ablation's `results` ({row: [cell, ...]}); rows without a stage 1 of
    their own are left out, and `same_seed` compares every other row
    with `default`. Empty when no cell has a vital layer."""
    by_row, candidates = {}, None
    for row, cells in results.items():
        if row in COPIES or not cells:
            continue
        by_row[row], counts = vital_ops_by_seed(cells)
        candidates = candidates or counts
    by_row = {row: ops for row, ops in by_row.items() if ops}
    if not candidates:
        return {}
    out = {'across_seeds': {}, 'same_seed': {}}
    for row, ops in by_row.items():
        stat = across_seeds(ops, candidates)
        if stat:
            out['across_seeds'][row] = stat
        if row != default and default in by_row:
            stat = same_seed(by_row[default], ops)
            if stat:
                out['same_seed'][row] = stat
    return out


def lines(agreement, labels=None):
    """Markdown bullets of `analyze()`'s result (`labels`: row names)."""
    labels = labels or {}
    out = []
    for row, s in agreement.get('across_seeds', {}).items():
        out.append(
            f'{labels.get(row, row)}: across its {s["seeds"]} seeds, '
            f'{s["agreement"]:.0%} of (seed pair, vital layer) share the '
            f'op (uniform picks: {s["chance"]:.0%}; p = {s["p"]:.3g} '
            'under uniform picks); the most frequent op of a layer is '
            f'picked by {s["modal_share"]:.0%} of the seeds on average.')
    for row, s in agreement.get('same_seed', {}).items():
        out.append(
            f'{labels.get(row, row)} against the default, same seed: '
            f'{s["agreement"]:.0%} of (seed, vital layer) share the op '
            f'({s["shuffled"]:.0%} with the seeds shuffled; permutation '
            f'p = {s["p"]:.3g}, {s["seeds"]} seeds).')
    return out
