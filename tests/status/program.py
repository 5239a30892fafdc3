#!/usr/bin/env python3
"""flow-sum --status, watched from outside as an operator would.

--mode program: runs a job slowed on purpose (FLOW_TEST_REDUCER_DELAY_MS),
scrapes /metrics several times (counters never go down), reads /status,
checks the --progress lines on stderr (not a terminal) and compares the final
metrics and status with the result the program printed.

--mode promtool: the same job; every scrape must pass `promtool check
metrics`. Exits 77 (ctest: SKIPPED) when promtool is not installed.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

SKIP = 77


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def get(base, path):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return r.status, r.headers, r.read().decode("utf-8")


def samples(text):
    """{'name{labels}': value} of a metrics text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def total(xs, prefix):
    return sum(v for k, v in xs.items() if k.startswith(prefix))


def start(flow_sum, size, extra_env):
    env = dict(os.environ)
    env.update(extra_env)
    err = tempfile.NamedTemporaryFile("w+", suffix=".stderr", delete=False)
    proc = subprocess.Popen(
        [flow_sum, "--json", "--sizes", str(size), "--batch", "50000",
         "--reducers", "2", "--status", "127.0.0.1:0", "--status-linger",
         "20", "--progress", "0.5"],
        stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        with open(err.name) as f:
            m = re.search(r"status page at http://(127\.0\.0\.1:\d+)/",
                          f.read())
        if m:
            return proc, "http://" + m.group(1), err.name
        if proc.poll() is not None:
            fail("flow-sum ended before printing the status address")
        time.sleep(0.05)
    proc.kill()
    fail("no status address on stderr within 30 s")


def monotone(before, after):
    for k, v in after.items():
        if ("_total" in k or "_bucket" in k or "_count" in k) \
                and k in before and v < before[k]:
            fail("counter went down: %s %s -> %s" % (k, before[k], v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["program", "promtool"],
                    required=True)
    ap.add_argument("--flow-sum", required=True)
    args = ap.parse_args()
    promtool = shutil.which("promtool")
    if args.mode == "promtool" and promtool is None:
        print("SKIPPED: promtool is not installed (Debian: prometheus; "
              "scripts/setup.sh installs it)")
        return SKIP

    size = 3000000
    proc, base, err_path = start(args.flow_sum, size,
                                 {"FLOW_TEST_REDUCER_DELAY_MS": "80"})
    try:
        scrapes = []
        last = {}
        state = "running"
        deadline = time.time() + 120
        while state not in ("done", "failed") and time.time() < deadline:
            status, headers, text = get(base, "/metrics")
            if status != 200:
                fail("/metrics answered %d" % status)
            if "version=0.0.4" not in headers.get("Content-Type", ""):
                fail("/metrics content type: " + headers.get("Content-Type"))
            now = samples(text)
            monotone(last, now)
            last = now
            scrapes.append(text)
            if promtool:
                p = subprocess.run([promtool, "check", "metrics"],
                                   input=text, capture_output=True,
                                   text=True)
                if p.returncode != 0:
                    fail("promtool check metrics: " + p.stdout + p.stderr)
            _, _, st = get(base, "/status")
            doc = json.loads(st)
            job = doc["jobs"][0] if doc["jobs"] else None
            if job:
                state = job["state"]
                a = job["accounting"]
                if a["emitted"] != a["aggregated"] + a["rejected"] + \
                        a["dead_lettered"] + a["in_flight"]:
                    fail("accounting identity broken in /status: %r" % a)
            time.sleep(0.3)
        if state != "done":
            fail("the job did not end within 120 s (state %s)" % state)
        if len(scrapes) < 3:
            fail("only %d scrapes while the job ran" % len(scrapes))
        if args.mode == "promtool":
            print("promtool: %d scrapes clean" % len(scrapes))
            return 0
        printed = json.loads(proc.stdout.readline())
        final = samples(get(base, "/metrics")[2])
        monotone(last, final)
        for metric, field in [("flow_elements_emitted_total{", "emitted"),
                              ("flow_elements_aggregated_total{",
                               "aggregated"),
                              ("flow_elements_rejected_total{", "rejected"),
                              ("flow_elements_dead_lettered_total{",
                               "dead_lettered"),
                              ("flow_batches_merged_total{", "batches")]:
            if total(final, metric) != printed[field]:
                fail("%s %s != printed %s %s" % (metric, total(final, metric),
                                                  field, printed[field]))
        job = json.loads(get(base, "/status")[2])["jobs"][0]
        result = job["result"]
        if result is None or not result["final"]:
            fail("no final result in /status: %r" % job)
        if result["keys"][0]["sum"] != str(printed["sum"]):
            fail("sum in /status %s != printed %s" %
                 (result["keys"][0]["sum"], printed["sum"]))
        if job["accounting"]["emitted"] != printed["emitted"] or \
                job["progress"] != 1.0 or job["sources"][0]["total"] != size:
            fail("final /status disagrees with the printed result: %r" % job)
        with open(err_path) as f:
            progress = [l for l in f.read().splitlines()
                        if l.startswith("size %d: " % size)]
        if len(progress) < 2:
            fail("expected --progress lines on stderr, got %r" % progress)
        print("ok: %d scrapes, %d progress lines, final values equal the "
              "printed result" % (len(scrapes), len(progress)))
        return 0
    finally:
        proc.kill()
        proc.wait()
        os.unlink(err_path)


if __name__ == "__main__":
    sys.exit(main())
