#!/usr/bin/env python3
"""flow-etl clean --status, whose metrics carry output-table labels,
scraped while it runs and after it ended.

Every scrape must pass `promtool check metrics` without a word; counters
never go down; at the end flow_rows_written_total{table=...} equals, table by
table, the rows the program's JSON says it wrote (clean, rejected, cities),
as do /status's `outputs`, and the elements' counters its accounting.
The database is a throwaway cluster kept by `flow-etl init --keep`, reached
as a role with a password (given in --db): no scrape, /status or page may
hold that password. Exits 77 (ctest: SKIPPED) when promtool is missing.
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

from scrape import fail, family, get, monotone, promtool_check, samples

SKIP = 77
ADS = 50000
# Distinctive, so that a leak anywhere in a scrape is found.
PASSWORD = "Obs-pw-7Qx9Zk"
ROLE = "flow_obs"


def check_scrape(promtool, text, where):
    promtool_check(promtool, text, where)
    if PASSWORD in text:
        fail("the password in a scrape (%s)" % where)


def kept_cluster(flow_etl, tmp):
    """A throwaway cluster filled by init and kept: its connection string
    and the command that stops and removes it."""
    err = os.path.join(tmp, "init.stderr")
    r = subprocess.run([flow_etl, "init", "--keep", "--rows", "1000",
                        "--ads", str(ADS)],
                       stdout=subprocess.DEVNULL, stderr=open(err, "w"),
                       timeout=300)
    text = open(err).read()
    conninfo = re.search(r"--db '([^']+)'", text)
    stop = re.search(r"stop and remove it with: (.+)$", text, re.M)
    if r.returncode != 0 or not conninfo or not stop:
        fail("flow-etl init --keep (rc %d): %s" % (r.returncode, text))
    return conninfo.group(1), stop.group(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flow-etl", required=True)
    args = ap.parse_args()
    promtool = shutil.which("promtool")
    psql = shutil.which("psql")
    if not promtool:
        print("SKIPPED: promtool is not installed "
              "(Debian: prometheus; scripts/setup.sh installs it)")
        return SKIP
    if not psql:
        print("SKIPPED: psql is not installed (postgresql-client)")
        return SKIP

    tmp = tempfile.mkdtemp()
    conninfo, stop = kept_cluster(args.flow_etl, tmp)
    proc = None
    try:
        # A role that needs its password (scram-sha-256 on the socket):
        # the superuser's own trust would make the password moot.
        subprocess.run([psql, conninfo, "-v", "ON_ERROR_STOP=1", "-q", "-c",
                        "CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'"
                        % (ROLE, PASSWORD)],
                       check=True, stdout=subprocess.DEVNULL)
        # Later keywords win in a libpq connection string.
        db = "%s user=%s password=%s" % (conninfo, ROLE, PASSWORD)
        err = os.path.join(tmp, "clean.stderr")
        proc = subprocess.Popen(
            [args.flow_etl, "clean", "--db", db, "--ads", str(ADS),
             "--partitions", "4", "--batch", "1000", "--reducers", "1",
             "--status", "127.0.0.1:0",
             "--status-linger", "15", "--json"],
            stdout=subprocess.PIPE, stderr=open(err, "w"), text=True,
            env=dict(os.environ, FLOW_TEST_REDUCER_DELAY_MS="100"))
        base = None
        deadline = time.time() + 300
        while time.time() < deadline and base is None:
            m = re.search(r"status page at http://(127\.0\.0\.1:\d+)/",
                          open(err).read())
            if m:
                base = "http://" + m.group(1)
            elif proc.poll() is not None:
                fail("flow-etl clean ended early: " + open(err).read())
            else:
                time.sleep(0.05)
        if base is None:
            fail("no status address within 300 s")

        prev = {}
        scrapes = 0
        running = 0
        ended = 0
        # While it runs, then up to three times after the job ended while
        # the server lingers (15 s; on a loaded machine perhaps only once):
        # every scrape checked. /status first: when it says the job ended,
        # the metrics read after it are final.
        deadline = time.time() + 300
        while ended < 3 and time.time() < deadline:
            try:
                status = get(base, "/status")
                text = get(base, "/metrics")
            except OSError:
                if ended > 0:
                    break  # the linger is over
                raise
            check_scrape(promtool, text, "scrape %d" % scrapes)
            if PASSWORD in status:
                fail("the password in /status")
            xs = samples(text)
            monotone(prev, xs)
            prev = xs
            scrapes += 1
            jobs = json.loads(status)["jobs"]
            if jobs and jobs[-1]["state"] == "running":
                running += 1
            elif jobs and jobs[-1]["state"] in ("done", "failed"):
                ended += 1
                job = jobs[-1]
            if proc.poll() is not None:
                if ended > 0:
                    break
                fail("flow-etl clean exited before its job ended in "
                     "/status: " + open(err).read())
            time.sleep(0.2)
        if ended == 0:
            fail("the job did not end within 300 s")
        if job["state"] != "done":
            fail("final state: %r %r" % (job["state"], job["errors"]))
        try:
            page = get(base, "/")
        except OSError:
            page = ""  # the linger is over; the page is a constant anyway
        if PASSWORD in page:
            fail("the password in /")
        # Its reducers are slowed to at least 5 s: one scrape lands while it
        # runs even on a starved machine (yes x2 left room for just one).
        if running < 1:
            fail("no scrape while the job ran")
        out, _ = proc.communicate(timeout=60)
        if proc.returncode != 0:
            fail("flow-etl clean exit %d: %s %s"
                 % (proc.returncode, out, open(err).read()))
        res = json.loads(out.strip().splitlines()[-1])
        if not res["ok"] or res["ads"] != ADS:
            fail("flow-etl clean output: %s" % out)

        written = family(xs, "flow_rows_written_total")
        tables = {re.search(r'table="([^"]*)"', k).group(1): v
                  for k, v in written.items() if 'table="' in k}
        # The copy_sink writes ads_clean, ads_rejects and ads_summary in one
        # transaction and reports each table's rows: one series per table,
        # the summary's rows (written at the commit) included.
        want = {"ads_clean": res["clean"], "ads_rejects": res["rejected"],
                "ads_summary": res["cities"]}
        if len(tables) != 3:
            fail("flow_rows_written_total: %r" % written)
        outputs = {o["table"]: o["written"] for o in job["outputs"]}
        for t, n in want.items():
            label = [x for x in tables if x.split(".")[-1] == t]
            if len(label) != 1:
                fail("no single series for %s in %r" % (t, written))
            if tables[label[0]] != n:
                fail("flow_rows_written_total{table=%r} = %d, the program "
                     "wrote %d" % (label[0], tables[label[0]], n))
            if outputs.get(label[0]) != n:
                fail("/status outputs %r, the program wrote %d to %s"
                     % (outputs, n, t))
        rows = res["written"]
        label = ", ".join(sorted(tables))
        # Every ad is a row of ads_clean or of ads_rejects; the per-city
        # summary rows are written at the commit, not counted in the job's
        # `written` (rows of merged batches).
        if res["written"] != res["clean"] + res["rejected"] \
                or res["written"] != job["written"]:
            fail("written %d (/status %d) != clean %d + rejected %d"
                 % (res["written"], job["written"], res["clean"],
                    res["rejected"]))
        emitted = sum(family(xs, "flow_elements_emitted_total").values())
        if emitted != res["emitted"] or emitted != ADS:
            fail("flow_elements_emitted_total %d, printed %d"
                 % (emitted, res["emitted"]))
        rejected = sum(family(xs, "flow_rejections_total").values())
        if rejected != res["rejected"]:
            fail("flow_rejections_total %d, printed rejected %d"
                 % (rejected, res["rejected"]))
        print("ok: %d scrapes (%d while running) clean under promtool; "
              "%d rows written (%d clean, %d rejected, %d cities) under %r"
              % (scrapes, running, rows, res["clean"], res["rejected"],
                 res["cities"], label))
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(stop, shell=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
