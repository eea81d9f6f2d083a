"""The ablations of the search and the random-search baseline: the
experiment (its variants and cells) and its scheduler. `tools/ablate.py`
is its command; `ablation_report` makes the table.

Every variant is searched (`nas.search_lib.run_search`) and its derived
architecture retrained (`training.train_lib.run_training`, the same recipe
for every row) once per seed:

- m in {1, 2, 4, 8, 16} space proposals (paper table 2);
- vital-first vs one stage (`vital_first=False`, table 4);
- Gumbel-Max vs Gumbel-softmax vs softmax in stage 2 (table 5);
- paper: the settings of configs/paper.flags (read from that file, the
  one source of truth; the ablation's budget fields `BUDGET_FIELDS` stay
  the ablation's);
- random: one architecture drawn uniformly from the whole space, kept only
  within tolerance of the same targets, per seed;
- random best-of-k: k such architectures with the vital ops the default
  search fixed, each scored by the default search's stage-2 supernet
  (inherited weights, batch-norm recalibration, accuracy on the search's
  architecture split, never the test split); the best one is retrained;
- no stage 2: the control of stage 2's own contribution. It reuses the
  default search of the same seed: that search writes stage1.json (the
  vital ops stage 1 fixed and the m optimized proposals, as stage 2
  starts from them) before stage 2 trains, so the control runs no search
  of its own. One proposal is chosen uniformly (seeded) and its
  architecture derived exactly as the search derives one from a
  proposal (`derive`, `repair`), from the logits stage 2 would have
  started with.

The default variant (m=8, Gumbel-Max, vital first) is one search shared by
the three tables and the two rows that reuse it. Each finished cell leaves
its files in `<output_dir>/<variant>/seed<s>/`; a rerun skips it
(resumable). `work` runs the unfinished cells on a pool of `workers`
threads, each cell in a fresh child process; a lock file per running cell
keeps a second command on the same folder off it.

Pairing: a seed gives every row the same search seed, the same retraining
seed (`keras.utils.set_random_seed`, the shuffle order of the training
data) and the same data; the rows differ only in the architecture.
"""

import concurrent.futures
import contextlib
import dataclasses
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

from hournas_tf.common import jsonio
from hournas_tf.common import runner
from hournas_tf.common import threads
from hournas_tf.nas import config as config_lib

DEFAULT = 'hournas'
# name -> (SearchConfig overrides, paper table, label)
SEARCH_VARIANTS = {
    DEFAULT: ({}, 'default', 'HourNAS (m=8, Gumbel-Max, vital first)'),
    'm1': ({'num_proposals': 1}, 'table 2', 'm=1'),
    'm2': ({'num_proposals': 2}, 'table 2', 'm=2'),
    'm4': ({'num_proposals': 4}, 'table 2', 'm=4'),
    'm16': ({'num_proposals': 16}, 'table 2', 'm=16'),
    'one_stage': ({'vital_first': False}, 'table 4',
                  'one stage (no vital-first)'),
    'gumbel_softmax': ({'sampler': 'gumbel_softmax'}, 'table 5',
                       'Gumbel-softmax'),
    'softmax': ({'sampler': 'softmax'}, 'table 5', 'softmax'),
    # Its overrides are read from PAPER_FLAGS (`variant_overrides`).
    'paper': (None, 'paper', 'paper settings (configs/paper.flags)'),
}
RANDOM = 'random'
BEST_OF_K = 'random_best_of_k'
NO_STAGE2 = 'no_stage2'
# name -> (paper table, label) of the rows that are no search of their own
OTHER_VARIANTS = {
    RANDOM: ('baseline', 'random (uniform, within tolerance)'),
    BEST_OF_K: ('baseline', 'random best-of-k by supernet estimate'),
    NO_STAGE2: ('control', 'no stage 2 (a uniformly chosen proposal)'),
}
VARIANTS = (*SEARCH_VARIANTS, *OTHER_VARIANTS)
# The rows the conclusion names: the search against each.
BASELINES = (RANDOM, BEST_OF_K, NO_STAGE2)
# The rows that read the default search of their seed.
NEEDS_DEFAULT = (BEST_OF_K, NO_STAGE2)
# The repository (a git checkout when installed editable).
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PAPER_FLAGS = os.path.join(REPO, 'configs', 'paper.flags')
# The ablation's budget: the same for every row, the paper row included.
BUDGET_FIELDS = ('proposal_iters', 'vital_epochs', 'nonvital_epochs',
                 'max_steps_per_epoch', 'batch_size')
