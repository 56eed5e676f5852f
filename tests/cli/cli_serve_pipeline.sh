#!/usr/bin/env bash
# `longhaul serve` in pipeline mode: a 2-stage x 2-replica pipeline placed for
# latency by `serve-sim --latency` on the example topology (4 MPI ranks) plus
# the server rank answers a greedy completion exactly as the single-process
# server with the same random model does; at the end of --duration the server
# shuts the workers down and the whole job exits cleanly.
set -euo pipefail
longhaul="$1"
root="$2"
mpiexec_flags=(--oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && mpiexec_flags+=(--allow-run-as-root)
dir=$(mktemp -d /tmp/lh_serve_pp_XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
model=(--random-model 3,32,2,32,257 --seed 5 --slots 2 --port 0)

wait_port() { # log file -> port
  for _ in $(seq 1 300); do
    port=$(sed -n 's|.*http://127\.0\.0\.1:\([0-9]*\) .*|\1|p' "$1")
    [ -n "$port" ] && { echo "$port"; return 0; }
    sleep 0.1
  done
  echo "server did not start:" >&2; cat "$1" >&2; return 1
}
complete() { # port -> completion text of a fixed greedy request
  python3 - "$1" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/completions",
                             data=json.dumps({"prompt": "The cat", "max_tokens": 12, "temperature": 0}).encode(),
                             headers={"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req, timeout=60))["choices"][0]["text"].encode().hex())
PY
}

cat > "$dir/workload.json" <<W
{ "format": "longhaul-workload", "version": 1, "layers": 3, "hidden": 32, "seq_len": 32, "vocab": 257,
  "pipeline_stages": 2, "data_parallel": 2, "batch": 1, "micro_batch": 1 }
W
"$longhaul" serve-sim --latency --topology "$root/examples/topology.json" --workload "$dir/workload.json" \
  --strategies serve-latency --out "$dir/plan.json" > /dev/null
"$longhaul" check "$dir/plan.json" | grep -q "plan: 2 stages x 2 replicas, 3 layers"
mpirun "${mpiexec_flags[@]}" -np 5 "$longhaul" serve "${model[@]}" --plan "$dir/plan.json" --duration 20 \
  > "$dir/pp.log" 2> "$dir/pp.err" &
pids+=($!)
"$longhaul" serve "${model[@]}" --duration 60 > "$dir/local.log" 2> "$dir/local.err" &
pids+=($!)
pp=$(wait_port "$dir/pp.log")
local_port=$(wait_port "$dir/local.log")
a=$(complete "$pp")
b=$(complete "$local_port")
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "pipeline '$a' != local '$b'"; cat "$dir/pp.err"; exit 1; }
wait "${pids[0]}" || { echo "the pipeline job did not exit cleanly"; cat "$dir/pp.err"; exit 1; }
grep -q "1 completions" "$dir/pp.log"
echo "cli serve pipeline: ok"
