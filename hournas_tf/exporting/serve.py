"""Serves an exported SavedModel with TensorFlow alone (a script).

    python serve.py SAVED_MODEL IMAGES.npy LOGITS.npy [BATCH_SIZE]

Reads float32 images [N, S, S, 3], runs the `serving_default` signature
(input `image`, output `logits`) in batches and writes the logits. The
modules `hournas_tf`, `keras` and `tf_keras` are made unimportable first,
so the SavedModel provably needs nothing but TensorFlow. This file imports
nothing from hournas_tf; `saved_model.serve_saved_model` runs it.
"""

import sys

BLOCKED = ('hournas_tf', 'keras', 'tf_keras')


def main(argv):
    for name in BLOCKED:
        sys.modules[name] = None  # `import name` now raises ImportError
    import numpy as np
    import tensorflow as tf

    path, images_path, logits_path = argv[1:4]
    batch_size = int(argv[4]) if len(argv) > 4 else 64
    serve = tf.saved_model.load(path).signatures['serving_default']
    images = np.load(images_path)
    logits = [serve(image=tf.constant(images[i:i + batch_size]))['logits']
              .numpy() for i in range(0, len(images), batch_size)]
    np.save(logits_path, np.concatenate(logits))
    leaked = [m for m in sys.modules if m.split('.')[0] in BLOCKED
              and sys.modules[m] is not None]
    if leaked:
        raise SystemExit(f'imported {leaked}')


if __name__ == '__main__':
    main(sys.argv)
