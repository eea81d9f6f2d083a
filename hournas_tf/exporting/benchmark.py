"""LiteRT CPU latency of a TFLite model, and the machine it ran on.

Latency on a shared machine is noisy: `latency` reports the median of
per-repeat medians after a warm-up together with the spread between
repeats and the load average before and after, and `machine` records what
makes a number comparable (CPU, cores, versions).
"""

import os
import platform
import time

import numpy as np

from hournas_tf.common import provenance
from hournas_tf.exporting import tflite

# Above this 1-minute load average per core, latencies are not to be trusted.
BUSY_LOAD_PER_CORE = 0.5
WARMUP = 10
RUNS = 30
REPEATS = 5


def load_average():
    """The 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def busy(load=None):
    """True when the machine is too loaded for trustworthy latencies."""
    load = load_average() if load is None else load
    return load is not None and load > BUSY_LOAD_PER_CORE * (
        os.cpu_count() or 1)


def machine():
    """{'cpu', 'cores', 'system', 'python', 'tensorflow', 'litert'}."""
    return {'cpu': provenance.cpu_model(), 'cores': os.cpu_count(),
            'system': f'{platform.system()} {platform.machine()}',
            'python': platform.python_version(),
            'tensorflow': provenance.version('tensorflow'),
            'litert': provenance.version('ai-edge-litert')}


def time_invokes(it, runs):
    """Milliseconds of `runs` timed invocations of a ready interpreter."""
    times = np.empty(runs)
    for r in range(runs):
        start = time.perf_counter()
        it.invoke()
        times[r] = time.perf_counter() - start
    return 1e3 * times


def ready_interpreter(data, threads):
    """(interpreter with a zero input set, delegate)."""
    it, delegate = tflite.interpreter(data, threads)
    inp = it.get_input_details()[0]
    it.set_tensor(inp['index'], np.zeros(inp['shape'], inp['dtype']))
    return it, delegate


def summarize(medians):
    """{'median_ms', 'spread'} of per-repeat medians; spread is
    (max - min) / median."""
    medians = np.asarray(medians, np.float64)
    median = float(np.median(medians))
    return {'median_ms': median,
            'spread': float((medians.max() - medians.min()) / median)
            if median > 0 else 0.0}


def latency(data, threads=1, warmup=WARMUP, runs=RUNS, repeats=REPEATS):
    """LiteRT CPU latency: `warmup` invokes, then `repeats` x `runs`.

    Returns {'median_ms' (median of the per-repeat medians), 'spread',
    'min_ms', 'p90_ms' (over all runs), 'threads', 'delegate',
    'load_average' [before, after]}.
    """
    it, delegate = ready_interpreter(data, threads)
    load_before = load_average()
    time_invokes(it, warmup)
    samples = [time_invokes(it, runs) for _ in range(repeats)]
    every = np.concatenate(samples)
    return {**summarize([np.median(s) for s in samples]),
            'min_ms': float(every.min()),
            'p90_ms': float(np.percentile(every, 90)),
            'threads': threads, 'delegate': delegate,
            'load_average': [load_before, load_average()]}
