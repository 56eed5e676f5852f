#!/usr/bin/env bash
# Experiment 3 of issue 6: does placement matter?  The same 2 x 2 job on a
# heterogeneous emulated topology (two regions whose devices are interleaved
# in rank order, so Megatron's rank order puts each data-parallel pair across
# the slow inter-region link), placed in rank order and by the scheduler
# (ils); measured step times next to the scheduler's estimates.
#   scripts/experiments/placement.sh [OUT_DIR] [TIME_SCALE] [STEPS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$root/runs/placement}")
scale=${2:-10}
steps=${3:-20}
longhaul=$root/build/longhaul
flags=(--oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
mkdir -p "$out"
cd "$out"
cat > topology.json <<TOPO
{ "format": "longhaul-topology", "version": 1,
  "devices": [ { "id": 0, "name": "east-0", "region": "east", "flops": 1e12, "memory_bytes": 1e10 },
               { "id": 1, "name": "west-0", "region": "west", "flops": 1e12, "memory_bytes": 1e10 },
               { "id": 2, "name": "east-1", "region": "east", "flops": 1e12, "memory_bytes": 1e10 },
               { "id": 3, "name": "west-1", "region": "west", "flops": 1e12, "memory_bytes": 1e10 } ],
  "links": [ { "from_region": "east", "to_region": "east", "latency_ms": 1, "bandwidth_gbps": 5 },
             { "from_region": "west", "to_region": "west", "latency_ms": 1, "bandwidth_gbps": 5 },
             { "from_region": "east", "to_region": "west", "latency_ms": 20, "bandwidth_gbps": 0.2 } ] }
TOPO
cat > workload.json <<W
{ "format": "longhaul-workload", "version": 1, "layers": 4, "hidden": 128, "seq_len": 64, "vocab": 257,
  "pipeline_stages": 2, "data_parallel": 2, "batch": 8, "micro_batch": 2, "act_bytes": 4, "grad_bytes": 4,
  "act_bits": 32, "grad_bits": 32, "schedule": "1f1b" }
W
for strategy in rank ils ils-time; do
  "$longhaul" plan --topology topology.json --workload workload.json --strategy "$strategy" \
    --out "plan_$strategy.json" > "plan_$strategy.txt"
  cat > "$strategy.json" <<JOB
{ "format": "longhaul-job", "version": 1, "name": "$strategy", "seed": 3,
  "model": { "layers": 4, "channels": 128, "heads": 4, "context": 64, "vocab": 257 },
  "batch": { "batch_size": 8, "micro_batch": 2, "steps": $steps },
  "placement": { "pipeline_stages": 2, "data_parallel": 2, "topology": "$out/topology.json",
                 "plan": "$out/plan_$strategy.json", "emulate": true, "time_scale": $scale },
  "verify_every": 0, "log_every": 5, "output_dir": "$out/$strategy" }
JOB
  mpirun "${flags[@]}" -np 4 "$longhaul" train "$strategy.json" > "$strategy.log" 2>&1
done
step_s() { awk -F'"step_s": ' 'NF > 1 { split($2, a, ","); n++; if (n > 3) { s += a[1]; c++ } } END { printf "%.3f", s / c }' "$1/metrics.jsonl"; }
num() { sed -n "s/^$2 *\([0-9.]*\) s.*/\1/p" "$1" | head -1; }
printf '| placement | measured s/step (time scale %s) | DT-FM COMM-COST | iteration model x %s | simulator x %s |\n|---|---|---|---|---|\n' \
  "$scale" "$scale" "$scale" | tee table.md
for strategy in rank ils ils-time; do
  m=$(step_s "$strategy")
  awk -v n="$strategy" -v m="$m" -v d="$(num "plan_$strategy.txt" 'DT-FM COMM-COST')" \
      -v i="$(num "plan_$strategy.txt" 'iteration time')" -v s="$(num "plan_$strategy.txt" simulated)" -v k="$scale" \
    'BEGIN { printf "| %s | %.3f | %.4f s | %.3f s (%+.0f%%) | %.3f s (%+.0f%%) |\n", n, m, d, i * k, 100 * (i * k - m) / m, s * k, 100 * (s * k - m) / m }' |
    tee -a table.md
done
