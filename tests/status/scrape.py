"""What the status tests share: failing, reading a status server, parsing
and checking its metrics, and waiting for a line in a process's log."""

import re
import subprocess
import sys
import time
import urllib.request


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def get(base, path):
    """The body of GET base+path."""
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return r.read().decode("utf-8")


def samples(text):
    """{'name{labels}': value} of a metrics text."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def family(xs, name):
    """The samples of one family: {labels: value}."""
    return {k[len(name):]: v for k, v in xs.items()
            if k.startswith(name + "{")}


def monotone(before, after):
    """Fails when a counter, histogram bucket or count went down."""
    for k, v in after.items():
        if ("_total{" in k or "_bucket{" in k or "_count{" in k) \
                and k in before and v < before[k]:
            fail("counter went down: %s %s -> %s" % (k, before[k], v))


def promtool_check(promtool, text, where):
    """`promtool check metrics` must accept `text` without a word."""
    r = subprocess.run([promtool, "check", "metrics"], input=text,
                       capture_output=True, text=True)
    if r.returncode != 0 or r.stdout.strip() or r.stderr.strip():
        fail("promtool check metrics (%s): rc %d\n%s%s"
             % (where, r.returncode, r.stdout, r.stderr))


def wait_for(path, pattern, proc, what, timeout=300):
    """The first group of `pattern` once it appears in the file `path`;
    fails when `proc` ends first or after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path) as f:
            m = re.search(pattern, f.read(), re.M)
        if m:
            return m.group(1)
        if proc.poll() is not None:
            with open(path) as f:
                fail("%s ended early (rc %s): %s"
                     % (what, proc.returncode, f.read()[-2000:]))
        time.sleep(0.05)
    fail("no %s within %d s" % (what, timeout))
