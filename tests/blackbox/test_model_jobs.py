"""Black-box: a sweep whose jobs run on a real model. `cisweep world` (small), a model trained for
a few steps by `cisweep train`, then `cisweep run` with a models map and `--data`: the baseline job
loads the model once, evaluates it with the real suite and records every metric row; on a data
directory with a misnamed dataset the job fails, non-retryably, naming the expected file, unless the
worker skips absent datasets explicitly (--skip-missing-data)."""
import json, os, shutil, sqlite3, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, cleanup, main, run, CISWEEP, WORKER, tiny_world_and_model  # noqa: E402

STATE = {}


def setup():
    if "dir" in STATE:
        return STATE
    d = tempfile.mkdtemp(prefix="cisweep-model-jobs-")
    tiny_world_and_model(d, steps=2)
    STATE["dir"] = d
    return STATE


def sweep(d, name, data, *extra):
    """cisweep run of the baseline on `data`; returns (exit status, sqlite connection, stderr)"""
    grid = os.path.join(d, f"{name}.json")
    json.dump({"name": name, "models": ["default"], "baseline": True, "singles": False}, open(grid, "w"))
    models = os.path.join(d, "models.json")
    json.dump({"default": os.path.join(d, "model")}, open(models, "w"))
    db = os.path.join(d, f"{name}.db")
    p = run([CISWEEP, "run", "--grid", grid, "--workers", "1", "--db", db, "--models", models, "--data", data,
             "--eval-limit", "8", "--threads", "1", "--cache", os.path.join(d, f"c-{name}"), *extra],
            check=False, timeout=600)
    return p.returncode, sqlite3.connect(db), p.stderr


@test
def baseline_job_evaluates_a_real_model():
    d = setup()["dir"]
    rc, con, stderr = sweep(d, "mj", os.path.join(d, "world"))
    assert rc == 0, (rc, stderr[-3000:])
    states = dict(con.execute("SELECT c.pattern, j.state FROM jobs j JOIN compositions c ON c.id=j.composition_id"))
    assert states == {"baseline": "done"}, states
    rows = dict(con.execute("SELECT metric, value FROM results WHERE is_current=1"))
    for name in ("mmlu", "wmdp_bio", "wmdp_cyber", "wmdp_avg", "ppl_wikitext", "edit_success", "generalization",
                 "locality", "qa_f1", "avg_bits", "time_eval_s"):
        assert name in rows, (name, sorted(rows))
    assert 0 <= rows["mmlu"] <= 1 and 0 <= rows["wmdp_avg"] <= 1
    assert rows["ppl_wikitext"] > 1 and rows["avg_bits"] == 16.0
    # the wide view has the metrics as columns
    r = con.execute("SELECT mmlu, wmdp_avg, ppl_wikitext FROM v_runs").fetchall()
    assert len(r) == 1 and r[0][0] == rows["mmlu"], r
    con.close()


@test
def worker_reports_its_device_memory():
    """the worker's HELLO carries its device's total and free memory (the model cache's backend),
    recorded in the workers row and the worker_joined event"""
    db = os.path.join(setup()["dir"], "mj.db")
    assert os.path.exists(db), "runs after baseline_job_evaluates_a_real_model"
    con = sqlite3.connect(db)
    dev, mem = con.execute("SELECT device, memory_mb FROM workers").fetchone()
    detail = con.execute("SELECT detail FROM events WHERE kind='worker_joined'").fetchone()[0]
    con.close()
    assert dev == "cpu" and mem > 0, (dev, mem)
    free = int(detail.split("free_mb=")[1].split()[0])
    assert 0 < free <= mem, detail


@test
def misnamed_dataset_fails_the_job_naming_the_file():
    d = setup()["dir"]
    bad = os.path.join(d, "world-misnamed")
    if not os.path.exists(bad):
        shutil.copytree(os.path.join(d, "world"), bad)
        os.rename(os.path.join(bad, "wmdp", "wmdp-bio.json"), os.path.join(bad, "wmdp", "bio.jsonl"))
    rc, con, stderr = sweep(d, "missing", bad)
    assert rc == 1, (rc, stderr[-3000:])
    state, spent, err = con.execute("SELECT state, spent, last_error FROM jobs").fetchone()
    assert state == "failed" and spent == 1, (state, spent, err)  # not retried: the data will not appear
    assert os.path.join(bad, "wmdp", "wmdp-bio.json") in err and "missing dataset" in err, err
    assert con.execute("SELECT count(*) FROM results").fetchone()[0] == 0
    con.close()
    # skipping is explicit: the same data with --skip-missing-data runs, without the WMDP bio rows
    rc, con, stderr = sweep(d, "skipped", bad, "--skip-missing-data")
    assert rc == 0, (rc, stderr[-3000:])
    assert con.execute("SELECT state FROM jobs").fetchone()[0] == "done"
    rows = dict(con.execute("SELECT metric, value FROM results WHERE is_current=1"))
    assert "wmdp_bio" not in rows and "wmdp_avg" not in rows, sorted(rows)
    assert "wmdp_cyber" in rows and "mmlu" in rows and "ppl_wikitext" in rows, sorted(rows)
    con.close()


@test
def eval_profile_reaches_the_worker_and_is_recorded():
    """cisweep run --eval-profile sweep: the worker scores the sweep profile (eval_profile 2, no
    teacher-forced extras) and records it with the rows; an unknown profile is a usage error"""
    d = setup()["dir"]
    rc, con, stderr = sweep(d, "sw", os.path.join(d, "world"), "--eval-profile", "sweep")
    assert rc == 0, (rc, stderr[-3000:])
    rows = dict(con.execute("SELECT metric, value FROM results WHERE is_current=1"))
    con.close()
    assert rows.get("eval_profile") == 2, sorted(rows)
    assert not any(k.startswith("tf_") for k in rows), sorted(rows)
    assert "mmlu" in rows and "n_mmlu" in rows and "cpu_eval_s" in rows, sorted(rows)
    base = sqlite3.connect(os.path.join(d, "mj.db"))
    prow = dict(base.execute("SELECT metric, value FROM results WHERE is_current=1"))
    base.close()
    assert prow.get("eval_profile") == 0 and "tf_rewrite_acc" in prow, sorted(prow)
    p = run([CISWEEP, "run", "--grid", os.path.join(d, "sw.json"), "--eval-profile", "fast"], check=False)
    assert p.returncode == 2 and "--eval-profile" in p.stderr, (p.returncode, p.stderr)


@cleanup
def remove_tmp():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
