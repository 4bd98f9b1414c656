"""Black-box: the recompress policy and the models map's presets land in the database (issue 12,
items 1 and 3). A real `cisweep run` (coordinator + worker processes, a SQLite file) on a tiny
trained model and a small synthetic world, with Wanda 50% -> FT under the policies paper, mask and
always (a grid key per block) and RMU alone, and a models map whose slot carries presets for FT
(steps) and RMU (use_preset false, layer, module), and GPTQ -> FT under never: every job ends done; composition_policy holds each
composition's policy; the stages table shows the paper's re-applied Wanda as its own recompress row,
none under mask (whose FT stage records the pruned weights it put back at zero); the presets are in
the stored canonical composition and in the stages' effective params, while a value the grid set
wins over the preset; the slot's presets are kept in models.config; avg_bits stays upstream's
wbits + 32/group after FT edited the quantized model; --stage-evals rows come after every stage but the
last; `cisweep grid` shows the policies. A bad map or a bad policy is
refused before the DB is touched."""
import json, os, shutil, sqlite3, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, cleanup, main, run, CISWEEP, WORKER, tiny_world_and_model  # noqa: E402

STATE = {}


def setup():
    if "dir" in STATE:
        return STATE["dir"]
    d = tempfile.mkdtemp(prefix="cisweep-recompress-")
    tiny_world_and_model(d, steps=2)
    STATE["dir"] = d
    return d


WANDA = {"method": "wanda", "params": {"sparsity": 0.5}}
FT = {"method": "ft", "params": {"lr": 0.001}}   # steps from the preset; lr from the grid
GPTQ = {"method": "gptq", "params": {"bits": 4}}
PRESETS = {"ft": {"steps": 2, "lr": 0.01},
           "rmu": {"use_preset": False, "layer": 1, "module": "down_proj", "max_batches": 2}}