RESULT_FILE = 'result.json'
STAGE1_FILE = 'stage1.json'  # nas.checkpointing's, without TensorFlow


@dataclasses.dataclass(frozen=True)
class AblationConfig:
    """What the ablation runs (the tool fills it from flags)."""

    output_dir: str
    search: config_lib.SearchConfig  # the default variant's settings
    train_epochs: int = 4
    train_examples: int = 0  # 0: all of the training split
    seeds: tuple = (0, 1, 2)
    variants: tuple = VARIANTS
    random_k: int = 20
    estimate_batches: int = 10
    workers: int = 1


POLL_SECONDS = 10  # best-of-k waiting for its default search


def log(message):
    runner.log(message, tag='ablate')


def _read_json(path):
    return jsonio.read_json(path, 'cell file')


def cell_dir(config, variant, seed):
    return os.path.join(config.output_dir, variant, f'seed{seed}')


def flagfile_overrides(path):
    """{SearchConfig field: value} of a search flagfile's lines (`--name=
    value`, `--name`, `--noname`; `#` comments), typed by the field."""
    from hournas_tf.common.errors import UserError

    fields = {f.name: f for f in dataclasses.fields(config_lib.SearchConfig)}
    out = {}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UserError(f'cannot read {path}: {e.strerror}') from e
    for line in lines:
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        name, sep, value = line.lstrip('-').partition('=')
        if not sep and name not in fields and name.startswith('no') and \
                name[2:] in fields:
            name, value = name[2:], 'false'
        elif not sep:
            value = 'true'
        field = fields.get(name)
        if field is None or name == 'targets':
            raise UserError(f'{path}: {line!r} is no search setting; '
                            'valid: --NAME=VALUE of a SearchConfig field')
        out[name] = _typed(field, value, path, line)
    return out


def _typed(field, value, path, line):
    from hournas_tf.common.errors import UserError

    kind = type(field.default) if field.default is not None else field.type
    try:
        if kind is bool:
            if value.lower() not in ('true', 'false', '1', '0'):
                raise ValueError(value)
            return value.lower() in ('true', '1')
        if kind is tuple:
            return tuple(value.split(','))
        return kind(value)
    except ValueError:
        raise UserError(f'{path}: {line!r}: {value!r} is no '
                        f'{kind.__name__}') from None


def variant_overrides(variant):
    """The `SearchConfig` changes of a search variant (the paper row's
    from `PAPER_FLAGS`, less `BUDGET_FIELDS`)."""
    overrides = SEARCH_VARIANTS[variant][0]
    if overrides is None:
        overrides = {k: v for k, v in flagfile_overrides(PAPER_FLAGS).items()
                     if k not in BUDGET_FIELDS}
    return overrides


def search_config(config, variant, seed):
    """The `SearchConfig` of one search variant and seed."""
    overrides = variant_overrides(variant)
    return dataclasses.replace(
        config.search, seed=seed, verbose=0,
        output_dir=os.path.join(cell_dir(config, variant, seed), 'search'),
        **overrides)


def train_config(config, arch, seed, output_dir):
    """The `TrainConfig` every row is retrained with: the same for every
    row but the architecture (the seed: data order and initialization;
    with `validation_fraction` the held-out part is evaluated instead of
    the test split)."""
    from hournas_tf.training import config as train_config_lib

    return train_config_lib.TrainConfig(
        arch=arch.to_string(), arch_name=arch.name or arch.space,
        dataset=config.search.dataset, data_dir=config.search.data_dir,
        image_size=arch.image_size,
        validation_fraction=config.search.validation_fraction,
        train_examples=config.train_examples, epochs=config.train_epochs,
        warmup_epochs=min(1.0, config.train_epochs / 2),
        batch_size=config.search.batch_size, seed=seed,
        output_dir=output_dir, verbose=0)


# --- Jobs ------------------------------------------------------------------


def _search_done(path):
    return os.path.isfile(os.path.join(path, 'supernet.json'))


def _fresh(path):
    """Removes what an interrupted job left in `path`."""
    if os.path.exists(path):
        shutil.rmtree(path)


def run_search_job(config, variant, seed):
    """Searches one variant and seed (skipped when done); returns the
    search summary."""
    from hournas_tf.nas import search_lib

    sconfig = search_config(config, variant, seed)
    if not _search_done(sconfig.output_dir):
        _fresh(sconfig.output_dir)
        search_lib.run_search(sconfig)
    return _read_json(os.path.join(sconfig.output_dir, 'arch.json'))


