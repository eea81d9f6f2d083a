"""The HourNAS search (Algorithm 1) as a library: `run_search(config)`.

1. Vital-layer analysis of the space (`spaces/vital.py`) and a feasibility
   check of the targets against the whole space, before anything trains.
2. Stage 1: the minimal supernet of the vital layers only (non-vital layers
   removed), searched for `vital_epochs` with `vital_sampler` and no
   resource loss; each vital layer is fixed to its most probable op, then
   changed where needed to keep every target reachable
   (`vital_policy.py`).
3. Space proposals: m logits over the non-vital layers optimized so that the
   architectures sampled from them hit the targets (`proposals.py`).
4. Stage 2: vital ops fixed (weights, stem, head and classifier from stage
   1; the inserted non-vital blocks start as the identity), non-vital
   layers drawn through pi and the proposals, for `nonvital_epochs`. Its
   Gumbel-Max draws use the proposals' final annealing temperature
   (`ProposalConfig.tau_end`) as sampling temperature, so they come from
   the distribution the proposals were optimized for.
5. Derivation (`derive.py`): the most probable proposal, then its most
   probable architecture within tolerance (`derive='in_budget'`; the
   paper's row-wise argmax with 'argmax'), reported as found
   (`before_repair`) and, with `repair`, moved into the tolerance box by
   the greedy repair if it missed. `rows_changed` counts the (proposal,
   layer) rows whose most probable op stage 2 moved. One architecture per
   proposal forms the model family; each is written with the supernet's
   weights for its ops.

Each stage has its own cosine learning-rate schedule over its own steps.
`run_dry(config)` runs 1 and 3 only (vital ops set by `vital_ops`) and
samples 10,000 architectures from the proposals at several temperatures
and from stage 2's starting distribution.
"""

import dataclasses
import os
import time

import numpy as np

from hournas_tf import spaces
from hournas_tf.common import jsonio
from hournas_tf.common import preemption
from hournas_tf.common.errors import UserError
from hournas_tf.common.runner import log
from hournas_tf.nas import derive as derive_lib
from hournas_tf.nas import restore
from hournas_tf.nas.config import check_config
from hournas_tf.nas.vital_policy import fit_vital_ops
from hournas_tf.nas.vital_policy import resolve_vital_ops
from hournas_tf.output_dir import OutputDir
from hournas_tf.output_dir import new_output_dir
from hournas_tf.resources import counting
from hournas_tf.resources import tables

SAMPLE_TEMPERATURES = (5.0, 1.0, 0.5, 0.1)
NUM_SAMPLES = 10_000


def _h(value):
    return counting.human(value)


def _proposals():
    """The proposals module, imported late (it imports TensorFlow)."""
    from hournas_tf.nas import proposals

    return proposals


def _write_json(path, data):
    jsonio.write_json(path, data, default=_jsonable)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f'not JSON serializable: {type(value).__name__}')


def latency_table(config, space):
    """The `--latency_table` of `config` checked against `space` (None
    without one)."""
    if not config.latency_table:
        return None
    from hournas_tf.resources import latency

    return latency.load_table(config.latency_table, space)


def whole_space_check(space, targets, latency=None):
    """Fails before training when a target is outside the space's range."""
    table = tables.resource_table(space, objectives=tuple(targets),
                                  latency=latency)
    try:
        tables.check_targets(table, targets)
    except UserError as e:
        raise UserError(f'space {space.name!r} at image_size '
                        f'{space.image_size}: {e}') from None


def sample_report(table, logits, targets, tolerance, seed, pi=None,
                  temperatures=SAMPLE_TEMPERATURES):
    """Samples `NUM_SAMPLES` architectures at each temperature."""
    report, scatter = {}, {}
    for k, tau in enumerate(temperatures):
        cols = _proposals().sample_architectures(
            logits, NUM_SAMPLES, tau, seed + k, pi=pi)
        tot = tables.totals(table, cols)
        ok = tables.within(tot, targets, tolerance)
        report[f'{tau:g}'] = {
            'share_within_tolerance': float(ok.mean()),
            **{f'median_{obj}': float(np.median(tot[obj])) for obj in tot}}
        scatter[tau] = (tot.get('params', np.zeros(NUM_SAMPLES)),
                        tot.get('macs', np.zeros(NUM_SAMPLES)))
    return report, scatter


