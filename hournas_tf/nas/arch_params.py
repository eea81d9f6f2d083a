"""Architecture parameters of a supernet: plain logits, or proposals + pi.

Both kinds are Keras layers that only own variables (the supernet tracks
them, so `tf.train.Checkpoint(model=supernet)` holds them) and share one
interface over the supernet's searched layers (rows) and the space's op
vocabulary (columns, `mask` marks the candidates):

- `sample(tau, sampler, seed)` -> (op weights (rows, cols), scores): a draw,
  differentiable in the parameters; scores are the perturbed logits of the
  draw (the runner-up op of the two-path estimator comes from them).
- `argmax_weights()`: one-hot weights of the derived architecture.
- `probabilities()`: the op distribution (rows, cols) as a tensor;
  `proposal_distributions()`: (each proposal's (m, rows, cols), pi (m,)),
  differentiable (plain logits: one proposal with probability 1).
- `op_probabilities()`, `proposal_probabilities()`,
  `proposal_op_probabilities()`: numpy views for logs and plots.
- `derive()`: columns (rows,) of the derived architecture;
  `derive_all()`: one per proposal.
- `row_norms(grads)`: per-row norm of a gradient of `trainable_weights`;
  `pi_norm(grads)`: the norm of its pi part (0 for plain logits).

`LogitsParams` is theta (rows, cols), zeros at the start (uniform), with
op weights `sampling.sample(theta)`: stage 1 and the one-stage search
without proposals. `ProposalParams` is m proposals (m, rows, cols) and the
proposal sampler pi (m,), eqs. 8-9: stage 2. Plain logits behave as a single
proposal with probability 1.

`temperature` T is the temperature the logits theta were made for: the
variables hold phi = theta / T and every draw comes from softmax(phi), the
distribution theta was optimized for at T (stage 2: the proposals' final
annealing temperature, `ProposalConfig.tau_end`). The Gumbel-softmax
relaxation behind the straight-through gradient runs at tau / T, i.e.
softmax((theta + T g) / tau): dividing the logits by T without it would
saturate the relaxation and leave no gradient. The optimizer steps on phi,
whose units are those of the sampled distribution (an Adam step of lr on
phi is lr x T on theta). `probabilities`, `op_probabilities`, ... are those
of the draws, softmax(phi).
"""

import keras
import numpy as np
import tensorflow as tf

from hournas_tf.nas import proposals as proposals_lib
from hournas_tf.nas import sampling


def masked_softmax(logits, mask):
    """Numpy softmax over the last axis, 0 where `mask` is False."""
    logits = np.where(mask, np.asarray(logits, np.float64), -np.inf)
    top = logits.max(axis=-1, keepdims=True)
    e = np.exp(logits - top)
    return e / e.sum(axis=-1, keepdims=True)


def masked_argmax(logits, mask):
    """Numpy argmax over the last axis among the `mask` entries."""
    return np.where(mask, np.asarray(logits, np.float64),
                    -np.inf).argmax(axis=-1)


