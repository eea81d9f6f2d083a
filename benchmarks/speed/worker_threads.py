"""Two retrainings at a time on the 2-core machine, as the ablation's two
workers run them: TensorFlow's default thread pools in each process
against one intra-op and one inter-op thread per process.

    PYTHONPATH=. python benchmarks/speed/worker_threads.py 2000 4 \
        benchmarks/speed/37-worker-threads.json

Arguments: training examples per run (Fashion-MNIST, 1 epoch, batch 64),
rounds, output JSON. Each round starts a pair of child processes with each
setting, the order swapped every round (ABBA); a child retrains the first
HourNAS architecture of docs/ablation_fashion_mnist_results.json with the
ablation's recipe (`ablation.train_config`, seeds 0 and 1) and the pair's
wall time is recorded. The ratio of the two settings' median pair times is
the measurement (docs/speed.md, "Threads per worker").
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SETTINGS = {'default': {}, 'one_thread': {'TF_NUM_INTRAOP_THREADS': '1',
                                          'TF_NUM_INTEROP_THREADS': '1'}}

CHILD = """
import json, sys, time
from hournas_tf.experiments import ablation
from hournas_tf.nas import config as search_config
from hournas_tf.spaces.architecture import Architecture
from hournas_tf.training import train_lib
arch = Architecture.from_string(sys.argv[1])
config = ablation.AblationConfig(
    output_dir=sys.argv[2], train_examples=int(sys.argv[4]), train_epochs=1,
    search=search_config.SearchConfig(
        targets={'macs': 30e6}, dataset='fashion_mnist', batch_size=64))
start = time.perf_counter()
train_lib.run_training(ablation.train_config(config, arch, int(sys.argv[3]),
                                             sys.argv[2]))
print(json.dumps({'wall_seconds': time.perf_counter() - start}))
"""


def run_pair(arch, examples, setting):
    """Wall seconds of two retrainings started together with `setting`."""
    env = dict(os.environ, PYTHONPATH=REPO, **SETTINGS[setting])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        procs = [subprocess.Popen(
            [sys.executable, '-c', CHILD, arch, os.path.join(tmp, str(s)),
             str(s), str(examples)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True) for s in (0, 1)]
        outs = [p.communicate()[0] for p in procs]
        wall = time.perf_counter() - start
    for p, out in zip(procs, outs):
        if p.returncode:
            sys.exit(f'a child failed (exit {p.returncode})')
    return wall, [json.loads(o.strip().splitlines()[-1])['wall_seconds']
                  for o in outs]


def main(examples, rounds, output):
    from hournas_tf.common import provenance

    examples, rounds = int(examples), int(rounds)
    with open(os.path.join(REPO, 'docs',
                           'ablation_fashion_mnist_results.json')) as f:
        arch = json.load(f)['results']['hournas'][0]['architecture']
    pairs = {name: [] for name in SETTINGS}
    for r in range(rounds):
        order = list(SETTINGS) if r % 2 == 0 else list(SETTINGS)[::-1]
        for name in order:
            wall, each = run_pair(arch, examples, name)
            pairs[name].append({'pair_wall_seconds': wall,
                                'child_wall_seconds': each})
            print(f'round {r}, {name}: pair {wall:.1f} s '
                  f'(children {each[0]:.1f}, {each[1]:.1f} s)', flush=True)
    medians = {name: statistics.median(p['pair_wall_seconds'] for p in runs)
               for name, runs in pairs.items()}
    ratio = medians['one_thread'] / medians['default']
    print(f'median pair: default {medians["default"]:.1f} s, one thread '
          f'{medians["one_thread"]:.1f} s; ratio {ratio:.3f}')
    record = {'what': 'two concurrent retrainings, default thread pools '
                      'against one intra-op and one inter-op thread each',
              'architecture': arch, 'train_examples': examples,
              'epochs': 1, 'rounds': rounds, 'runs': pairs,
              'median_pair_wall_seconds': medians,
              'ratio_one_thread_over_default': ratio,
              'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
              'commit': provenance.git_commit(REPO, mark_dirty=True),
              'script': ('PYTHONPATH=. python benchmarks/speed/'
                         f'worker_threads.py {examples} {rounds} {output}'),
              'machine': provenance.machine()}
    with open(output, 'w') as f:
        json.dump(record, f, indent=1)


if __name__ == '__main__':
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
