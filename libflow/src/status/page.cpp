// The status page (GET /): one HTML document with its CSS and script inline,
// nothing fetched from another host. It polls /status once a second and
// draws the job from it. Readable without colour (states are words, bars
// carry their numbers) and on a narrow window (everything wraps).

#include "flow/status_render.hpp"

namespace flow {

namespace {

const char* const page_text = R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>libflow status</title>
<style>
:root { --fg:#111; --bg:#fff; --mute:#666; --line:#999; --bar:#3a6ea5; --warn:#b35c00; }
@media (prefers-color-scheme: dark) {
  :root { --fg:#eee; --bg:#161616; --mute:#aaa; --line:#777; --bar:#6fa0d8; --warn:#ffb060; }
}
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg);
       margin: 0 auto; padding: 0.8em; max-width: 1100px; }
h1 { font-size: 1.3em; margin: 0 0 0.3em; }
h2 { font-size: 1.05em; margin: 1.2em 0 0.4em; border-bottom: 1px solid var(--line); }
.mute { color: var(--mute); }
.num { font-variant-numeric: tabular-nums; }
.tabs button { font: inherit; margin: 0 0.3em 0.3em 0; padding: 0.2em 0.6em;
               border: 1px solid var(--line); background: var(--bg); color: var(--fg); }
.tabs button[aria-pressed=true] { border-width: 2px; font-weight: bold; }
.state { display: inline-block; padding: 0 0.5em; border: 2px solid var(--fg);
         font-weight: bold; text-transform: uppercase; letter-spacing: 0.05em; }
.flow { display: flex; flex-wrap: wrap; align-items: stretch; gap: 0.4em; }
.col { display: flex; flex-direction: column; gap: 0.3em; min-width: 9em; flex: 1 1 9em; }
.box { border: 1px solid var(--line); padding: 0.3em 0.5em; border-radius: 3px; }
.box.wait { border: 2px dashed var(--warn); }
.box.gone { border-style: dotted; opacity: 0.7; }
.arrow { align-self: center; font-size: 1.4em; color: var(--mute); flex: 0 0 auto; }
.bar { height: 0.9em; border: 1px solid var(--line); margin: 0.2em 0; }
.bar > div { height: 100%; background: var(--bar); }
.barlabel { font-size: 0.9em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.15em 0.5em; border-bottom: 1px solid var(--line); }
td.r, th.r { text-align: right; }
.scroll { overflow-x: auto; }
canvas { width: 100%; height: 160px; border: 1px solid var(--line); }
.identity { font-size: 1.05em; }
.identity b { white-space: nowrap; }
#err { color: var(--warn); }
</style>
</head>
<body>
<h1>libflow <span id="program" class="mute"></span></h1>
<div id="err" role="alert"></div>
<div class="tabs" id="tabs"></div>
<div id="job">
  <p><span class="state" id="state">-</span>
     <span id="name"></span> &middot; started <span id="started" class="num"></span>
     &middot; <span id="elapsed" class="num"></span> s elapsed</p>
  <h2>Accounting</h2>
  <p class="identity num" id="identity">
    emitted <b id="emitted">0</b> = aggregated <b id="aggregated">0</b>
    + rejected <b id="rejected">0</b> + dead-lettered <b id="dead_lettered">0</b>
    + in flight <b id="in_flight">0</b>
  </p>
  <p class="num">throughput now <b id="rate_now">0</b>/s, average <b id="rate_avg">0</b>/s
     &middot; progress <b id="progress">-</b> &middot; ETA <b id="eta">-</b></p>
  <h2>Dataflow</h2>
  <div class="flow" id="flow"></div>
  <h2>Progress per source</h2>
  <div id="sources"></div>
  <h2>Throughput (elements per second)</h2>
  <canvas id="chart" width="1000" height="160" aria-label="throughput over the job's life"></canvas>
  <h2>Rejections by reason</h2>
  <div class="scroll"><table id="rejections"><thead><tr><th>reason</th><th class="r">elements</th></tr></thead><tbody></tbody></table></div>
  <h2>Recent errors and dead letters</h2>
  <ul id="errors"></ul>
  <h2>Result</h2>
  <div id="result" class="scroll"><p class="mute">when the job ends</p></div>
</div>
<script>
"use strict";
var chosen = null, pinned = false, last = null;
function $(id) { return document.getElementById(id); }
function fmt(x) { return x === null || x === undefined ? "-" : Number(x).toLocaleString("en-US"); }
function fmt1(x) { return x === null || x === undefined ? "-" : Number(x).toFixed(1); }
function pct(x) { return x === null || x === undefined ? "-" : (100 * x).toFixed(1) + "%"; }
function dur(s) {
  if (s === null || s === undefined) return "unknown";
  s = Math.round(s); if (s < 60) return s + " s";
  var m = Math.floor(s / 60); if (m < 60) return m + " min " + (s % 60) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}
function el(tag, attrs, text) {
  var e = document.createElement(tag);
  for (var k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function bar(fraction, label) {
  var b = el("div", {"class": "bar", "role": "progressbar",
    "aria-valuenow": fraction === null ? "" : Math.round(100 * fraction),
    "aria-valuemin": "0", "aria-valuemax": "100"});
  var f = el("div"); f.style.width = (fraction === null ? 0 : 100 * fraction) + "%";
  b.appendChild(f);
  var wrap = el("div"); wrap.appendChild(b); wrap.appendChild(el("div", {"class": "barlabel num"}, label));
  return wrap;
}
function tabs(jobs) {
  var t = $("tabs"); t.textContent = "";
  if (jobs.length < 2) return;
  jobs.forEach(function (j, i) {
    var b = el("button", {"aria-pressed": String(i === chosen)}, j.name + " (" + j.state + ")");
    b.onclick = function () { chosen = i; pinned = true; draw(last); }; t.appendChild(b);
  });
}
function flowDrawing(j) {
  var f = $("flow"); f.textContent = "";
  var srcs = el("div", {"class": "col"});
  j.sources.forEach(function (s) {
    var b = el("div", {"class": "box" + (s.waiting ? " wait" : "")});
    b.appendChild(el("div", {}, "source: " + s.name));
    b.appendChild(el("div", {"class": "mute num"}, s.in_flight + "/" + s.credit + " batches in flight" +
      (s.waiting ? " - WAITING FOR CREDIT" : "") + (s.done ? " - done" : "")));
    srcs.appendChild(b);
  });
  if (!j.sources.length) srcs.appendChild(el("div", {"class": "box mute"}, "no sources"));
  var reds = el("div", {"class": "col"});
  var local = el("div", {"class": "box"});
  local.appendChild(el("div", {}, "reducers: " + j.reducers.count));
  local.appendChild(el("div", {"class": "mute num"}, j.reducers.busy + " busy, " + j.reducers.replaced + " replaced"));
  reds.appendChild(local);
  j.nodes.forEach(function (n) {
    var b = el("div", {"class": "box" + (n.connected ? "" : " gone"), "data-node": n.name});
    b.appendChild(el("div", {}, "worker node: " + n.name + (n.connected ? "" : " (GONE)")));
    b.appendChild(el("div", {"class": "mute num"}, n.reducers + " reducers, holds " + n.batches_held +
      " batches, merged " + n.batches_merged));
    reds.appendChild(b);
  });
  var mgr = el("div", {"class": "col"});
  var m = el("div", {"class": "box"});
  m.appendChild(el("div", {}, "manager"));
  m.appendChild(el("div", {"class": "mute num"}, fmt(j.keys) + " keys, " + fmt(j.batches.merged) + " batches merged, " +
    fmt(j.batches.retried) + " retried, " + fmt(j.batches.redispatched) + " re-dispatched, " +
    fmt(j.batches.speculated) + " speculated (" + fmt(j.batches.speculation_won) + " won)"));
  mgr.appendChild(m);
  var snk = el("div", {"class": "col"});
  var sb = el("div", {"class": "box"}, "sink: " + fmt(j.written) + " rows written");
  (j.outputs || []).forEach(function (o) {
    sb.appendChild(el("div", {"class": "mute num"}, o.table + ": " + fmt(o.written) + " rows"));
  });
  snk.appendChild(sb);
  [srcs, el("div", {"class": "arrow"}, "\u2192"), reds, el("div", {"class": "arrow"}, "\u2192"), mgr,
   el("div", {"class": "arrow"}, "\u2192"), snk].forEach(function (x) { f.appendChild(x); });
}
function sourceBars(j) {
  var d = $("sources"); d.textContent = "";
  j.sources.forEach(function (s) {
    var row = el("div", {"class": "box"});
    row.appendChild(el("div", {}, s.name + (s.waiting ? " - waiting for credit" : "") + (s.done ? " - done" : "")));
    var label = fmt(s.emitted) + (s.total === null ? "" : " of " + (s.total_estimated ? "~" : "") + fmt(s.total)) + " elements" +
      (s.progress === null ? "" : " (" + pct(s.progress) + ")") + ", ETA " + dur(s.eta_seconds) +
      ", waited " + fmt1(s.credit_wait_seconds) + " s for credit";
    row.appendChild(bar(s.progress, label));
    // A task source (a partition a worker node reads): its rows, which its
    // elements (the task's keyed result) do not show.
    if (s.task) {
      var t = s.task;
      row.appendChild(el("div", {"data-task": ""}, "task " + t.state +
        (t.node !== null ? " on " + t.node : (t.local ? " in the manager" : "")) + ": " +
        (t.state === "done" ? fmt(t.rows_read) + " rows read, " + fmt(t.rows_rejected) + " rejected" : "rows not known until done") +
        (t.rows_total === null ? "" : " of " + (t.rows_total_estimated ? "~" : "") + fmt(t.rows_total) + " expected")));
    }
    d.appendChild(row);
  });
  if (j.tasks) {
    var k = j.tasks, tl = fmt(k.rows_read) + (k.rows_total === null ? "" : " of " + (k.rows_total_estimated ? "~" : "") + fmt(k.rows_total)) +
      " rows read by " + k.done + " of " + k.count + " tasks done (" + k.running + " running)" +
      (k.progress === null ? "" : " (" + pct(k.progress) + ")") + ", ETA " + dur(k.eta_seconds);
    var tr = el("div", {"class": "box", "data-tasks": ""});
    tr.appendChild(el("div", {}, "tasks"));
    tr.appendChild(bar(k.progress, tl));
    d.appendChild(tr);
  }
}
function chart(j) {
  var c = $("chart"), g = c.getContext("2d"), h = j.history, w = c.width, ht = c.height;
  g.clearRect(0, 0, w, ht);
  var css = getComputedStyle(document.body);
  g.strokeStyle = css.getPropertyValue("--bar") || "#3a6ea5"; g.fillStyle = css.color;
  var pts = [];
  for (var i = 1; i < h.length; ++i) {
    var dt = h[i][0] - h[i - 1][0];
    if (dt > 0) pts.push([h[i][0], (h[i][1] - h[i - 1][1]) / dt]);
  }
  if (!pts.length) { g.fillText("no samples yet", 10, 20); return; }
  var tmax = Math.max(pts[pts.length - 1][0], 1), rmax = 1;
  pts.forEach(function (p) { rmax = Math.max(rmax, p[1]); });
  g.lineWidth = 2; g.beginPath();
  pts.forEach(function (p, i) {
    var x = 40 + (w - 50) * p[0] / tmax, y = ht - 20 - (ht - 30) * p[1] / rmax;
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
  g.font = "12px sans-serif";
  g.fillText(Number(rmax).toExponential(2) + "/s", 2, 12);
  g.fillText("0", 2, ht - 20); g.fillText(fmt1(tmax) + " s", w - 60, ht - 4);
}
function tableRows(tbody, rows) {
  tbody.textContent = "";
  rows.forEach(function (r) {
    var tr = el("tr");
    r.forEach(function (v, i) { tr.appendChild(el("td", i ? {"class": "r num"} : {}, v)); });
    tbody.appendChild(tr);
  });
}
function result(j) {
  var d = $("result");
  if (!j.result) {
    d.textContent = "";
    d.appendChild(el("p", {"class": "mute"}, j.state === "failed" ? "the job failed: see the errors above" : "when the job ends"));
    return;
  }
  var r = j.result; d.textContent = "";
  d.appendChild(el("p", {"class": "num", "id": "result_summary"},
    (r.final ? "final" : "PARTIAL") + " result: " + fmt(r.emitted) + " emitted, " + fmt(r.aggregated) + " aggregated, " +
    fmt(r.rejected) + " rejected, " + fmt(r.dead_lettered) + " dead-lettered, " + fmt(r.batches) + " batches" +
    (r.balanced ? " (balanced)" : " (NOT BALANCED)")));
  var t = el("table", {"id": "result_keys"});
  var th = el("thead"), tr = el("tr");
  ["key", "sum", "count", "min", "max"].forEach(function (x, i) { tr.appendChild(el("th", i ? {"class": "r"} : {}, x)); });
  th.appendChild(tr); t.appendChild(th);
  var tb = el("tbody"); t.appendChild(tb);
  tableRows(tb, r.keys.map(function (k) { return [k.key, k.sum, fmt(k.count), k.min === null ? "-" : k.min, k.max === null ? "-" : k.max]; }));
  d.appendChild(t);
  if (r.keys_total > r.keys.length) d.appendChild(el("p", {"class": "mute"}, (r.keys_total - r.keys.length) + " more keys not shown"));
}
function draw(st) {
  if (!st) return;
  $("program").textContent = st.process.program || "";
  var jobs = st.jobs;
  tabs(jobs);
  if (!jobs.length) { $("name").textContent = "no job yet"; return; }
  if (!pinned || chosen === null || chosen >= jobs.length) chosen = jobs.length - 1;
  var j = jobs[chosen];
  $("state").textContent = j.state; $("name").textContent = j.name;
  $("started").textContent = j.started; $("elapsed").textContent = fmt1(j.elapsed_seconds);
  var a = j.accounting;
  ["emitted", "aggregated", "rejected", "dead_lettered", "in_flight"].forEach(function (k) { $(k).textContent = fmt(a[k]); });
  $("rate_now").textContent = fmt(Math.round(j.throughput.now_per_second));
  $("rate_avg").textContent = fmt(Math.round(j.throughput.average_per_second));
  $("progress").textContent = pct(j.progress); $("eta").textContent = dur(j.eta_seconds);
  flowDrawing(j); sourceBars(j); chart(j);
  tableRows($("rejections").tBodies[0], j.rejections.map(function (r) { return [r.reason, fmt(r.count)]; }));
  var e = $("errors"); e.textContent = "";
  j.errors.forEach(function (x) { e.appendChild(el("li", {}, x)); });
  j.dead_letters.forEach(function (d) {
    e.appendChild(el("li", {}, "dead letter: source " + d.source + " element " + d.index +
      (d.count > 1 ? " (+" + (d.count - 1) + ")" : "") + (d.value ? " value " + d.value : "") + ": " + d.error));
  });
  if (!e.children.length) e.appendChild(el("li", {"class": "mute"}, "none"));
  result(j);
  document.body.setAttribute("data-updated", st.now);
}
function poll() {
  fetch("/status", {cache: "no-store"}).then(function (r) { return r.json(); }).then(function (st) {
    last = st; $("err").textContent = ""; draw(st);
  }).catch(function () {
    $("err").textContent = "the program no longer answers (it ended, or the connection is lost); showing the last status";
  }).then(function () { setTimeout(poll, 1000); });
}
poll();
</script>
</body>
</html>
)html";

} // namespace

const std::string& status_page() {
  static const std::string page{page_text};
  return page;
}

} // namespace flow
