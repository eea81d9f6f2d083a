"""Plots of a search: op-probability heat maps and the proposal scatter.

Matplotlib's object API (`Figure`, rendered by Agg on `savefig`): no
pyplot, so a notebook's backend and figure list stay untouched.
"""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle


def op_heatmap(probabilities, row_labels, op_names, mask, title, path):
    """Per-layer op-probability heat map (rows = layers, columns = ops)."""
    probs = np.where(mask, probabilities, np.nan)
    fig = Figure(figsize=(1.0 + 0.7 * len(op_names),
                          1.2 + 0.35 * len(row_labels)))
    ax = fig.subplots()
    image = ax.imshow(probs, cmap='viridis', vmin=0.0, vmax=1.0,
                      aspect='auto')
    ax.set_xticks(range(len(op_names)), op_names, rotation=45, ha='right')
    ax.set_yticks(range(len(row_labels)), row_labels)
    for r, c in zip(*np.nonzero(mask)):
        if probs[r, c] >= 0.005:
            ax.text(c, r, f'{probs[r, c]:.2f}', ha='center', va='center',
                    fontsize=7,
                    color='black' if probs[r, c] > 0.6 else 'white')
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label='probability')
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def proposal_scatter(samples, targets, tolerance, title, path):
    """The paper's figure 3: MACs vs params of sampled architectures.

    `samples` maps a temperature to (params array, MACs array), one panel
    each; `targets` has `params` and/or `macs`.
    """
    n = len(samples)
    fig = Figure(figsize=(3.6 * n, 3.9))
    axes = fig.subplots(1, n, sharex=True, sharey=True, squeeze=False)
    tx, ty = targets.get('params'), targets.get('macs')
    for ax, (tau, (params, macs)) in zip(axes[0], samples.items()):
        params, macs = np.asarray(params), np.asarray(macs)
        ok = np.ones(len(params), bool)
        if tx is not None:
            ok &= np.abs(params - tx) <= tolerance * tx
        if ty is not None:
            ok &= np.abs(macs - ty) <= tolerance * ty
        ax.scatter(params / 1e6, macs / 1e6, s=3, alpha=0.25,
                   color='tab:blue', rasterized=True)
        if tx is not None and ty is not None:
            ax.add_patch(Rectangle(
                ((1 - tolerance) * tx / 1e6, (1 - tolerance) * ty / 1e6),
                2 * tolerance * tx / 1e6, 2 * tolerance * ty / 1e6,
                fill=False, color='red', lw=1.2, ls='--', zorder=5))
            ax.plot([tx / 1e6], [ty / 1e6], marker='*', ms=12, color='red',
                    markeredgecolor='black', zorder=6)
        else:
            if tx is not None:
                ax.axvline(tx / 1e6, color='red', ls='--')
            if ty is not None:
                ax.axhline(ty / 1e6, color='red', ls='--')
        ax.set_title(f'tau = {tau:g}: {ok.mean():.0%} within '
                     f'{tolerance:.0%}', fontsize=10)
        ax.set_xlabel('params (M)')
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel('MACs (M)')
    fig.suptitle(title + ' (red: target and tolerance box)', fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
