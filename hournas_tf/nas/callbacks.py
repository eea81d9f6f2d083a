"""Keras callbacks of the search: history.jsonl and architecture TensorBoard.

`ArchitectureLogger` appends one JSON line per epoch (the Keras logs, with
the per-layer norms of the architecture gradient's cross-entropy part
gathered into `arch_grad_norm` {layer number: norm} and those of its
resource-loss part into `resource_grad_norm`, the per-layer op
probabilities and, in proposal mode, the proposal probabilities, the two
norms of pi's gradient (`pi_grad_norm`), each proposal's expected
resources, the mean top probability of the proposals' rows and
`rows_changed`: per proposal, the layers whose most probable op differs
from the stage's start) and writes the same as TensorBoard scalars under
`<tensorboard>/<stage>/architecture`.
"""

import json
import os

import keras
import numpy as np

from hournas_tf.nas.derive import rows_changed

# Metric prefix -> history.jsonl key: per-layer gradient norms.
GRAD_NORM_PREFIXES = {'arch_grad_norm/L': 'arch_grad_norm',
                      'resource_grad_norm/L': 'resource_grad_norm'}
PI_NORMS = {'arch_grad_norm/pi': 'cross_entropy',
            'resource_grad_norm/pi': 'resource'}


class ArchitectureLogger(keras.callbacks.Callback):
    """Logs the architecture distribution of a `SuperNet` every epoch."""

    def __init__(self, stage, space, rows, history_path, tensorboard_dir,
                 table=None, start_columns=None):
        super().__init__()
        self.start_columns = start_columns
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
        norms = {key: {} for key in GRAD_NORM_PREFIXES.values()}
        pi_norms = {}
        for key, value in (logs or {}).items():
            prefix = next((p for p in GRAD_NORM_PREFIXES
                           if key.startswith(p)), None)
            if prefix is not None:
                norms[GRAD_NORM_PREFIXES[prefix]][key[len(prefix):]] = \
                    float(value)
            elif key in PI_NORMS:
                pi_norms[PI_NORMS[key]] = float(value)
            else:
                record[key] = float(value)
        record.update({k: v for k, v in norms.items() if v})
        if pi_norms:
            record['pi_grad_norm'] = pi_norms
        probs = model.op_probabilities()
        record['op_probabilities'] = {
            f'layer{i + 1}': {op: round(float(probs[r, c]), 6)
                              for c, op in enumerate(self.space.op_names)
                              if op in self.space.layers[i].candidates}
            for r, i in enumerate(self.rows)}
        if model.has_proposals:
            pi = model.proposal_probabilities()
            record['proposal_probabilities'] = [float(p) for p in pi]
            per = model.proposal_op_probabilities()
            multi = model.mask.sum(axis=-1) > 1
            record['mean_top_probability'] = float(
                per.max(axis=-1)[:, multi].mean()) if multi.any() else 1.0
            if self.start_columns is not None:
                changed = rows_changed(self.start_columns,
                                       model.arch_params.derive_all(),
                                       self.rows)
                record['rows_changed'] = {
                    'total': sum(len(c) for c in changed),
                    'rows': int(np.size(self.start_columns)),
                    'per_proposal': changed}
            if self.table is not None:
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
            if 'rows_changed' in record:
                tf.summary.scalar('rows_changed',
                                  record['rows_changed']['total'])
            if 'mean_top_probability' in record:
                tf.summary.scalar('mean_top_probability',
                                  record['mean_top_probability'])
            for obj, values in record.get('expected_per_proposal',
                                          {}).items():
                for j, v in enumerate(values):
                    tf.summary.scalar(f'expected_{obj}/proposal{j}', v)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None  # a resumed stage fits again