def _train(config, arch, seed, path):
    """Retrains `arch` into `path` (resumed or skipped when done)."""
    from hournas_tf.training import train_lib

    metrics = os.path.join(path, 'metrics.json')
    if not os.path.isfile(metrics):
        train_lib.run_training(train_config(config, arch, seed, path))
    return _read_json(metrics)


def random_architecture(config, seed, fixed_ops=None, count=1,
                        allowed_ops=None):
    """`count` uniform random architectures within tolerance (free
    layers limited to `allowed_ops` {layer: op names} where given)."""
    from hournas_tf.nas import random_archs
    from hournas_tf.nas import search_lib

    space = search_lib.search_space(config.search)
    archs, share = random_archs.sample_within(
        space, config.search.targets, config.search.tolerance, count,
        seed=1000 + seed, fixed_ops=fixed_ops, allowed_ops=allowed_ops)
    return archs, share


def estimate(config, run_dir, archs, seed):
    """Inherited-weight accuracy of each architecture in the run's stage-2
    supernet: batch-norm statistics recalibrated on the weight split,
    accuracy on the architecture split (the search's own data)."""
    import keras

    from hournas_tf import data as data_lib
    from hournas_tf.nas import derive
    from hournas_tf.nas import restore
    from hournas_tf.nas import search_lib
    from hournas_tf.training import recalibration

    supernet = restore.load_supernet(run_dir)
    data = data_lib.load_search_data(search_lib.data_config(
        search_config(config, DEFAULT, seed), archs[0].image_size))
    scores = []
    for arch in archs:
        model = derive.standalone_model(supernet, arch)
        recalibration.recalibrate_batch_norm(model, data.weights,
                                             config.estimate_batches)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True), metrics=['accuracy'])
        result = model.evaluate(data.arch, steps=data.arch_steps,
                                verbose=0, return_dict=True)
        scores.append(float(result['accuracy']))
    return scores


def _cost(arch, targets):
    from hournas_tf.resources import counting
    from hournas_tf.resources import tables

    total = counting.arch_cost(arch).total
    achieved = {obj: float(total.get(obj)) for obj in targets}
    return achieved, tables.relative_errors(achieved, targets)


def _default_search(config, seed):
    """The finished default search folder of `seed` (the rows
    `NEEDS_DEFAULT` read it)."""
    run_dir = os.path.join(cell_dir(config, DEFAULT, seed), 'search')
    if not _search_done(run_dir):
        raise RuntimeError(f'{run_dir} is not finished')
    return run_dir


def no_stage2_architecture(config, seed):
    """(architecture, report) of the no-stage-2 control: a proposal of the
    default search's stage1.json chosen uniformly (`numpy` seeded by
    `seed`), its architecture derived as the search derives one from a
    proposal (`config.search.derive`, `repair`) from the logits stage 2
    would have started with."""
    import numpy as np

    from hournas_tf.nas import derive
    from hournas_tf.nas import search_lib
    from hournas_tf.nas import stages
    from hournas_tf.resources import tables

    run_dir = _default_search(config, seed)
    stage1 = _read_json(os.path.join(run_dir, STAGE1_FILE))
    search = config.search
    space = search_lib.search_space(search)
    vital = {int(i): op for i, op in stage1['vital_ops'].items()}
    searched = stages.searched_layers(space, vital)
    table = tables.resource_table(space, searched, vital,
                                  tuple(search.targets))
    logits = np.asarray(stage1['proposals'], np.float64)
    chosen = int(np.random.default_rng(2000 + seed).integers(len(logits)))
    # Stage 2 starts each proposal at softmax(logits / tau_end)
    # (`nas.arch_params`, numpy here: no TensorFlow in this job).
    scaled = np.where(table.mask, logits[chosen] / stage1['tau_end'],
                      -np.inf)
    columns = scaled.argmax(axis=-1)
    probabilities = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    if search.derive == 'in_budget':
        found = derive.most_probable_in_budget(
            table, probabilities, search.targets, search.tolerance,
            search.seed + chosen)
        columns = columns if found is None else found
    derived = derive.derive_one(space, table, searched, vital, columns,
                                probabilities, search.targets,
                                search.tolerance, search.repair)
    safety_net = stage1['proposal_optimization']['proposals'][chosen].get(
        'repaired_layers') or []
    entry = derived.entry
    return derived.arch, {
        'proposal': chosen, 'num_proposals': len(logits),
        'stage1_seconds': float(sum(stage1['seconds'].values())),
        'within_tolerance': entry['within_tolerance'],
        'before_repair_within_tolerance': bool(
            entry['before_repair']['within_tolerance'] and not safety_net),
        'repaired_layers': entry['repaired_layers'],
        'proposal_repaired_layers': list(safety_net)}


