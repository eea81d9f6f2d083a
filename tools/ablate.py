"""Ablations of the search and the random-search baseline, as one table.

    python tools/ablate.py         # digits, the full table, 2 workers
    python tools/ablate.py --variants=hournas,random --seeds=5
    python tools/ablate.py --seeds=5 --search_epochs=5 --train_epochs=10

Every variant is searched (`nas.search_lib.run_search`) and its derived
architecture retrained (`training.train_lib.run_training`, the same recipe
for every row) once per seed:

- m in {1, 2, 4, 8, 16} space proposals (paper table 2);
- vital-first vs one stage (`vital_first=False`, table 4);
- Gumbel-Max vs Gumbel-softmax vs softmax in stage 2 (table 5);
- random: one architecture drawn uniformly from the whole space, kept only
  within tolerance of the same targets, per seed;
- random best-of-k: k such architectures with the vital ops the default
  search fixed, each scored by the default search's stage-2 supernet
  (inherited weights, batch-norm recalibration, accuracy on the search's
  architecture split, never the test split); the best one is retrained.

The default variant (m=8, Gumbel-Max, vital first) is one search shared by
the three tables. Each finished job leaves its files in
`<output_dir>/<variant>/seed<s>/`; rerunning the same command skips them
(resumable), and `--workers=N` runs N processes that claim jobs through lock
files. `results.json` holds every number, `ablation.md` the table.
"""

import contextlib
import dataclasses
import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import flags  # noqa: E402

from hournas_tf.common import errors  # noqa: E402
from hournas_tf.common import provenance  # noqa: E402
from hournas_tf.common import runner  # noqa: E402
from hournas_tf.common.errors import UserError  # noqa: E402
from hournas_tf.nas import config as config_lib  # noqa: E402
from hournas_tf.resources.counting import human  # noqa: E402

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
}
RANDOM = 'random'
BEST_OF_K = 'random_best_of_k'
VARIANTS = (*SEARCH_VARIANTS, RANDOM, BEST_OF_K)
RESULT_FILE = 'result.json'


@dataclasses.dataclass(frozen=True)
class AblationConfig:
    """What the ablation runs (the tool fills it from flags)."""

    output_dir: str
    search: config_lib.SearchConfig  # the default variant's settings
    train_epochs: int = 4
    seeds: tuple = (0, 1, 2)
    variants: tuple = VARIANTS
    random_k: int = 20
    estimate_batches: int = 10
    workers: int = 1


def log(message):
    print(f'[ablate] {message}', flush=True)


def _write_json(path, data):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2)
        f.write('\n')
    os.replace(tmp, path)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def cell_dir(config, variant, seed):
    return os.path.join(config.output_dir, variant, f'seed{seed}')


def search_config(config, variant, seed):
    """The `SearchConfig` of one search variant and seed."""
    overrides = SEARCH_VARIANTS[variant][0]
    return dataclasses.replace(
        config.search, seed=seed, verbose=0,
        output_dir=os.path.join(cell_dir(config, variant, seed), 'search'),
        **overrides)


def train_config(config, arch, seed, output_dir):
    """The `TrainConfig` every row is retrained with."""
    from hournas_tf.training import config as train_config_lib

    return train_config_lib.TrainConfig(
        arch=arch.to_string(), arch_name=arch.name or arch.space,
        dataset=config.search.dataset, data_dir=config.search.data_dir,
        image_size=arch.image_size, epochs=config.train_epochs,
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


def random_architecture(config, seed, fixed_ops=None, count=1):
    """`count` uniform random architectures within tolerance."""
    from hournas_tf.nas import random_archs
    from hournas_tf.nas import search_lib

    space = search_lib._space(config.search)
    archs, share = random_archs.sample_within(
        space, config.search.targets, config.search.tolerance, count,
        seed=1000 + seed, fixed_ops=fixed_ops)
    return archs, share


def estimate(config, run_dir, archs, seed):
    """Inherited-weight accuracy of each architecture in the run's stage-2
    supernet: batch-norm statistics recalibrated on the weight split,
    accuracy on the architecture split (the search's own data)."""
    import keras

    from hournas_tf import data as data_lib
    from hournas_tf.nas import derive
    from hournas_tf.nas import restore
    from hournas_tf.training import recalibration

    supernet = restore.load_supernet(run_dir)
    data = data_lib.load_search_data(data_lib.DataConfig(
        dataset=config.search.dataset, data_dir=config.search.data_dir,
        image_size=archs[0].image_size,
        batch_size=config.search.batch_size, seed=seed))
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
        else:
            run_dir = os.path.join(cell_dir(config, DEFAULT, seed), 'search')
            if not _search_done(run_dir):
                raise RuntimeError(f'{run_dir} is not finished')
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
                      repaired_layers=[], **extra)
    result['architecture'] = arch.to_string()
    metrics = _train(config, arch, seed, os.path.join(path, 'train'))
    result.update(test_accuracy=metrics['test_accuracy'],
                  train_wall_seconds=metrics['wall_seconds'],
                  job_wall_seconds=time.perf_counter() - wall,
                  job_cpu_seconds=_cpu() - cpu)
    _write_json(os.path.join(path, RESULT_FILE), result)
    return result


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- Scheduling: lock files shared by the workers ------------------------


