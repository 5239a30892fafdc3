#!/usr/bin/env python3
"""The tutorial's job done correctly in Python, for comparison with libflow.

For each size: a list of random.randint(0, 10000)-like integers (built
outside the timed region), then
  - python_sum:  the builtin sum();
  - python_pool: multiprocessing.Pool.map over chunks (one chunk per task,
                 4 tasks per worker), partial sums added in the parent -- what
                 the tutorial's apply_async + Manager().dict() should have been.
Both results are checked against each other. Prints CSV rows in flow-bench's
format: workload,size,method,median_s,min_s,max_s,runs,extra

Also, with --startup: the time of a whole Python process that starts a Pool
and runs one task (workload "process").
"""
import multiprocessing as mp
import random
import statistics
import sys
import time


def chunk_sum(chunk):
    return sum(chunk)


def measure(runs, fn):
    times = []
    result = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times), result


def row(workload, size, method, stats, runs):
    med, lo, hi, _ = stats
    print(f"{workload},{size},{method},{med:.9f},{lo:.9f},{hi:.9f},{runs},0",
          flush=True)


def main():
    args = sys.argv[1:]
    runs = 5
    sizes = [5, 50, 500, 1000, 10000, 10000000, 100000000]
    for a in args:
        if a.startswith("--runs="):
            runs = int(a[7:])
        elif a.startswith("--sizes="):
            sizes = [int(x) for x in a[8:].split(",")]
    rng = random.Random(42)
    workers = mp.cpu_count()
    with mp.Pool(workers) as pool:
        for n in sizes:
            data = rng.choices(range(10001), k=n)
            builtin = measure(runs, lambda: sum(data))
            row("sum", n, "python_sum", builtin, runs)

            def pooled():
                tasks = 4 * workers
                step = max(1, -(-n // tasks))
                chunks = [data[i:i + step] for i in range(0, n, step)]
                return sum(pool.map(chunk_sum, chunks))

            pool_stats = measure(runs, pooled)
            if pool_stats[3] != builtin[3]:
                sys.exit(f"python_sum.py: mismatch at {n}")
            row("sum", n, "python_pool", pool_stats, runs)
            del data


if __name__ == "__main__":
    if "--startup" in sys.argv:
        # One Pool, one task: the floor of any multiprocessing solution.
        with mp.Pool() as pool:
            pool.apply(chunk_sum, ([1, 2, 3],))
    else:
        main()
