"""Where and with what a result was made: the commit, the machine, and
the command that started a resumable experiment."""

import datetime
import os
import platform
import subprocess
from importlib import metadata

from hournas_tf.common import jsonio


def git_commit(repo, mark_dirty=False):
    """The short HEAD commit of `repo` (None outside git), with '+' when
    `mark_dirty` and tracked files differ from it."""
    def git(*args):
        return subprocess.run(['git', *args], cwd=repo, capture_output=True,
                              text=True, check=True).stdout.strip()

    try:
        head = git('rev-parse', '--short', 'HEAD')
        dirty = mark_dirty and bool(git('status', '--porcelain',
                                        '--untracked-files=no'))
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ('+' if dirty else '')


def cpu_model():
    """The CPU's model name (platform.processor() where /proc has none)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(package):
    """The installed version of `package`, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine():
    """Machine, versions and load (JSON-ready); imports TensorFlow for
    the GPUs it sees."""
    import keras
    import numpy as np
    import tensorflow as tf

    try:
        memory_gb = os.sysconf('SC_PAGE_SIZE') * os.sysconf(
            'SC_PHYS_PAGES') / 2**30
    except (ValueError, OSError):
        memory_gb = None
    gpus = []
    for gpu in tf.config.list_physical_devices('GPU'):
        details = tf.config.experimental.get_device_details(gpu)
        gpus.append(details.get('device_name', gpu.name))
    return {'cpu': cpu_model(), 'cpu_count': os.cpu_count(),
            'memory_gb': None if memory_gb is None else round(memory_gb, 1),
            'gpus': gpus, 'python': platform.python_version(),
            'tensorflow': tf.__version__, 'keras': keras.__version__,
            'numpy': np.__version__, 'platform': platform.platform(),
            'loadavg': list(os.getloadavg())}


STARTED_FILE = 'started.json'


def started_state(output_dir, command):
    """(command, started) of the resumable experiment in `output_dir`:
    the command that started it and when (`STARTED_FILE`, written by the
    first run), so a rerun that resumes it or rewrites its table
    (`--table_only`) still names the command that made the cells."""
    path = os.path.join(output_dir, STARTED_FILE)
    if not os.path.isfile(path):
        os.makedirs(output_dir, exist_ok=True)
        jsonio.write_json(path, {'command': command, 'started':
                                 datetime.datetime.now().isoformat(
                                     timespec='seconds')})
    state = jsonio.read_json(path, 'experiment state')
    return state['command'], state['started']
