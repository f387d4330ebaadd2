// queuectl dashboard: plain DOM code, no framework, no build step.
//
// Safety rule: every value that comes from the server is put into the page as text
// (textContent / createTextNode / setAttribute on harmless attributes), never as HTML.

"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const PAGE_SIZE = 50;
const STATES = ["pending", "processing", "completed", "failed", "dead"];

// ---- small helpers ---------------------------------------------------------------------------

/** Creates an element; strings and numbers among children become text nodes. */
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function $(id) {
  return document.getElementById(id);
}

function setText(id, value) {
  $(id).textContent = String(value);
}

const fmtInt = new Intl.NumberFormat("en");

/** Server time minus browser time, from the last stats message. */
let clockOffset = 0;

function serverNow() {
  return Date.now() + clockOffset;
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m}m ${s % 60}s` : `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h}h ${m % 60}m` : `${h}h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d}d ${h % 24}h` : `${d}d`;
}

/** "3m ago" or "in 20s" for an ISO time; "–" for null. */
function relative(iso) {
  if (!iso) return "–";
  const diff = (Date.parse(iso) - serverNow()) / 1000;
  if (Math.abs(diff) < 1) return "now";
  return diff < 0 ? `${duration(-diff)} ago` : `in ${duration(diff)}`;
}

function timeCell(iso) {
  return el("time", { datetime: iso ?? undefined, title: iso ?? undefined }, relative(iso));
}

function stateBadge(state) {
  return el("span", { class: `badge state-${state}` }, state);
}

/**
 * The state, and for a job waiting for its run_at (delayed, or a retry) when it is due; a job
 * waiting for its dependencies shows as waiting, blocked on them.
 */
function stateCell(job) {
  if (job.blocked_on) {
    const on = job.blocked_on;
    return [
      el("span", { class: "badge state-pending", dataset: { waiting: "" } }, "waiting"),
      el(
        "span",
        { class: "scheduled muted" },
        ` blocked on ${on.slice(0, 3).join(", ")}${
          on.length > 3 ? ` and ${on.length - 3} more` : ""
        }`,
      ),
    ];
  }
  const waiting = (job.state === "pending" || job.state === "failed") &&
    Date.parse(job.run_at) > serverNow();
  return [
    stateBadge(job.state),
    waiting
      ? el(
        "span",
        { class: "scheduled muted", title: job.run_at, dataset: { scheduled: job.run_at } },
        ` scheduled, runs ${relative(job.run_at)}`,
      )
      : null,
  ];
}

function jobHref(id) {
  return `#job/${encodeURIComponent(id)}`;
}

