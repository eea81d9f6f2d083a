"""Sums a `py-spy record --format raw` profile by the frames below one
anchor frame: where the main thread's CPU samples went.

    py-spy record --rate 50 --format raw -o /tmp/demo.prof -- \
        python -m hournas_tf.search --output_dir=/tmp/demo --verbose=0
    python benchmarks/speed/pyspy_sections.py /tmp/demo.prof 50 \
        'SearchRun.run (hournas_tf/nas/search_lib.py' 1

Arguments: the profile, its sampling rate (per second), the anchor (a
substring of a frame; its first match in each stack), how many frames
below it make a section (0: the anchor's total), then any number of
substrings a stack must contain to count (e.g. one stage's line and
`_maybe_define_function` for that stage's tracing). Prints each
section's seconds, largest first (docs/speed.md, "The demo under 2
minutes").
"""

import collections
import sys


def sections(lines, anchor, depth, required=()):
    """({section: samples}, samples in all, samples under the anchor in
    the stacks that contain every string of `required`)."""
    counts = collections.Counter()
    total = under = 0
    for line in lines:
        stack, n = line.rsplit(' ', 1)
        n = int(n)
        total += n
        frames = stack.split(';')
        found = [i for i, f in enumerate(frames) if anchor in f]
        if not found or not all(r in stack for r in required):
            continue
        under += n
        below = frames[found[0] + 1:found[0] + 1 + depth]
        counts[' > '.join(below) or '<the anchor itself>'] += n
    return counts, total, under


def main(path, rate, anchor, depth, *required):
    with open(path) as f:
        counts, total, under = sections(f.read().splitlines(), anchor,
                                        depth, required)
    print(f'all samples {total / rate:.1f} s, under the anchor '
          f'{under / rate:.1f} s')
    for name, n in counts.most_common(30):
        print(f'{n / rate:7.1f} s  {name}')


if __name__ == '__main__':
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4]),
         *sys.argv[5:])
