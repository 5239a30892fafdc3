#!/usr/bin/env python3
"""The tutorial's keyed sums over elements, the way a Python user would write
them with psycopg2: one server-side cursor streaming (list_size, list_id,
value), or multiprocessing over ranges of `value` (one connection each).
Prints one JSON line: {"mode", "seconds", "rows", "keys"}.

usage: etl_psycopg2.py DSN cursor|multi [PROCESSES]
"""
import json
import multiprocessing
import sys
import time

import psycopg2

QUERY = "SELECT list_size, list_id, value FROM elements"


def fold(rows, sums, counts, lists):
    for size, list_id, value in rows:
        sums[size] = sums.get(size, 0) + value
        counts[size] = counts.get(size, 0) + 1
        lists.setdefault(size, set()).add(list_id)


def read(dsn, where=""):
    sums, counts, lists = {}, {}, {}
    conn = psycopg2.connect(dsn)
    with conn:
        with conn.cursor(name="flow_bench") as cur:  # server-side cursor
            cur.itersize = 65536
            cur.execute(QUERY + where)
            while True:
                rows = cur.fetchmany(65536)
                if not rows:
                    break
                fold(rows, sums, counts, lists)
    conn.close()
    return sums, counts, lists


def part(args):
    dsn, lo, hi = args
    where = " WHERE value >= %d" % lo if lo is not None else " WHERE true"
    if hi is not None:
        where += " AND value < %d" % hi
    return read(dsn, where)


def main():
    dsn, mode = sys.argv[1], sys.argv[2]
    procs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    start = time.perf_counter()
    if mode == "cursor":
        sums, counts, lists = read(dsn)
    else:
        conn = psycopg2.connect(dsn)
        cur = conn.cursor()
        qs = ",".join(str(i / procs) for i in range(1, procs))
        cur.execute("SELECT percentile_disc(ARRAY[%s]::float8[]) WITHIN GROUP "
                    "(ORDER BY value) FROM elements TABLESAMPLE SYSTEM (1)" % qs)
        bounds = sorted(set(cur.fetchone()[0] or []))
        conn.close()
        edges = [None] + bounds + [None]
        ranges = [(dsn, edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
        sums, counts, lists = {}, {}, {}
        with multiprocessing.Pool(len(ranges)) as pool:
            for s, c, l in pool.map(part, ranges):
                for k in s:
                    sums[k] = sums.get(k, 0) + s[k]
                    counts[k] = counts.get(k, 0) + c[k]
                    lists.setdefault(k, set()).update(l[k])
    seconds = time.perf_counter() - start
    print(json.dumps({"mode": mode, "seconds": seconds,
                      "rows": sum(counts.values()), "keys": len(sums)}))


if __name__ == "__main__":
    main()
