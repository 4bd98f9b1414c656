"""test_items_by_parity.py - tests/bench/items_by_parity.py: a per-question file written by hand,
the accuracies per domain and parity computed here; a malformed line and a missing file are errors
naming the file (and line)."""
import json, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import test, cleanup, main  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "items_by_parity.py")
D = tempfile.mkdtemp(prefix="test_items_by_parity.")


@cleanup
def remove_tmp():
    for f in os.listdir(D):
        os.unlink(os.path.join(D, f))
    os.rmdir(D)


def script(*a):
    return subprocess.run([sys.executable, SCRIPT, *a], capture_output=True, text=True, timeout=60)


@test
def accuracies_by_hand():
    p = os.path.join(D, "a.jsonl")
    rows = [("mmlu_fauna", 0, True), ("mmlu_fauna", 1, False), ("mmlu_trade", 2, True), ("mmlu_trade", 3, True),
            ("wmdp_bio", 0, True), ("wmdp_bio", 1, False), ("wmdp_cyber", 4, False), ("wmdp_cyber", 5, False)]
    with open(p, "w") as f:
        for t, i, c in rows:
            f.write(json.dumps({"task": t, "index": i, "gold": 0, "mc_pred": 0 if c else 1, "mc_correct": c, "open_f1": 1.0}) + "\n")
    r = script(p)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert "| MMLU | even positions | 2 | 1.000 |" in out, out
    assert "| MMLU | odd positions | 2 | 0.500 |" in out, out
    assert "| WMDP | even positions | 2 | 0.500 |" in out, out
    assert "| WMDP | odd positions | 2 | 0.000 |" in out, out


@test
def bad_input_named():
    bad = os.path.join(D, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"task": "wmdp_bio"}\n')
    r = script(bad)
    assert r.returncode == 1 and "bad.jsonl:1" in r.stderr, r.stderr
    r = script(os.path.join(D, "none.jsonl"))
    assert r.returncode == 1 and "none.jsonl" in r.stderr, r.stderr


if __name__ == "__main__":
    main()
