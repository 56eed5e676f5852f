#!/usr/bin/env bash
# Experiment 2 of issue 6: training throughput over emulated slow links.
# 4 ranks (2 pipeline stages x 2 data-parallel replicas) on a uniform emulated
# network at 10 Gbit/s, 1 Gbit/s, 500 Mbit/s and 100 Mbit/s (1 ms), time-scaled
# by TIME_SCALE to this CPU's compute speed; fp32 vs AQ-SGD (fw FW / bw BW,
# scales clipped at CLIP x RMS when CLIP > 0) vs AQ-SGD plus 4-bit
# data-parallel gradients.  Prints tokens/s (mean over steps after a warm-up)
# and each run's ratio to fp32 at 10 Gbit/s.  DEPTH is the 1F1B warm-up depth
# (job "pipeline": {"depth": DEPTH}; 1 is classic 1F1B, "auto" lets the
# coordinator simulate the plan on each run's links and choose).
#   [STAGES=2 REPLICAS=2 BATCH=8 MICRO=2 FW=4 BW=8 CLIP=0 DEPTH=1|auto] scripts/experiments/slow_links.sh [OUT_DIR] [TIME_SCALE] [STEPS]
# With REPLICAS=1 there is no data-parallel traffic: the third column repeats the second.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$root/runs/slow_links}")
scale=${2:-10}
steps=${3:-30}
stages=${STAGES:-2}
replicas=${REPLICAS:-2}
batch=${BATCH:-8}
micro=${MICRO:-2}
fw=${FW:-4}
bw=${BW:-8}
clip=${CLIP:-0}
depth=${DEPTH:-1}
[ "$depth" = auto ] && depth='"auto"'
ranks=$((stages * replicas))
longhaul=$root/build/longhaul
flags=(--oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
mkdir -p "$out"
cd "$out"
# A small training set (64 samples per replica: an epoch is 8 steps), so that after the first
# epoch AQ-SGD runs in its steady state: every sample seen before travels as a low-bit delta.
if [ ! -f small.txt ]; then
  "$longhaul" tokenize --embedded --out corpus --val-fraction 0 > /dev/null
  "$longhaul" tokenize --decode corpus/train_000000.bin --max-tokens 8500 > small.txt
fi
for mbps in 10000 1000 500 100; do
  gbps=$(awk -v m="$mbps" 'BEGIN { print m / 1000 }')
  cat > "topo_$mbps.json" <<TOPO
{ "format": "longhaul-topology", "version": 1,
  "devices": [ $(for i in $(seq 0 $((ranks - 1))); do printf '%s{ "id": %d, "flops": 1e12, "memory_bytes": 1e10 }' "$([ "$i" -gt 0 ] && echo ', ')" "$i"; done) ],
  "default_link": { "latency_ms": 1, "bandwidth_gbps": $gbps } }
TOPO
  modes="fp32 aqsgd aqsgd_grad4"
  [ "$replicas" = 1 ] && modes="fp32 aqsgd" # no data-parallel gradients to compress
  for mode in $modes; do
    name="${mode}_${mbps}"
    [ -f "$name/metrics.jsonl" ] && grep -q '"event": "end"' "$name/metrics.jsonl" && continue
    cmode=$mode; gbits=0
    [ "$mode" = aqsgd_grad4 ] && { cmode=aqsgd; gbits=4; }
    cat > "$name.json" <<JOB
{ "format": "longhaul-job", "version": 1, "name": "$name", "seed": 3,
  "model": { "layers": 4, "channels": 128, "heads": 4, "context": 64, "vocab": 257 },
  "data": { "train": "$out/small.txt", "val_fraction": 0.05 },
  "batch": { "batch_size": $batch, "micro_batch": $micro, "steps": $steps },
  "pipeline": { "schedule": "1f1b", "depth": $depth },
  "placement": { "pipeline_stages": $stages, "data_parallel": $replicas, "topology": "$out/topo_$mbps.json",
                 "emulate": true, "time_scale": $scale, "strategy": "rank" },
  "compression": { "mode": "$cmode", "forward_bits": $fw, "backward_bits": $bw, "gradient_bits": $gbits,
                   "clip": $clip },
  "verify_every": 0, "log_every": 10, "output_dir": "$out/$name" }
JOB
    mpirun "${flags[@]}" -np "$ranks" "$longhaul" train "$name.json" > "$name.log" 2>&1
  done
done
# Mean tokens/s over the steps after the first epoch (8 steps) plus one.
tps() { awk -F'"tokens_per_s": ' 'NF > 1 { split($2, a, ","); n++; if (n > 9) { s += a[1]; c++ } } END { printf "%.0f", s / c }' "$1/metrics.jsonl"; }
base=$(tps fp32_10000)
printf '| link | fp32 tok/s | AQ-SGD tok/s | AQ-SGD + 4-bit grads tok/s | AQ-SGD vs fp32@10G | AQ+grads vs fp32 same link |\n|---|---|---|---|---|---|\n' | tee table.md
for mbps in 10000 1000 500 100; do
  f=$(tps "fp32_$mbps"); a=$(tps "aqsgd_$mbps"); g=$a
  [ "$replicas" = 1 ] || g=$(tps "aqsgd_grad4_$mbps")
  awk -v m="$mbps" -v f="$f" -v a="$a" -v g="$g" -v b="$base" \
    'BEGIN { printf "| %d Mbit/s | %d | %d | %d | %.2fx | %.2fx |\n", m, f, a, g, a / b, g / f }' | tee -a table.md
done
# The depth each run used ("auto" runs log the one the simulation chose).
for f in *_*.log; do
  d=$(sed -n 's/.*1F1B depth \([0-9]*\) chosen.*/\1/p' "$f" | head -1)
  printf '%s: depth %s\n' "${f%.log}" "${d:-$depth}"
done | tee depths.txt
