"""What writing one family member's weights costs at the end of a search:
`build_model`, the supernet's weights copied in (`standalone_model`) and
`save_weights`, per member of a finished run; then `save_supernet`.

    PYTHONPATH=. python benchmarks/speed/family_write_cost.py RUN_DIR

RUN_DIR: a finished search run (its `family/proposal<j>.json` and
`supernet.weights.h5`). Prints wall seconds per member and their medians
(docs/speed.md, "The demo under 2 minutes").
"""

import glob
import os
import sys
import tempfile
import time

import numpy as np

from hournas_tf.blocks import model as model_lib
from hournas_tf.nas import derive
from hournas_tf.nas import restore
from hournas_tf.spaces.architecture import load_architecture


def main(run_dir):
    net = restore.load_supernet(run_dir)
    out = tempfile.mkdtemp()
    rows = []
    for path in sorted(glob.glob(os.path.join(run_dir, 'family',
                                              'proposal*.json'))):
        arch = load_architecture(path)
        start = time.perf_counter()
        model_lib.build_model(arch)
        built = time.perf_counter()
        model = derive.standalone_model(net, arch)
        copied = time.perf_counter()
        model.save_weights(os.path.join(out, 'member.weights.h5'))
        saved = time.perf_counter()
        rows.append((built - start, copied - built, saved - copied))
        print(f'{os.path.basename(path)}: build {rows[-1][0]:.2f} s, '
              f'standalone_model {rows[-1][1]:.2f} s, save_weights '
              f'{rows[-1][2]:.2f} s', flush=True)
    build, standalone, save = np.median(rows, axis=0)
    print(f'median: build {build:.2f} s, standalone_model (build + copy) '
          f'{standalone:.2f} s, save_weights {save:.2f} s; one member '
          f'written: {standalone + save:.2f} s')
    start = time.perf_counter()
    restore.save_supernet(net, out)
    print(f'save_supernet: {time.perf_counter() - start:.2f} s')


if __name__ == '__main__':
    main(sys.argv[1])
