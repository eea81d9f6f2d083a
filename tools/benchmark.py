"""The speed benchmarks of the search (issue 10), one command.

    python tools/benchmark.py --quick          # reduced set, < 5 min on 2 cores
    python tools/benchmark.py                  # the full set
    python tools/benchmark.py --device=gpu     # ImageNet-shape throughput
    python tools/benchmark.py --throughput     # the GPU plan, on the CPU

Runs every case of the plan in its own subprocess (bounded memory, clean
allocator peaks; a failure or an out-of-memory kill is recorded and the
other cases continue), prints a table of the figures a-h with their goals
and verdicts and writes `<output>/results-<device>.json` (after every case,
so an interrupted run keeps what it measured). `tools/benchmarks_md.py`
renders BENCHMARKS.md from these files.

Cases (same synthetic inputs for all contenders of a case; contenders of
a case are timed interleaved, call by call, and compared as the median of
per-round ratios; wall and process CPU seconds and `os.getloadavg()` are
recorded with every case):
- steps: stage-2 supernet single path (gumbel_max) / all paths
  (gumbel_softmax) / one fixed path, the standalone model of that path,
  the stage-1 supernet: first step, steady steps, allocator peaks (a-d, f);
- mixed_layer: one mixed layer single vs all paths at 224 (a);
- proposals: 8 x 1000 iterations and 10,000 draws (e);
- input: tools/bench_input.py beside the stage-2 step (g);
- demo_search: the embedded demo, whole (d; full set only);
- budgets: the demo with three `--budgets` beside the demo itself, side by
  side (h; full set only);
- throughput (--device=gpu or --throughput): stage-1 and stage-2 images/s
  at 224, batch 256, float32 / mixed precision, with and without XLA, and
  the projected wall time of the paper's search.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from absl import flags

from hournas_tf.common import errors
from hournas_tf.common import jsonio
from hournas_tf.common import provenance
from hournas_tf.common import runner

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES = ('cpu', 'gpu')


def define_flags():
    """Defines the tool's flags (only when run as a script)."""
    flags.DEFINE_bool('quick', False, 'The reduced set (CI, < 5 min on a '
                      '2-core CPU).')
    flags.DEFINE_enum('device', 'cpu', DEVICES, 'cpu: the figures a-h; '
                      'gpu: the throughput plan on the first GPU.')
    flags.DEFINE_bool('throughput', False, "Run the GPU plan (throughput at "
                      "ImageNet shape) on --device (the GPU's code path on "
                      'the CPU).')
    flags.DEFINE_bool('tiny', False, 'Tiny sizes for every case (tests).')
    flags.DEFINE_string('output', 'benchmarks', 'Folder of '
                        'results-<device>.json.')
    flags.DEFINE_list('cases', None, 'Run only these cases of the plan.')
    flags.DEFINE_integer('timeout', 3600, 'Seconds per case.', lower_bound=1)
    flags.DEFINE_bool('reuse_only', False, 'With --resume_from: run no '
                      'case; the cases not found are listed as not run.')
    flags.DEFINE_list('resume_from', None, 'Results files of earlier '
                      '(interrupted or partial) runs: their ok cases with the '
                      "same kind and parameters are taken over, marked "
                      "'reused_from', instead of run again.")
    # Internal: one case in this process (the parent runs these).
    flags.DEFINE_string('case', None, 'internal: run one case')
    flags.DEFINE_string('case_params', None, 'internal: its parameters')
    flags.DEFINE_string('case_output', None, 'internal: its result file')


# --- The plans ------------------------------------------------------------

FBNET32 = {'space': 'fbnet', 'image_size': 32, 'width_multiplier': 0.25,
           'num_classes': 10, 'batch_size': 64}
FBNET224 = {'space': 'fbnet', 'image_size': 224, 'width_multiplier': 1.0,
            'num_classes': 1000, 'batch_size': 32}
TINY = {'space': 'fbnet', 'image_size': 32, 'width_multiplier': 0.25,
        'num_classes': 10, 'batch_size': 4}