def kept_share(share, budget_draws):
    """The share of steps that find an architecture within tolerance in
    `budget_draws` independent draws, each within it with prob. `share`."""
    return float(1.0 - (1.0 - share) ** budget_draws)


def proposal_config(config):
    """The `ProposalConfig` of a `SearchConfig`."""
    return _proposals().ProposalConfig(
        num_proposals=config.num_proposals, iters=config.proposal_iters,
        learning_rate=config.proposal_lr, beta=config.beta,
        tau_start=config.proposal_tau_start,
        tau_end=config.proposal_tau_end, hold=config.proposal_hold,
        entropy_weight=config.proposal_entropy,
        min_share=config.proposal_min_share,
        slack=config.proposal_slack, mode_weight=config.proposal_mode_weight,
        orthogonality=config.proposal_orthogonality,
        reduction=config.proposal_reduction, seed=config.seed,
        tol=config.tolerance, repair=config.proposal_repair)


def optimize(space, searched, fixed_ops, config, plot_path):
    """Builds the table of `searched` layers, optimizes the proposals and
    plots `NUM_SAMPLES` architectures sampled from them into `plot_path`
    (the paper's figure 3).

    Returns (table, ProposalResult, ProposalConfig, report dict).
    """
    from hournas_tf.nas import plots

    table = tables.resource_table(space, searched, fixed_ops,
                                  tuple(config.targets),
                                  latency_table(config, space))
    tables.check_targets(table, config.targets)
    pconfig = proposal_config(config)
    log(f'optimizing {config.num_proposals} space proposals over '
        f'{len(searched)} layers for {config.proposal_iters} iterations')
    result = _proposals().optimize_proposals(table, config.targets, pconfig)
    log(f'proposals optimized in {result.seconds:.2f}s (final loss '
        f'{result.loss_history[-1]:.4f}, orthogonality '
        f'{result.orthogonality_history[-1]:.3f}, row entropy '
        f'{result.entropy_history[-1]:.3f}, entropy weight '
        f'{result.entropy_weight:g})')
    rows = []
    for j, cols in enumerate(result.columns):
        tot = tables.totals(table, cols)
        errs = tables.relative_errors(tot, config.targets)
        rows.append({'proposal': j, **{o: float(tot[o]) for o in tot},
                     **{f'{o}_error': e for o, e in errs.items()},
                     'within_tolerance': bool(all(
                         abs(e) <= config.tolerance for e in errs.values())),
                     'repaired_layers': [searched[r] + 1
                                         for r in result.repaired[j]]})
        log(f'  proposal {j}: ' + ', '.join(
            f'{o} {_h(tot[o])} ({errs[o]:+.2%})' for o in config.targets)
            + (f' (safety net changed layers '
               f'{rows[-1]["repaired_layers"]})'
               if result.repaired[j] else ''))
    report, scatter = sample_report(table, result.logits, config.targets,
                                    config.tolerance, config.seed)
    for tau, r in report.items():
        log(f'  {NUM_SAMPLES:,} samples at tau={tau}: '
            f'{r["share_within_tolerance"]:.1%} within '
            f'{config.tolerance:.0%} of every target')
    # Stage 2 draws from softmax(theta / tau_end): report that distribution
    # (fresh samples, another seed).
    start, _ = sample_report(table, result.logits, config.targets,
                             config.tolerance, config.seed + 100,
                             temperatures=(pconfig.tau_end,))
    start = {'sample_temperature': pconfig.tau_end,
             **start[f'{pconfig.tau_end:g}'],
             'mean_top_probability': _proposals().mean_top_probability(
                 result.logits, table.mask, pconfig.tau_end)}
    start['budget_draws'] = config.budget_draws
    start['share_trained_within_tolerance'] = kept_share(
        start['share_within_tolerance'], config.budget_draws)
    log(f'  stage 2 starts from these draws: '
        f'{start["share_within_tolerance"]:.1%} of {NUM_SAMPLES:,} within '
        f'{config.tolerance:.0%} of every target, mean top probability '
        f'{start["mean_top_probability"]:.3f} per searched layer; with '
        f'{config.budget_draws} draw(s) per step '
        f'{start["share_trained_within_tolerance"]:.2%} of the trained '
        f'architectures are')
    plots.proposal_scatter(
        scatter, config.targets, config.tolerance,
        f'{space.name}: {NUM_SAMPLES:,} architectures from '
        f'{config.num_proposals} proposals', plot_path)
    return table, result, pconfig, {
        'proposals': rows, 'samples': report, 'stage2_start': start,
        'settings': dataclasses.asdict(pconfig),
        'entropy_weight_used': result.entropy_weight,
        'seconds': result.seconds}


