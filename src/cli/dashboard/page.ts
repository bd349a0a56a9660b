/**
 * The dashboard's one page: HTML, CSS and a script, no build step. It loads uPlot from the
 * dashboard server (`/assets/uplot.js`), reads the per-run token from the URL's fragment, and
 * talks only to the dashboard server's `/api/…` with it. Live figures are polled (state every
 * two seconds, call figures every second); streams, watches and the log come as lines of JSON.
 */

const STYLE = `
:root { --bg:#0f1419; --panel:#171e26; --line:#263241; --text:#dce3ea; --dim:#8a98a8;
  --ok:#3fb950; --bad:#f85149; --warn:#d29922; --accent:#58a6ff; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--text); }
header { display:flex; gap:1rem; align-items:center; padding:.6rem 1rem; border-bottom:1px solid var(--line); }
header h1 { font-size:1.05rem; margin:0; }
#link { width:.7rem; height:.7rem; border-radius:50%; background:var(--warn); display:inline-block; }
#link.ok { background:var(--ok); } #link.bad { background:var(--bad); }
main { display:grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap:1rem; padding:1rem; }
section { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:.6rem .8rem; min-width:0; }
section.wide { grid-column: 1 / -1; }
h2 { font-size:.95rem; margin:.1rem 0 .5rem; color:var(--dim); text-transform:uppercase; letter-spacing:.04em; }
table { width:100%; border-collapse:collapse; font-size:13px; }
th, td { text-align:left; padding:.25rem .4rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--dim); font-weight:600; }
td.num { text-align:right; font-variant-numeric: tabular-nums; }
td.actions { white-space:nowrap; } td.actions button { margin-right:.2rem; }
.up { color:var(--ok); } .down { color:var(--bad); } .err { color:var(--bad); } .dim { color:var(--dim); }
.tag { display:inline-block; padding:0 .35rem; margin:0 .2rem .1rem 0; border-radius:9px; background:#22303f; font-size:12px; }
button { background:#21262d; color:var(--text); border:1px solid var(--line); border-radius:4px; padding:.2rem .6rem; cursor:pointer; }
button:hover { border-color:var(--accent); } button:disabled { opacity:.45; cursor:default; }
input, select, textarea { background:#0d1117; color:var(--text); border:1px solid var(--line); border-radius:4px; padding:.25rem .4rem; font:inherit; }
textarea { width:100%; min-height:2.2rem; font-family:ui-monospace, monospace; font-size:12px; }
label { display:block; margin:.3rem 0; } label span { display:inline-block; min-width:9rem; color:var(--dim); }
pre, ol.lines { background:#0d1117; border:1px solid var(--line); border-radius:4px; padding:.4rem; margin:.4rem 0 0;
  max-height:14rem; overflow:auto; font:12px/1.35 ui-monospace, monospace; white-space:pre-wrap; word-break:break-all; }
ol.lines { list-style:none; } ol.lines li { border-bottom:1px dotted #1f2933; }
.row { display:flex; gap:.5rem; align-items:center; flex-wrap:wrap; }
.charts { display:grid; grid-template-columns: 1fr 1fr; gap:.5rem; }
.chart { min-height:190px; }
.u-legend { font-size:11px; }
`;