# Figure h: three budgets of the demo space around the demo's own target
# (10M MACs, 0.25M params) in one search, against the demo's search.
DEMO_BUDGETS = {'single': [], 'budget_count': 3, 'budgets': [
    '--budgets=low=macs:8e6/params:0.22e6,mid=macs:10e6/params:0.25e6,'
    'high=macs:12e6/params:0.28e6']}
ALL = ['stage2_single', 'stage2_all', 'stage2_fixed', 'standalone', 'stage1']
PROPOSALS = {'space': 'fbnet', 'image_size': 224, 'width_multiplier': 1.0,
             'num_classes': 1000, 'targets': {'macs': 295e6,
                                              'params': 4.8e6},
             'num_proposals': 8, 'iters': 1000, 'tolerance': 0.03,
             'samples': 10_000}


def plan(quick=False, throughput=False, tiny=False):
    """[(case name, kind, params)] of a run."""
    if throughput:
        # XLA compiles every branch of every switch_case: minutes on a CPU
        # even for one searched layer (speed spike), so the tiny plan gives
        # it a short timeout and the run records the miss.
        shape = dict(TINY, searched_layers=1, steps=2) if tiny else {
            'space': 'fbnet', 'image_size': 224, 'width_multiplier': 1.0,
            'num_classes': 1000, 'batch_size': 256, 'searched_layers': None,
            'steps': 10}
        if quick and not tiny:
            shape['steps'] = 3
        cases = []
        for policy in (None, 'mixed_float16'):
            for xla in (False, True):
                name = ('throughput_' + ('mixed' if policy else 'fp32')
                        + ('_xla' if xla else ''))
                params = dict(shape, policy=policy, xla=xla)
                if xla and tiny:
                    params['timeout'] = 60
                cases.append((name, 'throughput', params))
        return cases
    if tiny:
        small = dict(TINY, searched_layers=1, rounds=1)
        return [
            ('steps', 'steps', dict(small, contenders=ALL, memory=True)),
            ('layer', 'mixed_layer', dict(TINY, layers=[3], rounds=1)),
            ('proposals', 'proposals', dict(PROPOSALS, iters=20,
                                            samples=1000)),
            ('input', 'input', {'dataset': 'digits', 'batch_size': 16,
                                'batches': 3, 'train_steps': 1}),
        ]
    if quick:
        return [
            ('steps32', 'steps', dict(FBNET32, searched_layers=1, rounds=3,
                                      contenders=ALL, memory=True)),
            ('steps224', 'steps', dict(FBNET224, searched_layers=1, rounds=2,
                                       contenders=ALL[:2], memory=True)),
            ('layer224', 'mixed_layer', dict(FBNET224, layers=[12],
                                             rounds=2)),
            ('proposals', 'proposals', dict(PROPOSALS)),
            ('input', 'input', {'dataset': 'digits', 'batch_size': 64,
                                'batches': 50, 'train_steps': 3}),
        ]
    full = dict(searched_layers=None)
    return [
        ('a32', 'steps', dict(FBNET32, **full, rounds=5,
                              contenders=ALL[:2], memory=True)),
        ('b32', 'steps', dict(FBNET32, **full, rounds=8,
                              contenders=['stage2_fixed', 'standalone'])),
        ('c32', 'steps', dict(FBNET32, **full, rounds=5,
                              contenders=['stage1', 'stage2_single'])),
        ('d32_efficientnet', 'steps', dict(
            FBNET32, space='efficientnet', **full, rounds=2,
            contenders=['stage1', 'stage2_single', 'standalone'])),
        ('a224', 'steps', dict(FBNET224, **full, rounds=3,
                               contenders=ALL[:2], memory=True)),
        ('layer224', 'mixed_layer', dict(FBNET224, layers=[3, 8, 12, 16, 20],
                                         rounds=3)),
        ('proposals', 'proposals', dict(PROPOSALS)),
        ('input', 'input', {'dataset': 'digits', 'batch_size': 64,
                            'batches': 200, 'train_steps': 10}),
        ('demo_search', 'demo_search', {'repeats': 3}),
        ('budgets', 'budget_search', DEMO_BUDGETS),
    ]