def run_dry(config):
    """Everything but training (the command's `--dry_run`); a failure
    leaves no output folder behind."""
    preflight(config)
    with new_output_dir(config.output_dir):
        return _run_dry(config)


def untrained_plan(config):
    """(space, vital ops, searched layers) without training: the vital
    ops are `config.vital_ops` (default the largest), changed where needed
    to keep the targets reachable; with `vital_first` false no layer is
    fixed and every layer is searched."""
    space = _space(config)
    _log_space(space)
    if not config.vital_first:
        return space, {}, list(range(len(space.layers)))
    vital_ops = resolve_vital_ops(space, config.vital_ops or 'max')
    vital_ops, changed = fit_vital_ops(space, vital_ops, config.targets,
                                       latency=latency_table(config, space))
    log('vital ops (no training): ' + ', '.join(
        f'L{i + 1} {op}' for i, op in vital_ops.items())
        + (f' (changed to stay feasible: {changed})' if changed else ''))
    return space, vital_ops, _nonvital(space)


def _run_dry(config):
    space, vital_ops, searched = untrained_plan(config)
    _, _, _, info = optimize(space, searched, vital_ops, config,
                             os.path.join(config.output_dir,
                                          'proposals_dry_run.png'))
    summary = {'space': space.name, 'image_size': space.image_size,
               'targets': config.targets, 'tolerance': config.tolerance,
               'vital_layers': [i + 1 for i in space.vital_layers],
               'vital_ops': {i + 1: op for i, op in vital_ops.items()},
               **info}
    _write_json(os.path.join(config.output_dir, 'dry_run.json'), summary)
    _write_json(os.path.join(config.output_dir, 'search_config.json'),
                _config_json(config))
    ok = sum(r['within_tolerance'] for r in info['proposals'])
    log(f'{ok}/{len(info["proposals"])} proposals have their most probable '
        f'architecture within {config.tolerance:.0%} of every target; '
        f'wrote {config.output_dir}/dry_run.json')
    return summary


def _config_json(config):
    data = dataclasses.asdict(config)
    data['vital_ops'] = list(config.vital_ops) if config.vital_ops else None
    return data


def _space(config):
    from hournas_tf import data as data_lib

    image_size = config.image_size or data_lib.DEFAULT_IMAGE_SIZE.get(
        data_lib.parse_dataset_name(config.dataset)[0], 224)
    num_classes = config.num_classes
    if num_classes is None:
        num_classes = known_num_classes(config)
    return spaces.get_space(config.space, image_size=image_size,
                            num_classes=num_classes,
                            width_multiplier=config.width_multiplier)


KNOWN_NUM_CLASSES = {'digits': 10, 'fashion_mnist': 10, 'cifar10': 10,
                     'imagenet2012': 1000}


def known_num_classes(config):
    """Class count without loading data where it is known."""
    from hournas_tf import data as data_lib

    kind, _ = data_lib.parse_dataset_name(config.dataset)
    if kind in KNOWN_NUM_CLASSES:
        return KNOWN_NUM_CLASSES[kind]
    return data_lib.dataset_info(_data_config(config)).num_classes