function truncate(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

// Colour and style sequences (ESC [ ... m) carry no text: dropped. Every other control character,
// and the bidi controls that can make text read in another order than it is, shown as \xNN / \uNNNN.
// deno-lint-ignore no-control-regex
const SGR = /\x1b\[[0-9;]*m/g;
// deno-lint-ignore no-control-regex
const INVISIBLE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

function visible(text) {
  return text.replace(SGR, "").replace(INVISIBLE, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/**
 * The end of a stderr tail worth showing: its last non-empty lines (at most `lines`), a first
 * line cut by the tail's limit dropped, "…" when anything before is not shown.
 */
function tailLines(tail, cutAt, lines = 3) {
  let all = visible(tail).replace(/\s+$/, "").split("\n");
  let cut = tail.length >= cutAt;
  if (cut && all.length > 1) all = all.slice(1);
  all = all.filter((line) => line.trim() !== "");
  if (all.length > lines) {
    all = all.slice(-lines);
    cut = true;
  }
  return (cut ? "…" : "") + all.join("\n");
}

// ---- API -------------------------------------------------------------------------------------

async function api(path, options = {}) {
  const init = { method: options.method ?? "GET", headers: { accept: "application/json" } };
  if (init.method !== "GET") {
    init.headers["x-csrf-token"] = CSRF;
    if (options.body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
  }
  const res = await fetch(path, init);
  let data = null;
  try {
    data = await res.json();
  } catch {
    // not JSON: keep null
  }
  if (res.status === 401) {
    const err = new Error(
      "This page is no longer logged in (the dashboard's access token changed?): open the link " +
        "`queuectl dashboard --print-url` prints.",
    );
    err.status = 401;
    throw err;
  }
  if (!res.ok) {
    const message = data && typeof data.error === "string"
      ? data.error + (data.hint ? ` (${data.hint})` : "")
      : `HTTP ${res.status}`;
    const err = new Error(message);
    err.status = res.status;
    throw err;
  }
  return data;
}

let noticeTimer;

/** Hides every message box, so that the one about to be shown is the only one. */
function clearBanners() {
  clearTimeout(noticeTimer);
  $("notice").hidden = true;
  $("enqueue-error").hidden = true;
}

function notify(message, kind = "ok", link) {
  clearBanners();
  const box = $("notice");
  box.replaceChildren(message);
  if (link) box.append(" ", el("a", { href: link.href }, link.text));
  box.className = `notice ${kind}`;
  box.hidden = false;
  noticeTimer = setTimeout(() => (box.hidden = true), kind === "error" ? 10000 : 5000);
}

/** Runs an action from a button: disables it meanwhile, reports the outcome. */
async function act(button, fn) {
  button.disabled = true;
  try {
    await fn();
  } catch (err) {
    notify(err.message, "error");
  } finally {
    button.disabled = false;
  }
  refreshSoon();
}

// ---- routing ---------------------------------------------------------------------------------

/**
 * The view named by the location hash: #jobs?state=dead, #job/<id>, #dlq, #workers, #schedules,
 * #enqueue.
 */
function currentRoute() {
  const hash = location.hash.replace(/^#/, "") || "jobs";
  const q = hash.indexOf("?");
  const path = q < 0 ? hash : hash.slice(0, q);
  const params = new URLSearchParams(q < 0 ? "" : hash.slice(q + 1));
  if (path.startsWith("job/")) {
    let id = path.slice(4);
    try {
      id = decodeURIComponent(id);
    } catch {
      // keep it as typed
    }
    return { view: "job", id, params };
  }
  const view = ["jobs", "dlq", "queues", "workers", "schedules", "enqueue"].includes(path)
    ? path
    : "jobs";
  return { view, params };
}

function hashOf(view, params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined) search.set(k, v);
  const text = search.toString();
  return `#${view}${text ? `?${text}` : ""}`;
}

function setHashParams(view, params, replace) {
  const hash = hashOf(view, params);
  if (hash === location.hash) return;
  if (replace) history.replaceState(null, "", hash);
  else history.pushState(null, "", hash);
  render();
}

function render() {
  const route = currentRoute();
  if (route.view !== "job" || route.id !== confirmingCancel) confirmingCancel = "";
  if (route.view !== "job" || route.id !== confirmingKill) confirmingKill = "";
  for (const section of document.querySelectorAll(".view")) {
    section.hidden = section.id !== `view-${route.view}`;
  }
  for (const tab of document.querySelectorAll(".tabs a")) {
    const active = tab.dataset.view === route.view ||
      (route.view === "job" && tab.dataset.view === "jobs");
    tab.classList.toggle("active", active);
    if (active) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  lastSignature = "";
  refresh();
}

// ---- live header -----------------------------------------------------------------------------

let lastStats = null;
let lastSignature = "";
let lastRefresh = 0;

function renderStats(stats) {
  lastStats = stats;
  clockOffset = Date.parse(stats.now) - Date.now();
  for (const state of STATES) setText(`count-${state}`, fmtInt.format(stats.counts[state]));
  setText("workers-alive", fmtInt.format(stats.workers_alive));
  setText(
    "oldest-pending",
    stats.oldest_pending_age_seconds === null ? "–" : duration(stats.oldest_pending_age_seconds),
  );
  const rate = stats.throughput.per_second;
  setText("throughput", rate >= 10 ? rate.toFixed(0) : rate.toFixed(2));
  setText("rate-window", `(last ${span(stats.throughput.rate_window_seconds)})`);
  setText("database", stats.database);
  $("database").title = `database: ${stats.database}`;
  renderChart(stats.throughput);
  const signature = JSON.stringify([stats.counts, stats.workers_alive]);
  // A running job's detail tails its output: fetched again at every push (once a second).
  if (signature !== lastSignature || Date.now() - lastRefresh > 5000 || tailingJob) {
    lastSignature = signature;
    refresh();
  }
}

const SVG = "http://www.w3.org/2000/svg";

/** "minute", "10 minutes", "30 seconds": a window for the card's labels. */
function span(seconds) {
  if (seconds % 60 === 0) {
    const m = seconds / 60;
    return m === 1 ? "minute" : `${m} minutes`;
  }
  return seconds === 1 ? "second" : `${seconds} seconds`;
}

function renderChart(t) {
  const svg = $("chart");
  const n = t.completed.length;
  const shown = span(n * t.bucket_seconds);
  setText("chart-window", `per ${t.bucket_seconds}s, last ${shown}`);
  svg.setAttribute("aria-label", `Jobs completed per ${t.bucket_seconds} seconds, last ${shown}`);
  const max = Math.max(1, ...t.completed);
  const w = 240 / n;
  const bars = t.completed.map((count, i) => {
    const h = count === 0 ? 0 : Math.max(1.5, (count / max) * 38);
    const bar = document.createElementNS(SVG, "rect");
    bar.setAttribute("x", String(i * w + 0.5));
    bar.setAttribute("y", String(40 - h));
    bar.setAttribute("width", String(Math.max(0.5, w - 1)));
    bar.setAttribute("height", String(h));
    const title = document.createElementNS(SVG, "title");
    const start = new Date(Date.parse(t.since) + i * t.bucket_seconds * 1000);
    title.textContent =
      `${count} completed in the ${t.bucket_seconds}s from ${start.toLocaleTimeString()}`;
    bar.append(title);
    return bar;
  });
  const base = document.createElementNS(SVG, "line");
  for (const [k, v] of [["x1", 0], ["x2", 240], ["y1", 39.75], ["y2", 39.75]]) {
    base.setAttribute(k, String(v));
  }
  svg.replaceChildren(base, ...bars);
}

function setLive(status, text) {
  const live = $("live");
  live.dataset.status = status;
  live.textContent = text;
}

function connect() {
  if (!("EventSource" in window)) {
    pollStats();
    return;
  }
  const source = new EventSource("api/events");
  source.addEventListener("open", () => setLive("live", "live"));
  source.addEventListener("stats", (event) => {
    setLive("live", "live");
    renderStats(JSON.parse(event.data));
  });
  source.addEventListener("failure", (event) => {
    setLive("error", "database error");
    notify(JSON.parse(event.data).error, "error");
  });
  source.addEventListener("error", () => setLive("error", "reconnecting"));
}

async function pollStats() {
  try {
    renderStats(await api("api/stats"));
    setLive("live", "live");
  } catch {
    setLive("error", "reconnecting");
  }
  setTimeout(pollStats, 2000);
}

// ---- views -----------------------------------------------------------------------------------

let refreshing = false;
let refreshAgain = false;

/** Reloads the data of the current view (one request at a time). */
async function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  lastRefresh = Date.now();
  const route = currentRoute();
  if (route.view !== "job") tailingJob = false;
  try {
    if (route.view === "jobs") await showJobs(route.params);
    else if (route.view === "dlq") await showDlq(route.params);
    else if (route.view === "workers") await showWorkers();
    else if (route.view === "queues") await showQueues();
    else if (route.view === "schedules") await showSchedules();
    else if (route.view === "job") await showJob(route.id);
  } catch (err) {
    notify(err.message, "error");
  } finally {
    refreshing = false;
    if (refreshAgain) {
      refreshAgain = false;
      refresh();
    }
  }
}

let refreshTimer;

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 50);
}

function pageOf(params) {
  const page = Number(params.get("page") ?? "1");
  return Number.isInteger(page) && page >= 1 ? page : 1;
}

/**
 * Pages are asked for by cursor only (`after`: the last id of the page before), so a deep page
 * costs what the first does; the cursor of each page seen is kept here, for "Newer". A page past
 * the first without its cursor (a typed or edited URL) is not a position the API can serve: the
 * view shows page 1 of its filter, and the hash is fixed to say so. Returns the page shown.
 */
function pageQuery(view, query, params) {
  const after = params.get("after");
  if (pageOf(params) > 1 && !after) {
    params.delete("page");
    params.delete("after");
    history.replaceState(null, "", hashOf(view, Object.fromEntries(params)));
  }
  const page = pageOf(params);
  if (page > 1) query.set("after", after);
  return page;
}

/**
 * The hash params of page `p`, from page `page` with its response `data`. A page whose cursor is
 * not known here (Newer, after a reload of a deep page) is page 1.
 */
function pageParams(params, page, data, p) {
  const cursors = pageParams.cursors ??= new Map();
  const key = [...params].filter(([k]) => k !== "page" && k !== "after").join("&");
  cursors.set(`${key}#${page}`, params.get("after") ?? "");
  if (p === page + 1 && data.next) cursors.set(`${key}#${p}`, data.next);
  const out = { ...Object.fromEntries(params) };
  const after = cursors.get(`${key}#${p}`);
  if (p > 1 && after) Object.assign(out, { page: String(p), after });
  else {
    delete out.page;
    delete out.after;
  }
  return out;
}

/**
 * A search too short for the substring index tests a bounded number of jobs per page (see
 * docs/architecture.md, "Short searches"): said above the pager, never a silently short page.
 */
function incompleteNote(data) {
  if (!data.incomplete) return null;
  return el(
    "span",
    { class: "incomplete", role: "status" },
    `Search incomplete: a text shorter than 3 characters has no index, so each page tests ` +
      `${fmtInt.format(data.incomplete.scanned)} jobs; older jobs were not searched. ` +
      `“Older →” searches the next ${fmtInt.format(data.incomplete.scanned)}.`,
  );
}

/** Whether the view's search is shorter than 3 characters: no index serves it, pages are bounded. */
function shortSearch(params) {
  const text = params.get("search") ?? "";
  return text.length > 0 && text.length < 3;
}

/** The empty-table text: "no match" is not said of a search that left jobs untested. */
function emptyText(data, text) {
  return data.incomplete ? "No match among the jobs searched on this page." : text;
}

/**
 * `short`: a search shorter than 3 characters, whose pages are bounded (see incompleteNote): they
 * hold no fixed number of jobs, so the range says what this page holds, not a position.
 */
function pager(container, data, page, onPage, short = false) {
  const total = data.total;
  const first = data.jobs.length === 0 ? 0 : (page - 1) * PAGE_SIZE + 1;
  const last = (page - 1) * PAGE_SIZE + data.jobs.length;
  container.replaceChildren(
    incompleteNote(data) ?? "",
    el(
      "button",
      { type: "button", disabled: page <= 1, onclick: () => onPage(page - 1) },
      "← Newer",
    ),
    el(
      "span",
      { class: "range" },
      (short ? data.jobs.length === 0 : total === 0) && !data.incomplete
        ? "no jobs"
        : short
        ? `${fmtInt.format(data.jobs.length)} on this page`
        : `${fmtInt.format(first)}–${fmtInt.format(last)} of ${fmtInt.format(total)}${
          data.total_capped ? "+" : ""
        }`,
    ),
    el(
      "button",
      { type: "button", disabled: !data.next, onclick: () => onPage(page + 1) },
      "Older →",
    ),
  );
}

function emptyRow(columns, text) {
  return el("tr", { class: "empty" }, el("td", { colspan: columns }, text));
}

function fillFilters(form, params) {
  for (const input of form.elements) {
    if (!input.name || document.activeElement === input) continue;
    input.value = params.get(input.name) ?? "";
  }
}

function filterParams(form) {
  const out = {};
  for (const input of form.elements) if (input.name) out[input.name] = input.value.trim();
  return out;
}

async function showJobs(params) {
  const form = $("job-filters");
  fillFilters(form, params);
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  const page = pageQuery("jobs", query, params);
  for (const name of ["state", "queue", "search"]) {
    const v = params.get(name);
    if (v) query.set(name, v);
  }
  const data = await api(`api/jobs?${query}`);
  if (currentRoute().view !== "jobs") return;
  const rows = data.jobs.map((job) =>
    el(
      "tr",
      {
        class: "clickable",
        dataset: { id: job.id },
        onclick: () => (location.hash = jobHref(job.id)),
      },
      el("td", { class: "id" }, el("a", { href: jobHref(job.id) }, job.id)),
      el("td", {}, stateCell(job)),
      el("td", { class: "opt" }, job.queue),
      el("td", { class: "opt num" }, `${job.attempts}/${job.max_retries + 1}`),
      el(
        "td",
        { class: "command", title: job.command },
        el("code", {}, truncate(job.command, 120)),
      ),
      el("td", { class: "opt" }, timeCell(job.created_at)),
    )
  );
  $("jobs-table").tBodies[0].replaceChildren(
    ...(rows.length ? rows : [emptyRow(6, emptyText(data, "No jobs match."))]),
  );
  pager(
    $("jobs-pager"),
    data,
    page,
    (p) => setHashParams("jobs", pageParams(params, page, data, p)),
    shortSearch(params),
  );
}

async function showDlq(params) {
  const form = $("dlq-filters");
  fillFilters(form, params);
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  const page = pageQuery("dlq", query, params);
  if (params.get("search")) query.set("search", params.get("search"));
  const data = await api(`api/dlq?${query}`);
  if (currentRoute().view !== "dlq") return;
  const lastError = (job) => {
    const tail = job.stderr_tail ? tailLines(job.stderr_tail, data.stderr_tail_chars) : "";
    // "exit code N" (as the executor words it) repeats the Exit column; a timeout or a failed
    // start does not.
    const error = job.error && job.error !== `exit code ${job.exit_code}` ? visible(job.error) : "";
    const title = [error, job.stderr_tail ? visible(job.stderr_tail) : ""].filter(Boolean);
    return el(
      "td",
      { class: "last-error", title: title.join("\n") || undefined },
      tail ? el("pre", { class: "tail" }, tail) : null,
      error ? el("div", { class: "error-text" }, truncate(error, 120)) : null,
      !tail && !error ? (job.error ? visible(job.error) : "–") : null,
    );
  };
  const rows = data.jobs.map((job) => {
    const restore = el("button", { type: "button", class: "small" }, "Restore");
    restore.addEventListener("click", (event) => {
      event.stopPropagation();
      act(restore, async () => {
        await api(`api/dlq/${encodeURIComponent(job.id)}/restore`, { method: "POST" });
        notify(`Restored ${job.id} to pending.`);
      });
    });
    return el(
      "tr",
      {
        class: "clickable",
        dataset: { id: job.id },
        onclick: () => (location.hash = jobHref(job.id)),
      },
      el("td", { class: "id" }, el("a", { href: jobHref(job.id) }, job.id)),
      el("td", { class: "opt num" }, String(job.attempts)),
      el("td", { class: "opt num" }, job.exit_code === null ? "–" : String(job.exit_code)),
      lastError(job),
      el(
        "td",
        { class: "opt command", title: job.command },
        el("code", {}, truncate(job.command, 80)),
      ),
      el("td", { class: "row-actions" }, restore),
    );
  });
  $("dlq-table").tBodies[0].replaceChildren(
    ...(rows.length ? rows : [emptyRow(6, emptyText(data, "The dead letter queue is empty."))]),
  );
  $("restore-all").disabled = data.total === 0;
  $("purge").disabled = data.total === 0;
  pager(
    $("dlq-pager"),
    data,
    page,
    (p) => setHashParams("dlq", pageParams(params, page, data, p)),
    shortSearch(params),
  );
}

async function showQueues() {
  const data = await api("api/queues");
  if (currentRoute().view !== "queues") return;
  const rows = data.queues.map((q) => {
    const button = el("button", { type: "button" }, q.paused ? "Resume" : "Pause");
    button.addEventListener("click", () =>
      act(button, async () => {
        const verb = q.paused ? "resume" : "pause";
        await api(`api/queues/${encodeURIComponent(q.name)}/${verb}`, { method: "POST" });
        notify(`${q.name} ${q.paused ? "resumed" : "paused"}`);
      }));
    return el(
      "tr",
      { dataset: { queue: q.name } },
      el(
        "td",
        { class: "id" },
        el("a", { href: `#jobs?queue=${encodeURIComponent(q.name)}` }, q.name),
      ),
      el(
        "td",
        {},
        el(
          "span",
          { class: `badge ${q.paused ? "state-failed" : "state-completed"}` },
          q.paused ? "paused" : "running",
        ),
      ),
      el("td", { class: "num" }, q.limit === 0 ? "none" : String(q.limit)),
      el("td", { class: "num" }, fmtInt.format(Math.max(0, q.counts.pending - q.waiting))),
      el("td", { class: "num" }, fmtInt.format(q.waiting)),
      el("td", { class: "num" }, fmtInt.format(q.counts.processing)),
      el("td", { class: "num opt" }, fmtInt.format(q.counts.completed)),
      el("td", { class: "num opt" }, fmtInt.format(q.counts.failed)),
      el("td", { class: "num opt" }, fmtInt.format(q.counts.dead)),
      el("td", {}, button),
    );
  });
  $("queues-table").tBodies[0].replaceChildren(
    ...(rows.length ? rows : [emptyRow(10, "No queues yet: enqueue a job")]),
  );
}

async function showWorkers() {
  const data = await api("api/workers");
  if (currentRoute().view !== "workers") return;
  const rows = data.workers.map((w) => {
    const status = w.stop_requested_at ? "stopping" : w.alive ? "alive" : "stale";
    return el(
      "tr",
      {},
      el(
        "td",
        { class: "id" },
        w.id,
        w.role === "supervisor" ? el("span", { class: "muted" }, " (supervisor)") : null,
      ),
      el("td", {}, el("span", { class: `badge worker-${status}` }, status)),
      el("td", { class: "opt" }, w.host),
      el("td", { class: "opt num" }, String(w.pid)),
      el("td", { class: "opt" }, w.queues ? w.queues.join(", ") : "all"),
      el(
        "td",
        { class: "id" },
        w.current_job ? el("a", { href: jobHref(w.current_job) }, w.current_job) : "idle",
      ),
      el("td", {}, timeCell(w.heartbeat_at)),
    );
  });
  $("workers-table").tBodies[0].replaceChildren(
    ...(rows.length ? rows : [emptyRow(7, "No workers. Start some with: queuectl worker start")]),
  );
}

/** "0 4 * * * (Europe/Berlin)" or "every 10m". */
function ruleText(s) {
  return s.cron !== null ? `${s.cron} (${s.tz})` : `every ${duration(s.every_seconds)}`;
}

async function showSchedules() {
  const data = await api("api/schedules");
  if (currentRoute().view !== "schedules") return;
  const rows = data.schedules.map((s) => {
    const path = `api/schedules/${encodeURIComponent(s.name)}`;
    const toggle = el("button", { type: "button", class: "small" }, s.paused ? "Resume" : "Pause");
    toggle.addEventListener("click", () =>
      act(toggle, async () => {
        await api(`${path}/${s.paused ? "resume" : "pause"}`, { method: "POST" });
        notify(`${s.paused ? "Resumed" : "Paused"} schedule ${s.name}.`);
      }));
    const runNow = el("button", { type: "button", class: "small" }, "Run now");
    runNow.addEventListener("click", () =>
      act(runNow, async () => {
        const { id } = await api(`${path}/run`, { method: "POST" });
        notify(`Schedule ${s.name} enqueued`, "ok", { href: jobHref(id), text: id });
      }));
    const next = s.paused
      ? el("span", { class: "badge worker-stale" }, "paused")
      : s.next_run_at
      ? timeCell(s.next_run_at)
      : "never";
    // last_job_id without last_run_at: a job enqueued by hand holds the unique key (README).
    const last = s.last_job_id
      ? el(
        "span",
        {},
        s.last_run_at ? timeCell(s.last_run_at) : "",
        " ",
        el("a", { href: jobHref(s.last_job_id) }, s.last_job_id),
        " ",
        s.last_job_state ? stateBadge(s.last_job_state) : el("span", { class: "muted" }, "deleted"),
      )
      : "–";
    return el(
      "tr",
      { dataset: { name: s.name } },
      el("td", { class: "id" }, s.name),
      el("td", {}, ruleText(s), s.catch_up ? null : el("span", { class: "muted" }, " no catch-up")),
      el("td", {}, next),
      el("td", {}, last),
      el(
        "td",
        { class: "opt command", title: s.job.command },
        el("code", {}, truncate(s.job.command, 80)),
      ),
      el("td", { class: "row-actions" }, toggle, " ", runNow),
    );
  });
  $("schedules-table").tBodies[0].replaceChildren(
    ...(rows.length ? rows : [
      emptyRow(6, "No schedules. Add one with: queuectl schedule add NAME --every 10m -- command"),
    ]),
  );
}

let shownJob = "";
/** True while the job detail shows a running job (its output grows: see renderStats). */
let tailingJob = false;

function cancellable(job) {
  return job.state === "pending" || job.state === "failed";
}

function field(label, ...value) {
  return [el("dt", {}, label), el("dd", {}, ...value)];
}

function timeField(label, iso) {
  return field(
    label,
    iso
      ? [el("time", { datetime: iso }, iso), el("span", { class: "muted" }, ` · ${relative(iso)}`)]
      : "–",
  );
}

function runsTable(job) {
  // Every run as recorded when it ended (core/runs.ts), as `queuectl show` lists them.
  const next = job.next_retry_at
    ? el(
      "p",
      { id: "next-retry" },
      "Next retry ",
      el("time", { datetime: job.next_retry_at }, job.next_retry_at),
      el("span", { class: "muted" }, ` · ${relative(job.next_retry_at)}`),
    )
    : null;
  if (job.runs.length === 0) return [next, el("p", { class: "muted" }, "No runs yet.")];
  const rows = job.runs.map((r) => {
    const exit = r.exit_code !== null ? String(r.exit_code) : r.signal ?? "–";
    const retry = r.retry_delay_ms !== null
      ? el("span", { class: "muted" }, ` · retry after ${duration(r.retry_delay_ms / 1000)}`)
      : null;
    return el(
      "tr",
      { dataset: { run: String(r.run) } },
      el("td", {}, String(r.run)),
      el("td", {}, String(r.attempt)),
      el("td", {}, stateBadge(r.outcome)),
      el(
        "td",
        {},
        r.started_at ? el("time", { datetime: r.started_at }, relative(r.started_at)) : "–",
      ),
      el("td", {}, r.duration_ms === null ? "–" : duration(r.duration_ms / 1000)),
      el("td", {}, exit),
      el("td", { class: "opt" }, r.worker ? `${r.worker}${r.host ? `@${r.host}` : ""}` : "–"),
      el("td", {}, r.error ?? "–", retry),
    );
  });
  return [
    next,
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { id: "runs-table" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            ...["Run", "Attempt", "Outcome", "Started", "Took", "Exit", "Worker", "Error"].map((
              h,
            ) => el("th", { class: h === "Worker" ? "opt" : undefined }, h)),
          ),
        ),
        el("tbody", {}, ...rows),
      ),
    ),
  ];
}

