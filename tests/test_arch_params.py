import numpy as np
import pytest
import tensorflow as tf

import hournas_tf  # noqa: F401  (sets KERAS_BACKEND)
from hournas_tf.nas import arch_params

MASK = np.array([[True, True, False, True], [True, True, True, True]])


def proposals(seed=0, m=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m,) + MASK.shape).astype('float32') * 2.0


def draw_frequencies(params, draws=4000):
    # All draws in one vectorized call (seeds [7, i]), not 4000 eager ones.
    seeds = tf.stack([tf.fill([draws], tf.constant(7, tf.int64)),
                      tf.range(draws, dtype=tf.int64)], axis=1)
    drawn = tf.vectorized_map(
        lambda seed: params.sample(5.0, 'gumbel_max', seed)[0], seeds)
    picks = drawn.numpy().argmax(-1)  # (draws, rows)
    counts = np.zeros(MASK.shape)
    for row in range(MASK.shape[0]):
        counts[row] = np.bincount(picks[:, row], minlength=MASK.shape[1])
    return counts / draws


def test_logits_params_start_uniform_and_behave_as_one_proposal():
    params = arch_params.LogitsParams(MASK)
    probs = params.op_probabilities()
    np.testing.assert_allclose(probs[0], [1 / 3, 1 / 3, 0, 1 / 3])
    np.testing.assert_allclose(probs[1], [0.25] * 4)
    assert params.proposal_probabilities().tolist() == [1.0]
    assert not params.has_proposals
    np.testing.assert_allclose(params.proposal_op_probabilities()[0], probs)
    assert len(params.derive_all()) == 1
    np.testing.assert_allclose(params.probabilities().numpy(), probs,
                               rtol=1e-6)


def test_proposal_params_mixture_argmax_and_derive():
    theta = proposals()
    params = arch_params.ProposalParams(MASK, theta)
    params.pi_logits.assign([0.0, 3.0, -1.0])
    pi = params.proposal_probabilities()
    assert int(np.argmax(pi)) == 1
    per = params.proposal_op_probabilities()
    assert per.shape == (3,) + MASK.shape
    np.testing.assert_allclose(per[:, 0, 2], 0.0)
    np.testing.assert_allclose(params.op_probabilities(),
                               np.tensordot(pi, per, 1), rtol=1e-6)
    np.testing.assert_allclose(params.probabilities().numpy(),
                               params.op_probabilities(), rtol=1e-5)
    best = np.where(MASK, theta[1], -np.inf).argmax(-1)
    np.testing.assert_array_equal(params.derive(), best)
    np.testing.assert_array_equal(
        params.argmax_weights().numpy().argmax(-1), best)
    assert [d.tolist() for d in params.derive_all()] == [
        np.where(MASK, t, -np.inf).argmax(-1).tolist() for t in theta]


@pytest.mark.parametrize('temperature', [1.0, 0.25])
def test_draws_come_from_softmax_of_theta_over_temperature(temperature):
    theta = proposals(1)[:1]
    params = arch_params.ProposalParams(MASK, theta, temperature=temperature)
    expected = np.where(MASK, np.exp(theta[0] / temperature), 0.0)
    expected /= expected.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(params.op_probabilities(), expected,
                               rtol=1e-5)
    got = draw_frequencies(params)
    np.testing.assert_allclose(got, expected, atol=0.03)
    assert got[0, 2] == 0.0  # masked column never drawn


def st_gradient_norms(params):
    cost = tf.constant(np.random.default_rng(3).normal(size=MASK.shape),
                       tf.float32)
    with tf.GradientTape() as tape:
        w, _ = params.sample(5.0, 'gumbel_max', tf.constant([1, 2],
                                                            tf.int64))
        loss = tf.reduce_sum(w * cost)
    variables = params.trainable_weights
    return params.row_norms(tape.gradient(loss, variables)).numpy()


def test_sharp_temperature_keeps_the_straight_through_gradient():
    """Draws from softmax(theta / 0.1): with the relaxation at tau / T the
    gradient stays; dividing the logits by T alone saturates it."""
    theta = proposals(2)[:1] * 3.0
    sharp = arch_params.ProposalParams(MASK, theta, temperature=0.1)
    naive = arch_params.ProposalParams(MASK, theta / 0.1)
    np.testing.assert_allclose(sharp.op_probabilities(),
                               naive.op_probabilities(), rtol=1e-5)
    good, bad = st_gradient_norms(sharp), st_gradient_norms(naive)
    assert good.min() > 1e-3
    assert np.all(bad < 0.05 * good), (good, bad)


def test_row_norms_of_proposals_sum_over_proposals_and_ops():
    params = arch_params.ProposalParams(MASK, proposals())
    g_pi = tf.ones(3)
    g = tf.ones((3,) + MASK.shape)
    norms = params.row_norms([g_pi, g]).numpy()
    np.testing.assert_allclose(norms, [np.sqrt(12.0)] * 2)
