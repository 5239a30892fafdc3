#!/usr/bin/env python3
"""A distributed database job watched from outside: flow-etl sum --listen
--status (a throwaway PostgreSQL cluster) with one flow-node worker.

Each partition is a task source whose one element is the task's keyed
result, so /status and /metrics report the rows behind it separately
(docs/observability.md, "Partitions read by worker nodes"): while the job
runs, every partition shows the planner's row estimate as an estimated
total, and the job's `tasks` summary sums them; once it ends every task is
done on the worker node, and the rows the tasks read (in /status and in
flow_task_rows_read_total) add up to the rows the program printed. Counters
never go down; with promtool installed each scrape passes `promtool check
metrics`.

With --speculation a second node, node-b, is stuck for ever in its first
partition (FLOW_TEST_STUCK_SEQ=0) while it answers heartbeats: once node-a
is idle the partition runs again there, /status names both nodes ("node-b,
node-a") while the two attempts run, and at the end every task is done on
node-a, whose answers counted.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from scrape import (fail, family, get, monotone, promtool_check, samples,
                    wait_for)

PARTITIONS = 4
ROWS = 200000


# The nodes a running task may show: node-a, or with --speculation node-b
# and, while a second attempt runs, both.
RUNNING_ON = {"node-a"}


def check_running(job):
    """Every partition announces its planner estimate, flagged estimated."""
    tasks = job["tasks"]
    if tasks is None or tasks["count"] != PARTITIONS:
        fail("tasks summary: %r" % tasks)
    for src in job["sources"]:
        t = src["task"]
        if t is None:
            fail("source without its task: %r" % src)
        if t["rows_total"] is None or not t["rows_total_estimated"]:
            fail("partition without an estimated total: %r" % src)
        if t["state"] not in ("queued", "running", "done"):
            fail("task state: %r" % t)
        if t["state"] == "running" and t["node"] not in RUNNING_ON:
            fail("a running task on no node: %r" % t)
    if tasks["rows_total"] != sum(s["task"]["rows_total"]
                                  for s in job["sources"]) \
            or not tasks["rows_total_estimated"]:
        fail("tasks summary total: %r" % tasks)
    acc = job["accounting"]
    if acc["emitted"] != acc["aggregated"] + acc["rejected"] \
            + acc["dead_lettered"] + acc["in_flight"]:
        fail("accounting identity: %r" % acc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flow-etl", required=True)
    ap.add_argument("--flow-node", required=True)
    ap.add_argument("--speculation", action="store_true")
    args = ap.parse_args()
    promtool = shutil.which("promtool")
    if args.speculation:
        RUNNING_ON.update({"node-b", "node-b, node-a"})

    tmp = tempfile.mkdtemp()
    mgr_err = os.path.join(tmp, "manager.stderr")
    node_err = os.path.join(tmp, "node.stderr")
    # The node's reducers are slowed so that the tasks are seen queued and
    # running, not only done.
    node_env = dict(os.environ, FLOW_TEST_REDUCER_DELAY_MS="800")
    extra = []
    if args.speculation:
        # node-b gets the first partition and sticks; node-a's partitions
        # take about 1.2 s, so the second attempt is seen running.
        node_env["FLOW_TEST_REDUCER_DELAY_MS"] = "300"
        extra = ["--min-workers", "2", "--speculation-floor", "300"]
    else:
        extra = ["--min-workers", "1"]
    mgr = subprocess.Popen(
        [args.flow_etl, "sum", "--rows", str(ROWS), "--partitions",
         str(PARTITIONS), "--json", "--listen", "127.0.0.1:0", "--insecure",
         "--status", "127.0.0.1:0", "--status-linger", "10"] + extra,
        stdout=subprocess.PIPE, stderr=open(mgr_err, "w"), text=True)
    node = None
    stuck = None
    try:
        port = wait_for(mgr_err,
                        r"^flow-etl: listening on 127\.0\.0\.1:(\d+)$", mgr,
                        "manager address")
        base = "http://" + wait_for(
            mgr_err, r"status page at http://(127\.0\.0\.1:\d+)/", mgr,
            "status address")
        if args.speculation:
            # First, so that it gets a partition before node-a connects.
            stuck = subprocess.Popen(
                [args.flow_node, "worker", "--connect", "127.0.0.1:" + port,
                 "--insecure", "--reducers", "1", "--name", "node-b",
                 "--log-level", "warn"],
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(tmp, "stuck.stderr"), "w"),
                env=dict(os.environ, FLOW_TEST_STUCK_SEQ="0"))
            time.sleep(0.5)
        node = subprocess.Popen(
            [args.flow_node, "worker", "--connect", "127.0.0.1:" + port,
             "--insecure", "--reducers", "1", "--name", "node-a",
             "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=open(node_err, "w"),
            env=node_env)

        prev = {}
        scrapes = 0
        running_seen = False
        both_seen = False
        final = None
        deadline = time.time() + 240
        while time.time() < deadline:
            # /status first: when it says the job ended, the metrics read
            # after it are final.
            jobs = json.loads(get(base, "/status"))["jobs"]
            text = get(base, "/metrics")
            if promtool:
                promtool_check(promtool, text, "scrape %d" % scrapes)
            xs = samples(text)
            monotone(prev, xs)
            prev = xs
            scrapes += 1
            if jobs:
                job = jobs[-1]
                check_running(job)
                exp = family(xs, "flow_task_rows_expected")
                if len(exp) != PARTITIONS:
                    fail("flow_task_rows_expected: %r" % exp)
                if any(s["task"]["state"] == "running"
                       for s in job["sources"]):
                    running_seen = True
                if any(s["task"]["state"] == "running"
                       and s["task"]["node"] == "node-b, node-a"
                       for s in job["sources"]):
                    both_seen = True
                if job["state"] in ("done", "failed"):
                    final = job
                    break
            if mgr.poll() is not None:
                break
            time.sleep(0.1)
        if final is None:
            fail("the job never ended in /status")
        if final["state"] != "done":
            fail("the job ended %s: %r" % (final["state"], final["errors"]))
        if not running_seen:
            fail("no task was ever seen running")
        if args.speculation and not both_seen:
            fail("no task was ever seen running on both nodes")

        # The ended job's final status and metrics: the scrape that saw it
        # ended came after it (statistics do not change once a job ended),
        # so a loaded machine need not catch the 10 s linger again.
        job = final
        xs = prev

        out, _ = mgr.communicate(timeout=60)
        if mgr.returncode != 0:
            fail("flow-etl exit %d: %s" % (mgr.returncode, out))
        lines = [json.loads(x) for x in out.splitlines() if x.strip()]
        if not lines or not all(x["ok"] for x in lines):
            fail("flow-etl output: %s" % out)
        first = lines[0]
        if first["mode"] != "distributed" \
                or first["node_tasks"] != PARTITIONS:
            fail("not run by the node: %r" % first)
        if args.speculation and (first["speculated"] < 1
                                 or first["speculation_won"] < 1):
            fail("no partition was speculated: %r" % first)
        rows_read = first["rows_read"]
        rows_rejected = first["rows_rejected"]
        check_running(job)
        read = 0
        rejected = 0
        for src in job["sources"]:
            t = src["task"]
            if t["state"] != "done" or t["node"] != "node-a" or t["local"]:
                fail("a task not done by node-a: %r" % src)
            if t["rows_read"] != t["rows_aggregated"] + t["rows_rejected"] \
                    + t["rows_dead_lettered"]:
                fail("a task's rows do not add up: %r" % t)
            if t["rows_read"] == 0:
                fail("a task read no rows: %r" % t)
            read += t["rows_read"]
            rejected += t["rows_rejected"]
        # sum's rows_rejected adds the rows whose value is NULL to the
        # tasks' rejections; init's elements have none.
        if read != rows_read or rejected != rows_rejected:
            fail("tasks read %d rows (%d rejected), the program printed %d "
                 "(%d)" % (read, rejected, rows_read, rows_rejected))
        tasks = job["tasks"]
        if tasks["done"] != PARTITIONS or tasks["rows_read"] != rows_read \
                or tasks["progress"] != 1 or tasks["eta_seconds"] != 0:
            fail("tasks summary at the end: %r" % tasks)
        # The planner's estimate of freshly analysed rows is close.
        if not 0.5 * rows_read <= tasks["rows_total"] <= 2 * rows_read:
            fail("estimated %d rows, read %d" % (tasks["rows_total"],
                                                 rows_read))
        metric_read = family(xs, "flow_task_rows_read_total")
        if len(metric_read) != PARTITIONS \
                or sum(metric_read.values()) != rows_read:
            fail("flow_task_rows_read_total: %r, printed %d"
                 % (metric_read, rows_read))
        nodes = family(xs, "flow_task_node")
        if len(nodes) != PARTITIONS \
                or not all('node="node-a"' in k for k in nodes):
            fail("flow_task_node: %r" % nodes)
        done = {k: v for k, v in family(xs, "flow_task_state").items()
                if 'state="done"' in k}
        if len(done) != PARTITIONS or not all(v == 1 for v in done.values()):
            fail("flow_task_state: %r" % done)
        # The elements are still the tasks' keyed results, as before.
        r = job["result"]
        if r is None or not r["balanced"] or r["sources"] != PARTITIONS:
            fail("result: %r" % r)
        print("ok: %d scrapes, %d rows read by %d tasks on node-a "
              "(estimated %d)%s%s" % (scrapes + 1, rows_read, PARTITIONS,
                                      tasks["rows_total"],
                                      "" if promtool else ", no promtool",
                                      ", node-b stuck and overtaken"
                                      if args.speculation else ""))
        return 0
    finally:
        for p in (mgr, node, stuck):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    sys.exit(main())