function output(label, text, live) {
  return el(
    "section",
    { class: "output", id: `output-${label}` },
    el("h3", {}, label, live ? el("span", { class: "muted" }, " · live") : null),
    text ? el("pre", {}, text) : el("p", { class: "muted" }, live ? "(nothing yet)" : "(empty)"),
  );
}

/** The job whose Cancel waits for "Yes" (Cancel deletes the job: it asks first). */
let confirmingCancel = "";

function cancelConfirm(job) {
  const yes = el("button", { type: "button", class: "danger", id: "cancel-yes" }, "Yes, delete it");
  yes.addEventListener("click", () =>
    act(yes, async () => {
      await api(`api/jobs/${encodeURIComponent(job.id)}/cancel`, { method: "POST" });
      confirmingCancel = "";
      notify(`Cancelled ${job.id}: the job was deleted and will not run.`);
      location.hash = "#jobs";
    }));
  const no = el("button", { type: "button", id: "cancel-no" }, "Keep it");
  no.addEventListener("click", () => {
    confirmingCancel = "";
    refresh();
  });
  return el(
    "div",
    { class: "confirm", id: "cancel-confirm" },
    el("span", {}, `Cancel job ${job.id}? It is deleted for good and will not run.`),
    yes,
    no,
  );
}

/** The running job whose Kill waits for "Yes" (Kill signals its processes: it asks first). */
let confirmingKill = "";