def cells(config):
    """(variant, seed) in run order: the search-vs-random rows first (an
    interrupted table still answers the main question); best-of-k waits
    for the default search of its seed."""
    first = [v for v in (DEFAULT, RANDOM, BEST_OF_K)
             if v in config.variants]
    order = first + [v for v in config.variants if v not in first]
    return [(v, s) for v in order for s in config.seeds]


def is_done(config, variant, seed):
    return os.path.isfile(os.path.join(cell_dir(config, variant, seed),
                                       RESULT_FILE))


def _ready(config, variant, seed):
    if variant != BEST_OF_K:
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


def run_one_cell(config, variant, seed):
    """Runs one cell in this process (the child a worker starts)."""
    import tensorflow as tf

    # Every job of the table runs with the same graph settings: the
    # search's (Grappler off), also for the retraining.
    tf.config.optimizer.set_experimental_options(
        {'disable_meta_optimizer': True})
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


def work(config, argv):
    """Runs every unfinished cell this process can claim, each in a fresh
    child process (`argv` + `--cell`): TensorFlow keeps every traced graph
    of a process alive, and a worker running cell after cell in-process
    grew by about 1.5 GB per cell. A cell that fails is logged and not
    retried by this worker."""
    failed = set()
    while True:
        todo = [c for c in cells(config)
                if not is_done(config, *c) and c not in failed]
        if not todo:
            return
        for variant, seed in todo:
            if _ready(config, variant, seed) and claim(config, variant,
                                                       seed):
                break
        else:
            time.sleep(10)  # the rest is claimed or waits for a search
            continue
        try:
            if is_done(config, variant, seed):
                continue
            log(f'{variant} seed {seed}: started')
            logfile = os.path.join(cell_dir(config, variant, seed),
                                   'job.log')
            os.makedirs(os.path.dirname(logfile), exist_ok=True)
            with open(logfile, 'a') as f:
                proc = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), *argv,
                     '--workers=1', f'--cell={variant}:{seed}'],
                    stdout=f, stderr=subprocess.STDOUT)
            if proc.returncode or not is_done(config, variant, seed):
                failed.add((variant, seed))
                log(f'{variant} seed {seed}: failed (exit '
                    f'{proc.returncode}); see {logfile}')
                continue
            result = _read_json(os.path.join(
                cell_dir(config, variant, seed), RESULT_FILE))
            log(f'{variant} seed {seed}: test accuracy '
                f'{result["test_accuracy"]:.4f} in '
                f'{result["job_wall_seconds"]:.0f}s; {progress(config)}')
        finally:
            release(config, variant, seed)


# --- The table ---------------------------------------------------------------


def collect(config):
    """{variant: [result, ...]} of the finished cells."""
    return {v: [_read_json(os.path.join(cell_dir(config, v, s),
                                        RESULT_FILE))
                for s in config.seeds if is_done(config, v, s)]
            for v in config.variants}


def _mean_sd(values):
    if not values:
        return None, None
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), sd


