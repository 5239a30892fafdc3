#!/usr/bin/env python3
"""Turns bench/results/bench.csv into the Markdown tables of
docs/benchmarks.md (medians and ratios).  usage: report.py CSV"""
import csv
import sys
from collections import defaultdict


def fmt_s(x):
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.2f} ms"
    return f"{x * 1e6:.1f} µs"


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    by = defaultdict(dict)
    for r in rows:
        by[(r["workload"], int(r["size"]))][r["method"]] = r

    print("### Example 1: sum of n int64 in memory\n")
    methods = ["loop", "accumulate", "tbb", "naive_caf", "libflow",
               "python_sum", "python_pool"]
    print("| n | " + " | ".join(methods)
          + " | libflow / tbb | python_pool / libflow |")
    print("|---:|" + "---:|" * (len(methods) + 2))
    for (w, n), ms in sorted(by.items()):
        if w != "sum":
            continue
        cells = [fmt_s(float(ms[m]["median_s"])) if m in ms else "–"
                 for m in methods]
        lf = float(ms["libflow"]["median_s"]) if "libflow" in ms else None
        r1 = (f"{lf / float(ms['tbb']['median_s']):.2f}×"
              if lf and "tbb" in ms else "–")
        r2 = (f"{float(ms['python_pool']['median_s']) / lf:.0f}×"
              if lf and "python_pool" in ms else "–")
        print(f"| {n:,} | " + " | ".join(cells) + f" | {r1} | {r2} |")

    print("\n### Example 2: the tutorial's three sets, generation included\n")
    print("| set | elements | sequential loop | oneTBB | libflow "
          "| loop / libflow | libflow / tbb |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for (w, n), ms in sorted(by.items()):
        if w != "keyed":
            continue
        loop = float(ms["loop"]["median_s"])
        tbb = float(ms["tbb"]["median_s"])
        lf = float(ms["libflow"]["median_s"])
        elems = int(float(ms["loop"]["extra"]))
        print(f"| {n} | {elems:,} | {fmt_s(loop)} | {fmt_s(tbb)} | "
              f"{fmt_s(lf)} | {loop / lf:.2f}× | {lf / tbb:.2f}× |")

    print("\n### A reducer with real work (64 mixer rounds per element)\n")
    print("| method | time | elements/s per core |")
    print("|---|---:|---:|")
    for (w, n), ms in sorted(by.items()):
        if w != "work":
            continue
        for m in ("loop", "tbb", "libflow"):
            if m in ms:
                print(f"| {m} | {fmt_s(float(ms[m]['median_s']))} | "
                      f"{float(ms[m]['extra']) / 1e6:.1f} M |")

    print("\n### Per-batch overhead (2^20 elements)\n")
    print("| batch size | batches | time (sharing) | overhead per batch "
          "(sharing) | time (stealing) | overhead per batch (stealing) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for (w, n), ms in sorted(by.items(), key=lambda kv: -kv[0][1]):
        if w != "overhead":
            continue
        batches = -(-(1 << 20) // n)
        cells = []
        for m in ("libflow", "libflow_stealing"):
            r = ms.get(m)
            if not r:
                cells += ["–", "–"]
                continue
            extra = float(r["extra"])
            cells += [fmt_s(float(r["median_s"])),
                      "–" if n == 65536 else f"{extra:.0f} ns"]
        print(f"| {n:,} | {batches:,} | " + " | ".join(cells) + " |")

    print("\n### Latency and whole processes\n")
    print("| figure | median | min | max | runs |")
    print("|---|---:|---:|---:|---:|")
    for (w, n), ms in sorted(by.items()):
        if w not in ("small", "process"):
            continue
        for m, r in ms.items():
            name = {"libflow": "5-element job in a running actor system",
                    "libflow_stealing":
                        "5-element job, work-stealing scheduler",
                    "flow_sum_process": "whole `flow-sum --sizes 5` process",
                    "python_pool_process":
                        "whole Python process: start a Pool, run one task"
                    }.get(m, m)
            print(f"| {name} | {fmt_s(float(r['median_s']))} | "
                  f"{fmt_s(float(r['min_s']))} | {fmt_s(float(r['max_s']))} "
                  f"| {r['runs']} |")

    print("\n### Peak memory (RSS) against input length\n")
    print("| program | elements | peak RSS | wall |")
    print("|---|---:|---:|---:|")
    for (w, n), ms in sorted(by.items()):
        if w != "memory":
            continue
        for m, r in ms.items():
            name = {"flow_keyed_random": "`flow-keyed --sizes N` (random generator)",
                    "flow_sum_stdin": "`yes 1234 | head -n N | flow-sum --input -`"
                    }.get(m, m)
            print(f"| {name} | {n:,} | {float(r['extra']) / 1024:.1f} MiB | "
                  f"{fmt_s(float(r['median_s']))} |")


if __name__ == "__main__":
    main()
