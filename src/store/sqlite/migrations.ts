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
];