def check_num_classes(config, num_classes):
    """Raises UserError if `--num_classes` differs from the dataset's."""
    if config.num_classes and config.num_classes != num_classes:
        raise UserError(f'num_classes={config.num_classes} but dataset '
                        f'{config.dataset!r} has {num_classes} classes')


def _data_config(config, image_size=None):
    from hournas_tf import data as data_lib

    return data_lib.DataConfig(dataset=config.dataset,
                               data_dir=config.data_dir,
                               image_size=image_size or config.image_size,
                               batch_size=config.batch_size,
                               seed=config.seed)


def _nonvital(space):
    vital = set(space.vital_layers)
    return [i for i in range(len(space.layers)) if i not in vital]


def _log_space(space):
    log(f'space {space.name} at {space.image_size}x{space.image_size}, '
        f'{space.num_classes} classes, width x{space.width_multiplier:g}: '
        f'{len(space.layers)} layers, {space.num_architectures():.2e} '
        f'architectures; vital layers (from the topology): '
        f'{[i + 1 for i in space.vital_layers]}')


def _probability_dict(space, rows, probs):
    return {i: {op: float(probs[r, c]) for c, op in enumerate(space.op_names)
                if space.op_names[c] in space.layers[i].candidates}
            for r, i in enumerate(rows)}


def _steps(config, search_data):
    steps = search_data.weight_steps
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    return max(1, steps)


def train_stage(stage, supernet, search_data, epochs, steps, config,
                space, rows, table=None, checkpoint=None, done=0,
                sigterm=None, reload=None, start_columns=None):
    """Runs `model.fit` for one stage with history, TensorBoard and logs;
    with a `checkpointing.SearchCheckpoint`: checkpoints, SIGTERM and
    non-finite losses, continuing after `done` steps; `start_columns`
    (m, rows): the proposals' most probable ops at the stage's start, for
    `rows_changed` in the history. `reload()` gives
    each `fit` call a new `SearchData`: a new pipeline starts its seeded
    shuffles afresh (another iterator of the same one would reshuffle), so
    the stage's stream does not depend on what read data before."""
    import keras
    import tensorflow as tf

    from hournas_tf.nas import callbacks
    from hournas_tf.nas import checkpointing

    log(f'stage {stage}: {epochs} epoch(s) x {steps} steps, batch '
        f'{search_data.global_batch_size}, sampler '
        f'{supernet.config.sampler}')
    cbs = [
        callbacks.ArchitectureLogger(
            stage, space, rows, os.path.join(config.output_dir,
                                             'history.jsonl'),
            os.path.join(config.output_dir, 'tensorboard', stage), table,
            start_columns),
        keras.callbacks.TensorBoard(
            os.path.join(config.output_dir, 'tensorboard', stage),
            update_freq='epoch', write_graph=False),
    ]
    if checkpoint is not None:
        cbs.append(checkpointing.StageCallback(
            checkpoint, stage, config.checkpoint_every, sigterm))
    start = time.perf_counter()
    try:
        for first, end, per_epoch, skip in checkpointing.segments(
                done, epochs, steps):
            data = reload() if reload else search_data
            # The stage's stream from its start, `skip` batches skipped.
            dataset = tf.data.Dataset.zip((data.weights, data.arch))
            supernet.fit(dataset.skip(skip), initial_epoch=first,
                         epochs=end, steps_per_epoch=per_epoch,
                         callbacks=cbs, verbose=config.verbose,
                         shuffle=False)
    except tf.errors.ResourceExhaustedError as e:
        raise UserError(preemption.oom_message(
            e, search_data.global_batch_size)) from None
    return time.perf_counter() - start


def preflight(config):
    """Checks that need no TensorFlow: settings, a known dataset's class
    count, the targets against the whole space and, searching the vital
    layers first, whether any vital ops (the given ones, else starting
    from `max`) keep them reachable. Raises UserError."""
    from hournas_tf import data as data_lib

    check_config(config)
    kind, _ = data_lib.parse_dataset_name(config.dataset)
    if kind in KNOWN_NUM_CLASSES:
        check_num_classes(config, KNOWN_NUM_CLASSES[kind])
    space = _space(config)
    latency = latency_table(config, space)
    whole_space_check(space, config.targets, latency)
    if config.vital_first:
        fit_vital_ops(space, resolve_vital_ops(
            space, config.vital_ops or 'max'), config.targets,
            latency=latency)


