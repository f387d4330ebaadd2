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

function jobHref(id) {
  return `#job/${encodeURIComponent(id)}`;
}

function truncate(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
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

function notify(message, kind = "ok", link) {
  const box = $("notice");
  box.replaceChildren(message);
  if (link) box.append(" ", el("a", { href: link.href }, link.text));
  box.className = `notice ${kind}`;
  box.hidden = false;
  clearTimeout(noticeTimer);
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

/** The view named by the location hash: #jobs?state=dead, #job/<id>, #dlq, #workers, #enqueue. */
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
  const view = ["jobs", "dlq", "workers", "enqueue"].includes(path) ? path : "jobs";
  return { view, params };
}

function setHashParams(view, params, replace) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined) search.set(k, v);
  const text = search.toString();
  const hash = `#${view}${text ? `?${text}` : ""}`;
  if (hash === location.hash) return;
  if (replace) history.replaceState(null, "", hash);
  else history.pushState(null, "", hash);
  render();
}

function render() {
  const route = currentRoute();
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
  setText("database", stats.database);
  $("database").title = `database: ${stats.database}`;
  renderChart(stats.throughput);
  const signature = JSON.stringify([stats.counts, stats.workers_alive]);
  if (signature !== lastSignature || Date.now() - lastRefresh > 5000) {
    lastSignature = signature;
    refresh();
  }
}

const SVG = "http://www.w3.org/2000/svg";

