/**
 * The JSON API under /api/ (documented in docs/dashboard_api.md). Every route parses its input,
 * calls one use case of src/app/ and renders the result; validation and errors are the CLI's.
 */
import { InvalidInput } from "../core/errors.ts";
import { type Job, jobToJson, parseJobState } from "../core/job.ts";
import { runToJson } from "../core/runs.ts";
import {
  blockersOf,
  callerDirectory,
  cancelJob,
  type Ctx,
  enqueue,
  getJobDetail,
  killJob,
  listDlqPage,
  listJobsPage,
  type ListParams,
  listWorkerStatus,
  moveJobToDlq,
  parseOnDuplicate,
  purgeDlq,
  restoreAll,
  restoreJob,
  retryJob,
  status,
  STDERR_TAIL_CHARS,
  throughput,
} from "../app/queue.ts";
import { listQueues, pauseQueue, resumeQueue } from "../app/queues.ts";
import { listSchedules, pauseSchedule, resumeSchedule, runScheduleNow } from "../app/schedules.ts";
import { scheduleToJson } from "../core/schedule.ts";
import { HttpError, json, readJsonBody } from "./http.ts";
import { quote } from "../core/text.ts";

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export const CHART_WINDOW_MS = 10 * 60_000;
export const CHART_BUCKET_MS = 10_000;

/** Header figures: counts per state, workers alive, oldest pending age, throughput. */
export async function statsPayload(ctx: Ctx): Promise<Record<string, unknown>> {
  const [report, chart] = await Promise.all([
    status(ctx),
    throughput(ctx, { windowMs: CHART_WINDOW_MS, bucketMs: CHART_BUCKET_MS }),
  ]);
  return {
    now: iso(ctx.clock.now()),
    database: report.database,
    counts: report.counts,
    total: report.total,
    scheduled: report.scheduled,
    next_scheduled_at: iso(report.next_scheduled_at),
    oldest_pending_at: iso(report.oldest_pending_at),
    oldest_pending_age_seconds: report.oldest_pending_age_ms === null
      ? null
      : report.oldest_pending_age_ms / 1000,
    workers_alive: report.workers_alive,
    waiting: report.blocked,
    queues: report.controls.map((q) => ({ name: q.name, paused: q.paused, limit: q.max_running })),
    throughput: {
      since: iso(chart.since),
      bucket_seconds: chart.bucket_ms / 1000,
      completed: chart.completed,
      per_second: chart.per_second,
      rate_window_seconds: chart.rate_window_ms / 1000,
    },
  };
}

const LIST_PARAMS = ["state", "queue", "search", "limit", "after"];

function wholeNumber(value: string | null, name: string): number | undefined {
  if (value === null) return undefined;
  if (!/^\d{1,9}$/.test(value)) {
    throw new InvalidInput(
      `Invalid ${name}: expected a whole number, got ${quote(value)}`,
    );
  }
  return Number(value);
}

/** Reads the list filters of a query string; unknown parameters are refused (typos show). */
export function parseListQuery(query: URLSearchParams, allowState = true): ListParams {
  if (query.has("offset")) {
    // Paging is by keyset only (docs/dashboard_api.md): a deep page costs what the first does.
    throw new InvalidInput(
      "offset was removed: page with after=<the previous page's next, its last job id> " +
        "(keyset paging; a deep page costs what the first does)",
    );
  }
  for (const key of query.keys()) {
    if (!LIST_PARAMS.includes(key) || (key === "state" && !allowState)) {
      throw new InvalidInput(
        `Unknown query parameter ${quote(key)}: allowed are ${
          LIST_PARAMS.filter((p) => allowState || p !== "state").join(", ")
        }`,
      );
    }
  }
  const text = (name: string) => {
    const v = query.get(name);
    return v === null || v === "" ? undefined : v;
  };
  const state = text("state");
  return {
    state: state === undefined ? undefined : parseJobState(state),
    queue: text("queue"),
    search: text("search"),
    limit: wholeNumber(query.get("limit"), "limit"),
    after: text("after"),
  };
}

/** A job of a list, with `blocked_on` (its unfinished dependencies) when it is waiting. */
function listedJob(job: Job, blockers: ReadonlyMap<string, string[]>): Record<string, unknown> {
  const out = jobToJson(job);
  const on = blockers.get(job.id);
  if (on) out.blocked_on = on;
  return out;
}

