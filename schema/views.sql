-- views.sql - the paper's composability metrics (Order-free Error E_OF, Order Sensitivity E_OS) as
-- SQL views over the job store (schema.sql). Read-only analysis: no table, no index, no data.
--
-- Compiled into the binaries (build/gen/views_sql.h) and applied by job_store_open after the schema
-- is current (coordinator/job_store_views.c): a writing open (re)creates these views in the file
-- whenever the file's copy differs from this text (the marker view v_views_version holds the
-- sha256 of this file), so new files, files made by an older build and files whose views predate
-- this text all end up with them; a read-only open of a file without them (or with another
-- build's) creates the same views as TEMP views on its own connection. Hence every statement here
-- is idempotent: DROP VIEW IF EXISTS, then CREATE VIEW. Views are not part of PRAGMA user_version.
--
-- What the paper computed (../shared/docs/fidelity.md §5; the authors' notebook
-- notebooks/paper_analysis_iclr.ipynb on iclr_push, cells 10, 23, 29-43):
--   * runs reduced to the current result per (model, composition, edit set): results.is_current = 1
--     of jobs in state 'done' (one job per composition and edit set; superseded attempts and
--     failed/dead/pending jobs never count)
--   * averaged per composition over its runs (edit sets; for compositions without an editor, the
--     grid's seeds, which jobs.edit_set also holds, or the one run with edit set 0), with the
--     standard error
--     se = sample standard deviation / sqrt(n) (pandas std, ddof = 1; NULL when n < 2)
--   * for each pair of interventions (i, j) from different categories, both orders:
--       higher-is-better kappa (edit_success, generalization, locality, mmlu):
--           E_OF = 1 - max(kappa_ij, kappa_ji),  E_OS = |kappa_ij - kappa_ji|
--       wmdp, W = (wmdp_bio + wmdp_cyber) / 2 (lower is better):
--           E_OF = min(W_ij, W_ji),              E_OS = |W_ij - W_ji|
--   * rounding to 4 decimals the notebook's way: e_of_r4 = 1 - round(max, 4) (min: round(min, 4)),
--     e_os_r4 = round(|diff|, 4); 1 - round(max, 4) is rounded once more to drop the float noise
--     of the subtraction (1 - 0.5417 = 0.45830000000000004 -> 0.4583). SQLite's round() rounds
--     half away from zero, numpy's half to even: they differ only on exact binary ties, which
--     accuracies averaged over edit sets do not hit.
--   * the tables: compressor at sparsity 0.25 / 4 bits, plus an Average row = the column mean of the
--     rounded cells over compressors (over unlearners in the editing x unlearning table).
-- Beyond the paper: every compression level (headline = 0 rows), E_OF / E_OS per edit set with
-- their mean and standard error over edit sets (v_composability_sets), and E_OF / E_OS integrated
-- over the compression level (v_composability_area).
--
-- Names: a composition's stage i is json_extract(canonical, '$[i-1]'); its category is the i-th
-- element of `pattern` (edit, compress, unlearn, test); a compressor's level is its `sparsity`
-- (wanda, sparsegpt) or `bits` (gptq, awq) param. Two stages are the same intervention when their
-- canonical JSON texts ({"method": ..., "params": {...}} with every default filled in) are equal.
-- The composition key is the grid's 2-stage one even though the paper's recompress rule makes
-- wanda->memit run wanda->memit->wanda (schema/README.md, stages.recompress).
-- Column meanings and example queries: schema/README.md "Composability views".

DROP VIEW IF EXISTS v_composability_area;
DROP VIEW IF EXISTS v_composability_table;
DROP VIEW IF EXISTS v_composability;
DROP VIEW IF EXISTS v_composability_sets;
DROP VIEW IF EXISTS v_composition_metrics;
DROP VIEW IF EXISTS v_run_metrics;
DROP VIEW IF EXISTS v_composition_stages;
DROP VIEW IF EXISTS v_views_version;

-- one row per composition: its first two stages decoded (method, category, level, canonical JSON).
-- canonical_valid = 0 marks a composition whose canonical text is not a JSON array (only a
-- hand-edited file has one): its stages are NULL, so it pairs with nothing, instead of one bad row
-- making every view fail with "malformed JSON".
CREATE VIEW v_composition_stages AS
WITH cv AS (
    SELECT c.*, CASE WHEN json_valid(c.canonical) THEN json_type(c.canonical) = 'array' ELSE 0 END AS ok
    FROM compositions c
), c0 AS (
    SELECT c.id AS composition_id, c.sweep_id, c.model_id, c.pattern, c.label, c.n_stages, c.key,
           c.canonical, c.ok,
           CASE WHEN c.ok AND c.n_stages >= 1 AND json_type(c.canonical, '$[0]') = 'object'
                THEN json_extract(c.canonical, '$[0]') END AS stage_1,
           CASE WHEN c.ok AND c.n_stages >= 2 AND json_type(c.canonical, '$[1]') = 'object'
                THEN json_extract(c.canonical, '$[1]') END AS stage_2,
           CASE WHEN c.ok AND c.n_stages >= 1 THEN json_extract(c.canonical, '$[0].method') END AS method_1,
           CASE WHEN c.ok AND c.n_stages >= 2 THEN json_extract(c.canonical, '$[1].method') END AS method_2,
           -- pattern 'a->b->...': its first and second elements
           CASE WHEN c.n_stages >= 1 THEN
               CASE WHEN instr(c.pattern, '->') > 0 THEN substr(c.pattern, 1, instr(c.pattern, '->') - 1)
                    ELSE c.pattern END END AS category_1,
           CASE WHEN c.n_stages >= 2 AND instr(c.pattern, '->') > 0 THEN
               substr(c.pattern, instr(c.pattern, '->') + 2) END AS rest_2
    FROM cv c
), c1 AS (
    SELECT c0.*,
           CASE WHEN instr(rest_2, '->') > 0 THEN substr(rest_2, 1, instr(rest_2, '->') - 1)
                ELSE rest_2 END AS category_2
    FROM c0
)
SELECT c1.composition_id, c1.sweep_id, c1.model_id,
       s.name AS sweep, m.name AS model,
       c1.pattern, c1.label, c1.n_stages, c1.key, c1.canonical,
       c1.method_1, c1.category_1,
       CASE WHEN c1.category_1 = 'compress' THEN
           coalesce(json_extract(c1.stage_1, '$.params.sparsity'), json_extract(c1.stage_1, '$.params.bits'))
       END AS level_1,
       c1.method_2, c1.category_2,
       CASE WHEN c1.category_2 = 'compress' THEN
           coalesce(json_extract(c1.stage_2, '$.params.sparsity'), json_extract(c1.stage_2, '$.params.bits'))
       END AS level_2,
       c1.stage_1, c1.stage_2, c1.ok AS canonical_valid
FROM c1
JOIN sweeps s ON s.id = c1.sweep_id
JOIN models m ON m.id = c1.model_id;

-- one row per (done job, metric) of the job's current attempt, long form; plus the derived metric
-- 'wmdp' = (wmdp_bio + wmdp_cyber) / 2 when both exist, else the reported wmdp_avg (the worker's
-- wmdp_avg is exactly that mean: worker/eval/eval_suite.c), and 'cloze_wmdp' the same of the cloze
-- rows (cloze_wmdp_bio, cloze_wmdp_cyber, cloze_wmdp_avg: a sweep run with --eval-cloze,
-- docs/eval.md "Cloze multiple choice"). value is NULL when not finite.
CREATE VIEW v_run_metrics AS
SELECT j.id AS job_id, j.sweep_id, j.model_id, j.composition_id, j.edit_set, r.metric, r.value
FROM jobs j
JOIN results r ON r.job_id = j.id AND r.attempt = j.current_attempt AND r.is_current = 1
WHERE j.state = 'done' AND r.metric NOT IN ('wmdp', 'cloze_wmdp')
UNION ALL
SELECT j.id, j.sweep_id, j.model_id, j.composition_id, j.edit_set, 'wmdp',
       coalesce((w.bio + w.cyber) / 2.0, w.reported)
FROM jobs j
JOIN (SELECT r.job_id, r.attempt,
             max(CASE WHEN r.metric = 'wmdp_bio'   THEN r.value END) AS bio,
             max(CASE WHEN r.metric = 'wmdp_cyber' THEN r.value END) AS cyber,
             max(CASE WHEN r.metric = 'wmdp_avg'   THEN r.value END) AS reported
      FROM results r
      WHERE r.is_current = 1 AND r.metric IN ('wmdp_bio', 'wmdp_cyber', 'wmdp_avg')
      GROUP BY r.job_id, r.attempt) w ON w.job_id = j.id AND w.attempt = j.current_attempt
WHERE j.state = 'done'
UNION ALL
SELECT j.id, j.sweep_id, j.model_id, j.composition_id, j.edit_set, 'cloze_wmdp',
       coalesce((w.bio + w.cyber) / 2.0, w.reported)
FROM jobs j
JOIN (SELECT r.job_id, r.attempt,
             max(CASE WHEN r.metric = 'cloze_wmdp_bio'   THEN r.value END) AS bio,
             max(CASE WHEN r.metric = 'cloze_wmdp_cyber' THEN r.value END) AS cyber,
             max(CASE WHEN r.metric = 'cloze_wmdp_avg'   THEN r.value END) AS reported
      FROM results r
      WHERE r.is_current = 1 AND r.metric IN ('cloze_wmdp_bio', 'cloze_wmdp_cyber', 'cloze_wmdp_avg')
      GROUP BY r.job_id, r.attempt) w ON w.job_id = j.id AND w.attempt = j.current_attempt
WHERE j.state = 'done';

-- one row per (sweep, model, composition, metric): the mean over its runs (edit sets) and the
-- standard error. n = runs with a finite value; n_runs = runs that reported the metric at all.
-- Singles (n_stages 1) and the baseline (n_stages 0, method_1 NULL) are included.
CREATE VIEW v_composition_metrics AS
WITH agg AS (
    SELECT composition_id, metric, count(value) AS n, count(*) AS n_runs, avg(value) AS mean
    FROM v_run_metrics GROUP BY composition_id, metric
), dev AS (
    SELECT rm.composition_id, rm.metric, sum((rm.value - a.mean) * (rm.value - a.mean)) AS ss
    FROM v_run_metrics rm JOIN agg a ON a.composition_id = rm.composition_id AND a.metric = rm.metric
    GROUP BY rm.composition_id, rm.metric
)
SELECT cs.sweep, cs.model, cs.composition_id, cs.pattern, cs.label, cs.n_stages,
       cs.method_1, cs.category_1, cs.level_1, cs.method_2, cs.category_2, cs.level_2,
       a.metric, a.n, a.mean,
       CASE WHEN a.n >= 2 THEN sqrt(d.ss / (a.n - 1)) / sqrt(a.n) END AS se,
       a.n_runs,
       cs.sweep_id, cs.model_id, cs.stage_1, cs.stage_2
FROM agg a
JOIN dev d ON d.composition_id = a.composition_id AND d.metric = a.metric
JOIN v_composition_stages cs ON cs.composition_id = a.composition_id;

-- per edit set: E_OF and E_OS of one pair of two-stage compositions (a then b, b then a) from the
-- runs of the same edit set (0 for compositions without an editor). Metrics: edit_success,
-- generalization, locality, mmlu, wmdp, and where a sweep has them the cloze rows cloze_mmlu and
-- cloze_wmdp (E_OF of wmdp and cloze_wmdp is the min: lower is better). a = the compressor (edit_compress, unlearn_compress), the
-- editor (edit_unlearn).
CREATE VIEW v_composability_sets AS
WITH two AS (
    SELECT cs.*,
           CASE WHEN cs.category_1 IN ('edit', 'compress') AND cs.category_2 IN ('edit', 'compress')
                     THEN 'edit_compress'
                WHEN cs.category_1 IN ('unlearn', 'compress') AND cs.category_2 IN ('unlearn', 'compress')
                     THEN 'unlearn_compress'
                WHEN cs.category_1 IN ('edit', 'unlearn') AND cs.category_2 IN ('edit', 'unlearn')
                     THEN 'edit_unlearn' END AS pair_kind,
           (cs.category_1 = 'compress' OR (cs.category_1 = 'edit' AND cs.category_2 = 'unlearn')) AS a_first
    FROM v_composition_stages cs
    WHERE cs.n_stages = 2 AND cs.category_1 <> cs.category_2
), runs AS (
    SELECT t.*, rm.job_id, rm.edit_set, rm.metric, rm.value
    FROM two t
    JOIN v_run_metrics rm ON rm.composition_id = t.composition_id
    WHERE t.pair_kind IS NOT NULL
      AND rm.metric IN ('edit_success', 'generalization', 'locality', 'mmlu', 'wmdp', 'cloze_mmlu', 'cloze_wmdp')
      AND rm.value IS NOT NULL
)
SELECT ab.sweep, ab.model, ab.pair_kind,
       ab.method_1 AS method_a, ab.level_1 AS level_a, ab.method_2 AS method_b, ab.level_2 AS level_b,
       ab.metric, ab.edit_set,
       ab.value AS kappa_ab, ba.value AS kappa_ba,
       CASE WHEN ab.metric IN ('wmdp', 'cloze_wmdp') THEN min(ab.value, ba.value) ELSE 1 - max(ab.value, ba.value) END AS e_of,
       abs(ab.value - ba.value) AS e_os,
       CASE WHEN ab.category_1 = 'compress'
                THEN coalesce(json_extract(ab.stage_1, '$.params.sparsity') = 0.25
                              OR json_extract(ab.stage_1, '$.params.bits') = 4, 0)
                ELSE 1 END AS headline,
       ab.job_id AS job_ab, ba.job_id AS job_ba,
       ab.composition_id AS composition_ab, ba.composition_id AS composition_ba,
       ab.sweep_id, ab.model_id, ab.stage_1 AS stage_a, ab.stage_2 AS stage_b
FROM runs ab
JOIN runs ba ON ba.sweep_id = ab.sweep_id AND ba.model_id = ab.model_id
            AND ba.stage_1 = ab.stage_2 AND ba.stage_2 = ab.stage_1
            AND ba.metric = ab.metric AND ba.edit_set = ab.edit_set
WHERE ab.a_first AND NOT ba.a_first;

-- one row per (sweep, model, unordered pair of interventions of different categories, levels
-- included, metric) where both orders have results: kappa of each order (mean over its runs),
-- E_OF and E_OS from the means (the paper's numbers), rounded as the notebook rounds, and the
-- per-edit-set E_OF / E_OS averaged over the edit sets both orders share (beyond the paper).
CREATE VIEW v_composability AS
WITH two AS (
    SELECT cm.*,
           CASE WHEN cm.category_1 IN ('edit', 'compress') AND cm.category_2 IN ('edit', 'compress')
                     THEN 'edit_compress'
                WHEN cm.category_1 IN ('unlearn', 'compress') AND cm.category_2 IN ('unlearn', 'compress')
                     THEN 'unlearn_compress'
                WHEN cm.category_1 IN ('edit', 'unlearn') AND cm.category_2 IN ('edit', 'unlearn')
                     THEN 'edit_unlearn' END AS pair_kind,
           (cm.category_1 = 'compress' OR (cm.category_1 = 'edit' AND cm.category_2 = 'unlearn')) AS a_first
    FROM v_composition_metrics cm
    WHERE cm.n_stages = 2 AND cm.category_1 <> cm.category_2 AND cm.n > 0
      AND cm.metric IN ('edit_success', 'generalization', 'locality', 'mmlu', 'wmdp', 'cloze_mmlu', 'cloze_wmdp')
), pairs AS (
    SELECT ab.sweep, ab.model, ab.pair_kind,
           ab.method_1 AS method_a, ab.level_1 AS level_a, ab.method_2 AS method_b, ab.level_2 AS level_b,
           ab.metric, ab.mean AS kappa_ab, ba.mean AS kappa_ba, ab.n AS n_ab, ba.n AS n_ba,
           ab.se AS se_ab, ba.se AS se_ba,
           CASE WHEN ab.metric IN ('wmdp', 'cloze_wmdp') THEN min(ab.mean, ba.mean) ELSE 1 - max(ab.mean, ba.mean) END AS e_of,
           abs(ab.mean - ba.mean) AS e_os,
           CASE WHEN ab.metric IN ('wmdp', 'cloze_wmdp') THEN round(min(ab.mean, ba.mean), 4)
                ELSE round(1 - round(max(ab.mean, ba.mean), 4), 4) END AS e_of_r4,
           round(abs(ab.mean - ba.mean), 4) AS e_os_r4,
           CASE WHEN ab.category_1 = 'compress'
                THEN coalesce(json_extract(ab.stage_1, '$.params.sparsity') = 0.25
                              OR json_extract(ab.stage_1, '$.params.bits') = 4, 0)
                ELSE 1 END AS headline,
           ab.composition_id AS composition_ab, ba.composition_id AS composition_ba,
           ab.label AS label_ab, ba.label AS label_ba,
           ab.sweep_id, ab.model_id, ab.stage_1 AS stage_a, ab.stage_2 AS stage_b
    FROM two ab
    JOIN two ba ON ba.sweep_id = ab.sweep_id AND ba.model_id = ab.model_id
               AND ba.stage_1 = ab.stage_2 AND ba.stage_2 = ab.stage_1 AND ba.metric = ab.metric
    WHERE ab.pair_kind IS NOT NULL AND ab.a_first AND NOT ba.a_first
), sets AS (
    SELECT composition_ab, composition_ba, metric, count(*) AS n_sets,
           avg(e_of) AS e_of_set_mean, avg(e_os) AS e_os_set_mean
    FROM v_composability_sets GROUP BY composition_ab, composition_ba, metric
), sets_dev AS (
    SELECT s.composition_ab, s.composition_ba, s.metric,
           sum((s.e_of - g.e_of_set_mean) * (s.e_of - g.e_of_set_mean)) AS ss_of,
           sum((s.e_os - g.e_os_set_mean) * (s.e_os - g.e_os_set_mean)) AS ss_os
    FROM v_composability_sets s
    JOIN sets g ON g.composition_ab = s.composition_ab AND g.composition_ba = s.composition_ba
               AND g.metric = s.metric
    GROUP BY s.composition_ab, s.composition_ba, s.metric
)
SELECT p.sweep, p.model, p.pair_kind, p.method_a, p.level_a, p.method_b, p.level_b, p.metric,
       p.kappa_ab, p.kappa_ba, p.n_ab, p.n_ba, p.se_ab, p.se_ba,
       p.e_of, p.e_os, p.e_of_r4, p.e_os_r4, p.headline,
       coalesce(g.n_sets, 0) AS n_sets,
       g.e_of_set_mean,
       CASE WHEN g.n_sets >= 2 THEN sqrt(d.ss_of / (g.n_sets - 1)) / sqrt(g.n_sets) END AS e_of_set_se,
       g.e_os_set_mean,
       CASE WHEN g.n_sets >= 2 THEN sqrt(d.ss_os / (g.n_sets - 1)) / sqrt(g.n_sets) END AS e_os_set_se,
       p.composition_ab, p.composition_ba, p.label_ab, p.label_ba,
       p.sweep_id, p.model_id, p.stage_a, p.stage_b
FROM pairs p
LEFT JOIN sets g     ON g.composition_ab = p.composition_ab AND g.composition_ba = p.composition_ba
                    AND g.metric = p.metric
LEFT JOIN sets_dev d ON d.composition_ab = p.composition_ab AND d.composition_ba = p.composition_ba
                    AND d.metric = p.metric;

-- the paper's Tables 2-4: headline pairs only (sparsity 0.25 / 4 bits), one cell per (row, column,
-- metric), e_of / e_os the notebook's rounded values; plus an 'Average' row per column = the mean
-- of the rounded cells over the rows (compressors; unlearners in edit_unlearn). Rows and columns
-- as the paper lays them out: edit_compress rows compressors x columns editors, unlearn_compress
-- rows compressors x columns unlearners, edit_unlearn rows unlearners x columns editors.
-- e_of_raw / e_os_raw: the same from the unrounded values; n_rows: cells averaged (1 for a cell).
CREATE VIEW v_composability_table AS
WITH cells AS (
    SELECT sweep, model, pair_kind,
           CASE WHEN pair_kind = 'edit_unlearn' THEN method_b ELSE method_a END AS row_method,
           CASE WHEN pair_kind = 'edit_unlearn' THEN method_a ELSE method_b END AS col_method,
           metric, e_of_r4, e_os_r4, e_of, e_os
    FROM v_composability WHERE headline
)
SELECT sweep, model, pair_kind, row_method, col_method, metric,
       e_of_r4 AS e_of, e_os_r4 AS e_os, e_of AS e_of_raw, e_os AS e_os_raw, 1 AS n_rows, 0 AS is_average
FROM cells
UNION ALL
SELECT sweep, model, pair_kind, 'Average', col_method, metric,
       avg(e_of_r4), avg(e_os_r4), avg(e_of), avg(e_os), count(*), 1
FROM cells
GROUP BY sweep, model, pair_kind, col_method, metric;

-- beyond the tables: E_OF and E_OS integrated over the compression level (trapezoid rule, x = the
-- level: sparsity or bits), per compressor method (its other params equal) x other intervention x
-- metric, over the levels where both orders have results; *_level_mean = area / (level_max -
-- level_min), the level-averaged value (NULL with a single level). paper.md §3.2 ("the area
-- between the order curves", np.trapz in an early notebook, over Average bits there); no table
-- of the paper uses it.
CREATE VIEW v_composability_area AS
WITH pts AS (
    SELECT sweep_id, model_id, sweep, model, pair_kind, method_a, method_b, metric, level_a, e_of, e_os,
           json_remove(stage_a, '$.params.sparsity', '$.params.bits') AS family_a, stage_b,
           lag(level_a) OVER w AS prev_level, lag(e_of) OVER w AS prev_of, lag(e_os) OVER w AS prev_os
    FROM v_composability
    WHERE pair_kind IN ('edit_compress', 'unlearn_compress') AND level_a IS NOT NULL
    WINDOW w AS (PARTITION BY sweep_id, model_id, pair_kind,
                              json_remove(stage_a, '$.params.sparsity', '$.params.bits'), stage_b, metric
                 ORDER BY level_a)
)
SELECT sweep, model, pair_kind, method_a, method_b, metric,
       count(*) AS n_levels, min(level_a) AS level_min, max(level_a) AS level_max,
       coalesce(sum((level_a - prev_level) * (e_of + prev_of) / 2.0), 0.0) AS e_of_area,
       coalesce(sum((level_a - prev_level) * (e_os + prev_os) / 2.0), 0.0) AS e_os_area,
       CASE WHEN max(level_a) > min(level_a) THEN
           sum((level_a - prev_level) * (e_of + prev_of) / 2.0) / (max(level_a) - min(level_a)) END AS e_of_level_mean,
       CASE WHEN max(level_a) > min(level_a) THEN
           sum((level_a - prev_level) * (e_os + prev_os) / 2.0) / (max(level_a) - min(level_a)) END AS e_os_level_mean,
       sweep_id, model_id, family_a AS stage_a_family, stage_b
FROM pts
GROUP BY sweep_id, model_id, pair_kind, family_a, stage_b, metric;
