# gnuplot script: time against size for each method of the "sum" workload.
# usage: gnuplot -e "csv='bench/results/bench.csv'; out='docs/img/bench-sum.png'" bench/plot.gp
set terminal pngcairo size 900,560 font ",10" noenhanced
set output out
set datafile separator ","
set logscale xy
set format x "1e%L"
set format y "1e%L"
set xlabel "elements"
set ylabel "seconds (median)"
set title "Sum of n int64 in memory, 2-core machine (lower is better)"
set key top left
set grid
methods = "loop accumulate tbb naive_caf libflow python_sum python_pool"
plot for [m in methods] \
  sprintf("< awk -F, '$1==\"sum\" && $3==\"%s\" {print $2\",\"$4}' %s", m, csv) \
  using 1:2 with linespoints title m
