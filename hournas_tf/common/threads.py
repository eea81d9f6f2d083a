"""TensorFlow's thread pools for a process that shares the cores with
others: the experiment tools run several cells at a time, each in a child
process, and each child takes its share of the cores (docs/speed.md,
"Threads per worker")."""

import os


def cores():
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity outside Linux
        return os.cpu_count() or 1


def share(workers):
    """Threads per pool for one of `workers` processes sharing the cores:
    cores // workers, at least 1."""
    if workers < 1:
        raise ValueError(f'workers={workers}; must be at least 1')
    return max(1, cores() // workers)


def limit(threads):
    """Gives TensorFlow's intra-op and inter-op pools `threads` threads
    each. Call it before TensorFlow runs its first op (TensorFlow raises
    a RuntimeError after)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def take_share(workers):
    """In one of `workers` processes sharing the cores (an experiment
    tool's cell): gives TensorFlow's pools `share(workers)` threads each
    (`limit`) and returns the line the cell logs."""
    count = share(workers)
    limit(count)
    return (f'{count} thread(s) per TensorFlow pool ({workers} cell(s) at '
            f'a time on {cores()} core(s))')