# --- One case (in its own process) -----------------------------------------

def _setup_tf():
    import tensorflow as tf

    # As run_search (graph_optimizations=False): Grappler off.
    tf.config.optimizer.set_experimental_options(
        {'disable_meta_optimizer': True})
    return tf


def _space(params):
    from hournas_tf.benchmarking import steps as bm

    return bm.get_space(params['space'], params['image_size'],
                        params['width_multiplier'], params['num_classes'])


def case_steps(params):
    """First step and interleaved steady steps of the contenders."""
    import gc

    from hournas_tf.benchmarking import steps as bm
    from hournas_tf.nas import stages as stages_lib

    _setup_tf()
    space = _space(params)
    n = params.get('searched_layers')
    data = bm.synthetic_batches(space, params['batch_size'])
    keep, steps, first, searched, full = {}, {}, {}, {}, {}
    bm.warm_up()
    for name in params['contenders']:
        stage = 1 if name == 'stage1' else 2
        layout, _ = stages_lib.layout(space, stage, n)
        searched[name] = len(layout)
        full[name] = len(stages_lib.layout(space, stage, None)[0])
        keep[name], steps[name], first[name] = bm.first_step(
            lambda name=name: bm.build_contender(name, space, n), data)
        print(f'{name}: first step {first[name]["total"]["wall"]:.1f} s '
              f'wall, {first[name]["total"]["cpu"]:.1f} CPU s', flush=True)
        gc.collect()
    times = bm.interleaved(steps, data, params['rounds'])
    memory = {}
    if params.get('memory'):
        for name, fn in steps.items():
            memory[name] = bm.step_memory(fn, data)
    return {'first_step': first, 'times': times, 'memory': memory,
            'searched': searched, 'full_searched': full,
            'mac_bound': bm.mac_bound(space, n),
            'stage1_sampler': 'gumbel_softmax', 'rss_mb': bm.rss_mb()}


def case_mixed_layer(params):
    from hournas_tf.benchmarking import steps as bm

    _setup_tf()
    space = _space(params)
    layers = []
    for number in params['layers']:
        layers.append(bm.mixed_layer_ratio(space, number - 1,
                                           params['batch_size'],
                                           params['rounds']))
    return {'layers': layers}


def case_proposals(params):
    import numpy as np

    from hournas_tf.benchmarking import steps as bm
    from hournas_tf.nas import proposals
    from hournas_tf.nas import stages as stages_lib
    from hournas_tf.resources import tables

    space = _space(params)
    searched, fixed = stages_lib.layout(space, 2)
    table = tables.resource_table(space, searched, fixed,
                                  tuple(params['targets']))
    config = proposals.ProposalConfig(num_proposals=params['num_proposals'],
                                      iters=params['iters'],
                                      tol=params['tolerance'])
    t = bm.now()
    result = proposals.optimize_proposals(table, params['targets'], config)
    first = bm.since(t)
    t = bm.now()
    proposals.optimize_proposals(table, params['targets'], config)
    second = bm.since(t)
    cols = proposals.sample_architectures(result.logits, params['samples'],
                                          config.tau_end, 1)
    ok = tables.within(tables.totals(table, cols), params['targets'],
                       params['tolerance'])
    return {'first_wall': first['wall'], 'first_cpu': first['cpu'],
            'second_wall': second['wall'], 'second_cpu': second['cpu'],
            'optimize_seconds': result.seconds, 'rows': len(searched),
            'tau': config.tau_end, 'samples': params['samples'],
            'share_within': float(np.mean(ok))}


def case_input(params):
    from hournas_tf import data
    from tools import bench_input

    config = data.DataConfig(dataset=params['dataset'],
                             batch_size=params['batch_size'])
    data.check_config(config)
    return bench_input.bench(config, params['batches'],
                             params['train_steps'])