class ArchParams(keras.layers.Layer):
    """Common part: the candidate mask and the numpy views."""

    def __init__(self, mask, temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        self.mask = np.asarray(mask, dtype=bool)
        self.temperature = float(temperature)
        self.built = True

    @property
    def rows(self):
        return self.mask.shape[0]

    @property
    def has_proposals(self):
        return False

    def op_probabilities(self):
        """np (rows, cols): the op distribution, 0 where masked."""
        return np.tensordot(self.proposal_probabilities(),
                            self.proposal_op_probabilities(), axes=1)

    def derive(self):
        """np (rows,): the columns of the derived architecture."""
        best = int(np.argmax(self.proposal_probabilities()))
        return self.derive_all()[best]

    def derive_all(self):
        """One np (rows,) of columns per proposal."""
        return [masked_argmax(logits, self.mask)
                for logits in self._logits_numpy()]

    def proposal_probabilities(self):
        raise NotImplementedError

    def proposal_op_probabilities(self):
        """np (m, rows, cols): softmax(phi_j) of each proposal."""
        return masked_softmax(self._logits_numpy(), self.mask)

    def _logits_numpy(self):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return input_shape


class LogitsParams(ArchParams):
    """theta (rows, cols), one distribution per searched layer."""

    def __init__(self, mask, temperature=1.0, **kwargs):
        super().__init__(mask, temperature, **kwargs)
        self.theta = self.add_weight(shape=self.mask.shape, name='theta',
                                     initializer='zeros')

    def sample(self, tau, sampler, seed):
        return sampling.sample(tf.convert_to_tensor(self.theta),
                               tau / self.temperature, sampler, seed,
                               tf.constant(self.mask), return_scores=True)

    def _masked(self):
        return sampling.masked_logits(tf.convert_to_tensor(self.theta),
                                      tf.constant(self.mask))

    def argmax_weights(self):
        index = sampling.hard_index(self._masked())
        return tf.one_hot(index, self.mask.shape[1], dtype=self.theta.dtype)

    def probabilities(self):
        return tf.nn.softmax(self._masked(), axis=-1)

    def proposal_probabilities(self):
        return np.ones(1)

    def _logits_numpy(self):
        return self.theta.numpy()[None]

    def row_norms(self, grads):
        (theta,) = grads
        return tf.norm(theta, axis=-1)

    def pi_norm(self, grads):
        return tf.zeros((), grads[0].dtype)

    def proposal_distributions(self):
        return self.probabilities()[None], tf.ones((1,), self.theta.dtype)


class ProposalParams(ArchParams):
    """m proposals theta_j (m, rows, cols) and the proposal logits pi (m,)."""

    def __init__(self, mask, proposals, temperature=1.0, pi_tau=None,
                 **kwargs):
        super().__init__(mask, temperature, **kwargs)
        self.pi_tau = pi_tau
        proposals = np.asarray(proposals, dtype=np.float32)
        proposals = proposals / np.float32(self.temperature)
        self.pi_logits = self.add_weight(
            shape=(proposals.shape[0],), initializer='zeros',
            name='pi_logits')
        self.proposal_logits = self.add_weight(
            shape=proposals.shape, name='proposal_logits',
            initializer=keras.initializers.Constant(proposals))

    @property
    def has_proposals(self):
        return True

    @property
    def num_proposals(self):
        return int(self.pi_logits.shape[0])

    def sample(self, tau, sampler, seed):
        weights, _, scores = proposals_lib.ensemble_weights(
            tf.convert_to_tensor(self.pi_logits),
            tf.convert_to_tensor(self.proposal_logits),
            tau / self.temperature, sampler, seed, tf.constant(self.mask),
            return_scores=True, pi_tau=self.pi_tau)
        return weights, scores

    def _best(self):
        best = tf.argmax(tf.convert_to_tensor(self.pi_logits))
        return tf.gather(tf.convert_to_tensor(self.proposal_logits), best)

    def argmax_weights(self):
        logits = sampling.masked_logits(self._best(), tf.constant(self.mask))
        return tf.one_hot(sampling.hard_index(logits), self.mask.shape[1],
                          dtype=self.proposal_logits.dtype)

    def probabilities(self):
        per, pi = self.proposal_distributions()
        return tf.tensordot(pi, per, axes=[[0], [0]])

    def proposal_distributions(self):
        pi = tf.nn.softmax(tf.convert_to_tensor(self.pi_logits))
        per = tf.nn.softmax(sampling.masked_logits(
            tf.convert_to_tensor(self.proposal_logits),
            tf.constant(self.mask)), axis=-1)
        return per, pi

    def proposal_probabilities(self):
        pi = np.asarray(self.pi_logits.numpy(), np.float64)
        e = np.exp(pi - pi.max())
        return e / e.sum()

    def _logits_numpy(self):
        return self.proposal_logits.numpy()

    def _grad_of(self, grads, variable):
        by_variable = dict(zip((id(v) for v in self.trainable_weights),
                               grads))
        return by_variable[id(variable)]

    def row_norms(self, grads):
        g = self._grad_of(grads, self.proposal_logits)
        return tf.sqrt(tf.reduce_sum(tf.square(g), axis=[0, 2]))

    def pi_norm(self, grads):
        return tf.norm(self._grad_of(grads, self.pi_logits))
