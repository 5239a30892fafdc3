#!/usr/bin/env python3
"""Faults in real network conditions: the manager (flow-keyed --listen) and
two worker nodes (flow-node) each in its own network namespace, joined by veth
pairs (manager <-> node 1: 10.77.1.0/24, manager <-> node 2: 10.77.2.0/24),
over mutual TLS. The namespaces and links are created here and deleted at
the end; only addresses inside them are used.

Scenarios (one per run, the first argument):
  cut    node 2's link is cut (set down: every packet dropped) for 15 s in
         the middle of the job, then restored. The job ends with the local
         run's result, node 2's batches done elsewhere (speculation takes
         them over); node 2 then exits 1 ("lost the manager"): it is never
         merged twice nor left attached.
  cut-nospec  the same with --no-speculation and --peer-timeout 2 on every
         process: node 2 is declared lost by the heartbeat timeout within
         about 2 s (the default is 5 s) and its batches re-dispatched.
  cut-rejoin  nodes run with --rejoin 10 and every process with
         --peer-timeout 2; node 2's link is down for 5 s early in a longer
         job: node 2 is declared lost, takes the manager for lost too, and
         once the link is back joins the running manager again as a new node
         (both sides log a second join) and lends its reducer again; the
         result equals the local run's.
  lossy  `tc netem` adds 100 ms +- 20 ms of delay and 5 % packet loss on
         every link: the job ends with the local run's result.
  throttle  the job once undisturbed, then again with node 2 stopped and
         continued in 90 ms / 10 ms cycles (a tenth of its speed; its
         heartbeats still arrive) once it lent its reducer: the same
         result, speculated > 0, in at most --slow-bound times the
         undisturbed time (1.5 in release builds).
  stuck  node 2 stuck for ever in the reducer from its batch of seq 4 on,
         answering heartbeats: the job ends exact, the stuck batch done
         elsewhere (speculated, won) and reported.
  clean-stuck  flow-etl clean --listen (60000 ads, 4 partitions) with node 2
         stuck for ever on its first batch of every partition: its
         partitions are cleaned again on node 1; the three tables equal an
         in-process run's, `speculated` > 0, and flow_dist is empty.
  clean-resume  flow-etl clean --listen (6 partitions, nodes slowed to
         1.5 s per partition, flow-node --rejoin 60): the manager is killed
         (SIGKILL) once a partition is done, then started again with
         --resume on the same address; the nodes join it again, the tables
         equal an in-process run's and flow_dist and flow_resume are empty.
  clean-lossy  `tc netem` as for lossy, and flow-etl clean --listen with
         two nodes (60000 ads, 4 partitions): the three tables equal an
         in-process run's and flow_dist is empty.
  The clean scenarios start their own throwaway PostgreSQL (flow-etl init
  --keep), which the nodes reach through its unix socket, and need
  --flow-etl.

Exits 77 (ctest: SKIPPED) with one line saying why when namespaces cannot be
created (not root, no CAP_SYS_ADMIN) or, for `lossy`, when the kernel has no
netem queueing discipline.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
# ctest's TIMEOUT for these tests (CMakeLists.txt) is larger.
JOB_TIMEOUT_S = 150


class Failure(Exception):
    pass


def run(*cmd, check=True):
    return subprocess.run(list(cmd), check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


class Net:
    """Three namespaces: m (the manager), n1 and n2 (the nodes)."""

    def __init__(self):
        tag = "fl%d" % (os.getpid() % 100000)
        self.ns = {"m": tag + "m", "n1": tag + "a", "n2": tag + "b"}
        # veth names: at most 15 characters.
        self.links = {"n1": (tag + "ma", tag + "am"),
                      "n2": (tag + "mb", tag + "bm")}
        self.made = []

    def create(self):
        for name in self.ns.values():
            run("ip", "netns", "add", name)
            self.made.append(name)
            run("ip", "-n", name, "link", "set", "lo", "up")
        for i, node in enumerate(["n1", "n2"], start=1):
            here, there = self.links[node]
            run("ip", "link", "add", here, "netns", self.ns["m"], "type",
                "veth", "peer", "name", there, "netns", self.ns[node])
            run("ip", "-n", self.ns["m"], "addr", "add",
                "10.77.%d.1/24" % i, "dev", here)
            run("ip", "-n", self.ns[node], "addr", "add",
                "10.77.%d.2/24" % i, "dev", there)
            run("ip", "-n", self.ns["m"], "link", "set", here, "up")
            run("ip", "-n", self.ns[node], "link", "set", there, "up")

    def delete(self):
        for name in self.made:
            run("ip", "netns", "del", name, check=False)
        self.made = []

    def exec(self, where):
        return ["ip", "netns", "exec", self.ns[where]]

    def set_link(self, node, up):
        here, there = self.links[node]
        state = "up" if up else "down"
        run("ip", "-n", self.ns["m"], "link", "set", here, state)
        run("ip", "-n", self.ns[node], "link", "set", there, state)

    def netem(self, spec):
        """Adds `spec` (netem arguments) on both ends of every link."""
        for node in ["n1", "n2"]:
            here, there = self.links[node]
            for ns, dev in [(self.ns["m"], here), (self.ns[node], there)]:
                run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev",
                    dev, "root", "netem", *spec)


def wait_for(path, pattern, proc, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path) as f:
            m = re.search(pattern, f.read(), re.M)
        if m:
            return m.group(1) if m.groups() else m.group(0)
        if proc is not None and proc.poll() is not None:
            raise Failure("%s ended early (rc %s)" % (what, proc.returncode))
        time.sleep(0.05)
    raise Failure("no %s within %d s" % (what, timeout))


def sums(out):
    """key -> (sum, elements) of flow-keyed's JSON lines."""
    result = {}
    for line in out.splitlines():
        if line.strip():
            x = json.loads(line)
            result[x["key"]] = (x["sum"], x["elements"], x["ok"])
    return result