@test
def policy_and_presets_land_in_the_db():
    d = setup()
    grid = os.path.join(d, "g.json")
    json.dump({"name": "rc", "models": ["default"], "singles": False, "compositions": [[WANDA, FT]],
               "subgrids": [{"models": ["default"], "recompress": "mask", "singles": False,
                             "compositions": [[WANDA, FT]]},
                            {"models": ["default"], "recompress": "always", "singles": False,
                             "compositions": [[WANDA, FT], [{"method": "rmu"}]]},
                            {"models": ["default"], "recompress": "never", "singles": False,
                             "compositions": [[GPTQ, FT]]}]}, open(grid, "w"))
    lines = run([CISWEEP, "grid", grid]).stdout.splitlines()
    assert sum(ln.endswith("\trecompress=mask") for ln in lines) == 1, lines
    assert sum(ln.endswith("\trecompress=never") for ln in lines) == 1, lines
    models = os.path.join(d, "models.json")
    json.dump({"default": {"path": os.path.join(d, "model"), "presets": PRESETS}}, open(models, "w"))
    db = os.path.join(d, "s.db")
    p = run([CISWEEP, "run", "--grid", grid, "--workers", "1", "--db", db, "--models", models,
             "--data", os.path.join(d, "world"), "--eval-limit", "4", "--threads", "1", "--stage-evals", "8",
             "--cache", os.path.join(d, "c")], check=False, timeout=900)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr[-3000:])
    con = sqlite3.connect(db)
    # --stage-evals: rows after every stage but the last of the plan that ran, none for a single stage
    srows = {}
    for label, metric, value in con.execute(
            "SELECT c.label, r.metric, r.value FROM results r JOIN jobs j ON j.id = r.job_id JOIN compositions c "
            "ON c.id = j.composition_id WHERE r.is_current = 1 AND r.metric LIKE 'stage%'"):
        srows.setdefault(label, {})[metric] = value
    paper = srows["wanda(sparsity=0.5)->ft"]
    assert sorted(k.split(".")[0] for k in paper if k.endswith(".mmlu")) == ["stage1", "stage2"], paper
    assert sorted(k.split(".")[0] for k in srows["wanda(sparsity=0.5)->ft [recompress=mask]"]
                  if k.endswith(".mmlu")) == ["stage1"], srows
    assert "rmu [recompress=always]" not in srows, srows
    for k in ("mmlu", "wmdp_bio", "wmdp_cyber", "wmdp_avg", "ppl_wikitext", "avg_bits", "sparsity", "time_eval_s"):
        assert "stage1." + k in paper, (k, paper)
    assert abs(paper["stage1.sparsity"] - 0.5) < 0.01 and abs(paper["stage1.avg_bits"] - (16 - 15 * paper["stage1.sparsity"])) < 1e-6, paper
    assert paper["stage2.sparsity"] < paper["stage1.sparsity"], paper   # FT moved pruned weights (paper: no mask)
    mask1 = srows["wanda(sparsity=0.5)->ft [recompress=mask]"]
    assert 0 < mask1["stage1.mmlu"] <= 1 and mask1["stage1.ppl_wikitext"] > 1, mask1
    comps = {label: (policy, json.loads(canon), state) for label, policy, canon, state in con.execute(
        "SELECT c.label, cp.recompress, c.canonical, j.state FROM compositions c JOIN jobs j "
        "ON j.composition_id = c.id LEFT JOIN composition_policy cp ON cp.composition_id = c.id")}
    assert sorted(comps) == ["gptq(bits=4)->ft [recompress=never]",
                             "rmu [recompress=always]", "wanda(sparsity=0.5)->ft",
                             "wanda(sparsity=0.5)->ft [recompress=always]",
                             "wanda(sparsity=0.5)->ft [recompress=mask]"], comps
    assert {k: v[0] for k, v in comps.items()} == {
        "gptq(bits=4)->ft [recompress=never]": "never",
        "rmu [recompress=always]": "always", "wanda(sparsity=0.5)->ft": "paper",
        "wanda(sparsity=0.5)->ft [recompress=always]": "always",
        "wanda(sparsity=0.5)->ft [recompress=mask]": "mask"}, comps
    assert all(v[2] == "done" for v in comps.values()), comps
    # the presets are in the stored spec (the grid's lr wins over the preset's, the preset's steps fill the default)
    ft = comps["wanda(sparsity=0.5)->ft"][1][1]["params"]
    assert ft["steps"] == 2 and ft["lr"] == 0.001, ft
    rmu = comps["rmu [recompress=always]"][1][0]["params"]
    assert rmu["layer"] == 1 and rmu["module"] == "down_proj" and rmu["use_preset"] is False, rmu
    stages = {}
    for label, stage, method, recompress, params, record in con.execute(
            "SELECT c.label, s.stage, s.method, s.recompress, s.params_json, s.record_json FROM stages s "
            "JOIN jobs j ON j.id = s.job_id JOIN compositions c ON c.id = j.composition_id ORDER BY s.job_id, s.stage"):
        stages.setdefault(label, []).append((stage, method, recompress, json.loads(params), json.loads(record)))
    lay = {k: [(s, m, r) for s, m, r, _, _ in v] for k, v in stages.items()}
    assert lay["wanda(sparsity=0.5)->ft"] == [(1, "wanda", 0), (2, "ft", 0), (3, "wanda", 1)], lay
    assert lay["wanda(sparsity=0.5)->ft [recompress=always]"] == [(1, "wanda", 0), (2, "ft", 0), (3, "wanda", 1)], lay
    assert lay["wanda(sparsity=0.5)->ft [recompress=mask]"] == [(1, "wanda", 0), (2, "ft", 0)], lay
    assert lay["gptq(bits=4)->ft [recompress=never]"] == [(1, "gptq", 0), (2, "ft", 0)], lay
    # avg_bits as upstream reports it: wbits + 32/group of the quantizer, also when an editor ran after it
    # and nothing re-quantized (never), and in the stage rows after it
    bits = dict(con.execute("SELECT c.label, r.value FROM results r JOIN jobs j ON j.id = r.job_id JOIN compositions c "
                            "ON c.id = j.composition_id WHERE r.is_current = 1 AND r.metric = 'avg_bits'"))
    group = stages["gptq(bits=4)->ft [recompress=never]"][0][4]["group"]
    assert bits["gptq(bits=4)->ft [recompress=never]"] == 4 + 32 / group, (bits, group)
    assert srows["gptq(bits=4)->ft [recompress=never]"]["stage1.avg_bits"] == 4 + 32 / group, srows
    mask = stages["wanda(sparsity=0.5)->ft [recompress=mask]"]
    assert mask[0][4]["mask_zeros"] > 0, mask[0][4]
    assert mask[1][4]["mask_reimposed"] == 3 and mask[1][4]["mask_restored"] > 0, mask[1][4]   # 2 steps + once after
    assert mask[1][3]["steps"] == 2 and mask[1][4]["steps"] == 2, mask[1]                       # the preset ran
    (_, _, _, rp, rr), = stages["rmu [recompress=always]"]
    assert rp["act_layer"] == 1 and rp["module"] == "down_proj" and rp["preset"] == "none", rp
    cfg = json.loads(con.execute("SELECT config FROM models").fetchone()[0])
    assert cfg["presets"] == PRESETS, cfg
    # bad input: refused before the DB is touched
    bad = os.path.join(d, "bad.json")
    json.dump({"default": {"path": os.path.join(d, "model"), "presets": {"rmu": {"param": "down_proj"}}}}, open(bad, "w"))
    p = run([CISWEEP, "launch", "--db", os.path.join(d, "b.db"), "--grid", grid, "--models", bad], check=False)
    assert p.returncode == 2 and "$.default.presets.rmu.param: unknown parameter \"param\" for rmu" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(d, "b.db"))
    json.dump({"name": "x", "models": ["default"], "baseline": True, "recompress": "sometimes"}, open(bad, "w"))
    p = run([CISWEEP, "launch", "--db", os.path.join(d, "b.db"), "--grid", bad], check=False)
    assert p.returncode == 2 and "$.recompress: \"sometimes\" is not a recompress policy (allowed: paper|never|always|mask)" \
        in p.stderr, p.stderr


@cleanup
def remove_tmp():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
