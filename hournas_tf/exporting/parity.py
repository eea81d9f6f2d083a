"""Parity of an exported model with the Keras model (numpy).

On the same images, `compare` gives the max relative difference of the
logits (max |exported - keras| / max |keras| over the whole batch, so it
is scale-free), the max absolute difference, top-1 agreement with Keras
and accuracy. `BOUNDS` are what the deployment check requires of each
format; `verdict` applies them. `near_chance` flags a source model that
is no better than guessing on the check images (an untrained model, or
one whose batch-norm statistics were never recalibrated), where every
format passes the parity bounds and none is of use.
"""

import numpy as np

# Format -> (measure, bound, 'max' or 'min').
BOUNDS = {
    'saved_model': ('max_rel_diff', 1e-5, 'max'),
    'tflite': ('max_rel_diff', 1e-4, 'max'),
    'tflite_fp16': ('max_rel_diff', 1e-2, 'max'),
    'tflite_int8': ('top1_agreement', 0.98, 'min'),
    'tflite_qat': ('top1_agreement', 0.98, 'min'),
}


def max_rel_diff(reference, logits):
    """max |logits - reference| / max |reference|."""
    reference = np.asarray(reference, np.float64)
    logits = np.asarray(logits, np.float64)
    scale = max(float(np.abs(reference).max()), 1e-12)
    return float(np.abs(logits - reference).max() / scale)


def top1(logits):
    return np.asarray(logits).argmax(axis=-1)


def compare(reference, logits, labels=None):
    """{'max_rel_diff', 'max_abs_diff', 'top1_agreement'[, 'accuracy']}."""
    reference = np.asarray(reference)
    logits = np.asarray(logits)
    if reference.shape != logits.shape:
        raise ValueError(f'logits of shape {logits.shape} vs reference '
                         f'{reference.shape}')
    result = {
        'max_rel_diff': max_rel_diff(reference, logits),
        'max_abs_diff': float(np.abs(logits.astype(np.float64)
                                     - reference).max()),
        'top1_agreement': float(np.mean(top1(logits) == top1(reference))),
    }
    if labels is not None:
        result['accuracy'] = accuracy(logits, labels)
    return result


def accuracy(logits, labels):
    return float(np.mean(top1(logits) == np.asarray(labels)))


def verdict(fmt, comparison):
    """(passed, 'measure <= bound') of one format's comparison."""
    measure, bound, kind = BOUNDS[fmt]
    value = comparison[measure]
    passed = value <= bound if kind == 'max' else value >= bound
    sign = '<=' if kind == 'max' else '>='
    return bool(passed), f'{measure} {sign} {bound:g}'


def chance(labels, num_classes):
    """The accuracy of guessing: the larger of 1 / classes and the share
    of the most common label."""
    labels = np.asarray(labels)
    if not len(labels):
        return 1.0 / num_classes
    return max(1.0 / num_classes,
               float(np.bincount(labels).max() / len(labels)))


def near_chance(accuracy, labels, num_classes):
    """True when `accuracy` is within a tenth of the way from chance to 1
    (and at most twice chance): digits 0.19, 1000 classes 0.002."""
    level = chance(labels, num_classes)
    return accuracy <= min(2 * level, level + 0.1 * (1 - level))
