/**
 * The JSON API under /api/ (documented in docs/dashboard_api.md). Every route parses its input,
 * calls one use case of src/app/ and renders the result; validation and errors are the CLI's.
 */
import { InvalidInput } from "../core/errors.ts";
import { type Job, jobToJson, parseJobState } from "../core/job.ts";
import {
  cancelJob,
  type Ctx,
  enqueue,
  getJobDetail,
  listJobsPage,
  type ListParams,
  listWorkerStatus,
  moveJobToDlq,
  purgeDlq,
  restoreAll,
  restoreJob,
  retryJob,
  status,
  throughput,
} from "../app/queue.ts";
import { HttpError, json, readJsonBody } from "./http.ts";

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
    oldest_pending_at: iso(report.oldest_pending_at),
    oldest_pending_age_seconds: report.oldest_pending_age_ms === null
      ? null
      : report.oldest_pending_age_ms / 1000,
    workers_alive: report.workers_alive,
    throughput: {
      since: iso(chart.since),
      bucket_seconds: chart.bucket_ms / 1000,
      completed: chart.completed,
      per_second: chart.per_second,
    },
  };
}

const LIST_PARAMS = ["state", "queue", "search", "limit", "offset", "token"];

function wholeNumber(value: string | null, name: string): number | undefined {
  if (value === null) return undefined;
  if (!/^\d{1,9}$/.test(value)) {
    throw new InvalidInput(
      `Invalid ${name}: expected a whole number, got ${JSON.stringify(value)}`,
    );
  }
  return Number(value);
}

/** Reads the list filters of a query string; unknown parameters are refused (typos show). */
export function parseListQuery(query: URLSearchParams, allowState = true): ListParams {
  for (const key of query.keys()) {
    if (!LIST_PARAMS.includes(key) || (key === "state" && !allowState)) {
      throw new InvalidInput(
        `Unknown query parameter ${JSON.stringify(key)}: allowed are ${
          LIST_PARAMS.filter((p) => p !== "token" && (allowState || p !== "state")).join(", ")
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
    offset: wholeNumber(query.get("offset"), "offset"),
  };
}

async function jobList(ctx: Ctx, p: ListParams): Promise<Response> {
  const page = await listJobsPage(ctx, p);
  return json(200, {
    jobs: page.jobs.map((j) => jobToJson(j)),
    total: page.total,
    limit: page.limit,
    offset: page.offset,
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
    handler: async (ctx, req) => {
      const body = await readJsonBody(req);
      const specs = Array.isArray(body)
        ? body.map((value, i) => ({ value, where: `job ${i + 1}: ` }))
        : [{ value: body }];
      const ids = await enqueue(ctx, specs);
      return json(201, { ids });
    },
  },
  {
    method: "GET",
    path: ["jobs", ":id"],
    handler: async (ctx, _req, _url, [id]) => {
      const d = await getJobDetail(ctx, id);
      return json(200, { ...jobToJson(d.job, d.output), retry_delays: d.retry_delays });
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
    path: ["jobs", ":id", "move-to-dlq"],
    handler: async (ctx, _req, _url, [id]) => jobResponse(await moveJobToDlq(ctx, id)),
  },
  {
    method: "GET",
    path: ["dlq"],
    handler: (ctx, _req, url) =>
      jobList(ctx, { ...parseListQuery(url.searchParams, false), state: "dead" }),
  },
  {
    method: "POST",
    path: ["dlq", "restore-all"],
    handler: async (ctx) => json(200, { restored: await restoreAll(ctx) }),
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