def run_cell(config, variant, seed):
    """Runs (or resumes) one cell and writes its result.json."""
    from hournas_tf.spaces.architecture import Architecture

    path = cell_dir(config, variant, seed)
    os.makedirs(path, exist_ok=True)
    targets = config.search.targets
    result = {'variant': variant, 'seed': seed}
    wall, cpu = time.perf_counter(), _cpu()
    if variant in SEARCH_VARIANTS:
        summary = run_search_job(config, variant, seed)
        search = summary['search']
        arch = Architecture.from_json(summary)
        result.update(search_seconds=search['seconds']['total'],
                      achieved=search['achieved'],
                      relative_error=search['relative_error'],
                      within_tolerance=search['within_tolerance'],
                      before_repair_within_tolerance=search[
                          'before_repair']['within_tolerance'],
                      repaired_layers=search['repaired_layers'])
    else:
        select_start = time.perf_counter()
        if variant == RANDOM:
            archs, share = random_architecture(config, seed)
            arch, extra = archs[0], {'share_within_tolerance': share}
        elif variant == NO_STAGE2:
            arch, extra = no_stage2_architecture(config, seed)
            select_start -= extra['stage1_seconds']
        else:
            run_dir = _default_search(config, seed)
            searched = _read_json(os.path.join(run_dir, 'arch.json'))
            vital = {int(i) - 1: op for i, op in
                     searched['search']['vital_ops'].items()}
            archs, share = random_architecture(config, seed, vital,
                                               config.random_k)
            scores = estimate(config, run_dir, archs, seed)
            best = max(range(len(archs)), key=lambda k: scores[k])
            arch = archs[best]
            extra = {'share_within_tolerance': share,
                     'candidates': [a.to_string() for a in archs],
                     'estimates': scores, 'chosen': best}
        arch = dataclasses.replace(arch, name=f'{variant}_seed{seed}')
        achieved, errs = _cost(arch, targets)
        result.update(search_seconds=time.perf_counter() - select_start,
                      achieved=achieved, relative_error=errs,
                      within_tolerance=True,
                      before_repair_within_tolerance=True,
                      repaired_layers=[])
        result.update(extra)
    result['architecture'] = arch.to_string()
    metrics = _train(config, arch, seed, os.path.join(path, 'train'))
    result.update(test_accuracy=metrics['test_accuracy'],
                  train_wall_seconds=metrics['wall_seconds'],
                  job_wall_seconds=time.perf_counter() - wall,
                  job_cpu_seconds=_cpu() - cpu)
    jsonio.write_json(os.path.join(path, RESULT_FILE), result)
    return result


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- Scheduling: a pool of workers, one child process per cell -----------


def cells(config):
    """(variant, seed) in run order, seed by seed, so that an interrupted
    table holds whole paired seeds. Within a seed the search-vs-random
    rows come first; a row that reads the default search of its seed
    (`NEEDS_DEFAULT`) is queued after the next seed's default search, so
    that no worker waits for a search it cannot help."""
    first = [v for v in (DEFAULT, RANDOM, NO_STAGE2, BEST_OF_K)
             if v in config.variants]
    order = first + [v for v in config.variants if v not in first]
    waits = DEFAULT in config.variants and len(order) > 1
    later = [v for v in order if waits and v in NEEDS_DEFAULT]
    own = [v for v in order if v not in later]
    result, pending = [], []
    for seed in config.seeds:
        for k, variant in enumerate(own):
            result.append((variant, seed))
            if k == 0:
                result.extend(pending)
        pending = [(v, seed) for v in later]
    return result + pending


def is_done(config, variant, seed):
    return os.path.isfile(os.path.join(cell_dir(config, variant, seed),
                                       RESULT_FILE))


def _ready(config, variant, seed):
    if variant not in NEEDS_DEFAULT:
        return True
    return (DEFAULT not in config.variants
            or is_done(config, DEFAULT, seed)
            or _search_done(os.path.join(cell_dir(config, DEFAULT, seed),
                                         'search')))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(config, variant, seed):
    """Takes the cell's lock file; False if a live process holds it."""
    locks = os.path.join(config.output_dir, 'locks')
    os.makedirs(locks, exist_ok=True)
    path = os.path.join(locks, f'{variant}-seed{seed}.lock')
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                with open(path) as f:
                    pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                return False
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)  # stale: its process is gone
            continue
        with os.fdopen(fd, 'w') as f:
            f.write(str(os.getpid()))
        return True
    return False