def run_searches(named_args, quiet=True):
    """Runs `python -m hournas_tf.search` once per {name: [flags]}, all at
    once (side by side, so that they share the machine's load), each with
    its own output folder; returns {name: {'wall', 'cpu', 'started',
    'output_dir'}} (the CPU seconds of that child alone, `os.wait4`;
    `started` in seconds since the epoch). `quiet`: with `--verbose=0`
    (no progress bars); the output goes to /dev/null either way."""
    import threading

    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop('TF_CPU_ALLOCATOR_USE_BFC', None)
    out = {}
    errors_seen = {}

    def run(name, args):
        folder = tempfile.mkdtemp(prefix=f'hournas_bench_{name}_')
        with open(os.path.join(folder, 'stderr.log'), 'w') as err:
            started, start = time.time(), time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, '-m', 'hournas_tf.search',
                 f'--output_dir={folder}/run',
                 *(['--verbose=0'] if quiet else []), *args],
                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            with open(os.path.join(folder, 'stderr.log')) as f:
                errors_seen[name] = f.read()[-2000:]
        out[name] = {'wall': time.perf_counter() - start,
                     'cpu': usage.ru_utime + usage.ru_stime,
                     'started': started, 'output_dir': folder}

    threads = [threading.Thread(target=run, args=item)
               for item in named_args.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors_seen:
        name = sorted(errors_seen)[0]
        raise RuntimeError(f'search {name} failed: {errors_seen[name]}')
    return out


def demo_outcome(run_dir):
    """What the demo's goal asks of a run besides its time: stage 2's last
    training accuracy (history.jsonl) and whether arch.json is within
    tolerance of every target."""
    with open(os.path.join(run_dir, 'history.jsonl')) as f:
        records = [json.loads(line) for line in f if line.strip()]
    stage2 = [r for r in records if r.get('stage') == 'nonvital']
    search = jsonio.read_json(os.path.join(run_dir, 'arch.json'),
                              'architecture')['search']
    return {'stage2_accuracy': stage2[-1]['accuracy'] if stage2 else None,
            'within_tolerance': bool(search['within_tolerance']),
            'search_seconds': search['seconds']['total']}


def case_demo_search(params):
    """The embedded demo, whole (figure d): `repeats` runs one after the
    other, each with the command's default flags (only --output_dir), its
    wall time from start to exit and its outcome (`demo_outcome`); `wall`
    and `cpu` are the medians."""
    import numpy as np

    runs = []
    for _ in range(params.get('repeats', 1)):
        load = list(os.getloadavg())
        run = run_searches({'demo': params.get('args', [])},
                           quiet=False)['demo']
        runs.append(dict(run, loadavg_before=load,
                         **demo_outcome(os.path.join(run['output_dir'],
                                                     'run'))))
    return {'runs': runs,
            'wall': float(np.median([r['wall'] for r in runs])),
            'cpu': float(np.median([r['cpu'] for r in runs])),
            'loadavg': list(os.getloadavg())}


def case_budget_search(params):
    """One search with several `--budgets` and one single-budget search
    of the same length, side by side (figure h)."""
    runs = run_searches({'single': params['single'],
                         'budgets': params['budgets']})
    return dict(runs, budget_count=params['budget_count'],
                loadavg=list(os.getloadavg()))


def case_throughput(params):
    """Stage-1 and stage-2 steps at the given shape: images/s and the
    projected search time, on the first GPU (or the CPU)."""
    import gc

    import keras

    from hournas_tf.benchmarking import figures
    from hournas_tf.benchmarking import steps as bm

    tf = _setup_tf()
    gpus = tf.config.list_physical_devices('GPU')
    if params.get('device', 'cpu') == 'gpu':
        if not gpus:
            raise RuntimeError('no GPU visible to TensorFlow')
        device, device_name = 'GPU:0', provenance.machine()['gpus'][0]
    else:
        device, device_name = 'CPU:0', provenance.machine()['cpu']
    if params['policy']:
        keras.mixed_precision.set_global_policy(params['policy'])
    space = _space(params)
    n = params.get('searched_layers')
    stages = {}
    with tf.device(device):
        bm.warm_up()
        data = bm.synthetic_batches(space, params['batch_size'])
        for stage, name in ((1, 'stage1'), (2, 'stage2_single')):
            keep, fn, first = bm.first_step(
                lambda name=name: bm.build_contender(
                    name, space, n, jit_compile=params['xla']), data)
            times = bm.interleaved({name: fn}, data, params['steps'])[name]
            wall = float(sorted(times['wall'])[len(times['wall']) // 2])
            stages[f'stage{stage}'] = {
                'first_step': first, 'times': times, 'step_wall': wall,
                'images_per_s': 2 * params['batch_size'] / wall,
                'memory': bm.step_memory(fn, data, 1, device)}
            del keep, fn
            gc.collect()
    minutes = figures.projected_minutes(
        {k: v['step_wall'] for k, v in stages.items()}, params['batch_size'])
    return {'device': device, 'device_name': device_name, 'stages': stages,
            'projected_minutes': minutes}


CASES = {'steps': case_steps, 'mixed_layer': case_mixed_layer,
         'proposals': case_proposals, 'input': case_input,
         'demo_search': case_demo_search, 'budget_search': case_budget_search,
         'throughput': case_throughput}


def run_one_case(kind, params, output):
    """The child's work: runs case `kind` and writes its result JSON."""
    start = (time.perf_counter(), time.process_time())
    result = CASES[kind](params)
    record = {'result': result,
              'wall': time.perf_counter() - start[0],
              'cpu': time.process_time() - start[1],
              'loadavg': list(os.getloadavg())}
    jsonio.write_json(output, record, default=float, indent=1)


# --- The parent ------------------------------------------------------------

def run_case(name, kind, params, timeout):
    """Runs one case in a subprocess; returns its record (status ok or
    failed with the error and the exit code)."""
    env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC='true',
               TF_CPP_MIN_LOG_LEVEL='2', KERAS_BACKEND='tensorflow',
               PYTHONPATH=REPO)
    load = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        output = os.path.join(tmp, 'case.json')
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, os.path.abspath(__file__), f'--case={kind}',
                 '--case_params=' + json.dumps(params),
                 f'--case_output={output}'],
                env=env, cwd=REPO, capture_output=True, text=True,
                timeout=params.get('timeout', timeout))
            code, stderr = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as e:
            code = 'timeout'
            stderr = (e.stderr or b'').decode('utf8', 'replace') if \
                isinstance(e.stderr, bytes) else (e.stderr or '')
        wall = time.perf_counter() - start
        record = {'kind': kind, 'params': params, 'loadavg_before': load,
                  'loadavg_after': list(os.getloadavg()),
                  'process_wall': wall}
        if code == 0 and os.path.exists(output):
            with open(output) as f:
                record.update(json.load(f))
            record['status'] = 'ok'
            return record
    if code == -9:
        error = 'killed (SIGKILL: out of memory?)'
    elif code == 'timeout':
        error = f'timed out after {params.get("timeout", timeout)} s'
    elif isinstance(code, int) and code < 0:
        error = f'killed by signal {signal.Signals(-code).name}'
    else:
        lines = [line for line in stderr.strip().splitlines() if line]
        error = f'exit {code}: ' + (lines[-1] if lines else 'no message')
    record.update(status='failed', error=error, returncode=code,
                  stderr_tail=stderr[-3000:])
    return record