def summarize(results, targets):
    """One row per variant: means and spreads."""
    rows = {}
    for variant, rs in results.items():
        if not rs:
            continue
        acc = [r['test_accuracy'] for r in rs]
        mean, sd = _mean_sd(acc)
        rows[variant] = {
            'n': len(rs),
            'accuracy_mean': mean, 'accuracy_sd': sd,
            'accuracy_min': min(acc), 'accuracy_max': max(acc),
            'search_seconds_mean': _mean_sd(
                [r['search_seconds'] for r in rs])[0],
            'search_seconds_sd': _mean_sd(
                [r['search_seconds'] for r in rs])[1],
            'within_tolerance': sum(r['within_tolerance'] for r in rs),
            'before_repair_within_tolerance': sum(
                r['before_repair_within_tolerance'] for r in rs),
            **{f'{obj}_mean': statistics.fmean(
                r['achieved'][obj] for r in rs) for obj in targets},
            **{f'{obj}_error_max': max(
                abs(r['relative_error'][obj]) for r in rs)
               for obj in targets},
        }
    return rows


def _label(variant):
    if variant in SEARCH_VARIANTS:
        return SEARCH_VARIANTS[variant][2], SEARCH_VARIANTS[variant][1]
    if variant == RANDOM:
        return 'random (uniform, within tolerance)', 'baseline'
    return 'random best-of-k by supernet estimate', 'baseline'


def comparison(rows, a=DEFAULT, b=RANDOM):
    """(difference of means, pooled sd, Welch t) of accuracy, a minus b."""
    if a not in rows or b not in rows:
        return None
    ra, rb = rows[a], rows[b]
    diff = ra['accuracy_mean'] - rb['accuracy_mean']
    pooled = ((ra['accuracy_sd'] ** 2 + rb['accuracy_sd'] ** 2) / 2) ** 0.5
    se = (ra['accuracy_sd'] ** 2 / ra['n']
          + rb['accuracy_sd'] ** 2 / rb['n']) ** 0.5
    return {'difference': diff, 'pooled_sd': pooled,
            'welch_t': diff / se if se else None}


def table(config, rows):
    """The markdown table."""
    targets = config.search.targets
    head = ['variant', 'paper', 'search / selection s']
    head += [f'{obj} (target {human(t)})' for obj, t in targets.items()]
    head += ['within tol. (before repair)', 'test accuracy mean ± sd',
             'min - max', 'n']
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '|'.join(['---'] * 3 + ['---:'] * (len(head) - 3)) + '|']
    for variant in config.variants:
        if variant not in rows:
            continue
        r = rows[variant]
        label, paper = _label(variant)
        cells_ = [label, paper, f'{r["search_seconds_mean"]:.0f} ± '
                  f'{r["search_seconds_sd"]:.0f}']
        cells_ += [f'{human(r[f"{obj}_mean"])} (max miss '
                   f'{r[f"{obj}_error_max"]:.1%})' for obj in targets]
        cells_ += [f'{r["within_tolerance"]}/{r["n"]} '
                   f'({r["before_repair_within_tolerance"]}/{r["n"]})',
                   f'{r["accuracy_mean"]:.2%} ± {r["accuracy_sd"]:.2%}',
                   f'{r["accuracy_min"]:.2%} - {r["accuracy_max"]:.2%}',
                   str(r['n'])]
        lines.append('| ' + ' | '.join(cells_) + ' |')
    return '\n'.join(lines)


def conclusion(rows):
    """One plain sentence per baseline: did the search beat it?"""
    out = []
    for baseline in (RANDOM, BEST_OF_K):
        c = comparison(rows, DEFAULT, baseline)
        if c is None:
            continue
        label = _label(baseline)[0]
        verdict = ('beat' if c['difference'] > 0 else 'did not beat')
        head = (f'HourNAS {verdict} {label} by {c["difference"]:+.2%} test '
                'accuracy')
        if c['welch_t'] is None:
            out.append(head + ': no seed spread to judge it by (one seed '
                       'per row, or identical results).')
            continue
        clear = abs(c['welch_t']) >= 2.0
        out.append(
            head + f' ({abs(c["difference"]) / c["pooled_sd"]:.1f} pooled '
            f'standard deviations; Welch t = {c["welch_t"]:.2f}): '
            + ('a difference beyond the seed spread.' if clear else
               'within the seed spread, not a clear difference.'))
    return out


