"""Architecture samplers G(theta): Gumbel-Max, Gumbel-softmax and softmax.

`sample(logits, tau, sampler, seed, mask)` turns architecture logits (last
axis = the candidate ops of one layer) into op weights of the same shape:

- `gumbel_max` (HourNAS / GDAS, the default): the forward value is the hard
  one-hot of `argmax(logits + g)`, an exact draw from `softmax(logits)`; the
  backward pass is the gradient of `softmax((logits + g) / tau)`
  (straight-through). `tau` shapes only the gradient.
- `gumbel_softmax` (FBNet): the soft weights `softmax((logits + g) / tau)`;
  every path runs, weighted.
- `softmax` (DARTS): plain `softmax(logits)`; no noise, `seed` and `tau` are
  ignored (DARTS has no temperature).

`g` is standard Gumbel noise from a stateless RNG: `seed` is a shape-[2]
integer tensor such as `tf.stack([base_seed, step])`, so a checkpointed step
counter reproduces the same draws. The functions are pure (no Python side
effects, no global RNG state) and work inside `tf.function` and on every
replica of a `tf.distribute` strategy; the same seed gives every replica the
same draw, so fold the replica id in (`tf.random.fold_in`) for distinct ones.
"""

import numpy as np
import tensorflow as tf

from hournas_tf.common import errors
from hournas_tf.nas.config import SAMPLERS  # noqa: F401

# Added to the logits of masked-out choices. Finite, so that no inf - inf or
# 0 * inf can turn into NaN; exp() of it underflows to exactly 0.
MASKED_LOGIT = -1e9


def check_sampler(sampler):
    """Raises UserError unless `sampler` is one of SAMPLERS."""
    if sampler not in SAMPLERS:
        raise errors.UserError(
            f'unknown sampler {sampler!r}; choose one of '
            f'{errors.choices(SAMPLERS)}')


def gumbel_noise(shape, seed, dtype=tf.float32):
    """Standard Gumbel noise -log(-log(U)) of `shape` from a stateless seed.

    `seed` is a shape-[2] int32/int64 tensor. U is clipped to
    [tiny, 1 - epsneg] so the noise is always finite.
    """
    dtype = tf.as_dtype(dtype)
    finfo = np.finfo(dtype.as_numpy_dtype)
    u = tf.random.stateless_uniform(
        shape, seed=seed, minval=float(finfo.tiny), maxval=1.0, dtype=dtype)
    u = tf.clip_by_value(u, float(finfo.tiny), float(1.0 - finfo.epsneg))
    return -tf.math.log(-tf.math.log(u))


def masked_logits(logits, mask):
    """Replaces the logits of masked-out (False) choices by MASKED_LOGIT."""
    if mask is None:
        return logits
    mask = tf.cast(mask, tf.bool)
    fill = tf.constant(MASKED_LOGIT, dtype=logits.dtype)
    return tf.where(mask, logits, fill)


def sample(logits, tau, sampler='gumbel_max', seed=None, mask=None,
           return_scores=False):
    """Op weights sampled from `logits` (last axis = choices), same shape.

    `tau` is the temperature of the Gumbel samplers (ignored by `softmax`);
    `seed` is a shape-[2] int tensor (required by the Gumbel samplers);
    `mask` (bool, broadcastable to `logits`) marks the allowed choices:
    masked-out choices are never drawn and get weight exactly 0. Every row
    must allow at least one choice. 16-bit logits are computed in float32
    and cast back.

    With `return_scores`, returns (weights, scores): `scores` are the
    perturbed logits `logits + g` without gradient (`softmax`: the logits),
    whose order is the order of a draw without replacement; a mixed layer
    reads its runner-up op from them (the two-path estimator).
    """
    check_sampler(sampler)
    if isinstance(tau, (int, float)) and tau <= 0:
        raise errors.UserError(f'temperature tau={tau} must be > 0')
    if sampler != 'softmax' and seed is None:
        raise errors.UserError(f'sampler {sampler!r} needs a seed')
    logits = tf.convert_to_tensor(logits)
    if not logits.dtype.is_floating:
        logits = tf.cast(logits, tf.float32)
    out_dtype = logits.dtype
    if out_dtype in (tf.float16, tf.bfloat16):
        logits = tf.cast(logits, tf.float32)
    logits = masked_logits(logits, mask)

    if sampler == 'softmax':
        weights = tf.nn.softmax(logits, axis=-1)
        perturbed = logits
    else:
        tau = tf.cast(tau, logits.dtype)
        perturbed = logits + gumbel_noise(
            tf.shape(logits), seed, dtype=logits.dtype)
        soft = tf.nn.softmax(perturbed / tau, axis=-1)
        if sampler == 'gumbel_softmax':
            weights = soft
        else:
            hard = tf.one_hot(
                tf.argmax(perturbed, axis=-1, output_type=tf.int32),
                depth=tf.shape(logits)[-1], dtype=logits.dtype)
            # hard + (soft - sg(soft)) is exactly `hard` in the forward pass
            # (x - x == 0), and has the gradient of `soft`.
            weights = hard + (soft - tf.stop_gradient(soft))
    if mask is not None:
        weights = tf.where(
            tf.cast(mask, tf.bool), weights, tf.zeros_like(weights))
    weights = tf.cast(weights, out_dtype)
    if return_scores:
        return weights, tf.stop_gradient(perturbed)
    return weights


def hard_index(weights):
    """The chosen (argmax) index along the last axis, int32."""
    return tf.argmax(weights, axis=-1, output_type=tf.int32)
