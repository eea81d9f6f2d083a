"""The HourNAS search (Algorithm 1) as a library: `run_search(config)`.

`SearchRun` runs the search one method per step, each returning a typed
result:

1. `setup` (`Setup`): TensorFlow, the data, the space, the vital-layer
   analysis (`spaces/vital.py`) and a feasibility check of the targets
   against the whole space, before anything trains; on `--resume` where
   the run continues (`ResumePoint`).
2. `stage1` (`Stage1Result`): the minimal supernet of the vital layers
   only (non-vital layers removed, `stages.py`), searched for
   `vital_epochs` with `vital_sampler` and no resource loss.
3. `fix_vital_ops` (`VitalOps`): each vital layer fixed to its most
   probable op, then changed where needed to keep every target reachable
   (`vital_policy.py`).
4. `proposals` (`ProposalsResult`): m logits over the non-vital layers
   optimized so that the architectures sampled from them hit the targets
   (`proposal_report.py`); written to stage1.json, where a resumed run
   starts.
5. `stage2` (`Stage2Result`): vital ops fixed (weights, stem, head and
   classifier from stage 1; the inserted non-vital blocks start as the
   identity), non-vital layers drawn through pi and the proposals, for
   `nonvital_epochs`. Its Gumbel-Max draws use the proposals' final
   annealing temperature (`ProposalConfig.tau_end`) as sampling
   temperature, so they come from the distribution the proposals were
   optimized for.
6. `derive` (`Derivation`, `derive.py`): the most probable proposal, then
   its most probable architecture within tolerance (`derive='in_budget'`;
   the paper's row-wise argmax with 'argmax'), reported as found
   (`before_repair`) and, with `repair`, moved into the tolerance box by
   the greedy repair if it missed. `rows_changed` counts the (proposal,
   layer) rows whose most probable op stage 2 moved. One architecture per
   proposal forms the model family.
7. `write`: arch.json (the summary), the family, each with the supernet's
   weights for its ops, the whole supernet and report.html.

Each stage has its own cosine learning-rate schedule over its own steps.
`run_dry(config)` (`SearchRun.dry_run`) runs 1, 3 and 4 without training
(vital ops set by `vital_ops`) and samples 10,000 architectures from the
proposals at several temperatures and from stage 2's starting
distribution.
"""

import dataclasses
import os
import shutil
import time

import numpy as np

from hournas_tf import spaces
from hournas_tf.common import jsonio
from hournas_tf.common import preemption
from hournas_tf.common.errors import UserError
from hournas_tf.common.runner import log
from hournas_tf.nas import derive as derive_lib
from hournas_tf.nas import proposal_report
from hournas_tf.nas import restore
from hournas_tf.nas import stages
from hournas_tf.nas.config import check_config
from hournas_tf.nas.config import latency_table
from hournas_tf.nas.proposal_report import NUM_SAMPLES
from hournas_tf.nas.vital_policy import fit_vital_ops
from hournas_tf.nas.vital_policy import resolve_vital_ops
from hournas_tf.output_dir import OutputDir
from hournas_tf.output_dir import new_output_dir
from hournas_tf.resources import counting
from hournas_tf.resources import tables


def _h(value):
    return counting.human(value)


def _write_json(path, data):
    jsonio.write_json(path, data, default=_jsonable)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f'not JSON serializable: {type(value).__name__}')


def whole_space_check(space, targets, latency=None):
    """Fails before training when a target is outside the space's range."""
    table = tables.resource_table(space, objectives=tuple(targets),
                                  latency=latency)
    try:
        tables.check_targets(table, targets)
    except UserError as e:
        raise UserError(f'space {space.name!r} at image_size '
                        f'{space.image_size}: {e}') from None


# --- The space and the data, before TensorFlow -----------------------------

def search_space(config):
    """The space of `config` at its image size (default: the dataset's)
    and class count (default: the dataset's, read without loading it where
    `known_num_classes` knows it)."""
    from hournas_tf import data as data_lib

    image_size = config.image_size or data_lib.DEFAULT_IMAGE_SIZE.get(
        data_lib.parse_dataset_name(config.dataset)[0], 224)
    num_classes = config.num_classes
    if num_classes is None:
        num_classes = known_num_classes(config)
    return spaces.get_space(config.space, image_size=image_size,
                            num_classes=num_classes,
                            width_multiplier=config.width_multiplier)