def release(config, variant, seed):
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(config.output_dir, 'locks',
                               f'{variant}-seed{seed}.lock'))


def set_up_cell(workers):
    """In a cell's child process (this table's, or a retraining of the
    recipe-length and rank-correlation runs): TensorFlow's pools get the
    cell's share of the cores (two default pools per process contend when
    two cells share two cores; benchmarks/speed/worker_threads.py), and
    every job runs with the same graph settings, the search's (Grappler
    off), also for a retraining. Returns the line the cell logs."""
    import tensorflow as tf

    line = threads.take_share(workers)
    tf.config.optimizer.set_experimental_options(
        {'disable_meta_optimizer': True})
    return line


def run_one_cell(config, variant, seed):
    """Runs one cell in this process (the child a worker starts), with
    its share of the cores for TensorFlow's thread pools."""
    log(set_up_cell(config.workers))
    return run_cell(config, variant, seed)


def progress(config):
    """'k/n cells done; about m min left': the finished cells' mean wall
    time times the unfinished ones, over the workers."""
    todo = cells(config)
    done = [c for c in todo if is_done(config, *c)]
    line = f'{len(done)}/{len(todo)} cells done'
    if done and len(done) < len(todo):
        mean = statistics.fmean(
            _read_json(os.path.join(cell_dir(config, *c), RESULT_FILE))[
                'job_wall_seconds'] for c in done)
        left = mean * (len(todo) - len(done)) / config.workers
        line += (f'; about {left / 60:.0f} min left with '
                 f'{config.workers} worker(s)')
    return line


def _wait_for_default(config, seed, default):
    """Best-of-k: waits until the default search of `seed` is done (its
    cell may still be retraining), or its cell (future `default`)
    ended."""
    while not _ready(config, NEEDS_DEFAULT[0], seed) and not (
            default is None or default.done()):
        time.sleep(POLL_SECONDS)


def _run_child(config, variant, seed, command, default=None):
    """Runs one cell as the child `command` + `--cell=VARIANT:SEED` (its
    output into the cell's job.log); returns its result, or None if it
    failed or another process holds the cell."""
    if variant in NEEDS_DEFAULT:
        _wait_for_default(config, seed, default)
    if not claim(config, variant, seed):
        return None
    try:
        if is_done(config, variant, seed):
            return None
        log(f'{variant} seed {seed}: started')
        logfile = os.path.join(cell_dir(config, variant, seed), 'job.log')
        os.makedirs(os.path.dirname(logfile), exist_ok=True)
        with open(logfile, 'a') as f:
            proc = subprocess.run(
                [*command, f'--cell={variant}:{seed}'],
                stdout=f, stderr=subprocess.STDOUT)
        if proc.returncode or not is_done(config, variant, seed):
            log(f'{variant} seed {seed}: failed (exit {proc.returncode}); '
                f'see {logfile}')
            return None
        result = _read_json(os.path.join(cell_dir(config, variant, seed),
                                         RESULT_FILE))
        log(f'{variant} seed {seed}: test accuracy '
            f'{result["test_accuracy"]:.4f} in '
            f'{result["job_wall_seconds"]:.0f}s; {progress(config)}')
        return result
    finally:
        release(config, variant, seed)


def work(config, argv, program=None):
    """Runs every unfinished cell, `config.workers` at a time, each in a
    fresh child process (`program` + `argv`; default the running
    script): TensorFlow keeps every traced graph of a process alive, and
    running cell after cell in one process grew by about 1.5 GB per
    cell. A cell that fails is logged and not retried."""
    command = [sys.executable, os.path.abspath(program or sys.argv[0]),
               *argv]
    futures = {}
    with concurrent.futures.ThreadPoolExecutor(config.workers) as pool:
        # In cells() order: a default search is submitted (and started)
        # before the best-of-k cell that waits for it.
        for variant, seed in cells(config):
            if not is_done(config, variant, seed):
                futures[variant, seed] = pool.submit(
                    _run_child, config, variant, seed, command,
                    futures.get((DEFAULT, seed)))
    for future in futures.values():
        future.result()  # a bug in the scheduler itself surfaces here


def preflight(config):
    """Every variant's settings and targets, before TensorFlow loads."""
    from hournas_tf.nas import search_lib

    for variant in config.variants:
        if variant in SEARCH_VARIANTS:
            search_lib.preflight(search_config(config, variant, 0))
    search_lib.whole_space_check(search_lib.search_space(config.search),
                                 config.search.targets)
