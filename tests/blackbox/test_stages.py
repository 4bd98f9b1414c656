"""Black-box: what ran is what the database says ran. A real `cisweep run` (coordinator + worker
processes, ipc sockets, a SQLite file) on a tiny trained model and a small synthetic world, with
compositions of the test stage test_scale: the `stages` table, read with the `sqlite3` shell, holds
each stage's effective params (the defaults the grid did not name and the per-model preset's
resolved layers included), its seed (the edit set), its record and wall time; the model really
changed (its metrics move away from the baseline's); a selftest job records its stage too. Then a
worker started without --selftest refuses the test stage cleanly, non-retryably, before any work."""
import json, os, shutil, signal, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, cleanup, main, run, query, wait_for, free_port, CISWEEP, WORKER, tiny_world_and_model  # noqa: E402

STATE = {}


def setup():
    if "dir" in STATE:
        return STATE["dir"]
    d = tempfile.mkdtemp(prefix="cisweep-stages-")
    tiny_world_and_model(d, steps=2)
    STATE["dir"] = d
    return d


def sqlite3_shell(db, sql):
    """the sqlite3 command-line shell, as a user would run it (read-only, JSON output)"""
    p = run(["sqlite3", "-readonly", "-json", f"file:{db}?mode=ro", sql])
    return json.loads(p.stdout or "[]")


SCALE_HALF = {"method": "test_scale", "params": {"factor": 0.5}}
TWO = [{"method": "test_scale", "params": {"factor": 2, "last_layers": 1}},
       {"method": "test_scale", "params": {"factor": 0.9, "param": "model.norm.weight"}}]


@test
def stages_table_holds_the_effective_params():
    d = setup()
    grid = os.path.join(d, "g.json")
    json.dump({"name": "stages", "models": ["default"], "baseline": True, "singles": False,
               "compositions": [[SCALE_HALF], TWO, [{"method": "selftest", "params": {"id": 7}}]]}, open(grid, "w"))
    db = os.path.join(d, "s.db")
    p = run([CISWEEP, "run", "--grid", grid, "--workers", "1", "--db", db, "--models", os.path.join(d, "models.json"),
             "--data", os.path.join(d, "world"), "--eval-limit", "8", "--threads", "1", "--allow-selftest",
             "--cache", os.path.join(d, "c")], check=False, timeout=600)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr[-3000:])
    L = json.load(open(os.path.join(d, "model", "config.json")))["num_hidden_layers"]
    rows = sqlite3_shell(db, "SELECT label, stage, of_stage, method, category, recompress, params_json, seed, "
                             "record_json, phases_json, wall_ms, is_current FROM v_stages ORDER BY job_id, stage")
    by = {}
    for r in rows:
        by.setdefault(r["label"], []).append(r)
    assert sorted(by) == ["selftest(id=7)", "test_scale(factor=0.5)", "test_scale(factor=2.0)->test_scale(factor=0.9)"], by
    [half] = by["test_scale(factor=0.5)"]
    params = json.loads(half["params_json"])
    # the grid named only the factor: the default glob and last_layers are there, and the preset's layers
    assert params == {"factor": 0.5, "param": "model.layers.*.mlp.down_proj.weight", "last_layers": 0,
                      "layers": list(range(L))}, params
    assert half["stage"] == 1 and half["of_stage"] == 1 and half["recompress"] == 0 and half["is_current"] == 1
    assert half["seed"] == 1 and half["category"] == "test" and half["wall_ms"] >= 0, half
    rec = json.loads(half["record_json"])
    assert rec["n_matched"] == L and abs(rec["rms_after"] / rec["rms_before"] - 0.5) < 1e-9, rec
    assert "scale" in json.loads(half["phases_json"])
    s1, s2 = by["test_scale(factor=2.0)->test_scale(factor=0.9)"]
    assert (s1["stage"], s2["stage"]) == (1, 2)
    assert json.loads(s1["params_json"])["layers"] == [L - 1]
    assert json.loads(s2["params_json"])["param"] == "model.norm.weight"
    assert json.loads(s2["record_json"])["matched"] == ["model.norm.weight"]
    [st] = by["selftest(id=7)"]
    assert json.loads(st["params_json"])["id"] == 7 and st["method"] == "selftest"
    # the query the docs show, straight from the stages table
    q = sqlite3_shell(db, "SELECT json_extract(params_json, '$.param') AS param FROM stages "
                          "WHERE method = 'test_scale' AND stage = 1 ORDER BY job_id")
    assert [r["param"] for r in q] == ["model.layers.*.mlp.down_proj.weight"] * 2, q
    # the baseline ran no stage; the model really changed: perplexity moved away from the baseline's
    assert query(db, "SELECT count(*) FROM stages s JOIN jobs j ON j.id = s.job_id JOIN compositions c "
                     "ON c.id = j.composition_id WHERE c.pattern = 'baseline'") == [(0,)]
    ppl = dict(query(db, "SELECT label, ppl_wikitext FROM v_runs WHERE label <> 'selftest(id=7)'"))
    assert ppl["test_scale(factor=0.5)"] != ppl["baseline"], ppl
    t = query(db, "SELECT count(*) FROM v_results WHERE metric = 'time_interventions_s' AND is_current = 1")
    assert t == [(2,)], t


@test
def worker_without_selftest_refuses_the_test_stage():
    d = setup()
    grid = os.path.join(d, "g2.json")
    json.dump({"name": "nost", "models": ["default"], "compositions": [[SCALE_HALF]]}, open(grid, "w"))
    db = os.path.join(d, "n.db")
    run([CISWEEP, "launch", "--db", db, "--grid", grid, "--models", os.path.join(d, "models.json"), "--allow-selftest"])
    port = free_port()
    ep = f"tcp://127.0.0.1:{port}"
    logs = open(os.path.join(d, "nost.log"), "w")
    coord = subprocess.Popen([CISWEEP, "coordinator", "--db", db, "--bind", ep, "--heartbeat-ms", "100"],
                             stdout=logs, stderr=subprocess.STDOUT)
    worker = subprocess.Popen([WORKER, "worker", "--connect", ep, "--cache", os.path.join(d, "c2"), "--data",
                               os.path.join(d, "world"), "--heartbeat-ms", "100", "--threads", "1"],
                              stdout=logs, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: query(db, "SELECT state FROM jobs") == [("failed",)], 60, 0.1, what="the job to fail")
        err, spent = query(db, "SELECT last_error, spent FROM jobs")[0]
        assert '"test_scale" (stage 1) is a test stage' in err and "--selftest" in err, err
        assert spent == 1, "a non-retryable failure is not retried"
        assert query(db, "SELECT count(*) FROM stages") == [(0,)]
        assert worker.poll() is None, "the worker must survive a refused job"
    finally:
        for proc in (worker, coord):
            proc.send_signal(signal.SIGTERM)
        for proc in (worker, coord):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        logs.close()


@cleanup
def remove_tmp():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