def known_num_classes(config):
    """Class count without loading data where it is known."""
    from hournas_tf import data as data_lib

    kind, _ = data_lib.parse_dataset_name(config.dataset)
    if kind in data_lib.KNOWN_DATASETS:
        return data_lib.KNOWN_DATASETS[kind][0]
    return data_lib.dataset_info(data_config(config)).num_classes


def check_num_classes(config, num_classes):
    """Raises UserError if `--num_classes` differs from the dataset's."""
    if config.num_classes and config.num_classes != num_classes:
        raise UserError(f'num_classes={config.num_classes} but dataset '
                        f'{config.dataset!r} has {num_classes} classes')


def data_config(config, image_size=None):
    """The search's `DataConfig` of `config`."""
    from hournas_tf import data as data_lib

    return data_lib.DataConfig(dataset=config.dataset,
                               data_dir=config.data_dir,
                               image_size=image_size or config.image_size,
                               batch_size=config.batch_size,
                               seed=config.seed,
                               validation_fraction=config.validation_fraction)


def _log_space(space):
    log(f'space {space.name} at {space.image_size}x{space.image_size}, '
        f'{space.num_classes} classes, width x{space.width_multiplier:g}: '
        f'{len(space.layers)} layers, {space.num_architectures():.2e} '
        f'architectures; vital layers (from the topology): '
        f'{[i + 1 for i in space.vital_layers]}')


def preflight(config):
    """Checks that need no TensorFlow: settings, a known dataset's class
    count, the targets against the whole space and, searching the vital
    layers first, whether any vital ops (the given ones, else starting
    from `max`) keep them reachable. Raises UserError."""
    from hournas_tf import data as data_lib

    check_config(config)
    kind, _ = data_lib.parse_dataset_name(config.dataset)
    if kind in data_lib.KNOWN_DATASETS:
        check_num_classes(config, data_lib.KNOWN_DATASETS[kind][0])
    space = search_space(config)
    latency = latency_table(config, space)
    if config.budgets:
        from hournas_tf.nas import budget_search

        return budget_search.preflight(config, space, latency)
    whole_space_check(space, config.targets, latency)
    if config.vital_first:
        fit_vital_ops(space, resolve_vital_ops(
            space, config.vital_ops or 'max'), config.targets,
            latency=latency)


def untrained_plan(config):
    """(space, vital ops, searched layers) without training: the vital
    ops are `config.vital_ops` (default the largest), changed where needed
    to keep the targets reachable; with `vital_first` false no layer is
    fixed and every layer is searched."""
    space = search_space(config)
    _log_space(space)
    if not config.vital_first:
        return space, {}, list(range(len(space.layers)))
    vital_ops = resolve_vital_ops(space, config.vital_ops or 'max')
    latency = latency_table(config, space)
    if config.budgets:  # every budget reachable with the same vital ops
        from hournas_tf.nas import budgets as budgets_lib

        vital_ops, changed = budgets_lib.fit_vital_ops(
            space, vital_ops, config.budgets, latency=latency)
    else:
        vital_ops, changed = fit_vital_ops(space, vital_ops, config.targets,
                                           latency=latency)
    log('vital ops (no training): ' + ', '.join(
        f'L{i + 1} {op}' for i, op in vital_ops.items())
        + (f' (changed to stay feasible: {changed})' if changed else ''))
    return space, vital_ops, stages.nonvital_layers(space)


def _config_json(config):
    data = dataclasses.asdict(config)
    data['vital_ops'] = list(config.vital_ops) if config.vital_ops else None
    return data


# --- Resume: where a run continues -----------------------------------------

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