function killConfirm(job) {
  const yes = el("button", { type: "button", class: "danger", id: "kill-yes" }, "Yes, kill it");
  yes.addEventListener("click", () =>
    act(yes, async () => {
      await api(`api/jobs/${encodeURIComponent(job.id)}/kill`, { method: "POST" });
      confirmingKill = "";
      notify(`Asked the worker to kill ${job.id} (SIGTERM); it goes to the DLQ.`);
    }));
  const no = el("button", { type: "button", id: "kill-no" }, "Let it run");
  no.addEventListener("click", () => {
    confirmingKill = "";
    refresh();
  });
  return el(
    "div",
    { class: "confirm", id: "kill-confirm" },
    el(
      "span",
      {},
      `Kill job ${job.id}? Its processes get SIGTERM (SIGKILL after the grace period); the run is recorded as killed and not retried.`,
    ),
    yes,
    no,
  );
}

function actionButtons(job) {
  const buttons = [];
  const add = (label, path, message, cls) => {
    const b = el("button", { type: "button", class: cls, dataset: { action: label } }, label);
    b.addEventListener("click", () =>
      act(b, async () => {
        await api(`api/${path}`, { method: "POST" });
        notify(message);
      }));
    buttons.push(b);
  };
  const id = encodeURIComponent(job.id);
  if (job.state === "dead") add("Restore", `dlq/${id}/restore`, `Restored ${job.id} to pending.`);
  if (job.state === "failed") add("Retry now", `jobs/${id}/retry`, `${job.id} will run again now.`);
  if (job.state === "failed") {
    add("Move to DLQ", `jobs/${id}/move-to-dlq`, `Moved ${job.id} to the DLQ.`);
  }
  if (job.state === "processing") {
    const b = el(
      "button",
      { type: "button", class: "danger", dataset: { action: "Kill" } },
      "Kill",
    );
    b.addEventListener("click", () => {
      confirmingKill = job.id;
      refresh();
    });
    buttons.push(b);
  }
  if (job.state === "completed") {
    add("Run again", `jobs/${id}/retry`, `${job.id} will run again now.`);
  }
  if (cancellable(job)) {
    const b = el(
      "button",
      { type: "button", class: "danger", dataset: { action: "Cancel" } },
      "Cancel",
    );
    b.addEventListener("click", () => {
      confirmingCancel = job.id;
      refresh();
    });
    buttons.push(b);
  }
  return el("div", { class: "actions" }, buttons);
}

