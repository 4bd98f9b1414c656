"""Black-box: the evaluation protocol of a sweep is chosen on the workers and stored with every
result. `cisweep run` (coordinator + a worker process, a SQLite file) on a 20-step model and a small
world: without options the rows say the default profile, lm-eval 0.4.2's single newline and zsRE
max_length 30; with --eval-profile paper --mc-prompt 0.4.4 they say so, and the metrics that do not
depend on the MC prompt stay the same (that the prompt reaches the MC scoring is checked in
tests/worker/eval/test_eval_mc.c, test_style_reaches_scoring); --eval-open adds the open_* rows and
--eval-cloze the cloze_* rows, and neither changes another. Bad values are refused by
`cisweep run` and by the worker with exit 2 and a message naming the option."""
import json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, cleanup, main, run, query, CISWEEP, WORKER, tiny_world_and_model  # noqa: E402

STATE = {}


def setup():
    if "dir" in STATE:
        return STATE["dir"]
    d = tempfile.mkdtemp(prefix="cisweep-evalprof-")
    tiny_world_and_model(d, steps=20)
    json.dump({"name": "evalprof", "models": ["default"], "baseline": True, "singles": False, "compositions": []},
              open(os.path.join(d, "g.json"), "w"))
    STATE["dir"] = d
    return d


def sweep(name, *extra):
    d = setup()
    db = os.path.join(d, name + ".db")
    p = run([CISWEEP, "run", "--grid", os.path.join(d, "g.json"), "--workers", "1", "--db", db, "--models",
             os.path.join(d, "models.json"), "--data", os.path.join(d, "world"), "--eval-limit", "6", "--threads", "1",
             "--cache", os.path.join(d, "cache"), *extra], check=False, timeout=600)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr[-3000:])
    rows = query(db, "SELECT metric, value FROM v_results WHERE is_current = 1")
    return {m: v for m, v in rows}


@test
def default_protocol_is_recorded():
    r = sweep("default")
    assert r["eval_profile"] == 0 and r["mc_prompt_newlines"] == 1 and r["zsre_max_length"] == 30, r


@test
def paper_profile_and_044_prompt_are_recorded():
    base = sweep("default2")
    r = sweep("paper044", "--eval-profile", "paper", "--mc-prompt", "0.4.4")
    assert r["eval_profile"] == 1 and r["mc_prompt_newlines"] == 2 and r["zsre_max_length"] == 30, r
    assert any(k.startswith("mmlu_") for k in r) and "wmdp_bio" in r, sorted(r)
    # the rest of the suite does not depend on the MC prompt
    for k in ("ppl_wikitext", "edit_success", "qa_f1"):
        assert abs(base[k] - r[k]) < 1e-9, (k, base[k], r[k])


@test
def eval_open_adds_the_open_rows():
    """--eval-open reaches the worker's final evaluation: the open_* rows are stored, in [0, 1], and
    the MC rows are those of a run without it; without it there is no open_* row."""
    base = sweep("noopen")
    assert not any(k.startswith("open_") for k in base), sorted(base)
    r = sweep("open", "--eval-open")
    for k in ("open_mmlu_f1", "open_mmlu_em", "open_wmdp_bio_f1", "open_wmdp_cyber_f1", "open_wmdp_f1"):
        assert k in r and 0.0 <= r[k] <= 1.0, (k, r.get(k))
    assert abs(r["open_wmdp_f1"] - (r["open_wmdp_bio_f1"] + r["open_wmdp_cyber_f1"]) / 2) < 1e-9, r
    for k in ("mmlu", "wmdp_bio", "wmdp_cyber", "ppl_wikitext"):
        assert abs(base[k] - r[k]) < 1e-9, (k, base[k], r[k])


@test
def eval_cloze_adds_the_cloze_rows():
    """--eval-cloze reaches the worker's final evaluation: the cloze_* rows (the qa context) are
    stored, in [0, 1], with the context recorded, and the MC rows are those of a run without it."""
    base = sweep("nocloze")
    assert not any(k.startswith("cloze_") for k in base), sorted(base)
    r = sweep("cloze", "--eval-cloze")
    for k in ("cloze_mmlu", "cloze_mmlu_norm", "cloze_wmdp_bio", "cloze_wmdp_cyber", "cloze_wmdp_avg",
              "cloze_wmdp_avg_norm"):
        assert k in r and 0.0 <= r[k] <= 1.0, (k, r.get(k))
    assert r["cloze_prompt"] == 0, r
    assert abs(r["cloze_wmdp_avg"] - (r["cloze_wmdp_bio"] + r["cloze_wmdp_cyber"]) / 2) < 1e-9, r
    for k in ("mmlu", "wmdp_bio", "wmdp_cyber", "ppl_wikitext"):
        assert abs(base[k] - r[k]) < 1e-9, (k, base[k], r[k])
    assert not any(k.startswith("open_") for k in r), sorted(r)


@test
def bad_values_are_refused():
    d = setup()
    p = subprocess.run([CISWEEP, "run", "--grid", os.path.join(d, "g.json"), "--eval-profile", "fast"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--eval-profile" in p.stderr, (p.returncode, p.stderr)
    p = subprocess.run([CISWEEP, "run", "--grid", os.path.join(d, "g.json"), "--mc-prompt", "0.4.3"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--mc-prompt" in p.stderr, (p.returncode, p.stderr)
    p = subprocess.run([WORKER, "worker", "--connect", "tcp://127.0.0.1:1", "--eval-profile", "fast"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--eval-profile expects default, paper or sweep" in p.stderr, p.stderr
    p = subprocess.run([WORKER, "worker", "--connect", "tcp://127.0.0.1:1", "--mc-prompt", "x"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--mc-prompt expects 0.4.2 or 0.4.4" in p.stderr, p.stderr


@cleanup
def remove_tmp():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
