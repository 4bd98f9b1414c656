-- schema.sql - the cisweep job store, schema version 4: the single source of truth.
--
-- Compiled into the binaries (build/gen/schema_sql.h) and run by job_store_open on a new file,
-- inside one transaction; the PRAGMA user_version at the end records the version. Older files
-- are upgraded by the steps in coordinator/job_store_migrate.c; newer files are refused.
-- Every table is STRICT (SQLite >= 3.37). Every timestamp is INTEGER milliseconds since the Unix
-- epoch (UTC); the views add ISO-8601 text columns (*_iso). Durations are INTEGER milliseconds.
-- JSON is stored as TEXT. Column meanings are documented in schema/README.md.

-- one launched grid (a relaunch of the same name finds it)
CREATE TABLE sweeps (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    grid_path   TEXT,
    grid_name   TEXT,
    description TEXT,
    created_at  INTEGER NOT NULL
) STRICT;

-- a model slot of a sweep and where its weights are
CREATE TABLE models (
    id       INTEGER PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
    name     TEXT NOT NULL,
    path     TEXT NOT NULL,
    config   TEXT,
    UNIQUE (sweep_id, name)
) STRICT;

-- one composition (ordered list of stages) of one model in one sweep
CREATE TABLE compositions (
    id        INTEGER PRIMARY KEY,
    sweep_id  INTEGER NOT NULL REFERENCES sweeps(id),
    model_id  INTEGER NOT NULL REFERENCES models(id),
    key       TEXT NOT NULL,
    canonical TEXT NOT NULL,
    pattern   TEXT NOT NULL,
    label     TEXT NOT NULL,
    n_stages  INTEGER NOT NULL,
    UNIQUE (sweep_id, model_id, key)
) STRICT;

-- a composition's recompress policy (common/recompress.h, docs/interventions.md "Recompress
-- policy"), as the grid's "recompress" key set it and the JOB message carries it: one row per
-- composition launched by schema version 3 or later; a composition without a row ran 'paper'
CREATE TABLE composition_policy (
    composition_id INTEGER PRIMARY KEY REFERENCES compositions(id),
    recompress     TEXT NOT NULL CHECK (recompress IN ('paper', 'never', 'always', 'mask'))
) STRICT;

-- one unit of work: a composition (x one edit set for editing compositions)
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY,
    sweep_id        INTEGER NOT NULL REFERENCES sweeps(id),
    composition_id  INTEGER NOT NULL REFERENCES compositions(id),
    model_id        INTEGER NOT NULL REFERENCES models(id),
    edit_set        INTEGER NOT NULL DEFAULT 0,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending','leased','done','failed','dead','cancelled')),
    priority        INTEGER NOT NULL DEFAULT 0,
    attempt         INTEGER NOT NULL DEFAULT 0,   -- last attempt number started (0 = never)
    spent           INTEGER NOT NULL DEFAULT 0,   -- attempts counted against the budget
    max_attempts    INTEGER NOT NULL DEFAULT 3,
    lost_count      INTEGER NOT NULL DEFAULT 0,   -- attempts that lost their worker
    worker_id       TEXT,                         -- leased: holder; done: who produced the result
    lease_until     INTEGER,                      -- leased only
    last_heartbeat  INTEGER,
    progress        REAL,                         -- 0..1 as the worker reports it
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,                      -- start of the latest attempt
    finished_at     INTEGER,                      -- entered done/failed/dead/cancelled
    current_attempt INTEGER,                      -- done: the attempt whose results are current
    last_error      TEXT,
    UNIQUE (composition_id, edit_set)
) STRICT;
-- the claim: best pending job by priority, then id
CREATE INDEX jobs_claim ON jobs (state, priority DESC, id);
-- the claim with model affinity
CREATE INDEX jobs_affinity ON jobs (state, priority, model_id, id);
-- the lease sweep
CREATE INDEX jobs_lease ON jobs (state, lease_until);
CREATE INDEX jobs_worker ON jobs (worker_id) WHERE state = 'leased';
CREATE INDEX jobs_sweep ON jobs (sweep_id, state);

-- one lease of a job to a worker
CREATE TABLE attempts (
    job_id     INTEGER NOT NULL REFERENCES jobs(id),
    attempt    INTEGER NOT NULL,
    worker_id  TEXT,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    outcome    TEXT NOT NULL DEFAULT 'running'
               CHECK (outcome IN ('running','done','failed','preempted','lost','cancelled','superseded')),
    run_ms     INTEGER,                -- the worker's own timing of the job
    error      TEXT,
    log_tail   TEXT,
    result_at  INTEGER,                -- when a result of this attempt was recorded (NULL = none)
    PRIMARY KEY (job_id, attempt)
) STRICT;
CREATE INDEX attempts_started ON attempts (started_at);