@dataclasses.dataclass(frozen=True)
class CheckpointState:
    """The newest readable checkpoint of a run: its path, its stage (1
    vital, 2 non-vital) and the steps done in that stage."""

    path: str
    stage: int
    step: int


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """Where a run continues: its newest readable checkpoint and its
    stage1.json (stage 1 and the proposals done); both None for a new
    run."""

    checkpoint: CheckpointState = None
    stage1: dict = None

    @classmethod
    def read(cls, config, checkpoint):
        """The resume point of `config` (a new run's without `resume`);
        `checkpoint`: the run's `checkpointing.SearchCheckpoint`."""
        from hournas_tf.nas import checkpointing

        if not config.resume:
            return cls()
        found = checkpoint.latest()
        point = cls(CheckpointState(*found) if found else None,
                    checkpointing.read_stage1(config.output_dir))
        state = point.checkpoint
        log('resuming ' + (f'from {state.path} (stage {state.stage}, step '
                           f'{state.step})' if state else
                           'without a checkpoint: from the start')
            + (', stage 1 finished' if point.stage1 else ''))
        return point

    def in_stage(self, stage):
        """Whether the checkpoint is of stage `stage` ('vital' or
        'nonvital')."""
        from hournas_tf.nas import checkpointing

        return self.checkpoint is not None and \
            self.checkpoint.stage == checkpointing.STAGES[stage]

    def steps_done(self, checkpoint, stage, supernet):
        """Restores `supernet` from the checkpoint if it is of `stage`;
        the steps it had done there (0 otherwise)."""
        if not self.in_stage(stage):
            return 0
        return checkpoint.restore(self.checkpoint.path, stage, supernet)

    def proposals(self, space, config, latency=None, kind=None):
        """The proposals of stage1.json (`kind.from_json`, default
        `ProposalsResult`) over their searched layers, or None."""
        if self.stage1 is None:
            return None
        result = (kind or ProposalsResult).from_json(self.stage1)
        vital_ops = result.vital_ops
        table = tables.resource_table(
            space, stages.searched_layers(space, vital_ops), vital_ops,
            tuple(config.targets), latency)
        return dataclasses.replace(result, table=table)


# --- The steps' results -----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Setup:
    """What every step reads: the space, the data and the run's state."""

    space: object         # spaces.SearchSpace at the dataset's size
    data_config: object   # data.DataConfig
    search_data: object   # data.SearchData (weights and arch splits)
    steps: int            # steps per epoch
    latency: object       # the latency table, or None
    checkpoint: object    # checkpointing.SearchCheckpoint
    resume: ResumePoint


@dataclasses.dataclass(frozen=True)
class Stage1Result:
    """The vital ops before they are fixed: stage 1's, the given ones, or
    none (`vital_first` false)."""

    vital_ops: dict               # {layer: op}
    probabilities: dict = None    # {layer: {op: p}} after stage 1
    supernet: object = None       # the trained stage-1 supernet
    seconds: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class VitalOps:
    """The fixed vital ops and the layers changed to keep the targets
    reachable."""

    ops: dict
    changed: list


@dataclasses.dataclass(frozen=True)
class ProposalsResult:
    """The optimized proposals and what led to them (stage1.json)."""

    vital_ops: dict       # {layer: op}, fixed
    changed_vital: list   # vital layers changed for feasibility
    logits: object        # (m, rows, cols) proposal logits
    tau_end: float        # stage 2's sampling temperature
    report: dict          # the proposal optimization's report
    seconds: dict         # stage 1's timings
    table: object         # tables.ResourceTable of the searched layers

    def to_json(self):
        """stage1.json's content."""
        return {'vital_ops': self.vital_ops,
                'changed_vital': self.changed_vital,
                'proposals': self.logits, 'tau_end': self.tau_end,
                'proposal_optimization': self.report,
                'seconds': self.seconds}

    @classmethod
    def from_json(cls, data, table=None):
        """The result `to_json` wrote (`data`, as JSON gives it back)."""
        return cls({int(i): op for i, op in data['vital_ops'].items()},
                   list(data['changed_vital']),
                   np.asarray(data['proposals'], np.float32),
                   data['tau_end'], data['proposal_optimization'],
                   data['seconds'], table, **cls._more_from_json(data))

    @classmethod
    def _more_from_json(cls, data):
        """The fields a subclass adds, from `data`."""
        return {}


@dataclasses.dataclass(frozen=True)
class Stage2Result:
    """The trained stage-2 supernet and where it ended."""

    supernet: object
    pi: object            # (m,) proposal probabilities
    best: int             # the most probable proposal
    start_columns: object  # (m, rows) most probable ops at the start
    end: dict             # samples from the final distribution
    seconds: float


@dataclasses.dataclass(frozen=True)
class Derivation:
    """The derived family (one member per proposal) and the rows stage 2
    changed."""

    family: list
    rows_changed: dict

# --- The search -------------------------------------------------------------

