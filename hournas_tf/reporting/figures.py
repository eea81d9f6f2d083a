"""The report's plots of a search's history.jsonl, as PNG bytes.

`training_curves`: losses and accuracies of both stages by epoch (weight
step on the 80% split, architecture step on the 20% split);
`tolerance_curve`: the share of drawn architectures within tolerance and
the temperature; `grad_norms`: the per-layer norm of the cross-entropy
part of the architecture gradient (`arch_grad_norm`), one panel per stage.

Matplotlib's object API (`Figure`, rendered by Agg on `savefig`): no
pyplot, so a notebook's backend and figure list stay untouched.
"""

import io

import numpy as np
from matplotlib.figure import Figure

STAGES = ('vital', 'nonvital')


def _png(fig):
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format='png', dpi=100)
    return buffer.getvalue()


def _series(history, key):
    """(x, y) over all epochs of both stages, epochs numbered on."""
    xs, ys = [], []
    for x, record in enumerate(history, 1):
        if key in record:
            xs.append(x)
            ys.append(record[key])
    return xs, ys


def _stage_bounds(ax, history):
    stages = [r.get('stage') for r in history]
    for x in range(1, len(stages)):
        if stages[x] != stages[x - 1]:
            ax.axvline(x + 0.5, color='grey', ls=':', lw=1)
    ax.set_xlabel('epoch (stage 1, then stage 2)')
    ax.grid(alpha=0.3)


def training_curves(history):
    """Losses and accuracies per epoch."""
    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 2)
    for ax, keys, title in (
            (axes[0], ('loss', 'arch_loss'), 'loss'),
            (axes[1], ('accuracy', 'arch_accuracy'), 'accuracy')):
        for key in keys:
            xs, ys = _series(history, key)
            if xs:
                ax.plot(xs, ys, marker='o', ms=3,
                        label=key.replace('arch_', 'architecture step '))
        _stage_bounds(ax, history)
        ax.set_title(f'supernet {title} (weight step, architecture step)',
                     fontsize=10)
        ax.legend(fontsize=8)
    return _png(fig)


def tolerance_curve(history):
    """within_tolerance (trained architectures), draw_within_tolerance
    (first draws) and tau per epoch."""
    fig = Figure(figsize=(10, 3.2))
    ax = fig.subplots()
    xs, ys = _series(history, 'within_tolerance')
    ax.plot(xs, ys, marker='o', ms=3, color='tab:green',
            label='share of trained architectures within tolerance')
    xs, ys = _series(history, 'draw_within_tolerance')
    if xs:
        ax.plot(xs, ys, marker='x', ms=3, color='tab:olive', ls=':',
                label='share of first draws within tolerance')
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel('within tolerance')
    _stage_bounds(ax, history)
    twin = ax.twinx()
    xs, ys = _series(history, 'tau')
    twin.plot(xs, ys, color='tab:red', ls='--', label='tau')
    twin.set_ylabel('tau')
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8,
              loc='lower right')
    return _png(fig)


def grad_norms(history):
    """Per-layer architecture-gradient norms, one panel per stage."""
    stages = [s for s in STAGES
              if any(r.get('stage') == s and r.get('arch_grad_norm')
                     for r in history)]
    fig = Figure(figsize=(5 * max(1, len(stages)), 3.6))
    axes = fig.subplots(1, max(1, len(stages)), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        records = [r for r in history if r.get('stage') == stage]
        layers = sorted({int(k) for r in records
                         for k in r.get('arch_grad_norm', {})})
        for layer in layers:
            ys = [r.get('arch_grad_norm', {}).get(str(layer), np.nan)
                  for r in records]
            ax.plot([r['epoch'] for r in records],
                    np.maximum(np.asarray(ys, float), 1e-12),
                    marker='o', ms=2, label=f'L{layer}')
        ax.set_yscale('log')
        ax.set_xlabel('epoch')
        ax.set_title(f'{stage}: |d CE / d logits| per layer', fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    if not stages:
        axes[0][0].text(0.5, 0.5, 'no gradient norms logged',
                        ha='center', va='center')
        axes[0][0].set_axis_off()
    return _png(fig)


def budget_curve(rows):
    """Inherited-weight accuracy against each targeted cost of the budgets
    of one search (budgets.json rows), one panel per objective."""
    objectives = list(rows[0]['targets'])
    fig = Figure(figsize=(4.2 * len(objectives), 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(objectives)))
    for ax, obj in zip(axes, objectives):
        pairs = sorted((r['achieved'][obj], r.get('inherited_accuracy'),
                        r['budget']) for r in rows)
        xs = [p[0] for p in pairs if p[1] is not None]
        ys = [p[1] for p in pairs if p[1] is not None]
        ax.plot(xs, ys, 'o-')
        for x, y, name in pairs:
            if y is not None:
                ax.annotate(name, (x, y), textcoords='offset points',
                            xytext=(4, 4), fontsize=8)
        ax.set_xlabel(f'{obj} (achieved)')
        ax.set_ylabel('inherited-weight accuracy')
        ax.grid(alpha=0.3)
    return _png(fig)