-- metric rows, keyed by (job, attempt, metric); is_current = 1 for the job's current attempt
CREATE TABLE results (
    job_id     INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    metric     TEXT NOT NULL,
    value      REAL,                   -- NULL when not finite
    value_text TEXT,                   -- 'nan', 'inf', '-inf' when not finite, else NULL
    is_current INTEGER NOT NULL DEFAULT 0 CHECK (is_current IN (0, 1)),
    created_at INTEGER NOT NULL,
    UNIQUE (job_id, attempt, metric),
    FOREIGN KEY (job_id, attempt) REFERENCES attempts(job_id, attempt)
) STRICT;
CREATE INDEX results_current ON results (metric, job_id) WHERE is_current = 1;

-- what ran: one row per stage of an attempt's stage plan, as the worker reported it with the
-- RESULT (worker/interventions: the effective params after defaults and the per-model preset; the
-- paper's re-application of a leading compressor is its own row with recompress = 1)
CREATE TABLE stages (
    job_id      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    stage       INTEGER NOT NULL CHECK (stage >= 1),  -- 1-based position in the plan that ran
    of_stage    INTEGER NOT NULL CHECK (of_stage >= 1), -- 1-based position in the composition
    method      TEXT NOT NULL,
    category    TEXT,                   -- edit, compress, unlearn, test
    recompress  INTEGER NOT NULL DEFAULT 0 CHECK (recompress IN (0, 1)),
    params_json TEXT NOT NULL,          -- the effective params (canonical JSON)
    seed        INTEGER,                -- the stage's seed (= the edit set)
    record_json TEXT,                   -- what the method did (free-form JSON object)
    phases_json TEXT,                   -- wall seconds per phase, {"calibrate": 1.5, ...}
    wall_ms     INTEGER,                -- the stage's wall time
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt, stage),
    FOREIGN KEY (job_id, attempt) REFERENCES attempts(job_id, attempt)
) STRICT;
CREATE INDEX stages_method ON stages (method);

-- worker daemons the coordinator has heard from
CREATE TABLE workers (
    id          TEXT PRIMARY KEY,      -- routing id "host/device/nonce"
    host        TEXT,
    device      TEXT,
    backend     TEXT,
    version     TEXT,
    memory_mb   INTEGER,
    pid         INTEGER,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    state       TEXT NOT NULL DEFAULT 'idle' CHECK (state IN ('idle','busy','gone')),
    current_job INTEGER                -- jobs.id or NULL
) STRICT;

-- append-only log of every transition and notable happening
CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    ts        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    job_id    INTEGER,
    attempt   INTEGER,
    worker_id TEXT,
    detail    TEXT
) STRICT;
CREATE INDEX events_job ON events (job_id) WHERE job_id IS NOT NULL;

-- content-addressed files that jobs produce or share (e.g. MEMIT covariance statistics)
CREATE TABLE artifacts (
    id         INTEGER PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    path       TEXT NOT NULL,
    sha256     TEXT,
    bytes      INTEGER,
    created_at INTEGER NOT NULL,
    job_id     INTEGER REFERENCES jobs(id)
) STRICT;

-- job_id may not be leased before depends_on is done (a DAG)
CREATE TABLE dependencies (
    job_id     INTEGER NOT NULL REFERENCES jobs(id),
    depends_on INTEGER NOT NULL REFERENCES jobs(id),
    PRIMARY KEY (job_id, depends_on),
    CHECK (job_id <> depends_on)
) STRICT;
CREATE INDEX dependencies_rev ON dependencies (depends_on);

