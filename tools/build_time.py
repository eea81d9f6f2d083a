"""First-step build cost and steady step time of a search supernet.

Builds a supernet the way `run_search` builds its stages and times, in
process CPU seconds (tracing is single-threaded Python, so CPU seconds are
about the wall seconds of an unloaded machine):
trace (`get_concrete_function` of the train step), first call (graph
instantiation + one step) and the median of `--steps` further steps.

- stage 2: the non-vital layers searched (Gumbel-Max, proposals, resource
  budget), the vital layers fixed to their largest op;
- stage 1: the vital layers only (`--vital_sampler`, no resource loss).

    python tools/build_time.py --space=fbnet --stage=2
    python tools/build_time.py --space=efficientnet --stage=1 \
        --sampler=gumbel_softmax --json=-

Run one process per variant (a traced 17-layer fbnet supernet holds ~5 GB).
"""

import json
import os
import time

from absl import flags

from hournas_tf import command_flags
from hournas_tf.common import runner

FLAGS = flags.FLAGS


def define_flags():
    """Defines the tool's flags (only when run as a script)."""
    command_flags.define_space_flags(command_flags.demo_space(
        space='fbnet'))
    flags.DEFINE_integer('batch_size', 64, 'Batch of each split.',
                         lower_bound=1)
    flags.DEFINE_enum('stage', '2', ['1', '2'], '1: the vital layers; 2: the '
                      'non-vital layers, vital ones fixed to their max op.')
    flags.DEFINE_integer('layers', None, 'Stage 2: search only the first N '
                         'non-vital layers (the others fixed to their max '
                         'op); default all.', lower_bound=1)
    flags.DEFINE_string('sampler', None, 'Sampler; default gumbel_max in '
                        'stage 2, gumbel_softmax in stage 1 (the demo).')
    flags.DEFINE_integer('num_proposals', 8, 'Stage 2 proposals (random '
                         'logits).', lower_bound=1)
    flags.DEFINE_bool('fused_batch_norm', True, 'Fused batch norm in '
                      'training (FusedBatchNormalization.enabled); false: '
                      "Keras' own.")
    flags.DEFINE_bool('raw_branches', True, 'Branches of a mixed layer run '
                      'as TensorFlow ops in training (MixedLayer.'
                      "raw_branches); false: each through its Keras call.")
    flags.DEFINE_bool('share_structure', True, 'Single path: branches of '
                      'one structure run as one body on the chosen '
                      "branch's weights (MixedLayer.share_structure).")
    flags.DEFINE_bool('traced_bodies', True, 'Shared bodies are one '
                      'tf.function per structure and input shape, called by '
                      'every layer and both steps (MixedLayer.traced_bodies)'
                      '; false: traced inline in every switch.')
    flags.DEFINE_bool('lower_switches', False, 'Lower every switch of the '
                      'step to switch/merge nodes, as TensorFlow does by '
                      'default (MixedLayer.lower_switches); false: each '
                      'Case op calls its branch functions.')
    flags.DEFINE_bool('tape_per_loss', True, 'Architecture step: one '
                      'tape per loss (SuperNet.tape_per_loss); false: one '
                      'persistent tape for both.')
    flags.DEFINE_integer('budget_draws', 64, 'Draws per step to find one '
                         "within tolerance (the search's --budget_draws).",
                         lower_bound=1)
    flags.DEFINE_float('sample_temperature', 0.05, 'Stage 2: temperature '
                       'of the draws from the random proposals (0.05: '
                       'nearly their argmax; 1: as spread as a search\'s '
                       'draws, so later steps run branches for the first '
                       'time).', lower_bound=0.01)
    flags.DEFINE_integer('steps', 5, 'Steps timed after the first.',
                         lower_bound=1)
    flags.DEFINE_string('label', None, 'What this run measures (e.g. '
                        "'Keras batch norm'); kept in the JSON, shown by "
                        'tools/benchmarks_md.py for benchmarks/speed/*.json.')
    flags.DEFINE_string('json', None, "Also write the results as JSON to this "
                        "file ('-' for stdout).")


def build(space_name, image_size, width_multiplier, num_classes, stage,
          layers=None, sampler=None, num_proposals=8, seed=0,
          budget_draws=8, sample_temperature=0.05):
    """(supernet, number of searched layers) built and compiled as
    `run_search` builds stage `stage` ('1' or '2')."""
    import numpy as np

    from hournas_tf import spaces
    from hournas_tf.nas import stages
    from hournas_tf.nas import supernet as supernet_lib
    from hournas_tf.resources import tables

    space = spaces.get_space(space_name, image_size=image_size,
                             num_classes=num_classes,
                             width_multiplier=width_multiplier)
    objectives = ('macs', 'params')
    if stage == '1':
        searched, fixed = list(space.vital_layers), {}
        table = tables.resource_table(space, searched, {}, objectives)
        free = stages.free_ranges(space, objectives)
        targets = {o: float(np.mean(tables.feasible_range(table, o)))
                   + float(np.mean(free[o])) for o in objectives}
        budget = stages.stage1_budget(space, targets, 0.03, table=table)
        config = supernet_lib.SupernetConfig(
            sampler=sampler or 'gumbel_softmax', alpha=0.0, seed=seed,
            budget_draws=budget_draws)
        proposals = None
    else:
        nonvital = stages.nonvital_layers(space)
        searched = nonvital[:layers] if layers else nonvital
        fixed = {i: space.layers[i].candidates[-1]
                 for i in range(len(space.layers)) if i not in searched}
        table = tables.resource_table(space, searched, fixed, objectives)
        targets = {o: float(np.mean(tables.feasible_range(table, o)))
                   for o in objectives}
        budget = stages.stage2_budget(table, targets, 0.03)
        rng = np.random.default_rng(seed)
        proposals = rng.normal(size=(num_proposals, len(searched),
                                     len(space.op_names)))
        config = supernet_lib.SupernetConfig(
            sampler=sampler or 'gumbel_max', seed=seed,
            sample_temperature=sample_temperature,
            budget_draws=budget_draws)
    net = stages.build(space, searched, fixed, config, budget, proposals)
    return net, len(searched)


