"""Measurements behind `tools/benchmark.py` (issue 10): supernet steps
(the figures and verdicts: `figures.py`).

Every function here measures one thing on synthetic tensors and returns
plain Python numbers (JSON-ready):

- `build_stage` / `build_contender`: the supernets as `run_search` builds
  them (stage 1: the vital layers with the stage-1 budget; stage 2: vital
  ops fixed to their largest op, non-vital layers drawn through m
  proposals with the resource budget), optionally reduced to the first
  `searched_layers` searched layers (the other searched-stage layers are
  removed, legal where they have an identity shortcut), the supernet
  drawing one fixed path (proposals concentrated on it), and the
  standalone `build_model` of that path doing the same work as a
  supernet step (`standalone_step`: a weight step, then a second
  forward/backward of the other batch).
- `first_step`: build + trace + first call (wall and process CPU s).
- `interleaved`: steady steps of several contenders alternated call by
  call in one process (machine load hits them alike).
- `step_memory`: peak of the TF allocator during steps (on CPU only with
  `TF_CPU_ALLOCATOR_USE_BFC=true` set before TensorFlow starts).
- `mixed_layer_ratio`: one `MixedLayer` single path vs all paths.
- `mac_bound`: the analytic all/single-path MAC ratio of a stage-2 layout.

Only public construction APIs of the supernet are used (`build_supernet`,
`SupernetConfig`, `MixedLayer`, `train_step`), so the measurements work for
any implementation of the step.
"""

import time

import numpy as np

from hournas_tf import spaces
from hournas_tf.common.errors import UserError
from hournas_tf.common.provenance import git_commit  # noqa: F401 (API)
from hournas_tf.common.provenance import machine  # noqa: F401 (API)
from hournas_tf.nas import stages
from hournas_tf.resources import counting
from hournas_tf.resources import tables

CONTENDERS = ('stage2_single', 'stage2_all', 'stage2_fixed', 'standalone',
              'stage1')
OBJECTIVES = ('macs', 'params')


def now():
    """(wall s, process CPU s) now."""
    return time.perf_counter(), time.process_time()


def since(start):
    """{'wall': s, 'cpu': s} elapsed since `start` (from `now()`)."""
    wall, cpu = now()
    return {'wall': wall - start[0], 'cpu': cpu - start[1]}


# --- The networks ---------------------------------------------------------

def get_space(name, image_size, width_multiplier, num_classes):
    return spaces.get_space(name, image_size=image_size,
                            num_classes=num_classes,
                            width_multiplier=width_multiplier)


def mid_targets(table):
    """Targets in the middle of the table's feasible range."""
    out = {}
    for obj in OBJECTIVES:
        lo, hi = tables.feasible_range(table, obj)
        out[obj] = 0.5 * (lo + hi)
    return out


def fixed_path(space, searched):
    """{layer: op}: a legal, mixed op per searched layer (no skip)."""
    out = {}
    for r, i in enumerate(searched):
        ops = [op for op in space.layers[i].candidates if op != 'skip']
        out[i] = ops[(r * 4 + 1) % len(ops)]
    return out


def build_stage(space, stage, sampler, searched_layers=None, fixed=False,
                   seed=0, num_proposals=8):
    """A compiled supernet of `stage` (see `stages.layout`); with `fixed`
    (stage 2), proposals concentrated on `fixed_path` so that every draw is
    that path (the sampling, straight-through and resource work stay)."""
    import keras

    from hournas_tf.nas import supernet as supernet_lib

    keras.utils.set_random_seed(seed)
    searched, fixed_ops = stages.layout(space, stage, searched_layers)
    table = tables.resource_table(space, searched, fixed_ops, OBJECTIVES)
    targets = mid_targets(table)
    proposals = None
    if stage == 1:
        budget = stages.stage1_budget(space, targets, 0.03, table=table)
    else:
        budget = stages.stage2_budget(table, targets, 0.03)
        rng = np.random.default_rng(seed)
        proposals = rng.normal(size=(num_proposals, len(searched),
                                     len(space.op_names))).astype(np.float32)
        if fixed:
            path = fixed_path(space, searched)
            proposals = np.zeros_like(proposals)
            for r, i in enumerate(searched):
                proposals[:, r, space.op_names.index(path[i])] = 1e3
    config = supernet_lib.SupernetConfig(sampler=sampler, total_steps=1000,
                                         seed=seed)
    return stages.build(space, searched, fixed_ops, config, budget,
                        proposals)


