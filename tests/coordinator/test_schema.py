"""test_schema.py - the job store's views, checked from Python's sqlite3 module (as a user would
query them) on a real database written by the C job store (`test_job_store make-db PATH`), plus
schema.sql itself loaded by a different SQLite client.

The made DB (see make_db in tests/coordinator/test_job_store.c): sweep "views-sweep", model m1,
jobs 1 baseline, 2-3 memit (edit sets 1, 2), 4 gptq(4), 5 rmu, 6 ga. Jobs 1-4 done; job 2 was lost
on attempt 1, re-leased as attempt 2, then attempt 1's late result became current and attempt 2's
was stored superseded; job 5 failed (not retryable); job 6 pending.
"""
import csv, io, json, math, os, shutil, sqlite3, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import ROOT, main, query, run, test  # noqa: E402

BUILD = os.environ.get("CISWEEP_BUILD", "build")
MAKER = os.path.join(ROOT, BUILD, "tests", "coordinator", "test_job_store")
SCHEMA = os.path.join(ROOT, "schema", "schema.sql")

_tmp = tempfile.mkdtemp(prefix="test_schema.")
_db = None


def db():
    """The made database (built once)."""
    global _db
    if _db is None:
        assert os.path.exists(MAKER), f"{MAKER} is missing: run `make tests-build` first"
        path = os.path.join(_tmp, "views.db")
        run([MAKER, "make-db", path])
        _db = path
    return _db


def rows_as_dicts(sql, args=()):
    con = sqlite3.connect(f"file:{db()}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def near(a, b, tol=1e-12):
    return a is not None and abs(a - b) <= tol


@test
def schema_version_and_objects():
    assert query(db(), "PRAGMA user_version") == [(4,)]
    names = {r[0] for r in query(db(), "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')")}
    for t in ["sweeps", "models", "compositions", "jobs", "attempts", "results", "workers", "events",
              "artifacts", "dependencies", "stages", "v_jobs", "v_runs", "v_progress", "v_failures", "v_results",
              "v_stages", "composition_policy", "job_memory", "worker_memory"]:
        assert t in names, t
    assert query(db(), "PRAGMA integrity_check") == [("ok",)]
    assert query(db(), "PRAGMA journal_mode") == [("wal",)]


@test
def v_runs_pivot():
    runs = {r["job_id"]: r for r in rows_as_dicts("SELECT * FROM v_runs ORDER BY job_id")}
    assert sorted(runs) == [1, 2, 3, 4], sorted(runs)
    b = runs[1]
    assert b["sweep"] == "views-sweep" and b["model"] == "m1" and b["pattern"] == "baseline"
    assert b["canonical"] == "[]" and len(b["key"]) == 64 and b["edit_set"] == 0
    assert near(b["mmlu"], 0.60) and near(b["wmdp_bio"], 0.50) and near(b["wmdp_cyber"], 0.40)
    assert near(b["wmdp_avg"], 0.45), b["wmdp_avg"]  # computed from bio and cyber
    assert near(b["ppl_wikitext"], 6.5) and b["run_ms"] == 1500 and b["attempt"] == 1
    assert b["edit_success"] is None and b["avg_bits"] is None
    mj = json.loads(b["metrics_json"])  # unknown metric names are kept here
    assert mj["custom_metric"] == 42 and len(mj) == 5, mj
    # job 2: the late result of attempt 1 is current, attempt 2's (0.11) is not counted
    e = runs[2]
    assert e["attempt"] == 1 and e["worker"] == "w1" and e["edit_set"] == 1
    assert near(e["mmlu"], 0.58) and near(e["edit_success"], 0.9) and near(e["generalization"], 0.7)
    assert near(e["locality"], 0.95) and e["run_ms"] == 2500
    assert runs[3]["edit_set"] == 2 and near(runs[3]["edit_success"], 0.8)
    assert e["wmdp_avg"] is None  # neither bio nor cyber
    q = runs[4]
    assert near(q["avg_bits"], 4.25) and q["wmdp_bio"] is None and q["wmdp_avg"] is None
    assert json.loads(q["metrics_json"])["wmdp_bio"] == "nan"
    assert q["finished_iso"].endswith("Z") and q["finished_iso"].startswith("1970-01-01T00:16:")


@test
def v_runs_means_per_pattern():
    got = dict(query(db(), "SELECT pattern, avg(mmlu) FROM v_runs GROUP BY pattern"))
    assert near(got["edit"], (0.58 + 0.56) / 2) and near(got["baseline"], 0.60) and near(got["compress"], 0.59)
    assert "unlearn" not in got


@test
def v_progress_counts():
    (p,) = rows_as_dicts("SELECT * FROM v_progress")
    assert p["sweep"] == "views-sweep"
    assert (p["total"], p["pending"], p["leased"], p["done"], p["failed"], p["dead"], p["cancelled"]) == \
        (6, 1, 0, 4, 1, 0, 0), p
    assert near(p["done_fraction"], round(4 / 6, 4))
    first = query(db(), "SELECT min(started_at) FROM attempts")[0][0]
    last = query(db(), "SELECT max(finished_at) FROM jobs WHERE state = 'done'")[0][0]
    assert p["first_start"] == first and p["last_finish"] == last and last > first
    assert near(p["jobs_per_hour"], 4 * 3600000.0 / (last - first), 1e-6)
    assert near(p["eta_s"], 1 * (last - first) / (1000.0 * 4), 1e-9)


@test
def v_failures_and_v_jobs():
    (f,) = rows_as_dicts("SELECT * FROM v_failures")
    assert f["job_id"] == 5 and f["state"] == "failed" and f["label"] == "rmu"
    assert f["last_error"] == "attempt 1 failed: diverged" and f["log_tail"] == "loss=nan at step 3"
    jobs = rows_as_dicts("SELECT * FROM v_jobs ORDER BY id")
    assert [j["state"] for j in jobs] == ["done", "done", "done", "done", "failed", "pending"]
    assert jobs[1]["attempt"] == 2 and jobs[1]["current_attempt"] == 1 and jobs[1]["lost_count"] == 1
    assert jobs[1]["spent"] == 1 and jobs[5]["blocked"] == 0 and jobs[5]["worker"] is None


@test
def v_results_long_form():
    rows = query(db(), "SELECT attempt, metric, value, is_current FROM v_results WHERE job_id = 2 "
                       "ORDER BY attempt, metric")
    assert len(rows) == 8
    assert all(r[3] == 1 for r in rows if r[0] == 1) and all(r[3] == 0 for r in rows if r[0] == 2)
    # exactly one current set per job
    bad = query(db(), "SELECT job_id FROM results WHERE is_current = 1 GROUP BY job_id "
                      "HAVING count(DISTINCT attempt) <> 1")
    assert bad == []
    (nan_row,) = query(db(), "SELECT value, value_text FROM v_results WHERE job_id = 4 AND metric = 'wmdp_bio'")
    assert nan_row == (None, "nan")


@test
def readme_style_csv_export():
    """The sqlite3 shell export the README shows (.mode csv / .once), where the shell exists."""
    if not shutil.which("sqlite3"):
        from harness import skip
        skip("no sqlite3 shell")
    out = os.path.join(_tmp, "runs.csv")
    p = run(["sqlite3", "-readonly", f"file:{db()}?mode=ro", "-cmd", ".timeout 5000",
             ".headers on", ".mode csv", f".once {out}", "SELECT * FROM v_runs ORDER BY job_id;"])
    assert p.returncode == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["job_id"] for r in rows] == ["1", "2", "3", "4"]
    assert math.isclose(float(rows[0]["wmdp_avg"]), 0.45)


