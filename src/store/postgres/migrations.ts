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
  // 3: the job's working directory (absolute; null for jobs enqueued before).
  `
  ALTER TABLE jobs ADD COLUMN cwd text;
  `,
  // 4: variables the job gets on top of the worker's environment (JSON text; null = none).
  `
  ALTER TABLE jobs ADD COLUMN env text;
  `,
  // 5: watchers (wait, logs --follow): while a row is unexpired, settles send
  // NOTIFY queuectl_changes (postgres_store.ts waitForChanges).
  `
  CREATE TABLE watchers (
    id text COLLATE "C" PRIMARY KEY,
    expires_at bigint NOT NULL
  );
  `,
  // 6: `queuectl kill`: the signal asked for a processing job, read by the worker that runs it.
  `
  ALTER TABLE jobs ADD COLUMN kill_signal text;
  ALTER TABLE jobs ADD COLUMN kill_retry integer;
  `,
  // 7: run history (core/runs.ts): one row per run of a job, with the run's output (so far, while
  // it runs), deleted with its job. The output of the last run, kept in jobs until now, becomes a
  // run row.
  `
  CREATE TABLE job_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id text COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    worker text,
    host text,
    started_at bigint,
    finished_at bigint,
    duration_ms bigint,
    exit_code integer,
    signal text,
    error text,
    outcome text NOT NULL,
    retry_delay_ms bigint,
    stdout text NOT NULL DEFAULT '',
    stderr text NOT NULL DEFAULT ''
  );
  CREATE INDEX job_runs_job ON job_runs (job_id, id);
  INSERT INTO job_runs (job_id, attempt, started_at, finished_at, duration_ms, exit_code, error,
      outcome, stdout, stderr)
    SELECT id, attempts, started_at, finished_at, finished_at - started_at, exit_code, error,
      CASE WHEN state IN ('completed', 'failed', 'dead') THEN state ELSE 'failed' END,
      coalesce(stdout, ''), coalesce(stderr, '')
    FROM jobs WHERE finished_at IS NOT NULL ORDER BY seq;
  ALTER TABLE jobs DROP COLUMN stdout, DROP COLUMN stderr;
  `,
  // 8: stops of everything (`worker stop`), numbered: they outlive the worker records they
  // stamp, so a host that was away when its records were removed still learns of the stop.
  `
  CREATE TABLE stop_requests (
    seq bigserial PRIMARY KEY,
    requested_at bigint NOT NULL
  );
  `,
  // 9: substring search (list --search, the dashboard's search box) through trigram GIN indexes
  // (pg_trgm) on id and command, used by ILIKE '%text%'. pg_trgm ships with PostgreSQL (Debian:
  // postgresql-contrib, part of the server package) but a database may not allow it (not
  // installed, or CREATE EXTENSION refused to a non-owner): then the migration still succeeds,
  // migrate() says so on stderr, and search scans the table (correct, slower: see README). The extension goes
  // to schema public, once per database, so dropping one queuectl schema never takes it along.
  `
  DO $do$
  DECLARE ext_schema name;
  BEGIN
    BEGIN
      CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
    EXCEPTION WHEN OTHERS THEN
      -- Not available, not allowed, or another migration created it meanwhile (looked up next).
      NULL;
    END;
    SELECT extnamespace::regnamespace::name INTO ext_schema FROM pg_extension
      WHERE extname = 'pg_trgm';
    IF ext_schema IS NOT NULL THEN
      EXECUTE format('CREATE INDEX jobs_search_id ON jobs USING gin (id %I.gin_trgm_ops)',
        ext_schema);
      EXECUTE format(
        'CREATE INDEX jobs_search_command ON jobs USING gin (command %I.gin_trgm_ops)', ext_schema);
    END IF;
  END
  $do$;
  `,
  // 10: flow control (docs/architecture.md "Flow control"). Dependencies: the ids a job runs after
  // (depends_on, JSON text), one job_deps row per edge, and blocked_by, how many of them are not
  // completed. The claim index leaves blocked jobs out, so a claim walks the same index as before
  // whether or not any job has dependencies (the next-due index leaves them out from 13). A row
  // trigger, only on moves into or out of completed or dead, keeps blocked_by and carries a death
  // down to the dependents (and a restore back up), in the settle's own statement. Queues: pause
  // and a limit of jobs running at once (0 = none), read by the claim.
  `
  ALTER TABLE jobs ADD COLUMN depends_on text;
  ALTER TABLE jobs ADD COLUMN blocked_by integer NOT NULL DEFAULT 0;
  CREATE TABLE job_deps (
    job_id text COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    dep_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (job_id, dep_id)
  );
  CREATE INDEX job_deps_dep ON job_deps (dep_id, job_id);
  DROP INDEX jobs_claim;
  CREATE INDEX jobs_claim ON jobs (priority DESC, run_at, created_at, seq)
    WHERE state IN ('pending', 'failed') AND blocked_by = 0;
  CREATE INDEX jobs_blocked ON jobs (queue) WHERE blocked_by > 0 AND state IN ('pending', 'failed');
  CREATE TABLE queues (
    name text COLLATE "C" PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false,
    max_running integer NOT NULL DEFAULT 0,
    updated_at bigint NOT NULL
  );

  -- The dependents of the jobs in root (and theirs, down the graph) that are still waiting
  -- (pending or failed) go dead; the first level's error is root_error (dependency X failed, or
  -- deleted), deeper ones "dependency <parent> failed".
  CREATE FUNCTION queuectl_kill_dependents(root text, root_error text, at bigint)
  RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
  BEGIN
    WITH RECURSIVE down(id, cause) AS (
      SELECT d.job_id, root_error FROM job_deps d JOIN jobs j ON j.id = d.job_id
        WHERE d.dep_id = root AND j.state IN ('pending', 'failed')
      UNION
      SELECT d.job_id, 'dependency ' || down.id || ' failed' FROM down
        JOIN job_deps d ON d.dep_id = down.id JOIN jobs j ON j.id = d.job_id
        WHERE j.state IN ('pending', 'failed')
    ), first AS (SELECT DISTINCT ON (id) id, cause FROM down ORDER BY id, cause)
    UPDATE jobs SET state = 'dead', error = first.cause, finished_at = at, updated_at = at
      FROM first WHERE jobs.id = first.id AND jobs.state IN ('pending', 'failed');
  END
  $fn$;

  CREATE FUNCTION queuectl_job_deps() RETURNS trigger LANGUAGE plpgsql
  SET search_path FROM CURRENT AS $fn$
  BEGIN
    -- The cascades below are whole (recursive); their own updates need nothing more.
    IF pg_trigger_depth() > 1 THEN RETURN NULL; END IF;
    -- No job runs after it: the common case, one index lookup.
    IF NOT EXISTS (SELECT 1 FROM job_deps WHERE dep_id = NEW.id) THEN RETURN NULL; END IF;
    IF NEW.state = 'completed' THEN
      UPDATE jobs SET blocked_by = blocked_by - 1
        WHERE id IN (SELECT job_id FROM job_deps WHERE dep_id = NEW.id);
      -- Workers' hint when a dependent became claimable.
      IF FOUND AND EXISTS (SELECT 1 FROM job_deps d JOIN jobs j ON j.id = d.job_id
          WHERE d.dep_id = NEW.id AND j.blocked_by = 0 AND j.state IN ('pending', 'failed')) THEN
        PERFORM pg_notify('queuectl_jobs', current_schema());
      END IF;
    ELSIF OLD.state = 'completed' THEN
      UPDATE jobs SET blocked_by = blocked_by + 1
        WHERE id IN (SELECT job_id FROM job_deps WHERE dep_id = NEW.id);
    END IF;
    IF NEW.state = 'dead' THEN
      PERFORM queuectl_kill_dependents(NEW.id, 'dependency ' || NEW.id || ' failed',
        NEW.updated_at);
    ELSIF OLD.state = 'dead' THEN
      WITH RECURSIVE up(id) AS (
        SELECT d.job_id FROM job_deps d JOIN jobs j ON j.id = d.job_id
          WHERE d.dep_id = NEW.id AND j.state = 'dead'
            AND j.error = 'dependency ' || NEW.id || ' failed'
        UNION
        SELECT d.job_id FROM up JOIN job_deps d ON d.dep_id = up.id JOIN jobs j ON j.id = d.job_id
          WHERE j.state = 'dead' AND j.error = 'dependency ' || up.id || ' failed'
      )
      UPDATE jobs SET state = 'pending', error = NULL, finished_at = NULL, attempts = 0,
          run_at = NEW.updated_at, updated_at = NEW.updated_at
        WHERE id IN (SELECT id FROM up) AND state = 'dead';
    END IF;
    RETURN NULL;
  END
  $fn$;
  CREATE TRIGGER jobs_deps AFTER UPDATE OF state ON jobs FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state
      AND (OLD.state IN ('completed', 'dead') OR NEW.state IN ('completed', 'dead')))
    EXECUTE FUNCTION queuectl_job_deps();
  -- Deleted jobs: the dependents of one deleted unfinished go dead (a restore of them runs
  -- them without it); edges to deleted jobs go.
  CREATE FUNCTION queuectl_job_deps_deleted() RETURNS trigger LANGUAGE plpgsql
  SET search_path FROM CURRENT AS $fn$
  DECLARE
    r record;
    at bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  BEGIN
    FOR r IN SELECT o.id FROM old_rows o WHERE o.state <> 'completed'
        AND EXISTS (SELECT 1 FROM job_deps d WHERE d.dep_id = o.id) LOOP
      PERFORM queuectl_kill_dependents(r.id,
        'dependency ' || r.id || ' was deleted before it completed', at);
    END LOOP;
    UPDATE jobs SET blocked_by = jobs.blocked_by - gone.n FROM (
      SELECT d.job_id, count(*) AS n FROM job_deps d JOIN old_rows o ON o.id = d.dep_id
        WHERE o.state <> 'completed' GROUP BY d.job_id
    ) gone WHERE jobs.id = gone.job_id;
    DELETE FROM job_deps d USING old_rows o WHERE d.dep_id = o.id;
    RETURN NULL;
  END
  $fn$;
  CREATE TRIGGER jobs_deps_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION queuectl_job_deps_deleted();
  `,
  // 11: recurring schedules (core/schedule.ts): one row per schedule. The maintenance leader fires
  // a due slot by advancing next_run_at with a guard on its old value in the same transaction
  // that inserts the slot's job, so a slot fires once however many leaders race.
  `
  CREATE TABLE schedules (
    name text PRIMARY KEY,
    cron text,
    every_ms bigint,
    tz text NOT NULL,
    job text NOT NULL,
    catch_up boolean NOT NULL,
    paused boolean NOT NULL,
    next_run_at bigint NOT NULL,
    last_run_at bigint,
    last_job_id text,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
  );
  CREATE INDEX schedules_due ON schedules (next_run_at) WHERE NOT paused;
  `,
  // 12 (issue 17):
  // - unique jobs: a job's unique_key, unique among jobs that are pending (or scheduled),
  //   processing or failed (a retry waiting), by a partial unique index (store.ts OnDuplicate);
  // - retention: finished jobs by the time they finished, for the maintenance duty that deletes
  //   old ones in small batches;
  // - metrics: run totals that only grow (runs per outcome, a histogram of run durations), kept by
  //   a trigger on job_runs in 16 shards per name (by backend pid, as job_counts), so they survive
  //   restarts and the deletion of old runs; seeded from the runs already recorded.
  `
  ALTER TABLE jobs ADD COLUMN unique_key text;
  CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('pending', 'processing', 'failed');
  CREATE INDEX jobs_retention ON jobs (state, updated_at) WHERE state IN ('completed', 'dead');
  CREATE TABLE run_totals (
    name text COLLATE "C" NOT NULL,
    shard integer NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (name, shard)
  );
  CREATE FUNCTION queuectl_run_totals() RETURNS trigger LANGUAGE plpgsql
  SET search_path FROM CURRENT AS $fn$
  DECLARE
    s integer := pg_backend_pid() % 16;
  BEGIN
    IF NEW.outcome = 'running' OR (TG_OP = 'UPDATE' AND OLD.outcome <> 'running') THEN
      RETURN NULL;
    END IF;
    -- One statement (each costs a settle time); its rows in one order: outcome, bucket, sum.
    INSERT INTO run_totals AS t (name, shard, n)
      SELECT v.name, s, v.n FROM (VALUES
        (1, 'outcome:' || NEW.outcome, 1::bigint),
        (2, 'duration_le:' || CASE WHEN NEW.duration_ms <= 100 THEN '0.1' WHEN NEW.duration_ms <= 500 THEN '0.5' WHEN NEW.duration_ms <= 1000 THEN '1' WHEN NEW.duration_ms <= 5000 THEN '5' WHEN NEW.duration_ms <= 10000 THEN '10' WHEN NEW.duration_ms <= 30000 THEN '30' WHEN NEW.duration_ms <= 60000 THEN '60' WHEN NEW.duration_ms <= 300000 THEN '300' WHEN NEW.duration_ms <= 1800000 THEN '1800' WHEN NEW.duration_ms <= 3600000 THEN '3600' ELSE '+Inf' END, 1::bigint),
        (3, 'duration_sum_ms', NEW.duration_ms)) AS v(k, name, n)
      WHERE v.k = 1 OR NEW.duration_ms IS NOT NULL ORDER BY v.k
      ON CONFLICT (name, shard) DO UPDATE SET n = t.n + EXCLUDED.n;
    RETURN NULL;
  END
  $fn$;
  -- No run may settle while the totals are seeded and the trigger created.
  LOCK TABLE job_runs IN SHARE ROW EXCLUSIVE MODE;
  INSERT INTO run_totals (name, shard, n)
    SELECT 'outcome:' || outcome, 0, count(*) FROM job_runs WHERE outcome <> 'running'
    GROUP BY outcome;
  INSERT INTO run_totals (name, shard, n)
    SELECT 'duration_le:' || CASE WHEN duration_ms <= 100 THEN '0.1' WHEN duration_ms <= 500 THEN '0.5' WHEN duration_ms <= 1000 THEN '1' WHEN duration_ms <= 5000 THEN '5' WHEN duration_ms <= 10000 THEN '10' WHEN duration_ms <= 30000 THEN '30' WHEN duration_ms <= 60000 THEN '60' WHEN duration_ms <= 300000 THEN '300' WHEN duration_ms <= 1800000 THEN '1800' WHEN duration_ms <= 3600000 THEN '3600' ELSE '+Inf' END AS b, 0, count(*) FROM job_runs
    WHERE outcome <> 'running' AND duration_ms IS NOT NULL GROUP BY b;
  INSERT INTO run_totals (name, shard, n)
    SELECT 'duration_sum_ms', 0, coalesce(sum(duration_ms), 0) FROM job_runs
    WHERE outcome <> 'running' AND duration_ms IS NOT NULL HAVING count(*) > 0;
  CREATE TRIGGER job_runs_totals AFTER INSERT OR UPDATE OF outcome ON job_runs
    FOR EACH ROW EXECUTE FUNCTION queuectl_run_totals();
  `,
  // 13: the next-due index (scheduled jobs, an idle worker's next run: store.nextRunAt) leaves
  // waiting jobs (blocked_by > 0) out, as the claim index does since 10, so neither walks a long
  // chain of jobs waiting for their dependencies (docs/architecture.md "Flow control"). Its
  // queries name blocked_by = 0 to use it.
  `
  DROP INDEX jobs_run_at;
  CREATE INDEX jobs_run_at ON jobs (run_at) WHERE state IN ('pending', 'failed') AND blocked_by = 0;
  `,
  // 14: the trigram index of 9 on id answered `id = x` too (gin_trgm_ops has equality), and on a
  // table without statistics yet (a big insert in one transaction) the planner took it over the
  // primary key: every dependency lookup of a bulk insert with "after" searched trigrams, 10,000
  // dependents of one job took 41 s. Search now indexes the expression (id || ''), which an
  // equality on id never matches; its query says the same expression.
  `
  DO $do$
  DECLARE ext_schema name;
  BEGIN
    SELECT extnamespace::regnamespace::name INTO ext_schema FROM pg_extension
      WHERE extname = 'pg_trgm';
    IF ext_schema IS NOT NULL THEN
      DROP INDEX IF EXISTS jobs_search_id;
      EXECUTE format(
        'CREATE INDEX jobs_search_id ON jobs USING gin ((id || %L) %I.gin_trgm_ops)', '', ext_schema);
    END IF;
  END
  $do$;
  `,
  // 15: the counters are kept per queue and state (still 16 shards each), so `queue list`, the
  // dashboard's Queues view and /metrics read them instead of a GROUP BY over every job; status
  // sums them (docs/architecture.md "Reads at a million jobs"). The trigger function keeps its
  // name (the triggers of 2 call it); rows are upserted in (queue, state) order: no deadlock.
  `
  LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;
  CREATE TABLE job_counts_by_queue (
    queue text COLLATE "C" NOT NULL,
    state text NOT NULL,
    shard integer NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (queue, state, shard)
  );
  INSERT INTO job_counts_by_queue (queue, state, shard, n)
    SELECT queue, state, 0, count(*) FROM jobs GROUP BY queue, state;
  DROP TABLE job_counts;
  ALTER TABLE job_counts_by_queue RENAME TO job_counts;
  ALTER INDEX job_counts_by_queue_pkey RENAME TO job_counts_pkey;

  CREATE OR REPLACE FUNCTION queuectl_count_jobs() RETURNS trigger LANGUAGE plpgsql
  SET search_path FROM CURRENT AS $fn$
  BEGIN
    IF TG_OP = 'INSERT' THEN
      INSERT INTO job_counts AS c (queue, state, shard, n)
        SELECT queue, state, pg_backend_pid() % 16, count(*) FROM new_rows
        GROUP BY queue, state ORDER BY queue, state
        ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
      INSERT INTO job_counts AS c (queue, state, shard, n)
        SELECT queue, state, pg_backend_pid() % 16, -count(*) FROM old_rows
        GROUP BY queue, state ORDER BY queue, state
        ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
      INSERT INTO job_counts AS c (queue, state, shard, n)
        SELECT queue, state, pg_backend_pid() % 16, sum(d) FROM (
          SELECT queue, state, 1 AS d FROM new_rows UNION ALL SELECT queue, state, -1 FROM old_rows
        ) moves GROUP BY queue, state HAVING sum(d) <> 0 ORDER BY queue, state
        ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
  END
  $fn$;
  `,
  // 16: the trigger functions without `SET search_path FROM CURRENT` (2, 10, 12, 15), which made
  // each call save, set and restore the setting: four calls per settle-and-claim of a worker, ~9%
  // of the server's CPU per job (bench/pg_settle_loop.ts). Their tables, and the functions they
  // call, are named with the schema instead (written in here at migration time), so a trigger
  // fired by a session whose search_path differs (psql on another schema) still writes this
  // schema's tables; built-ins (count, pg_notify) come from pg_catalog, searched first. The
  // schema's name is a literal where the function used current_schema() (the workers' hint).
  // The run totals trigger skips runs still running by its WHEN clause, without a call.
  `
  DO $do$
  DECLARE
    s text := quote_ident(current_schema());
    lit text := quote_literal(current_schema());
  BEGIN
    EXECUTE replace(replace($sql$
  CREATE OR REPLACE FUNCTION QSCHEMA.queuectl_count_jobs() RETURNS trigger LANGUAGE plpgsql AS $fn$
  BEGIN
    IF TG_OP = 'INSERT' THEN
      INSERT INTO QSCHEMA.job_counts AS c (queue, state, shard, n)
        SELECT queue, state, pg_backend_pid() % 16, count(*) FROM new_rows
        GROUP BY queue, state ORDER BY queue, state
        ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
      INSERT INTO QSCHEMA.job_counts AS c (queue, state, shard, n)
        SELECT queue, state, pg_backend_pid() % 16, -count(*) FROM old_rows
        GROUP BY queue, state ORDER BY queue, state
        ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
      INSERT INTO QSCHEMA.job_counts AS c (queue, state, shard, n)
        SELECT queue, state, pg_backend_pid() % 16, sum(d) FROM (
          SELECT queue, state, 1 AS d FROM new_rows UNION ALL SELECT queue, state, -1 FROM old_rows
        ) moves GROUP BY queue, state HAVING sum(d) <> 0 ORDER BY queue, state
        ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
  END
  $fn$;

  CREATE OR REPLACE FUNCTION QSCHEMA.queuectl_kill_dependents(root text, root_error text, at bigint)
  RETURNS void LANGUAGE plpgsql AS $fn$
  BEGIN
    WITH RECURSIVE down(id, cause) AS (
      SELECT d.job_id, root_error FROM QSCHEMA.job_deps d JOIN QSCHEMA.jobs j ON j.id = d.job_id
        WHERE d.dep_id = root AND j.state IN ('pending', 'failed')
      UNION
      SELECT d.job_id, 'dependency ' || down.id || ' failed' FROM down
        JOIN QSCHEMA.job_deps d ON d.dep_id = down.id JOIN QSCHEMA.jobs j ON j.id = d.job_id
        WHERE j.state IN ('pending', 'failed')
    ), first AS (SELECT DISTINCT ON (id) id, cause FROM down ORDER BY id, cause)
    UPDATE QSCHEMA.jobs SET state = 'dead', error = first.cause, finished_at = at, updated_at = at
      FROM first WHERE jobs.id = first.id AND jobs.state IN ('pending', 'failed');
  END
  $fn$;

  CREATE OR REPLACE FUNCTION QSCHEMA.queuectl_job_deps() RETURNS trigger LANGUAGE plpgsql AS $fn$
  BEGIN
    -- The cascades below are whole (recursive); their own updates need nothing more.
    IF pg_trigger_depth() > 1 THEN RETURN NULL; END IF;
    -- No job runs after it: the common case, one index lookup.
    IF NOT EXISTS (SELECT 1 FROM QSCHEMA.job_deps WHERE dep_id = NEW.id) THEN RETURN NULL; END IF;
    IF NEW.state = 'completed' THEN
      UPDATE QSCHEMA.jobs SET blocked_by = blocked_by - 1
        WHERE id IN (SELECT job_id FROM QSCHEMA.job_deps WHERE dep_id = NEW.id);
      -- Workers' hint when a dependent became claimable.
      IF FOUND AND EXISTS (SELECT 1 FROM QSCHEMA.job_deps d JOIN QSCHEMA.jobs j ON j.id = d.job_id
          WHERE d.dep_id = NEW.id AND j.blocked_by = 0 AND j.state IN ('pending', 'failed')) THEN
        PERFORM pg_notify('queuectl_jobs', QLITERAL);
      END IF;
    ELSIF OLD.state = 'completed' THEN
      UPDATE QSCHEMA.jobs SET blocked_by = blocked_by + 1
        WHERE id IN (SELECT job_id FROM QSCHEMA.job_deps WHERE dep_id = NEW.id);
    END IF;
    IF NEW.state = 'dead' THEN
      PERFORM QSCHEMA.queuectl_kill_dependents(NEW.id, 'dependency ' || NEW.id || ' failed',
        NEW.updated_at);
    ELSIF OLD.state = 'dead' THEN
      WITH RECURSIVE up(id) AS (
        SELECT d.job_id FROM QSCHEMA.job_deps d JOIN QSCHEMA.jobs j ON j.id = d.job_id
          WHERE d.dep_id = NEW.id AND j.state = 'dead'
            AND j.error = 'dependency ' || NEW.id || ' failed'
        UNION
        SELECT d.job_id FROM up JOIN QSCHEMA.job_deps d ON d.dep_id = up.id
          JOIN QSCHEMA.jobs j ON j.id = d.job_id
          WHERE j.state = 'dead' AND j.error = 'dependency ' || up.id || ' failed'
      )
      UPDATE QSCHEMA.jobs SET state = 'pending', error = NULL, finished_at = NULL, attempts = 0,
          run_at = NEW.updated_at, updated_at = NEW.updated_at
        WHERE id IN (SELECT id FROM up) AND state = 'dead';
    END IF;
    RETURN NULL;
  END
  $fn$;

  CREATE OR REPLACE FUNCTION QSCHEMA.queuectl_job_deps_deleted() RETURNS trigger
  LANGUAGE plpgsql AS $fn$
  DECLARE
    r record;
    at bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  BEGIN
    FOR r IN SELECT o.id FROM old_rows o WHERE o.state <> 'completed'
        AND EXISTS (SELECT 1 FROM QSCHEMA.job_deps d WHERE d.dep_id = o.id) LOOP
      PERFORM QSCHEMA.queuectl_kill_dependents(r.id,
        'dependency ' || r.id || ' was deleted before it completed', at);
    END LOOP;
    UPDATE QSCHEMA.jobs SET blocked_by = jobs.blocked_by - gone.n FROM (
      SELECT d.job_id, count(*) AS n FROM QSCHEMA.job_deps d JOIN old_rows o ON o.id = d.dep_id
        WHERE o.state <> 'completed' GROUP BY d.job_id
    ) gone WHERE jobs.id = gone.job_id;
    DELETE FROM QSCHEMA.job_deps d USING old_rows o WHERE d.dep_id = o.id;
    RETURN NULL;
  END
  $fn$;

  CREATE OR REPLACE FUNCTION QSCHEMA.queuectl_run_totals() RETURNS trigger LANGUAGE plpgsql AS $fn$
  DECLARE
    s integer := pg_backend_pid() % 16;
  BEGIN
    -- Called only for a run that ends (the trigger's WHEN clause); one statement, its rows in
    -- one order: outcome, bucket, sum.
    INSERT INTO QSCHEMA.run_totals AS t (name, shard, n)
      SELECT v.name, s, v.n FROM (VALUES
        (1, 'outcome:' || NEW.outcome, 1::bigint),
        (2, 'duration_le:' || CASE WHEN NEW.duration_ms <= 100 THEN '0.1' WHEN NEW.duration_ms <= 500 THEN '0.5' WHEN NEW.duration_ms <= 1000 THEN '1' WHEN NEW.duration_ms <= 5000 THEN '5' WHEN NEW.duration_ms <= 10000 THEN '10' WHEN NEW.duration_ms <= 30000 THEN '30' WHEN NEW.duration_ms <= 60000 THEN '60' WHEN NEW.duration_ms <= 300000 THEN '300' WHEN NEW.duration_ms <= 1800000 THEN '1800' WHEN NEW.duration_ms <= 3600000 THEN '3600' ELSE '+Inf' END, 1::bigint),
        (3, 'duration_sum_ms', NEW.duration_ms)) AS v(k, name, n)
      WHERE v.k = 1 OR NEW.duration_ms IS NOT NULL ORDER BY v.k
      ON CONFLICT (name, shard) DO UPDATE SET n = t.n + EXCLUDED.n;
    RETURN NULL;
  END
  $fn$;

  DROP TRIGGER job_runs_totals ON QSCHEMA.job_runs;
  CREATE TRIGGER job_runs_totals_insert AFTER INSERT ON QSCHEMA.job_runs FOR EACH ROW
    WHEN (NEW.outcome <> 'running') EXECUTE FUNCTION QSCHEMA.queuectl_run_totals();
  CREATE TRIGGER job_runs_totals_update AFTER UPDATE OF outcome ON QSCHEMA.job_runs FOR EACH ROW
    WHEN (OLD.outcome = 'running' AND NEW.outcome <> 'running')
    EXECUTE FUNCTION QSCHEMA.queuectl_run_totals();
    $sql$, 'QSCHEMA.', s || '.'), 'QLITERAL', lit);
  END
  $do$;
  `,
  // 17: search reads one lower-cased text per job (docs/architecture.md, "Reads at a million
  // jobs"): search_text = lower(id) || newline || lower(command), stored (computed by the server on
  // insert, kept as it is by updates that change neither), with one trigram index in place of the
  // two of 9 and 14. A row is then tested with LIKE of the lower-cased text (what ILIKE does inside,
  // each side lowered by its own collation), once, and one index read answers both columns: a text
  // with 111,111 old matches at 1M jobs 53.6 -> 48.9 ms through the API, rare texts a third to a
  // half less. Ids hold no newline, so a text without one never matches across the two parts.
  // Adding the column rewrites the table under the migration's lock, and the text is stored twice
  // (the command and its lower case). Without pg_trgm the column is still added (one LIKE per row
  // for a scan). The rewrite also leaves the table's visibility map empty, which autovacuum may not
  // fill for a long time on a quiet table (index-only scans, e.g. /api/stats, then read the heap):
  // migrate() vacuums the table once after the commit (connect.ts); 17-19 s in all at 1M jobs.
  `
  DO $do$
  DECLARE ext_schema name;
  BEGIN
    BEGIN
      CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
    EXCEPTION WHEN OTHERS THEN
      NULL;
    END;
    ALTER TABLE jobs ADD COLUMN search_text text
      GENERATED ALWAYS AS (lower(id) || E'\\n' || lower(command)) STORED;
    DROP INDEX IF EXISTS jobs_search_id;
    DROP INDEX IF EXISTS jobs_search_command;
    SELECT extnamespace::regnamespace::name INTO ext_schema FROM pg_extension
      WHERE extname = 'pg_trgm';
    IF ext_schema IS NOT NULL THEN
      EXECUTE format('CREATE INDEX jobs_search ON jobs USING gin (search_text %I.gin_trgm_ops)',
        ext_schema);
    END IF;
  END
  $do$;
  -- The rewritten table has no statistics for the new column: plans from the first search on.
  ANALYZE jobs;
  `,
];
