"""`cisweep run` step 2 (coordinator/cmd_study.c) and the shipped family (models/family): a generated
default world with the default budget copies the shipped members, verified, byte for byte, into
OUT/family (no training), says "shipped (verified)" with its time on the step-2 line and in
timings.json, and a second run keeps them; a world that is not the manifest's (--world-scale small),
another step budget, or --train-family trains, saying why; a damaged shipped file or a malformed
manifest is refused with the file named and the family is trained. Fast checks only: runs stop
after step 2 (--until models), and what trains trains 2 steps (a copy of the shipped family whose
manifest says 2 steps stands in for the default budget where a refusal must lead to training)."""
import hashlib, json, os, shutil, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, main, run, cleanup, CISWEEP, ROOT  # noqa: E402

FAM = os.path.join(ROOT, "models", "family")
TMP = tempfile.mkdtemp(prefix="cisweep-test-study-family-")
MEMBERS = ["tiny-llama3", "tiny-mistral", "tiny-yi"]


def sha256(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def study(out, *extra, check=True):
    """cisweep run up to the models, from the repository root (the default --shipped-family models/family)"""
    return run([CISWEEP, "run", "--out", out, "--until", "models", *extra], check=check, cwd=ROOT, timeout=600)


def step2(p):
    return [l for l in p.stdout.splitlines() if l.startswith("== 2. models")]


@cleanup
def remove_tmp():
    shutil.rmtree(TMP, ignore_errors=True)


@test
def matching_world_uses_the_shipped_family():
    out = os.path.join(TMP, "match")
    p = study(out)
    s2 = step2(p)
    assert len(s2) == 1 and "shipped (verified), 3 copied" in s2[0], p.stdout[-3000:]
    assert "train:" not in p.stderr, p.stderr[-2000:]          # the trainer never ran
    man = json.load(open(os.path.join(FAM, "manifest.json")))
    for m in MEMBERS:
        for f, want in man["members"][m]["files"].items():
            assert sha256(os.path.join(out, "family", m, f)) == want, (m, f)
    t = json.load(open(os.path.join(out, "timings.json")))
    assert t["models_source"] == "shipped (verified)" and t["until"] == "models" and "models_note" not in t, t
    assert 0 <= t["models_s"] < 60, t
    assert "stopped after step 2 (models)" in p.stdout and "models_s" in t and t["sweep_s"] == 0, p.stdout[-1000:]
    # the models map the sweep would use points at the copies (written only when the sweep runs)
    assert not os.path.exists(os.path.join(out, "sweep.db")), os.listdir(out)
    # a second run keeps them
    p = study(out)
    assert "(exist; kept)" in step2(p)[0], p.stdout[-2000:]
    assert json.load(open(os.path.join(out, "timings.json")))["models_source"] == "kept"


@test
def other_world_or_budget_trains():
    # the small world of the black-box tests: not the manifest's
    out = os.path.join(TMP, "small")
    p = study(out, "--world-scale", "small", "--family-steps", "2")
    s2 = step2(p)
    assert len(s2) == 1 and "training (not the shipped family: the world's scale is \"small\"" in s2[0], p.stdout[-2000:]
    t = json.load(open(os.path.join(out, "timings.json")))
    assert t["models_source"] == "trained" and "scale" in t["models_note"], t
    info = json.load(open(os.path.join(out, "family", "tiny-llama3", "train_info.json")))
    assert info["steps"] == 2 and info["threads"] == 1, info
    # the default world with another budget
    out = os.path.join(TMP, "budget")
    p = study(out, "--family-steps", "2")
    assert "training (not the shipped family: the step budget is 2 per model" in step2(p)[0], p.stdout[-2000:]
    # --train-family on a world that fits
    out = os.path.join(TMP, "forced")
    fam = two_step_copy("forced")
    p = study(out, "--shipped-family", fam, "--family-steps", "2", "--train-family")
    assert "training (--train-family" in step2(p)[0], p.stdout[-2000:]
    assert json.load(open(os.path.join(out, "timings.json")))["models_source"] == "trained"


def two_step_copy(name):
    """a copy of the shipped family whose manifest says 2 steps: with --family-steps 2 it fits the
    default world, and a refusal trains 2 steps instead of 3,600"""
    fam = os.path.join(TMP, "ship-" + name)
    shutil.copytree(FAM, fam)
    mp = os.path.join(fam, "manifest.json")
    m = json.load(open(mp))
    m["train"]["steps"] = 2
    json.dump(m, open(mp, "w"))
    return fam


@test
def damaged_shipped_file_is_refused():
    fam = two_step_copy("damaged")
    # the copy fits and is used as it is
    out = os.path.join(TMP, "intact")
    p = study(out, "--shipped-family", fam, "--family-steps", "2")
    assert "shipped (verified), 3 copied" in step2(p)[0], p.stdout[-2000:]
    # one flipped bit in tiny-yi's weights: refused, nothing copied, all three trained
    w = os.path.join(fam, "tiny-yi", "model.safetensors")
    b = bytearray(open(w, "rb").read())
    b[len(b) // 2] ^= 0x10
    open(w, "wb").write(bytes(b))
    out = os.path.join(TMP, "damaged")
    p = study(out, "--shipped-family", fam, "--family-steps", "2")
    s2 = step2(p)[0]
    assert "training (not the shipped family: " + w + ": sha256 " in s2 and "the shipped file is damaged" in s2, s2
    for m in MEMBERS:
        info = json.load(open(os.path.join(out, "family", m, "train_info.json")))
        assert info["steps"] == 2, (m, info)                 # trained here, not copied
    t = json.load(open(os.path.join(out, "timings.json")))
    assert t["models_source"] == "trained" and "damaged" in t["models_note"], t
    # a malformed manifest: named, and trained
    open(os.path.join(fam, "manifest.json"), "w").write("{\"format\": ")
    out = os.path.join(TMP, "malformed")
    p = study(out, "--shipped-family", fam, "--family-steps", "2")
    assert "training (not the shipped family: " + os.path.join(fam, "manifest.json") + ":1:" in step2(p)[0], p.stdout[-2000:]
    # no shipped family at all
    out = os.path.join(TMP, "none")
    p = study(out, "--shipped-family", os.path.join(TMP, "nowhere"), "--family-steps", "2")
    assert "no shipped family at " + os.path.join(TMP, "nowhere") in step2(p)[0], p.stdout[-2000:]


@test
def bad_until_is_refused():
    p = study(os.path.join(TMP, "bad"), "--until", "lunch", check=False)
    assert p.returncode == 2 and "--until: expected world, models or sweep, got \"lunch\"" in p.stderr, p.stderr


main()
