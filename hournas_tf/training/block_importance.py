"""Block importance (HourNAS section 3.1, figure 2) of a trained model.

One block at a time (stem, every searchable layer, head), every channel of
its output is set to zero with probability p (independently per image and
channel, no rescaling), and the test accuracy is measured; the drop from
the unmasked accuracy, averaged over mask seeds, is the block's
importance at p. For a block with an identity shortcut, y = x + F(x), the
mask acts on its residual branch F(x) (the paper's non-vital blocks, which
can pass information around themselves); every other block's whole output
is masked. Vital blocks are the architecture's vital analysis
(`spaces/vital.py`: the blocks on every input-to-output path).

The model is run as the chain of its layers in one `tf.function`, with one
keep-probability per block as an input tensor, so it is traced once.
"""

import dataclasses
import statistics

import numpy as np

from hournas_tf.common.errors import UserError
from hournas_tf.spaces import vital as vital_lib

PROBABILITIES = (0.3, 0.6, 1.0)


@dataclasses.dataclass(frozen=True)
class Block:
    """One maskable block of a built model."""

    name: str         # 'stem', 'L3', 'head'
    layer: str        # the Keras layer name
    vital: bool
    residual: bool    # masked on its residual branch


def blocks(arch):
    """The maskable blocks of `arch`, in order, with their vital flags."""
    space = arch.search_space()
    vital = set(vital_lib.vital_blocks(vital_lib.block_graph(space)))
    out = [Block('stem', 'stem', 'stem' in vital, False)]
    for layer, op in zip(space.layers, arch.ops):
        # build_model's layer names (blocks/layers.make_op).
        out.append(Block(f'L{layer.index + 1}', f'layer{layer.index + 1:02d}',
                         f'layer{layer.index + 1}' in vital,
                         layer.has_shortcut))
    out.append(Block('head', 'head', 'head' in vital, False))
    return out


def check_model(model, arch):
    """Raises UserError unless `model` has the layers of `arch`."""
    names = {layer.name for layer in model.layers}
    missing = [b.layer for b in blocks(arch) if b.layer not in names]
    if missing:
        raise UserError(f'model {model.name!r} is not a hournas_tf model '
                        f'of {arch.space!r}: no layer(s) {missing[:3]}')


def masked_forward(model, arch):
    """f(images, drop_probabilities (n_blocks,), seed (2,)) -> logits, a
    `tf.function` over the chain of `model`'s layers."""
    import tensorflow as tf

    check_model(model, arch)
    chain = [layer for layer in model.layers
             if not isinstance(layer, tf.keras.layers.InputLayer)
             and layer.__class__.__name__ != 'InputLayer']
    index = {b.layer: (k, b.residual) for k, b in enumerate(blocks(arch))}

    @tf.function(reduce_retracing=True)
    def forward(images, drop, seed):
        x = images
        for layer in chain:
            y = layer(x, training=False)
            if layer.name in index:
                k, residual = index[layer.name]
                shape = tf.stack([tf.shape(y)[0], 1, 1, tf.shape(y)[-1]])
                keep = tf.cast(tf.random.stateless_uniform(
                    shape, seed + k) >= drop[k], y.dtype)
                y = x + keep * (y - x) if residual else keep * y
            x = y
        return x

    return forward


def accuracy(forward, dataset, drop, seed):
    """Top-1 accuracy of `forward` over (images, labels) batches."""
    import tensorflow as tf

    drop = tf.constant(drop, tf.float32)
    correct = total = 0
    for step, (images, labels) in enumerate(dataset):
        logits = forward(images, drop, tf.constant([seed, step], tf.int32))
        pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
        correct += int(tf.reduce_sum(tf.cast(
            pred == tf.cast(labels, tf.int32), tf.int32)))
        total += int(tf.shape(labels)[0])
    return correct / max(total, 1)


def importance(model, arch, dataset, probabilities=PROBABILITIES,
               seeds=(0, 1, 2)):
    """The accuracy drop of every block at every p, as a JSON-able dict."""
    items = blocks(arch)
    forward = masked_forward(model, arch)
    zeros = [0.0] * len(items)
    baseline = accuracy(forward, dataset, zeros, 0)
    rows = []
    for k, block in enumerate(items):
        drops = {}
        for p in probabilities:
            drop = list(zeros)
            drop[k] = float(p)
            accs = [accuracy(forward, dataset, drop, 1000 * (s + 1) + k)
                    for s in seeds]
            drops[f'{p:g}'] = {
                'accuracy': statistics.fmean(accs),
                'drop': baseline - statistics.fmean(accs),
                'per_seed': accs}
        rows.append({**dataclasses.asdict(block), 'drops': drops})
    return {'baseline_accuracy': baseline,
            'probabilities': [float(p) for p in probabilities],
            'seeds': list(seeds), 'blocks': rows, **summary(rows)}


def summary(rows):
    """Mean drop of vital and non-vital blocks (over blocks and p) and
    whether the vital ones lose more."""
    def mean(vital):
        values = [d['drop'] for r in rows if r['vital'] == vital
                  for d in r['drops'].values()]
        return statistics.fmean(values) if values else None

    vital, other = mean(True), mean(False)
    per_p = {}
    for p in rows[0]['drops'] if rows else ():
        v = [r['drops'][p]['drop'] for r in rows if r['vital']]
        o = [r['drops'][p]['drop'] for r in rows if not r['vital']]
        per_p[p] = {'vital': statistics.fmean(v) if v else None,
                    'non_vital': statistics.fmean(o) if o else None}
    return {'vital_mean_drop': vital, 'non_vital_mean_drop': other,
            'per_probability': per_p,
            'vital_lose_more': (vital is not None and other is not None
                                and vital > other)}


def plot(result, title, path):
    """Grouped bars: accuracy drop per block and p, vital blocks shaded."""
    from matplotlib.figure import Figure

    rows = result['blocks']
    ps = list(rows[0]['drops'])
    x = np.arange(len(rows))
    width = 0.8 / len(ps)
    fig = Figure(figsize=(max(6, 0.55 * len(rows) + 2), 4))
    ax = fig.subplots()
    for k, r in enumerate(rows):
        if r['vital']:
            ax.axvspan(k - 0.45, k + 0.45, color='#fde3c8', zorder=0)
    for j, p in enumerate(ps):
        ax.bar(x - 0.4 + (j + 0.5) * width,
               [100 * r['drops'][p]['drop'] for r in rows], width,
               label=f'p = {p}', zorder=2)
    ax.set_xticks(x, [r['name'] + ('*' if r['vital'] else '')
                      for r in rows], rotation=45, ha='right')
    ax.set_ylabel('accuracy drop (points)')
    ax.set_title(f'{title}\n(* and shading: vital blocks; baseline '
                 f'{result["baseline_accuracy"]:.1%})', fontsize=10)
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
