"""The search's state on disk, resume, preemption and faults.

All search state lives in one `tf.train.CheckpointManager` folder,
`<output_dir>/checkpoints`: the supernet of the running stage (weights,
batch-norm statistics, architecture logits or proposals and pi, `tau`,
`step`, the seed generators' states), both optimizers, and the stage
(1 vital, 2 non-vital). A checkpoint is written every `checkpoint_every`
steps and at each epoch end. Between the stages, `stage1.json` (vital ops,
the optimized proposals and their report) is written atomically before
stage 2 starts, so a resumed run skips what finished.

The input position is a deterministic skip: each stage's data stream
(seeded shuffles, one iterator per stage) is rebuilt and its first `step`
batches are skipped. With `--deterministic` (TensorFlow's op determinism,
which also makes tf.data deterministic) the resumed run sees the same
batches and draws as an uninterrupted one.

`StageCallback` also stops a run on SIGTERM (after a checkpoint:
`common.preemption.Preempted`) and on a non-finite loss (without one: the
last checkpoint is the last good state).
"""

import math
import os

import keras
import tensorflow as tf

from hournas_tf.common import jsonio
from hournas_tf.common.errors import UserError
from hournas_tf.common.preemption import Preempted
from hournas_tf.common.runner import log

CHECKPOINT_DIR = 'checkpoints'
STAGE1_FILE = 'stage1.json'
STAGES = {'vital': 1, 'nonvital': 2}
MAX_TO_KEEP = 3


def read_stage1(output_dir):
    """The stage-1 result (written atomically by `jsonio.write_json`), or
    None."""
    path = os.path.join(output_dir, STAGE1_FILE)
    if not os.path.isfile(path):
        return None
    return jsonio.read_json(path, 'stage-1 result')


def seed_states(model):
    """The random-draw states of `model`'s layers (e.g. dropout's seed
    generators): Keras does not track them as model variables, so a
    checkpoint of the model alone resumes with other draws."""
    return [v for v in model.variables if 'seed_generator' in v.path]


class SearchCheckpoint:
    """One CheckpointManager folder for every stage of a search."""

    def __init__(self, output_dir, max_to_keep=MAX_TO_KEEP):
        self.directory = os.path.join(output_dir, CHECKPOINT_DIR)
        self.max_to_keep = max_to_keep
        self.stage = tf.Variable(0, dtype=tf.int64, trainable=False,
                                 name='stage')
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False,
                                name='step')
        self.supernet = None
        self.manager = None

    def attach(self, stage, supernet):
        """Checkpoints `supernet` (compiled) as stage `stage` from now on."""
        self.stage.assign(STAGES[stage])
        self.supernet = supernet
        ckpt = tf.train.Checkpoint(
            model=supernet, weight_optimizer=supernet.optimizer,
            arch_optimizer=supernet.arch_optimizer, stage=self.stage,
            step=self.step, seed_states=seed_states(supernet))
        self.manager = tf.train.CheckpointManager(
            ckpt, self.directory, max_to_keep=self.max_to_keep,
            checkpoint_name='ckpt')
        return ckpt

    def save(self):
        """Writes a checkpoint of the attached stage; returns its path."""
        self.step.assign(tf.convert_to_tensor(self.supernet.step))
        return self.manager.save()

    def paths(self):
        """Checkpoint prefixes in the folder, newest first."""
        state = tf.train.get_checkpoint_state(self.directory)
        if state is None:
            return []
        return list(reversed(state.all_model_checkpoint_paths))

    def latest(self):
        """(path, stage, step) of the newest readable checkpoint, or None;
        a damaged one is skipped with a one-line warning."""
        paths = self.paths()
        for k, path in enumerate(paths):
            try:
                found = _read_whole(path)
            except Exception as e:  # noqa: BLE001 (any damage: fall back)
                nxt = (f'falling back to {os.path.basename(paths[k + 1])}'
                       if k + 1 < len(paths) else 'no older checkpoint')
                log(f'WARNING: checkpoint {os.path.basename(path)} is '
                    f'damaged ({type(e).__name__}); {nxt}')
                continue
            return (path,) + found
        return None

    def restore(self, path, stage, supernet):
        """Restores checkpoint `path` into `supernet` (attached as
        `stage`); returns the steps it had done in that stage."""
        ckpt = self.attach(stage, supernet)
        ckpt.restore(path).assert_existing_objects_matched()
        return int(supernet.step.numpy())


