"""Batch-norm recalibration (moved to `blocks/recalibration.py`, below
`nas/`, so the search can recalibrate inherited weights too)."""

from hournas_tf.blocks.recalibration import batch_norm_layers
from hournas_tf.blocks.recalibration import recalibrate_batch_norm

__all__ = ['batch_norm_layers', 'recalibrate_batch_norm']