@test
def schema_sql_loads_in_python_sqlite():
    """schema.sql is plain SQL any client can run (STRICT tables need SQLite >= 3.37)."""
    if sqlite3.sqlite_version_info < (3, 37, 0):
        from harness import skip
        skip(f"python's SQLite is {sqlite3.sqlite_version}")
    con = sqlite3.connect(":memory:")
    con.executescript(open(SCHEMA).read())
    assert con.execute("PRAGMA user_version").fetchone() == (4,)
    con.execute("PRAGMA foreign_keys = ON")
    # STRICT and CHECK constraints hold
    con.execute("INSERT INTO sweeps(name, created_at) VALUES ('s', 0)")
    for bad in ["INSERT INTO sweeps(name, created_at) VALUES ('t', 'yesterday')",
                "INSERT INTO models(sweep_id, name, path) VALUES (99, 'm', 'p')"]:
        try:
            con.execute(bad)
        except sqlite3.IntegrityError:
            pass
        else:
            raise AssertionError(f"accepted: {bad}")
    con.execute("INSERT INTO models(sweep_id, name, path) VALUES (1, 'm', 'p')")
    con.execute("INSERT INTO compositions(sweep_id, model_id, key, canonical, pattern, label, n_stages) "
                "VALUES (1, 1, 'k', '[]', 'baseline', 'baseline', 0)")
    try:
        con.execute("INSERT INTO jobs(sweep_id, composition_id, model_id, state, created_at) "
                    "VALUES (1, 1, 1, 'running', 0)")
    except sqlite3.IntegrityError:
        pass
    else:
        raise AssertionError("state 'running' accepted")
    # the claim and lease-sweep queries use their indexes
    plan = " ".join(r[3] for r in con.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE state = 'pending' ORDER BY priority DESC, id LIMIT 1"))
    assert "jobs_claim" in plan and "TEMP B-TREE" not in plan, plan
    plan = " ".join(r[3] for r in con.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE state = 'leased' AND lease_until < 5"))
    assert "jobs_lease" in plan, plan


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(_tmp, ignore_errors=True)