/** Links to jobs of the dependency graph, each with its state. */
function graphLinks(list) {
  return list.flatMap((d, i) => [
    i > 0 ? ", " : null,
    d.state === null
      ? el("span", { class: "muted" }, `${d.id} (deleted)`)
      : el("a", { href: jobHref(d.id) }, d.id),
    d.state === null ? null : el("span", { class: "muted" }, ` (${d.state})`),
  ]);
}

async function showJob(id) {
  let job;
  try {
    job = await api(`api/jobs/${encodeURIComponent(id)}`);
  } catch (err) {
    if (currentRoute().view !== "job") return;
    clearBanners();
    $("job-detail").replaceChildren(el("p", { class: "form-error" }, err.message));
    shownJob = "";
    return;
  }
  const route = currentRoute();
  if (route.view !== "job" || route.id !== id) return;
  tailingJob = job.state === "processing";
  if (job.blocked_by > 0 && (job.state === "pending" || job.state === "failed")) {
    const done = new Set(job.dependencies.filter((d) => d.state === "completed").map((d) => d.id));
    job.blocked_on = job.after.filter((d) => !done.has(d));
  }
  const confirming = confirmingCancel === job.id && cancellable(job);
  const confirmingK = confirmingKill === job.id && job.state === "processing";
  const signature = JSON.stringify([
    job,
    confirming,
    confirmingK,
    Math.floor(serverNow() / 5000),
  ]);
  if (signature === shownJob) return;
  shownJob = signature;
  $("job-detail").replaceChildren(
    el(
      "div",
      { class: "detail-head" },
      el("h2", {}, "Job ", el("code", { class: "job-id" }, job.id)),
      stateCell(job),
      actionButtons(job),
    ),
    confirming ? cancelConfirm(job) : null,
    confirmingK ? killConfirm(job) : null,
    el("pre", { class: "command-block", id: "job-command" }, job.command),
    el(
      "dl",
      { class: "fields" },
      field("directory", job.cwd ?? "– (the worker's)"),
      field(
        "environment",
        job.env
          ? Object.entries(job.env).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")
          : "–",
      ),
      field("queue", job.queue),
      field("priority", String(job.priority)),
      field(
        "attempts",
        `${job.attempts} of ${job.max_retries + 1} (max_retries ${job.max_retries})`,
      ),
      field("timeout", job.timeout === null ? "config default" : `${job.timeout}s`),
      field("exit code", job.exit_code === null ? "–" : String(job.exit_code)),
      field("worker", job.lease_owner ?? "–"),
      job.kill_signal ? field("kill", `${job.kill_signal} requested (queuectl kill)`) : null,
      job.dependencies?.length ? field("runs after", ...graphLinks(job.dependencies)) : null,
      job.dependents?.length ? field("runs before", ...graphLinks(job.dependents)) : null,
      timeField("created", job.created_at),
      timeField("updated", job.updated_at),
      timeField("run at", job.run_at),
      timeField("started", job.started_at),
      timeField("finished", job.finished_at),
    ),
    el(
      "section",
      { class: "output" },
      el("h3", {}, "Last error"),
      job.error
        ? el("pre", { class: "error-text" }, job.error)
        : el("p", { class: "muted" }, "none"),
    ),
    el("section", { class: "output", id: "runs" }, el("h3", {}, "Runs"), ...runsTable(job)),
    output("stdout", job.stdout, tailingJob),
    output("stderr", job.stderr, tailingJob),
  );
  if (tailingJob) {
    // Follow the end of the output, as tail -f does.
    for (const pre of $("job-detail").querySelectorAll(".output pre")) {
      pre.scrollTop = pre.scrollHeight;
    }
  }
}

