import keras
import numpy as np
import pytest
import tensorflow as tf

import hournas_tf  # noqa: F401  (sets KERAS_BACKEND)
from hournas_tf import spaces
from hournas_tf.common.errors import UserError
from hournas_tf.nas import budget as budget_lib
from hournas_tf.nas import proposals
from hournas_tf.nas import supernet
from hournas_tf.nas.mixed import MixedLayer
from hournas_tf.resources import tables

BATCH = 4


def fbnet():
    return spaces.get_space('fbnet', image_size=32, num_classes=10,
                            width_multiplier=0.25)


def small_stage2(space):
    """Two searched non-vital layers, vital ops fixed, the rest removed."""
    vital = space.vital_layers
    searched = tuple(i for i in range(len(space.layers))
                     if i not in vital)[1:3]
    fixed = {i: 'k3_e1' for i in vital}
    return searched, fixed


def dataset(space, seed=0):
    rng = np.random.default_rng(seed)

    def split():
        x = rng.normal(size=(BATCH, 32, 32, 3)).astype('float32')
        y = rng.integers(0, space.num_classes, BATCH)
        return x, y

    return tf.data.Dataset.from_tensors((split(), split())).repeat()


def middle_targets(table):
    return {obj: float(np.mean(tables.feasible_range(table, obj)))
            for obj in ('macs', 'params')}


def middle_budget(table):
    return budget_lib.Budget(table, middle_targets(table))


def test_stage1_supernet_holds_only_the_vital_layers():
    space = fbnet()
    vital = tuple(space.vital_layers)
    net = supernet.build_supernet(space, vital)
    assert net.layer_indices == vital
    assert sorted(net.mixed_layers) == list(vital)
    mixed = [layer for layer in net._flatten_layers()
             if isinstance(layer, MixedLayer)]
    assert len(mixed) == len(vital)
    assert all(isinstance(b, MixedLayer) for b in net.blocks)
    for i, layer in net.mixed_layers.items():
        assert layer.name == f'layer{i + 1:02d}'
        assert len(layer.branches) == len(space.layers[i].candidates)
        assert layer.single_path
    # Nothing else in the net holds the ops of a searchable layer.
    names = {layer.name for layer in net._flatten_layers()}
    absent = set(range(len(space.layers))) - set(vital)
    assert not any(f'layer{i + 1:02d}' in names for i in absent)
    assert [tuple(v.shape) for v in net.arch_variables] == \
        [(len(vital), len(space.op_names))]
    assert not np.any(net.arch_params.theta.numpy())  # uniform start
    # Vital layers have no shortcut: their branches are whole ops.
    assert not any(layer.residual for layer in net.mixed_layers.values())
    assert float(net.tau.numpy()) == 5.0 and int(net.step.numpy()) == 0
    out = net(np.zeros((2, 32, 32, 3), 'float32'))
    assert tuple(out.shape) == (2, 10)


def test_removing_a_layer_without_shortcut_raises():
    space = fbnet()
    vital = space.vital_layers
    with pytest.raises(UserError, match='shortcut'):
        supernet.build_supernet(space, vital[1:])
    with pytest.raises(UserError, match='both searched and fixed'):
        supernet.build_supernet(space, vital, {vital[0]: 'k3_e1'})
    with pytest.raises(UserError, match='does not fit'):
        supernet.build_supernet(space, vital[1:], {vital[0]: 'skip'})
    with pytest.raises(UserError, match='out of range'):
        supernet.build_supernet(space, (99,))
    with pytest.raises(UserError, match='proposals must have shape'):
        supernet.build_supernet(space, vital, proposals=np.zeros((2, 3, 4)))
    with pytest.raises(UserError, match='sampler'):
        supernet.build_supernet(
            space, vital, config=supernet.SupernetConfig(sampler='x'))


