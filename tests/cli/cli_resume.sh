#!/usr/bin/env bash
# Kill and resume: a 4-rank (2 stages x 2 replicas) run that dies after its
# step-4 checkpoint resumes with --resume and reproduces the uninterrupted
# run's losses exactly; the same checkpoint then loads into a different
# partition (4 stages x 1 replica); a torn checkpoint (no LATEST) is ignored.
# Then the same with compression (AQ-SGD fw2/bw4, 4-bit gradients with error
# feedback) on a tiny text so samples are revisited (2 steps per epoch): the
# AQ-SGD caches and residuals saved with the checkpoint make the resumed
# losses exact too; a corrupted state file fails the resume naming the file;
# on another partition the codecs start empty, logged.
set -euo pipefail
longhaul="$1"
mpiexec_flags=(--oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && mpiexec_flags+=(--allow-run-as-root)
dir=$(mktemp -d /tmp/lh_resume_XXXXXX)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
job() { # name stages replicas [more fields, each followed by a comma]
  cat > "$1.json" <<JOB
{ "format": "longhaul-job", "version": 1, "name": "$1", "seed": 11,
  "model": { "layers": 4, "channels": 32, "heads": 2, "context": 16, "vocab": 257 },
  "batch": { "batch_size": 4, "micro_batch": 2, "steps": 6 },
  "optimizer": { "lr": 3e-3, "warmup_steps": 2 },
  "placement": { "pipeline_stages": $2, "data_parallel": $3 }, ${4:-}
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

# Compressed: 20 samples of 16 tokens, 4 held out, 8 per replica = 2 steps per
# epoch, so from step 2 on samples come back as AQ-SGD deltas against the cache.
for i in 1 2 3 4 5 6 7; do printf 'the quick brown fox jumps over the lazy dog %d. ' "$i"; done > tiny.txt
aq='"data": { "train": "tiny.txt", "val_fraction": 0.2 },
  "compression": { "mode": "aqsgd", "forward_bits": 2, "backward_bits": 4, "gradient_bits": 4 },'
job aq_whole 2 2 "$aq"
job aq_killed 2 2 "$aq"
mpirun "${mpiexec_flags[@]}" -np 4 "$longhaul" train aq_whole.json > aq_whole.log 2>&1 || { cat aq_whole.log; exit 1; }
status=0
LONGHAUL_FAULT=exit:1:4 mpirun "${mpiexec_flags[@]}" -np 4 "$longhaul" train aq_killed.json > aq_killed.log 2>&1 || status=$?
[ "$status" -ne 0 ] || { echo "the faulty compressed run did not fail"; exit 1; }
[ "$(cat ckpt_aq_killed/LATEST)" = "step_00000004" ] || { echo "LATEST: $(cat ckpt_aq_killed/LATEST)"; exit 1; }
# every rank wrote its own codec state (stage 0 sends, stage 1 receives, all keep residuals)
for f in state_r0_s0 state_r0_s1 state_r1_s0 state_r1_s1; do
  [ -s "ckpt_aq_killed/step_00000004/$f.lhst" ] || { echo "no $f.lhst"; exit 1; }
  grep -q "\"$f.lhst\"" ckpt_aq_killed/step_00000004/MANIFEST.json || { echo "$f.lhst not in the manifest"; exit 1; }
done
cp -r ckpt_aq_killed ckpt_aq_saved # for the failure cases below, before the resumed run prunes it
LONGHAUL_LOG=info mpirun "${mpiexec_flags[@]}" -np 4 "$longhaul" train aq_killed.json --resume > aq_resumed.log 2>&1 ||
  { cat aq_resumed.log; exit 1; }
grep -q "resumed at step 4" aq_resumed.log
grep -q "residuals restored (same plan)" aq_resumed.log || { echo "codec state not restored"; cat aq_resumed.log; exit 1; }
losses run_aq_whole/metrics.jsonl | sed -n '5,6p' > want
losses run_aq_killed/metrics.jsonl | tail -n 2 > got
[ "$(wc -l < want)" = 2 ] && cmp want got || { echo "resumed compressed losses differ:"; paste want got; exit 1; }

# A corrupted state file on the same plan is an error naming the file, never skipped.
job aq_bad 2 2 "$aq"
mkdir ckpt_aq_bad && cp -r ckpt_aq_saved/step_00000004 ckpt_aq_bad/ && echo step_00000004 > ckpt_aq_bad/LATEST
printf '\x55' | dd of=ckpt_aq_bad/step_00000004/state_r1_s0.lhst bs=1 seek=1000 conv=notrunc 2> /dev/null
if mpirun "${mpiexec_flags[@]}" -np 4 "$longhaul" train aq_bad.json --resume > aq_bad.log 2>&1; then
  echo "resumed from a corrupted state file"; exit 1
fi
grep -q "state_r1_s0.lhst: CRC-32C mismatch" aq_bad.log || { echo "wrong error:"; cat aq_bad.log; exit 1; }

# On another partition (4 stages x 1 replica) the codecs start empty, and it says so.
job aq_repart 4 1 "$aq"
mkdir ckpt_aq_repart && cp -r ckpt_aq_saved/step_00000004 ckpt_aq_repart/ && echo step_00000004 > ckpt_aq_repart/LATEST
sed -i 's/"steps": 6/"steps": 5/' aq_repart.json
LONGHAUL_LOG=info mpirun "${mpiexec_flags[@]}" -np 4 "$longhaul" train aq_repart.json --resume > aq_repart.log 2>&1 ||
  { cat aq_repart.log; exit 1; }
grep -q "resumed at step 4" aq_repart.log
grep -q "another partition.*start empty" aq_repart.log || { echo "no 'start empty' line"; cat aq_repart.log; exit 1; }
grep -q "step     5/5" aq_repart.log
echo "cli resume: ok"