// ---- forms -----------------------------------------------------------------------------------

function wireFilters(form, view) {
  let timer;
  const apply = () => setHashParams(view, filterParams(form), true);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  form.addEventListener("change", apply);
  form.addEventListener("input", (event) => {
    if (event.target.tagName !== "INPUT") return;
    clearTimeout(timer);
    timer = setTimeout(apply, 300);
  });
}

/** Numbers go as numbers; anything else as typed, so the server names the mistake. */
function numberOrText(text) {
  return /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
}

function wireEnqueue() {
  const form = $("enqueue-form");
  const error = $("enqueue-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const spec = {};
    const value = (name) => form.elements[name].value.trim();
    spec.command = form.elements.command.value;
    for (const name of ["queue", "id", "delay", "cwd"]) if (value(name)) spec[name] = value(name);
    for (const name of ["priority", "max_retries", "timeout"]) {
      if (value(name)) spec[name] = numberOrText(value(name));
    }
    const envLines = form.elements.env.value.split("\n").filter((line) => line.trim() !== "");
    if (envLines.length > 0) {
      // KEY=value per line; a line without "=" goes as KEY: null, so that the server names the
      // mistake ("must be a string").
      spec.env = Object.fromEntries(envLines.map((line) => {
        const eq = line.indexOf("=");
        return eq < 0 ? [line.trim(), null] : [line.slice(0, eq).trim(), line.slice(eq + 1)];
      }));
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const { ids } = await api("api/jobs", { method: "POST", body: spec });
      form.elements.command.value = "";
      form.elements.id.value = "";
      form.elements.env.value = "";
      notify(`Enqueued ${ids[0]}.`, "ok", { href: jobHref(ids[0]), text: "Open it" });
    } catch (err) {
      clearBanners();
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
}

function wireDlq() {
  $("restore-all").addEventListener("click", (event) =>
    act(event.currentTarget, async () => {
      const { restored } = await api("api/dlq/restore-all", { method: "POST" });
      notify(`Restored ${restored.length} job${restored.length === 1 ? "" : "s"} to pending.`);
    }));
  $("purge").addEventListener("click", () => {
    const n = lastStats ? lastStats.counts.dead : 0;
    setText("purge-question", `Delete all ${fmtInt.format(n)} dead jobs for good?`);
    $("purge-confirm").hidden = false;
  });
  $("purge-no").addEventListener("click", () => ($("purge-confirm").hidden = true));
  $("purge-yes").addEventListener("click", (event) =>
    act(event.currentTarget, async () => {
      const { purged } = await api("api/dlq/purge", { method: "POST" });
      $("purge-confirm").hidden = true;
      notify(`Purged ${purged.length} dead job${purged.length === 1 ? "" : "s"}.`);
    }));
}

wireFilters($("job-filters"), "jobs");
wireFilters($("dlq-filters"), "dlq");
wireEnqueue();
wireDlq();
addEventListener("hashchange", render);
addEventListener("popstate", render);
render();
connect();