def test_logits_get_gradients_under_gumbel_max():
    space = fbnet()
    searched, fixed = small_stage2(space)
    table = tables.resource_table(space, searched, fixed)
    budget = middle_budget(table)
    config = supernet.SupernetConfig(zero_init_residual=False)
    net = supernet.build_supernet(space, searched, fixed, config, budget)
    theta = net.arch_params.theta
    rng = np.random.default_rng(1)
    x = rng.normal(size=(BATCH, 32, 32, 3)).astype('float32')
    y = rng.integers(0, 10, BATCH)
    with tf.GradientTape(persistent=True) as tape:
        arch = net.sample_weights(net._seed(1))
        ce = net._cross_entropy(y, net(x, training=True, arch_weights=arch))
        resource = budget_lib.resource_loss(budget.table, budget.targets,
                                            arch)
    for loss in (ce, resource):
        g = tape.gradient(loss, theta).numpy()
        assert np.all(np.isfinite(g))
        assert np.abs(g[net.mask]).max() > 1e-4
        assert not np.any(g[~net.mask])
    # One-hot forward value.
    arch = arch.numpy()
    assert np.array_equal(np.sort(arch, axis=1)[:, -1], np.ones(len(arch)))
    assert np.count_nonzero(arch) == len(arch)


def test_proposal_mode_trains_with_fit_and_derives():
    space = fbnet()
    searched, fixed = small_stage2(space)
    table = tables.resource_table(space, searched, fixed)
    targets = middle_targets(table)
    result = proposals.optimize_proposals(
        table, targets, proposals.ProposalConfig(num_proposals=3, iters=10))
    config = supernet.SupernetConfig(total_steps=3, seed=3,
                                     budget_draws=4)
    net = supernet.build_supernet(space, searched, fixed, config,
                                  budget_lib.Budget(table, targets),
                                  result.logits)
    net.compile()
    before = [v.numpy().copy() for v in net.arch_variables]
    weights_before = [v.numpy().copy() for v in net.weight_variables]
    history = net.fit(dataset(space), epochs=1, steps_per_epoch=3,
                      verbose=0, shuffle=False).history
    for key in ('loss', 'accuracy', 'arch_loss', 'arch_accuracy',
                'resource_loss', 'tau', 'macs', 'params', 'within_tolerance',
                'arch_grad_norm/pi', 'resource_grad_norm/pi',
                *(f'arch_grad_norm/L{i + 1}' for i in searched),
                *(f'resource_grad_norm/L{i + 1}' for i in searched)):
        assert np.isfinite(history[key][0]), key
    # The paper's resource loss on the first draw (the default here) has a
    # gradient of its own, logged apart from the cross-entropy's.
    assert max(history[f'resource_grad_norm/L{i + 1}'][0]
               for i in searched) > 0
    assert 0.0 <= history['within_tolerance'][0] <= 1.0
    # The kept draw is within tolerance whenever the first draw is.
    assert history['within_tolerance'][0] >= \
        history['draw_within_tolerance'][0]
    assert int(net.step.numpy()) == 3
    assert float(net.tau.numpy()) == pytest.approx(5.0 * 0.9999 ** 3,
                                                   rel=1e-6)
    assert history['tau'][0] == pytest.approx(5.0 * 0.9999 ** 3, rel=1e-6)
    for b, v in zip(before, net.arch_variables):
        assert np.abs(v.numpy() - b).max() > 1e-4, v.path
    assert any(np.abs(v.numpy() - b).max() > 0
               for b, v in zip(weights_before, net.weight_variables))
    assert int(net.optimizer.iterations.numpy()) == 3
    assert int(net.arch_optimizer.iterations.numpy()) == 3

    probs = net.op_probabilities()
    assert probs.shape == (len(searched), len(space.op_names))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert not np.any(probs[~net.mask])
    assert net.proposal_probabilities().shape == (3,)
    assert net.proposal_op_probabilities().shape == (3,) + probs.shape
    derived = net.derive()
    assert sorted(derived) == list(searched)
    for i, op in derived.items():
        space.check_op(i, op)
    family = net.derive_proposals()
    assert len(family) == 3
    best = int(np.argmax(net.proposal_probabilities()))
    assert family[best] == derived
    assert history['macs'][0] == pytest.approx(float(
        budget_lib.expected_totals(table, probs)['macs']), rel=1e-3)


