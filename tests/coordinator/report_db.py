"""report_db.py - builds the sweep databases the report tests read: a real `cisweep launch` of a
small grid (2 editors, 2 compressors at 3 levels each, 2 unlearners; every pair in both orders; 3
edit sets), then results for the done jobs inserted by SQL, as the coordinator would have stored
them (an attempt per job, is_current rows, the stages that ran with the paper's re-application
of a leading compressor). Values are a deterministic function of the
composition's label, the metric and the edit set (value()), so a test can compute by hand what
the report must show. WMDP is stored as wmdp_bio and wmdp_cyber only: the report's WMDP is their
mean. One job is left failed and one pending, so the header's counts and the averages over edit
sets are tested on uneven data."""
import hashlib, json, os, sqlite3, subprocess

GRID = {
    "name": "report-test", "description": "report test grid", "version": 1, "models": ["tiny"], "edit_sets": 3,
    "baseline": True, "singles": True,
    "categories": {
        "edit": [{"method": "ft"}, {"method": "memit"}],
        "compress": [{"method": "wanda", "levels": {"sparsity": [0.25, 0.45, 0.65]}},
                     {"method": "gptq", "levels": {"bits": [2, 4, 8]}}],
        "unlearn": [{"method": "ga"}, {"method": "rmu"}],
    },
    "pairs": [["edit", "compress"], ["unlearn", "compress"], ["edit", "unlearn"]],
    "both_orders": True,
}

EDIT_METRICS = ["edit_success", "generalization", "locality"]
FAILED_LABEL = "gptq(bits=8)"                     # its only job is left failed
PENDING = ("ft->wanda(sparsity=0.45)", 3)          # this (label, edit set) stays pending


def value(label, metric, edit_set):
    """the stored value of one metric of one job: in [0.05, 0.95], different per edit set"""
    h = hashlib.sha256(f"{label}|{metric}".encode()).digest()
    base = 0.1 + 0.8 * (int.from_bytes(h[:4], "big") / 2**32)
    return round(base + 0.02 * (edit_set - 2) * (1 if h[4] & 1 else -1), 6)


def make_db(cisweep, tmp, model_name=None, label_prefix=None, models=None):
    """launch the grid into tmp/sweep.db, fill results; returns the DB path. model_name and
    label_prefix rename the model and prefix every label afterwards (the injection tests);
    models replaces the grid's model slots (every slot gets the same values)."""
    grid = os.path.join(tmp, "grid.json")
    with open(grid, "w") as f:
        json.dump(dict(GRID, models=models) if models else GRID, f)
    db = os.path.join(tmp, "sweep.db")
    subprocess.run([cisweep, "launch", "--db", db, "--grid", grid], check=True, capture_output=True, text=True)
    con = sqlite3.connect(db)
    con.execute("PRAGMA foreign_keys = ON")
    jobs = con.execute("SELECT j.id, c.label, c.pattern, j.edit_set, c.canonical FROM jobs j JOIN compositions c "
                       "ON c.id = j.composition_id ORDER BY j.id").fetchall()
    t = 1_700_000_000_000
    for jid, label, pattern, es, canonical in jobs:
        if (label, es) == PENDING:
            continue
        t += 1000
        if pattern == "prereq":
            # the launch's MEMIT statistics job (coordinator/job_store_prereq.c), done as a worker
            # reports it (worker/prereq.c): one memit_stats stage, statistics rows, no evaluation
            con.execute("INSERT INTO attempts(job_id, attempt, worker_id, started_at, ended_at, outcome, run_ms, "
                        "result_at) VALUES (?, 1, 'w1', ?, ?, 'done', 900, ?)", (jid, t - 900, t, t))
            con.execute("UPDATE jobs SET state = 'done', attempt = 1, current_attempt = 1, worker_id = 'w1', "
                        "started_at = ?, finished_at = ? WHERE id = ?", (t - 900, t, jid))
            st = json.loads(canonical)[0]
            con.execute("INSERT INTO stages(job_id, attempt, stage, of_stage, method, category, recompress, "
                        "params_json, seed, wall_ms, created_at) VALUES (?, 1, 1, 1, ?, 'prereq', 0, ?, 0, 900, ?)",
                        (jid, st["method"], json.dumps(st["params"]), t))
            for m, v in (("stats_seconds", 0.8), ("stats_layers_computed", 5)):
                con.execute("INSERT INTO results(job_id, attempt, metric, value, is_current, created_at) "
                            "VALUES (?, 1, ?, ?, 1, ?)", (jid, m, v, t))
            continue
        con.execute("INSERT INTO attempts(job_id, attempt, worker_id, started_at, ended_at, outcome, run_ms, result_at)"
                    " VALUES (?, 1, 'w1', ?, ?, ?, 900, ?)", (jid, t - 900, t, "failed" if label == FAILED_LABEL else "done", t))
        if label == FAILED_LABEL:
            con.execute("UPDATE jobs SET state = 'failed', attempt = 1, spent = 1, finished_at = ?, "
                        "last_error = 'attempt 1 failed: test' WHERE id = ?", (t, jid))
            continue
        con.execute("UPDATE jobs SET state = 'done', attempt = 1, current_attempt = 1, worker_id = 'w1', "
                    "started_at = ?, finished_at = ? WHERE id = ?", (t - 900, t, jid))
        # what ran (the stages table): a composition that starts with a compressor (not AWQ)
        # re-applies it at the end, as the paper's rule
        stages = json.loads(canonical)
        cats = pattern.split("->")
        plan = [(i + 1, st, 0) for i, st in enumerate(stages)]
        if len(stages) > 1 and cats[0] == "compress" and stages[0]["method"] != "awq":
            plan.append((1, stages[0], 1))
        for n, (of, st, rec) in enumerate(plan, 1):
            con.execute("INSERT INTO stages(job_id, attempt, stage, of_stage, method, category, recompress, "
                        "params_json, seed, wall_ms, created_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, 100, ?)",
                        (jid, n, of, st["method"], cats[of - 1], rec, json.dumps(st["params"]), max(es, 1), t))
        metrics = ["mmlu", "wmdp_bio", "wmdp_cyber", "ppl_wikitext"]
        if "edit" in pattern.split("->"):
            metrics += EDIT_METRICS
        key = max(es, 1)
        for m in metrics:
            v = value(label, m, key) * (10 if m == "ppl_wikitext" else 1)
            con.execute("INSERT INTO results(job_id, attempt, metric, value, is_current, created_at) "
                        "VALUES (?, 1, ?, ?, 1, ?)", (jid, m, v, t))
    if model_name is not None:
        con.execute("UPDATE models SET name = ?", (model_name,))
    if label_prefix is not None:
        con.execute("UPDATE compositions SET label = ? || label", (label_prefix,))
    con.commit()
    con.close()
    return db


def expected_kappa(label, metric):
    """by hand: the mean over the done jobs' edit sets of one composition's metric (WMDP: bio, cyber mean)"""
    methods = [st.split("(")[0] for st in label.split("->")]
    sets = [1, 2, 3] if "ft" in methods or "memit" in methods else [1]
    sets = [s for s in sets if (label, s) != PENDING]
    if metric == "wmdp":
        vals = [(value(label, "wmdp_bio", s) + value(label, "wmdp_cyber", s)) / 2 for s in sets]
    else:
        vals = [value(label, metric, s) for s in sets]
    return sum(vals) / len(vals)
