#!/usr/bin/env python3
"""Whole-process figures: wall time of short programs, and peak memory (RSS)
of long streams. Prints CSV rows in flow-bench's format.

usage: proc_bench.py BUILD_DIR [--runs=N]
"""
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def wall(cmd, runs, shell=False):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, shell=shell, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def peak_rss_kib(cmd, shell=False):
    """Peak RSS of one run. Each run is its own child of a fresh Python
    process, so RUSAGE_CHILDREN's maximum is this command's."""
    probe = ("import resource,subprocess,sys;"
             "subprocess.run(sys.argv[1:] if len(sys.argv)>2 else sys.argv[1],"
             " shell=len(sys.argv)==2, check=True, stdout=subprocess.DEVNULL);"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    args = [sys.executable, "-c", probe] + ([cmd] if shell else cmd)
    t0 = time.perf_counter()
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return int(out.stdout.strip()), time.perf_counter() - t0


def row(workload, size, method, stats, runs, extra=0):
    med, lo, hi = stats
    print(f"{workload},{size},{method},{med:.9f},{lo:.9f},{hi:.9f},{runs},"
          f"{extra}", flush=True)


def main():
    build = sys.argv[1]
    runs = 20
    for a in sys.argv[2:]:
        if a.startswith("--runs="):
            runs = int(a[7:])
    flow_sum = os.path.join(build, "apps", "flow-sum")
    flow_keyed = os.path.join(build, "apps", "flow-keyed")
    # Target: a whole `flow-sum --sizes 5` process, against a Python process
    # that starts a Pool and runs one task.
    row("process", 5, "flow_sum_process",
        wall([flow_sum, "--sizes", "5"], runs), runs)
    row("process", 5, "python_pool_process",
        wall([sys.executable, os.path.join(HERE, "python_sum.py"),
              "--startup"], max(5, runs // 4)), max(5, runs // 4))
    # Memory: peak RSS must not grow with the input's length.
    for n in (10_000_000, 1_000_000_000):
        rss, secs = peak_rss_kib([flow_keyed, "--sizes", str(n), "--json"])
        row("memory", n, "flow_keyed_random", (secs, secs, secs), 1, rss)
    for n in (10_000_000, 100_000_000):
        cmd = f"yes 1234 | head -n {n} | {flow_sum} --input - --json"
        rss, secs = peak_rss_kib(cmd, shell=True)
        row("memory", n, "flow_sum_stdin", (secs, secs, secs), 1, rss)


if __name__ == "__main__":
    main()
