"""Black-box: the unlearners in a real sweep. `cisweep run` (coordinator + worker processes, a SQLite
file) on a tiny model trained for a few steps and a small synthetic world, with rmu, ga and gd
compositions that name only a few params: every job ends done with its metric rows, and the
`stages` table, read with the sqlite3 shell, holds what ran: the defaults the grid did not name,
the tiny family's preset (RMU's layer 3 on down_proj with its coefficient, alpha and lr; GD's lr
and retain weight), the values the preset replaced under "given", the truncation lengths capped at
the model's positions, the seed, and the record (steps, first retain loss exactly 0)."""
import json, os, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, main, run, CISWEEP, WORKER, tiny_world_and_model  # noqa: E402

STATE = {}


def setup():
    if "dir" in STATE:
        return STATE["dir"]
    d = tempfile.mkdtemp(prefix="cisweep-unlearn-")
    tiny_world_and_model(d, steps=2)
    STATE["dir"] = d
    return d


def sqlite3_shell(db, sql):
    p = run(["sqlite3", "-readonly", "-json", f"file:{db}?mode=ro", sql])
    return json.loads(p.stdout or "[]")


@test
def unlearners_run_in_a_sweep_and_record_what_ran():
    d = setup()
    grid = os.path.join(d, "g.json")
    json.dump({"name": "unlearn", "models": ["default"], "baseline": False, "singles": False, "edit_sets": [2],
               "compositions": [[{"method": "rmu", "params": {"max_batches": 4}}],
                                [{"method": "ga", "params": {"train_size": 8}}],
                                [{"method": "gd", "params": {"train_size": 8, "accum": 1}}]]}, open(grid, "w"))
    db = os.path.join(d, "u.db")
    p = run([CISWEEP, "run", "--grid", grid, "--workers", "1", "--db", db, "--models", os.path.join(d, "models.json"),
             "--data", os.path.join(d, "world"), "--eval-limit", "8", "--threads", "1", "--cache", os.path.join(d, "cache")], check=False, timeout=600)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr[-3000:])
    jobs = sqlite3_shell(db, "SELECT label, state FROM v_jobs ORDER BY id")
    assert [j["state"] for j in jobs] == ["done"] * 3, jobs
    n_rows = sqlite3_shell(db, "SELECT job_id, count(*) AS n FROM v_results WHERE is_current GROUP BY job_id")
    assert len(n_rows) == 3 and all(r["n"] > 10 for r in n_rows), n_rows
    rows = sqlite3_shell(db, "SELECT method, params_json, seed, record_json FROM v_stages WHERE is_current "
                             "ORDER BY job_id")
    by = {r["method"]: r for r in rows}
    assert sorted(by) == ["ga", "gd", "rmu"], rows
    L = json.load(open(os.path.join(d, "model", "config.json")))["num_hidden_layers"]
    rmu = json.loads(by["rmu"]["params_json"])
    assert rmu["max_batches"] == 4 and rmu["layer"] == 3 and rmu["batch_size"] == 4, rmu
    assert rmu["act_layer"] == 6 and rmu["update_layers"] == [4, 5, 6], rmu
    assert rmu["module"] == "down_proj" and rmu["steering_coeff"] == 1200.0 and rmu["alpha"] == 80.0, rmu
    assert rmu["given"] == {"steering_coeff": 20.0, "alpha": 1000.0, "lr": 5e-05, "module": "o_proj", "layer": 3}, rmu
    assert rmu["max_len"] == {"bio": 128, "cyber": 128, "retain": 128}, rmu
    assert rmu["preset"].startswith("tiny family"), rmu
    assert by["rmu"]["seed"] == 1   # a composition without an editor runs once, seed 1 (edit_sets apply to editors)
    rec = json.loads(by["rmu"]["record_json"])
    assert rec["steps"] == 4 and rec["retain_loss_first"] == 0, rec
    assert rec["documents"]["bio"] > 0 and rec["documents"]["cyber"] > 0 and rec["documents"]["retain"] > 0, rec
    gd = json.loads(by["gd"]["params_json"])
    assert gd["lr"] == 0.001 and gd["retain_weight"] == 5.0 and gd["given"] == {"lr": 5e-05, "retain_weight": 40.0}, gd
    assert gd["seq_len"] == 128 and gd["trained_layers"] == list(range(L // 2, L)), gd
    ga = json.loads(by["ga"]["params_json"])
    assert ga["lr"] == 0.01 and ga["train_size"] == 8 and ga["accum"] == 2, ga
    grec = json.loads(by["ga"]["record_json"])
    assert grec["steps"] == 1 and grec["forget_batches"] == 2, grec   # 8 documents, batches of 4, 2 per step


if __name__ == "__main__":
    main()
