#!/bin/bash
# The synchronized-batch-norm search at TensorFlow's classic graph
# optimizer level L1 (the default) and L0 (benchmarks/speed/opt_level_l0.py),
# one process each, in the order LEVELS, with EPOCHS stage-2 epochs of 10
# steps: the first epoch holds the first step, the later ones are the
# steady step (Keras's epoch lines, whole seconds). docs/speed.md, "Sync
# batch norm's first step"; results in 33-sync-batch-norm-opt-level-steady.json.
#
#   LEVELS="L1 L0" EPOCHS=2 OUT=/tmp/l0 benchmarks/speed/opt_level_l0_steady.sh
#   LEVELS="L0 L1" EPOCHS=3 OUT=/tmp/l0 TAG=b benchmarks/speed/opt_level_l0_steady.sh
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/opt_level_l0_steady}
mkdir -p "$OUT"
for level in ${LEVELS:-L1 L0}; do
  rm -rf "$OUT/run_$level"
  s=$(date +%s)
  python benchmarks/speed/opt_level_l0.py "$level" hournas_tf.search \
      --strategy=mirrored --cpu_replicas=2 --sync_batch_norm \
      --vital_ops=max --nonvital_epochs="${EPOCHS:-2}" \
      --max_steps_per_epoch=10 --batch_size=16 --proposal_iters=50 \
      --num_proposals=2 --verbose=2 --output_dir="$OUT/run_$level" \
      > "$OUT/$level${TAG:-}.out" 2> "$OUT/$level${TAG:-}.err"
  echo "$level rc=$? wall=$(( $(date +%s) - s )) $(date -u +%H:%M)" \
       "load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/pairs.txt"
  grep -h '/step' "$OUT/$level${TAG:-}.out" | cut -c1-40 >> "$OUT/pairs.txt"
done