def test_gumbel_softmax_trains_one_step():
    space = fbnet()
    searched, fixed = small_stage2(space)
    config = supernet.SupernetConfig(sampler='gumbel_softmax', total_steps=1)
    net = supernet.build_supernet(space, searched, fixed, config)
    assert not any(layer.single_path for layer in net.mixed_layers.values())
    net.compile()
    theta = net.arch_params.theta.numpy().copy()
    history = net.fit(dataset(space), epochs=1, steps_per_epoch=1,
                      verbose=0, shuffle=False).history
    assert np.isfinite(history['loss'][0])
    assert np.isfinite(history['arch_loss'][0])
    moved = np.abs(net.arch_params.theta.numpy() - theta)
    assert moved[net.mask].min() > 0
    assert float(net.tau.numpy()) == pytest.approx(5.0 * 0.9999)
    for i, op in net.derive().items():
        space.check_op(i, op)


@pytest.mark.parametrize('name', ['mnasnet', 'proxyless', 'mobilenetv2',
                                  'efbnet'])
def test_each_other_space_builds_a_supernet_that_takes_a_step(name):
    """Stage 2 of each space at 32x32, width 0.25 (two searched layers,
    the vital layers fixed): one eager train step moves the weights and
    the logits, and the derived ops are the space's."""
    space = spaces.get_space(name, image_size=32, num_classes=10,
                             width_multiplier=0.25)
    vital = space.vital_layers
    searched = tuple(i for i in range(len(space.layers))
                     if i not in vital)[1:3]
    fixed = {i: next(op for op in space.layers[i].candidates if op != 'skip')
             for i in vital}
    # Without zero init: the first step's cross-entropy moves the logits
    # (with it they get no gradient at step 0, the test below).
    net = supernet.build_supernet(space, searched, fixed,
                                  supernet.SupernetConfig(
                                      total_steps=1,
                                      zero_init_residual=False))
    net.compile()
    assert sorted(net.mixed_layers) == sorted(searched)
    weights = [v.numpy().copy() for v in net.weight_variables]
    theta = net.arch_params.theta.numpy().copy()
    logs = net.train_step(next(iter(dataset(space))))
    assert np.isfinite(float(logs['loss'])), logs
    assert np.isfinite(float(logs['arch_loss'])), logs
    assert int(net.step.numpy()) == 1
    assert any(np.abs(v.numpy() - w).max() > 0
               for v, w in zip(net.weight_variables, weights))
    assert np.abs(net.arch_params.theta.numpy() - theta)[net.mask].max() > 0
    derived = net.derive()
    assert sorted(derived) == sorted(searched)
    for i, op in derived.items():
        space.check_op(i, op)


def test_mirrored_strategy_runs_one_fit_step():
    space = fbnet()
    searched, fixed = small_stage2(space)
    strategy = tf.distribute.MirroredStrategy(['/cpu:0'])
    with strategy.scope():
        net = supernet.build_supernet(
            space, searched, fixed, supernet.SupernetConfig(total_steps=1))
        net.compile()
    history = net.fit(dataset(space), epochs=1, steps_per_epoch=1,
                      verbose=0, shuffle=False).history
    assert np.isfinite(history['loss'][0])
    assert int(net.step.numpy()) == 1
    assert float(net.tau.numpy()) == pytest.approx(5.0 * 0.9999)


def trained_and_restored(tmp_path):
    """A net after one (eager) train step and a fresh one restored from its
    tf.train.Checkpoint."""
    space = fbnet()
    searched, fixed = small_stage2(space)
    config = supernet.SupernetConfig(total_steps=2, seed=5)
    net = supernet.build_supernet(space, searched, fixed, config)
    net.compile()
    net.train_step(next(iter(dataset(space))))
    path = tf.train.Checkpoint(model=net).save(str(tmp_path / 'ckpt'))
    other = supernet.build_supernet(space, searched, fixed, config)
    other.compile()
    tf.train.Checkpoint(model=other).restore(path).assert_consumed()
    return net, other


def depthwise(variable):
    return '/dw' in variable.path


