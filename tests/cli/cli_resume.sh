#!/usr/bin/env bash
# Kill and resume: a 4-rank (2 stages x 2 replicas) run that dies after its
# step-4 checkpoint resumes with --resume and reproduces the uninterrupted
# run's losses exactly; the same checkpoint then loads into a different
# partition (4 stages x 1 replica); a torn checkpoint (no LATEST) is ignored.
set -euo pipefail
longhaul="$1"
mpiexec_flags=(--oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && mpiexec_flags+=(--allow-run-as-root)
dir=$(mktemp -d /tmp/lh_resume_XXXXXX)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
job() { # name stages replicas
  cat > "$1.json" <<JOB
{ "format": "longhaul-job", "version": 1, "name": "$1", "seed": 11,
  "model": { "layers": 4, "channels": 32, "heads": 2, "context": 16, "vocab": 257 },
  "batch": { "batch_size": 4, "micro_batch": 2, "steps": 6 },
  "optimizer": { "lr": 3e-3, "warmup_steps": 2 },
  "placement": { "pipeline_stages": $2, "data_parallel": $3 },
  "checkpoint": { "dir": "$dir/ckpt_$1", "every_steps": 2, "keep": 2 },
  "peer_timeout_s": 20,
  "output_dir": "$dir/run_$1" }
JOB
}
losses() { sed -n 's/.*"step": \([0-9]*\), "loss": \([^,]*\),.*/\1 \2/p' "$1"; }
job whole 2 2
job killed 2 2
mpirun "${mpiexec_flags[@]}" -np 4 "$longhaul" train whole.json > whole.log 2>&1

status=0
LONGHAUL_FAULT=exit:1:4 mpirun "${mpiexec_flags[@]}" -np 4 "$longhaul" train killed.json > killed.log 2>&1 || status=$?
[ "$status" -ne 0 ] || { echo "the faulty run did not fail"; exit 1; }
[ "$(cat ckpt_killed/LATEST)" = "step_00000004" ] || { echo "LATEST: $(cat ckpt_killed/LATEST)"; exit 1; }
ls ckpt_killed/step_00000004 | grep -q MANIFEST.json
[ "$(ls -d ckpt_killed/step_* | wc -l)" = 2 ] # steps 2 and 4

mpirun "${mpiexec_flags[@]}" -np 4 "$longhaul" train killed.json --resume > resumed.log 2>&1 ||
  { cat resumed.log; exit 1; }
grep -q "resumed at step 4" resumed.log
losses run_whole/metrics.jsonl | sed -n '5,6p' > want
losses run_killed/metrics.jsonl | tail -n 2 > got
[ "$(wc -l < want)" = 2 ] && cmp want got || { echo "resumed losses differ:"; paste want got; exit 1; }
# keep = 2: steps 4 and 6 remain
[ "$(ls -d ckpt_killed/step_* | wc -l)" = 2 ]

# The 2-stage checkpoint loads into 4 stages x 1 replica.
job repart 4 1
mkdir -p ckpt_repart && cp -r ckpt_killed/step_00000004 ckpt_repart/ && echo step_00000004 > ckpt_repart/LATEST
sed -i 's/"steps": 6/"steps": 5/' repart.json
mpirun "${mpiexec_flags[@]}" -np 4 "$longhaul" train repart.json --resume > repart.log 2>&1 || { cat repart.log; exit 1; }
grep -q "resumed at step 4" repart.log
grep -q "step     5/5" repart.log

# A folder without LATEST (a crash before the commit) is not resumed from.
rm ckpt_repart/LATEST
mpirun "${mpiexec_flags[@]}" -np 4 "$longhaul" train repart.json --resume --steps 1 > fresh.log 2>&1
if grep -q "resumed at" fresh.log; then echo "resumed from an uncommitted checkpoint"; exit 1; fi
echo "cli resume: ok"