def _supernet_config(config, sampler, steps, alpha, tau_init,
                     temperature=1.0, resource_slack=0.0):
    from hournas_tf.nas import supernet as supernet_lib

    return supernet_lib.SupernetConfig(
        sampler=sampler, tau_init=tau_init,
        tau_decay=config.tau_decay, alpha=alpha,
        weight_lr=config.weight_lr, arch_lr=config.arch_lr,
        total_steps=max(1, steps), seed=config.seed,
        zero_init_residual=config.zero_init_residual,
        sample_temperature=temperature, budget_draws=config.budget_draws,
        resource_slack=resource_slack, pi_tau=config.pi_tau,
        resource_estimate=config.resource_estimate,
        sync_batch_norm=config.sync_batch_norm,
        per_replica_paths=config.per_replica_paths)


def _stage1_budget(space, vital, config):
    """Stage 1's budget: the vital rows, the non-vital layers still free."""
    from hournas_tf.nas import budget as budget_lib

    objectives = tuple(config.targets)
    latency = latency_table(config, space)
    table = tables.resource_table(space, vital, {}, objectives, latency)
    rest = tables.resource_table(space, _nonvital(space), {}, objectives,
                                 latency)
    free = {obj: tables.free_range(rest, obj) for obj in objectives}
    return budget_lib.Budget(table, config.targets, config.tolerance, free)


def _proposals_argmax(logits, mask):
    """(m, rows): the most probable op of every proposal's rows."""
    from hournas_tf.nas import arch_params

    return np.stack([arch_params.masked_argmax(theta, mask)
                     for theta in np.asarray(logits)])


def save_derived(supernet, derived, path):
    """Writes the architecture JSON (with its search entry) and the
    supernet's weights for it (`<path stem>.weights.h5`)."""
    derived.arch.save(path, {'search': derived.entry})
    model = derive_lib.standalone_model(supernet, derived.arch)
    model.save_weights(path[:-len('.json')] + '.weights.h5')


def run_search(config, strategy=None):
    """The whole search; returns the summary written into arch.json. A
    failure before training leaves no output folder behind."""
    # Before TensorFlow is imported or anything is written: targets outside
    # the space fail at once.
    preflight(config)
    if config.resume:
        from hournas_tf.nas import checkpointing

        checkpointing.check_resumable(config.output_dir)
        output = OutputDir(config.output_dir)
        output.keep()
        return _run_resumable(config, strategy, output)
    with new_output_dir(config.output_dir) as output:
        _write_json(os.path.join(config.output_dir, 'search_config.json'),
                    _config_json(config))
        return _run_resumable(config, strategy, output)