def test_checkpoint_holds_the_whole_search_state(tmp_path):
    net, other = trained_and_restored(tmp_path)
    state = [net.variables, net.optimizer.variables,
             net.arch_optimizer.variables]
    restored = [other.variables, other.optimizer.variables,
                other.arch_optimizer.variables]
    for mine, theirs in zip(state, restored):
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            assert a.path == b.path
            np.testing.assert_array_equal(a.numpy(), b.numpy(), a.path)
    assert int(other.step.numpy()) == 1
    assert float(other.tau.numpy()) == pytest.approx(5.0 * 0.9999)
    assert int(other.optimizer.iterations.numpy()) == 1
    assert int(other.arch_optimizer.iterations.numpy()) == 1
    # Stateless seeds from (seed, step): the restored net draws the same.
    np.testing.assert_array_equal(net.sample_weights(net._seed(0)).numpy(),
                                  other.sample_weights(other._seed(0)))


def test_checkpoint_holds_depthwise_batch_norm_statistics(tmp_path):
    net, other = trained_and_restored(tmp_path)
    pairs = [(a, b) for a, b in zip(net.variables, other.variables)
             if depthwise(a) and not a.trainable]
    assert pairs
    for a, b in pairs:
        np.testing.assert_array_equal(a.numpy(), b.numpy(), a.path)


