"""test_overlap.py - `cisweep-worker overlap MODEL_DIR --data DIR` (worker/cmd_overlap.c): the
forget corpora's token and word overlap with the MMLU and WMDP items, on a small shared-lexicon
world and its distinct-lexicon twin (docs/world.md "Lexicon"), each with a tokenizer trained on it
(tiny-llama3, 1 step); the word counts against a Python recount of the same files; bad input
(a missing tokenizer, a missing corpus, no --data) is refused with exit status 2 naming the file.
"""
import csv, glob, json, os, re, shutil, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from harness import WORKER, check, main, run, test  # noqa: E402

TMP = tempfile.mkdtemp(prefix="cis_overlap_")


def world_and_tokenizer(name, lexicon):
    w, m = os.path.join(TMP, name, "world"), os.path.join(TMP, name, "model")
    if not os.path.exists(os.path.join(m, "tokenizer.json")):
        run([WORKER, "world", "--out", w, "--scale", "small", "--lexicon", lexicon], timeout=300)
        run([WORKER, "train", "--world", w, "--arch", "tiny-llama3", "--out", m, "--steps", "1", "--threads", "1"], timeout=300)
    return w, m


def overlap(m, w):
    p = run([WORKER, "overlap", m, "--data", w], timeout=300)
    out = {}
    for line in p.stdout.splitlines():
        k, _, v = line.partition(": ")
        out[k] = v
    return out


def words(s):
    return re.findall(r"[a-z0-9]+", s.lower())


def py_word_overlap(w):
    """MMLU options' word types and the share of them in the forget corpora, recomputed here"""
    fw = set()
    for line in open(os.path.join(w, "wmdp", "bio-forget-corpus.jsonl")):
        fw.update(words(json.loads(line)["text"]))
    for line in open(os.path.join(w, "wmdp", "cyber-forget-corpus.jsonl")):
        fw.update(words(line))   # raw lines, as RMU reads them
    opts = set()
    for f in glob.glob(os.path.join(w, "mmlu", "data", "test", "*.csv")):
        for row in csv.reader(open(f)):
            for c in row[1:5]:
                opts.update(words(c))
    return len(opts), sum(x in fw for x in opts) / len(opts)


@test
def test_shared_and_distinct():
    ws, ms = world_and_tokenizer("shared", "shared")
    wd, md = world_and_tokenizer("distinct", "distinct")
    a, b = overlap(ms, ws), overlap(md, wd)
    for o in (a, b):
        for k, v in o.items():
            if re.search(r"\.(types_in_forget|occ_in_forget|occ_forget_only|forget_occ_share|word_types_in_forget|word_occ_in_forget)$", k):
                check(0.0 <= float(v) <= 1.0, f"{k} = {v}")
        # every WMDP option (an answer or a distractor of the same pool) is stated in the forget corpora
        check(float(o["wmdp_bio.options.word_types_in_forget"]) == 1.0, o["wmdp_bio.options.word_types_in_forget"])
        check(float(o["wmdp_cyber.options.types_in_forget"]) == 1.0, o["wmdp_cyber.options.types_in_forget"])
        check(int(o["mmlu.options.types"]) > 50)
    # the distinct lexicon takes the MMLU names out of the forget corpora (the shared one's blights attack flora plants)
    check(float(a["mmlu.options.word_types_in_forget"]) > 0.03, a["mmlu.options.word_types_in_forget"])
    check(float(b["mmlu.options.word_types_in_forget"]) < 0.01, b["mmlu.options.word_types_in_forget"])
    check(float(b["mmlu.options.types_in_forget"]) < float(a["mmlu.options.types_in_forget"]))
    # the word numbers are the files' own
    for o, w in ((a, ws), (b, wd)):
        n, share = py_word_overlap(w)
        check(int(o["mmlu.options.word_types"]) == n, f'{o["mmlu.options.word_types"]} != {n}')
        check(abs(float(o["mmlu.options.word_types_in_forget"]) - share) < 1e-4, f'{o["mmlu.options.word_types_in_forget"]} != {share}')


@test
def test_bad_input():
    ws, ms = world_and_tokenizer("shared", "shared")
    p = run([WORKER, "overlap", os.path.join(TMP, "nope"), "--data", ws], check=False)
    check(p.returncode == 2 and "nope/tokenizer.json" in p.stderr, p.stderr)
    empty = os.path.join(TMP, "empty")
    os.makedirs(empty, exist_ok=True)
    p = run([WORKER, "overlap", ms, "--data", empty], check=False)
    check(p.returncode == 2 and "bio-forget-corpus.jsonl: no such file" in p.stderr, p.stderr)
    p = run([WORKER, "overlap", ms], check=False)
    check(p.returncode == 2 and "--data" in p.stderr, p.stderr)
    p = run([WORKER, "overlap", ms, "--data", ws, "--bogus"], check=False)
    check(p.returncode == 2 and "--bogus" in p.stderr, p.stderr)


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
