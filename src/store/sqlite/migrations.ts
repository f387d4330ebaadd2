/**
 * SQLite schema migrations, numbered from 1. Each runs once, in order, inside one transaction, and
 * is recorded in `schema_migrations` and in `PRAGMA user_version` (the fast check at open).
 * Never edit a released migration: add a new one.
 */

export const MIGRATIONS: readonly string[] = [
  // 1: jobs, their output, config, workers.
  `
  CREATE TABLE schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
  );
  CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    max_retries INTEGER NOT NULL,
    timeout REAL,
    run_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    exit_code INTEGER,
    error TEXT,
    lease_owner TEXT,
    lease_expires_at INTEGER
  );
  -- list --state S (newest first) and the per-state counts of status.
  CREATE INDEX jobs_state_created ON jobs (state, created_at);
  -- claim order: highest priority, then oldest run_at, among claimable jobs only.
  CREATE INDEX jobs_claim ON jobs (priority DESC, run_at, created_at)
    WHERE state IN ('pending', 'failed');
  -- rescue of jobs whose worker died.
  CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'processing';
  -- scheduled jobs (status): pending or failed jobs whose run_at is still to come.
  CREATE INDEX jobs_waiting ON jobs (run_at) WHERE state IN ('pending', 'failed');
  -- throughput chart (completed per minute).
  CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state = 'completed';
  -- list without a state filter, newest first.
  CREATE INDEX jobs_created ON jobs (created_at);
  -- Jobs per state, kept by the store in the same transaction as every insert, state change and
  -- delete, so that status answers at once on millions of jobs (a GROUP BY would scan them all).
  CREATE TABLE job_counts (
    state TEXT PRIMARY KEY,
    n INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO job_counts (state, n) VALUES
    ('pending', 0), ('processing', 0), ('completed', 0), ('failed', 0), ('dead', 0);
  CREATE TABLE job_output (
    id TEXT PRIMARY KEY,
    stdout TEXT NOT NULL,
    stderr TEXT NOT NULL
  );
  CREATE TABLE config (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    queues TEXT,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    current_job TEXT,
    stop_requested_at INTEGER,
    supervisor_id TEXT
  );
  `,
  // 2: leader leases. One process at a time runs the maintenance service (worker/maintenance.ts):
  // the holder of the unexpired lease, renewed by a guarded upsert (store.tryLead).
  `
  CREATE TABLE leaders (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  );
  `,
  // 3: the job's working directory (absolute; null for jobs enqueued before).
  `
  ALTER TABLE jobs ADD COLUMN cwd TEXT;
  `,
  // 4: the start time of each worker's process (field 22 of /proc/<pid>/stat; null where it
  // cannot be read). With the pid it names the process for good: on SQLite a job is rescued only
  // once its worker's process is gone (store/sqlite/processes.ts, docs/architecture.md).
  `
  ALTER TABLE workers ADD COLUMN pid_started TEXT;
  `,
  // 5: variables the job gets on top of the worker's environment (JSON text; null = none).
  `
  ALTER TABLE jobs ADD COLUMN env TEXT;
  `,
  // 6: `queuectl kill`: the signal asked for a processing job, read by the worker that runs it.
  `
  ALTER TABLE jobs ADD COLUMN kill_signal TEXT;
  ALTER TABLE jobs ADD COLUMN kill_retry INTEGER;
  `,
  // 7: run history (core/runs.ts): one row per run of a job, with the run's output (so far, while
  // it runs). The output of the last run, kept in job_output until now, becomes a run row.
  `
  CREATE TABLE job_runs (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    worker TEXT,
    host TEXT,
    started_at INTEGER,
    finished_at INTEGER,
    duration_ms INTEGER,
    exit_code INTEGER,
    signal TEXT,
    error TEXT,
    outcome TEXT NOT NULL,
    retry_delay_ms INTEGER,
    stdout TEXT NOT NULL DEFAULT '',
    stderr TEXT NOT NULL DEFAULT ''
  );
  CREATE INDEX job_runs_job ON job_runs (job_id, id);
  INSERT INTO job_runs (job_id, attempt, started_at, finished_at, duration_ms, exit_code, error,
      outcome, stdout, stderr)
    SELECT j.id, j.attempts, j.started_at, j.finished_at, j.finished_at - j.started_at,
      j.exit_code, j.error, CASE WHEN j.state IN ('completed', 'failed', 'dead') THEN j.state
        ELSE 'failed' END,
      coalesce(o.stdout, ''), coalesce(o.stderr, '')
    FROM jobs j LEFT JOIN job_output o ON o.id = j.id
    WHERE j.finished_at IS NOT NULL ORDER BY j.rowid;
  DROP TABLE job_output;
  `,
  // 8: stops of everything (`worker stop`), numbered: they outlive the worker records they
  // stamp, so a worker that was away (frozen) when its record was removed still learns of it.
  `
  CREATE TABLE stop_requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    requested_at INTEGER NOT NULL
  );
  `,
  // 9: substring search (list --search, the dashboard's search box) through an index at a million
  // jobs: an FTS5 table with the trigram tokenizer (case-insensitive) over id and command, kept
  // by triggers (a job's id and command never change), with jobs' rowid as its rowid. Queries
  // check the substring on the job row itself too, so a stale entry can only hide a row, never
  // show a wrong one ('rebuild' restores it). Jobs of one queue, newest first: an index.
  `
  CREATE VIRTUAL TABLE jobs_search USING fts5(
    id, command, content = 'jobs', content_rowid = 'rowid', tokenize = 'trigram'
  );
  CREATE TRIGGER jobs_search_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO jobs_search (rowid, id, command) VALUES (new.rowid, new.id, new.command);
  END;
  CREATE TRIGGER jobs_search_delete AFTER DELETE ON jobs BEGIN
    INSERT INTO jobs_search (jobs_search, rowid, id, command)
      VALUES ('delete', old.rowid, old.id, old.command);
  END;
  INSERT INTO jobs_search (jobs_search) VALUES ('rebuild');
  CREATE INDEX jobs_queue_created ON jobs (queue, created_at);
  `,
  // 10: flow control (docs/architecture.md "Flow control"). Dependencies: the ids a job runs after
  // (depends_on, JSON text), one job_deps row per edge (dependents found by dep_id), and
  // blocked_by, how many of them are not completed. The claim index leaves blocked jobs out, so a
  // claim walks the same index as before whether or not any job has dependencies (the next-due
  // index leaves them out from 13). Queues: pause and a limit of jobs running at once (0 = none),
  // read inside the claim's transaction.
  `
  ALTER TABLE jobs ADD COLUMN depends_on TEXT;
  ALTER TABLE jobs ADD COLUMN blocked_by INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE job_deps (
    job_id TEXT NOT NULL,
    dep_id TEXT NOT NULL,
    PRIMARY KEY (job_id, dep_id)
  ) WITHOUT ROWID;
  CREATE INDEX job_deps_dep ON job_deps (dep_id, job_id);
  DROP INDEX jobs_claim;
  CREATE INDEX jobs_claim ON jobs (priority DESC, run_at, created_at)
    WHERE state IN ('pending', 'failed') AND blocked_by = 0;
  -- waiting jobs (status, queue list): only blocked ones are in it.
  CREATE INDEX jobs_blocked ON jobs (queue) WHERE blocked_by > 0 AND state IN ('pending', 'failed');
  CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0,
    max_running INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // 11: recurring schedules (core/schedule.ts): one row per schedule. The maintenance leader fires
  // a due slot by advancing next_run_at with a guard on its old value in the same transaction
  // that inserts the slot's job, so a slot fires once however many leaders race.
  `
  CREATE TABLE schedules (
    name TEXT PRIMARY KEY,
    cron TEXT,
    every_ms INTEGER,
    tz TEXT NOT NULL,
    job TEXT NOT NULL,
    catch_up INTEGER NOT NULL,
    paused INTEGER NOT NULL,
    next_run_at INTEGER NOT NULL,
    last_run_at INTEGER,
    last_job_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX schedules_due ON schedules (next_run_at) WHERE paused = 0;
  `,
  // 12 (issue 17):
  // - unique jobs: a job's unique_key, unique among jobs that are pending (or scheduled),
  //   processing or failed (a retry waiting), by a partial unique index (store.ts OnDuplicate);
  // - retention: finished jobs by the time they finished, for the maintenance duty that deletes
  //   old ones in small batches;
  // - metrics: run totals that only grow (runs per outcome, a histogram of run durations), kept by
  //   triggers on job_runs, so they survive restarts and the deletion of old runs; seeded from
  //   the runs already recorded. Buckets (upper bounds in seconds) are in the trigger.
  `
  ALTER TABLE jobs ADD COLUMN unique_key TEXT;
  CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('pending', 'processing', 'failed');
  CREATE INDEX jobs_retention ON jobs (state, updated_at) WHERE state IN ('completed', 'dead');
  CREATE TABLE run_totals (
    name TEXT PRIMARY KEY,
    n INTEGER NOT NULL
  ) WITHOUT ROWID;
  -- One statement per run (each statement of a trigger costs a settle time).
  CREATE TRIGGER job_runs_totals_insert AFTER INSERT ON job_runs
    WHEN new.outcome <> 'running' BEGIN
    INSERT INTO run_totals (name, n)
      SELECT name, n FROM (
        SELECT 'outcome:' || new.outcome AS name, 1 AS n
        UNION ALL SELECT 'duration_le:' || CASE WHEN new.duration_ms <= 100 THEN '0.1' WHEN new.duration_ms <= 500 THEN '0.5' WHEN new.duration_ms <= 1000 THEN '1' WHEN new.duration_ms <= 5000 THEN '5' WHEN new.duration_ms <= 10000 THEN '10' WHEN new.duration_ms <= 30000 THEN '30' WHEN new.duration_ms <= 60000 THEN '60' WHEN new.duration_ms <= 300000 THEN '300' WHEN new.duration_ms <= 1800000 THEN '1800' WHEN new.duration_ms <= 3600000 THEN '3600' ELSE '+Inf' END, 1
          WHERE new.duration_ms IS NOT NULL
        UNION ALL SELECT 'duration_sum_ms', new.duration_ms WHERE new.duration_ms IS NOT NULL)
      WHERE true ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
  END;
  CREATE TRIGGER job_runs_totals_update AFTER UPDATE OF outcome ON job_runs
    WHEN old.outcome = 'running' AND new.outcome <> 'running' BEGIN
    INSERT INTO run_totals (name, n)
      SELECT name, n FROM (
        SELECT 'outcome:' || new.outcome AS name, 1 AS n
        UNION ALL SELECT 'duration_le:' || CASE WHEN new.duration_ms <= 100 THEN '0.1' WHEN new.duration_ms <= 500 THEN '0.5' WHEN new.duration_ms <= 1000 THEN '1' WHEN new.duration_ms <= 5000 THEN '5' WHEN new.duration_ms <= 10000 THEN '10' WHEN new.duration_ms <= 30000 THEN '30' WHEN new.duration_ms <= 60000 THEN '60' WHEN new.duration_ms <= 300000 THEN '300' WHEN new.duration_ms <= 1800000 THEN '1800' WHEN new.duration_ms <= 3600000 THEN '3600' ELSE '+Inf' END, 1
          WHERE new.duration_ms IS NOT NULL
        UNION ALL SELECT 'duration_sum_ms', new.duration_ms WHERE new.duration_ms IS NOT NULL)
      WHERE true ON CONFLICT (name) DO UPDATE SET n = n + excluded.n;
  END;
  INSERT INTO run_totals (name, n)
    SELECT 'outcome:' || outcome, count(*) FROM job_runs WHERE outcome <> 'running' GROUP BY outcome;
  INSERT INTO run_totals (name, n)
    SELECT 'duration_le:' || CASE WHEN duration_ms <= 100 THEN '0.1' WHEN duration_ms <= 500 THEN '0.5' WHEN duration_ms <= 1000 THEN '1' WHEN duration_ms <= 5000 THEN '5' WHEN duration_ms <= 10000 THEN '10' WHEN duration_ms <= 30000 THEN '30' WHEN duration_ms <= 60000 THEN '60' WHEN duration_ms <= 300000 THEN '300' WHEN duration_ms <= 1800000 THEN '1800' WHEN duration_ms <= 3600000 THEN '3600' ELSE '+Inf' END AS b, count(*) FROM job_runs
    WHERE outcome <> 'running' AND duration_ms IS NOT NULL GROUP BY b;
  INSERT INTO run_totals (name, n)
    SELECT 'duration_sum_ms', coalesce(sum(duration_ms), 0) FROM job_runs
    WHERE outcome <> 'running' AND duration_ms IS NOT NULL HAVING count(*) > 0;
  `,
  // 13: the next-due index (scheduled jobs, an idle worker's next run: store.nextRunAt) leaves
  // waiting jobs (blocked_by > 0) out, as the claim index does since 10, so neither walks a long
  // chain of jobs waiting for their dependencies (docs/architecture.md "Flow control"). Its
  // queries name blocked_by = 0 to use it.
  `
  DROP INDEX jobs_waiting;
  CREATE INDEX jobs_waiting ON jobs (run_at) WHERE state IN ('pending', 'failed') AND blocked_by = 0;
  `,
  // 14 (docs/architecture.md "Reads at a million jobs"):
  // - searches walk the trigram index (or the table) in rowid order and stop at the page: a job
  //   inserted while a job created later already existed (its created_at is out of rowid order:
  //   writers racing, the clock set back) is recorded in jobs_disorder, and read apart. Found for
  //   the jobs already there in one pass; a trigger (an index probe of jobs_created) for new ones.
  // - a bulk enqueue fills the trigram index in one statement after its rows instead of a
  //   statement per row: while jobs_search_deferred holds a row (only ever inside a bulk
  //   enqueue's transaction, never committed), jobs with a rowid above its `after` are left to
  //   that statement by the index's triggers (and, if deleted meanwhile, were never indexed).
  `
  CREATE TABLE jobs_disorder (r INTEGER PRIMARY KEY);
  INSERT INTO jobs_disorder (r)
    SELECT r FROM (SELECT rowid AS r, created_at, max(created_at) OVER (ORDER BY rowid
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before FROM jobs)
    WHERE created_at < before;
  CREATE TRIGGER jobs_disorder_insert AFTER INSERT ON jobs
    WHEN EXISTS (SELECT 1 FROM jobs WHERE created_at > new.created_at) BEGIN
    INSERT OR IGNORE INTO jobs_disorder (r) VALUES (new.rowid);
  END;
  CREATE TRIGGER jobs_disorder_delete AFTER DELETE ON jobs
    WHEN EXISTS (SELECT 1 FROM jobs_disorder WHERE r = old.rowid) BEGIN
    DELETE FROM jobs_disorder WHERE r = old.rowid;
  END;
  CREATE TABLE jobs_search_deferred (after INTEGER NOT NULL);
  DROP TRIGGER jobs_search_insert;
  CREATE TRIGGER jobs_search_insert AFTER INSERT ON jobs
    WHEN NOT EXISTS (SELECT 1 FROM jobs_search_deferred WHERE after < new.rowid) BEGIN
    INSERT INTO jobs_search (rowid, id, command) VALUES (new.rowid, new.id, new.command);
  END;
  DROP TRIGGER jobs_search_delete;
  CREATE TRIGGER jobs_search_delete AFTER DELETE ON jobs
    WHEN NOT EXISTS (SELECT 1 FROM jobs_search_deferred WHERE after < old.rowid) BEGIN
    INSERT INTO jobs_search (jobs_search, rowid, id, command)
      VALUES ('delete', old.rowid, old.id, old.command);
  END;
  `,
  // 15: the counters are kept per queue and state, so `queue list`, the dashboard's Queues view
  // and /metrics read them instead of a GROUP BY over every job (0.4-2 s at 1M jobs); status sums
  // them (docs/architecture.md "Reads at a million jobs"). Seeded by one scan here.
  `
  CREATE TABLE job_counts_by_queue (
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
  ) WITHOUT ROWID;
  INSERT INTO job_counts_by_queue (queue, state, n)
    SELECT queue, state, count(*) FROM jobs GROUP BY queue, state;
  DROP TABLE job_counts;
  ALTER TABLE job_counts_by_queue RENAME TO job_counts;
  `,
];