def test_copy_weights_from_stage1():
    space = fbnet()
    vital = tuple(space.vital_layers)
    stage1 = supernet.build_supernet(space, vital)
    ops = stage1.derive()
    searched, _ = small_stage2(space)
    stage2 = supernet.build_supernet(space, searched, ops)
    copied = stage2.copy_weights_from(stage1)
    assert {'stem', 'head', 'classifier'} <= set(copied)
    for i, op in ops.items():
        assert f'layer{i + 1:02d}/{op}' in copied
        src = stage1.mixed_layers[i].branches[
            space.layers[i].candidates.index(op)]
        dst = stage2.op_layers()[(i, op)]
        for a, b in zip(src.get_weights(), dst.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_stage2_starts_as_the_stage1_function():
    """Zero-initialized residual branches: inserting the non-vital blocks
    into the trained vital network does not change its outputs."""
    space = fbnet()
    vital = tuple(space.vital_layers)
    stage1 = supernet.build_supernet(space, vital)
    # Make stage 1's weights non-trivial (as after training).
    for v in stage1.weight_variables:
        v.assign(v + tf.random.stateless_normal(v.shape, (1, 2)) * 0.05)
    ops = stage1.derive()
    nonvital = [i for i in range(len(space.layers)) if i not in vital]
    x = np.random.default_rng(2).normal(size=(BATCH, 32, 32, 3)).astype(
        'float32')
    outputs = {}
    for zero in (True, False):
        stage2 = supernet.build_supernet(
            space, nonvital, ops, supernet.SupernetConfig(
                zero_init_residual=zero))
        stage2.copy_weights_from(stage1)
        arch = stage2.sample_weights(stage2._seed(0))
        outputs[zero] = stage2(x, training=True, arch_weights=arch).numpy()
    expected = stage1(x, training=True).numpy()
    np.testing.assert_allclose(outputs[True], expected, atol=1e-4)
    assert np.abs(outputs[False] - expected).max() > 1e-2


def ce_row_gradients(net, seeds, rng_seed=0, two_path=True):
    """|d CE / d logits| summed over columns, one row per searched layer,
    for each seed (eager: only the drawn branches run)."""
    rng = np.random.default_rng(rng_seed)
    x = rng.normal(size=(BATCH, 32, 32, 3)).astype('float32')
    y = rng.integers(0, 10, BATCH)
    rows = []
    for seed in seeds:
        with tf.GradientTape() as tape:
            arch, scores = net.sample_weights(
                tf.constant([seed, 1], tf.int64), return_scores=True)
            logits = net(x, training=True, arch_weights=arch,
                         scores=scores if two_path else None)
            ce = net._cross_entropy(y, logits)
        grads = tape.gradient(ce, net.arch_variables)
        rows.append(net.arch_params.row_norms(grads).numpy())
    return np.array(rows)


def test_every_nonvital_fbnet_layer_gets_a_cross_entropy_gradient():
    """Stage 2 of fbnet, every non-vital layer searched under gumbel_max:
    the minimum over rows (not the maximum) of |dCE/dtheta| is real."""
    space = fbnet()
    vital = space.vital_layers
    nonvital = [i for i in range(len(space.layers)) if i not in vital]
    # 16 at 224; at 32x32 and width 0.25 layers 1-2 both have 8 channels
    # and stride 1 (CIFAR layout), so layer 2 gets a shortcut too.
    assert len(nonvital) == 17
    net = supernet.build_supernet(
        space, nonvital, {i: 'k3_e6' for i in vital},
        supernet.SupernetConfig(zero_init_residual=False))
    # Each row summed over 3 draws (a draw of `skip` has F = 0).
    per_row = ce_row_gradients(net, seeds=(1, 2, 3)).sum(axis=0)
    assert per_row.shape == (17,)
    assert per_row.min() > 1e-4, per_row


def test_zero_initialized_stage2_rows_get_a_gradient_once_trained():
    """The default stage 2 (zero_init_residual, gumbel_max), 6 non-vital
    fbnet layers searched: each inserted branch starts at F = 0, so the
    cross-entropy gives theta no gradient before the weights move (the
    score multiplies F); one weight step on a draw gives every row whose
    drawn op is not skip one, on that draw (the test above starts without
    zero init)."""
    space = fbnet()
    vital = space.vital_layers
    nonvital = [i for i in range(len(space.layers)) if i not in vital][:6]
    net = supernet.build_supernet(
        space, nonvital, {i: 'k3_e6' for i in vital},
        supernet.SupernetConfig(weight_decay=0.0))
    assert net.config.zero_init_residual  # the default
    net.compile()
    seed = net._seed(0)  # the weight step's draw at step 0
    drawn = net.sample_weights(seed).numpy().argmax(axis=1)
    skip = np.array(space.op_names)[drawn] == 'skip'
    assert not skip.all()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, 32, 32, 3)).astype('float32')
    y = rng.integers(0, 10, BATCH)

    def rows():
        with tf.GradientTape() as tape:
            arch, scores = net.sample_weights(seed, return_scores=True)
            logits = net(x, training=True, arch_weights=arch, scores=scores)
            ce = net._cross_entropy(y, logits)
        grads = tape.gradient(ce, net.arch_variables)
        return net.arch_params.row_norms(grads).numpy()

    assert rows().max() == 0.0
    net.weight_step(x, y, 1.0)
    after = rows()
    # From exactly 0: every row whose drawn op is not skip, no skip row.
    np.testing.assert_array_equal(after > 0, ~skip)


