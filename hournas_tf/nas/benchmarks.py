"""Measurements behind `tools/benchmark.py` (issue 10): supernet steps.

Every function here measures one thing on synthetic tensors and returns
plain Python numbers (JSON-ready):

- `stage_layout` / `build_contender`: the supernets as `run_search` builds
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
- `figures`: the issue's figures a-g with goals and verdicts, from the
  results of the cases.

Only public construction APIs of the supernet are used (`build_supernet`,
`SupernetConfig`, `MixedLayer`, `train_step`), so the measurements work for
any implementation of the step.
"""

import os
import time

import numpy as np

from hournas_tf import spaces
from hournas_tf.common.errors import UserError
from hournas_tf.common.provenance import git_commit  # noqa: F401 (API)
from hournas_tf.common.provenance import machine  # noqa: F401 (API)
from hournas_tf.resources import counting
from hournas_tf.resources import tables

CONTENDERS = ('stage2_single', 'stage2_all', 'stage2_fixed', 'standalone',
              'stage1')
OBJECTIVES = ('macs', 'params')
IMAGENET_IMAGES = 1_281_167
WEIGHT_SHARE = 0.8  # run_search: 80% of the images train the weights


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


def stage_layout(space, stage, searched_layers=None):
    """(searched, fixed_ops) of stage 1 or 2 as `run_search` builds them
    (vital ops: the largest), keeping the first `searched_layers` searched
    layers (all when None); the stage's other layers are removed (stage 1)
    or fixed to their vital op (stage 2's vital layers)."""
    from hournas_tf.nas.vital_policy import resolve_vital_ops

    vital = list(space.vital_layers)
    nonvital = [i for i in range(len(space.layers)) if i not in vital]
    vital_ops = resolve_vital_ops(space, 'max')
    if stage == 1:
        n = len(vital) if searched_layers is None else searched_layers
        # The vital layers past n keep their largest op (they cannot be
        # removed: no identity shortcut).
        return tuple(vital[:n]), {i: vital_ops[i] for i in vital[n:]}
    if stage != 2:
        raise UserError(f'stage {stage!r} must be 1 or 2')
    n = len(nonvital) if searched_layers is None else searched_layers
    return tuple(nonvital[:n]), dict(vital_ops)


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


def build_supernet(space, stage, sampler, searched_layers=None, fixed=False,
                   seed=0, num_proposals=8):
    """A compiled supernet of `stage` (see `stage_layout`); with `fixed`
    (stage 2), proposals concentrated on `fixed_path` so that every draw is
    that path (the sampling, straight-through and resource work stay)."""
    import keras

    from hournas_tf.nas import budget as budget_lib
    from hournas_tf.nas import supernet as supernet_lib

    keras.utils.set_random_seed(seed)
    searched, fixed_ops = stage_layout(space, stage, searched_layers)
    table = tables.resource_table(space, searched, fixed_ops, OBJECTIVES)
    targets = mid_targets(table)
    proposals = None
    if stage == 1:
        rest = [i for i in range(len(space.layers))
                if i not in space.vital_layers]
        rest_table = tables.resource_table(space, rest, {}, OBJECTIVES)
        free = {o: tables.free_range(rest_table, o) for o in OBJECTIVES}
        budget = budget_lib.Budget(table, targets, 0.03, free)
    else:
        budget = budget_lib.Budget(table, targets, 0.03)
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
    net = supernet_lib.build_supernet(space, searched, fixed_ops, config,
                                      budget=budget, proposals=proposals)
    net.compile()
    return net