def resume_config(output_dir, **overrides):
    """The `SearchConfig` of the run in `output_dir` (its
    search_config.json) with `overrides`, set to resume."""
    from hournas_tf.common.jsonio import read_json
    from hournas_tf.nas.config import SearchConfig

    if not os.path.isdir(output_dir):
        raise UserError(f'--resume: output_dir {output_dir!r} does not '
                        'exist; start a run without --resume')
    path = os.path.join(output_dir, 'search_config.json')
    data = read_json(path, 'search config')
    names = {f.name for f in dataclasses.fields(SearchConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f'{path!r} has unknown settings {unknown}; was it '
                        'written by another version?')
    if data.get('vital_ops'):
        data['vital_ops'] = tuple(data['vital_ops'])
    data.update(overrides, output_dir=output_dir, resume=True)
    return SearchConfig(**data)


def _run_resumable(config, strategy, output):
    """`_run_search`; SIGTERM: a checkpoint, then a line saying how to
    resume (returns None)."""

    return preemption.preemptible(_run_search, config, strategy, output)


def _build_stage1(space, vital, config, steps, strategy):
    from hournas_tf.nas import supernet as supernet_lib

    sconfig = _supernet_config(config, config.vital_sampler,
                               steps * config.vital_epochs, alpha=0.0,
                               tau_init=config.tau_init)
    with strategy.scope():
        stage1 = supernet_lib.build_supernet(
            space, tuple(vital), {}, sconfig,
            budget=_stage1_budget(space, vital, config))
        stage1.compile()
    return stage1


def _run_search(config, strategy, output, sigterm=None):
    start = time.perf_counter()
    import keras
    import tensorflow as tf

    from hournas_tf import data as data_lib
    from hournas_tf.nas import budget as budget_lib
    from hournas_tf.nas import checkpointing
    from hournas_tf.nas import plots
    from hournas_tf.nas import supernet as supernet_lib

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        # Same seed, same result: deterministic kernels and tf.data.
        tf.config.experimental.enable_op_determinism()
    if not config.graph_optimizations:
        # Grappler spends minutes on a supernet's many switch_case branches
        # for no measurable gain in step time on CPU.
        tf.config.optimizer.set_experimental_options(
            {'disable_meta_optimizer': True})
    strategy = strategy or tf.distribute.get_strategy()
    data_config = _data_config(config)
    info = data_lib.dataset_info(data_config)
    check_num_classes(config, info.num_classes)
    space = spaces.get_space(config.space, image_size=info.image_size,
                             num_classes=info.num_classes,
                             width_multiplier=config.width_multiplier)
    _log_space(space)
    whole_space_check(space, config.targets, latency_table(config, space))
    search_data = data_lib.load_search_data(data_config, strategy)
    log(f'data {config.dataset}: {search_data.num_weight_examples} images '
        f'for weights, {search_data.num_arch_examples} for architecture '
        'parameters')
    steps = _steps(config, search_data)
    timings, stage1 = {}, None
    mask = np.array(space.candidate_mask())

    ckpt = checkpointing.SearchCheckpoint(config.output_dir)
    state = ckpt.latest() if config.resume else None
    saved = checkpointing.read_stage1(config.output_dir) \
        if config.resume else None
    if config.resume:
        log('resuming ' + (f'from {state[0]} (stage {state[1]}, step '
                           f'{state[2]})' if state else
                           'without a checkpoint: from the start')
            + (', stage 1 finished' if saved else ''))

    def reload():
        return data_lib.load_search_data(data_config, strategy)

    # Stage 1: vital layers, accuracy only (no resource loss).
    vital = list(space.vital_layers)
    if saved is not None:
        vital_ops = vital_probs = None  # from stage1.json, below
    elif config.vital_first and config.vital_ops is None:
        stage1 = _build_stage1(space, vital, config, steps, strategy)
        done = ckpt.restore(state[0], 'vital', stage1) if state else 0
        ckpt.attach('vital', stage1)
        output.keep()  # Training starts: a failure now keeps the folder.
        timings['vital'] = train_stage('vital', stage1, search_data,
                                       config.vital_epochs, steps, config,
                                       space, vital, checkpoint=ckpt,
                                       done=done, sigterm=sigterm,
                                       reload=reload)
        probs = stage1.op_probabilities()
        plots.op_heatmap(probs, [f'L{i + 1}' for i in vital], space.op_names,
                         mask[vital], 'stage 1: vital layers',
                         os.path.join(config.output_dir, 'ops_vital.png'))
        vital_ops = stage1.derive()
        vital_probs = _probability_dict(space, vital, probs)
    elif config.vital_first:
        vital_ops = resolve_vital_ops(space, config.vital_ops)
        vital_probs = None
    else:
        vital_ops, vital_probs = {}, None
    changed_vital = []
    if saved is not None:
        vital_ops = {int(i): op for i, op in saved['vital_ops'].items()}
        changed_vital = saved['changed_vital']
        timings.update(saved['seconds'])
    elif vital_ops:
        vital_ops, changed_vital = fit_vital_ops(
            space, vital_ops, config.targets, vital_probs,
            latency_table(config, space))
        log('vital ops: ' + ', '.join(f'L{i + 1} {op}'
                                      for i, op in vital_ops.items())
            + (f' (changed to keep the targets reachable: '
               f'{[i + 1 for i in changed_vital]})' if changed_vital
               else ''))

    # Space proposals and stage 2.
    searched = _nonvital(space) if vital_ops else list(
        range(len(space.layers)))
    if saved is None:
        table, presult, pconfig, pinfo = optimize(
            space, searched, vital_ops, config,
            os.path.join(config.output_dir, 'proposals_stage2.png'))
        saved = {'vital_ops': vital_ops, 'changed_vital': changed_vital,
                 'proposals': presult.logits, 'tau_end': pconfig.tau_end,
                 'proposal_optimization': pinfo, 'seconds': timings}
        # Stage 1's result, whole or absent: a resumed run starts here.
        jsonio.write_json(os.path.join(
            config.output_dir, checkpointing.STAGE1_FILE), saved,
            default=_jsonable)
    else:
        table = tables.resource_table(space, searched, vital_ops,
                                      tuple(config.targets),
                                      latency_table(config, space))
    pinfo = saved['proposal_optimization']
    sconfig = _supernet_config(config, config.sampler,
                               steps * config.nonvital_epochs,
                               alpha=config.alpha,
                               tau_init=config.nonvital_tau_init,
                               temperature=saved['tau_end'],
                               resource_slack=config.resource_slack)
    # Stage 2 starts from the seed alone, however the run got here.
    keras.utils.set_random_seed(config.seed + 1)
    with strategy.scope():
        stage2 = supernet_lib.build_supernet(
            space, tuple(searched), vital_ops, sconfig,
            budget=budget_lib.Budget(table, config.targets,
                                     config.tolerance),
            proposals=np.asarray(saved['proposals'], np.float32))
        stage2.compile()
    done = 0
    if state is not None and state[1] == checkpointing.STAGES['nonvital']:
        done = ckpt.restore(state[0], 'nonvital', stage2)
    else:
        if stage1 is None and state is not None:  # stopped between stages
            stage1 = _build_stage1(space, vital, config, steps, strategy)
            ckpt.restore(state[0], 'vital', stage1)
        if stage1 is not None:
            with strategy.scope():
                stage2.copy_weights_from(stage1)
        ckpt.attach('nonvital', stage2)
        ckpt.save()
    output.keep()
    start_columns = _proposals_argmax(saved['proposals'], table.mask)
    timings['nonvital'] = train_stage('nonvital', stage2, search_data,
                                      config.nonvital_epochs, steps, config,
                                      space, searched, table,
                                      checkpoint=ckpt, done=done,
                                      sigterm=sigterm, reload=reload,
                                      start_columns=start_columns)
    pi = stage2.proposal_probabilities()
    per_proposal = stage2.proposal_op_probabilities()
    best = int(np.argmax(pi))
    plots.op_heatmap(per_proposal[best], [f'L{i + 1}' for i in searched],
                     space.op_names, mask[searched],
                     f'stage 2: proposal {best} (pi = {pi[best]:.2f})',
                     os.path.join(config.output_dir, 'ops_nonvital.png'))
    # per_proposal are the probabilities of stage 2's draws: at tau = 1
    # these samples come from the distribution stage 2 ended with.
    end, scatter = sample_report(table, np.log(np.maximum(per_proposal,
                                                          1e-12)),
                                 config.targets, config.tolerance,
                                 config.seed, pi=pi)
    end = end['1']
    end['budget_draws'] = config.budget_draws
    end['share_trained_within_tolerance'] = kept_share(
        end['share_within_tolerance'], config.budget_draws)
    log(f'stage 2 ends with {end["share_within_tolerance"]:.1%} of '
        f'{NUM_SAMPLES:,} draws within {config.tolerance:.0%} of every '
        f'target (it started with '
        f'{pinfo["stage2_start"]["share_within_tolerance"]:.1%}); with '
        f'{config.budget_draws} draw(s) per step '
        f'{end["share_trained_within_tolerance"]:.2%} of the trained '
        'architectures are')
    plots.proposal_scatter(
        scatter, config.targets, config.tolerance,
        f'{space.name}: {NUM_SAMPLES:,} architectures after the search',
        os.path.join(config.output_dir, 'proposals_searched.png'))

    changed = derive_lib.rows_changed(
        start_columns, stage2.arch_params.derive_all(), searched)
    moved = {'total': sum(len(c) for c in changed),
             'rows': int(np.size(start_columns)), 'per_proposal': changed}
    log(f'stage 2 changed the most probable op of {moved["total"]} of '
        f'{moved["rows"]} (proposal, layer) rows')
    # Derivation, repair and the model family.
    family = derive_lib.derive_family(
        stage2, table, vital_ops, config.targets, config.tolerance,
        config.repair, derive=config.derive, seed=config.seed,
        safety_net=[r['repaired_layers'] for r in pinfo['proposals']])
    os.makedirs(os.path.join(config.output_dir, 'family'), exist_ok=True)
    for j, member in enumerate(family):
        member = dataclasses.replace(member, arch=dataclasses.replace(
            member.arch, name=f'{space.name}_proposal{j}'))
        save_derived(stage2, member, os.path.join(
            config.output_dir, 'family', f'proposal{j}.json'))
    entry = family[best].entry
    arch = dataclasses.replace(family[best].arch,
                               name=f'{space.name}_hournas')
    summary = {
        'targets': config.targets,
        'achieved': entry['achieved'],
        'relative_error': entry['relative_error'],
        'tolerance': config.tolerance,
        'within_tolerance': entry['within_tolerance'],
        'before_repair': entry['before_repair'],
        'repair': config.repair,
        'repaired_layers': entry['repaired_layers'],
        'proposal_repaired_layers': entry.get('proposal_repaired_layers',
                                              []),
        'proposal': best,
        'proposal_probabilities': [float(p) for p in pi],
        'vital_layers': [i + 1 for i in space.vital_layers],
        'vital_ops': {i + 1: op for i, op in vital_ops.items()},
        'vital_ops_changed_for_feasibility': [i + 1 for i in changed_vital],
        'proposal_optimization': pinfo,
        'stage2_start': pinfo['stage2_start'],
        'stage2_end': end,
        'rows_changed': moved,
        'derive': config.derive,
        'family': [m.entry for m in family],
        'seconds': {**timings, 'total': time.perf_counter() - start},
        'sampler': config.sampler,
        'vital_sampler': config.vital_sampler,
        'vital_first': config.vital_first,
    }
    save_derived(stage2, derive_lib.Derived(arch, summary),
                 os.path.join(config.output_dir, 'arch.json'))
    _write_json(os.path.join(config.output_dir, 'family', 'family.json'),
                [m.entry for m in family])
    # The whole stage-2 supernet: inherited weights for any architecture
    # of its space (`restore.load_supernet`), e.g. a random baseline's.
    restore.save_supernet(stage2, config.output_dir)
    log(f'derived {arch.to_string()}')
    before = entry['before_repair']
    log('achieved ' + ', '.join(
        f'{o} {_h(entry["achieved"][o])} (target {_h(t)}, '
        f'{entry["relative_error"][o]:+.2%}; search alone '
        f'{before["relative_error"][o]:+.2%})'
        for o, t in config.targets.items())
        + (f'; repaired layers {entry["repaired_layers"]}'
           if entry['repaired_layers'] else '; no repair needed'
           if before['within_tolerance'] else '; repair off')
        + f'; wrote {config.output_dir}/arch.json in '
        f'{summary["seconds"]["total"]:.0f}s')
    if not entry['within_tolerance']:
        log(f'WARNING: the derived architecture is not within '
            f'{config.tolerance:.0%} of every target'
            + ('' if config.repair else ' (repair is off)'))
    write_report(config.output_dir)
    return summary


def write_report(run_dir):
    """Writes the run's report.html; a failure is a warning (every result
    is written already; `python -m hournas_tf.report` retries)."""
    from hournas_tf.reporting import page

    try:
        log(f'wrote {page.write_report(run_dir)}')
    except Exception as e:  # noqa: BLE001 (the search itself succeeded)
        log(f'WARNING: no report: {type(e).__name__}: {e}; retry with '
            f'python -m hournas_tf.report {run_dir}')