def test_expected_resource_loss_is_silent_inside_the_budget():
    """With `resource_estimate='expected'` and a slack of one tolerance,
    proposals whose expected totals sit on the targets get no resource
    gradient: only the cross-entropy moves them (stage 2's default)."""
    space = fbnet()
    searched, fixed = small_stage2(space)
    table = tables.resource_table(space, searched, fixed)
    result = proposals.optimize_proposals(
        table, middle_targets(table),
        proposals.ProposalConfig(num_proposals=2, iters=10))
    probs = np.exp(result.logits - result.logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    expected = [table.fixed['macs'] + (probs[j] * table.values['macs']).sum()
                for j in range(2)]
    targets = {'macs': float(np.mean(expected))}
    spread = abs(expected[0] - expected[1]) / targets['macs']
    for slack, silent in ((spread + 0.01, True), (0.0, False)):
        # Branches not zero-initialized: the cross-entropy has a gradient
        # from the first step.
        config = supernet.SupernetConfig(
            total_steps=2, seed=3, resource_estimate='expected',
            resource_slack=slack / 0.03, zero_init_residual=False)
        net = supernet.build_supernet(
            space, searched, fixed, config,
            budget_lib.Budget(table, targets, 0.03), result.logits)
        net.compile()
        # One architecture step, eagerly (no train-step trace to pay for).
        _, (x_a, y_a) = next(iter(dataset(space)))
        (_, _, _, _, resource, ce_norms, resource_norms, _,
         _) = net.arch_step(x_a, y_a, 1.0)
        assert (float(tf.reduce_max(resource_norms)) == 0) == silent, (
            slack, resource_norms)
        assert float(resource) == 0 or not silent
        assert float(tf.reduce_max(ce_norms)) > 0


def test_every_vital_fbnet_layer_gets_a_gradient_from_two_paths():
    """Stage 1 under gumbel_max: vital layers feed conv + batch norm only.
    The single-path estimator is blind there (the control); the two-path
    estimator is not."""
    space = fbnet()
    net = supernet.build_supernet(space, tuple(space.vital_layers))
    blind = ce_row_gradients(net, seeds=(1, 2, 3), two_path=False)
    two = ce_row_gradients(net, seeds=(1, 2, 3))
    assert blind.max() < 1e-5, blind
    assert two.sum(axis=0).min() > 1e-4, two


def test_weight_step_moves_the_sampled_branch_only():
    """No weight decay: the classifier and the drawn branches' kernels
    move; the branches that did not run stay as they were."""
    space = fbnet()
    searched, fixed = small_stage2(space)
    config = supernet.SupernetConfig(weight_decay=0.0, seed=4,
                                     zero_init_residual=False)
    net = supernet.build_supernet(space, searched, fixed, config)
    net.compile()
    drawn = net.sample_weights(net._seed(0)).numpy().argmax(axis=1)
    kernels = {(i, op): [v for v in layer.trainable_weights
                         if 'kernel' in v.path]
               for (i, op), layer in net.op_layers().items()
               if i in searched and op != 'skip'}
    before = {key: [v.numpy().copy() for v in vs]
              for key, vs in kernels.items()}
    classifier = net.classifier.kernel.numpy().copy()
    (x, y), _ = next(iter(dataset(space)))
    net.weight_step(x, y, 1.0)
    assert np.abs(net.classifier.kernel.numpy() - classifier).max() > 0
    for (i, op), vs in kernels.items():
        row = searched.index(i)
        moved = [np.abs(v.numpy() - b).max() > 0
                 for v, b in zip(vs, before[(i, op)])]
        if space.op_names[drawn[row]] == op:
            assert all(moved), (i, op)
        else:
            assert not any(moved), (i, op)


def test_budget_draws_train_the_first_draw_within_tolerance():
    space = fbnet()
    searched, fixed = small_stage2(space)
    table = tables.resource_table(space, searched, fixed)
    targets = middle_targets(table)
    budget = budget_lib.Budget(table, targets, tolerance=0.1)
    config = supernet.SupernetConfig(budget_draws=8, seed=5)
    net = supernet.build_supernet(space, searched, fixed, config, budget)

    def ok(weights):
        return float(budget_lib.within_tolerance(budget, weights))

    raw, kept = [], []
    for step in range(60):
        seed = tf.constant([5, step], tf.int64)
        weights, _, first, first_ok = net.draw_in_budget(seed)
        np.testing.assert_array_equal(first, net.sample_weights(seed))
        assert float(first_ok) == ok(first)
        draws = [first] + [net.sample_weights(tf.random.fold_in(seed,
                                                                1000 + k))
                           for k in range(1, 8)]
        hits = [d for d in draws if ok(d)]
        np.testing.assert_array_equal(weights, hits[0] if hits else first)
        raw.append(ok(first))
        kept.append(ok(weights))
    # A space where a uniform draw often misses: the kept share is higher.
    assert 0.05 < np.mean(raw) < 0.7, np.mean(raw)
    assert np.mean(kept) > np.mean(raw) + 0.2


def test_many_budget_draws_keep_every_draw_within_and_its_gradient():
    # 64 candidates cost one vectorized draw; the kept draw is drawn again
    # from its seed, so the architecture step still gets its gradient.
    space = fbnet()
    searched, fixed = small_stage2(space)
    table = tables.resource_table(space, searched, fixed)
    budget = budget_lib.Budget(table, middle_targets(table), tolerance=0.1)
    net = supernet.build_supernet(
        space, searched, fixed,
        supernet.SupernetConfig(budget_draws=64, seed=5), budget)
    kept, raw = [], []
    for step in range(30):
        seed = tf.constant([5, step], tf.int64)
        with tf.GradientTape() as tape:
            weights, _, first, first_ok = net.draw_in_budget(seed)
            probe = tf.reduce_sum(weights * tf.range(
                weights.shape[-1], dtype=weights.dtype))
        grads = tape.gradient(probe, net.arch_variables)
        assert any(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0
                   for g in grads)
        kept.append(float(budget_lib.within_tolerance(budget, weights)))
        raw.append(float(first_ok))
    assert np.mean(raw) < 0.7, np.mean(raw)
    assert np.mean(kept) == 1.0, kept


def test_one_budget_draw_trains_every_draw_as_it_comes():
    space = fbnet()
    searched, fixed = small_stage2(space)
    table = tables.resource_table(space, searched, fixed)
    budget = budget_lib.Budget(table, middle_targets(table), tolerance=0.1)
    net = supernet.build_supernet(space, searched, fixed,
                                  supernet.SupernetConfig(seed=5), budget)
    for step in range(10):
        seed = tf.constant([5, step], tf.int64)
        weights, _, first, _ = net.draw_in_budget(seed)
        np.testing.assert_array_equal(weights, first)


def test_budget_draws_must_be_a_positive_integer():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(UserError, match='budget_draws'):
            supernet.SupernetConfig(budget_draws=bad).check()


def _steps_under(owner, switch, value, steps=2):
    """(metrics of each step, every variable after `steps` train steps) of
    a stage-2 supernet with resource loss, with `owner.switch = value`."""
    space = fbnet()
    searched, fixed = small_stage2(space)
    table = tables.resource_table(space, searched, fixed)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, len(searched), len(space.op_names)))
    config = supernet.SupernetConfig(total_steps=5, seed=2, budget_draws=3,
                                     sample_temperature=0.5)
    previous = getattr(owner, switch)
    setattr(owner, switch, value)
    try:
        keras.utils.set_random_seed(7)
        net = supernet.build_supernet(space, searched, fixed, config,
                                      middle_budget(table), logits)
        net.compile()
        data = next(iter(dataset(space, seed=4)))
        fn = tf.function(net.train_step, autograph=False)
        metrics = [{k: v.numpy() for k, v in fn(data).items()}
                   for _ in range(steps)]
        variables = [v.numpy() for v in net.variables
                     + net.optimizer.variables + net.arch_optimizer.variables]
    finally:
        setattr(owner, switch, previous)
    return metrics, variables


