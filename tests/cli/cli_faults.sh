#!/usr/bin/env bash
# Failure handling of `longhaul train` (fault injection through LONGHAUL_FAULT):
# a rank that stops answering makes its peers end the job with an error naming
# it within peer_timeout_s; a rank that exits ends the job (mpirun reports it).
# Neither may hang: each run is bounded by `timeout`.
set -uo pipefail
longhaul="$1"
mpiexec_flags=(--oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && mpiexec_flags+=(--allow-run-as-root)
dir=$(mktemp -d /tmp/lh_faults_XXXXXX)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/job.json" <<JOB
{ "format": "longhaul-job", "version": 1, "name": "faults", "seed": 5,
  "model": { "layers": 2, "channels": 32, "heads": 2, "context": 16, "vocab": 257 },
  "batch": { "batch_size": 4, "micro_batch": 2, "steps": 6 },
  "placement": { "pipeline_stages": 2, "data_parallel": 1 },
  "peer_timeout_s": 2,
  "output_dir": "$dir/run" }
JOB
cd "$dir"

# Stage 1 (rank 1) hangs before step 2: rank 0 times out waiting for it.
LONGHAUL_FAULT=hang:1:2 timeout 120 mpirun "${mpiexec_flags[@]}" -np 2 "$longhaul" train job.json > out 2> err
status=$?
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || { echo "hang: expected a failure, got exit $status"; cat out err; exit 1; }
grep -q "error (timeout)" err || { echo "hang: no timeout error"; cat err; exit 1; }
grep -q "world rank 1" err || { echo "hang: the error does not name rank 1"; cat err; exit 1; }
grep -q "no answer within 2 s" err || { echo "hang: the error does not give the timeout"; cat err; exit 1; }

# Rank 0 exits before step 1: the job ends, with mpirun naming the process.
LONGHAUL_FAULT=exit:0:1 timeout 120 mpirun "${mpiexec_flags[@]}" -np 2 "$longhaul" train job.json > out 2> err
status=$?
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || { echo "exit: expected a failure, got exit $status"; cat out err; exit 1; }
grep -qi "exit" err || { echo "exit: mpirun did not report the exit"; cat err; exit 1; }
echo "cli faults: ok"