class SearchRun:
    """One search (Algorithm 1) of `config` in `output` (an `OutputDir`),
    one method per step; `run()` runs them in order, continuing a resumed
    run where it stopped."""

    # What `proposals` returns and stage1.json holds (read back on resume).
    PROPOSALS = ProposalsResult

    def __init__(self, config, strategy=None, output=None):
        self.config = config
        self.strategy = strategy
        self.output = output or OutputDir(config.output_dir)
        self.sigterm = None
        self.env = None  # the `Setup`, once `setup()` ran
        self.started = time.perf_counter()

    def path(self, *names):
        """A path in the run's output folder."""
        return os.path.join(self.config.output_dir, *names)

    def run(self, sigterm=None):
        """The whole search; returns the summary written into arch.json.
        `sigterm`: a `preemption.catch_sigterm()` catcher."""
        self.sigterm = sigterm
        self.setup()
        stage1 = None
        proposals = self.env.resume.proposals(self.env.space, self.config,
                                              self.env.latency,
                                              self.PROPOSALS)
        if proposals is None:
            stage1 = self.stage1()
            proposals = self.proposals(self.fix_vital_ops(stage1),
                                       stage1.seconds)
        stage2 = self.stage2(proposals, stage1)
        return self.write(stage2, proposals, self.derive(stage2, proposals))

    def setup(self):
        """TensorFlow's settings, the data, the space, the checkpoint
        folder and the resume point (`Setup`)."""
        import keras
        import tensorflow as tf

        from hournas_tf import data as data_lib
        from hournas_tf.nas import checkpointing

        config = self.config
        keras.utils.set_random_seed(config.seed)
        if config.deterministic:
            # Same seed, same result: deterministic kernels and tf.data.
            tf.config.experimental.enable_op_determinism()
        if not config.graph_optimizations:
            # Grappler spends minutes on a supernet's many switch_case
            # branches for no measurable gain in step time on CPU.
            tf.config.optimizer.set_experimental_options(
                {'disable_meta_optimizer': True})
        self.strategy = self.strategy or tf.distribute.get_strategy()
        dconfig = data_config(config)
        info = data_lib.dataset_info(dconfig)
        check_num_classes(config, info.num_classes)
        space = spaces.get_space(config.space, image_size=info.image_size,
                                 num_classes=info.num_classes,
                                 width_multiplier=config.width_multiplier)
        _log_space(space)
        latency = latency_table(config, space)
        whole_space_check(space, config.targets, latency)
        search_data = data_lib.load_search_data(dconfig, self.strategy)
        log(f'data {config.dataset}: {search_data.num_weight_examples} '
            f'images for weights, {search_data.num_arch_examples} for '
            'architecture parameters')
        steps = search_data.weight_steps
        if config.max_steps_per_epoch:
            steps = min(steps, config.max_steps_per_epoch)
        checkpoint = checkpointing.SearchCheckpoint(config.output_dir)
        self.env = Setup(space, dconfig, search_data, max(1, steps), latency,
                         checkpoint, ResumePoint.read(config, checkpoint))
        return self.env

    def _train(self, stage, supernet, epochs, rows, table=None, done=0,
               start_columns=None):
        """`train_stage` with the run's data, checkpoint and SIGTERM."""
        from hournas_tf import data as data_lib

        env = self.env

        def reload():
            return data_lib.load_search_data(env.data_config, self.strategy)

        return train_stage(stage, supernet, env.search_data, epochs,
                           env.steps, self.config, env.space, rows, table,
                           checkpoint=env.checkpoint, done=done,
                           sigterm=self.sigterm, reload=reload,
                           start_columns=start_columns)

    def stage1(self):
        """Stage 1: the vital layers trained, accuracy only (no resource
        loss); the given vital ops instead with `vital_ops`, none without
        `vital_first`."""
        from hournas_tf.nas import plots

        config, env = self.config, self.env
        space = env.space
        if not config.vital_first:
            return Stage1Result({})
        if config.vital_ops is not None:
            return Stage1Result(resolve_vital_ops(space, config.vital_ops))
        vital = list(space.vital_layers)
        net = stages.search_stage1(space, config, env.steps, self.strategy,
                                   env.latency)
        done = env.resume.steps_done(env.checkpoint, 'vital', net)
        env.checkpoint.attach('vital', net)
        self.output.keep()  # Training starts: a failure now keeps the folder.
        seconds = self._train('vital', net, config.vital_epochs, vital,
                              done=done)
        probs = net.op_probabilities()
        plots.op_heatmap(probs, [f'L{i + 1}' for i in vital], space.op_names,
                         np.array(space.candidate_mask())[vital],
                         'stage 1: vital layers', self.path('ops_vital.png'))
        return Stage1Result(net.derive(),
                            _probability_dict(space, vital, probs), net,
                            {'vital': seconds})

    def fix_vital_ops(self, stage1):
        """The vital ops of `stage1`, changed where needed to keep every
        target reachable (`VitalOps`)."""
        if not stage1.vital_ops:
            return VitalOps({}, [])
        ops, changed = self._fit_vital_ops(stage1)
        log('vital ops: ' + ', '.join(f'L{i + 1} {op}'
                                      for i, op in ops.items())
            + (f' (changed to keep the targets reachable: '
               f'{[i + 1 for i in changed]})' if changed else ''))
        return VitalOps(ops, changed)

    def _fit_vital_ops(self, stage1):
        """(ops, changed layers): `vital_policy.fit_vital_ops` for the
        targets (`BudgetSearchRun`: for every budget)."""
        return fit_vital_ops(self.env.space, stage1.vital_ops,
                             self.config.targets, stage1.probabilities,
                             self.env.latency)

    def proposals(self, vital, seconds):
        """The space proposals over the layers `vital` (`VitalOps`) leaves
        searched, written with stage 1's result (`seconds`: its timings)
        to stage1.json, whole or absent: a resumed run starts there."""
        from hournas_tf.nas import checkpointing

        result = self._optimize_proposals(vital, seconds)
        jsonio.write_json(
            self.path(checkpointing.STAGE1_FILE), result.to_json(),
            default=_jsonable)
        return result

    def _optimize_proposals(self, vital, seconds):
        """The optimized proposals (`PROPOSALS`; `BudgetSearchRun`: every
        budget's)."""
        searched = stages.searched_layers(self.env.space, vital.ops)
        table, presult, pconfig, report = proposal_report.optimize(
            self.env.space, searched, vital.ops, self.config,
            self.path('proposals_stage2.png'))
        return ProposalsResult(vital.ops, vital.changed, presult.logits,
                               pconfig.tau_end, report, dict(seconds), table)

    def _start_stage2(self, net, stage1):
        """Restores a stage-2 checkpoint into `net`, or starts it from
        stage 1's weights (the trained `stage1`, or a stage-1 checkpoint
        of a run stopped between the stages); the steps done."""
        env = self.env
        if env.resume.in_stage('nonvital'):
            return env.resume.steps_done(env.checkpoint, 'nonvital', net)
        trained = stage1.supernet if stage1 is not None else None
        if trained is None and env.resume.in_stage('vital'):
            trained = stages.search_stage1(env.space, self.config, env.steps,
                                           self.strategy, env.latency)
            env.resume.steps_done(env.checkpoint, 'vital', trained)
        if trained is not None:
            with self.strategy.scope():
                net.copy_weights_from(trained)
        env.checkpoint.attach('nonvital', net)
        env.checkpoint.save()
        return 0

    def stage2(self, proposals, stage1=None):
        """Stage 2 over `proposals` (`ProposalsResult`), from `stage1`'s
        weights; `Stage2Result`."""
        import keras

        config, env = self.config, self.env
        table = proposals.table
        # Stage 2 starts from the seed alone, however the run got here.
        keras.utils.set_random_seed(config.seed + 1)
        net = stages.search_stage2(
            env.space, config, env.steps, proposals.vital_ops, table,
            np.asarray(proposals.logits, np.float32), proposals.tau_end,
            self.strategy)
        seconds, start_columns = self._run_stage2(net, stage1,
                                                  proposals.logits, table)
        pi = net.proposal_probabilities()
        end = self._stage2_end(net, table, pi, proposals.report)
        return Stage2Result(net, pi, int(np.argmax(pi)), start_columns, end,
                            seconds)

    def _run_stage2(self, net, stage1, logits, table):
        """Starts `net` (`_start_stage2`) and trains it over `table`'s
        rows; (seconds, the proposals' most probable ops at the start)."""
        done = self._start_stage2(net, stage1)
        self.output.keep()
        start_columns = _proposals_argmax(logits, table.mask)
        seconds = self._train('nonvital', net, self.config.nonvital_epochs,
                              list(table.layer_indices), table, done=done,
                              start_columns=start_columns)
        return seconds, start_columns

    def _stage2_end(self, net, table, pi, report):
        """Plots stage 2's result; the report of 10,000 samples from the
        distribution it ended with."""
        from hournas_tf.nas import plots

        config, space = self.config, self.env.space
        searched = list(table.layer_indices)
        per_proposal = net.proposal_op_probabilities()
        best = int(np.argmax(pi))
        plots.op_heatmap(per_proposal[best], [f'L{i + 1}' for i in searched],
                         space.op_names,
                         np.array(space.candidate_mask())[searched],
                         f'stage 2: proposal {best} (pi = {pi[best]:.2f})',
                         self.path('ops_nonvital.png'))
        # per_proposal are the probabilities of stage 2's draws: at tau = 1
        # these samples come from the distribution stage 2 ended with.
        end, scatter = proposal_report.sample_report(
            table, np.log(np.maximum(per_proposal, 1e-12)), config.targets,
            config.tolerance, config.seed, pi=pi)
        end = end['1']
        end['budget_draws'] = config.budget_draws
        end['share_trained_within_tolerance'] = proposal_report.kept_share(
            end['share_within_tolerance'], config.budget_draws)
        log(f'stage 2 ends with {end["share_within_tolerance"]:.1%} of '
            f'{NUM_SAMPLES:,} draws within {config.tolerance:.0%} of every '
            f'target (it started with '
            f'{report["stage2_start"]["share_within_tolerance"]:.1%}); with '
            f'{config.budget_draws} draw(s) per step '
            f'{end["share_trained_within_tolerance"]:.2%} of the trained '
            'architectures are')
        plots.proposal_scatter(
            scatter, config.targets, config.tolerance,
            f'{space.name}: {NUM_SAMPLES:,} architectures after the search',
            self.path('proposals_searched.png'))
        return end

    def derive(self, stage2, proposals):
        """The model family (one architecture per proposal, repaired if
        `repair`) and the rows stage 2 changed (`Derivation`)."""
        config = self.config
        searched = list(proposals.table.layer_indices)
        changed = derive_lib.rows_changed(
            stage2.start_columns, stage2.supernet.arch_params.derive_all(),
            searched)
        moved = {'total': sum(len(c) for c in changed),
                 'rows': int(np.size(stage2.start_columns)),
                 'per_proposal': changed}
        log(f'stage 2 changed the most probable op of {moved["total"]} of '
            f'{moved["rows"]} (proposal, layer) rows')
        family = derive_lib.derive_family(
            stage2.supernet, proposals.table, proposals.vital_ops,
            config.targets, config.tolerance, config.repair,
            derive=config.derive, seed=config.seed,
            safety_net=[r['repaired_layers']
                        for r in proposals.report['proposals']])
        return Derivation(family, moved)

    def write(self, stage2, proposals, derived):
        """Writes arch.json, the family, the supernet and report.html;
        returns arch.json's summary."""
        config, space = self.config, self.env.space
        os.makedirs(self.path('family'), exist_ok=True)
        for j, member in enumerate(derived.family):
            member = dataclasses.replace(member, arch=dataclasses.replace(
                member.arch, name=f'{space.name}_proposal{j}'))
            save_derived(stage2.supernet, member,
                         self.path('family', f'proposal{j}.json'))
        entry = derived.family[stage2.best].entry
        arch = dataclasses.replace(derived.family[stage2.best].arch,
                                   name=f'{space.name}_hournas')
        summary = self._summary(stage2, proposals, derived, entry)
        # arch.json's network is the best member's: its weights file is a
        # copy (Keras names arrays by layer class and position, not by the
        # model's name), not a ninth standalone model built and saved.
        arch.save(self.path('arch.json'), {'search': summary})
        shutil.copyfile(
            weights_path(self.path('family', f'proposal{stage2.best}.json')),
            weights_path(self.path('arch.json')))
        _write_json(self.path('family', 'family.json'),
                    [m.entry for m in derived.family])
        # The whole stage-2 supernet: inherited weights for any architecture
        # of its space (`restore.load_supernet`), e.g. a random baseline's.
        restore.save_supernet(stage2.supernet, config.output_dir)
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

    def _summary(self, stage2, proposals, derived, entry):
        """arch.json's search entry."""
        config, space = self.config, self.env.space
        report = proposals.report
        return {
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
            'proposal': stage2.best,
            'proposal_probabilities': [float(p) for p in stage2.pi],
            'vital_layers': [i + 1 for i in space.vital_layers],
            'vital_ops': {i + 1: op for i, op in proposals.vital_ops.items()},
            'vital_ops_changed_for_feasibility': [
                i + 1 for i in proposals.changed_vital],
            'proposal_optimization': report,
            'stage2_start': report['stage2_start'],
            'stage2_end': stage2.end,
            'rows_changed': derived.rows_changed,
            'derive': config.derive,
            'family': [m.entry for m in derived.family],
            'seconds': {**proposals.seconds, 'nonvital': stage2.seconds,
                        'total': time.perf_counter() - self.started},
            'sampler': config.sampler,
            'vital_sampler': config.vital_sampler,
            'vital_first': config.vital_first,
        }

    def dry_run(self):
        """Everything but training: the vital ops without stage 1, the
        proposals and their samples (dry_run.json)."""
        config = self.config
        space, vital_ops, searched = untrained_plan(config)
        _, _, _, info = proposal_report.optimize(
            space, searched, vital_ops, config,
            self.path('proposals_dry_run.png'))
        summary = {'space': space.name, 'image_size': space.image_size,
                   'targets': config.targets, 'tolerance': config.tolerance,
                   'vital_layers': [i + 1 for i in space.vital_layers],
                   'vital_ops': {i + 1: op for i, op in vital_ops.items()},
                   **info}
        _write_json(self.path('dry_run.json'), summary)
        _write_json(self.path('search_config.json'), _config_json(config))
        ok = sum(r['within_tolerance'] for r in info['proposals'])
        log(f'{ok}/{len(info["proposals"])} proposals have their most '
            f'probable architecture within {config.tolerance:.0%} of every '
            f'target; wrote {config.output_dir}/dry_run.json')
        return summary