@pytest.mark.large
@pytest.mark.parametrize('owner,switch', [
    (supernet.SuperNet, 'tape_per_loss'), (MixedLayer, 'traced_bodies'),
    (MixedLayer, 'lower_switches')])
def test_build_time_switches_keep_the_train_step(owner, switch):
    """Each switch of tools/build_time.py changes how the step is traced,
    not what it computes: two steps give the same metrics and the same
    variables (weights, statistics, both optimizers) bit for bit. The
    other switches are compared with lowered switches: unlowered, a body
    traced inline in a branch function rounds some sums differently from
    the traced body (1e-5 of one gradient norm measured; docs/speed.md,
    "Unlowered switches")."""
    previous = MixedLayer.lower_switches
    if switch != 'lower_switches':
        MixedLayer.lower_switches = True
    try:
        on = _steps_under(owner, switch, True)
        off = _steps_under(owner, switch, False)
    finally:
        MixedLayer.lower_switches = previous
    assert on[0][0].keys() == off[0][0].keys()
    assert on[0][0]['loss'] != on[0][1]['loss']  # two different steps
    for a, b in zip(on[0], off[0]):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert len(on[1]) == len(off[1]) > 100
    for a, b in zip(on[1], off[1]):
        np.testing.assert_array_equal(a, b)