def can_create_namespaces():
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is missing"
    probe = "flprobe%d" % (os.getpid() % 100000)
    r = run("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return "cannot create network namespaces (%s)" % r.stderr.strip()
    run("ip", "netns", "del", probe, check=False)
    return None


def has_netem():
    probe = "flnetem%d" % (os.getpid() % 100000)
    run("ip", "netns", "add", probe, check=False)
    try:
        run("ip", "-n", probe, "link", "set", "lo", "up", check=False)
        r = run("ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev",
                "lo", "root", "netem", "delay", "1ms", check=False)
        return r.returncode == 0
    finally:
        run("ip", "netns", "del", probe, check=False)


class Rig:
    """Starts managers in namespace m and worker nodes in n1 and n2 (each
    process's stderr in a file of its own, named by its key in `procs`)."""

    def __init__(self, net, args, tmp, procs, errs):
        self.net = net
        self.args = args
        self.tmp = tmp
        self.procs = procs
        self.errs = errs

    def tls(self, who):
        return ["--cert", "%s/%s.pem" % (self.tmp, who), "--key",
                "%s/%s.key" % (self.tmp, who), "--ca", self.tmp + "/ca.pem"]

    def manager(self, key, cmd, at="0.0.0.0:0"):
        """Starts `cmd` listening at `at`; returns its port."""
        self.errs[key] = os.path.join(self.tmp, key + ".stderr")
        self.procs[key] = subprocess.Popen(
            self.net.exec("m") + cmd
            + ["--listen", at, "--min-workers", "2", "--log-level", "info"]
            + self.tls("manager"),
            stdout=subprocess.PIPE, stderr=open(self.errs[key], "w"),
            text=True)
        return wait_for(self.errs[key], r"listening on 0\.0\.0\.0:(\d+)$",
                        self.procs[key], key + "'s address")

    def node(self, key, ns, port, extra=(), env=None):
        """Starts a worker node in namespace `ns` ("n1" or "n2", which also
        names its certificate and its node name)."""
        i = 1 if ns == "n1" else 2
        self.errs[key] = os.path.join(self.tmp, key + ".stderr")
        e = dict(os.environ)
        if env:
            e.update(env)
        self.procs[key] = subprocess.Popen(
            self.net.exec(ns) + [self.args.flow_node, "worker", "--connect",
                                 "10.77.%d.1:%s" % (i, port), "--reducers",
                                 "1", "--name", ns] + list(extra)
            + self.tls(ns),
            stdout=subprocess.DEVNULL, stderr=open(self.errs[key], "w"),
            env=e)

    def text(self, key):
        with open(self.errs[key]) as f:
            return f.read()

    def finish(self, key, timeout=JOB_TIMEOUT_S):
        """Waits for `key`; returns its stdout and checks it exited 0."""
        out, _ = self.procs[key].communicate(timeout=timeout)
        if self.procs[key].returncode != 0:
            raise Failure("%s exited %d" % (key, self.procs[key].returncode))
        return out

    def stop(self, key, timeout=30):
        """Waits `timeout` s for `key` to end, then kills it."""
        try:
            self.procs[key].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.procs[key].kill()
            self.procs[key].wait()


def keyed_line(out):
    lines = [json.loads(l) for l in out.splitlines() if l.strip()]
    if not lines:
        raise Failure("the manager printed no result")
    return lines[0]


def throttled(rig):
    """The `throttle` scenario; returns its report."""
    sizes = "3000000,3000000"
    # Batches of about 65 ms of work: on the throttled node, about a second.
    job = [rig.args.flow_keyed, "--sizes", sizes, "--json", "--batch",
           "65536", "--reducer", "spin", "--reducers", "1",
           "--speculation-floor", "300"]
    expected = sums(run(rig.args.flow_keyed, "--sizes", sizes, "--json",
                        "--batch", "16384").stdout)
    seconds = {}
    for how in ["calm", "slow"]:
        port = rig.manager("m-" + how, job)
        rig.node("n1-" + how, "n1", port)
        rig.node("n2-" + how, "n2", port)
        stop = threading.Event()
        if how == "slow":
            wait_for(rig.errs["n2-" + how], r"lent 1 reducers",
                     rig.procs["n2-" + how], "n2 lending its reducer")
            pid = rig.procs["n2-" + how].pid

            def cycle():
                # A loaded machine wakes this thread late: the pause is
                # stretched to keep n2's share of the wall time at a tenth
                # (up to 0.9 s: a connection silent for 5 s is dropped).
                pause = 0.09
                while not stop.is_set():
                    os.kill(pid, signal.SIGSTOP)
                    time.sleep(pause)
                    resumed = time.monotonic()
                    os.kill(pid, signal.SIGCONT)
                    time.sleep(0.01)
                    pause = min(0.9, max(0.09, 9 * (time.monotonic() - resumed)))
            t = threading.Thread(target=cycle)
            t.start()
        try:
            out = rig.finish("m-" + how)
        finally:
            stop.set()
            if how == "slow":
                t.join()
                os.kill(pid, signal.SIGCONT)
        got = sums(out)
        if got != expected:
            raise Failure("%s run: results differ from the local run" % how)
        if not all(ok for (_, _, ok) in got.values()):
            raise Failure("%s run: a key did not verify" % how)
        line = keyed_line(out)
        seconds[how] = line["libflow_s"]
        if how == "slow":
            if line["speculated"] <= 0:
                raise Failure("nothing was speculated (%s)" % line)
            if "dispatching it again to" not in rig.text("m-slow"):
                raise Failure("the manager logged no second attempt")
        for n in ["n1-" + how, "n2-" + how]:
            rig.stop(n)
    ratio = seconds["slow"] / seconds["calm"]
    if ratio > rig.args.slow_bound:
        raise Failure("throttled %.3f s, undisturbed %.3f s: %.2fx, more "
                      "than %.2fx" % (seconds["slow"], seconds["calm"], ratio,
                                      rig.args.slow_bound))
    return "undisturbed %.3f s, node 2 throttled %.3f s (%.2fx, bound " \
        "%.2fx), speculated %d" % (seconds["calm"], seconds["slow"], ratio,
                                   rig.args.slow_bound, line["speculated"])


def stuck(rig):
    """The `stuck` scenario; returns its report."""
    sizes = ",".join(["200000"] * 6)
    expected = sums(run(rig.args.flow_keyed, "--sizes", sizes, "--json",
                        "--batch", "16384").stdout)
    port = rig.manager("m", [rig.args.flow_keyed, "--sizes", sizes, "--json",
                             "--batch", "16384", "--reducer", "spin",
                             "--reducers", "1", "--speculation-floor",
                             "300"])
    rig.node("n1", "n1", port)
    # Its first call on a batch of seq 4 or more never returns.
    rig.node("n2", "n2", port, env={"FLOW_TEST_STUCK_SEQ": "4"})
    out = rig.finish("m")
    got = sums(out)
    if got != expected or not all(ok for (_, _, ok) in got.values()):
        raise Failure("results differ from the local run: %s" % got)
    line = keyed_line(out)
    if line["speculated"] < 1 or line["speculation_won"] < 1:
        raise Failure("the stuck batch was not taken over (%s)" % line)
    if "test hook: stuck on batch" not in rig.text("n2"):
        raise Failure("node 2 never got stuck")
    if "by worker node n2" not in rig.text("m"):
        raise Failure("the manager did not report the stuck attempt")
    rig.stop("n1")
    rig.stop("n2")
    return "%d keys exact; speculated %d, won %d; the stuck attempt " \
        "reported" % (len(got), line["speculated"], line["speculation_won"])


class Database:
    """A throwaway PostgreSQL (flow-etl init --keep) with 60000 ads."""

    def __init__(self, flow_etl):
        self.etl = flow_etl
        r = run(flow_etl, "init", "--rows", "100", "--ads", "60000",
                "--seed", "9", "--keep")
        self.conninfo = re.search(r"^  --db '(.*)'$", r.stderr,
                                  re.M).group(1)
        self.stop_cmd = re.search(r"^  stop and remove it with: (.*)$",
                                  r.stderr, re.M).group(1)

    def psql(self, sql):
        r = run("psql", self.conninfo, "-Atc", sql, check=False)
        if r.returncode != 0:
            raise Failure("psql: %s" % r.stderr.strip())
        return r.stdout.strip()

    def digest(self, prefix=""):
        """A digest of clean's three tables (or of the local run's)."""
        names = ["ads_clean", "ads_rejects", "ads_summary"] if not prefix \
            else ["c_local", "r_local", "s_local"]
        orders = ["id", "id", "city"]
        return self.psql("SELECT " + " || ".join(
            "(SELECT md5(string_agg(x::text, ',' ORDER BY %s)) FROM %s x)"
            % (o, n) for n, o in zip(names, orders)))

    def clean_locally(self, partitions):
        run(self.etl, "clean", "--db", self.conninfo, "--partitions",
            partitions, "--clean", "c_local", "--rejects", "r_local",
            "--summary", "s_local")

    def count(self, schema):
        return int(self.psql("SELECT count(*) FROM pg_tables WHERE "
                             "schemaname = '%s'" % schema))

    def stop(self):
        subprocess.run(self.stop_cmd, shell=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def clean_cmd(rig, db, partitions):
    return [rig.args.flow_etl, "clean", "--db", db.conninfo, "--partitions",
            partitions, "--json"]


def clean_stuck(rig, db):
    """The `clean-stuck` scenario; returns its report."""
    db.clean_locally("4")
    port = rig.manager("m", clean_cmd(rig, db, "4")
                       + ["--speculation-floor", "300"])
    rig.node("n1", "n1", port)
    # Its first batch of any partition never ends.
    rig.node("n2", "n2", port, env={"FLOW_TEST_STUCK_SEQ": "0"})
    res = json.loads(rig.finish("m"))
    if not res["ok"] or res["emitted"] != 60000 or res["ads"] != 60000:
        raise Failure("the run's accounting is off: %s" % res)
    if res["speculated"] < 1 or res["speculation_won"] < 1:
        raise Failure("the stuck partitions were not taken over: %s" % res)
    if "test hook: stuck on batch 0" not in rig.text("n2"):
        raise Failure("node 2 never got stuck")
    if db.digest() != db.digest("local"):
        raise Failure("the tables differ from the in-process run's")
    rig.stop("n1")
    # Stuck calls may hold every thread of its scheduler: it cannot always
    # exit by itself (docs/distribution.md).
    rig.stop("n2", timeout=5)
    left = db.count("flow_dist")
    if left != 0:
        raise Failure("%d tables left in flow_dist" % left)
    return "tables equal to the in-process run's; speculated %d, won %d; " \
        "flow_dist empty" % (res["speculated"], res["speculation_won"])


def clean_lossy(rig, db):
    """The `clean-lossy` scenario (netem already on the links); returns its
    report."""
    db.clean_locally("4")
    port = rig.manager("m", clean_cmd(rig, db, "4"))
    rig.node("n1", "n1", port)
    rig.node("n2", "n2", port)
    res = json.loads(rig.finish("m"))
    if not res["ok"] or res["emitted"] != 60000 or res["node_tasks"] != 4:
        raise Failure("the run's accounting is off: %s" % res)
    if db.digest() != db.digest("local"):
        raise Failure("the tables differ from the in-process run's")
    for n in ["n1", "n2"]:
        rig.stop(n)
    left = db.count("flow_dist")
    if left != 0:
        raise Failure("%d tables left in flow_dist" % left)
    return "4 partitions cleaned by the nodes over lossy links; tables " \
        "equal to the in-process run's; flow_dist empty"


def clean_resume(rig, db):
    """The `clean-resume` scenario; returns its report."""
    db.clean_locally("6")
    cmd = clean_cmd(rig, db, "6")
    port = rig.manager("m", cmd)
    slow = {"FLOW_TEST_REDUCER_DELAY_MS": "1500"}
    for n in ["n1", "n2"]:
        rig.node(n, n, port, ["--rejoin", "60"], slow)
    wait_for(rig.errs["n1"], r"\(etl\.clean\) done", rig.procs["n1"],
             "a partition done by n1")
    rig.procs["m"].kill()
    rig.procs["m"].wait()
    for n in ["n1", "n2"]:
        wait_for(rig.errs[n], r"trying to join the manager", rig.procs[n],
                 n + " trying to join again")
    rig.manager("m-resumed", cmd + ["--resume"], "0.0.0.0:" + port)
    res = json.loads(rig.finish("m-resumed"))
    taken = res["resumed_ads"]
    if not res["ok"] or res["ads"] != 60000:
        raise Failure("the resumed run is off: %s" % res)
    if not 10000 <= taken < 60000 or res["emitted"] + taken != 60000:
        raise Failure("resumed_ads %d, emitted %d: not the killed run's "
                      "partitions plus the rest" % (taken, res["emitted"]))
    for n in ["n1", "n2"]:
        if rig.text(n).count("joined the manager") < 2:
            raise Failure("%s did not join the resumed manager" % n)
    if db.digest() != db.digest("local"):
        raise Failure("the tables differ from the in-process run's")
    for n in ["n1", "n2"]:
        # --rejoin: each would wait 60 s for a manager to come back.
        rig.procs[n].kill()
        rig.procs[n].wait()
    left = (db.count("flow_dist"), db.count("flow_resume"))
    if left != (0, 0):
        raise Failure("left behind: %d tables in flow_dist, %d in "
                      "flow_resume" % left)
    return "resumed_ads %d + emitted %d = 60000; tables equal to the " \
        "in-process run's; flow_dist and flow_resume empty" % (
            taken, res["emitted"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario",
                    choices=["cut", "cut-nospec", "cut-rejoin", "lossy",
                             "throttle", "stuck", "clean-stuck",
                             "clean-resume", "clean-lossy"])
    ap.add_argument("--flow-keyed", required=True)
    ap.add_argument("--flow-node", required=True)
    ap.add_argument("--flow-etl")
    ap.add_argument("--make-certs", required=True)
    ap.add_argument("--slow-bound", type=float, default=1.5)
    args = ap.parse_args()
    if args.scenario.startswith("clean") and not args.flow_etl:
        print("FAILED: %s needs --flow-etl" % args.scenario, file=sys.stderr)
        return 2

    why = can_create_namespaces()
    if why:
        print("SKIPPED: %s; these tests need root" % why)
        return SKIP
    if args.scenario in ["lossy", "clean-lossy"] and not has_netem():
        print("SKIPPED: this kernel has no netem queueing discipline "
              "(tc qdisc ... netem: unknown), so delay and loss cannot be "
              "added")
        return SKIP

    tmp = tempfile.mkdtemp()
    net = Net()
    procs = {}
    errs = {w: os.path.join(tmp, w + ".stderr") for w in ["m", "n1", "n2"]}
    try:
        subprocess.run(["bash", args.make_certs, tmp, "manager", "n1", "n2"],
                       check=True, stdout=subprocess.DEVNULL)

        def tls(who):
            return ["--cert", "%s/%s.pem" % (tmp, who), "--key",
                    "%s/%s.key" % (tmp, who), "--ca", tmp + "/ca.pem"]

        if args.scenario in ["throttle", "stuck", "clean-stuck",
                             "clean-resume", "clean-lossy"]:
            net.create()
            if args.scenario == "clean-lossy":
                net.netem(["delay", "100ms", "20ms", "loss", "5%"])
            rig = Rig(net, args, tmp, procs, errs)
            if args.scenario == "throttle":
                report = throttled(rig)
            elif args.scenario == "stuck":
                report = stuck(rig)
            else:
                db = Database(args.flow_etl)
                try:
                    report = {"clean-stuck": clean_stuck,
                              "clean-resume": clean_resume,
                              "clean-lossy": clean_lossy}[args.scenario](
                                  rig, db)
                finally:
                    for p in procs.values():
                        if p.poll() is None:
                            p.kill()
                            p.wait()
                    db.stop()
            print("OK: %s: %s" % (args.scenario, report))
            return 0

        # About 1 us of work per element: several seconds of work, so the
        # link is cut while the nodes hold batches.
        sizes = "4000000,3000000,2000000"
        job = ["--sizes", sizes, "--json", "--batch", "16384", "--reducer",
               "spin", "--reducers", "1"]
        peer = []
        rejoin = []
        if args.scenario == "cut-nospec":
            job.append("--no-speculation")
            peer = ["--peer-timeout", "2"]
        if args.scenario == "cut-rejoin":
            # Long enough to still run when the link is back.
            sizes = "12000000,12000000,12000000"
            job[1] = sizes
            peer = ["--peer-timeout", "2"]
            rejoin = ["--rejoin", "10"]
        local = run(args.flow_keyed, "--sizes", sizes, "--json", "--batch",
                    "16384")
        expected = sums(local.stdout)

        net.create()
        if args.scenario == "lossy":
            net.netem(["delay", "100ms", "20ms", "loss", "5%"])
        procs["m"] = subprocess.Popen(
            net.exec("m") + [args.flow_keyed] + job
            + ["--listen", "0.0.0.0:0", "--min-workers", "2",
               "--log-level", "info"] + peer + tls("manager"),
            stdout=subprocess.PIPE, stderr=open(errs["m"], "w"), text=True)
        port = wait_for(errs["m"], r"listening on 0\.0\.0\.0:(\d+)$",
                        procs["m"], "manager address")
        for i, node in enumerate(["n1", "n2"], start=1):
            procs[node] = subprocess.Popen(
                net.exec(node) + [args.flow_node, "worker", "--connect",
                                  "10.77.%d.1:%s" % (i, port), "--reducers",
                                  "1", "--name", node] + peer + rejoin
                + tls(node),
                stdout=subprocess.DEVNULL, stderr=open(errs[node], "w"))
        for node in ["n1", "n2"]:
            wait_for(errs[node], r"lent 1 reducers", procs[node],
                     node + " lending its reducer", timeout=90)

        if args.scenario == "cut-rejoin":
            # Cut node 2 off for 5 s (declared lost after 2 s), then let it
            # rejoin while the job runs.
            wait_for(errs["m"], r"worker node n2 lent a reducer", procs["m"],
                     "n2 in the job")
            time.sleep(0.5)
            net.set_link("n2", False)
            try:
                wait_for(errs["m"], r"lost a reducer of worker node n2",
                         procs["m"], "n2 declared lost", timeout=4.5)
                time.sleep(2.5)
            finally:
                net.set_link("n2", True)
            wait_for(errs["n2"], r"trying to join the manager at",
                     procs["n2"], "n2 trying to rejoin", timeout=30)
            out, _ = procs["m"].communicate(timeout=JOB_TIMEOUT_S)
        elif args.scenario.startswith("cut"):
            # Let node 2 take batches, then cut it off for 15 s.
            wait_for(errs["m"], r"worker node n2 lent a reducer", procs["m"],
                     "n2 in the job")
            time.sleep(0.5)
            net.set_link("n2", False)
            cut_at = time.time()
            try:
                if peer:
                    # The job cannot end while n2 holds batches: only the
                    # timeout (2 s, heartbeats every 0.4 s) frees them.
                    wait_for(errs["m"], r"lost a reducer of worker node n2",
                             procs["m"], "n2 declared lost", timeout=4.5)
                out, _ = procs["m"].communicate(timeout=JOB_TIMEOUT_S)
            finally:
                time.sleep(max(0.0, 15 - (time.time() - cut_at)))
                net.set_link("n2", True)
        else:
            out, _ = procs["m"].communicate(timeout=JOB_TIMEOUT_S)

        rc = procs["m"].returncode
        if rc != 0:
            raise Failure("the manager exited %d" % rc)
        got = sums(out)
        if got != expected:
            raise Failure("results differ:\n  local   %s\n  netns   %s"
                          % (expected, got))
        if not all(ok for (_, _, ok) in got.values()):
            raise Failure("a key did not verify: %s" % got)
        with open(errs["m"]) as f:
            merr = f.read()
        if args.scenario == "cut":
            # Node 2's work was taken over by speculation (or its reducer
            # declared lost first, should the tail be that slow).
            if "by worker node n2" not in merr \
                    and "lost a reducer of worker node n2" not in merr:
                raise Failure("nothing says node 2's batches went elsewhere")
        if args.scenario == "cut-rejoin":
            joins = merr.count("worker node n2 joined")
            if joins != 2:
                raise Failure("node 2 joined the manager %d times, not 2"
                              % joins)
            with open(errs["n2"]) as f:
                n2err = f.read()
            if n2err.count("lent 1 reducers") < 2:
                raise Failure("node 2 did not lend its reducer again")
        if args.scenario == "cut-nospec":
            if "lost a reducer of worker node n2" not in merr:
                raise Failure("node 2 was not declared lost")
            if "dispatching it again" in merr:
                raise Failure("a batch was speculated with --no-speculation")
        # Both nodes see the manager go and exit 1; node 2 after its link
        # came back (or once its own heartbeat timeout declared it lost).
        for node in ["n1", "n2"]:
            try:
                nrc = procs[node].wait(timeout=60)
            except subprocess.TimeoutExpired:
                raise Failure("%s still runs a minute after the job" % node)
            with open(errs[node]) as f:
                nerr = f.read()
            if nrc != 1 or "lost the manager" not in nerr:
                raise Failure("%s exited %d without 'lost the manager'"
                              % (node, nrc))
        how = ""
        if args.scenario.startswith("cut"):
            how = "; node 2's batches: %s" % ", ".join(
                w for w, t in [("speculated", "by worker node n2"),
                               ("declared lost",
                                "lost a reducer of worker node n2")]
                if t in merr)
        print("OK: %s: %d keys equal to the local run%s" %
              (args.scenario, len(got), how))
        return 0
    except Failure as e:
        print("FAILED: %s" % e, file=sys.stderr)
        for w, p in procs.items():
            rc = p.poll()
            print("--- %s (%s):" % (w, "running" if rc is None
                                    else "exit %d" % rc), file=sys.stderr)
            with open(errs[w]) as f:
                sys.stderr.write(f.read()[-4000:])
        return 1
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        net.delete()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
