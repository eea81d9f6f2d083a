import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from hournas_tf.common import errors
from hournas_tf.nas import sampling

LOGITS = np.array([1.0, 0.5, 0.0, -0.5, -1.5], np.float32)
DRAWS = 20000


def seed(a, b=0):
    return tf.constant([a, b], tf.int64)


def counts_of(weights):
    return np.asarray(weights).reshape(-1, weights.shape[-1]).sum(axis=0)


def chi2_pvalue(counts, probs):
    probs = np.asarray(probs, np.float64)
    expected = counts.sum() * probs / probs.sum()
    return stats.chisquare(counts, expected).pvalue


def softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def test_gumbel_noise_is_finite_standard_gumbel():
    g = sampling.gumbel_noise([DRAWS], seed(1)).numpy()
    assert np.isfinite(g).all()
    # Standard Gumbel: mean = Euler's gamma, variance = pi^2 / 6.
    assert abs(g.mean() - np.euler_gamma) < 0.05
    assert abs(g.var() - np.pi ** 2 / 6) < 0.1


def test_gumbel_max_frequencies_match_softmax():
    logits = tf.broadcast_to(LOGITS, [DRAWS, len(LOGITS)])
    weights = sampling.sample(logits, 1.0, 'gumbel_max', seed(7))
    counts = counts_of(weights)
    assert counts.sum() == DRAWS
    assert chi2_pvalue(counts, softmax(LOGITS)) > 1e-3
    # The same test rejects wrong distributions, so it can fail: uniform,
    # and the softmax(logits / 2) a stray temperature would give.
    assert chi2_pvalue(counts, np.ones(len(LOGITS))) < 1e-3
    assert chi2_pvalue(counts, softmax(LOGITS / 2)) < 1e-3


def test_gumbel_max_forward_does_not_depend_on_tau():
    logits = tf.broadcast_to(LOGITS, [64, len(LOGITS)])
    a = sampling.sample(logits, 0.2, 'gumbel_max', seed(5))
    b = sampling.sample(logits, 5.0, 'gumbel_max', seed(5))
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_gumbel_max_is_straight_through():
    logits = tf.Variable(np.tile(LOGITS, (6, 1)))
    cost = tf.constant(np.arange(30, dtype=np.float32).reshape(6, 5))
    with tf.GradientTape(persistent=True) as tape:
        hard = sampling.sample(logits, 0.7, 'gumbel_max', seed(3))
        soft = sampling.sample(logits, 0.7, 'gumbel_softmax', seed(3))
        hard_loss = tf.reduce_sum(hard * cost)
        soft_loss = tf.reduce_sum(soft * cost)
    w = hard.numpy()
    assert set(np.unique(w)) == {0.0, 1.0}
    np.testing.assert_array_equal(w.sum(axis=-1), np.ones(6))
    # Same noise: the hard draw is the argmax of the soft one.
    np.testing.assert_array_equal(
        w, np.eye(5)[soft.numpy().argmax(axis=-1)])
    hard_grad = tape.gradient(hard_loss, logits).numpy()
    soft_grad = tape.gradient(soft_loss, logits).numpy()
    assert np.abs(hard_grad).max() > 0
    np.testing.assert_allclose(hard_grad, soft_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('sampler', sampling.SAMPLERS)
def test_mask_never_draws_masked_choices(sampler):
    mask = np.array([True, False, True, False, True])
    # The masked choices have by far the largest logits.
    logits = tf.Variable(np.tile(LOGITS + 10.0 * ~mask, (2000, 1)))
    with tf.GradientTape() as tape:
        w = sampling.sample(logits, 0.5, sampler, seed(11), mask=mask)
        loss = tf.reduce_sum(w * tf.range(5, dtype=w.dtype))
    grad = tape.gradient(loss, logits).numpy()
    w = w.numpy()
    assert (w[:, ~mask] == 0.0).all()
    assert np.isfinite(w).all() and np.isfinite(grad).all()
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-5)
    assert (grad[:, ~mask] == 0.0).all()
    if sampler == 'gumbel_max':
        assert (counts_of(w)[mask] > 0).all()


def test_gumbel_softmax_is_soft_and_sums_to_one():
    logits = tf.broadcast_to(LOGITS, [500, len(LOGITS)])
    w = sampling.sample(logits, 1.0, 'gumbel_softmax', seed(2)).numpy()
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-5)
    assert (w > 0).all()
    assert (w.max(axis=-1) < 0.999).mean() > 0.9


def test_softmax_ignores_seed_and_tau():
    logits = tf.constant(np.tile(LOGITS, (3, 1)))
    a = sampling.sample(logits, 1.0, 'softmax', seed(1)).numpy()
    b = sampling.sample(logits, 0.1, 'softmax', seed(2)).numpy()
    c = sampling.sample(logits, 3.0, 'softmax').numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_allclose(a[0], softmax(LOGITS), rtol=1e-6)


@pytest.mark.parametrize('sampler', ['gumbel_max', 'gumbel_softmax'])
def test_same_seed_same_draw_other_seed_differs(sampler):
    logits = tf.broadcast_to(LOGITS, [100, len(LOGITS)])
    a = sampling.sample(logits, 1.0, sampler, seed(4, 9)).numpy()
    b = sampling.sample(logits, 1.0, sampler, seed(4, 9)).numpy()
    c = sampling.sample(logits, 1.0, sampler, seed(4, 10)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_works_in_tf_function_and_distribution_strategy():
    logits = tf.broadcast_to(LOGITS, [50, len(LOGITS)])

    @tf.function
    def draw(step):
        s = tf.stack([tf.constant(3, tf.int64), step])
        return sampling.sample(logits, 1.0, 'gumbel_max', s)

    eager = sampling.sample(logits, 1.0, 'gumbel_max', seed(3, 8)).numpy()
    step = tf.constant(8, tf.int64)
    np.testing.assert_array_equal(draw(step).numpy(), eager)
    strategy = tf.distribute.OneDeviceStrategy('/cpu:0')
    replica = strategy.run(draw, args=(step,))
    np.testing.assert_array_equal(
        strategy.experimental_local_results(replica)[0].numpy(), eager)


def test_hard_index():
    w = sampling.sample(tf.constant(np.tile(LOGITS, (4, 1))), 1.0,
                        'gumbel_max', seed(6))
    index = sampling.hard_index(w)
    assert index.dtype == tf.int32
    np.testing.assert_array_equal(index.numpy(), w.numpy().argmax(axis=-1))


def test_unknown_sampler_lists_choices():
    with pytest.raises(errors.UserError, match='unknown sampler') as info:
        sampling.sample(tf.constant(LOGITS), 1.0, 'gumbel', seed(0))
    message = str(info.value)
    assert 'gumbel' in message
    for name in sampling.SAMPLERS:
        assert name in message
    assert '\n' not in message


def test_bad_tau_and_missing_seed():
    with pytest.raises(errors.UserError, match='tau'):
        sampling.sample(tf.constant(LOGITS), 0.0, 'gumbel_max', seed(0))
    with pytest.raises(errors.UserError, match='seed'):
        sampling.sample(tf.constant(LOGITS), 1.0, 'gumbel_softmax')
