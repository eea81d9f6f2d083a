"""Keras callbacks of the search: history.jsonl and architecture TensorBoard.

`ArchitectureLogger` appends one JSON line per epoch (the Keras logs, with
the per-layer norms of the architecture gradient's cross-entropy part
gathered into `arch_grad_norm` {layer number: norm}, the per-layer op
probabilities and, in proposal mode, the proposal
probabilities and each proposal's expected resources) and writes the same
as TensorBoard scalars under `<tensorboard>/<stage>/architecture`.
"""

import json
import os

import keras
import numpy as np

GRAD_NORM_PREFIX = 'arch_grad_norm/L'


class ArchitectureLogger(keras.callbacks.Callback):
    """Logs the architecture distribution of a `SuperNet` every epoch."""

    def __init__(self, stage, space, rows, history_path, tensorboard_dir,
                 table=None):
        super().__init__()
        self.stage = stage
        self.space = space
        self.rows = list(rows)
        self.history_path = history_path
        self.tensorboard_dir = os.path.join(tensorboard_dir, 'architecture')
        self.table = table
        self._writer = None

    def _record(self, epoch, logs):
        model = self.model
        record = {'stage': self.stage, 'epoch': epoch + 1}
        norms = {}
        for key, value in (logs or {}).items():
            if key.startswith(GRAD_NORM_PREFIX):
                norms[key[len(GRAD_NORM_PREFIX):]] = float(value)
            else:
                record[key] = float(value)
        if norms:
            record['arch_grad_norm'] = norms
        probs = model.op_probabilities()
        record['op_probabilities'] = {
            f'layer{i + 1}': {op: round(float(probs[r, c]), 6)
                              for c, op in enumerate(self.space.op_names)
                              if op in self.space.layers[i].candidates}
            for r, i in enumerate(self.rows)}
        if model.has_proposals:
            pi = model.proposal_probabilities()
            record['proposal_probabilities'] = [float(p) for p in pi]
            if self.table is not None:
                per = model.proposal_op_probabilities()
                record['expected_per_proposal'] = {
                    obj: [float(self.table.fixed[obj] + np.sum(
                        per[j] * self.table.values[obj]))
                        for j in range(per.shape[0])]
                    for obj in self.table.objectives}
        return record

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        record = self._record(epoch, logs)
        with open(self.history_path, 'a') as f:
            f.write(json.dumps(record) + '\n')
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                self.tensorboard_dir)
        with self._writer.as_default(step=epoch + 1):
            for layer, probs in record['op_probabilities'].items():
                for op, p in probs.items():
                    tf.summary.scalar(f'op_probability/{layer}/{op}', p)
            for j, p in enumerate(record.get('proposal_probabilities', [])):
                tf.summary.scalar(f'proposal_probability/{j}', p)
            for obj, values in record.get('expected_per_proposal',
                                          {}).items():
                for j, v in enumerate(values):
                    tf.summary.scalar(f'expected_{obj}/proposal{j}', v)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None  # a resumed stage fits again
