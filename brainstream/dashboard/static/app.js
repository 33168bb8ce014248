"use strict";
// brainstream dashboard: polls the JSON endpoints and renders them. No framework, no CDN.

const PALETTE = ["#0969da", "#1a7f37", "#bf3989", "#9a6700", "#8250df",
  "#cf222e", "#1b7c83", "#953800", "#57606a", "#4d2d8f"];
const fmt = new Intl.NumberFormat("en-US");
const state = { window: "1h", refreshMs: 5000, chart: null, user: null, next: null };

const $ = (id) => document.getElementById(id);

// The bearer token of the per-user endpoint, kept for this tab only (never in localStorage).
const TOKEN_KEY = "brainstream.api-token";

async function getJSON(url, { auth = false } = {}) {
  const headers = { Accept: "application/json" };
  const token = auth ? sessionStorage.getItem(TOKEN_KEY) : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { headers });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function cell(text, { num = false, value = null, time = false } = {}) {
  const td = document.createElement("td");
  td.textContent = text;
  if (num) td.className = "num";
  if (time) td.className = "time";
  if (value !== null) td.dataset.value = String(value);
  return td;
}

function row(...cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

function setNumber(el, n) {
  el.dataset.value = String(n);
  el.textContent = fmt.format(n);
}

function when(el, iso) {
  if (!iso) { el.textContent = "never"; el.title = ""; return; }
  const d = new Date(iso);
  const ago = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
  const span = ago < 120 ? `${ago} s` : ago < 7200 ? `${Math.round(ago / 60)} min` : `${Math.round(ago / 3600)} h`;
  el.textContent = `${d.toISOString().slice(11, 19)} UTC, ${span} ago`;
  el.title = d.toISOString();
}

function bucketLabel(iso, granularity) {
  const t = iso.slice(0, 16).replace("T", " ");
  return granularity === "minute" ? t.slice(11) : t.slice(5);
}

// -- events per type over time -------------------------------------------------------------
function renderSeries(series) {
  const labels = series.buckets.map((b) => bucketLabel(b, series.granularity));
  const types = Object.keys(series.counts);
  $("series-granularity").textContent = `(${series.granularity} buckets, UTC)`;
  const datasets = types.map((type, i) => ({
    label: type,
    data: series.counts[type],
    borderColor: PALETTE[i % PALETTE.length],
    backgroundColor: PALETTE[i % PALETTE.length] + "cc",
    borderWidth: 0,
  }));
  if (window.Chart) {
    if (!state.chart) {
      state.chart = new window.Chart($("series-chart"), {
        type: "bar",
        data: { labels, datasets },
        options: {
          animation: false,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          scales: { y: { stacked: true, beginAtZero: true, title: { display: true, text: "events" } },
                    x: { stacked: true, ticks: { maxTicksLimit: 12 } } },
          plugins: { legend: { position: "bottom" } },
        },
      });
    } else {
      state.chart.data.labels = labels;
      state.chart.data.datasets = datasets;
      state.chart.update("none");
    }
  }
  const total = types.reduce((s, t) => s + series.counts[t].reduce((a, b) => a + b, 0), 0);
  $("series-chart").setAttribute("aria-label",
    `Stacked bar chart of ${fmt.format(total)} events over ${labels.length} ${series.granularity} ` +
    `buckets for ${types.length} event types; the same data is in the table below`);
  const head = $("series-table").tHead;
  head.replaceChildren(row(...["Bucket", ...types].map((t) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = t;
    return th;
  })));
  const body = $("series-table").tBodies[0];
  body.replaceChildren(...series.buckets.map((b, i) => row(
    cell(bucketLabel(b, series.granularity)),
    ...types.map((t) => cell(fmt.format(series.counts[t][i]), { num: true, value: series.counts[t][i] })),
  )).reverse());
}

// -- top types -----------------------------------------------------------------------------
function renderTop(top) {
  setNumber($("total-events"), top.events);
  setNumber($("total-users"), top.distinct_users);
  const asOf = new Date(top.distinct_as_of);
  $("distinct-note").textContent = Date.now() - asOf.getTime() > 5000
    ? `(distinct users as of ${asOf.toISOString().slice(11, 19)} UTC)` : "";
  const body = $("top-table").tBodies[0];
  body.replaceChildren(...top.types.map((t) => {
    const tr = row(
      cell(t.event_type),
      cell(fmt.format(t.events), { num: true, value: t.events }),
      cell(fmt.format(t.distinct_users), { num: true, value: t.distinct_users }),
    );
    tr.dataset.type = t.event_type;
    return tr;
  }));
  if (!top.types.length) body.replaceChildren(row(cell("no events in this window")));
}

