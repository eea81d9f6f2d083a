"""One step with 2 mirrored CPU replicas against one step without a
strategy (same global batch, same weights, same sampled path, synchronized
batch norm): prints the largest difference of every variable as JSON.

    python tests/distribute_checks.py search_logits|search_proposals|train \
        [float64|float32] [full|small]

In float64 (the default) the differences are those of the distributed
computation itself. In float32 the report also has `floor`: the same
differences between two one-device steps whose batches hold the same
examples in another order (the float32 rounding of the step itself,
docs/distribute.md). `full` (the default, docs/distribute.md's table) is
fbnet at 32x32, stage 1 with every vital layer searched; `small` (the
tests) at 16x16, stage 1 with 2 vital layers searched and the others
fixed.

`worker STEPS` is one worker of a MultiWorkerMirroredStrategy search
(TF_CONFIG from the environment): STEPS search steps, then the
architecture parameters as JSON. `paths SEEDS` measures the spread of the
architecture gradient with one path for both replicas and with one path
per replica (docs/distribute.md).

Runs in a process of its own: the CPU is split into 2 logical devices
before TensorFlow initializes them (tests/test_distribute.py).
"""

import json
import sys

from hournas_tf import distribute

if sys.argv[1] != 'worker':
    DEVICES = distribute.split_cpu(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from hournas_tf import spaces  # noqa: E402
from hournas_tf.nas import budget as budget_lib  # noqa: E402
from hournas_tf.nas import proposals as proposals_lib  # noqa: E402
from hournas_tf.nas import supernet  # noqa: E402
from hournas_tf.resources import tables  # noqa: E402

BATCH = 8  # global; 4 per replica
SPACE = dict(image_size=32, num_classes=10, width_multiplier=0.25)
SIZES = {'full': 32, 'small': 16}  # image size
SMALL = False  # main() sets it for `small`


def space_params():
    return dict(SPACE, image_size=SIZES['small' if SMALL else 'full'])


def space():
    return spaces.get_space('fbnet', **space_params())


# The examples of a batch in another order, each replica's half swapped.
PERMUTATION = np.array([4, 5, 6, 7, 0, 1, 2, 3])


def search_dataset(seed=0, order=None):
    rng = np.random.default_rng(seed)
    order = np.arange(BATCH) if order is None else order

    def split():
        size = space_params()['image_size']
        x = rng.normal(size=(BATCH, size, size, 3)).astype(
            keras.config.floatx())
        return x[order], rng.integers(0, 10, BATCH)[order]

    return tf.data.Dataset.from_tensor_slices((split(), split())).batch(
        BATCH, drop_remainder=True).repeat()


def build_search(mode, sync=True):
    """A supernet factory: stage 1 (vital layers, logits, two-path) or
    stage 2 (proposals and pi, resource loss)."""
    s = space()
    if mode == 'logits':
        vital = tuple(s.vital_layers)
        budget = logits = None
        searched, fixed = (vital[:2], {i: 'k3_e1' for i in vital[2:]}) \
            if SMALL else (vital, {})
    else:
        vital = s.vital_layers
        searched = tuple(i for i in range(len(s.layers))
                         if i not in vital)[1:3]
        fixed = {i: 'k3_e1' for i in vital}
        table = tables.resource_table(s, searched, fixed)
        targets = {obj: float(np.mean(tables.feasible_range(table, obj)))
                   for obj in ('macs', 'params')}
        budget = budget_lib.Budget(table, targets)
        logits = proposals_lib.optimize_proposals(
            table, targets, proposals_lib.ProposalConfig(
                num_proposals=3, iters=10)).logits
    config = supernet.SupernetConfig(total_steps=4, seed=1,
                                     sync_batch_norm=sync, tau_init=1.0,
                                     zero_init_residual=False)

    def build():
        net = supernet.build_supernet(s, searched, fixed, config, budget,
                                      logits)
        net.compile()
        return net

    return build


def build_train():
    from hournas_tf.blocks.model import build_model
    from hournas_tf.spaces.architecture import Architecture
    from hournas_tf.training import config as config_lib
    from hournas_tf.training import recipes

    s = space()
    ops = [s.layers[i].candidates[i % len(s.layers[i].candidates)]
           for i in range(len(s.layers))]
    arch = Architecture('fbnet', ops, **space_params())
    config = config_lib.TrainConfig(arch=arch.to_string(), epochs=2,
                                    warmup_epochs=0)  # lr > 0 at step 0

    def build():
        model = build_model(arch, sync_batch_norm=True)
        model.compile(optimizer=recipes.make_optimizer(config, 2),
                      loss=recipes.make_loss(config.label_smoothing),
                      metrics=recipes.make_metrics(10))
        recipes.add_kernel_weight_decay(model, config.weight_decay)
        return model

    return build


def train_dataset(seed=0, order=None):
    rng = np.random.default_rng(seed)
    order = np.arange(BATCH) if order is None else order
    size = space_params()['image_size']
    x = rng.normal(size=(BATCH, size, size, 3)).astype(keras.config.floatx())
    y = tf.one_hot(rng.integers(0, 10, BATCH), 10, dtype=x.dtype)
    return tf.data.Dataset.from_tensor_slices(
        (x[order], y.numpy()[order])).batch(
        BATCH, drop_remainder=True).repeat()


def variables(model):
    """{name: [value on each replica]} of the model's and its
    optimizers' variables."""
    found = {}
    groups = [('model', model.variables), ('opt', model.optimizer.variables)]
    if getattr(model, 'arch_optimizer', None) is not None:
        groups.append(('arch_opt', model.arch_optimizer.variables))
    strategy = tf.distribute.get_strategy()
    for prefix, group in groups:
        for v in group:
            values = strategy.experimental_local_results(v.value)
            # Without the optimizer's name: a second optimizer of the
            # process is named e.g. sgd_1.
            path = v.path if prefix == 'model' else v.path.split('/', 1)[-1]
            found[f'{prefix}/{path}'] = [np.asarray(x) for x in values]
    return found


def differences(want, got):
    """{name: largest |difference| on any replica}."""
    assert sorted(want) == sorted(got), set(want) ^ set(got)
    return {name: max(float(np.max(np.abs(np.asarray(r, 'float64') -
                                          value), initial=0.0))
                      for r in got[name])
            for name, (value,) in want.items()}


def relative_differences(want, got, floor=1e-6):
    """{name: largest |difference| / max(its largest |value|, `floor` x the
    largest |value| of its optimizer)} of the optimizers' float variables
    (moments and momenta start at 0: their values are the step's
    gradients, scaled): a gradient off by a relative 1e-8 shows here,
    where an absolute bound on the variables misses it. (The floor: a
    gradient that is 0 but for rounding differs by about 100% of itself.)"""
    out = {}
    for group in ('opt/', 'arch_opt/'):
        names = [name for name, (value,) in want.items()
                 if name.startswith(group) and
                 np.issubdtype(np.asarray(value).dtype, np.floating)]
        largest = {name: float(np.max(np.abs(want[name][0]), initial=0.0))
                   for name in names}
        low = floor * max(largest.values(), default=0.0)
        for name in names:
            scale = max(largest[name], low)
            if scale > 0:
                out[name] = max(float(np.max(np.abs(
                    np.asarray(r, 'float64') - want[name][0]), initial=0.0))
                    for r in got[name]) / scale
    return out


def main(case, dtype='float64', size='full'):
    global SMALL
    if size not in SIZES:
        raise SystemExit(f'size {size!r}: valid are {", ".join(SIZES)}')
    SMALL = size == 'small'
    keras.config.set_floatx(dtype)
    keras.utils.set_random_seed(0)
    if case == 'train':
        build, data = build_train(), train_dataset
    else:
        build, data = build_search(case.split('_')[1]), search_dataset
    single = build()
    weights = single.get_weights()
    single.fit(data(), epochs=1, steps_per_epoch=1, verbose=0,
               shuffle=False)
    want = variables(single)
    report = {'dtype': dtype, 'image_size': space_params()['image_size']}
    if dtype == 'float32':
        again = build()
        again.set_weights(weights)
        again.fit(data(order=PERMUTATION), epochs=1, steps_per_epoch=1,
                  verbose=0, shuffle=False)
        report['floor'] = differences(want, variables(again))
    mirrored = tf.distribute.MirroredStrategy(DEVICES)
    assert mirrored.num_replicas_in_sync == 2
    with mirrored.scope():
        net = build()
        net.set_weights(weights)
    net.fit(data(), epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
    with mirrored.scope():
        got = variables(net)
    diffs = differences(want, got)
    moved = sum(not np.array_equal(a, b) for a, b in zip(
        weights, single.get_weights()))
    report.update({'max_diff': max(diffs.values()),
                   'worst': max(diffs, key=diffs.get),
                   'variables': len(diffs), 'moved': moved,
                   'diffs': diffs,
                   'relative': relative_differences(want, got)})
    print(json.dumps(report))


def worker(steps):
    """One worker of a 2-worker search: prints its architecture parameters
    after `steps` steps."""
    strategy = distribute.make_strategy('multi_worker_mirrored')
    build = build_search('proposals')
    with strategy.scope():
        net = build()
    start = {v.path: np.asarray(v.numpy()).tolist()
             for v in net.arch_variables}
    net.fit(search_dataset(), epochs=1, steps_per_epoch=steps, verbose=0,
            shuffle=False)
    print(json.dumps({'replicas': strategy.num_replicas_in_sync,
                      'step': int(net.step.numpy()), 'start': start,
                      'arch': {v.path: np.asarray(v.numpy()).tolist()
                               for v in net.arch_variables}}))


def path_gradients(seeds, batch=16, replicas=2):
    """The architecture gradient (cross-entropy) of a fresh stage-2
    supernet on one fixed batch, split over `replicas` as a mirrored run
    splits it (batch norm per replica), for each seed: one path for all
    replicas (`shared`), one per replica (`per_replica`) and one path on
    the whole batch (`single`). Returns {name: (seeds, size) array}."""
    net = build_search('proposals', sync=False)()
    rng = np.random.default_rng(5)
    x = rng.normal(size=(batch, 32, 32, 3)).astype('float32')
    y = rng.integers(0, 10, batch)
    halves = [(x[r::replicas], y[r::replicas]) for r in range(replicas)]

    @tf.function
    def grad(xs, ys, seed):
        with tf.GradientTape() as tape:
            arch, scores = net.sample_weights(seed, return_scores=True)
            logits = net(xs, training=True, arch_weights=arch,
                         scores=scores)
            ce = net._cross_entropy(ys, logits)
        return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(
            ce, net.arch_variables)], 0)

    def seed_of(k, r=None):
        seed = tf.constant([7, k], tf.int64)
        if r is None:
            return seed
        return tf.random.experimental.stateless_fold_in(seed, r)

    out = {'shared': [], 'per_replica': [], 'single': []}
    for k in range(seeds):
        out['shared'].append(np.mean([grad(xs, ys, seed_of(k)).numpy()
                                      for xs, ys in halves], axis=0))
        out['per_replica'].append(np.mean(
            [grad(xs, ys, seed_of(k, r)).numpy()
             for r, (xs, ys) in enumerate(halves)], axis=0))
        out['single'].append(grad(x, y, seed_of(k)).numpy())
    return {k: np.array(v) for k, v in out.items()}


def paths(seeds):
    """Prints, for each way of drawing, the spread of the gradient over
    the seeds relative to the size of the mean gradient."""
    grads = path_gradients(seeds)
    mean = np.mean(np.concatenate([grads['shared'], grads['per_replica']]),
                   axis=0)
    report = {'seeds': seeds}
    for name, g in grads.items():
        spread = float(np.sum(np.var(g, axis=0, ddof=1)))
        report[name] = {
            'total_variance': spread,
            'relative_variance': spread / float(np.sum(mean ** 2)),
            'cosine_to_mean': float(np.mean(
                g @ mean / (np.linalg.norm(g, axis=1) *
                            np.linalg.norm(mean) + 1e-30)))}
    print(json.dumps(report))


if __name__ == '__main__':
    if sys.argv[1] == 'worker':
        worker(int(sys.argv[2]))
    elif sys.argv[1] == 'paths':
        paths(int(sys.argv[2]))
    else:
        main(*sys.argv[1:4])
