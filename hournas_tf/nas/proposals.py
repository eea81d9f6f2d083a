"""Space proposals (HourNAS eqs. 4-9): resource-targeted architecture logits.

A space proposal is a logits array theta (rows x ops) over the searchable
(non-vital) layers of a `counting.ResourceTable`, optimized so that the
architectures sampled from it meet resource targets T_i ("what you set is
what you get"). Resources of op weights A are R_i(A) = fixed_i + sum(A * F_i)
(eq. 5); the loss of one weight tensor is mean_i |R_i(A) - T_i| / M_i (eq. 6)
with M_i the maximum feasible total of objective i.

Temperature. A proposal at temperature tau is the distribution
softmax(theta / tau); `sample_architectures` draws from it by Gumbel-Max,
argmax(theta / tau + g), and a low tau concentrates the draws on the argmax
architecture (Fig. 3 of the paper).

`optimize_proposals` solves eq. 7 for m proposals at once, with tau_t
annealed geometrically from `tau_start` (5.0, the paper's initial search
temperature) to `tau_end` (1.0, the temperature stage 2 samples at) over
the first (1 - `hold`) of the iterations and held there for the rest:

    loss = sum_j [ mean_s L(gumbel_softmax(theta_j / tau_t, relax_tau))
                   + mode_weight L(softmax(theta_j / (mode_scale tau_t))) ]
           + beta * sum |O - I| - entropy_weight * sum_j H_j

with L the miss of eq. 6 less a slack: max(0, |R_i - T_i| - slack tol
T_i) / M_i, averaged over objectives.

- Sample term: eq. 6 on `samples` Gumbel-softmax relaxations (temperature
  `relax_tau` = 0.5) of draws from softmax(theta_j / tau_t): the expected
  miss of architectures sampled at the current temperature.
- Slack (0.5): a miss within half the tolerance costs nothing, so the
  optimizer does not pay for spread that stays inside the budget.
- Entropy bonus H_j (`entropy_weight` 0.015): proposal j's mean entropy of
  softmax(theta_j / tau_t) over rows with several candidates, each divided
  by log(candidates). With the slack it keeps choice among ops of nearly
  equal cost, where the budget does not decide, so stage 2 has something
  to search (the paper's figure 3 shows proposals that still spread);
  rows whose ops differ in cost stay sharp. `min_share` (0.6): if fewer of
  10,000 draws at tau_end land within `tol`, the optimization runs again
  from another initialization, then with half and a quarter of the bonus
  (two initializations each), then without it.
- Mode term: the noise-free relaxation at a ten times colder temperature,
  close to the row-wise argmax, steering each proposal's most probable
  architecture onto the targets (0: the paper).
- Orthogonality (`orthogonality`): `centered` (default) is the cosine
  similarity of the proposals' centered logits, indifferent to how sharp
  a proposal is; `probabilities` (the earlier default) pushes proposals
  towards one-hot rows (non-negative vectors are orthogonal only with
  disjoint supports); `logits` is the paper's O = Theta Theta^T, whose
  diagonal pulls ||theta_j|| to 1 (near-uniform proposals).
- The resource terms are summed over the m proposals (`reduction` 'mean'
  is the paper's 1/(nm)): with the mean, beta = 1e-2 drove the earlier
  proposals to near-perfect orthogonality at the cost of 3-6% misses on
  the FBNet table (measured); summed, each proposal's own miss outweighs
  the pull apart.
- theta starts from N(0, init_std) per proposal (numpy, seeded) and is
  updated by Adam inside one `tf.function` (a `tf.while_loop` over iters,
  vectorized over proposals x samples).
- Measured (`tools/proposal_share.py`, docs/search.md "Stage 2
  searches"): the earlier settings (tau_end 0.05, probability
  orthogonality, no slack or entropy) left every searched row with a top
  probability of 0.996 or more, i.e. one-hot proposals and nothing for
  stage 2 to search; the defaults leave a mean top probability of about
  0.8 on the demo's table and 0.5 on FBNet's with 60-75% of the draws
  within 3%.
- Safety net (`ProposalConfig.repair`, off by default): a proposal whose
  argmax architecture still misses a target by more than `tol` is fixed
  by `repair` and the logits of each repaired row are swapped so that the
  repaired op becomes the argmax; `ProposalResult.repaired` lists the rows
  touched, and the search reports them as a repair.

`ensemble_weights` is eqs. 8-9, the differentiable ensemble the supernet
trains.
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf

from hournas_tf.common import errors
from hournas_tf.nas import repair as repair_lib
from hournas_tf.nas import sampling
from hournas_tf.nas.config import ORTHOGONALITY
from hournas_tf.nas.config import REDUCTIONS
from hournas_tf.resources.tables import check_targets
from hournas_tf.resources.tables import normalizers
from hournas_tf.resources.tables import totals
from hournas_tf.resources.tables import within

MASKED_LOGIT = sampling.MASKED_LOGIT




@dataclasses.dataclass(frozen=True)
class ProposalConfig:
    """Settings of `optimize_proposals` (eq. 7); see the module docstring.

    The defaults keep choice in the proposals (an entropy bonus, no cost
    inside `slack` x the tolerance, sampling at tau_end = 1);
    `PAPER` holds the paper's literal settings.
    """

    num_proposals: int = 8        # m
    iters: int = 1000             # I_sp
    learning_rate: float = 0.05   # Adam
    beta: float = 1e-2            # orthogonality weight
    tau_start: float = 5.0        # temperature, annealed geometrically
    tau_end: float = 1.0          # ... down to this, stage 2's sampling
    samples: int = 32             # Gumbel samples per proposal per iteration
    seed: int = 0
    relax_tau: float = 0.5        # Gumbel-softmax relaxation of the samples
    mode_scale: float = 0.1       # mode term temperature = mode_scale * tau
    mode_weight: float = 1.0      # weight of the mode term; 0: off (paper)
    init_std: float = 1.0         # theta ~ N(0, init_std) per proposal
    repair: bool = False          # swap logits of argmax archs still off
    tol: float = 0.03             # relative tolerance of the repair
    hold: float = 0.0             # last share of iters held at tau_end
    entropy_weight: float = 0.015  # bonus for the rows' normalized entropy
    slack: float = 0.5            # misses within slack x tol cost nothing
    orthogonality: str = 'centered'  # 'probabilities', 'logits' (paper)
    reduction: str = 'sum'        # resource terms over proposals; 'mean'
    min_share: float = 0.6        # halve the entropy bonus until at least
    #                               this share of draws is within tol

    def check(self):
        """Raises UserError for a setting outside its valid range."""
        ints = (('num_proposals', 1), ('iters', 1), ('samples', 1))
        for name, low in ints:
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise errors.UserError(
                    f'{name}={value!r} must be an integer >= {low}')
        positive = ('learning_rate', 'tau_start', 'tau_end', 'tol',
                    'relax_tau', 'mode_scale')
        for name in positive:
            if not getattr(self, name) > 0:
                raise errors.UserError(
                    f'{name}={getattr(self, name)!r} must be > 0')
        if not 0 <= self.hold < 1:
            raise errors.UserError(f'hold={self.hold!r} must be in [0, 1)')
        if not 0 <= self.min_share <= 1:
            raise errors.UserError(
                f'min_share={self.min_share!r} must be in [0, 1]')
        if not 0 <= self.slack < 1:
            raise errors.UserError(
                f'slack={self.slack!r} must be in [0, 1)')
        for name in ('beta', 'init_std', 'entropy_weight', 'mode_weight'):
            if not getattr(self, name) >= 0:
                raise errors.UserError(
                    f'{name}={getattr(self, name)!r} must be >= 0')
        for name, valid in (('orthogonality', ORTHOGONALITY),
                            ('reduction', REDUCTIONS)):
            if getattr(self, name) not in valid:
                raise errors.UserError(
                    f'{name}={getattr(self, name)!r}; valid: '
                    f'{errors.choices(valid)}')


# The paper's literal proposal settings (eq. 7): the 1/(nm) mean, O on the
# raw logits, no mode, entropy or slack terms, no safety net.
PAPER = dict(mode_weight=0.0, entropy_weight=0.0, slack=0.0,
             orthogonality='logits', reduction='mean', repair=False)


@dataclasses.dataclass(frozen=True)
class ProposalResult:
    """Output of `optimize_proposals`.

    `logits` (m, rows, cols) float32 with masked entries at MASKED_LOGIT;
    `columns` (m, rows) the argmax architecture of each proposal; the
    histories hold one value per iteration (total loss, the two resource
    terms summed, the orthogonality term sum |O - I|, the mean normalized
    row entropy at the iteration's temperature); `repaired[j]` the rows
    whose argmax the safety net changed; `seconds` the optimization time
    (all attempts); `entropy_weight` the entropy bonus of the result and
    `share_within_tolerance` the share of `SHARE_DRAWS` draws at tau_end
    within `tol` of every target (before the safety net).
    """

    logits: np.ndarray
    columns: np.ndarray
    loss_history: np.ndarray
    resource_history: np.ndarray
    orthogonality_history: np.ndarray
    entropy_history: np.ndarray
    repaired: tuple
    seconds: float
    entropy_weight: float = 0.0
    share_within_tolerance: float = None


def orthogonality(logits, mask=None, form='probabilities'):
    """sum |O - I| over m proposals' logits (m, rows, cols) (eq. 7).

    `centered` (the default): row j of C is theta_j minus each layer's
    mean logit over its candidates (masked entries 0), flattened and
    L2-normalized: O = C C^T holds the cosine similarities of the
    proposals' preferences, in [-1, 1], and is indifferent to how sharp a
    proposal is. `probabilities`: the same with softmax(theta_j) (no
    centering); non-negative vectors are orthogonal only with disjoint
    supports, so this form pushes every proposal towards one-hot rows.
    `logits` (the paper): O = Theta Theta^T on the raw logits (masked
    entries 0), whose diagonal ||theta_j||^2 is pulled to 1, which keeps
    the logits small (near-uniform proposals).
    """
    logits = tf.convert_to_tensor(logits)
    if form in ('logits', 'centered'):
        keep = tf.ones_like(logits, tf.bool) if mask is None else \
            tf.broadcast_to(tf.cast(mask, tf.bool), tf.shape(logits))
        raw = tf.where(keep, logits, tf.zeros_like(logits))
        if form == 'centered':
            count = tf.reduce_sum(tf.cast(keep, logits.dtype), -1,
                                  keepdims=True)
            mean = tf.reduce_sum(raw, -1, keepdims=True) / count
            raw = tf.where(keep, raw - mean, tf.zeros_like(raw))
        flat = tf.reshape(raw, [tf.shape(raw)[0], -1])
        if form == 'centered':
            flat = tf.math.l2_normalize(flat, axis=-1)
    else:
        probs = tf.nn.softmax(sampling.masked_logits(logits, mask), axis=-1)
        flat = tf.reshape(probs, [tf.shape(probs)[0], -1])
        flat = tf.math.l2_normalize(flat, axis=-1)
    gram = tf.matmul(flat, flat, transpose_b=True)
    eye = tf.eye(tf.shape(gram)[0], dtype=gram.dtype)
    return tf.reduce_sum(tf.abs(gram - eye))


def row_entropy(logits, mask):
    """Entropy of softmax(logits) per row over the masked candidates,
    divided by log(candidates) (0 for rows with one candidate): (..., rows)
    in [0, 1]."""
    mask = tf.cast(mask, tf.bool)
    probs = tf.nn.softmax(sampling.masked_logits(logits, mask), axis=-1)
    logp = tf.math.log(tf.maximum(probs, 1e-30))
    ent = -tf.reduce_sum(tf.where(mask, probs * logp, 0.0), axis=-1)
    count = tf.reduce_sum(tf.cast(mask, logits.dtype), axis=-1)
    return tf.math.divide_no_nan(ent, tf.math.log(tf.maximum(count, 1.0)))


def mean_top_probability(logits, mask, tau=1.0):
    """Mean over proposals and rows with more than one candidate of the
    most probable op's probability under softmax(logits / tau) (numpy):
    1.0 means one-hot proposals, 1 / candidates uniform ones."""
    logits = np.asarray(logits, np.float64)
    if logits.ndim == 2:
        logits = logits[None]
    mask = np.asarray(mask, bool)
    scaled = np.where(mask, logits / tau, -np.inf)
    top = scaled.max(axis=-1, keepdims=True)
    probs = np.exp(scaled - top)
    probs /= probs.sum(axis=-1, keepdims=True)
    choice = mask.sum(axis=-1) > 1
    if not choice.any():
        return 1.0
    return float(probs.max(axis=-1)[:, choice].mean())


# autograph=False: the loop is an explicit tf.while_loop, and converting
# the code cost about 1 CPU s of the first call's 2-3 s (docs/speed.md).
@tf.function(autograph=False)
def _optimize(theta, values, fixed, targets, slack, mask, iters, samples,
              seed, hyper, form, mean_over_proposals):
    """Adam on eq. 7 for `iters` steps: theta0 -> (theta, history).

    values (n, rows, cols), fixed, targets and slack (n,) are divided by
    M_i; hyper = [learning_rate, beta, tau_start, tau_end, relax_tau,
    mode_scale, hold, mode_weight, entropy_weight].
    Returns the final theta and a (iters, 4) history of (loss, resource
    terms, sum |O - I|, mean normalized row entropy).
    """
    (lr, beta, tau_start, tau_end, relax, mode_scale, hold, mode_weight,
     entropy_weight) = tf.unstack(hyper)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    anneal = tf.cast(iters, tf.float32) * (1.0 - hold)
    last = tf.maximum(anneal - 1.0, 1.0)
    shape = tf.shape(theta)
    batch_shape = tf.concat([shape[:1], [samples], shape[1:]], axis=0)
    choice = tf.cast(tf.reduce_sum(tf.cast(mask, tf.float32), -1) > 1,
                     tf.float32)

    def miss(totals):
        # |R - T| / M, free within the slack (a fraction of the tolerance).
        return tf.nn.relu(tf.abs(totals - targets) - slack)

    def losses(theta, t):
        tau = tau_start * tf.pow(tau_end / tau_start, tf.minimum(
            tf.cast(t, tf.float32) / last, 1.0))
        logits = sampling.masked_logits(theta, mask)
        scaled = tf.broadcast_to((logits / tau)[:, None], batch_shape)
        step_seed = tf.stack([seed, tf.cast(t, tf.int64)])
        drawn = sampling.sample(
            scaled, relax, 'gumbel_softmax', step_seed, mask)
        sampled = fixed + tf.einsum('msrc,nrc->msn', drawn, values)
        sharp = sampling.sample(
            logits / (mode_scale * tau), 1.0, 'softmax', mask=mask)
        mode = fixed + tf.einsum('mrc,nrc->mn', sharp, values)
        # Mean over objectives (and samples), sum (or mean) over proposals.
        per_proposal = (
            tf.reduce_mean(miss(sampled), axis=[1, 2])
            + mode_weight * tf.reduce_mean(miss(mode), axis=1))
        resource = tf.reduce_sum(per_proposal)
        if mean_over_proposals:
            resource = resource / tf.cast(shape[0], tf.float32)
        entropy = tf.reduce_sum(row_entropy(logits / tau, mask) * choice,
                                axis=-1) / tf.maximum(
                                    tf.reduce_sum(choice), 1.0)
        return resource, orthogonality(logits, mask, form), entropy

    def body(t, theta, first, second, history):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            resource, orth, entropy = losses(theta, t)
            loss = (resource + beta * orth
                    - entropy_weight * tf.reduce_sum(entropy))
        grad = tape.gradient(loss, theta)
        step = tf.cast(t + 1, tf.float32)
        first = beta1 * first + (1 - beta1) * grad
        second = beta2 * second + (1 - beta2) * tf.square(grad)
        rate = lr * tf.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
        theta = theta - rate * first / (tf.sqrt(second) + eps)
        history = history.write(t, tf.stack(
            [loss, resource, orth, tf.reduce_mean(entropy)]))
        return t + 1, theta, first, second, history

    history = tf.TensorArray(tf.float32, size=iters)
    zeros = tf.zeros_like(theta)
    _, theta, _, _, history = tf.while_loop(
        lambda t, *_: t < iters, body,
        (tf.constant(0), theta, zeros, zeros, history))
    return theta, history.stack()


SHARE_DRAWS = 10_000
BACKOFFS = (1.0, 0.5, 0.25)   # entropy weights tried, times the config's
RESTARTS = 2                   # initializations tried per weight


def _attempts(config):
    """(entropy weight, seed) of the optimizations `optimize_proposals`
    tries in turn: each weight of BACKOFFS with RESTARTS seeds, then no
    bonus; just the config's when `min_share` is 0 or the bonus is off."""
    if not config.min_share or not config.entropy_weight:
        return [(config.entropy_weight, config.seed)]
    return [(config.entropy_weight * f, config.seed + 1000 * k)
            for f in BACKOFFS for k in range(RESTARTS)] + [
                (0.0, config.seed)]


def optimize_proposals(table, targets, config=None):
    """Optimizes `config.num_proposals` space proposals for `targets` (eq. 7).

    `targets` maps objectives of `table` to whole-network values. When
    fewer than `min_share` of `SHARE_DRAWS` draws at tau_end land within
    `tol`, the optimization runs again from another initialization, then
    with half and a quarter of the entropy bonus, then without it
    (`_attempts`), and keeps the first that passes (else the last).
    Returns a `ProposalResult`; see the module docstring for the method.
    """
    config = config or ProposalConfig()
    config.check()
    check_targets(table, targets)
    start = time.perf_counter()
    for weight, seed in _attempts(config):
        attempt = dataclasses.replace(config, entropy_weight=weight,
                                      seed=seed)
        theta, history = _optimize_once(table, targets, attempt)
        share = _share(table, theta, targets, config)
        if share >= config.min_share:
            break
    seconds = time.perf_counter() - start

    mask = np.asarray(table.mask, dtype=bool)
    logits = np.where(mask, theta, MASKED_LOGIT).astype(np.float32)
    columns = logits.argmax(axis=-1)
    repaired = [() for _ in range(config.num_proposals)]
    if config.repair:
        ok = within(totals(table, columns), targets, config.tol)
        for j in np.flatnonzero(~ok):
            fixed_cols, rows = repair_lib.repair(
                table, columns[j], logits[j], targets, config.tol)
            for r in rows:
                old, new = columns[j, r], fixed_cols[r]
                logits[j, r, [old, new]] = logits[j, r, [new, old]]
            columns[j] = fixed_cols
            repaired[j] = rows
    return ProposalResult(
        logits=logits, columns=columns, loss_history=history[:, 0],
        resource_history=history[:, 1], orthogonality_history=history[:, 2],
        entropy_history=history[:, 3], repaired=tuple(repaired),
        seconds=seconds, entropy_weight=attempt.entropy_weight,
        share_within_tolerance=share)


def _share(table, theta, targets, config):
    """Share of SHARE_DRAWS draws at tau_end within tol of every target."""
    logits = np.where(table.mask, theta, MASKED_LOGIT)
    cols = sample_architectures(logits, SHARE_DRAWS, config.tau_end,
                                config.seed + 7919)
    return float(within(totals(table, cols), targets, config.tol).mean())


def _optimize_once(table, targets, config):
    """One run of `_optimize`: (theta (m, rows, cols), history) as numpy."""
    objectives = list(targets)
    scale = normalizers(table, targets)
    mask = np.asarray(table.mask, dtype=bool)
    values = np.stack([np.asarray(table.values[o], np.float64) / scale[o]
                       for o in objectives])
    fixed = np.array([table.fixed[o] / scale[o] for o in objectives])
    goal = np.array([targets[o] / scale[o] for o in objectives])
    rng = np.random.default_rng(config.seed)
    theta0 = config.init_std * rng.standard_normal(
        (config.num_proposals,) + mask.shape)
    slack = config.slack * config.tol * goal
    hyper = [config.learning_rate, config.beta, config.tau_start,
             config.tau_end, config.relax_tau, config.mode_scale,
             config.hold, config.mode_weight, config.entropy_weight]
    theta, history = _optimize(
        tf.constant(theta0, tf.float32), tf.constant(values, tf.float32),
        tf.constant(fixed, tf.float32), tf.constant(goal, tf.float32),
        tf.constant(slack, tf.float32), tf.constant(mask),
        tf.constant(config.iters, tf.int32),
        tf.constant(config.samples, tf.int32),
        tf.constant(config.seed, tf.int64), tf.constant(hyper, tf.float32),
        config.orthogonality, config.reduction == 'mean')
    return theta.numpy(), history.numpy()


def sample_architectures(logits, n, tau, seed, pi=None):
    """Draws n architectures (n, rows) of column indices from proposals.

    `logits` is (m, rows, cols) (or one proposal (rows, cols)); each draw
    picks a proposal from `pi` (probabilities, default uniform) and then one
    op per row by Gumbel-Max at temperature tau: argmax(theta / tau + g),
    a draw from softmax(theta / tau). `seed` is an int (numpy RNG).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 2:
        logits = logits[None]
    if not tau > 0:
        raise errors.UserError(f'temperature tau={tau} must be > 0')
    m = logits.shape[0]
    if pi is None:
        pi = np.full(m, 1.0 / m)
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape != (m,) or (pi < 0).any() or not pi.sum() > 0:
        raise errors.UserError(
            f'pi must be {m} non-negative probabilities, got {pi.tolist()}')
    rng = np.random.default_rng(seed)
    chosen = rng.choice(m, size=n, p=pi / pi.sum())
    noise = rng.gumbel(size=(n,) + logits.shape[1:])
    return np.argmax(logits[chosen] / tau + noise, axis=-1)


def ensemble_weights(pi_logits, proposal_logits, tau, sampler, seed,
                     mask=None, return_scores=False, pi_tau=None):
    """Eqs. 8-9: A = sum_i pi_i G(theta_i), differentiable in both.

    pi = sample(pi_logits) and A_i = sample(proposal_logits[i]) use the same
    sampler (`gumbel_max`: straight-through one-hots, so A is the draw of one
    proposal in the forward pass). `seed` is a shape-[2] int tensor; the
    proposal and op draws use seeds folded from it. Returns (A (rows, cols),
    pi (m,)), plus, with `return_scores`, the perturbed logits of the drawn
    proposal (see `sampling.sample`).
    """
    sampling.check_sampler(sampler)
    pi_seed = op_seed = None
    if sampler != 'softmax':
        if seed is None:
            raise errors.UserError(f'sampler {sampler!r} needs a seed')
        pi_seed = tf.random.fold_in(seed, 0)
        op_seed = tf.random.fold_in(seed, 1)
    pi = sampling.sample(pi_logits, tau if pi_tau is None else pi_tau,
                         sampler, pi_seed)
    per_proposal, scores = sampling.sample(
        proposal_logits, tau, sampler, op_seed, mask, return_scores=True)
    pi = tf.cast(pi, per_proposal.dtype)
    weights = tf.tensordot(pi, per_proposal, axes=[[0], [0]])
    if return_scores:
        scores = tf.tensordot(tf.stop_gradient(pi), scores, axes=[[0], [0]])
        return weights, pi, scores
    return weights, pi
