#!/usr/bin/env bash
# longhaul launch: a run whose rank exits at step 3 is restarted with --resume
# from its step-2 checkpoint and finishes; a command that cannot run is not retried.
set -euo pipefail
longhaul="$1"
mpiexec_flags=(--oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && mpiexec_flags+=(--allow-run-as-root)
dir=$(mktemp -d /tmp/lh_launch_XXXXXX)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
cat > job.json <<JOB
{ "format": "longhaul-job", "version": 1, "name": "launch", "seed": 2,
  "model": { "layers": 2, "channels": 32, "heads": 2, "context": 16, "vocab": 257 },
  "batch": { "batch_size": 4, "micro_batch": 2, "steps": 5 },
  "placement": { "pipeline_stages": 2, "data_parallel": 1 },
  "checkpoint": { "dir": "$dir/ckpt", "every_steps": 2 },
  "peer_timeout_s": 20,
  "output_dir": "$dir/run" }
JOB
LONGHAUL_FAULT=exit:1:3 "$longhaul" launch --restarts 2 --delay 0 -- \
  mpirun "${mpiexec_flags[@]}" -np 2 "$longhaul" train job.json > out 2> err || { cat out err; exit 1; }
grep -q "attempt 1 failed" err
grep -q "attempt 2 of 3 (resuming)" err
grep -q "resumed at step 2" out
grep -q "step     5/5" out
[ "$(cat ckpt/LATEST)" = "step_00000005" ]
status=0
"$longhaul" launch --restarts 5 --delay 0 -- /nonexistent/program 2> err || status=$?
[ "$status" -eq 127 ]
[ "$(grep -c 'attempt' err)" -eq 2 ] # one attempt, one failure line: not retried
status=0
"$longhaul" launch --restarts x -- true 2> /dev/null || status=$?
[ "$status" -eq 2 ]
echo "cli launch: ok"
