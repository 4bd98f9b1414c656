"""test_transfer_items.py - tests/bench/transfer_items.py (docs/unlearning.md "Transfer binding"):
on a small world made here, every item is a well-formed lm-eval 0-shot prompt on a zsRE fact whose
relation no MMLU/WMDP question asks, its letter is the fact's object, the letters are balanced, the
held-out facts never appear in the items and come back as an MMLU CSV with the right letters, the
same seed gives the same bytes; --options fixed writes each fact's one option set in all 24 orders;
--drills mixes in pure-match items whose letter names the option asked for; a world without its zsRE file is an error naming the file."""
import csv, collections, glob, json, os, re, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import test, cleanup, main, run, WORKER  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transfer_items.py")
D = tempfile.mkdtemp(prefix="test_transfer_items.")
W = os.path.join(D, "w")
HEAD = re.compile(r"^The following are multiple choice questions \(with answers\) about ([a-z ]+)\.\n(.*)\n"
                  r"A\. (.*)\nB\. (.*)\nC\. (.*)\nD\. (.*)\nAnswer:$")


@cleanup
def remove_tmp():
    shutil.rmtree(D, ignore_errors=True)


def script(*a):
    return subprocess.run([sys.executable, SCRIPT, *a], capture_output=True, text=True, timeout=120)


def world():
    if not os.path.isdir(W):
        run([WORKER, "world", "--out", W, "--scale", "small", "--seed", "5"], timeout=300)
    return W


def parsed(path):
    """(header subject, question, [4 options], gold index) of every item of a file, the prompt checked
    against the lm-eval 0-shot form and the completion a letter"""
    for line in open(path):
        o = json.loads(line)
        m = HEAD.match(o["prompt"])
        assert m, o["prompt"]
        assert o["completion"] in (" A", " B", " C", " D"), o["completion"]
        yield m.group(1), m.group(2), [m.group(k) for k in range(3, 7)], "ABCD".index(o["completion"].strip())


def test_templates(w):
    recs = json.load(open(os.path.join(w, "zsre", "zsre_mend_train.json")))
    subjects = {r["subject"] for r in recs}
    qs = []
    for p in glob.glob(os.path.join(w, "mmlu", "data", "*", "*.csv")):
        qs += [row[0] for row in csv.reader(open(p, newline="")) if row]
    for dom in ("bio", "cyber"):
        qs += [q["question"] for q in json.load(open(os.path.join(w, "wmdp", f"wmdp-{dom}.json")))]
    return recs, {q.replace(s, "{S}") for q in qs for s in subjects if s in q}


@test
def items_are_untested_relations_with_right_letters():
    w = world()
    out = os.path.join(D, "items.jsonl")
    p = script(w, out, "--items", "4000", "--seed", "3", "--holdout", "2")
    assert p.returncode == 0, p.stderr
    recs, tested = test_templates(w)
    by_q = {r["src"]: r for r in recs}
    heads = {os.path.basename(f)[:-len("_test.csv")].replace("_", " ")
             for f in glob.glob(os.path.join(w, "mmlu", "data", "test", "*_test.csv"))} | {"biology", "cybersecurity"}
    letters = collections.Counter()
    seen_facts = set()
    n = 0
    for head, q, opts, k in parsed(out):
        assert head in heads, head
        r = by_q[q]                               # --forms src: the zsRE src question itself
        assert r["src"].replace(r["subject"], "{S}") not in tested, r["src"]
        assert len(set(opts)) == 4, opts
        assert opts[k] == r["answers"][0], (opts, r)
        letters[k] += 1
        seen_facts.add(r["src"])
        n += 1
    assert n == 4000
    assert all(800 < letters[k] < 1200 for k in range(4)), letters
    assert tested, "the small world asks some zsRE relation in an MC set"
    # the held-out facts: 2 per relation, never in the items, their CSV letters right
    held = list(csv.reader(open(os.path.join(D, "items.heldout.csv"), newline="")))
    rels = {by_q[row[0]]["src"].replace(by_q[row[0]]["subject"], "{S}") for row in held}
    assert len(held) == 2 * len(rels) and len(rels) >= 2, held
    for row in held:
        assert row[0] not in seen_facts, row
        assert row[1 + "ABCD".index(row[5])] == by_q[row[0]]["answers"][0], row


@test
def same_seed_same_bytes_and_other_forms():
    w = world()
    a, b, c = (os.path.join(D, f"{x}.jsonl") for x in "abc")
    assert script(w, a, "--items", "300", "--seed", "9").returncode == 0
    assert script(w, b, "--items", "300", "--seed", "9").returncode == 0
    assert open(a).read() == open(b).read()
    p = script(w, c, "--items", "300", "--seed", "9", "--forms", "both")
    assert p.returncode == 0, p.stderr
    recs = json.load(open(os.path.join(w, "zsre", "zsre_mend_train.json")))
    reph = {r["rephrase"] for r in recs}
    assert any(q in reph for _, q, _, _ in parsed(c))


@test
def fixed_options_give_every_order_of_one_set():
    w = world()
    out = os.path.join(D, "fixed.jsonl")
    p = script(w, out, "--options", "fixed", "--seed", "4", "--holdout", "1")
    assert p.returncode == 0, p.stderr
    recs, tested = test_templates(w)
    by_q = {r["src"]: r for r in recs}
    sets = collections.defaultdict(list)
    for _, q, opts, k in parsed(out):
        assert opts[k] == by_q[q]["answers"][0]
        sets[q].append((tuple(opts), k))
    untested = [r for r in recs if r["src"].replace(r["subject"], "{S}") not in tested]
    held = list(csv.reader(open(os.path.join(D, "fixed.heldout.csv"), newline="")))
    assert len(sets) == len(untested) - len(held), (len(sets), len(untested), len(held))
    for q, v in sets.items():
        assert len(v) == 24 and len({o for o, _ in v}) == 24, q       # the 24 orders, each once
        assert len({frozenset(o) for o, _ in v}) == 1, q             # of one option set
        assert collections.Counter(k for _, k in v) == {0: 6, 1: 6, 2: 6, 3: 6}, q


@test
def drills_are_the_copy_task():
    w = world()
    out = os.path.join(D, "drills.jsonl")
    p = script(w, out, "--items", "2000", "--seed", "6", "--drills", "0.5")
    assert p.returncode == 0, p.stderr
    nd = 0
    for _, q, opts, k in parsed(out):
        if q.startswith("Which of these is "):
            assert q == f"Which of these is {opts[k]}?", (q, opts, k)
            nd += 1
    assert 850 < nd < 1150, nd


@test
def missing_zsre_is_named():
    empty = os.path.join(D, "empty")
    os.makedirs(empty, exist_ok=True)
    p = script(empty, os.path.join(D, "x.jsonl"))
    assert p.returncode == 1 and "zsre_mend_train.json" in p.stderr and "cisweep world" in p.stderr, p.stderr


if __name__ == "__main__":
    main()