def run_class(config):
    """`SearchRun`, or its several-budget mode
    (`budget_search.BudgetSearchRun`) for a config with budgets."""
    if config.budgets:
        from hournas_tf.nas.budget_search import BudgetSearchRun

        return BudgetSearchRun
    return SearchRun


def run_search(config, strategy=None):
    """The whole search (`SearchRun.run`); returns the summary written
    into arch.json, or None after SIGTERM (a checkpoint, then a line
    saying how to resume). A failure before training leaves no output
    folder behind."""
    # Before TensorFlow is imported or anything is written: targets outside
    # the space fail at once.
    preflight(config)
    from hournas_tf.nas import checkpointing

    if config.resume:
        checkpointing.check_resumable(config.output_dir)
        output = OutputDir(config.output_dir)
        output.keep()
        return preemption.preemptible(
            run_class(config)(config, strategy, output).run)
    with new_output_dir(config.output_dir) as output:
        _write_json(os.path.join(config.output_dir, 'search_config.json'),
                    _config_json(config))
        return preemption.preemptible(
            run_class(config)(config, strategy, output).run)


def run_dry(config):
    """Everything but training (the command's `--dry_run`,
    `SearchRun.dry_run`); a failure leaves no output folder behind."""
    preflight(config)
    with new_output_dir(config.output_dir):
        return run_class(config)(config).dry_run()


def _probability_dict(space, rows, probs):
    return {i: {op: float(probs[r, c]) for c, op in enumerate(space.op_names)
                if space.op_names[c] in space.layers[i].candidates}
            for r, i in enumerate(rows)}


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
    model.save_weights(weights_path(path))


def weights_path(arch_path):
    """`<stem>.weights.h5` next to the architecture JSON `<stem>.json`."""
    return arch_path[:-len('.json')] + '.weights.h5'


def write_report(run_dir):
    """Writes the run's report.html; a failure is a warning (every result
    is written already; `python -m hournas_tf.report` retries)."""
    from hournas_tf.reporting import page

    try:
        log(f'wrote {page.write_report(run_dir)}')
    except Exception as e:  # noqa: BLE001 (the search itself succeeded)
        log(f'WARNING: no report: {type(e).__name__}: {e}; retry with '
            f'python -m hournas_tf.report {run_dir}')