def write_outputs(config, command, started):
    """results.json and ablation.md from the finished cells."""
    results = collect(config)
    rows = summarize(results, config.search.targets)
    jobs = [r for rs in results.values() for r in rs]
    data = {
        'command': command,
        'started': started,
        'written': datetime.datetime.now().isoformat(timespec='seconds'),
        'machine': machine(),
        'search_config': dataclasses.asdict(config.search),
        'train_epochs': config.train_epochs,
        'seeds': list(config.seeds),
        'random_k': config.random_k,
        'job_wall_seconds': sum(r['job_wall_seconds'] for r in jobs),
        'job_cpu_seconds': sum(r['job_cpu_seconds'] for r in jobs),
        'rows': rows,
        'comparison': {b: comparison(rows, DEFAULT, b)
                       for b in (RANDOM, BEST_OF_K)},
        'conclusion': conclusion(rows),
        'results': results,
    }
    _write_json(os.path.join(config.output_dir, 'results.json'), data)
    md = [table(config, rows), '']
    md += [f'- {line}' for line in data['conclusion']]
    elapsed = (datetime.datetime.fromisoformat(data['written'])
               - datetime.datetime.fromisoformat(started))
    m = data['machine']
    md += ['', f'Command: `{command}`; {len(jobs)} jobs, '
           f'{data["job_wall_seconds"] / 60:.0f} min of job wall time and '
           f'{data["job_cpu_seconds"] / 60:.0f} min of CPU time; started '
           f'{started}, table written {data["written"]} '
           f'({elapsed.total_seconds() / 60:.0f} min later, resumptions '
           f'included). {m["cpus"]} CPUs, load average {m["load_average"]}, '
           f'Python {m["python"]}, TensorFlow {m["tensorflow"]}, Keras '
           f'{m["keras"]}, commit {m["commit"]}.']
    with open(os.path.join(config.output_dir, 'ablation.md'), 'w') as f:
        f.write('\n'.join(md) + '\n')
    return data


def machine():
    """Where and with what the table was made."""
    m = provenance.machine()
    return {'platform': m['platform'], 'cpus': m['cpu_count'],
            'python': m['python'], 'tensorflow': m['tensorflow'],
            'keras': m['keras'],
            'commit': provenance.git_commit(REPO, mark_dirty=True),
            'load_average': [round(x, 2) for x in m['loadavg']]}


# --- Command -----------------------------------------------------------------


def define_flags():
    from hournas_tf.search import DEMO

    flags.DEFINE_string('output_dir', 'runs/ablation', 'Where the cells, '
                        'results.json and ablation.md go (rerun to resume).')
    flags.DEFINE_string('space', DEMO['space'], 'Search space.')
    flags.DEFINE_string('dataset', DEMO['dataset'], 'digits, '
                        'fashion_mnist[:PATH], cifar10, imagenet2012 or '
                        'image_folder:PATH.')
    flags.DEFINE_string('data_dir', None, 'tensorflow-datasets data dir.')
    flags.DEFINE_integer('image_size', DEMO['image_size'], 'Input size.',
                         lower_bound=8)
    flags.DEFINE_float('width_multiplier', DEMO['width_multiplier'],
                       'Width multiplier of the space.', lower_bound=0.01)
    flags.DEFINE_float('target_macs', DEMO['target_macs'], 'MACs target.')
    flags.DEFINE_float('target_params', DEMO['target_params'],
                       'Params target.')
    flags.DEFINE_float('tolerance', 0.03, 'Relative tolerance.')
    flags.DEFINE_integer('search_epochs', 2, 'Epochs of each search stage '
                         '(the demo search runs 5 + 4).', lower_bound=1)
    flags.DEFINE_integer('max_steps_per_epoch', None, 'Cap on search steps '
                         'per epoch.', lower_bound=1)
    flags.DEFINE_integer('proposal_iters', DEMO['proposal_iters'],
                         'Iterations of the proposal optimization.',
                         lower_bound=1)
    flags.DEFINE_integer('train_epochs', 4, 'Retraining epochs of every '
                         'row.', lower_bound=1)
    flags.DEFINE_integer('seeds', 3, 'Seeds per variant (0..n-1).',
                         lower_bound=1)
    flags.DEFINE_list('variants', list(VARIANTS), 'Rows to run.')
    flags.DEFINE_integer('random_k', 20, 'Random architectures scored by '
                         'the supernet for the best-of-k row.',
                         lower_bound=1)
    flags.DEFINE_integer('workers', 2, 'Processes running cells in '
                         'parallel (tracing a supernet is single-threaded, '
                         'so 2 suit 2 cores).', lower_bound=1)
    flags.DEFINE_bool('table_only', False, 'Write the table from the '
                      'finished cells and run nothing.')
    # Internal: a worker runs each cell as a child with --cell, and the
    # command starts its other workers with --worker_only.
    flags.DEFINE_string('cell', None, 'internal: run one cell, '
                        'VARIANT:SEED')
    flags.DEFINE_bool('worker_only', False, 'internal: run cells, start '
                      'no other worker and write no table')