def fixed_architecture(space, searched_layers=None):
    """The `Architecture` of the stage-2 fixed path (removed layers:
    skip)."""
    from hournas_tf.spaces.architecture import Architecture

    searched, fixed_ops = stage_layout(space, 2, searched_layers)
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
        net = build_supernet(space, 1, stage1_sampler, searched_layers)
    elif name in ('stage2_single', 'stage2_all', 'stage2_fixed'):
        sampler = 'gumbel_softmax' if name == 'stage2_all' else 'gumbel_max'
        net = build_supernet(space, 2, sampler, searched_layers,
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


def interleaved(steps, data, rounds, warmup=1):
    """Times `rounds` rounds of one call of every step in `steps` ({name:
    fn}), alternating; returns {name: {'wall': [s], 'cpu': [s]}}."""
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
    searched, fixed_ops = stage_layout(space, 2, searched_layers)
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


# --- Figures, goals and verdicts -------------------------------------------

FIRST_STEP_GOAL_S = 60.0      # d: fbnet stage 2 at 32x32, first step
DEMO_SEARCH_GOAL_S = 120.0    # d: the demo's whole search
FIXED_PATH_GOAL = 1.15        # b: supernet with one path / standalone
PROPOSALS_GOAL_S = 2.0        # e: 8 x 1000 iterations
GPU_SEARCH_GOAL_MIN = 20.0    # 2: projected full search on one H100


def _figure(figure, name, value, unit, goal=None, met=None, note='',
            case=None, command=None, **extra):
    return {'figure': figure, 'name': name, 'value': value, 'unit': unit,
            'goal': goal, 'met': met, 'note': note, 'case': case,
            'command': command, **extra}


def _ok(case):
    return case is not None and case.get('status') == 'ok'


def _describe(params):
    n = params.get('searched_layers')
    return (f'{params["space"]} {params["image_size"]}x'
            f'{params["image_size"]} w{params["width_multiplier"]:g} '
            f'b{params["batch_size"]}, '
            + ('all searched layers' if n is None else
               f'{n} searched layer{"s" if n != 1 else ""}'))


def _failed(figure, name, case_name, case):
    error = (case or {}).get('error', 'not run')
    return _figure(figure, name, None, '', met=False if case else None,
                   note=f'case {case_name} failed: {error}' if case else
                   f'case {case_name} not in this run', case=case_name)


def _with_contenders(results, *names):
    """(case name, case) of the first ok `steps` case holding `names`."""
    for case_name, case in _steps_cases(results, *names):
        if _ok(case):
            return case_name, case
    return None, None


def figures(results):
    """The issue's figures a-g (and the GPU throughput figures) from
    {case name: case record} (see tools/benchmark.py); each a dict with
    value, unit, goal, met (True/False/None: no goal or not judged) and a
    note giving the cause of a miss."""
    out = []
    out += _figures_a(results)
    out += _figures_b(results)
    out += _figures_c(results)
    out += _figures_d(results)
    out += _figures_e(results)
    out += _figures_f(results)
    out += _figures_g(results)
    out += _figures_gpu(results)
    return out


def _of_kind(results, kind):
    """(case name, case) of the cases of `kind`."""
    for case_name, case in results.items():
        if case.get('kind') == kind:
            yield case_name, case


def _steps_cases(results, *names):
    for case_name, case in _of_kind(results, 'steps'):
        if set(names) <= set(case['params'].get('contenders', ())):
            yield case_name, case


def _figures_a(results):
    out = []
    for case_name, case in _steps_cases(results, 'stage2_single',
                                        'stage2_all'):
        params = case['params']
        name = f'stage-2 step all paths / single path, {_describe(params)}'
        if not _ok(case):
            out.append(_failed('a', name, case_name, case))
            continue
        r = case['result']
        ops = r['mac_bound']['ops_per_layer']
        goal = 0.8 * ops
        ratio = round_ratio(r['times'], 'stage2_all', 'stage2_single')
        cpu = round_ratio(r['times'], 'stage2_all', 'stage2_single', 'cpu')
        bound = r['mac_bound']['bound']
        met = ratio >= goal
        note = (f'CPU-s ratio {cpu:.2f}; analytic MAC bound {bound:.2f}x '
                f'(fixed part {r["mac_bound"]["fixed_macs"] / 1e6:.0f}M, '
                f'mean path {r["mac_bound"]["mean_path_macs"] / 1e6:.0f}M, '
                f'all ops {r["mac_bound"]["all_ops_macs"] / 1e6:.0f}M MACs)')
        if not met and bound < goal:
            note += ('; miss caused by the MAC bound: the fixed part (stem, '
                     'vital layers, head) runs in both, so no single-path '
                     f'implementation can reach {goal:.1f}x here; see the '
                     'per-mixed-layer ratio')
        elif not met:
            note += '; below the MAC bound: per-step overheads'
        out.append(_figure('a', name, ratio, 'x', f'>= 0.8 O = {goal:.1f}',
                           met, note, case_name, mac_bound=bound,
                           cpu_ratio=cpu))
    for case_name, case in _of_kind(results, 'mixed_layer'):
        params = case['params']
        if not _ok(case):
            out.append(_failed('a', 'one mixed layer all / single path',
                               case_name, case))
            continue
        for lr in case['result']['layers']:
            goal = 0.8 * lr['ops']
            name = (f'one mixed layer (L{lr["layer"]}, {lr["in_size"]}x'
                    f'{lr["in_size"]}x{lr["c_in"]} -> {lr["c_out"]}) all / '
                    f'single path, {params["space"]} b'
                    f'{params["batch_size"]}, forward + backward')
            ratio = lr['ratio_wall']
            met = ratio >= goal
            note = (f'CPU-s ratio {lr["ratio_cpu"]:.2f}; MAC ratio '
                    f'{lr["mac_ratio"]:.1f} (= O)')
            if not met:
                note += ('; small ops are memory/overhead bound: all paths '
                         'cost less than O mean paths')
            out.append(_figure('a', name, ratio, 'x',
                               f'>= 0.8 O = {goal:.1f}', met, note,
                               case_name, cpu_ratio=lr['ratio_cpu']))
    return out


def _figures_b(results):
    out = []
    for case_name, case in _steps_cases(results, 'stage2_fixed',
                                        'standalone'):
        name = ('supernet step with one fixed path / standalone model, '
                + _describe(case['params']))
        if not _ok(case):
            out.append(_failed('b', name, case_name, case))
            continue
        t = case['result']['times']
        ratio = round_ratio(t, 'stage2_fixed', 'standalone')
        cpu = round_ratio(t, 'stage2_fixed', 'standalone', 'cpu')
        met = ratio <= FIXED_PATH_GOAL
        note = (f'CPU-s ratio {cpu:.2f}; per-round wall ratios '
                f'{_span(t, "stage2_fixed", "standalone")}')
        if not met:
            note += ('; the supernet step also samples the path, runs the '
                     'straight-through / resource-loss / Adam work of the '
                     'arch step and carries the other branches in its '
                     'switch_case ops')
        out.append(_figure('b', name, ratio, 'x', f'<= {FIXED_PATH_GOAL}',
                           met, note, case_name, cpu_ratio=cpu))
    return out


def _span(times, a, b):
    ratios = np.asarray(times[a]['wall']) / np.asarray(times[b]['wall'])
    return f'{ratios.min():.2f}-{ratios.max():.2f}'


def _figures_c(results):
    out = []
    for case_name, case in _steps_cases(results, 'stage1', 'stage2_single'):
        name = 'stage-1 step / stage-2 step, ' + _describe(case['params'])
        if not _ok(case):
            out.append(_failed('c', name, case_name, case))
            continue
        t = case['result']['times']
        ratio = round_ratio(t, 'stage1', 'stage2_single')
        med = {k: float(np.median(t[k]['wall']))
               for k in ('stage1', 'stage2_single')}
        out.append(_figure(
            'c', name, ratio, 'x', None, None,
            f'stage 1 ({case["result"]["stage1_sampler"]}) '
            f'{med["stage1"]:.2f} s, stage 2 (gumbel_max) '
            f'{med["stage2_single"]:.2f} s median wall; CPU-s ratio '
            f'{round_ratio(t, "stage1", "stage2_single", "cpu"):.2f}',
            case_name))
    return out


def _figures_d(results):
    out = []
    seen = set()
    for case_name, case in _of_kind(results, 'steps'):
        if not _ok(case):
            continue
        params = case['params']
        r = case['result']
        for contender, first in r['first_step'].items():
            key = (params['space'], params['image_size'],
                   params['width_multiplier'], params['searched_layers'],
                   contender)
            if key in seen or contender == 'stage2_fixed':
                continue
            seen.add(key)
            n = r['searched'][contender]
            full = r['full_searched'][contender]
            total = first['total']
            name = (f'first step (build + trace + first call) of '
                    f'{contender}, {_describe(params)}')
            goal = met = None
            note = (f'{total["wall"]:.1f} s wall; build '
                    f'{first["build"]["cpu"]:.1f} + trace '
                    f'{first["trace"]["cpu"]:.1f} + first call '
                    f'{first["first_call"]["cpu"]:.1f} CPU s')
            value = total['cpu']
            if (contender == 'stage2_single' and params['space'] == 'fbnet'
                    and params['image_size'] == 32):
                goal = f'<= {FIRST_STEP_GOAL_S:.0f} CPU s at {full} layers'
                if n == full:
                    met = value <= FIRST_STEP_GOAL_S
                else:
                    base = r['first_step'].get('standalone')
                    if base is not None:
                        base = base['total']['cpu']
                        projected = base + (value - base) * full / max(n, 1)
                        how = ('the standalone model of the same layout + '
                               'the supernet\'s extra cost scaled linearly '
                               'in the mixed layers')
                    else:
                        projected = value * full / max(n, 1)
                        how = ('linear in the layers, fixed part counted '
                               'per layer: an upper bound')
                    met = projected <= FIRST_STEP_GOAL_S
                    note += (f'; measured at {n} of {full} searched layers, '
                             f'projected to {full}: {projected:.0f} CPU s '
                             f'({how})')
                if not met:
                    note += ('; cause: every branch of every mixed layer is '
                             'traced, differentiated and instantiated before '
                             'the first step (graph mode), ~linear in the '
                             'branches')
            out.append(_figure('d', name, value, 'CPU s', goal, met, note,
                               case_name, wall=total['wall']))
    for case_name, case in _of_kind(results, 'demo_search'):
        name = 'the demo search, whole run (python -m hournas_tf.search)'
        if not _ok(case):
            out.append(_failed('d', name, case_name, case))
            continue
        r = case['result']
        met = r['wall'] <= DEMO_SEARCH_GOAL_S
        out.append(_figure(
            'd', name, r['wall'], 's wall', f'<= {DEMO_SEARCH_GOAL_S:.0f} s',
            met, f'{r["cpu"]:.0f} CPU s; load {r["loadavg"][0]:.1f}'
            + ('' if met else '; cause: the first step of each stage '
               'supernet (see above) and the steps of 2 x epochs'),
            case_name))
    return out


def _load(case):
    """'load L on N cores' of a case (1-minute load average)."""
    load = case.get('loadavg') or case.get('loadavg_before') or [0.0]
    return f'load {load[0]:.1f} on {os.cpu_count()} cores'


def _figures_e(results):
    out = []
    for case_name, case in _of_kind(results, 'proposals'):
        p = case['params']
        name = (f'space proposals {p["num_proposals"]} x {p["iters"]} '
                f'iterations ({p["space"]} {p["image_size"]}, '
                f'{case["result"]["rows"] if _ok(case) else "?"} layers)')
        if not _ok(case):
            out.append(_failed('e', name, case_name, case))
            continue
        r = case['result']
        out.append(_figure(
            'e', name + ', first call (incl. tracing)', r['first_wall'],
            's wall', f'< {PROPOSALS_GOAL_S:g} s',
            r['first_wall'] < PROPOSALS_GOAL_S,
            f'{r["first_cpu"]:.2f} CPU s' + (
                '' if r['first_wall'] < PROPOSALS_GOAL_S else
                '; cause: tracing the tf.while_loop on the first call, and '
                f'the machine load ({_load(case)})'),
            case_name))
        met = r['second_wall'] < PROPOSALS_GOAL_S
        note = f'{r["second_cpu"]:.2f} CPU s'
        if not met and r['second_cpu'] < PROPOSALS_GOAL_S:
            note += (f' (within the goal): the wall time is inflated by the '
                     f'machine load ({_load(case)})')
        out.append(_figure(
            'e', name + ', traced (second call)', r['second_wall'], 's wall',
            f'< {PROPOSALS_GOAL_S:g} s', met, note, case_name))
        out.append(_figure(
            'e', f'share of {r["samples"]:,} draws (tau {r["tau"]:g}) within '
            f'{p["tolerance"]:.0%} of every target', r['share_within'], '',
            None, None, f'targets {p["targets"]}', case_name))
    return out


def _figures_f(results):
    out = []
    for case_name, case in _steps_cases(results, 'stage2_single',
                                        'stage2_all'):
        name = ('peak step memory (allocator peak above resident) single / '
                'all paths, ' + _describe(case['params']))
        if not _ok(case):
            continue
        mem = case['result'].get('memory') or {}
        single, every = mem.get('stage2_single'), mem.get('stage2_all')
        if not single or not every:
            out.append(_figure('f', name, None, 'MB', None, None,
                               'allocator peak not available (set '
                               'TF_CPU_ALLOCATOR_USE_BFC=true)', case_name))
            continue
        out.append(_figure(
            'f', name, [single['step_mb'], every['step_mb']], 'MB', None,
            None, f'all / single {every["step_mb"] / single["step_mb"]:.2f}'
            f'; allocator peaks {single["peak_mb"]:.0f} / '
            f'{every["peak_mb"]:.0f} MB; process peak RSS '
            f'{case["result"]["rss_mb"]:.0f} MB', case_name))
    return out


def _figures_g(results):
    out = []
    steps_name, steps = _with_contenders(results, 'stage2_single')
    for case_name, case in _of_kind(results, 'input'):
        name = 'input pipeline images/s / stage-2 step consumption'
        if not _ok(case):
            out.append(_failed('g', name, case_name, case))
            continue
        r = case['result']
        pipeline = r['pipeline_images_per_s']
        note = (f'pipeline {pipeline:.0f} images/s ({r["dataset"]}, '
                f'{r["image_size"]}x{r["image_size"]}, b{r["batch_size"]}); '
                f'fbnet_b train step {r["model_images_per_s"]:.0f} images/s')
        consumption = ratio = met = None
        if _ok(steps):
            p = steps['params']
            med = float(np.median(
                steps['result']['times']['stage2_single']['wall']))
            consumption = 2 * p['batch_size'] / med
            ratio = pipeline / consumption
            met = ratio >= 1
            note += (f'; stage-2 step ({_describe(p)}) consumes '
                     f'{consumption:.0f} images/s (weight + arch batch)')
        out.append(_figure('g', name, ratio, 'x', '>= 1 (pipeline not the '
                           'bottleneck)', met, note, case_name,
                           pipeline_images_per_s=pipeline,
                           step_images_per_s=consumption))
    return out


def _figures_gpu(results):
    out = []
    for case_name, case in _of_kind(results, 'throughput'):
        p = case['params']
        label = (f'{"mixed " + p["policy"] if p["policy"] else "float32"}'
                 f'{", XLA" if p["xla"] else ""}')
        name = f'search throughput, {label}, {_describe(p)}'
        if not _ok(case):
            failed = _failed('gpu', name, case_name, case)
            if results.get('device') != 'gpu':
                failed['met'] = None  # the GPU plan on a CPU: never judged
            out.append(failed)
            continue
        r = case['result']
        on_gpu = r['device'].startswith('GPU')
        for stage in ('stage1', 'stage2'):
            s = r['stages'][stage]
            out.append(_figure(
                'gpu', f'{stage} images/s, {name}', s['images_per_s'],
                'images/s', None, None,
                f'{s["step_wall"]:.3f} s/step median, first step '
                f'{s["first_step"]["total"]["wall"]:.1f} s', case_name,
                device=r['device']))
        minutes = r['projected_minutes']
        goal = f'<= {GPU_SEARCH_GOAL_MIN:.0f} min on one H100'
        h100 = on_gpu and 'H100' in r['device_name']
        out.append(_figure(
            'gpu', f'projected search (1 vital + 1 non-vital epoch over '
            f'{IMAGENET_IMAGES:,} images), {name}', minutes, 'min', goal,
            (minutes <= GPU_SEARCH_GOAL_MIN) if h100 else None,
            f'on {r["device_name"]}' + ('' if h100 else
                                         ': not judged (not an H100)'),
            case_name, device=r['device']))
    return out


def projected_minutes(step_seconds, batch_size, images=IMAGENET_IMAGES):
    """Minutes of one epoch per stage: the weight split (80%) of `images`
    in batches of `batch_size`, each step also taking an arch batch
    (`run_search`); `step_seconds` {stage: s/step}."""
    steps = images * WEIGHT_SHARE / batch_size
    return sum(steps * s for s in step_seconds.values()) / 60.0