def reusable_cases(paths):
    """{json [kind, params]: case record} of the ok cases in `paths`."""
    out = {}
    for path in paths:
        data = jsonio.read_json(path, 'benchmark results')
        for case in data.get('cases', {}).values():
            if case.get('status') == 'ok':
                key = json.dumps([case['kind'], case['params']],
                                 sort_keys=True)
                origin = f'{os.path.basename(path)} of {data.get("date")}'
                out[key] = dict(case, reused_from=case.get('reused_from')
                                or origin)
    return out


def results_path(output, device, throughput, cases=None):
    """`<output>/results-<device>[-throughput][-<case>...].json`: a run of
    some `--cases` only writes its own file, next to the whole plan's."""
    suffix = '-throughput' if throughput and device == 'cpu' else ''
    suffix += ''.join(f'-{c}' for c in cases or ())
    return os.path.join(output, f'results-{device}{suffix}.json')


def command_line(argv):
    return 'python tools/benchmark.py' + ''.join(
        f' {a}' for a in argv[1:])


def write_results(path, header, results):
    from hournas_tf.benchmarking import figures

    data = dict(header, cases=results, figures=figures.figures(results))
    jsonio.write_json(path, data, default=float, indent=1)
    return data


def _fmt(value):
    if value is None:
        return '-'
    if isinstance(value, list):
        return ' / '.join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f'{value:.3g}' if abs(value) < 100 else f'{value:.0f}'
    return str(value)