def config_from_flags(f):
    from hournas_tf.search import DEMO

    for v in f.variants:
        if v not in VARIANTS:
            raise UserError(f'unknown variant {v!r}; valid: '
                            f'{errors.choices(VARIANTS)}')
    if BEST_OF_K in f.variants and DEFAULT not in f.variants:
        raise UserError(f'{BEST_OF_K} needs the {DEFAULT} variant (its '
                        'supernet scores the random architectures)')
    targets = {obj: float(v) for obj, v in (('macs', f.target_macs),
                                            ('params', f.target_params))
               if v}
    search = config_lib.SearchConfig(
        space=f.space, dataset=f.dataset, data_dir=f.data_dir,
        image_size=f.image_size, width_multiplier=f.width_multiplier,
        targets=targets, num_proposals=DEMO['num_proposals'],
        proposal_iters=f.proposal_iters, vital_epochs=f.search_epochs,
        nonvital_epochs=f.search_epochs,
        max_steps_per_epoch=f.max_steps_per_epoch,
        batch_size=DEMO['batch_size'], arch_lr=DEMO['arch_lr'],
        tolerance=f.tolerance, verbose=0)
    config = AblationConfig(
        output_dir=f.output_dir, search=search,
        train_epochs=f.train_epochs, seeds=tuple(range(f.seeds)),
        variants=tuple(v for v in VARIANTS if v in f.variants),
        random_k=f.random_k, workers=f.workers)
    return config


def preflight(config):
    """Every variant's settings and targets, before TensorFlow loads."""
    from hournas_tf.nas import search_lib

    for variant in config.variants:
        if variant in SEARCH_VARIANTS:
            search_lib.preflight(search_config(config, variant, 0))
    search_lib.whole_space_check(search_lib._space(config.search),
                                 config.search.targets)


def main(argv):
    if len(argv) > 1:
        raise UserError(f'unexpected arguments {argv[1:]}; use --flags')
    f = flags.FLAGS
    config = config_from_flags(f)
    if f.cell:
        variant, _, seed = f.cell.rpartition(':')
        run_one_cell(config, variant, int(seed))
        return
    if f.worker_only:
        work(config, sys.argv[1:])
        return
    preflight(config)
    os.makedirs(config.output_dir, exist_ok=True)
    command = ' '.join(['python', 'tools/ablate.py', *sys.argv[1:]])
    state_path = os.path.join(config.output_dir, 'started.json')
    if not os.path.isfile(state_path):
        _write_json(state_path, {'command': command, 'started':
                                 datetime.datetime.now().isoformat(
                                     timespec='seconds')})
    # The table names the command that started it (a rerun resumes it).
    state = _read_json(state_path)
    command, started = state['command'], state['started']
    if not f.table_only:
        workers = [subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *sys.argv[1:],
             '--worker_only'])
            for _ in range(f.workers - 1)]
        work(config, sys.argv[1:])
        for p in workers:
            p.wait()
    data = write_outputs(config, command, started)
    print(open(os.path.join(config.output_dir, 'ablation.md')).read())
    missing = len(cells(config)) - sum(len(r) for r in
                                       data['results'].values())
    if missing:
        log(f'{missing} cell(s) unfinished; rerun the command to resume')


if __name__ == '__main__':
    define_flags()
    runner.run(main)