def _read_whole(path):
    """(stage, step) of checkpoint `path`, reading every tensor (each
    read checks the data's checksum)."""
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)
    return (int(reader.get_tensor('stage/.ATTRIBUTES/VARIABLE_VALUE')),
            int(reader.get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE')))


def resume_command(output_dir):
    return f'python -m hournas_tf.search --resume --output_dir={output_dir}'


def check_finite(logs, stage, step, checkpoint):
    """Raises UserError naming the stage and step if a loss in `logs` is
    NaN or Inf."""
    for key in ('loss', 'arch_loss'):
        value = (logs or {}).get(key)
        if value is not None and not math.isfinite(float(value)):
            kept = checkpoint.paths()
            where = (f'the last good checkpoint is '
                     f'{os.path.basename(kept[0])}' if kept
                     else 'no checkpoint was written yet')
            raise UserError(
                f'{key} is {float(value)} at stage {stage} step {step}; '
                f'{where}; resume with a lower learning rate: '
                f'{resume_command(os.path.dirname(checkpoint.directory))} '
                f'--weight_lr=... --arch_lr=...')


class StageCallback(keras.callbacks.Callback):
    """Checkpoints every `every` steps and at each epoch end; stops on a
    non-finite loss (before saving it) and on SIGTERM (after saving)."""

    def __init__(self, checkpoint, stage, every, sigterm=None):
        super().__init__()
        self.checkpoint = checkpoint
        self.stage = stage
        self.every = every
        self.sigterm = sigterm
        self._saved = None

    def _step(self):
        return int(self.model.step.numpy())

    def _after(self, logs, force):
        step = self._step()
        check_finite(logs, self.stage, step, self.checkpoint)
        preempted = self.sigterm is not None and self.sigterm.received
        if step == self._saved:  # an epoch end right after a save
            path = self.checkpoint.paths()[0]
        elif force or preempted or step % self.every == 0:
            path = self.checkpoint.save()
            self._saved = step
        if preempted:
            out = os.path.dirname(self.checkpoint.directory)
            raise Preempted(
                f'SIGTERM: wrote {path} (stage {self.stage}, step {step}); '
                f'resume with: {resume_command(out)}')

    def on_train_batch_end(self, batch, logs=None):
        self._after(logs, force=False)

    def on_epoch_end(self, epoch, logs=None):
        self._after(logs, force=True)


def segments(done, epochs, steps):
    """The `fit` calls that finish a stage of `epochs` x `steps` after
    `done` steps: (initial_epoch, epochs, steps_per_epoch, skip) each,
    `skip` being the batches of the stage's stream to skip first."""
    total = epochs * steps
    if done >= total:
        return []
    epoch, within = divmod(done, steps)
    if not within:
        return [(epoch, epochs, steps, done)]
    out = [(epoch, epoch + 1, steps - within, done)]
    if epoch + 1 < epochs:
        out.append((epoch + 1, epochs, steps, (epoch + 1) * steps))
    return out


def check_resumable(output_dir):
    """Raises UserError unless `output_dir` holds a search to resume."""
    if not os.path.isdir(output_dir):
        raise UserError(f'--resume: output_dir {output_dir!r} does not '
                        'exist; start a run without --resume')
    if os.path.exists(os.path.join(output_dir, 'arch.json')):
        raise UserError(f'--resume: the search in {output_dir!r} finished '
                        '(arch.json exists); nothing to resume')
    if not os.path.isfile(os.path.join(output_dir, 'search_config.json')):
        raise UserError(f'--resume: {output_dir!r} holds no search '
                        '(no search_config.json)')