def verdict(met):
    return {True: 'met', False: 'MISS', None: '-'}[met]


def print_table(data):
    print(f'\n{"fig":4} {"value":>16} {"goal":>22} {"verdict":7}  figure')
    for fig in data['figures']:
        value = _fmt(fig['value']) + (f' {fig["unit"]}' if fig['unit'] else
                                      '')
        print(f'{fig["figure"]:4} {value:>16} {fig["goal"] or "-":>22} '
              f'{verdict(fig["met"]):7}  {fig["name"]}')
        if fig['note']:
            print(f'{"":52}  {fig["note"]}')
    print(f'\nwrote {data["path"]} ({data["seconds"]:.0f} s)')


def main(argv):
    if len(argv) > 1:
        raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
    if FLAGS.case:
        run_one_case(FLAGS.case, json.loads(FLAGS.case_params),
                     FLAGS.case_output)
        return
    throughput = FLAGS.throughput or FLAGS.device == 'gpu'
    cases = plan(FLAGS.quick, throughput, FLAGS.tiny)
    if FLAGS.cases:
        unknown = set(FLAGS.cases) - {c[0] for c in cases}
        if unknown:
            raise errors.UserError(
                f'--cases: unknown {sorted(unknown)}; this plan has '
                f'{[c[0] for c in cases]}')
        cases = [c for c in cases if c[0] in FLAGS.cases]
    if not os.path.isdir(FLAGS.output):
        os.makedirs(FLAGS.output, exist_ok=True)
    if FLAGS.device == 'gpu':
        import tensorflow as tf

        if not tf.config.list_physical_devices('GPU'):
            raise errors.UserError(
                '--device=gpu: no GPU visible to TensorFlow; run the same '
                'code path on the CPU with --device=cpu --throughput')

    path = results_path(FLAGS.output, FLAGS.device, throughput,
                        FLAGS.cases)
    header = {'command': command_line(sys.argv), 'device': FLAGS.device,
              'mode': ('throughput' if throughput else 'figures') + (
                  ' quick' if FLAGS.quick else '') + (
                  ' tiny' if FLAGS.tiny else ''),
              'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
              'commit': provenance.git_commit(REPO),
              'machine': provenance.machine(), 'path': path}
    header['planned'] = [c[0] for c in cases]
    reusable = reusable_cases(FLAGS.resume_from or [])
    start = time.perf_counter()
    results = {}
    for name, kind, params in cases:
        if kind == 'throughput':
            params = dict(params, device=FLAGS.device)
        key = json.dumps([kind, params], sort_keys=True)
        if key in reusable:
            results[name] = reusable[key]
            print(f'[benchmark] {name}: reused from '
                  f'{reusable[key]["reused_from"]}', flush=True)
            continue
        if FLAGS.reuse_only:
            continue
        print(f'[benchmark] {name} ({kind}) ... load '
              f'{os.getloadavg()[0]:.1f}', flush=True)
        record = run_case(name, kind, params, FLAGS.timeout)
        results[name] = record
        print(f'[benchmark] {name}: {record["status"]} in '
              f'{record["process_wall"]:.0f} s'
              + (f' ({record["error"]})' if record['status'] != 'ok'
                 else ''), flush=True)
        header['seconds'] = time.perf_counter() - start
        data = write_results(path, header, results)
    header['machine']['loadavg_end'] = list(os.getloadavg())
    header['seconds'] = time.perf_counter() - start
    data = write_results(path, header, results)
    print_table(data)


if __name__ == '__main__':
    define_flags()
    runner.run(main)
