"""test_edit_presets.py - tests/bench/edit_presets.py, the side-by-side measurement of an editor's
tiny-preset candidates (docs/editing.md "Tiny presets measured"): `run` on a tiny trained model and
world (two LoRA settings given explicitly, two edit sets: one JSON row per setting and set, the
effective params say what ran, the study's metrics present), `summary` on hand-made rows (the
means, the paired difference and the CPU ratio computed here by hand), and bad input: a missing
file, a line that is not JSON, a row without a metric, a --setting without NAME=JSON, each exit
status 2 with a message naming the file, line or argument."""
import json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import test, cleanup, main, run, tiny_world_and_model  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "edit_presets.py")
STATE = {}


def tmpdir():
    if "dir" not in STATE:
        STATE["dir"] = tempfile.mkdtemp(prefix="test_edit_presets.")
    return STATE["dir"]


def script(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=600)


def row(setting, k, es, cpu):
    return {"model": "m", "setting": setting, "edit_set": k, "apply_cpu_s": cpu, "apply_s": cpu,
            "edit_success": es, "generalization": 0.5, "locality": 0.6, "mmlu": 0.7, "wmdp_avg": 0.8,
            "ppl_wikitext": 30.0}


@test
def summary_paired_difference():
    d = tmpdir()
    f = os.path.join(d, "rows.jsonl")
    rows = [row("ref", 1, 0.90, 2.0), row("ref", 2, 0.80, 2.0), row("ref", 3, 0.70, 2.0),
            row("cand", 1, 0.88, 1.5), row("cand", 2, 0.80, 1.5), row("cand", 3, 0.66, 1.5)]
    with open(f, "w") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows) + "\n")
    p = script("summary", f)
    assert p.returncode == 0, p.stderr
    # differences -0.02, 0, -0.04: mean -0.02, sd 0.02, se 0.02/sqrt(3) = 0.0115
    assert "| ref (n 3) | 0.800 ± 0.058 |" in p.stdout, p.stdout
    line = [l for l in p.stdout.splitlines() if l.startswith("| cand (n 3) | -0.020 ± 0.012 |")]
    assert len(line) == 1, p.stdout
    assert line[0].endswith("| 0.75 |"), line     # CPU 4.5 / 6.0
    assert "paired difference to ref" in p.stdout, p.stdout


@test
def bad_input_named():
    d = tmpdir()
    p = script("summary", os.path.join(d, "nope.jsonl"))
    assert p.returncode == 2 and "nope.jsonl" in p.stderr and "No such file" in p.stderr, p.stderr
    f = os.path.join(d, "bad.jsonl")
    with open(f, "w") as fh:
        fh.write(json.dumps(row("ref", 1, 0.9, 1.0)) + "\n{not json\n")
    p = script("summary", f)
    assert p.returncode == 2 and "bad.jsonl:2:" in p.stderr, p.stderr
    r = row("ref", 1, 0.9, 1.0)
    del r["locality"]
    with open(f, "w") as fh:
        fh.write(json.dumps(r) + "\n")
    p = script("summary", f)
    assert p.returncode == 2 and "bad.jsonl:1:" in p.stderr and "locality" in p.stderr, p.stderr
    p = script("run", os.path.join(d, "o.jsonl"), "--world", d, "--models", d, "--sets", "1",
               "--setting", '{"method":"lora"}')
    assert p.returncode == 2 and "--setting" in p.stderr and "NAME=STAGE_JSON" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(d, "o.jsonl"))


@test
def run_two_settings_on_a_tiny_model():
    d = tmpdir()
    w = tiny_world_and_model(os.path.join(d, "w"), 2)
    world, model = os.path.join(w, "world"), os.path.join(w, "model")
    out = os.path.join(d, "lora.jsonl")
    p = script("run", out, "--world", world, "--models", model, "--sets", "1-2",
               "--setting", 's3={"method":"lora","params":{"steps":3}}',
               "--setting", 's2={"method":"lora","params":{"steps":2,"lr":0.0075}}')
    assert p.returncode == 0, (p.stdout, p.stderr[-2000:])
    rows = [json.loads(l) for l in open(out)]
    assert [(r["setting"], r["edit_set"]) for r in rows] == [("s3", 1), ("s2", 1), ("s3", 2), ("s2", 2)], rows
    for r in rows:
        assert r["params"]["steps"] == (3 if r["setting"] == "s3" else 2), r["params"]
        assert r["apply_cpu_s"] > 0 and r["phases_s"].get("train", 0) > 0, r
        for k in ("edit_success", "generalization", "locality", "mmlu", "wmdp_avg"):
            assert 0 <= r[k] <= 1, (k, r[k])
        assert r["ppl_wikitext"] > 1, r
    assert rows[1]["params"]["lr"] == 0.0075, rows[1]["params"]
    p = script("summary", out)
    assert p.returncode == 0 and "| s2 (n 2) |" in p.stdout, (p.stdout, p.stderr)


@cleanup
def rm():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