def measure(net, image_size, num_classes, batch_size, steps, seed=0):
    """{'trace_cpu_s', 'first_call_cpu_s', 'first_step_cpu_s',
    'first_step_wall_s', 'step_cpu_s', 'step_wall_s' (medians),
    'steps_total_cpu_s', 'steps_cpu_s' (each step)} of `net.train_step`
    traced with autograph off, as Keras traces it. Each step draws its own
    architecture, so steps that run a branch for the first time show its
    one-time cost there."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def split():
        x = rng.normal(size=(batch_size, image_size, image_size, 3))
        y = rng.integers(0, num_classes, batch_size)
        return tf.constant(x.astype('float32')), tf.constant(y)

    data = (split(), split())
    fn = tf.function(net.train_step, autograph=False)
    c0, w0 = time.process_time(), time.perf_counter()
    fn.get_concrete_function(data)
    c1 = time.process_time()
    float(fn(data)['loss'])
    c2, w2 = time.process_time(), time.perf_counter()
    cpu, wall = [], []
    for _ in range(steps):
        c, w = time.process_time(), time.perf_counter()
        float(fn(data)['loss'])
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return {'trace_cpu_s': c1 - c0, 'first_call_cpu_s': c2 - c1,
            'first_step_cpu_s': c2 - c0, 'first_step_wall_s': w2 - w0,
            'step_cpu_s': float(np.median(cpu)),
            'step_wall_s': float(np.median(wall)),
            'steps_total_cpu_s': float(np.sum(cpu)),
            'steps_cpu_s': [round(c, 4) for c in cpu]}


def main(argv):
    del argv
    import resource

    import tensorflow as tf

    import hournas_tf
    from hournas_tf.blocks import layers as block_layers
    from hournas_tf.common.provenance import git_commit
    from hournas_tf.nas import supernet as supernet_lib
    from hournas_tf.nas.mixed import MixedLayer

    tf.config.optimizer.set_experimental_options(
        {'disable_meta_optimizer': True})  # as run_search does
    block_layers.FusedBatchNormalization.enabled = FLAGS.fused_batch_norm
    MixedLayer.raw_branches = FLAGS.raw_branches
    MixedLayer.share_structure = FLAGS.share_structure
    MixedLayer.traced_bodies = FLAGS.traced_bodies
    MixedLayer.lower_switches = FLAGS.lower_switches
    supernet_lib.SuperNet.tape_per_loss = FLAGS.tape_per_loss
    net, rows = build(FLAGS.space, FLAGS.image_size, FLAGS.width_multiplier,
                      FLAGS.num_classes, FLAGS.stage, FLAGS.layers,
                      FLAGS.sampler, FLAGS.num_proposals,
                      budget_draws=FLAGS.budget_draws,
                      sample_temperature=FLAGS.sample_temperature)
    result = measure(net, FLAGS.image_size, FLAGS.num_classes,
                     FLAGS.batch_size, FLAGS.steps)
    result.update(
        space=FLAGS.space, stage=FLAGS.stage, searched_layers=rows,
        sampler=net.config.sampler, image_size=FLAGS.image_size,
        width_multiplier=FLAGS.width_multiplier, batch_size=FLAGS.batch_size,
        fused_batch_norm=FLAGS.fused_batch_norm,
        raw_branches=FLAGS.raw_branches,
        share_structure=FLAGS.share_structure,
        traced_bodies=FLAGS.traced_bodies,
        lower_switches=FLAGS.lower_switches,
        tape_per_loss=FLAGS.tape_per_loss,
        budget_draws=FLAGS.budget_draws,
        sample_temperature=FLAGS.sample_temperature,
        max_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        load_1min=os.getloadavg()[0], tensorflow=tf.__version__,
        hournas_tf=hournas_tf.__version__, label=FLAGS.label,
        date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        commit=git_commit(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))), mark_dirty=True),
        steps_timed=FLAGS.steps)
    print(f"{FLAGS.space} stage {FLAGS.stage}, {rows} searched layers "
          f"({result['sampler']}), fused batch norm "
          f"{FLAGS.fused_batch_norm}, raw branches {FLAGS.raw_branches}, "
          f"shared structure {FLAGS.share_structure}, traced bodies "
          f"{FLAGS.traced_bodies}, tape per loss {FLAGS.tape_per_loss}, "
          f"lowered switches {FLAGS.lower_switches}: "
          f"trace "
          f"{result['trace_cpu_s']:.1f} "
          f"+ first call {result['first_call_cpu_s']:.1f} = first step "
          f"{result['first_step_cpu_s']:.1f} CPU s "
          f"({result['first_step_wall_s']:.1f} s wall); step "
          f"{result['step_cpu_s']:.2f} CPU s ({result['step_wall_s']:.2f} s "
          f"wall), {FLAGS.steps} steps {result['steps_total_cpu_s']:.1f} "
          f"CPU s; max RSS {result['max_rss_gb']:.1f} GB; load "
          f"{result['load_1min']:.1f}", flush=True)
    if FLAGS.json:
        text = json.dumps(result, indent=1)
        if FLAGS.json == '-':
            print(text)
        else:
            with open(FLAGS.json, 'w') as f:
                f.write(text + '\n')


if __name__ == '__main__':
    define_flags()
    runner.run(main)
