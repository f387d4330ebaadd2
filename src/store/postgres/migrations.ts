/**
 * PostgreSQL schema migrations, numbered from 1 (index 0 = version 1). Each runs once, in order,
 * in one transaction that holds an advisory lock, and is recorded in `schema_migrations`.
 * Never edit a released migration: add a new one.
 *
 * Times are epoch milliseconds in `bigint` columns. `seq` numbers jobs in insertion order and breaks
 * ordering ties (jobs enqueued in one batch share created_at), like SQLite's rowid. Ids, queues and
 * lease owners use the "C" collation (byte order), as SQLite's BINARY collation does.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: jobs (with the output of their last run), config, workers.
  `
  CREATE TABLE jobs (
    id text COLLATE "C" PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    command text NOT NULL,
    queue text COLLATE "C" NOT NULL,
    state text NOT NULL
      CHECK (state IN ('pending', 'processing', 'completed', 'failed', 'dead')),
    priority integer NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    max_retries integer NOT NULL,
    timeout double precision,
    run_at bigint NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    started_at bigint,
    finished_at bigint,
    exit_code integer,
    error text,
    lease_owner text COLLATE "C",
    lease_expires_at bigint,
    -- Output of the last run; never read by list queries (TOASTed out of line when large).
    stdout text,
    stderr text
  );
  -- list --state S (newest or oldest first), per-state counts of status, oldest pending job.
  CREATE INDEX jobs_state_created ON jobs (state, created_at, seq);
  -- list without a state filter.
  CREATE INDEX jobs_created ON jobs (created_at, seq);
  -- list --queue Q.
  CREATE INDEX jobs_queue_created ON jobs (queue, created_at, seq);
  -- claim order (and list --order next) among claimable jobs only.
  CREATE INDEX jobs_claim ON jobs (priority DESC, run_at, created_at, seq)
    WHERE state IN ('pending', 'failed');
  -- next due time and the count of scheduled jobs.
  CREATE INDEX jobs_run_at ON jobs (run_at) WHERE state IN ('pending', 'failed');
  -- rescue of jobs whose worker died; lease renewal by owner.
  CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'processing';
  CREATE INDEX jobs_lease_owner ON jobs (lease_owner) WHERE state = 'processing';
  -- throughput chart (completed per bucket).
  CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state = 'completed';

  CREATE TABLE config (
    key text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
  );

  CREATE TABLE workers (
    id text COLLATE "C" PRIMARY KEY,
    pid integer NOT NULL,
    host text NOT NULL,
    -- JSON array of queue names, or NULL for all queues.
    queues text,
    started_at bigint NOT NULL,
    heartbeat_at bigint NOT NULL,
    current_job text,
    stop_requested_at bigint,
    supervisor_id text
  );
  `,
  // 2: exact per-state counts kept by statement triggers, so `status` does not scan 1M rows.
  // Deltas go to one of 16 shards per state (by backend pid) so concurrent workers rarely touch
  // the same counter row; rows are upserted in state order, so they never deadlock.
  `
  CREATE TABLE job_counts (
    state text NOT NULL,
    shard integer NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (state, shard)
  );

  CREATE FUNCTION queuectl_count_jobs() RETURNS trigger LANGUAGE plpgsql
  SET search_path FROM CURRENT AS $fn$
  BEGIN
    IF TG_OP = 'INSERT' THEN
      INSERT INTO job_counts AS c (state, shard, n)
        SELECT state, pg_backend_pid() % 16, count(*) FROM new_rows GROUP BY state ORDER BY state
        ON CONFLICT (state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
      INSERT INTO job_counts AS c (state, shard, n)
        SELECT state, pg_backend_pid() % 16, -count(*) FROM old_rows GROUP BY state ORDER BY state
        ON CONFLICT (state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
      INSERT INTO job_counts AS c (state, shard, n)
        SELECT state, pg_backend_pid() % 16, sum(d) FROM (
          SELECT state, 1 AS d FROM new_rows UNION ALL SELECT state, -1 FROM old_rows
        ) moves GROUP BY state HAVING sum(d) <> 0 ORDER BY state
        ON CONFLICT (state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
  END
  $fn$;

  -- No job may change while the counts are seeded and the triggers created.
  LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;
  INSERT INTO job_counts (state, shard, n) SELECT state, 0, count(*) FROM jobs GROUP BY state;
  CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION queuectl_count_jobs();
  CREATE TRIGGER jobs_count_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION queuectl_count_jobs();
  CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION queuectl_count_jobs();
  `,
];
