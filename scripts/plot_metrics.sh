#!/usr/bin/env bash
# Draw loss and throughput curves of one or more training runs to a PNG.
#   scripts/plot_metrics.sh OUT.png RUN_DIR_OR_METRICS.jsonl [...]
# Each run is labelled by its folder name.  Needs gnuplot (scripts/setup.sh installs gnuplot-nox).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 OUT.png RUN_DIR_OR_METRICS.jsonl [...]" >&2
  exit 2
fi
command -v gnuplot >/dev/null || { echo "$0: gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
out=$1; shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
loss_plot="" speed_plot=""
i=0
for run in "$@"; do
  file=$run
  [ -d "$run" ] && file=$run/metrics.jsonl
  [ -f "$file" ] || { echo "$0: no metrics file at $file" >&2; exit 1; }
  label=$(basename "$(dirname "$(realpath "$file")")")
  # Lines longhaul writes: {"step": N, "loss": X, ..., "tokens_per_s": Y, ...}
  sed -n 's/.*"step": \([0-9]*\), "loss": \([^,]*\),.*"tokens_per_s": \([^,]*\),.*/\1 \2 \3/p' "$file" > "$tmp/$i.dat"
  [ -s "$tmp/$i.dat" ] || { echo "$0: $file holds no step lines" >&2; exit 1; }
  sep=${loss_plot:+, }
  loss_plot+="$sep'$tmp/$i.dat' using (\$1+1):2 with lines lw 2 title '$label'"
  speed_plot+="$sep'$tmp/$i.dat' using (\$1+1):3 with lines lw 2 title '$label'"
  i=$((i + 1))
done
gnuplot <<GP
set terminal pngcairo size 1200,500 noenhanced
set output '$out'
set multiplot layout 1,2
set grid
set xlabel 'step'
set ylabel 'training loss'
set title 'loss'
plot $loss_plot
set ylabel 'tokens / s'
set title 'throughput'
plot $speed_plot
unset multiplot
GP
echo "wrote $out"