-- a job's device memory need, estimated at launch (coordinator/mem_need.h): the claim leases the
-- job only to a worker that offers at least need_mb (worker_memory); no row = not estimated (the
-- model's config.json could not be read at launch): any worker may take it
CREATE TABLE job_memory (
    job_id  INTEGER PRIMARY KEY REFERENCES jobs(id),
    need_mb INTEGER NOT NULL CHECK (need_mb >= 1),  -- MiB
    kind    TEXT NOT NULL,                          -- inference, train, edit-stats, override
    basis   TEXT NOT NULL                           -- the formula's inputs, one line
) STRICT;

-- the device memory a connected worker offers to jobs (HELLO.free_mb), as the claim uses it; no
-- row = unconstrained (a cpu worker without --report-free-mb)
CREATE TABLE worker_memory (
    worker_id  TEXT PRIMARY KEY REFERENCES workers(id),
    free_mb    INTEGER NOT NULL,                    -- MiB
    source     TEXT NOT NULL CHECK (source IN ('measured', 'option')),
    updated_at INTEGER NOT NULL
) STRICT;

-- ---- views ----------------------------------------------------------------------------------

-- one row per job, with names instead of ids (js_retry/js_cancel --where filters run over it)
CREATE VIEW v_jobs AS
SELECT j.id              AS id,
       s.name            AS sweep,
       m.name            AS model,
       c.pattern         AS pattern,
       c.label           AS label,
       c.canonical       AS canonical,
       c.key             AS key,
       c.n_stages        AS n_stages,
       j.edit_set        AS edit_set,
       j.state           AS state,
       j.priority        AS priority,
       j.attempt         AS attempt,
       j.spent           AS spent,
       j.max_attempts    AS max_attempts,
       j.lost_count      AS lost_count,
       j.worker_id       AS worker,
       j.progress        AS progress,
       j.current_attempt AS current_attempt,
       j.lease_until     AS lease_until,
       j.last_heartbeat  AS last_heartbeat,
       j.created_at      AS created_at,
       j.started_at      AS started_at,
       j.finished_at     AS finished_at,
       j.last_error      AS last_error,
       EXISTS (SELECT 1 FROM dependencies d JOIN jobs p ON p.id = d.depends_on
               WHERE d.job_id = j.id AND p.state <> 'done') AS blocked,
       strftime('%Y-%m-%dT%H:%M:%fZ', j.started_at / 1000.0, 'unixepoch')  AS started_iso,
       strftime('%Y-%m-%dT%H:%M:%fZ', j.finished_at / 1000.0, 'unixepoch') AS finished_iso
FROM jobs j
JOIN sweeps s       ON s.id = j.sweep_id
JOIN models m       ON m.id = j.model_id
JOIN compositions c ON c.id = j.composition_id;

-- one wide row per done job: its current attempt's metrics as columns, all of them in metrics_json
CREATE VIEW v_runs AS
WITH piv AS (
    SELECT r.job_id,
           max(CASE WHEN r.metric = 'mmlu'           THEN r.value END) AS mmlu,
           max(CASE WHEN r.metric = 'wmdp_bio'       THEN r.value END) AS wmdp_bio,
           max(CASE WHEN r.metric = 'wmdp_cyber'     THEN r.value END) AS wmdp_cyber,
           max(CASE WHEN r.metric = 'wmdp_avg'       THEN r.value END) AS wmdp_avg,
           max(CASE WHEN r.metric = 'ppl_wikitext'   THEN r.value END) AS ppl_wikitext,
           max(CASE WHEN r.metric = 'edit_success'   THEN r.value END) AS edit_success,
           max(CASE WHEN r.metric = 'generalization' THEN r.value END) AS generalization,
           max(CASE WHEN r.metric = 'locality'       THEN r.value END) AS locality,
           max(CASE WHEN r.metric = 'avg_bits'       THEN r.value END) AS avg_bits,
           json_group_object(r.metric, coalesce(r.value, r.value_text)) AS metrics_json
    FROM results r
    WHERE r.is_current = 1
    GROUP BY r.job_id
)
SELECT j.id              AS job_id,
       s.name            AS sweep,
       m.name            AS model,
       c.pattern         AS pattern,
       c.label           AS label,
       c.canonical       AS canonical,
       c.key             AS key,
       j.edit_set        AS edit_set,
       j.current_attempt AS attempt,
       a.worker_id       AS worker,
       p.mmlu, p.wmdp_bio, p.wmdp_cyber,
       coalesce(p.wmdp_avg, (p.wmdp_bio + p.wmdp_cyber) / 2.0) AS wmdp_avg,
       p.ppl_wikitext, p.edit_success, p.generalization, p.locality, p.avg_bits,
       a.run_ms          AS run_ms,
       coalesce(p.metrics_json, '{}') AS metrics_json,
       j.finished_at     AS finished_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', j.finished_at / 1000.0, 'unixepoch') AS finished_iso
FROM jobs j
JOIN sweeps s       ON s.id = j.sweep_id
JOIN models m       ON m.id = j.model_id
JOIN compositions c ON c.id = j.composition_id
LEFT JOIN attempts a ON a.job_id = j.id AND a.attempt = j.current_attempt
LEFT JOIN piv p      ON p.job_id = j.id
WHERE j.state = 'done';

-- per sweep: counts by state, done fraction, first start, last finish, rate and ETA
CREATE VIEW v_progress AS
WITH c AS (
    SELECT j.sweep_id,
           count(*)                                   AS total,
           sum(j.state = 'pending')                   AS pending,
           sum(j.state = 'leased')                    AS leased,
           sum(j.state = 'done')                      AS done,
           sum(j.state = 'failed')                    AS failed,
           sum(j.state = 'dead')                      AS dead,
           sum(j.state = 'cancelled')                 AS cancelled,
           max(CASE WHEN j.state = 'done' THEN j.finished_at END) AS last_finish
    FROM jobs j GROUP BY j.sweep_id
), f AS (
    SELECT j.sweep_id, min(a.started_at) AS first_start
    FROM attempts a JOIN jobs j ON j.id = a.job_id GROUP BY j.sweep_id
)
SELECT s.id AS sweep_id,
       s.name AS sweep,
       c.total, c.pending, c.leased, c.done, c.failed, c.dead, c.cancelled,
       round(CAST(c.done AS REAL) / c.total, 4) AS done_fraction,
       f.first_start,
       c.last_finish,
       strftime('%Y-%m-%dT%H:%M:%fZ', f.first_start / 1000.0, 'unixepoch') AS first_start_iso,
       strftime('%Y-%m-%dT%H:%M:%fZ', c.last_finish / 1000.0, 'unixepoch') AS last_finish_iso,
       CASE WHEN c.last_finish > f.first_start
            THEN c.done * 3600000.0 / (c.last_finish - f.first_start) END AS jobs_per_hour,
       CASE WHEN c.last_finish > f.first_start AND c.done > 0
            THEN (c.pending + c.leased) * (c.last_finish - f.first_start) / (1000.0 * c.done) END AS eta_s
FROM sweeps s
JOIN c ON c.sweep_id = s.id
LEFT JOIN f ON f.sweep_id = s.id;

-- failed and dead jobs with their last error and the last log tail any attempt left
CREATE VIEW v_failures AS
SELECT j.id AS job_id,
       s.name AS sweep,
       m.name AS model,
       c.pattern AS pattern,
       c.label AS label,
       j.edit_set AS edit_set,
       j.state AS state,
       j.attempt AS attempt,
       j.spent AS spent,
       j.max_attempts AS max_attempts,
       j.lost_count AS lost_count,
       j.worker_id AS worker,
       j.last_error AS last_error,
       (SELECT a.log_tail FROM attempts a
        WHERE a.job_id = j.id AND a.log_tail IS NOT NULL
        ORDER BY a.attempt DESC LIMIT 1) AS log_tail,
       j.finished_at AS finished_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', j.finished_at / 1000.0, 'unixepoch') AS finished_iso
FROM jobs j
JOIN sweeps s       ON s.id = j.sweep_id
JOIN models m       ON m.id = j.model_id
JOIN compositions c ON c.id = j.composition_id
WHERE j.state IN ('failed', 'dead');

-- every metric row of every attempt (long form), current or superseded
CREATE VIEW v_results AS
SELECT r.job_id AS job_id,
       s.name AS sweep,
       m.name AS model,
       c.pattern AS pattern,
       c.label AS label,
       j.edit_set AS edit_set,
       r.attempt AS attempt,
       r.metric AS metric,
       r.value AS value,
       r.value_text AS value_text,
       r.is_current AS is_current,
       r.created_at AS created_at
FROM results r
JOIN jobs j         ON j.id = r.job_id
JOIN sweeps s       ON s.id = j.sweep_id
JOIN models m       ON m.id = j.model_id
JOIN compositions c ON c.id = j.composition_id;

-- every stage of every attempt that reported a result, with names; is_current = 1 for the stages
-- of a done job's current attempt (the ones its metric rows come from)
CREATE VIEW v_stages AS
SELECT st.job_id AS job_id,
       s.name AS sweep,
       m.name AS model,
       c.pattern AS pattern,
       c.label AS label,
       j.edit_set AS edit_set,
       st.attempt AS attempt,
       (j.state = 'done' AND j.current_attempt = st.attempt) AS is_current,
       st.stage AS stage,
       st.of_stage AS of_stage,
       st.method AS method,
       st.category AS category,
       st.recompress AS recompress,
       st.params_json AS params_json,
       st.seed AS seed,
       st.record_json AS record_json,
       st.phases_json AS phases_json,
       st.wall_ms AS wall_ms,
       st.created_at AS created_at
FROM stages st
JOIN jobs j         ON j.id = st.job_id
JOIN sweeps s       ON s.id = j.sweep_id
JOIN models m       ON m.id = j.model_id
JOIN compositions c ON c.id = j.composition_id;

PRAGMA user_version = 4;