function renderChart(t) {
  const svg = $("chart");
  const n = t.completed.length;
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
  const source = new EventSource("/api/events");
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
    renderStats(await api("/api/stats"));
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
  try {
    if (route.view === "jobs") await showJobs(route.params);
    else if (route.view === "dlq") await showDlq(route.params);
    else if (route.view === "workers") await showWorkers();
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

function pager(container, total, page, onPage) {
  const first = total === 0 ? 0 : (page - 1) * PAGE_SIZE + 1;
  const last = Math.min(total, page * PAGE_SIZE);
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  container.replaceChildren(
    el(
      "button",
      { type: "button", disabled: page <= 1, onclick: () => onPage(page - 1) },
      "← Newer",
    ),
    el(
      "span",
      { class: "range" },
      total === 0
        ? "no jobs"
        : `${fmtInt.format(first)}–${fmtInt.format(last)} of ${fmtInt.format(total)}`,
    ),
    el(
      "button",
      { type: "button", disabled: page >= pages, onclick: () => onPage(page + 1) },
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
  const page = pageOf(params);
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  query.set("offset", String((page - 1) * PAGE_SIZE));
  for (const name of ["state", "queue", "search"]) {
    const v = params.get(name);
    if (v) query.set(name, v);
  }
  const data = await api(`/api/jobs?${query}`);
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
      el("td", {}, stateBadge(job.state)),
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
    ...(rows.length ? rows : [emptyRow(6, "No jobs match.")]),
  );
  pager(
    $("jobs-pager"),
    data.total,
    page,
    (p) => setHashParams("jobs", { ...Object.fromEntries(params), page: String(p) }),
  );
}

async function showDlq(params) {
  const form = $("dlq-filters");
  fillFilters(form, params);
  const page = pageOf(params);
  const query = new URLSearchParams({
    limit: String(PAGE_SIZE),
    offset: String((page - 1) * PAGE_SIZE),
  });
  if (params.get("search")) query.set("search", params.get("search"));
  const data = await api(`/api/dlq?${query}`);
  if (currentRoute().view !== "dlq") return;
  const rows = data.jobs.map((job) => {
    const restore = el("button", { type: "button", class: "small" }, "Restore");
    restore.addEventListener("click", (event) => {
      event.stopPropagation();
      act(restore, async () => {
        await api(`/api/dlq/${encodeURIComponent(job.id)}/restore`, { method: "POST" });
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
      el("td", { class: "error-text", title: job.error ?? "" }, truncate(job.error ?? "–", 120)),
      el(
        "td",
        { class: "opt command", title: job.command },
        el("code", {}, truncate(job.command, 80)),
      ),
      el("td", { class: "row-actions" }, restore),
    );
  });
  $("dlq-table").tBodies[0].replaceChildren(
    ...(rows.length ? rows : [emptyRow(6, "The dead letter queue is empty.")]),
  );
  $("restore-all").disabled = data.total === 0;
  $("purge").disabled = data.total === 0;
  pager(
    $("dlq-pager"),
    data.total,
    page,
    (p) => setHashParams("dlq", { ...Object.fromEntries(params), page: String(p) }),
  );
}

async function showWorkers() {
  const data = await api("/api/workers");
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

let shownJob = "";

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

function retrySchedule(job) {
  if (job.retry_delays.length === 0) {
    return el("p", { class: "muted" }, "No retries (max_retries is 0).");
  }
  const items = job.retry_delays.map((delay, i) => {
    const n = i + 1;
    // Retry n is run n + 1: used once attempts > n; due when run n failed and waits.
    let note = "";
    let cls = "";
    if (n < job.attempts) [note, cls] = ["used", "used"];
    else if (n === job.attempts && job.state === "failed") {
      [note, cls] = [`scheduled ${relative(job.run_at)}`, "next"];
    } else if (n === job.attempts && job.state === "pending") [note, cls] = ["due now", "next"];
    return el(
      "li",
      { class: cls },
      `retry ${n}: ${duration(delay)} after run ${n} fails`,
      note ? el("span", { class: "muted" }, ` · ${note}`) : null,
    );
  });
  const more = job.max_retries > job.retry_delays.length
    ? el("li", { class: "muted" }, `… ${job.max_retries - job.retry_delays.length} more`)
    : null;
  return el("ol", { class: "schedule" }, items, more);
}

function output(label, text) {
  return el(
    "section",
    { class: "output" },
    el("h3", {}, label),
    text ? el("pre", {}, text) : el("p", { class: "muted" }, "(empty)"),
  );
}

function actionButtons(job) {
  const buttons = [];
  const add = (label, path, message, cls) => {
    const b = el("button", { type: "button", class: cls, dataset: { action: label } }, label);
    b.addEventListener("click", () =>
      act(b, async () => {
        await api(`/api/${path}`, { method: "POST" });
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
  if (job.state === "pending" || job.state === "failed") {
    add("Cancel", `jobs/${id}/cancel`, `Cancelled ${job.id} (deleted).`, "danger");
  }
  return el("div", { class: "actions" }, buttons);
}

async function showJob(id) {
  let job;
  try {
    job = await api(`/api/jobs/${encodeURIComponent(id)}`);
  } catch (err) {
    if (currentRoute().view !== "job") return;
    $("job-detail").replaceChildren(el("p", { class: "form-error" }, err.message));
    shownJob = "";
    return;
  }
  const route = currentRoute();
  if (route.view !== "job" || route.id !== id) return;
  const signature = JSON.stringify([job, Math.floor(serverNow() / 5000)]);
  if (signature === shownJob) return;
  shownJob = signature;
  $("job-detail").replaceChildren(
    el(
      "div",
      { class: "detail-head" },
      el("h2", {}, "Job ", el("code", { class: "job-id" }, job.id)),
      stateBadge(job.state),
      actionButtons(job),
    ),
    el("pre", { class: "command-block", id: "job-command" }, job.command),
    el(
      "dl",
      { class: "fields" },
      field("queue", job.queue),
      field("priority", String(job.priority)),
      field(
        "attempts",
        `${job.attempts} of ${job.max_retries + 1} (max_retries ${job.max_retries})`,
      ),
      field("timeout", job.timeout === null ? "config default" : `${job.timeout}s`),
      field("exit code", job.exit_code === null ? "–" : String(job.exit_code)),
      field("worker", job.lease_owner ?? "–"),
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
    el("section", { class: "output" }, el("h3", {}, "Retry schedule"), retrySchedule(job)),
    output("stdout", job.stdout),
    output("stderr", job.stderr),
  );
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
    for (const name of ["queue", "id", "delay"]) if (value(name)) spec[name] = value(name);
    for (const name of ["priority", "max_retries", "timeout"]) {
      if (value(name)) spec[name] = numberOrText(value(name));
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const { ids } = await api("/api/jobs", { method: "POST", body: spec });
      form.elements.command.value = "";
      form.elements.id.value = "";
      notify(`Enqueued ${ids[0]}.`, "ok", { href: jobHref(ids[0]), text: "Open it" });
    } catch (err) {
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
      const { restored } = await api("/api/dlq/restore-all", { method: "POST" });
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
      const { purged } = await api("/api/dlq/purge", { method: "POST" });
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
