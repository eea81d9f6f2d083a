"""SavedModel export, and a check that TensorFlow alone serves it.

`export_saved_model` writes one `serving_default` signature through
`keras.export.ExportArchive`: a float32 input `image` [batch, S, S, 3]
(normalized as `hournas_tf.data.normalize` does) and a dict output
`{'logits': [batch, classes]}`. Keras 3 writes no Keras metadata, so the
files name no hournas_tf layer. (`tf.saved_model.save(model)` also loads,
but keeps Keras variables the TFLite converter cannot freeze.)

`serve_saved_model` runs the SavedModel in a new Python process in which
`hournas_tf`, `keras` and `tf_keras` cannot be imported (`serve.py`).
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

from hournas_tf.common.errors import UserError

SIGNATURE = 'serving_default'
INPUT_NAME = 'image'
OUTPUT_NAME = 'logits'
SERVE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'serve.py')


def export_saved_model(model, path):
    """Writes `model` as a SavedModel at `path` (see the module docstring).
    """
    import keras
    import tensorflow as tf

    size = tuple(model.inputs[0].shape[1:])
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(image):
        return {OUTPUT_NAME: model(image, training=False)}

    archive.add_endpoint(
        SIGNATURE, serve, input_signature=[
            tf.TensorSpec((None, *size), tf.float32, name=INPUT_NAME)])
    archive.write_out(path, verbose=False)


def serve_saved_model(path, images, batch_size=64, timeout=600):
    """Logits of `images` from the SavedModel at `path`, computed by
    TensorFlow in a process that cannot import hournas_tf, keras or
    tf_keras. Raises RuntimeError with the process's last error line if
    it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, 'images.npy')
        outputs = os.path.join(tmp, 'logits.npy')
        np.save(inputs, np.asarray(images, np.float32))
        env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
        env.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
        proc = subprocess.run(
            [sys.executable, '-I', SERVE_SCRIPT, path, inputs, outputs,
             str(batch_size)],
            capture_output=True, text=True, env=env, timeout=timeout)
        if proc.returncode:
            lines = proc.stderr.strip().splitlines() or ['(no output)']
            raise RuntimeError(f'serving {path} without hournas_tf failed: '
                               f'{lines[-1]}')
        return np.load(outputs)


def directory_bytes(path):
    """Total size of the files under `path`."""
    if not os.path.isdir(path):
        raise UserError(f'{path} is not a folder')
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files)
