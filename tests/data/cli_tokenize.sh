#!/usr/bin/env bash
# End-to-end check of `longhaul tokenize`: a text holding every byte value is
# cut into train/val shards and decoded back; the concatenation must equal the
# input exactly.  Then the usage and error exit codes (2 and 1) are checked.
set -euo pipefail
longhaul="$1"
dir=$(mktemp -d /tmp/lh_cli_tokenize_XXXXXX)
trap 'rm -rf "$dir"' EXIT

python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 40 + "héllo wörld\n".encode() * 50)' > "$dir/in.txt"
"$longhaul" tokenize "$dir/in.txt" --out "$dir/shards" --shard-tokens 3000 --val-fraction 0.2 > "$dir/log"
grep -q "val tokens in 1 shard" "$dir/log"
ls "$dir/shards" | sort > "$dir/names"
printf 'train_000000.bin\ntrain_000001.bin\ntrain_000002.bin\nval_000000.bin\n' | cmp - "$dir/names"
for f in "$dir"/shards/train_*.bin "$dir"/shards/val_*.bin; do "$longhaul" tokenize --decode "$f"; done > "$dir/out.txt"
cmp "$dir/in.txt" "$dir/out.txt"

status=0
"$longhaul" tokenize "$dir/in.txt" --out "$dir/shards" 2> "$dir/err" || status=$?
[ "$status" -eq 1 ]
grep -q "already holds shards" "$dir/err"
"$longhaul" tokenize "$dir/in.txt" --out "$dir/shards" --replace --val-fraction 0 > /dev/null
[ "$(ls "$dir/shards")" = "train_000000.bin" ]
status=0
"$longhaul" tokenize --shard-tokens 12x "$dir/in.txt" --out "$dir/x" 2> /dev/null || status=$?
[ "$status" -eq 2 ]
status=0
"$longhaul" tokenize --decode "$dir/in.txt" 2> "$dir/err" || status=$?
[ "$status" -eq 1 ]
grep -q "not an llm.c token shard" "$dir/err"
"$longhaul" tokenize --help | grep -q "usage: longhaul tokenize"
echo "cli_tokenize: ok"