const SCRIPT = String.raw`
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ({ "&":"&amp;", "<":"&lt;", ">":"&gt;", '"':"&quot;", "'":"&#39;" })[c]);
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) { sessionStorage.setItem("aio-token", fromHash); history.replaceState(null, "", location.pathname); }
const TOKEN = sessionStorage.getItem("aio-token") || "";
const headers = { "x-dashboard-token": TOKEN, "content-type": "application/json" };

async function api(path, body) {
  const response = await fetch(path, body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
  const answer = await response.json();
  if (!response.ok) throw Object.assign(new Error(answer.error?.message ?? response.statusText), { code: answer.error?.code });
  return answer;
}

/** POSTs and calls onLine with each JSON line of the answer until it ends or signal aborts. */
async function lines(path, body, onLine, signal) {
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body), signal });
  if (!response.ok) { const answer = await response.json(); throw new Error(answer.error?.message ?? response.statusText); }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    let at;
    while ((at = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      if (line) onLine(JSON.parse(line));
    }
  }
}

const ago = (t) => { if (!t) return "never"; const s = Math.max(0, (Date.now() - t) / 1000); return s < 60 ? s.toFixed(0) + " s ago" : (s / 60).toFixed(0) + " min ago"; };
const ms = (v) => v === null || v === undefined ? "–" : v < 1 ? (v * 1000).toFixed(0) + " µs" : v.toFixed(v < 10 ? 2 : 0) + " ms";
let state = { endpoints: [], plugins: [], nodes: [] };
let figures = { endpoints: [], reloads: {}, workerRestarts: {} };

function setLink(ok, why) { const link = $("link"); link.className = ok ? "ok" : "bad"; link.title = why || ""; $("link-text").textContent = ok ? "live" : "no answer: " + why; }

function renderNodes() {
  const rows = state.nodes.map((n) =>
    '<tr data-node="' + esc(n.hostname) + '"><td>' + esc(n.hostname) + '</td><td class="state ' + (n.alive ? "up" : "down") + '">' + (n.alive ? "up" : "down") +
    '</td><td>' + esc(n.address) + '</td><td>' + ago(n.lastSeen) + '</td><td class="num">' + ms(n.rttMs) + '</td><td>' + esc(n.transport || "") +
    '</td><td>' + n.plugins.map((p) => '<span class="tag">' + esc(p) + '</span>').join("") + '</td></tr>');
  $("nodes").innerHTML = rows.join("") || '<tr><td colspan="7" class="dim">no other node known</td></tr>';
}

function errorsOf(plugin) {
  let n = 0;
  for (const e of figures.endpoints) if (e.plugin === plugin && e.side !== "made") for (const c of Object.values(e.errors)) n += c;
  return n;
}

function pluginRow(p, node, own) {
  const actions = own ? ["enable", "disable", "reload"].map((a) => '<button data-action="' + a + '" data-plugin="' + esc(p.name) + '">' + a + '</button>').join(" ") : "";
  const calls = own ? errorsOf(p.name) : 0;
  return '<tr data-plugin="' + esc(own ? p.name : node + "/" + p.name) + '"><td>' + esc(node) + '</td><td>' + esc(p.name) + '</td><td>' + esc(p.version) +
    '</td><td class="state ' + (p.state === "enabled" ? "up" : p.state === "failed" ? "down" : "dim") + '">' + esc(p.state) +
    '</td><td>' + esc(p.isolation) + '</td><td class="num">' + (own ? (figures.reloads[p.name] ?? 0) : "–") + '</td><td>' +
    (p.error ? '<span class="err">' + esc((p.errorCode ? p.errorCode + ": " : "") + p.error) + '</span>' : "") + (calls ? ' <span class="err">' + calls + ' call error(s)</span>' : "") +
    '</td><td class="actions">' + actions + '</td></tr>';
}

function renderPlugins() {
  const rows = state.plugins.map((p) => pluginRow(p, state.hostname, true));
  for (const [node, plugins] of Object.entries(state.peers || {})) for (const p of plugins) rows.push(pluginRow(p, node, false));
  $("plugins").innerHTML = rows.join("");
}

const endpointKey = (e) => e.hostname + "/" + e.plugin + "." + e.endpoint.access_name;
const callable = (e) => state.anywhere || e.hostname === state.hostname;
const isStream = (e) => e.endpoint.kind === "generator" || e.endpoint.kind === "async generator";

function renderEndpoints() {
  $("endpoints").innerHTML = state.endpoints.map((e) => {
    const args = e.endpoint.arguments.map((a) => esc(a.name) + ": " + esc(a.type) + (a.required ? "" : "?")).join(", ");
    return '<tr data-endpoint="' + esc(endpointKey(e)) + '"><td>' + esc(e.hostname) + '</td><td>' + esc(e.plugin) + "." + esc(e.endpoint.access_name) +
      (isStream(e) ? ' <span class="tag">stream</span>' : "") + '</td><td>' + args + '</td><td>' + e.endpoint.tags.map((t) => '<span class="tag">' + esc(t) + "</span>").join("") +
      '</td><td>' + esc(e.endpoint.topic ?? "") + '</td><td>' + (e.endpoint.remote ? "yes" : "no") + '</td><td>' +
      (callable(e) ? '<button data-try="' + esc(endpointKey(e)) + '">try</button>' : '<span class="dim" title="a dashboard of a running node (--node) calls that node only">–</span>') + '</td></tr>';
  }).join("");
  const select = $("call-endpoint");
  const chosen = select.value;
  const offered = state.endpoints.filter(callable);
  const keys = offered.map(endpointKey);
  if (select.dataset.keys !== keys.join("\n")) {
    select.dataset.keys = keys.join("\n");
    select.innerHTML = offered.map((e) => '<option value="' + esc(endpointKey(e)) + '">' + esc(endpointKey(e)) + "</option>").join("");
    if (keys.includes(chosen)) select.value = chosen;
    renderForm();
  }
}

function chosenEndpoint() { return state.endpoints.filter(callable).find((e) => endpointKey(e) === $("call-endpoint").value); }

function renderForm() {
  const e = chosenEndpoint();
  const form = $("call-args");
  if (!e) { form.innerHTML = ""; return; }
  form.innerHTML = e.endpoint.arguments.map((a) => {
    const name = "arg-" + esc(a.name);
    const title = esc(a.name) + ": " + esc(a.type) + (a.required ? " (required)" : "");
    const given = a.default === undefined ? "" : a.default;
    let input;
    if (a.type === "bool" || a.type === "boolean") input = '<input type="checkbox" name="' + name + '"' + (given === true ? " checked" : "") + ">";
    else if (["int", "float", "number"].includes(a.type)) input = '<input type="number" step="' + (a.type === "int" ? "1" : "any") + '" name="' + name + '" value="' + esc(given) + '">';
    else if (a.type === "str" || a.type === "string") input = '<input type="text" name="' + name + '" value="' + esc(given) + '">';
    else input = '<textarea name="' + name + '" placeholder="JSON">' + (given === "" ? "" : esc(JSON.stringify(given))) + "</textarea>";
    return '<label title="' + esc(a.description || "") + '"><span>' + title + "</span> " + input + "</label>";
  }).join("") || '<span class="dim">no arguments</span>';
  $("call-host").value = e.hostname;
  $("stream-button").disabled = !isStream(e);
  $("call-button").disabled = isStream(e);
}

function formArgs(e) {
  const args = {};
  for (const a of e.endpoint.arguments) {
    const input = document.querySelector('[name="arg-' + CSS.escape(a.name) + '"]');
    if (!input) continue;
    if (a.type === "bool" || a.type === "boolean") { args[a.name] = input.checked; continue; }
    const raw = input.value;
    if (raw === "") { if (a.required) throw new Error('"' + a.name + '" is required'); continue; }
    if (["int", "float", "number"].includes(a.type)) args[a.name] = Number(raw);
    else if (a.type === "str" || a.type === "string") args[a.name] = raw;
    else { try { args[a.name] = JSON.parse(raw); } catch { throw new Error('"' + a.name + '" is not JSON: ' + raw); } }
  }
  return args;
}

function show(target, value) { $(target).textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2); }

async function call() {
  const e = chosenEndpoint(); if (!e) return;
  $("stream-items").innerHTML = "";
  try {
    const answer = await api("/api/call", { plugin: e.plugin, method: e.endpoint.access_name, args: formArgs(e), host: $("call-host").value });
    show("call-output", answer.error ? answer.error.code + ": " + answer.error.message : answer.result);
    $("call-output").className = answer.error ? "err" : "";
  } catch (error) { show("call-output", String(error.message)); $("call-output").className = "err"; }
}

let streaming;
async function stream() {
  const e = chosenEndpoint(); if (!e) return;
  streaming?.abort();
  const controller = new AbortController();
  streaming = controller;
  const list = $("stream-items");
  list.innerHTML = "";
  $("stop-button").disabled = false;
  show("call-output", "streaming…");
  $("call-output").className = "";
  let count = 0;
  try {
    await lines("/api/stream", { plugin: e.plugin, method: e.endpoint.access_name, args: formArgs(e), host: $("call-host").value }, (line) => {
      if ("item" in line) { const li = document.createElement("li"); li.textContent = JSON.stringify(line.item); list.append(li); list.scrollTop = list.scrollHeight; count++; }
      else if (line.error) { show("call-output", line.error.code + ": " + line.error.message); $("call-output").className = "err"; }
      else if (line.end) show("call-output", "ended: " + count + " item(s)");
    }, controller.signal);
  } catch (error) {
    show("call-output", controller.signal.aborted ? "stopped after " + count + " item(s)" : String(error.message));
  } finally {
    if (streaming === controller) { streaming = undefined; $("stop-button").disabled = true; }
  }
}

async function publish() {
  try {
    const raw = $("publish-args").value.trim();
    const answer = await api("/api/publish", { topic: $("publish-topic").value, args: raw === "" ? null : JSON.parse(raw) });
    show("publish-result", answer.error ? answer.error.code + ": " + answer.error.message : answer.count + " subscriber(s) took it");
  } catch (error) { show("publish-result", String(error.message)); }
}

let watching;
async function watch() {
  watching?.abort();
  const controller = new AbortController();
  watching = controller;
  $("watch-items").innerHTML = "";
  $("watch-stop").disabled = false;
  try {
    await lines("/api/watch", { pattern: $("watch-pattern").value }, (line) => {
      if (!("item" in line)) return;
      const m = line.item, li = document.createElement("li");
      li.textContent = m.topic + " from " + m.publisherHost + "/" + m.publisher + ": " + JSON.stringify(m.args);
      $("watch-items").prepend(li);
    }, controller.signal);
  } catch (error) { if (!controller.signal.aborted) show("publish-result", String(error.message)); }
  finally { if (watching === controller) { watching = undefined; $("watch-stop").disabled = true; } }
}

async function tailLog() {
  for (;;) {
    try {
      await lines("/api/log", {}, (line) => {
        if (!("item" in line)) return;
        const l = line.item, li = document.createElement("li");
        li.className = l.level === "ERROR" || l.level === "CRITICAL" ? "err" : l.level === "WARNING" ? "warn" : "";
        li.textContent = new Date(l.time).toLocaleTimeString() + " " + l.level + " [" + l.source + "] " + l.message;
        const list = $("log");
        list.append(li);
        while (list.children.length > 500) list.firstChild.remove();
        list.scrollTop = list.scrollHeight;
      });
    } catch {}
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// Charts: calls/s and p99 per endpoint, the last two minutes.
const HISTORY = 120;
const series = new Map();
const times = [];
let charts = [];
function figureKey(f) { return f.plugin + "." + f.endpoint + (f.side === "made" ? " →" : f.side === "served_remote" ? " ←" : ""); }
function drawCharts() {
  const keys = [...series.keys()];
  const width = Math.max(300, $("rate-chart").clientWidth);
  const palette = ["#58a6ff", "#3fb950", "#d29922", "#f778ba", "#a371f7", "#79c0ff", "#ffa657", "#56d364"];
  const opts = (title) => ({ title, width, height: 180, scales: { x: { time: true } },
    series: [{}, ...keys.map((k, i) => ({ label: k, stroke: palette[i % palette.length], width: 1.5 }))],
    axes: [{ stroke: "#8a98a8", grid: { stroke: "#263241" } }, { stroke: "#8a98a8", grid: { stroke: "#263241" } }] });
  const data = (field) => [times, ...keys.map((k) => series.get(k)[field])];
  if (charts.length && charts[0].series.length === keys.length + 1) {
    charts[0].setData(data("rate")); charts[1].setData(data("p99"));
    return;
  }
  for (const c of charts) c.destroy();
  $("rate-chart").innerHTML = ""; $("p99-chart").innerHTML = "";
  if (typeof uPlot === "undefined") return;
  charts = [new uPlot(opts("calls / s"), data("rate"), $("rate-chart")), new uPlot(opts("p99 latency (ms)"), data("p99"), $("p99-chart"))];
}

function renderFigures() {
  times.push(figures.time / 1000);
  for (const f of figures.endpoints) {
    const k = figureKey(f);
    if (!series.has(k)) series.set(k, { rate: times.slice(0, -1).map(() => null), p99: times.slice(0, -1).map(() => null) });
  }
  for (const [k, s] of series) {
    const f = figures.endpoints.find((e) => figureKey(e) === k);
    s.rate.push(f ? f.rate : 0); s.p99.push(f ? f.p99 : null);
  }
  if (times.length > HISTORY) { times.shift(); for (const s of series.values()) { s.rate.shift(); s.p99.shift(); } }
  drawCharts();
  $("calls").innerHTML = figures.endpoints.map((f) =>
    '<tr data-figures="' + esc(f.plugin + "." + f.endpoint + "/" + f.side) + '"><td>' + esc(f.plugin + "." + f.endpoint) + '</td><td class="dim">' + esc(f.side.replace("_", " ")) +
    '</td><td class="num rate">' + f.rate.toFixed(1) + '</td><td class="num">' + ms(f.p50) + '</td><td class="num">' + ms(f.p99) + '</td><td class="num">' + f.total +
    '</td><td>' + Object.entries(f.errors).map(([c, n]) => '<span class="err">' + esc(c) + " " + n + "</span>").join(" ") + "</td></tr>").join("") ||
    '<tr><td colspan="7" class="dim">no calls yet</td></tr>';
}

async function refreshState() {
  try {
    state = await api("/api/state");
    $("title").textContent = "AIO Core: " + state.hostname;
    $("where").textContent = state.where;
    renderNodes(); renderPlugins(); renderEndpoints();
    setLink(true);
  } catch (error) { setLink(false, error.message); }
}
async function refreshFigures() {
  try { figures = await api("/api/metrics"); renderFigures(); } catch {}
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  if (button.dataset.action) {
    button.disabled = true;
    try {
      const answer = await api("/api/act", { action: button.dataset.action, plugin: button.dataset.plugin });
      show("act-result", answer.error ? answer.error.code + ": " + answer.error.message : button.dataset.plugin + ": " + button.dataset.action + " done");
    } catch (error) { show("act-result", String(error.message)); }
    button.disabled = false;
    await refreshState();
  } else if (button.dataset.try) {
    $("call-endpoint").value = button.dataset.try; renderForm(); $("call-panel").scrollIntoView({ behavior: "smooth" });
  }
});
$("call-endpoint").addEventListener("change", renderForm);
$("call-button").addEventListener("click", call);
$("stream-button").addEventListener("click", stream);
$("stop-button").addEventListener("click", () => streaming?.abort());
$("publish-button").addEventListener("click", publish);
$("watch-button").addEventListener("click", watch);
$("watch-stop").addEventListener("click", () => watching?.abort());
if (!TOKEN) setLink(false, "no token: open the URL aio dashboard printed");
refreshState(); refreshFigures(); tailLog();
setInterval(refreshState, 2000);
setInterval(refreshFigures, 1000);
`;

