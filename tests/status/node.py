#!/usr/bin/env python3
"""The status of a job with a worker node: flow-keyed --listen --status with
one flow-node worker (mutual TLS, a throwaway CA). /status and /metrics show
the node and the batches it holds; after the node is killed they show it gone
and its batches re-dispatched; the job still ends with the right result.

Nothing here races the job: the node finishes none of its batches (it is
killed holding them), so the job cannot end before the kill, and the manager
serves its final status until the test has read it and ends the wait.

With --browser, headless Chromium checks the same on the page (the node's
box, then GONE); exits 77 (ctest: SKIPPED) when Chromium, its driver or
Selenium is missing.
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
import time
import traceback
import urllib.request

SKIP = 77

# The test's own bound (ctest's TIMEOUT in CMakeLists.txt): no wait below is
# meant to last this long.
TEST_TIMEOUT_S = 400


class Failure(Exception):
    pass


def fail(msg):
    # Raised, not exited: main() then says what the programs said.
    raise Failure(msg)


def report(what, proc, err_path):
    """A program's exit code (or that it still runs) and its stderr, on
    stderr: the temporary directory holding the stderr files is deleted."""
    if proc is None:
        print("--- %s: not started" % what, file=sys.stderr)
        return
    rc = proc.poll()
    print("--- %s: %s; its stderr:" % (
        what, "still running" if rc is None else "exit %d" % rc),
        file=sys.stderr)
    try:
        with open(err_path) as f:
            sys.stderr.write(f.read())
    except OSError as e:
        print("(unreadable: %s)" % e, file=sys.stderr)
    if rc is not None and proc.stdout is not None \
            and not proc.stdout.closed:
        print("--- %s: its stdout:" % what, file=sys.stderr)
        sys.stderr.write(proc.stdout.read())


def wait_for(path, pattern, proc, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path) as f:
            m = re.search(pattern, f.read(), re.M)
        if m:
            return m.group(1)
        if proc.poll() is not None:
            fail("%s ended early (rc %s)" % (what, proc.returncode))
        time.sleep(0.05)
    fail("no %s within %d s" % (what, timeout))


def node_boxes(browser):
    """The texts of the node boxes, read at once: the page redraws them
    every second, so element handles would go stale."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-node]'))"
        ".map(function (e) { return e.textContent; });")


