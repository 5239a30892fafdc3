#!/usr/bin/env python3
"""A soak: repeats jobs for SECONDS while injecting faults at random, and
checks every result against a reference run without faults.

Jobs (in turn):
  keyed  flow-keyed (1 us of work per element) with two worker nodes
         (flow-node, mutual TLS on loopback);
  sum    flow-etl sum --listen with two worker nodes reading partitions;
  clean  flow-etl clean (in process, resumable: it reconnects by itself);
  dclean flow-etl clean --listen with two worker nodes (flow-node --rejoin)
         staging partitions in flow_dist.
Faults (one per job, chosen at random, at a random moment while it runs):
  kill        SIGKILL of a worker node (keyed, sum, dclean);
  stop        a worker node stopped for 1 to 3 s, then continued (keyed, sum,
              dclean);
  terminate   pg_terminate_backend of every connection of the job (clean);
  cut         the link of a worker node cut (set down: every packet
              dropped) for 1 to 8 s, then restored (keyed, sum, dclean; the
              heartbeat timeout is 5 s, so the node is declared lost in some
              runs and not in others). Needs network namespaces (root): for
              these jobs the manager and the other node run in one
              namespace and the victim in another, joined by a veth pair
              (10.79.0.1 <-> 10.79.0.2, inside the namespaces only; the
              database is reached through its unix socket). Without them
              the soak says so in one line and injects no cuts;
  manager     SIGKILL of the manager (dclean), then the same command with
              --resume on the same address, which the nodes join again (if
              the killed run had recorded nothing yet, the command without
              --resume, as a user would); counted as manager-resumed when
              partitions the killed run's nodes had committed were kept;
  none        no fault.
Prints the jobs, the faults of each kind that hit a running job, the
mismatches (a result that differs from the reference, or a job that
failed) and the staging tables left in flow_dist after the last job (a
node still writing when its manager was killed commits an orphan the next
run drops; none may be left of a run that ended); exits 1 when there is a
mismatch or a table of a finished run is left. A distributed clean that
leaves its plan behind is a mismatch of that job (checked after each one);
with --keep-logs DIR the managers' logs of every job that goes wrong are
copied to DIR.

  scripts/soak.sh SECONDS [--bin DIR] [--seed N] [--keep-logs DIR]
                                          (default DIR: build/release/apps)
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Link:
    """Two network namespaces joined by a veth pair: `m` (10.79.0.1, the
    manager and the other node) and `v` (10.79.0.2, the victim node)."""

    def __init__(self):
        tag = "fs%d" % (os.getpid() % 100000)
        self.ns = {"m": tag + "m", "v": tag + "v"}
        self.dev = {"m": tag + "mv", "v": tag + "vm"}
        self.made = []

    @staticmethod
    def ip(*args, check=True):
        return subprocess.run(["ip"] + list(args), check=check,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)

    def create(self):
        """None, or why the namespaces cannot be made."""
        if shutil.which("ip") is None:
            return "the ip command (iproute2) is missing"
        for name in self.ns.values():
            r = self.ip("netns", "add", name, check=False)
            if r.returncode != 0:
                self.delete()
                return "cannot create network namespaces (%s)" % \
                    r.stderr.strip()
            self.made.append(name)
            self.ip("-n", name, "link", "set", "lo", "up")
        self.ip("link", "add", self.dev["m"], "netns", self.ns["m"], "type",
                "veth", "peer", "name", self.dev["v"], "netns", self.ns["v"])
        for side, addr in [("m", "10.79.0.1/30"), ("v", "10.79.0.2/30")]:
            self.ip("-n", self.ns[side], "addr", "add", addr, "dev",
                    self.dev[side])
            self.ip("-n", self.ns[side], "link", "set", self.dev[side], "up")
        return None

    def delete(self):
        for name in self.made:
            self.ip("netns", "del", name, check=False)
        self.made = []

    def exec(self, side):
        return ["ip", "netns", "exec", self.ns[side]]

    def set(self, up):
        state = "up" if up else "down"
        for side in ["m", "v"]:
            self.ip("-n", self.ns[side], "link", "set", self.dev[side],
                    state)


class Soak:
    def __init__(self, bin_dir, seed):
        self.bin = bin_dir
        self.rng = random.Random(seed)
        self.tmp = tempfile.mkdtemp(prefix="flow-soak-")
        self.db = None
        self.stop_db = None
        self.jobs = 0
        self.faults = {}
        self.mismatches = []
        self.ref = {}
        self.link = None
        self.no_cut = None
        self.keep = None
        self.managers = 0
        self.job_logs = []

    # -- set-up ------------------------------------------------------------

    def start(self):
        link = Link()
        self.no_cut = link.create()
        if self.no_cut is None:
            self.link = link
        else:
            print("soak: no cut links: %s" % self.no_cut, flush=True)
        subprocess.run(["bash", os.path.join(ROOT, "scripts/make-certs.sh"),
                        self.tmp, "manager", "w1", "w2"], check=True,
                       stdout=subprocess.DEVNULL)
        r = subprocess.run([self.prog("flow-etl"), "init", "--rows", "300000",
                            "--ads", "20000", "--keep"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, check=True)
        self.db = re.search(r"^  --db '(.*)'$", r.stderr, re.M).group(1)
        self.stop_db = re.search(r"^  stop and remove it with: (.*)$",
                                 r.stderr, re.M).group(1)
        # The references: the same jobs without faults.
        self.ref["keyed"] = self.keyed_sums(self.run_local_keyed())
        out = subprocess.run([self.prog("flow-etl"), "sum", "--db", self.db,
                              "--partitions", "4", "--json"],
                             stdout=subprocess.PIPE, text=True, check=True)
        self.ref["sum"] = self.etl_sums(out.stdout)
        self.run_clean(None)
        self.ref["clean"] = self.clean_digest()

    def finish(self):
        if self.link is not None:
            self.link.delete()
        if self.stop_db:
            subprocess.run(self.stop_db, shell=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def prog(self, name):
        return os.path.join(self.bin, name)

    def tls(self, who):
        return ["--cert", "%s/%s.pem" % (self.tmp, who), "--key",
                "%s/%s.key" % (self.tmp, who), "--ca", self.tmp + "/ca.pem"]

    def psql(self, sql):
        return subprocess.run(["psql", self.db, "-Atc", sql],
                              stdout=subprocess.PIPE, text=True,
                              check=True).stdout.strip()

    # -- results -------------------------------------------------------------

    KEYED = ["--sizes", "1500000,1000000", "--json", "--batch", "16384"]

    def run_local_keyed(self):
        return subprocess.run([self.prog("flow-keyed")] + self.KEYED,
                              stdout=subprocess.PIPE, text=True,
                              check=True).stdout

    @staticmethod
    def keyed_sums(out):
        xs = [json.loads(l) for l in out.splitlines() if l.strip()]
        return sorted((x["key"], x["sum"], x["elements"], x["ok"])
                      for x in xs)

    @staticmethod
    def etl_sums(out):
        xs = [json.loads(l) for l in out.splitlines() if l.strip()]
        return sorted((x["key"], x["sum"], x["lists"], x["elements"],
                       x["ok"]) for x in xs)

    def clean_digest(self):
        return self.psql(
            "SELECT (SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM "
            "ads_clean x) || (SELECT md5(string_agg(x::text, ',' ORDER BY "
            "id)) FROM ads_rejects x) || (SELECT md5(string_agg(x::text, "
            "',' ORDER BY city)) FROM ads_summary x)")

    # -- jobs ---------------------------------------------------------------

    def start_manager(self, manager_cmd, at="127.0.0.1:0", prefix=()):
        """Starts a manager listening at `at` (`prefix`: the command it runs
        under, e.g. `ip netns exec`); returns it, the file of its stderr and
        its port (None when it printed none)."""
        # One file per manager, so a resumed manager's log does not replace
        # the killed one's (both are kept when the job goes wrong).
        self.managers += 1
        err = os.path.join(self.tmp, "manager-%d.err" % self.managers)
        self.job_logs.append(err)
        # Log level info: the nodes' joins are in the logs kept of a job
        # that goes wrong.
        mgr = subprocess.Popen(list(prefix) + manager_cmd + ["--listen", at,
                                              "--min-workers", "2",
                                              "--log-level", "info"]
                               + self.tls("manager"),
                               stdout=subprocess.PIPE,
                               stderr=open(err, "w"), text=True)
        port = None
        deadline = time.time() + 60
        while port is None and time.time() < deadline:
            with open(err) as f:
                m = re.search(r"listening on [0-9.]+:(\d+)$", f.read(),
                              re.M)
            if m:
                port = m.group(1)
            elif mgr.poll() is not None:
                break
            time.sleep(0.05)
        return mgr, err, port

    def with_nodes(self, manager_cmd, fault):
        """Runs a manager and two worker nodes; injects `fault` into one
        node, or (`manager`) into the manager, at a random moment. Returns
        (rc, stdout, stderr, hit)."""
        cut = fault == "cut"
        host = "10.79.0.1" if cut else "127.0.0.1"
        mgr, err, port = self.start_manager(
            manager_cmd, host + ":0", self.link.exec("m") if cut else ())
        # A cut isolates w2's namespace from the manager's.
        where = {"w1": self.link.exec("m") if cut else [],
                 "w2": self.link.exec("v") if cut else []}

        def node(w):
            return subprocess.Popen(
                where[w] + [self.prog("flow-node"), "worker", "--connect",
                 host + ":" + port, "--reducers", "1", "--name", w,
                 "--log-level", "error"] + self.tls(w)
                + (["--rejoin", "30"] if fault == "manager" else []),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        names = ["w1", "w2"]
        nodes = [node(w) for w in names] if port else []

        def supervised(mgr):
            """Waits for `mgr`; a node that exits meanwhile is replaced by a
            new one, as a supervisor would (a node that had not joined yet
            when its manager died does not try again: --rejoin is for nodes
            that had joined)."""
            deadline = time.time() + 300
            while mgr.poll() is None and time.time() < deadline:
                nodes[:] = [n if n.poll() is None else node(w)
                            for n, w in zip(nodes, names)]
                time.sleep(0.2)
            if mgr.poll() is None:
                mgr.kill()
            return mgr.communicate()[0]
        out = None
        hit = False
        victim = (nodes[1] if cut else self.rng.choice(nodes)) \
            if nodes else None
        if fault == "manager" and port:
            # A distributed clean of 20000 ads takes about 0.5 s once both
            # nodes have joined.
            time.sleep(self.rng.uniform(0.05, 0.6))
            if mgr.poll() is None:
                hit = True
                mgr.kill()
                mgr.wait()
                mgr, err, _ = self.start_manager(
                    manager_cmd + ["--resume"], "127.0.0.1:" + port)
                out = supervised(mgr)
                with open(err) as f:
                    text = f.read()
                if mgr.returncode == 2 and "no interrupted" in text:
                    # Killed before it recorded anything: run it again.
                    mgr, err, _ = self.start_manager(manager_cmd,
                                                     "127.0.0.1:" + port)
                    out = supervised(mgr)
        elif fault != "none" and victim is not None:
            # The fault is meant for a node taking part in the job. Under
            # load a node can take longer than the delay to join, and a node
            # killed before the job started never comes back (nothing
            # supervises it here), so the manager would rightly wait for its
            # second node until --min-workers-timeout: wait for the job's
            # start first. When joins are quick the delay is as before.
            start = time.time()
            delay = self.rng.uniform(0.3, 1.2)
            self.wait_started(mgr, err)
            time.sleep(max(0.0, start + delay - time.time()))
            if mgr.poll() is None and victim.poll() is None:
                hit = True
                if fault == "kill":
                    victim.kill()
                elif cut:
                    self.link.set(False)
                    try:
                        time.sleep(self.rng.uniform(1.0, 8.0))
                    finally:
                        self.link.set(True)
                else:
                    victim.send_signal(signal.SIGSTOP)
                    time.sleep(self.rng.uniform(1.0, 3.0))
                    victim.send_signal(signal.SIGCONT)
        if out is None:
            try:
                out, _ = mgr.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                mgr.kill()
                out, _ = mgr.communicate()
        for n in nodes:
            if fault == "manager" and n.poll() is None:
                # --rejoin: it would wait 30 s for a manager to come back.
                n.kill()
            if n.poll() is None:
                try:
                    n.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    n.kill()
                    n.wait()
        with open(err) as f:
            return mgr.returncode, out, f.read(), hit

    @staticmethod
    def wait_started(mgr, err, timeout=60):
        """Waits until the manager (stderr in `err`) says its wait for
        --min-workers is over, or exits, or `timeout` seconds pass."""
        deadline = time.time() + timeout
        while time.time() < deadline and mgr.poll() is None:
            with open(err) as f:
                if "worker nodes connected, starting" in f.read():
                    return
            time.sleep(0.05)

    def run_clean(self, fault):
        cmd = [self.prog("flow-etl"), "clean", "--db", self.db,
               "--partitions", "3", "--json"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        hit = False
        if fault == "terminate":
            time.sleep(self.rng.uniform(0.1, 0.6))
            if p.poll() is None:
                n = self.psql("SELECT count(pg_terminate_backend(pid)) FROM "
                              "pg_stat_activity WHERE pid <> "
                              "pg_backend_pid() AND datname = "
                              "current_database() AND backend_type = "
                              "'client backend'")
                hit = int(n) > 0 and p.poll() is None
        out, err = p.communicate(timeout=300)
        return p.returncode, out, err, hit

    def cuts(self):
        """The cut fault, where namespaces could be made."""
        return ["cut"] if self.link is not None else []

    def plans_left(self):
        """The plans in flow_dist: none may be left once a run ended."""
        return self.psql("SELECT string_agg(tablename, ' ') FROM pg_tables "
                         "WHERE schemaname = 'flow_dist' AND tablename LIKE "
                         "'%\\_plan'")

    def one(self, kind):
        self.job_logs = []
        if kind == "clean":
            fault = self.rng.choice(["terminate", "none"])
            rc, out, err, hit = self.run_clean(fault)
            got = self.clean_digest() if rc == 0 else None
        elif kind == "dclean":
            fault = self.rng.choice(["manager", "manager", "kill", "stop",
                                     "none"] + self.cuts())
            rc, out, err, hit = self.with_nodes(
                [self.prog("flow-etl"), "clean", "--db", self.db,
                 "--partitions", "4", "--json"], fault)
            got = self.clean_digest() if rc == 0 else None
        elif kind == "keyed":
            fault = self.rng.choice(["kill", "stop", "none"] + self.cuts())
            rc, out, err, hit = self.with_nodes(
                [self.prog("flow-keyed")] + self.KEYED
                + ["--reducer", "spin", "--reducers", "1",
                   "--speculation-floor", "500"], fault)
            got = self.keyed_sums(out) if rc == 0 else None
        else:
            fault = self.rng.choice(["kill", "stop", "none"] + self.cuts())
            rc, out, err, hit = self.with_nodes(
                [self.prog("flow-etl"), "sum", "--db", self.db,
                 "--partitions", "4", "--json", "--speculation-floor", "500"],
                fault)
            got = self.etl_sums(out) if rc == 0 else None
        self.jobs += 1
        name = fault if hit else "none"
        if name == "manager" and rc == 0 and json.loads(out).get(
                "resumed_ads", 0) > 0:
            # Resumed with partitions the killed run's nodes had committed
            # (else it was killed before any, and resumed or run again from
            # the start).
            name = "manager-resumed"
        self.faults[name] = self.faults.get(name, 0) + 1
        bad = []
        if got != self.ref["clean" if kind == "dclean" else kind]:
            bad.append(
                "%s with fault %s: rc %d, %s" % (
                    kind, name, rc,
                    "result differs" if rc == 0
                    else (err.strip().splitlines() or ["?"])[-1]))
        # A run that ended leaves no plan (checked after each job, so a
        # leftover is pinned to the job that left it).
        plans = self.plans_left() if kind == "dclean" else ""
        if plans:
            bad.append("%s with fault %s: rc %d, left %s in flow_dist"
                       % (kind, name, rc, plans))
        if bad and self.keep:
            # The managers' logs of this job, for the diagnosis.
            os.makedirs(self.keep, exist_ok=True)
            for i, f in enumerate(self.job_logs):
                shutil.copy(f, os.path.join(
                    self.keep, "job%d-manager%d.err" % (self.jobs, i + 1)))
            bad = [b + " (logs: %s/job%d-*)" % (self.keep, self.jobs)
                   for b in bad]
        self.mismatches += bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("seconds", type=float)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/release/apps"))
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--keep-logs", metavar="DIR",
                    help="copy the managers' logs of a job that goes wrong "
                    "to DIR")
    args = ap.parse_args()
    soak = Soak(args.bin, args.seed)
    soak.keep = args.keep_logs
    try:
        soak.start()
        end = time.time() + args.seconds
        kinds = ["keyed", "sum", "clean", "dclean"]
        i = 0
        while time.time() < end:
            soak.one(kinds[i % len(kinds)])
            i += 1
        # Every run ended: no plan may be left (a partition a node
        # committed after its manager was killed may, until the next run).
        left = soak.psql("SELECT count(*) FROM pg_tables WHERE schemaname "
                         "= 'flow_dist'") if soak.db else "0"
        plans = soak.psql("SELECT count(*) FROM pg_tables WHERE schemaname "
                          "= 'flow_dist' AND tablename LIKE '%\\_plan'") \
            if soak.db else "0"
        if plans != "0":
            soak.mismatches.append("%s plans of finished runs left in "
                                   "flow_dist" % plans)
    finally:
        soak.finish()
    print("soak: %d jobs in %.0f s (seed %d); faults: %s; mismatches: %d; "
          "flow_dist after the last job: %s tables"
          % (soak.jobs, args.seconds, args.seed,
             ", ".join("%s %d" % kv for kv in sorted(soak.faults.items())),
             len(soak.mismatches), left))
    for m in soak.mismatches:
        print("  MISMATCH: " + m)
    return 1 if soak.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