const BODY = `
<header><span id="link"></span><h1 id="title">AIO Core</h1><span class="dim" id="where"></span><span class="dim" id="link-text"></span></header>
<main>
<section><h2>Nodes</h2><table><thead><tr><th>node</th><th>state</th><th>address</th><th>last seen</th><th>rtt</th><th>transport</th><th>plugins</th></tr></thead><tbody id="nodes"></tbody></table></section>
<section><h2>Plugins</h2><table><thead><tr><th>node</th><th>plugin</th><th>version</th><th>state</th><th>isolation</th><th>reloads</th><th>errors</th><th></th></tr></thead><tbody id="plugins"></tbody></table><pre id="act-result" class="dim"></pre></section>
<section class="wide"><h2>Calls</h2><div class="charts"><div id="rate-chart" class="chart"></div><div id="p99-chart" class="chart"></div></div>
<table><thead><tr><th>endpoint</th><th>side</th><th>calls/s</th><th>p50</th><th>p99</th><th>total</th><th>errors</th></tr></thead><tbody id="calls"></tbody></table></section>
<section class="wide"><h2>Endpoints</h2><table><thead><tr><th>node</th><th>endpoint</th><th>arguments</th><th>tags</th><th>topic</th><th>remote</th><th></th></tr></thead><tbody id="endpoints"></tbody></table></section>
<section id="call-panel"><h2>Call</h2>
<label><span>endpoint</span> <select id="call-endpoint"></select></label>
<label><span>host</span> <input id="call-host" placeholder="any"></label>
<div id="call-args"></div>
<div class="row"><button id="call-button">Call</button><button id="stream-button">Stream</button><button id="stop-button" disabled>Stop</button></div>
<pre id="call-output"></pre><ol id="stream-items" class="lines"></ol></section>
<section><h2>Topics</h2>
<label><span>topic</span> <input id="publish-topic" placeholder="sensor/kitchen/temperature"></label>
<label><span>args (JSON)</span> <textarea id="publish-args" placeholder='{"celsius": 21.5}'></textarea></label>
<div class="row"><button id="publish-button">Publish</button></div><pre id="publish-result"></pre>
<label><span>watch pattern</span> <input id="watch-pattern" value=">"></label>
<div class="row"><button id="watch-button">Watch</button><button id="watch-stop" disabled>Stop</button></div>
<ol id="watch-items" class="lines"></ol></section>
<section class="wide"><h2>Log</h2><ol id="log" class="lines"></ol></section>
</main>`;

/** The page; the same for every run (the token is in the URL, not in the page). */
export function dashboardPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>AIO Core dashboard</title><link rel="stylesheet" href="/assets/uplot.css"><style>${STYLE}</style>
<script src="/assets/uplot.js"></script></head>
<body>${BODY}<script>${SCRIPT}</script></body></html>`;
}
