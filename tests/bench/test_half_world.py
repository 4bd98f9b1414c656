"""test_half_world.py - tests/bench/half_world.py (docs/unlearning.md "Transfer binding"): on a
small world, the copy keeps the even (or odd) MMLU rows and WMDP questions and links the rest; with
--forget-items the forget corpora are those items' biology / cybersecurity prompts with their
letters, in the corpora's formats; a missing world, an existing output and a malformed item line
are errors naming the path."""
import csv, json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import test, cleanup, main, run, WORKER  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "half_world.py")
PRACTICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "practice_items.py")
D = tempfile.mkdtemp(prefix="test_half_world.")
W = os.path.join(D, "w")


@cleanup
def remove_tmp():
    shutil.rmtree(D, ignore_errors=True)


def script(*a, s=SCRIPT):
    return subprocess.run([sys.executable, s, *a], capture_output=True, text=True, timeout=120)


def world():
    if not os.path.isdir(W):
        run([WORKER, "world", "--out", W, "--scale", "small", "--seed", "3"], timeout=300)
    return W


def rows(path):
    return [r for r in csv.reader(open(path, newline="")) if r]


@test
def halves_and_links():
    w = world()
    for par, r0 in (("even", 0), ("odd", 1)):
        out = os.path.join(D, par)
        p = script(w, out, "--parity", par)
        assert p.returncode == 0, p.stderr
        for f in os.listdir(os.path.join(w, "mmlu", "data", "test")):
            assert rows(os.path.join(out, "mmlu", "data", "test", f)) == rows(os.path.join(w, "mmlu", "data", "test", f))[r0::2]
        for d in ("bio", "cyber"):
            assert json.load(open(os.path.join(out, "wmdp", f"wmdp-{d}.json"))) == \
                json.load(open(os.path.join(w, "wmdp", f"wmdp-{d}.json")))[r0::2]
            assert os.path.realpath(os.path.join(out, "wmdp", f"{d}-forget-corpus.jsonl")) == \
                os.path.realpath(os.path.join(w, "wmdp", f"{d}-forget-corpus.jsonl"))
        assert os.path.realpath(os.path.join(out, "zsre")) == os.path.realpath(os.path.join(w, "zsre"))


@test
def forget_corpora_from_items():
    w = world()
    items = os.path.join(D, "items.jsonl")
    p = script(w, items, "--subjects", "fauna", "--wmdp", "--questions", "even", s=PRACTICE)
    assert p.returncode == 0, p.stderr
    out = os.path.join(D, "mc")
    p = script(w, out, "--forget-items", items)
    assert p.returncode == 0, p.stderr
    its = [json.loads(l) for l in open(items)]
    bio = [json.loads(l) for l in open(os.path.join(out, "wmdp", "bio-forget-corpus.jsonl"))]
    cyber = [json.loads(l) for l in open(os.path.join(out, "wmdp", "cyber-forget-corpus.jsonl"))]
    assert [b["text"] for b in bio] == [i["prompt"] + i["completion"] for i in its if "about biology.\n" in i["prompt"]]
    assert [c["text"] for c in cyber] == [i["prompt"] + i["completion"] for i in its if "about cybersecurity.\n" in i["prompt"]]
    assert bio and cyber and all(set(b) == {"title", "abstract", "text"} for b in bio) and all(set(c) == {"text"} for c in cyber)


@test
def bad_input_named():
    w = world()
    p = script(os.path.join(D, "nosuch"), os.path.join(D, "x1"))
    assert p.returncode == 1 and "nosuch" in p.stderr and "cisweep world" in p.stderr, p.stderr
    os.makedirs(os.path.join(D, "exists"), exist_ok=True)
    p = script(w, os.path.join(D, "exists"))
    assert p.returncode == 1 and "exists" in p.stderr, p.stderr
    bad = os.path.join(D, "bad.jsonl")
    open(bad, "w").write('{"prompt": "x"}\n')
    p = script(w, os.path.join(D, "x2"), "--forget-items", bad)
    assert p.returncode == 1 and "bad.jsonl:1" in p.stderr, p.stderr


if __name__ == "__main__":
    main()