async function jobList(ctx: Ctx, p: ListParams): Promise<Response> {
  const page = await listJobsPage(ctx, p);
  const blockers = await blockersOf(ctx, page.jobs);
  return json(200, {
    jobs: page.jobs.map((j) => listedJob(j, blockers)),
    total: page.total,
    total_capped: page.total_capped,
    limit: page.limit,
    next: page.next,
    incomplete: page.incomplete,
  });
}

const jobResponse = (job: Job) => json(200, jobToJson(job));

type Handler = (ctx: Ctx, req: Request, url: URL, params: string[]) => Promise<Response>;

interface Route {
  method: "GET" | "POST";
  /** Path segments after /api/; ":id" matches one (percent-decoded) segment. */
  path: string[];
  handler: Handler;
}

const ROUTES: Route[] = [
  {
    method: "GET",
    path: ["stats"],
    handler: async (ctx) => json(200, await statsPayload(ctx)),
  },
  {
    method: "GET",
    path: ["jobs"],
    handler: (ctx, _req, url) => jobList(ctx, parseListQuery(url.searchParams)),
  },
  {
    method: "POST",
    path: ["jobs"],
    handler: async (ctx, req, url) => {
      const mode = url.searchParams.get("on_duplicate");
      const onDuplicate = mode === null ? undefined : parseOnDuplicate(mode, "on_duplicate");
      const body = await readJsonBody(req);
      const specs = Array.isArray(body)
        ? body.map((value, i) => ({ value, where: `job ${i + 1}: ` }))
        : [{ value: body }];
      // A job without "cwd" runs in the directory the dashboard was started in (README).
      const ids = await enqueue(ctx, specs, { cwd: callerDirectory(), onDuplicate });
      return json(201, { ids });
    },
  },
  {
    method: "GET",
    path: ["jobs", ":id"],
    handler: async (ctx, _req, _url, [id]) => {
      const d = await getJobDetail(ctx, id);
      return json(200, {
        ...jobToJson(d.job, d.output),
        next_retry_at: d.next_retry_at === null ? null : new Date(d.next_retry_at).toISOString(),
        runs: d.runs.map(runToJson),
        dependencies: d.dependencies.dependencies,
        dependents: d.dependencies.dependents,
      });
    },
  },
  {
    method: "POST",
    path: ["jobs", ":id", "retry"],
    handler: async (ctx, _req, _url, [id]) => jobResponse(await retryJob(ctx, id)),
  },
  {
    method: "POST",
    path: ["jobs", ":id", "cancel"],
    handler: async (ctx, _req, _url, [id]) => {
      const job = await cancelJob(ctx, id);
      return json(200, { id: job.id, removed: true, state: job.state });
    },
  },
  {
    method: "POST",
    path: ["jobs", ":id", "kill"],
    handler: async (ctx, req, _url, [id]) => {
      // Optional JSON body {"signal":"SIGINT","retry":true}; the page sends none (SIGTERM, no
      // retry).
      const raw = req.headers.get("content-type") ? await readJsonBody(req) : {};
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        throw new InvalidInput(`Expected a JSON object like {"signal":"SIGTERM"}`);
      }
      const body = raw as Record<string, unknown>;
      if (body.signal !== undefined && typeof body.signal !== "string") {
        throw new InvalidInput(`Invalid signal: expected a name such as "SIGTERM"`);
      }
      if (body.retry !== undefined && typeof body.retry !== "boolean") {
        throw new InvalidInput(`Invalid retry: expected true or false`);
      }
      const job = await killJob(ctx, id, {
        signal: body.signal as string | undefined,
        retry: body.retry as boolean | undefined,
      });
      return json(202, { id: job.id, signal: job.kill_signal, retry: job.kill_retry === 1 });
    },
  },
  {
    method: "POST",
    path: ["jobs", ":id", "move-to-dlq"],
    handler: async (ctx, _req, _url, [id]) => jobResponse(await moveJobToDlq(ctx, id)),
  },
  {
    method: "GET",
    path: ["dlq"],
    handler: async (ctx, _req, url) => {
      const page = await listDlqPage(ctx, parseListQuery(url.searchParams, false));
      return json(200, {
        jobs: page.jobs.map((j) => ({
          ...jobToJson(j),
          stderr_tail: page.stderr_tails.get(j.id) ?? "",
        })),
        total: page.total,
        total_capped: page.total_capped,
        limit: page.limit,
        next: page.next,
        incomplete: page.incomplete,
        stderr_tail_chars: STDERR_TAIL_CHARS,
      });
    },
  },
  {
    method: "POST",
    path: ["dlq", "restore-all"],
    handler: async (ctx) => {
      const kept: { id: string; reason: string }[] = [];
      const restored = await restoreAll(ctx, (id, reason) => kept.push({ id, reason }));
      return json(200, { restored, kept });
    },
  },
  {
    method: "POST",
    path: ["dlq", "purge"],
    handler: async (ctx) => json(200, { purged: await purgeDlq(ctx) }),
  },
  {
    method: "POST",
    path: ["dlq", ":id", "restore"],
    handler: async (ctx, _req, _url, [id]) => jobResponse(await restoreJob(ctx, id)),
  },
  {
    method: "GET",
    path: ["queues"],
    handler: async (ctx) =>
      json(200, {
        queues: (await listQueues(ctx)).map((q) => ({
          name: q.name,
          paused: q.paused,
          limit: q.max_running,
          counts: q.counts,
          waiting: q.blocked,
        })),
      }),
  },
  {
    method: "GET",
    path: ["schedules"],
    handler: async (ctx) =>
      json(200, {
        now: iso(ctx.clock.now()),
        schedules: (await listSchedules(ctx)).map(scheduleToJson),
      }),
  },
  {
    method: "POST",
    path: ["queues", ":id", "pause"],
    handler: async (ctx, _req, _url, [name]) => {
      const q = await pauseQueue(ctx, name);
      return json(200, { name: q.name, paused: q.paused, limit: q.max_running });
    },
  },
  {
    method: "POST",
    path: ["queues", ":id", "resume"],
    handler: async (ctx, _req, _url, [name]) => {
      const q = await resumeQueue(ctx, name);
      return json(200, { name: q.name, paused: q.paused, limit: q.max_running });
    },
  },
  {
    method: "POST",
    path: ["schedules", ":id", "pause"],
    handler: async (ctx, _req, _url, [name]) =>
      json(200, scheduleToJson(await pauseSchedule(ctx, name))),
  },
  {
    method: "POST",
    path: ["schedules", ":id", "resume"],
    handler: async (ctx, _req, _url, [name]) =>
      json(200, scheduleToJson(await resumeSchedule(ctx, name))),
  },
  {
    method: "POST",
    path: ["schedules", ":id", "run"],
    handler: async (ctx, _req, _url, [name]) => json(201, { id: await runScheduleNow(ctx, name) }),
  },
  {
    method: "GET",
    path: ["workers"],
    handler: async (ctx) =>
      json(200, {
        workers: (await listWorkerStatus(ctx)).map((w) => ({
          id: w.id,
          role: w.role,
          alive: w.alive,
          host: w.host,
          pid: w.pid,
          queues: w.queues,
          current_job: w.current_job,
          started_at: iso(w.started_at),
          heartbeat_at: iso(w.heartbeat_at),
          stop_requested_at: iso(w.stop_requested_at),
          supervisor_id: w.supervisor_id,
        })),
      }),
  },
];

