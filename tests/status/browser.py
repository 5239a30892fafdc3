#!/usr/bin/env python3
"""The status page in a real browser: headless Chromium (Debian chromium,
chromium-driver, python3-selenium) opens / on a slowed flow-sum, waits until
the progress shown advances, checks that the numbers on the page equal the
/status answer the page drew and, once the job ended, a fresh /status; that
no request left for another host; that a narrow window needs no horizontal
scrolling; and saves a screenshot. Exits 77 (ctest: SKIPPED) when Chromium,
its driver or Selenium is missing.
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


def number(text):
    return int(text.replace(",", ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flow-sum", required=True)
    ap.add_argument("--screenshot", required=True)
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    if not chromium or not driver or webdriver is None:
        print("SKIPPED: needs chromium, chromium-driver and python3-selenium "
              "(scripts/setup.sh installs them)")
        return SKIP

    env = dict(os.environ, FLOW_TEST_REDUCER_DELAY_MS="150")
    err = tempfile.NamedTemporaryFile("w+", suffix=".stderr", delete=False)
    proc = subprocess.Popen(
        [args.flow_sum, "--sizes", "4000000", "--batch", "50000",
         "--reducers", "2", "--status", "127.0.0.1:0", "--status-linger",
         "60"],
        stdout=subprocess.DEVNULL, stderr=err, env=env)
    browser = None
    try:
        base = None
        deadline = time.time() + 30
        while base is None and time.time() < deadline:
            with open(err.name) as f:
                m = re.search(r"http://(127\.0\.0\.1:\d+)/", f.read())
            if m:
                base = "http://" + m.group(1)
            else:
                time.sleep(0.05)
        if base is None:
            fail("no status address on stderr")

        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for a in ["--headless=new", "--no-sandbox", "--disable-gpu",
                  "--disable-dev-shm-usage", "--window-size=1100,1400",
                  "--force-prefers-reduced-motion"]:
            opts.add_argument(a)
        browser = webdriver.Chrome(service=Service(driver), options=opts)
        browser.set_page_load_timeout(30)
        browser.get(base + "/")

        def shown():
            return number(browser.find_element("id", "aggregated").text)

        # The progress shown advances.
        first = None
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                x = shown()
            except Exception:
                x = None
            if x is not None and x > 0:
                if first is None:
                    first = x
                elif x > first:
                    break
            time.sleep(0.2)
        else:
            fail("the progress on the page did not advance")

        # While running: the page shows exactly what /status answered it.
        drawn = browser.execute_script(
            "return [last, document.getElementById('emitted').textContent,"
            " document.getElementById('aggregated').textContent,"
            " document.getElementById('in_flight').textContent,"
            " document.getElementById('state').textContent];")
        status, emitted, aggregated, in_flight, state = drawn
        job = status["jobs"][-1]
        a = job["accounting"]
        if (number(emitted), number(aggregated), number(in_flight), state) \
                != (a["emitted"], a["aggregated"], a["in_flight"],
                    job["state"]):
            fail("page %r != its /status %r" % (drawn[1:], a))

        # At the end: the page equals a fresh /status, result table too.
        deadline = time.time() + 120
        while time.time() < deadline:
            if browser.find_element("id", "state").text.lower() == "done":
                break
            time.sleep(0.3)
        else:
            fail("the page never showed the job done")
        time.sleep(1.5)
        with urllib.request.urlopen(base + "/status", timeout=10) as r:
            fresh = json.loads(r.read())["jobs"][-1]
        for k in ["emitted", "aggregated", "rejected", "dead_lettered",
                  "in_flight"]:
            shown_k = browser.execute_script(
                "return document.getElementById(arguments[0]).textContent;", k)
            if number(shown_k) != fresh["accounting"][k]:
                fail("page %s %s != /status %s" %
                     (k, shown_k, fresh["accounting"][k]))
        # Read at once: the page redraws the table every second.
        cells = browser.execute_script(
            "return Array.from(document.querySelectorAll('#result_keys td'))"
            ".map(function (e) { return e.textContent; });")
        if not cells or cells[1] != fresh["result"]["keys"][0]["sum"]:
            fail("result table %r != /status sum %s" %
                 (cells, fresh["result"]["keys"][0]["sum"]))

        # No request left for another host.
        urls = browser.execute_script(
            "return performance.getEntriesByType('resource')"
            ".map(function (e) { return e.name; });")
        foreign = [u for u in urls if not u.startswith(base + "/")]
        if foreign:
            fail("requests to other hosts: %r" % foreign)

        browser.save_screenshot(args.screenshot)

        # A narrow window needs no horizontal scrolling.
        browser.set_window_size(400, 900)
        time.sleep(1.5)
        widths = browser.execute_script(
            "return [document.documentElement.scrollWidth,"
            " document.documentElement.clientWidth];")
        if widths[0] > widths[1] + 2:
            fail("narrow window scrolls sideways: %r" % widths)
        print("ok: page followed the job, equals /status, screenshot %s"
              % args.screenshot)
        return 0
    finally:
        if browser is not None:
            browser.quit()
        proc.kill()
        proc.wait()
        os.unlink(err.name)


if __name__ == "__main__":
    sys.exit(main())
