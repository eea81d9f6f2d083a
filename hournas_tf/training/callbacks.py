"""The callbacks of a training run and the files they write.

In `fit` order: StepBackup, a BackupAndRestore every `checkpoint_every`
steps and at each epoch end (`backup/`, with the previous backup as a
fallback; kept after `fit` so that a run that stops between training and
metrics.json resumes without training again, and deleted by `run_training`
once metrics.json is written), Preemption (with a SIGTERM catcher: a
backup, then `common.preemption.Preempted`),
SwapEMAWeights (with EMA, so that checkpoints hold the averaged weights),
ModelCheckpoint best and last (`checkpoints/best.keras`, `last.keras`),
a CSVLogger (`history.csv`, appended to when a run resumes), TensorBoard
(`tensorboard/`) and an epoch timer. Keras adds the progress bar.

The best checkpoint is the epoch with the lowest training loss: the eval
(test) split is never used to choose anything.
"""

import csv
import math
import os
import time

import keras

from hournas_tf.common.preemption import Preempted

BACKUP_DIR = 'backup'
CHECKPOINT_DIR = 'checkpoints'
HISTORY_FILE = 'history.csv'
TENSORBOARD_DIR = 'tensorboard'
MONITOR = 'loss'


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch run, in seconds (`durations`)."""

    def __init__(self):
        super().__init__()
        self.durations = []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.durations.append(time.perf_counter() - self._start)


class HistoryLogger(keras.callbacks.CSVLogger):
    """history.csv: a row per epoch with the training metrics and the
    learning rate at the epoch's end; appended to when a run resumes.
    (Unlike CSVLogger, no empty `val_` columns: nothing is validated.)"""

    def __init__(self, filename):
        super().__init__(filename, append=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs['learning_rate'] = float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))
        if self.keys is None:
            self.keys = sorted(logs)
        super().on_epoch_end(epoch, logs)


def read_history(output_dir):
    """The rows of history.csv as dicts of floats ([] when absent)."""
    path = os.path.join(output_dir, HISTORY_FILE)
    if not os.path.isfile(path):
        return []
    with open(path, newline='') as f:
        return [{k: float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def best_so_far(output_dir):
    """The lowest training loss history.csv records (inf without one)."""
    losses = [row[MONITOR] for row in read_history(output_dir)
              if MONITOR in row]
    return min(losses, default=math.inf)


class StepBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore every `every` steps and at each epoch end (Keras
    saves at one or the other), keeping the previous backup too: a damaged
    newest one falls back to it. A run killed mid-epoch restarts that
    epoch from its first batch, with the weights, optimizer state and
    step count of its last backup."""

    def __init__(self, backup_dir, every):
        super().__init__(backup_dir, save_freq=every,
                         delete_checkpoint=False, double_checkpoint=True)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.save()

    def save(self):
        """Writes a backup now."""
        self._save_model()
        self._batches_seen_since_last_saving = 0


class Preemption(keras.callbacks.Callback):
    """After a batch, if `sigterm.received`: a backup, then `Preempted`."""

    def __init__(self, sigterm, backup, resume):
        super().__init__()
        self.sigterm = sigterm
        self.backup = backup
        self.resume = resume

    def on_train_batch_end(self, batch, logs=None):
        if self.sigterm.received:
            self.backup.save()
            raise Preempted(f'SIGTERM: wrote a backup in '
                            f'{self.backup.backup_dir}; resume by running '
                            f'the same command again: {self.resume}')


def make_callbacks(output_dir, ema=False, every=200, sigterm=None,
                   resume=''):
    """The run's callbacks; the last one is the `EpochTimer`. With a
    `sigterm` catcher (`.received`), a SIGTERM stops the run after a
    backup."""
    checkpoints = os.path.join(output_dir, CHECKPOINT_DIR)
    best = best_so_far(output_dir)
    callbacks = [StepBackup(os.path.join(output_dir, BACKUP_DIR), every)]
    if sigterm is not None:
        callbacks.append(Preemption(sigterm, callbacks[0], resume))
    if ema:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    callbacks += [
        keras.callbacks.ModelCheckpoint(
            os.path.join(checkpoints, 'best.keras'), monitor=MONITOR,
            mode='min', save_best_only=True,
            initial_value_threshold=None if math.isinf(best) else best),
        keras.callbacks.ModelCheckpoint(
            os.path.join(checkpoints, 'last.keras')),
        HistoryLogger(os.path.join(output_dir, HISTORY_FILE)),
        keras.callbacks.TensorBoard(
            os.path.join(output_dir, TENSORBOARD_DIR), write_graph=False),
        EpochTimer(),
    ]
    return callbacks