/** Splits `/api/a/b%2Fc` into decoded segments after `api`: ["a", "b/c"]. */
export function apiSegments(pathname: string): string[] {
  const parts = pathname.split("/").slice(2);
  if (parts.length > 0 && parts[parts.length - 1] === "") parts.pop();
  try {
    return parts.map((p) => decodeURIComponent(p));
  } catch {
    throw new HttpError(400, "Malformed percent-encoding in the path");
  }
}

export interface RouteMatch {
  route?: Route;
  params: string[];
  /** Methods allowed on the path when it exists but the method does not match. */
  allowed: string[];
}

export function matchRoute(method: string, segments: string[]): RouteMatch {
  const allowed: string[] = [];
  for (const route of ROUTES) {
    if (route.path.length !== segments.length) continue;
    const params: string[] = [];
    let ok = true;
    for (let i = 0; i < segments.length && ok; i++) {
      if (route.path[i] === ":id") params.push(segments[i]);
      else ok = route.path[i] === segments[i];
    }
    if (!ok) continue;
    if (route.method === method) return { route, params, allowed };
    allowed.push(route.method);
  }
  return { params: [], allowed };
}

/** Answers one /api/ request (security checks are done by the caller). */
export async function handleApi(ctx: Ctx, req: Request, url: URL): Promise<Response> {
  const segments = apiSegments(url.pathname);
  const match = matchRoute(req.method, segments);
  if (!match.route) {
    if (match.allowed.length > 0) {
      throw new HttpError(405, `Method ${req.method} not allowed here`, {
        allow: match.allowed.join(", "),
      });
    }
    throw new HttpError(404, `No such API route: ${url.pathname}`);
  }
  return await match.route.handler(ctx, req, url, match.params);
}
