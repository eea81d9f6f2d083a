"""The output folder of a training run: new, resumed, or refused (pure).

A folder is used for a new run when it does not exist or is empty; it is
removed again when the run fails before training starts
(`hournas_tf.output_dir`). A folder holding `train_config.json` with the
same settings and no `metrics.json` is an interrupted run: it resumes
(BackupAndRestore) and is never removed. Any other folder is refused and
left as it is: a finished run, a run with other settings, or something
that is not a training run.
"""

import contextlib
import datetime
import json
import os

from hournas_tf import output_dir
from hournas_tf.common import jsonio
from hournas_tf.common.errors import UserError
from hournas_tf.common.runner import keep_log
from hournas_tf.training import config as config_lib

CONFIG_FILE = 'train_config.json'
METRICS_FILE = 'metrics.json'
NEW = 'new'
RESUME = 'resume'


def default_output_dir(arch_name, now=None):
    """runs/train-<arch_name>-<YYYYmmdd-HHMMSS>."""
    now = now or datetime.datetime.now()
    return os.path.join('runs', f'train-{arch_name}-{now:%Y%m%d-%H%M%S}')


def _unchanged(path, resumable=True):
    resume = (', or rerun the same command to resume an interrupted run'
              if resumable else '')
    return f'choose a new --output_dir{resume} (nothing in {path} changed)'


def check_output_dir(config):
    """NEW or RESUME for `config.output_dir`; raises UserError when the
    folder must not be used (see the module docstring)."""
    path = config.output_dir
    if not os.path.exists(path):
        return NEW
    if not os.path.isdir(path):
        output_dir.check_new(path)  # A file: raises.
    if not os.listdir(path):
        return NEW
    stored_path = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(stored_path):
        raise UserError(f'output_dir {path!r} is not empty and holds no '
                        f'{CONFIG_FILE}; {_unchanged(path)}')
    try:
        with open(stored_path) as f:
            stored = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f'cannot read {stored_path}: {e}') from None
    if not isinstance(stored, dict):
        raise UserError(f'{stored_path} is not a training configuration; '
                        f'{_unchanged(path)}')
    difference = config_lib.first_difference(config, stored)
    if difference:
        name, here, there = difference
        raise UserError(f'output_dir {path!r} holds a training run with '
                        f'other settings ({name} {there!r} there, {here!r} '
                        f'now); {_unchanged(path)}')
    if os.path.exists(os.path.join(path, METRICS_FILE)):
        raise UserError(f'output_dir {path!r} holds a finished training run '
                        f'({METRICS_FILE}); {_unchanged(path, False)}')
    return RESUME


@contextlib.contextmanager
def output_folder(config, state):
    """Yields the run's `output_dir.OutputDir` with train_config.json in it.

    NEW: the folder is created, and removed again if the block raises
    before `keep()` (call it when training starts). RESUME: the
    interrupted run's folder, kept whatever happens.
    """
    if state == NEW:
        with output_dir.new_output_dir(config.output_dir) as output:
            jsonio.write_json(os.path.join(config.output_dir, CONFIG_FILE),
                              config_lib.to_json(config))
            yield output
    else:
        output = output_dir.OutputDir(config.output_dir)
        output.keep()
        keep_log(config.output_dir)
        yield output
