# Plot `longhaul sched-bench` output (the command writes this same script into its --out-dir).
# Usage: cd <out-dir> && gnuplot /path/to/scripts/plot_sched_bench.gp   (reads results_wide.dat, anytime.dat)
set terminal pngcairo size 1100,700 noenhanced
set output 'results.png'
set multiplot layout 1,2
set title 'DT-FM COMM-COST by strategy (mean over seeds)'
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'COMM-COST (s)'
set xtics rotate by -30
set key top left
plot for [c=2:*] 'results_wide.dat' using c:xtic(1) title columnheader(c)
unset logscale y
set title 'Anytime: best cost found against time (ils, dtfm-ga; seed 1)'
set xlabel 'time (s)'
set logscale xy
set format x '%g'
set xtics rotate by 0
set ylabel 'COMM-COST (s)'
set key outside bottom center font ',8' maxrows 5
set style data steps
plot for [i=0:*] 'anytime.dat' index i using 1:2 with steps title columnheader(1)
unset multiplot
