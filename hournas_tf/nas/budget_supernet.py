"""One stage-2 supernet for several budgets (TF; see `budgets.py`).

The proposals of all budgets sit in one (M, rows, cols) variable and their
pi logits in one (M,) variable, `owner` (M,) naming each one's budget, so
the variables, checkpoints and `restore.py` are those of a plain
proposal supernet. Step s trains budget s mod B (a round robin: every
budget gets the same share of the weight steps): its draw picks one of
that budget's proposals by its own pi (the other budgets' pi logits are
masked out) and one op per layer from it; `budget_draws` keeps the draw
inside that budget's targets, `within_tolerance` counts it against them.
The resource loss is the sum over the budgets of each one's loss (its
proposals' expected totals under its own pi, or the step's draw against
the step's budget with `resource_estimate='draw'`).
"""

import numpy as np
import tensorflow as tf

from hournas_tf.common.errors import UserError
from hournas_tf.nas import budget as budget_lib
from hournas_tf.nas import proposals as proposals_lib
from hournas_tf.nas import sampling
from hournas_tf.nas.arch_params import ProposalParams
from hournas_tf.nas.supernet import SuperNet
from hournas_tf.nas.supernet import build_supernet


def _selector(owner, b):
    """(m_b, M) one-hot rows picking budget b's proposals (a dense
    gradient, unlike a gather)."""
    idx = np.flatnonzero(np.asarray(owner) == b)
    return np.eye(len(owner), dtype=np.float32)[idx]


class BudgetParams(ProposalParams):
    """Proposals and pi of several budgets; `owner[j]` is proposal j's
    budget. The numpy views flatten them: `proposal_probabilities()` is
    each budget's pi divided by the number of budgets."""

    def __init__(self, mask, proposals, owner, temperature=1.0, pi_tau=None,
                 **kwargs):
        super().__init__(mask, proposals, temperature, pi_tau, **kwargs)
        self.owner = np.asarray(owner, np.int32)
        self.num_budgets = int(self.owner.max()) + 1

    def _budget_pi_logits(self, budget):
        keep = tf.equal(tf.constant(self.owner), tf.cast(budget, tf.int32))
        pi = tf.convert_to_tensor(self.pi_logits)
        return tf.where(keep, pi, tf.constant(sampling.MASKED_LOGIT,
                                              pi.dtype))

    def sample(self, tau, sampler, seed, budget=0):
        """A draw of `budget` (an int or scalar tensor): (weights,
        scores)."""
        weights, _, scores = proposals_lib.ensemble_weights(
            self._budget_pi_logits(budget),
            tf.convert_to_tensor(self.proposal_logits),
            tau / self.temperature, sampler, seed, tf.constant(self.mask),
            return_scores=True, pi_tau=self.pi_tau)
        return weights, scores

    def budget_distributions(self, b):
        """(budget b's proposals' op probabilities (m_b, rows, cols), its
        pi (m_b,)), differentiable."""
        select = tf.constant(_selector(self.owner, b))
        per = tf.nn.softmax(sampling.masked_logits(
            tf.convert_to_tensor(self.proposal_logits),
            tf.constant(self.mask)), axis=-1)
        pi = tf.nn.softmax(tf.linalg.matvec(
            select, tf.convert_to_tensor(self.pi_logits)))
        return tf.tensordot(select, per, axes=1), pi

    def proposal_distributions(self):
        per = tf.nn.softmax(sampling.masked_logits(
            tf.convert_to_tensor(self.proposal_logits),
            tf.constant(self.mask)), axis=-1)
        flat = tf.zeros((len(self.owner),), per.dtype)
        for b in range(self.num_budgets):
            select = tf.constant(_selector(self.owner, b))
            _, pi_b = self.budget_distributions(b)
            flat += tf.linalg.matvec(select, pi_b, transpose_a=True)
        return per, flat / self.num_budgets

    def proposal_probabilities(self):
        logits = np.asarray(self.pi_logits.numpy(), np.float64)
        flat = np.zeros_like(logits)
        for b in range(self.num_budgets):
            idx = self.owner == b
            e = np.exp(logits[idx] - logits[idx].max())
            flat[idx] = e / e.sum() / self.num_budgets
        return flat


class BudgetSuperNet(SuperNet):
    """A `SuperNet` whose step s draws from budget s mod B; `budgets` are
    `budget.Budget`s over the same table, `owner` the budget of each
    proposal."""

    def __init__(self, space, searched, fixed_ops=None, config=None,
                 budget=None, proposals=None, budgets=(), owner=None,
                 **kwargs):
        # Read by _make_arch_params, called in SuperNet.__init__.
        self._owner_init = np.asarray(owner, np.int32)
        super().__init__(space, searched, fixed_ops, config, budget=budget,
                         proposals=proposals, **kwargs)
        self.budgets = tuple(budgets)

    def _make_arch_params(self, proposals):
        return BudgetParams(self.mask, proposals, self._owner_init,
                            self.config.sample_temperature,
                            self.config.pi_tau, name='arch_proposals')

    @property
    def num_budgets(self):
        return len(self.budgets)

    def active_budget(self):
        """The budget of the current step: step mod B (round robin)."""
        step = tf.cast(tf.convert_to_tensor(self.step), tf.int32)
        return tf.math.floormod(step, self.num_budgets)

    def sample_weights(self, seed, return_scores=False):
        weights, scores = self.arch_params.sample(
            tf.convert_to_tensor(self.tau), self.config.sampler, seed,
            self.active_budget())
        return (weights, scores) if return_scores else weights

    def _within(self, weights):
        oks = tf.stack([budget_lib.within_tolerance(b, weights)
                        for b in self.budgets])
        return tf.gather(oks, self.active_budget())

    def _resource_loss(self, first):
        free = self.config.resource_slack * self.budget.tolerance
        table = self.budget.table
        if self.config.resource_estimate == 'draw':
            losses = tf.stack([budget_lib.resource_loss(
                table, b.targets, first, free) for b in self.budgets])
            return tf.gather(losses, self.active_budget())
        total = 0.0
        for k, b in enumerate(self.budgets):
            per, pi = self.arch_params.budget_distributions(k)
            total += budget_lib.expected_resource_loss(table, b.targets,
                                                       per, pi, free)
        return total


def build_budget_supernet(space, searched, fixed_ops, config, budgets,
                          proposals, owner):
    """Builds a `BudgetSuperNet`: `budgets` one `budget.Budget` per budget
    (same table, rows = `searched`), `proposals` (M, rows, cols),
    `owner` (M,) in 0..B-1 with every budget owning at least one."""
    owner = np.asarray(owner, np.int32)
    if len(budgets) < 1 or owner.shape != (np.shape(proposals)[0],) or \
            sorted(set(owner.tolist())) != list(range(len(budgets))):
        raise UserError(f'owner {owner.tolist()} must give each of the '
                        f'{np.shape(proposals)[0]} proposals one of the '
                        f'{len(budgets)} budgets, each at least one')
    for b in budgets[1:]:
        if b.table is not budgets[0].table or \
                b.tolerance != budgets[0].tolerance:
            raise UserError('every budget must share one table and one '
                            'tolerance')
    return build_supernet(space, searched, fixed_ops, config,
                          budget=budgets[0], proposals=proposals,
                          supernet_class=BudgetSuperNet, budgets=budgets,
                          owner=owner)
