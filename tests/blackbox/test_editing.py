"""Black-box: the knowledge editors in a real sweep. `cisweep run` (coordinator + worker processes,
a SQLite file) on a tiny trained model and a small synthetic world, with MEMIT on edit sets 1 and 2,
FT and LoRA: every job is done; the `stages` table (read with the sqlite3 shell) holds each
editor's effective params (defaults, the layers resolved for the model's depth, the tiny preset's
replacements listed) and its record; the sweep's statistics job computed the second-moment
statistics into the shared artifact cache and both MEMIT jobs read them (record counts, a cache
entry per layer, far less statistics time); the edits moved the edit metrics away from the
baseline's."""
import glob, json, os, shutil, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, cleanup, main, run, query, CISWEEP, WORKER, tiny_world_and_model  # noqa: E402

STATE = {}


def setup():
    if "dir" in STATE:
        return STATE["dir"]
    d = tempfile.mkdtemp(prefix="cisweep-editing-")
    tiny_world_and_model(d, steps=20)
    STATE["dir"] = d
    return d


def sqlite3_shell(db, sql):
    p = run(["sqlite3", "-readonly", "-json", f"file:{db}?mode=ro", sql])
    return json.loads(p.stdout or "[]")


MEMIT = {"method": "memit", "params": {"v_steps": 3, "mom2_n_samples": 300}}
FT = {"method": "ft", "params": {"steps": 3}}
LORA = {"method": "lora", "params": {"steps": 3}}


@test
def editors_run_in_a_sweep_and_memit_reuses_its_statistics():
    d = setup()
    grid = os.path.join(d, "g.json")
    json.dump({"name": "editing", "models": ["default"], "baseline": True, "singles": False, "edit_sets": [1, 2],
               "compositions": [[MEMIT], [FT], [LORA]]}, open(grid, "w"))
    db = os.path.join(d, "e.db")
    cache = os.path.join(d, "cache")
    p = run([CISWEEP, "run", "--grid", grid, "--workers", "1", "--db", db, "--models", os.path.join(d, "models.json"),
             "--data", os.path.join(d, "world"), "--eval-limit", "8", "--threads", "1", "--cache", cache],
            check=False, timeout=900)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr[-3000:])
    states = query(db, "SELECT state, count(*) FROM jobs GROUP BY state")
    assert states == [("done", len(query(db, "SELECT id FROM jobs")))], states
    L = json.load(open(os.path.join(d, "model", "config.json")))["num_hidden_layers"]
    rows = sqlite3_shell(db, "SELECT method, seed, params_json, record_json, phases_json FROM v_stages "
                             "WHERE is_current ORDER BY job_id")
    memit = [r for r in rows if r["method"] == "memit"]
    assert sorted(r["seed"] for r in memit) == [1, 2], memit
    for r in memit:
        params = json.loads(r["params_json"])
        assert params["layers"] == [4, 5, 6, 7, 8] and params["layers_depth"] == 32, params
        lo, hi = int(4 * L / 32 + 0.5), int(8 * L / 32 + 0.5)
        assert params["edit_layers"] == list(range(lo, hi + 1)) and params["loss_layer"] == L - 1, params
        assert params["v_steps"] == 3 and params["mom2_n_samples"] == 300, params   # named: kept
        assert any(s.startswith("mom2_update_weight: 15000") for s in params["tiny_preset"]), params
        assert any(s.startswith("v_lr: 0.5") for s in params["tiny_preset"]), params
        rec = json.loads(r["record_json"])
        assert rec["n_edits"] == 50 and len(rec["values"]) == 50 and len(rec["templates"]) == 6, rec.keys()
    first, second = sorted(memit, key=lambda r: r["seed"])
    s1, s2 = json.loads(first["record_json"])["stats"], json.loads(second["record_json"])["stats"]
    n = hi - lo + 1
    # the sweep's statistics job computed them once into the shared artifact cache (CACHE/artifacts
    # by default); both MEMIT jobs read them (tests/blackbox/test_memit_stats_job.py has the rest)
    pre = sqlite3_shell(db, "SELECT record_json, phases_json FROM v_stages WHERE is_current AND method = 'memit_stats'")
    assert len(pre) == 1, pre
    s0 = json.loads(pre[0]["record_json"])
    assert s0["computed_layers"] == n and s0["cached_layers"] == 0 and s0["n_docs"] == 300, s0
    for st in (s1, s2):
        assert st["computed_layers"] == 0 and st["cached_layers"] == n and st["source"] == "artifact", st
        assert st["key"] == s0["keys"][-1] and st["n_tokens"] == s0["n_tokens"] and st["n_docs"] == 300, (st, s0)
    objects = glob.glob(os.path.join(cache, "artifacts", "objects", "*", "*"))
    assert len(objects) == n, objects
    t0 = json.loads(pre[0]["phases_json"])["stats"]
    for r in (first, second):
        t = json.loads(r["phases_json"])["stats"]
        assert t < t0 / 2, (t0, t)
    ft = [r for r in rows if r["method"] == "ft"]
    assert len(ft) == 2 and any(s.startswith("lr: 5e-05") for s in json.loads(ft[0]["params_json"])["tiny_preset"])
    lora = [r for r in rows if r["method"] == "lora"]
    assert len(lora) == 2
    lp = json.loads(lora[0]["params_json"])
    assert lp["type"] == "adalora" and lp["rank"] == 12 and "tiny_preset" not in lp, lp
    lr = json.loads(lora[0]["record_json"])
    assert abs(lr["scale"] - 32 / (12 + 1e-5)) < 1e-9 and len(lr["adapted"]) == 2 * L, lr
    # the edit metrics exist for every edited job
    es = query(db, "SELECT count(*) FROM v_results WHERE metric = 'edit_success' AND is_current = 1")
    assert es[0][0] >= 6, es


@cleanup
def remove_tmp():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
