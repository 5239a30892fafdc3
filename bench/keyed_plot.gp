# gnuplot script: issue 17's many-keys targets, from bench/keyed_plot.sh.
# usage: gnuplot -e "elements='10000000'; times='bench/results/keyed.csv'; mem='bench/results/keyed_memory.csv'; out='docs/img/bench-keyed.png'" bench/keyed_plot.gp
set terminal pngcairo size 1200,500 font ",10" noenhanced
set output out
set datafile separator ","
set multiplot layout 1,2
set logscale x
set format x "1e%L"
set xlabel "keys (K)"
set grid
set key top left

# Left: seconds of a keyed sum of N elements against the number of keys.
set logscale y
set ylabel "seconds (median)"
set title sprintf("Keyed sum of %s int64 elements, 2-core machine (lower is better)", elements)
methods = "libflow libflow_shards1 unordered_map_1thread radix_2threads duckdb_2threads"
set xrange [500:2e7]
plot for [m in methods] \
  sprintf("< awk -F, 'NR > 1 && $3 == \"%s\" {print $1\",\"$4}' %s", m, times) \
  using 1:2 with linespoints title m, \
  sprintf("< awk -F, 'NR > 1 && $3 == \"duckdb_2threads\" {print $1\",\"$4 / 2}' %s", times) \
  using 1:2 with lines dashtype 2 title "target 2: half of DuckDB's time"

# Right: flow-keyed's peak RSS above its baseline, per distinct key.
unset logscale y
set yrange [0:*]
set xrange [5e4:2e7]
set ylabel "bytes per distinct key"
set title "flow-keyed --summary --no-verify, 2K elements: memory per key"
plot mem using 1:6 skip 1 with linespoints title "libflow (peak RSS - baseline) / keys", \
     64 with lines dashtype 2 title "target 1: 64 bytes (at 10^7 keys)"
unset multiplot
