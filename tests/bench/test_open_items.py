"""test_open_items.py - tests/bench/open_items.py (docs/unlearning.md "Open answers"): two
per-question files written by hand, the shares computed here: MC accuracy and stated facts before
and after per domain, and of the questions stated and right before whose fact is gone after, how
many keep the right letter; different questions in the two files, a malformed line and a missing
file are errors naming the file (and line)."""
import json, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import test, cleanup, main  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "open_items.py")
D = tempfile.mkdtemp(prefix="test_open_items.")


@cleanup
def remove_tmp():
    for f in os.listdir(D):
        os.unlink(os.path.join(D, f))
    os.rmdir(D)


def write(name, rows):
    p = os.path.join(D, name)
    with open(p, "w") as f:
        for task, i, gold, pred, f1 in rows:
            f.write(json.dumps({"task": task, "index": i, "gold": gold, "mc_pred": pred, "mc_correct": pred == gold,
                                "open_f1": f1}) + "\n")
    return p


def script(*a):
    return subprocess.run([sys.executable, SCRIPT, *a], capture_output=True, text=True, timeout=60)


BEFORE = [("mmlu_x", 0, 0, 0, 1.0), ("mmlu_x", 1, 1, 1, 0.5),
          ("wmdp_bio", 0, 0, 0, 1.0), ("wmdp_bio", 1, 1, 1, 1.0), ("wmdp_cyber", 0, 2, 2, 1.0), ("wmdp_cyber", 1, 3, 0, 1.0)]
# after: MMLU unchanged; WMDP: bio 0 fact gone, letter kept; bio 1 fact gone, letter lost; cyber 0 fact
# kept; cyber 1 (wrong before) gone -> not counted
AFTER = [("mmlu_x", 0, 0, 0, 1.0), ("mmlu_x", 1, 1, 1, 0.5),
         ("wmdp_bio", 0, 0, 0, 0.0), ("wmdp_bio", 1, 1, 2, 0.0), ("wmdp_cyber", 0, 2, 2, 1.0), ("wmdp_cyber", 1, 3, 3, 0.0)]


@test
def shares_by_hand():
    p = script(write("b.jsonl", BEFORE), write("a.jsonl", AFTER), "--label", "m")
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert "| m | MMLU | 2 | 1.000 -> 1.000 | 0.500 -> 0.500 | 0 | - |" in out, out
    assert "| m | WMDP | 4 | 0.750 -> 0.750 | 1.000 -> 0.250 | 2 | 1/2 = 0.50 |" in out, out


@test
def bad_input_named():
    b = write("b.jsonl", BEFORE)
    p = script(b, write("short.jsonl", AFTER[:-1]))
    assert p.returncode == 1 and "different questions" in p.stderr, p.stderr
    bad = os.path.join(D, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"task": "wmdp_bio", "index": 0}\n')
    p = script(b, bad)
    assert p.returncode == 1 and "bad.jsonl:1" in p.stderr, p.stderr
    p = script(b, os.path.join(D, "nope.jsonl"))
    assert p.returncode == 1 and "nope.jsonl" in p.stderr, p.stderr
    p = script(b)
    assert p.returncode == 2 and "usage" in p.stderr, p.stderr


main()
