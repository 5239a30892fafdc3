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

Exits 77 (ctest: SKIPPED) with one line saying why when namespaces cannot be
created (not root, no CAP_SYS_ADMIN) or, for `lossy`, when the kernel has no
netem queueing discipline.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario",
                    choices=["cut", "cut-nospec", "cut-rejoin", "lossy"])
    ap.add_argument("--flow-keyed", required=True)
    ap.add_argument("--flow-node", required=True)
    ap.add_argument("--make-certs", required=True)
    args = ap.parse_args()

    why = can_create_namespaces()
    if why:
        print("SKIPPED: %s; these tests need root" % why)
        return SKIP
    if args.scenario == "lossy" and not has_netem():
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