def fixed_architecture(space, searched_layers=None):
    """The `Architecture` of the stage-2 fixed path (removed layers:
    skip)."""
    from hournas_tf.spaces.architecture import Architecture

    searched, fixed_ops = stages.layout(space, 2, searched_layers)
    ops = {**fixed_ops, **fixed_path(space, searched)}
    names = tuple(ops.get(i, 'skip') for i in range(len(space.layers)))
    return Architecture(space.name, names, image_size=space.image_size,
                        num_classes=space.num_classes,
                        width_multiplier=space.width_multiplier)


def standalone_step(model, weight_lr=0.1, momentum=0.9, weight_decay=4e-5,
                    total_steps=1000, jit_compile=False):
    """A `tf.function` doing a supernet step's work on a plain model: SGD
    (momentum, cosine decay, L2 on the gradient) on (x_w, y_w), then a
    forward and a backward (to the input) on (x_a, y_a)."""
    import keras
    import tensorflow as tf

    weight_vars = model.trainable_variables
    schedule = keras.optimizers.schedules.CosineDecay(weight_lr, total_steps)
    optimizer = keras.optimizers.SGD(schedule, momentum=momentum)
    optimizer.build(weight_vars)

    def ce(y, logits):
        return tf.reduce_mean(tf.cast(
            keras.losses.sparse_categorical_crossentropy(
                y, logits, from_logits=True), tf.float32))

    def step(data):
        (x_w, y_w), (x_a, y_a) = data
        with tf.GradientTape() as tape:
            loss = ce(y_w, model(x_w, training=True))
        grads = tape.gradient(loss, weight_vars)
        optimizer.apply([g + weight_decay * v
                         for g, v in zip(grads, weight_vars)], weight_vars)
        with tf.GradientTape() as tape:
            tape.watch(x_a)
            arch_loss = ce(y_a, model(x_a, training=True))
        gx = tape.gradient(arch_loss, x_a)
        return {'loss': loss, 'arch_loss': arch_loss,
                'g': tf.reduce_sum(tf.cast(gx, tf.float32))}

    return tf.function(step, autograph=False, jit_compile=jit_compile)


def build_contender(name, space, searched_layers=None, jit_compile=False,
                    stage1_sampler='gumbel_softmax'):
    """(object kept alive, step function) of a contender in `CONTENDERS`."""
    import tensorflow as tf

    if name == 'standalone':
        from hournas_tf.blocks.model import build_model

        model = build_model(fixed_architecture(space, searched_layers))
        return model, standalone_step(model, jit_compile=jit_compile)
    if name == 'stage1':
        net = build_stage(space, 1, stage1_sampler, searched_layers)
    elif name in ('stage2_single', 'stage2_all', 'stage2_fixed'):
        sampler = 'gumbel_softmax' if name == 'stage2_all' else 'gumbel_max'
        net = build_stage(space, 2, sampler, searched_layers,
                             fixed=name == 'stage2_fixed')
    else:
        raise UserError(f'unknown contender {name!r}; valid: '
                        f'{", ".join(CONTENDERS)}')
    return net, tf.function(net.train_step, autograph=False,
                            jit_compile=jit_compile)