def status(base):
    with urllib.request.urlopen(base + "/status", timeout=10) as r:
        return json.loads(r.read())["jobs"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flow-keyed", required=True)
    ap.add_argument("--flow-node", required=True)
    ap.add_argument("--make-certs", required=True)
    ap.add_argument("--browser", action="store_true")
    args = ap.parse_args()
    browser = None
    if args.browser:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        driver = shutil.which("chromedriver")
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError:
            webdriver = None
        if not chromium or not driver or webdriver is None:
            print("SKIPPED: needs chromium, chromium-driver and "
                  "python3-selenium (scripts/setup.sh installs them)")
            return SKIP

    certs = tempfile.mkdtemp()
    subprocess.run(["bash", args.make_certs, certs, "manager", "worker"],
                   check=True, stdout=subprocess.DEVNULL)
    mgr_err = os.path.join(certs, "manager.stderr")
    node_err = os.path.join(certs, "node.stderr")
    env = dict(os.environ, FLOW_TEST_REDUCER_DELAY_MS="5")
    # The manager serves the final status until the test ends the wait with
    # SIGTERM (the bound only matters if the test itself is killed).
    mgr = subprocess.Popen(
        [args.flow_keyed, "--sizes", "150000000,150000000", "--batch",
         "200000", "--reducers", "1", "--listen", "127.0.0.1:0",
         "--min-workers", "1", "--cert", certs + "/manager.pem", "--key",
         certs + "/manager.key", "--ca", certs + "/ca.pem", "--status",
         "127.0.0.1:0", "--status-linger", str(TEST_TIMEOUT_S)],
        stdout=subprocess.PIPE, stderr=open(mgr_err, "w"), text=True, env=env)
    node = None
    try:
        port = wait_for(mgr_err, r"^flow-keyed: listening on 127\.0\.0\.1:(\d+)$",
                        mgr, "manager address")
        base = "http://" + wait_for(
            mgr_err, r"status page at http://(127\.0\.0\.1:\d+)/", mgr,
            "status address")
        if args.browser:
            # The browser first: the manager waits for its worker node.
            opts = webdriver.ChromeOptions()
            opts.binary_location = chromium
            for a in ["--headless=new", "--no-sandbox", "--disable-gpu",
                      "--disable-dev-shm-usage", "--window-size=1100,1300"]:
                opts.add_argument(a)
            browser = webdriver.Chrome(service=Service(driver), options=opts)
            browser.get(base + "/")
        # The node takes batches but finishes none before the test kills it:
        # its reducer would sleep longer than the test may run. So the job
        # cannot end while the browser, however slow, is still looking at the
        # node, and every batch the node holds must be re-dispatched.
        node_env = dict(os.environ,
                        FLOW_TEST_REDUCER_DELAY_MS=str(2 * TEST_TIMEOUT_S
                                                       * 1000))
        node = subprocess.Popen(
            [args.flow_node, "worker", "--connect", "127.0.0.1:" + port,
             "--reducers", "1", "--name", "node-a", "--cert",
             certs + "/worker.pem", "--key", certs + "/worker.key", "--ca",
             certs + "/ca.pem", "--status", "127.0.0.1:0", "--log-level",
             "warn"],
            stdout=subprocess.DEVNULL, stderr=open(node_err, "w"),
            env=node_env)
        node_base = "http://" + wait_for(
            node_err, r"status page at http://(127\.0\.0\.1:\d+)/", node,
            "the node's status address")
        with urllib.request.urlopen(node_base + "/status", timeout=10) as r:
            proc = json.loads(r.read())["process"]
        if proc.get("role") != "worker node" or proc.get("node") != "node-a":
            fail("the node's /status: %r" % proc)

        # The node shows, holding batches.
        deadline = time.time() + 60
        seen = None
        while time.time() < deadline:
            jobs = status(base)
            if jobs and jobs[-1]["nodes"]:
                n = jobs[-1]["nodes"][0]
                if n["connected"] and n["batches_held"] > 0:
                    seen = jobs[-1]
                    break
            time.sleep(0.1)
        if seen is None:
            fail("the node never showed in /status")
        if seen["reducers"]["count"] != 2:
            fail("expected 2 reducers (1 local, 1 lent): %r" % seen["reducers"])
        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            metrics = r.read().decode()
        if 'flow_worker_node_reducers{job="sizes",node="node-a"} 1' \
                not in metrics or not re.search(
                    r'^flow_worker_node_batches_held\{job="sizes",'
                    r'node="node-a"\} [1-9]', metrics, re.M):
            fail("the node's metrics are missing")

        if args.browser:
            deadline = time.time() + 20
            while time.time() < deadline:
                boxes = node_boxes(browser)
                if boxes and "holds" in boxes[0]:
                    break
                time.sleep(0.2)
            else:
                fail("the page never showed the node's box: %r"
                     % node_boxes(browser))
            if "node-a" not in boxes[0] or "GONE" in boxes[0]:
                fail("node box: %r" % boxes[0])

        # Kill the node: it shows gone, its batches re-dispatched.
        node.send_signal(signal.SIGKILL)
        node.wait()
        deadline = time.time() + 60
        gone = None
        while time.time() < deadline:
            job = status(base)[-1]
            n = job["nodes"][0]
            if not n["connected"] and n["lost"] == 1:
                gone = job
                break
            time.sleep(0.1)
        if gone is None:
            fail("the node never showed gone")
        if args.browser:
            deadline = time.time() + 10
            while time.time() < deadline:
                boxes = node_boxes(browser)
                if boxes and "GONE" in boxes[0]:
                    break
                time.sleep(0.2)
            else:
                fail("the page never showed the node GONE")
            browser.save_screenshot(os.path.join(certs, "node-gone.png"))

        deadline = time.time() + 240
        final = None
        while time.time() < deadline:
            job = status(base)[-1]
            if job["state"] in ("done", "failed"):
                final = job
                break
            time.sleep(0.2)
        if final is None or final["state"] != "done":
            fail("the job did not end done: %r" % final)
        # It held at least what /status showed before the kill (it finished
        # none), and all of that went to the manager's reducer.
        if final["batches"]["redispatched"] < seen["nodes"][0]["batches_held"]:
            fail("held %d batches, %d re-dispatched" % (
                seen["nodes"][0]["batches_held"],
                final["batches"]["redispatched"]))
        # The result is printed before the manager says it lingers; a signal
        # then only ends the wait, and the exit code is still the job's.
        wait_for(mgr_err, r"(serving the final status)", mgr,
                 "the manager's linger")
        mgr.send_signal(signal.SIGTERM)
        out, _ = mgr.communicate(timeout=60)
        if mgr.returncode != 0:
            fail("flow-keyed exit %d: %s" % (mgr.returncode, out))
        if " yes" not in out:
            fail("flow-keyed output: %s" % out)
        r = final["result"]
        if r["emitted"] != 300000000 or not r["balanced"]:
            fail("final result: %r" % r)
        print("ok: node shown (holding %d batches), gone after the kill, "
              "%d batches re-dispatched, the job ended verified" %
              (seen["nodes"][0]["batches_held"],
               final["batches"]["redispatched"]))
        return 0
    except Exception as e:
        # A check that failed, or an unexpected error (the status server
        # refusing connections because the manager ended, say): either way
        # the programs' exit codes and stderr tell why.
        if not isinstance(e, Failure):
            traceback.print_exc(chain=False)
        print("FAIL: %s" % e, file=sys.stderr)
        report("manager (flow-keyed)", mgr, mgr_err)
        report("node (flow-node)", node, node_err)
        return 1
    finally:
        if browser is not None:
            browser.quit()
        for p in (node, mgr):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(certs, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
