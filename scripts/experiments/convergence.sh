#!/usr/bin/env bash
# Experiment 1 of issue 6 (AQ-SGD's central result, reproduced small):
# pre-train a small GPT on the embedded corpus, then fine-tune it for 10 epochs
# on a different text (six of Debian's license texts) over 4 pipeline stages
# with fp32 activations, AQ-SGD at fw2/bw4, fw3/bw6, fw4/bw8 and DirectQ at the
# same widths, and both at fw2/bw4 with forward scales clipped at 2 x RMS.
# Prints a table of final validation losses and draws the curves.
#   [LR=5e-4] scripts/experiments/convergence.sh [OUT_DIR] [EPOCHS]
# Losses do not depend on machine load (only the wall time does).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$root/runs/convergence}")
epochs=${2:-10}
lr=${LR:-5e-4}
longhaul=$root/build/longhaul
flags=(--oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
mkdir -p "$out"
cd "$out"
# A fixed text unlike the corpus: Debian's license texts (package base-files), 131 KB.
licenses=/usr/share/common-licenses
cat $licenses/GPL-3 $licenses/LGPL-2.1 $licenses/GFDL-1.3 $licenses/GPL-2 $licenses/Apache-2.0 $licenses/MPL-2.0 \
  > finetune.txt

model='"layers": 4, "channels": 96, "heads": 4, "context": 64, "vocab": 257'
if [ ! -f pretrain/ckpt/LATEST ]; then
  cat > pretrain.json <<JOB
{ "format": "longhaul-job", "version": 1, "name": "pretrain", "seed": 1,
  "model": { $model },
  "data": { "train": "embedded", "val_fraction": 0.02 },
  "batch": { "batch_size": 16, "micro_batch": 16, "steps": 600 },
  "optimizer": { "lr": 2e-3, "warmup_steps": 50, "weight_decay": 0.01 },
  "checkpoint": { "dir": "$out/pretrain/ckpt" },
  "log_every": 100, "output_dir": "$out/pretrain" }
JOB
  mpirun "${flags[@]}" -np 1 "$longhaul" train pretrain.json
fi
init=$out/pretrain/ckpt/$(cat pretrain/ckpt/LATEST)/part_s0.lhck

run() { # name mode fw bw [clip]
  cat > "$1.json" <<JOB
{ "format": "longhaul-job", "version": 1, "name": "$1", "seed": 7,
  "model": { $model, "init_checkpoint": "$init" },
  "data": { "train": "$out/finetune.txt", "val_fraction": 0.1 },
  "batch": { "batch_size": 8, "micro_batch": 2, "epochs": $epochs },
  "optimizer": { "lr": $lr, "warmup_steps": 20, "weight_decay": 0.01, "schedule": "cosine" },
  "placement": { "pipeline_stages": 4, "data_parallel": 1 },
  "compression": { "mode": "$2", "forward_bits": $3, "backward_bits": $4, "clip": ${5:-0} },
  "verify_every": 0, "log_every": 100, "output_dir": "$out/$1" }
JOB
  [ -f "$out/$1/metrics.jsonl" ] && grep -q '"event": "end"' "$out/$1/metrics.jsonl" && return
  mpirun "${flags[@]}" -np 4 "$longhaul" train "$1.json" > "$1.log" 2>&1
}
run fp32 fp32 4 8
for b in "2 4" "3 6" "4 8"; do
  set -- $b
  run "aqsgd_fw$1_bw$2" aqsgd "$1" "$2"
  run "directq_fw$1_bw$2" directq "$1" "$2"
done
run aqsgd_fw2_bw4_clip2 aqsgd 2 4 2
run directq_fw2_bw4_clip2 directq 2 4 2

fp32=$(sed -n 's/.*"val_loss": \([^,]*\),.*/\1/p' fp32/metrics.jsonl)
printf '| run | final validation loss | vs fp32 |\n|---|---|---|\n' | tee table.md
for r in fp32 aqsgd_fw2_bw4 aqsgd_fw2_bw4_clip2 aqsgd_fw3_bw6 aqsgd_fw4_bw8 directq_fw2_bw4 directq_fw2_bw4_clip2 \
  directq_fw3_bw6 directq_fw4_bw8; do
  v=$(sed -n 's/.*"val_loss": \([^,]*\),.*/\1/p' "$r/metrics.jsonl")
  awk -v r="$r" -v v="$v" -v f="$fp32" 'BEGIN { printf "| %s | %.4f | %+.2f%% |\n", r, v, 100 * (v - f) / f }' | tee -a table.md
done
"$root/scripts/plot_metrics.sh" curves.png fp32 aqsgd_fw2_bw4 aqsgd_fw2_bw4_clip2 aqsgd_fw4_bw8 directq_fw2_bw4 directq_fw4_bw8 > /dev/null || true
echo "table: $out/table.md, curves: $out/curves.png"