def synthetic_batches(space, batch_size, seed=0, dtype='float32'):
    """((x_w, y_w), (x_a, y_a)): random images and labels."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    s = space.image_size

    def split():
        x = rng.normal(size=(batch_size, s, s, 3)).astype(dtype)
        y = rng.integers(0, space.num_classes, size=(batch_size,))
        return tf.constant(x), tf.constant(y, tf.int64)

    return split(), split()


def sync(out):
    """Waits for a step's outputs (reads them to the host)."""
    import tensorflow as tf

    for v in tf.nest.flatten(out):
        if hasattr(v, 'numpy'):
            v.numpy()


# --- Timing ---------------------------------------------------------------

def warm_up():
    """Pays TensorFlow's and Keras' one-time costs (first function trace,
    first gradient, first optimizer) before anything is timed, so that the
    first contender of a process is not charged for them."""
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((8, 8, 3)),
                              keras.layers.Conv2D(4, 3),
                              keras.layers.BatchNormalization(),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2)])
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)

    @tf.function(autograph=False)
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    step(tf.zeros((2, 8, 8, 3))).numpy()


def first_step(build, data):
    """Builds (`build()` -> (keep, tf.function step)), traces and runs the
    first step. Returns (keep, step, {'build', 'trace', 'first_call',
    'total'} each {'wall', 'cpu'} s)."""
    start = now()
    keep, step = build()
    out = {'build': since(start)}
    t = now()
    step.get_concrete_function(data)
    out['trace'] = since(t)
    t = now()
    sync(step(data))
    out['first_call'] = since(t)
    out['total'] = since(start)
    return keep, step, out


