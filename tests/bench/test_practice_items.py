"""test_practice_items.py - tests/bench/practice_items.py (docs/unlearning.md "Transfer binding"):
on a small world, the items of the named MMLU subjects are exactly the `--mc-items practice`
world's items of those subjects (as a set, the C generator being the oracle), no other subject and
no WMDP item is among them, the scored order never; a missing subject names its file."""
import csv, json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import test, cleanup, main, run, WORKER  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "practice_items.py")
D = tempfile.mkdtemp(prefix="test_practice_items.")


@cleanup
def remove_tmp():
    shutil.rmtree(D, ignore_errors=True)


def script(*a):
    return subprocess.run([sys.executable, SCRIPT, *a], capture_output=True, text=True, timeout=120)


@test
def same_items_as_the_practice_world():
    w, wp = os.path.join(D, "w"), os.path.join(D, "wp")
    run([WORKER, "world", "--out", w, "--scale", "small", "--seed", "8"], timeout=300)
    run([WORKER, "world", "--out", wp, "--scale", "small", "--seed", "8", "--mc-items", "practice"], timeout=300)
    subs = ["fauna", "world_history"]
    out = os.path.join(D, "p.jsonl")
    p = script(w, out, "--subjects", ",".join(subs))
    assert p.returncode == 0, p.stderr
    mine = open(out).read().splitlines()
    heads = tuple(f"about {s.replace('_', ' ')}.\n" for s in subs)
    theirs = [l for l in open(os.path.join(wp, "corpus", "sft.jsonl")).read().splitlines()
              if any(h in json.loads(l)["prompt"] for h in heads)]
    assert mine and sorted(mine) == sorted(theirs), (len(mine), len(theirs))
    n = sum(1 for s in subs for r in csv.reader(open(os.path.join(w, "mmlu", "data", "test", f"{s}_test.csv"))) if r)
    assert len(mine) == 23 * n
    scored = set()
    for s in subs:
        for r in csv.reader(open(os.path.join(w, "mmlu", "data", "test", f"{s}_test.csv"))):
            scored.add(f"{r[0]}\nA. {r[1]}\nB. {r[2]}\nC. {r[3]}\nD. {r[4]}\n")
    assert not any(x in json.loads(l)["prompt"] for l in mine for x in scored)
    assert not any("biology" in l or "cybersecurity" in l for l in mine)


@test
def wmdp_and_half_the_questions():
    w, wp = os.path.join(D, "w"), os.path.join(D, "wp")
    out = os.path.join(D, "h.jsonl")
    p = script(w, out, "--subjects", "fauna", "--wmdp", "--questions", "even")
    assert p.returncode == 0, p.stderr
    mine = set(open(out).read().splitlines())
    world = set(open(os.path.join(wp, "corpus", "sft.jsonl")).read().splitlines())
    assert mine <= world                                    # the practice world's items, a subset
    bio = json.load(open(os.path.join(w, "wmdp", "wmdp-bio.json")))
    fauna = [r for r in csv.reader(open(os.path.join(w, "mmlu", "data", "test", "fauna_test.csv"))) if r]
    asked = {json.loads(l)["prompt"].split("\n")[1] for l in mine}
    for i, q in enumerate(bio):                            # even questions in, odd ones never
        assert (q["question"] in asked) == (i % 2 == 0), i
    for i, r in enumerate(fauna):
        assert (r[0] in asked) == (i % 2 == 0), i
    nb = len(bio) // 2 + len(bio) % 2
    cyber = json.load(open(os.path.join(w, "wmdp", "wmdp-cyber.json")))
    nf, nc = (len(fauna) + 1) // 2, (len(cyber) + 1) // 2
    assert len(mine) == 23 * (nb + nc + nf), len(mine)


@test
def missing_subject_named():
    w = os.path.join(D, "w")
    if not os.path.isdir(w):
        run([WORKER, "world", "--out", w, "--scale", "small", "--seed", "8"], timeout=300)
    p = script(w, os.path.join(D, "x.jsonl"), "--subjects", "fauna,nosuch")
    assert p.returncode == 1 and "nosuch_test.csv" in p.stderr, p.stderr


if __name__ == "__main__":
    main()
