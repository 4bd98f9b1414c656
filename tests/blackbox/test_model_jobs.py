"""Black-box: a sweep whose jobs run on a real model. `cisweep world` (small), a model trained for
a few steps by `cisweep train`, then `cisweep run` with a models map and `--data`: the baseline job
loads the model once, evaluates it with the real suite and records every metric row; a composition
naming an intervention that is not built yet fails cleanly, non-retryably, without killing the
worker."""
import json, os, shutil, sqlite3, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, main, run, CISWEEP, WORKER  # noqa: E402

STATE = {}


def setup():
    if "dir" in STATE:
        return STATE
    d = tempfile.mkdtemp(prefix="cisweep-model-jobs-")
    run([WORKER, "world", "--out", os.path.join(d, "world"), "--scale", "small"])
    run([WORKER, "train", "--world", os.path.join(d, "world"), "--arch", "tiny-llama3", "--out",
         os.path.join(d, "model"), "--steps", "2", "--threads", "1"], timeout=300)
    STATE["dir"] = d
    return STATE


@test
def baseline_job_evaluates_a_real_model():
    d = setup()["dir"]
    grid = os.path.join(d, "g.json")
    json.dump({"name": "mj", "models": ["default"], "baseline": True, "singles": False,
               "compositions": [[{"method": "wanda", "params": {"sparsity": 0.5}}]]}, open(grid, "w"))
    models = os.path.join(d, "models.json")
    json.dump({"default": os.path.join(d, "model")}, open(models, "w"))
    db = os.path.join(d, "s.db")
    p = run([CISWEEP, "run", "--grid", grid, "--workers", "1", "--db", db, "--models", models, "--data",
             os.path.join(d, "world"), "--eval-limit", "8", "--threads", "1", "--cache", os.path.join(d, "c")],
            check=False, timeout=600)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr[-3000:])  # the wanda job fails: not built yet
    con = sqlite3.connect(db)
    states = dict(con.execute("SELECT c.pattern, j.state FROM jobs j JOIN compositions c ON c.id=j.composition_id"))
    assert states == {"baseline": "done", "compress": "failed"}, states
    err = con.execute("SELECT last_error FROM jobs WHERE state='failed'").fetchone()[0]
    assert 'intervention "wanda" (stage 1) is not built yet' in err, err
    spent = con.execute("SELECT spent FROM jobs WHERE state='failed'").fetchone()[0]
    assert spent == 1, "a non-retryable failure must not be retried"
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
def cleanup():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