def interleaved(steps, data, rounds, warmup=5):
    """Times `rounds` rounds of one call of every step in `steps` ({name:
    fn}), alternating, after `warmup` untimed rounds (a supernet step
    draws its own path, and a branch's function is instantiated when it
    first runs: mixed.switch_case); returns {name: {'wall': [s], 'cpu':
    [s]}}."""
    for _ in range(warmup):
        for fn in steps.values():
            sync(fn(data))
    times = {name: {'wall': [], 'cpu': []} for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            t = now()
            sync(fn(data))
            d = since(t)
            times[name]['wall'].append(d['wall'])
            times[name]['cpu'].append(d['cpu'])
    return times


def round_ratio(times, num, den, kind='wall'):
    """Median over rounds of times[num] / times[den] (None if missing)."""
    if num not in times or den not in times:
        return None
    a, b = times[num][kind], times[den][kind]
    if not a or not b:
        return None
    return float(np.median(np.asarray(a) / np.asarray(b)))


def memory_supported(device='CPU:0'):
    """Whether the allocator reports a peak (CPU: needs the BFC env)."""
    import tensorflow as tf

    try:
        tf.config.experimental.reset_memory_stats(device)
        return True
    except (ValueError, RuntimeError, tf.errors.OpError):
        return False


def step_memory(fn, data, steps=2, device='CPU:0'):
    """{'peak_mb', 'resident_mb', 'step_mb'}: the allocator's peak during
    `steps` calls, the bytes in use before them, and the difference (the
    step's activations and temporaries); None where unsupported."""
    import tensorflow as tf

    if not memory_supported(device):
        return None
    before = tf.config.experimental.get_memory_info(device)['current']
    tf.config.experimental.reset_memory_stats(device)
    for _ in range(steps):
        sync(fn(data))
    peak = tf.config.experimental.get_memory_info(device)['peak']
    mb = 2.0**20
    return {'peak_mb': peak / mb, 'resident_mb': before / mb,
            'step_mb': (peak - before) / mb}


def rss_mb():
    """The process' peak resident set (MB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- Single path vs all paths of one layer ---------------------------------

def mixed_layer_ratio(space, layer_index, batch_size, rounds, seed=0):
    """Forward + backward of one `MixedLayer` (layer `layer_index`'s
    candidates, as stage 2 builds it): all paths vs single path, the
    single path averaged over every op (the mean path). Interleaved; returns
    times, the median per-round ratio and the layer's O."""
    import keras
    import tensorflow as tf

    from hournas_tf.blocks import layers as hl
    from hournas_tf.nas.mixed import MixedLayer

    keras.utils.set_random_seed(seed)
    layer = space.layers[layer_index]
    ops = layer.candidates
    columns = [space.op_names.index(op) for op in ops]
    residual = layer.has_shortcut

    def make(single):
        branches = [hl.make_op(space, layer_index, op, name=op,
                               add_shortcut=not residual) for op in ops]
        mixed = MixedLayer(branches, columns, single, residual,
                           name=f'mixed_{"single" if single else "all"}')
        mixed.build((batch_size, layer.in_size, layer.in_size, layer.c_in))
        return mixed

    layers = {'single': make(True), 'all': make(False)}
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(batch_size, layer.in_size,
                                     layer.in_size, layer.c_in)
                               ).astype(np.float32))
    cols = len(space.op_names)

    def step_fn(mixed):
        variables = mixed.trainable_variables

        def step(x, w):
            with tf.GradientTape() as tape:
                tape.watch(x)
                tape.watch(w)
                y = mixed(x, w, training=True)
                loss = tf.reduce_mean(tf.square(y))
            grads = tape.gradient(loss, [x, w] + variables)
            return tf.add_n([tf.reduce_sum(g) for g in grads
                             if g is not None])
        return tf.function(step, autograph=False)

    fns = {k: step_fn(v) for k, v in layers.items()}
    one_hots = [tf.one_hot(c, cols) for c in columns]
    uniform = tf.constant(np.where(np.isin(np.arange(cols), columns),
                                   1.0 / len(columns), 0.0), tf.float32)
    for w in one_hots:  # trace and warm every branch
        fns['single'](x, w).numpy()
    fns['all'](x, uniform).numpy()
    times = {'single': {'wall': [], 'cpu': []},
             'all': {'wall': [], 'cpu': []}}
    for _ in range(rounds):
        t = now()
        fns['all'](x, uniform).numpy()
        d = since(t)
        times['all']['wall'].append(d['wall'])
        times['all']['cpu'].append(d['cpu'])
        walls, cpus = [], []
        for w in one_hots:
            t = now()
            fns['single'](x, w).numpy()
            d = since(t)
            walls.append(d['wall'])
            cpus.append(d['cpu'])
        times['single']['wall'].append(float(np.mean(walls)))
        times['single']['cpu'].append(float(np.mean(cpus)))
    macs = [counting.op_cost(space, layer_index, op).macs for op in ops]
    return {'layer': layer_index + 1, 'ops': len(ops),
            'in_size': layer.in_size, 'c_in': layer.c_in,
            'c_out': layer.c_out, 'times': times,
            'ratio_wall': round_ratio(times, 'all', 'single', 'wall'),
            'ratio_cpu': round_ratio(times, 'all', 'single', 'cpu'),
            'mac_ratio': float(sum(macs) / np.mean(macs)) if sum(macs)
            else None}


def mac_bound(space, searched_layers=None):
    """Analytic all-path / single-path MAC ratio of the stage-2 layout:
    (fixed + sum of all ops) / (fixed + mean op) over the searched layers
    (training costs ~3x forward MACs on both sides)."""
    searched, fixed_ops = stages.layout(space, 2, searched_layers)
    fixed = (counting.stem_cost(space).macs + counting.head_cost(space).macs
             + counting.classifier_cost(space).macs
             + sum(counting.op_cost(space, i, op).macs
                   for i, op in fixed_ops.items()))
    mean = total = 0.0
    for i in searched:
        macs = [counting.op_cost(space, i, op).macs
                for op in space.layers[i].candidates]
        mean += float(np.mean(macs))
        total += float(sum(macs))
    ops = float(np.mean([len(space.layers[i].candidates) for i in searched]))
    return {'fixed_macs': fixed, 'mean_path_macs': mean,
            'all_ops_macs': total, 'ops_per_layer': ops,
            'bound': (fixed + total) / (fixed + mean)}