// -- pipeline health -----------------------------------------------------------------------
function renderHealth(h) {
  const el = $("health-state");
  el.textContent = h.ok ? "Healthy" : "Unhealthy";
  el.className = "state " + (h.ok ? "ok" : "bad");
  $("health-problems").replaceChildren(...h.problems.map((p) => {
    const li = document.createElement("li");
    li.textContent = p;
    return li;
  }));
  const k = h.kafka;
  if (k) setNumber($("dlq-count"), k.dlq_records);
  $("rate-in").textContent = h.rates ? h.rates.events_in.toFixed(1) : "–";
  for (const [id, key] of [["last-raw", "last_raw_write"], ["last-agg", "last_aggregate_write"]]) {
    if (h.database) when($(id), h.database[key]);
    else $(id).textContent = "unknown (database down)";
  }
  const rates = h.rates ? Object.entries(h.rates.consumed) : [];
  $("rates-table").tBodies[0].replaceChildren(...rates.map(([group, r]) =>
    row(cell(group), cell(r.toFixed(1), { num: true, value: r }))));
  const lags = k ? k.lags : [];
  $("lag-table").tBodies[0].replaceChildren(...lags.map((x) => {
    const tr = row(cell(x.group), cell(x.source === "fence" ? "aggregate fence" : "committed"),
      cell(String(x.partition), { num: true }),
      cell(x.position === null ? "none" : fmt.format(x.position), { num: true }),
      cell(fmt.format(x.end), { num: true }), cell(fmt.format(x.lag), { num: true, value: x.lag }));
    tr.dataset.group = x.group;
    tr.dataset.source = x.source;
    tr.dataset.partition = String(x.partition);
    return tr;
  }));
}

// -- user lookup ---------------------------------------------------------------------------
async function lookUp(userId, after) {
  const q = after ? `?after=${encodeURIComponent(after)}` : "";
  const data = await getJSON(`/api/users/${encodeURIComponent(userId)}${q}`, { auth: true });
  const timeline = $("user-timeline").tBodies[0];
  if (!after) {
    timeline.replaceChildren();
    $("user-counts").tBodies[0].replaceChildren(...data.counts.map((c) => row(
      cell(c.event_type), cell(fmt.format(c.events), { num: true, value: c.events }),
      cell(c.last_seen.slice(0, 19).replace("T", " "), { time: true }))));
  }
  timeline.append(...data.events.map((e) => {
    const tr = row(cell(e.occurred_at.slice(0, 23).replace("T", " "), { time: true }), cell(e.event_type),
      cell(e.source), cell(JSON.stringify(e.properties)));
    tr.dataset.eventId = e.event_id;
    return tr;
  }));
  state.next = data.next;
  $("user-more").hidden = !data.next;
  const shown = timeline.rows.length;
  $("user-status").textContent = shown
    ? `${shown} event(s) of ${userId} shown${data.next ? "; older events available" : ""}`
    : `no events for ${userId}`;
}

// -- refresh loop --------------------------------------------------------------------------
async function refresh() {
  const w = encodeURIComponent(state.window);
  const results = await Promise.allSettled([
    getJSON(`/api/series?window=${w}`).then(renderSeries),
    getJSON(`/api/top?window=${w}`).then(renderTop),
    getJSON("/api/health").then(renderHealth),
  ]);
  const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason.message);
  $("updated").textContent = failed.length
    ? `update failed: ${failed.join("; ")}`
    : `updated ${new Date().toISOString().slice(11, 19)} UTC, every ${state.refreshMs / 1000} s`;
  document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
}

async function loop() {
  try { await refresh(); } finally { setTimeout(loop, state.refreshMs); }
}

async function start() {
  try {
    const s = await getJSON("/api/settings");
    state.refreshMs = Math.round(s.refresh_seconds * 1000);
    $("api-token").hidden = $("api-token-label").hidden = !s.token_required;
  } catch (e) { /* keep the default */ }
  $("api-token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  for (const input of document.querySelectorAll('input[name="window"]')) {
    input.addEventListener("change", () => { state.window = input.value; refresh(); });
  }
  $("user-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("api-token").value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    state.user = $("user-id").value.trim();
    if (state.user) lookUp(state.user, null).catch((e) => { $("user-status").textContent = e.message; });
  });
  $("user-more").addEventListener("click", () => {
    if (state.user && state.next) lookUp(state.user, state.next).catch((e) => { $("user-status").textContent = e.message; });
  });
  loop();
}

document.addEventListener("DOMContentLoaded", start);
