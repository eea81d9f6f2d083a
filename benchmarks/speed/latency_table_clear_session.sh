#!/bin/bash
# tools/build_latency_table.py on the test's table (the demo space, 99
# blocks and 4 architectures converted, 2 short timing rounds) from two
# checkouts, one process each in the order ORDER: A with a
# keras.backend.clear_session() after every converted model (commit
# 437e805), B without (the change of 2026-12-05). Wall, user CPU and peak
# RSS from /usr/bin/time. docs/speed.md, "Latency tables without a
# clear_session per model".
#
#   A=/tmp/wtA B=. ORDER="A B B A" benchmarks/speed/latency_table_clear_session.sh
#   (git worktree add /tmp/wtA 437e805 gives A)
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/latency_clear_session}
mkdir -p "$OUT"
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
for v in ${ORDER:-A B B A}; do
  root=$(cd "${!v}" && pwd)
  rm -f "$OUT/$v.json" "$OUT/$v-acc.json"
  (cd "$root" && PYTHONPATH="$root" /usr/bin/time \
      -f "$v %e s wall, %U s user, %M KB peak RSS" \
      python tools/build_latency_table.py --space=efficientnet \
      --image_size=32 --width_multiplier=0.25 --num_classes=10 \
      --rounds=2 --runs=3 --calibrate=2 --evaluate=2 \
      --output="$OUT/$v.json" --json="$OUT/$v-acc.json" 2>&1 \
      | grep -E "^[AB] |converted (99|architecture)" | tail -2) \
      >> "$OUT/pairs.txt"
done
cat "$OUT/pairs.txt"
