#!/usr/bin/env bash
# The longhaul binary as a user meets it: help, version, exit statuses for
# bad usage (2) and bad files (1) with the message naming file and field,
# `check` on the examples, and `train` on 4 ranks with its closing summary.
set -euo pipefail
longhaul="$1"
root="$2"
mpiexec_flags=(--oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && mpiexec_flags+=(--allow-run-as-root)
dir=$(mktemp -d /tmp/lh_cli_XXXXXX)
trap 'rm -rf "$dir"' EXIT
expect_status() { local want=$1; shift; local got=0; "$@" >"$dir/out" 2>"$dir/err" || got=$?;
                  [ "$got" -eq "$want" ] || { echo "expected exit $want, got $got: $*"; cat "$dir/err"; exit 1; }; }

expect_status 0 "$longhaul" help
for cmd in check demo train tokenize; do grep -q "^  $cmd " "$dir/out"; done
expect_status 2 "$longhaul"
expect_status 2 "$longhaul" frobnicate
grep -q "unknown command 'frobnicate'" "$dir/err"
expect_status 2 "$longhaul" check --frobnicate
expect_status 2 "$longhaul" train
expect_status 0 "$longhaul" version
grep -q "^longhaul [0-9]" "$dir/out"

expect_status 0 "$longhaul" check "$root"/examples/*.json
grep -q "topology: 4 devices in 2 regions" "$dir/out"
expect_status 1 "$longhaul" check "$root/tests/formats/broken/job_micro.json"
grep -q 'job_micro.json: \$.batch.micro_batch: must divide batch_size (8), got 3' "$dir/err"

# A short training run on 4 ranks (2 stages x 2 replicas, no emulation).
cat > "$dir/job.json" <<JOB
{ "format": "longhaul-job", "version": 1, "name": "cli-test", "seed": 3,
  "model": { "layers": 2, "channels": 32, "heads": 2, "context": 16, "vocab": 257 },
  "batch": { "batch_size": 4, "micro_batch": 2, "steps": 3 },
  "placement": { "pipeline_stages": 2, "data_parallel": 2, "topology": "$root/examples/topology.json" },
  "compression": { "mode": "aqsgd", "forward_bits": 3, "backward_bits": 6, "gradient_bits": 4 },
  "output_dir": "$dir/run" }
JOB
(cd "$dir" && mpirun "${mpiexec_flags[@]}" -np 4 "$longhaul" train job.json > train.log 2> train.err) ||
  { cat "$dir/train.log" "$dir/train.err"; exit 1; }
grep -q "step     3/3" "$dir/train.log"
grep -q "bytes sent" "$dir/train.log"
[ "$(grep -c '"step"' "$dir/run/metrics.jsonl")" = 3 ]
"$longhaul" check "$dir/run/plan.json" > /dev/null

# The wrong number of ranks is refused with the numbers in the message.
status=0
(cd "$dir" && mpirun "${mpiexec_flags[@]}" -np 2 "$longhaul" train job.json > /dev/null 2> train.err) || status=$?
[ "$status" -ne 0 ]
grep -q "the job needs 2 x 2 = 4 ranks; mpirun started 2" "$dir/train.err"
echo "cli basics: ok"
