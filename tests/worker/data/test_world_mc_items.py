"""test_world_mc_items.py - `cisweep-worker world --mc-items practice` (docs/world.md "Multiple
choice"): corpus/sft.jsonl then holds, for every MMLU test and WMDP item of the default world's
sft.jsonl, its 23 other option orders, each once, with the letter the gold option has there, and
never the scored order; the letters are balanced; every other file is byte-identical to the
default world's and world.json says "mc_items": "practice" (the default's says nothing); the same
seed gives the same bytes; a bad value exits 2 naming the option."""
import collections, itertools, json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from harness import test, cleanup, main, WORKER  # noqa: E402

TMP = tempfile.mkdtemp(prefix="cisweep_mcitems_")
LET = "ABCD"


@cleanup
def remove_tmp():
    shutil.rmtree(TMP, ignore_errors=True)


def world(name, *extra):
    d = os.path.join(TMP, name)
    if not os.path.exists(os.path.join(d, "world.json")):
        r = subprocess.run([WORKER, "world", "--out", d, "--scale", "small", "--seed", "77", *extra],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    return d


def items(d):
    with open(os.path.join(d, "corpus", "sft.jsonl")) as f:
        return [json.loads(l) for l in f]


def split(prompt):
    """(header + question, [4 options]) of an lm-eval prompt"""
    lines = prompt.split("\n")
    assert lines[-1] == "Answer:" and [l[:3] for l in lines[-5:-1]] == ["A. ", "B. ", "C. ", "D. "], prompt
    return "\n".join(lines[:-5]), [l[3:] for l in lines[-5:-1]]


@test
def practice_items_are_the_other_orders():
    test_items = items(world("test"))
    prac = items(world("practice", "--mc-items", "practice"))
    assert len(prac) == 23 * len(test_items), (len(prac), len(test_items))
    by_q = collections.defaultdict(list)
    for it in prac:
        q, opts = split(it["prompt"])
        by_q[q].append((tuple(opts), it["completion"]))
    scored = {it["prompt"] for it in test_items}
    assert not scored & {it["prompt"] for it in prac}, "a scored order is among the practice items"
    for it in test_items:
        q, opts = split(it["prompt"])
        gold = opts[LET.index(it["completion"].strip())]
        got = by_q[q]
        want = {tuple(opts[i] for i in p) for p in itertools.permutations(range(4))} - {tuple(opts)}
        assert sorted(o for o, _ in got) == sorted(want), (q, got)
        for o, c in got:
            assert c == " " + LET[o.index(gold)], (q, o, c, gold)
    n = collections.Counter(it["completion"] for it in prac)
    assert all(0.2 < n[" " + l] / len(prac) < 0.3 for l in LET), n


@test
def only_the_sft_file_and_the_manifest_differ():
    a, b = world("test"), world("practice", "--mc-items", "practice")
    ma, mb = (json.load(open(os.path.join(d, "world.json"))) for d in (a, b))
    assert "mc_items" not in ma and mb["mc_items"] == "practice", (ma.get("mc_items"), mb.get("mc_items"))
    fa, fb = ma["files"], mb["files"]
    assert set(fa) == set(fb)
    diff = sorted(k for k in fa if fa[k] != fb[k])
    assert diff == ["corpus/sft.jsonl"], diff
    # the same seed, the same bytes
    c = world("practice2", "--mc-items", "practice")
    assert json.load(open(os.path.join(c, "world.json")))["files"] == fb


@test
def bad_value_is_refused():
    r = subprocess.run([WORKER, "world", "--out", os.path.join(TMP, "bad"), "--mc-items", "letters"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--mc-items" in r.stderr and "test or practice" in r.stderr, (r.returncode, r.stderr)


main()
