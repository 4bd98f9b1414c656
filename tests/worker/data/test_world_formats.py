"""test_world_formats.py - reads every file `cisweep-worker world --scale small` writes the way the
real dataset loaders do (json, jsonl, the csv module without a header as for the Hendrycks MMLU
CSVs, gzip for the C4 shard, zstandard or the zstd CLI for pile-val .zst), checks the schemas
and the manifest checksums, and that Python's random.seed(100); random.shuffle of the zsRE record
list gives exactly zsre/edit_sets.json."""
import csv, gzip, hashlib, json, os, random, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from harness import test, skip, main, WORKER  # noqa: E402

TMP = tempfile.mkdtemp(prefix="cisweep_worldfmt_")
DIR = os.path.join(TMP, "w")
_made = []


def world():
    if not _made:
        r = subprocess.run([WORKER, "world", "--out", DIR, "--scale", "small", "--seed", "77"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "records" in r.stdout, r.stdout
        _made.append(1)
    return DIR


def path(rel):
    return os.path.join(world(), rel)


def jsonl(p, opener=open):
    with opener(p, "rt", encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


@test
def manifest_checksums():
    m = json.load(open(path("world.json")))
    assert m["format"] == 1 and m["seed"] == 77 and m["scale"] == "small"
    want = {"corpus/pretrain.jsonl", "zsre/zsre_mend_train.json", "zsre/edit_sets.json", "wmdp/wmdp-bio.json",
            "wmdp/wmdp-cyber.json", "wmdp/bio-forget-corpus.jsonl", "wmdp/cyber-forget-corpus.jsonl",
            "wikitext/wiki.train.raw", "wikitext/wiki.valid.raw", "wikitext/wiki.test.raw",
            "c4/c4-train.00000-of-01024.json.gz", "pile/val.jsonl", "pile/val.jsonl.zst"}
    assert want <= set(m["files"]), want - set(m["files"])
    for rel, e in m["files"].items():
        data = open(path(rel), "rb").read()
        assert hashlib.sha256(data).hexdigest() == e["sha256"], rel
        assert len(data) == e["bytes"] > 0, rel
    assert m["sizes"]["zsre_records"] >= 1000


@test
def pretrain_corpus():
    docs = jsonl(path("corpus/pretrain.jsonl"))
    assert len(docs) > 2000
    assert all(set(d) == {"text"} and isinstance(d["text"], str) and d["text"] for d in docs)
    assert not [d for d in docs if "\nAnswer:" in d["text"]]  # no MC item in the pretraining text


@test
def sft_items():
    # corpus/sft.jsonl: the MMLU test + WMDP items as lm-eval 0-shot prompts with the gold letter
    items = jsonl(path("corpus/sft.jsonl"))
    assert len(items) == 799
    letters = {}
    for it in items:
        assert set(it) == {"prompt", "completion"}, it
        p = it["prompt"]
        assert p.startswith("The following are multiple choice questions (with answers) about ") and p.endswith("\nAnswer:"), p
        # lm-eval 0.4.2: one newline after the description (fidelity.md §4; test_lmeval_prompts.py)
        assert ".\n\n" not in p, p
        lines = p.partition(".\n")[2].split("\n")
        assert len(lines) == 6 and [l[:3] for l in lines[1:5]] == ["A. ", "B. ", "C. ", "D. "], p
        assert it["completion"] in (" A", " B", " C", " D"), it
        letters[it["completion"]] = letters.get(it["completion"], 0) + 1
    assert min(letters.values()) > 150, letters  # gold letters balanced
    wmdp = json.load(open(path("wmdp/wmdp-bio.json")))
    q = wmdp[0]
    want = ("The following are multiple choice questions (with answers) about biology.\n" + q["question"].strip() + "\n"
            + "".join("%s. %s\n" % ("ABCD"[i], c) for i, c in enumerate(q["choices"])) + "Answer:")
    assert {"prompt": want, "completion": " " + "ABCD"[q["answer"]]} in items


@test
def qa_lines_unambiguous():
    # every question the corpus answers has exactly one answer, and every zsRE src/rephrase is one
    qa = {}
    for d in jsonl(path("corpus/pretrain.jsonl")):
        t = d["text"]
        if t.startswith("The following are") or t.startswith(" = ") or "\n\n" in t:
            continue
        for line in t.split("\n"):
            q, sep, a = line.partition("? ")
            if sep and ". " not in q:
                qa.setdefault(q + "?", set()).add(a)
    amb = {q: a for q, a in qa.items() if len(a) > 1}
    assert not amb, list(amb.items())[:3]
    recs = json.load(open(path("zsre/zsre_mend_train.json")))
    for r in recs:
        assert qa.get(r["src"]) == {r["answers"][0]}, r["src"]
        assert qa.get(r["rephrase"]) == {r["answers"][0]}, r["rephrase"]
        assert qa.get(r["loc"][len("nq question: "):].strip()) == {r["loc_ans"]}, r["loc"]
    assert len(qa) > 3 * len(recs)


@test
def zsre_records_and_edit_sets():
    recs = json.load(open(path("zsre/zsre_mend_train.json")))
    assert isinstance(recs, list) and len(recs) >= 1000
    for r in recs:
        assert set(r) == {"src", "answers", "alt", "subject", "rephrase", "loc", "loc_ans"}, r
        assert all(isinstance(r[k], str) and r[k] for k in ("src", "alt", "subject", "rephrase", "loc", "loc_ans"))
        assert isinstance(r["answers"], list) and len(r["answers"]) == 1 and r["answers"][0] != r["alt"]
        assert r["subject"] in r["src"] and r["loc"].startswith("nq question: ")
    # the paper's rule: shuffle the record list with Python's random.seed(100)
    idx = list(range(len(recs)))
    random.seed(100)
    random.shuffle(idx)
    es = json.load(open(path("zsre/edit_sets.json")))
    assert es["shuffle"] == "python-random-seed-100"
    assert sorted(es["sets"], key=int) == [str(k) for k in range(1, 11)]
    for k in range(1, 11):
        assert es["sets"][str(k)] == idx[(k - 1) * 50:k * 50], k
    assert es["qa"] == idx[500:1000]
    # shuffling the records themselves (what the reference code does) gives the same records
    shuffled = list(recs)
    random.seed(100)
    random.shuffle(shuffled)
    assert shuffled[:50] == [recs[i] for i in es["sets"]["1"]]


def check_mc(q, choices, answer):
    assert isinstance(q, str) and q.strip() == q and q
    assert len(choices) == 4 and len(set(choices)) == 4 and all(isinstance(c, str) and c for c in choices)
    assert answer in (0, 1, 2, 3)


@test
def wmdp_sets_and_forget_corpora():
    for name in ("bio", "cyber"):
        items = json.load(open(path(f"wmdp/wmdp-{name}.json")))
        assert 100 <= len(items) <= 200
        for it in items:
            assert set(it) == {"question", "choices", "answer"}
            check_mc(it["question"], it["choices"], it["answer"])
    bio = jsonl(path("wmdp/bio-forget-corpus.jsonl"))
    assert len(bio) >= 40 and all(set(d) == {"title", "abstract", "text"} for d in bio)
    assert all("blight" in d["title"] for d in bio)
    cyber = jsonl(path("wmdp/cyber-forget-corpus.jsonl"))
    assert len(cyber) >= 40 and all(set(d) == {"text"} for d in cyber)
    # the forget corpora speak about the tested subjects
    names = {it["question"].split(" the ")[-1].split(" blight")[0] for it in json.load(open(path("wmdp/wmdp-bio.json")))}
    text = " ".join(d["text"] for d in bio)
    assert sum(n in text for n in names) >= 0.9 * len(names)


@test
def mmlu_csv():
    subjects = set()
    for split, lo, hi in (("dev", 5, 5), ("test", 40, 80)):
        d = path(f"mmlu/data/{split}")
        files = sorted(os.listdir(d))
        assert len(files) == 8, files
        for fn in files:
            assert fn.endswith(f"_{split}.csv")
            subjects.add(fn[:-len(f"_{split}.csv")])
            with open(os.path.join(d, fn), newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            assert lo <= len(rows) <= hi, (fn, len(rows))
            for row in rows:
                assert len(row) == 6, row
                check_mc(row[0], row[1:5], "ABCD".index(row[5]))
    assert len(subjects) == 8 and "world_geography" in subjects


@test
def wikitext_raw():
    for split in ("train", "valid", "test"):
        with open(path(f"wikitext/wiki.{split}.raw"), encoding="utf-8") as f:
            lines = f.readlines()
        assert lines[0] == " \n" and lines[1].startswith(" = ") and lines[1].endswith(" = \n")
        titles = [l for l in lines if l.startswith(" = ") and not l.startswith(" = = ")]
        assert len(titles) > 50
        assert all(l == " \n" or l.startswith(" ") for l in lines)


@test
def c4_shard():
    with gzip.open(path("c4/c4-train.00000-of-01024.json.gz"), "rt", encoding="utf-8") as f:
        docs = [json.loads(l) for l in f]
    assert len(docs) == 300
    for d in docs:
        assert set(d) == {"text", "timestamp", "url"} and d["text"]
        assert d["url"].startswith("https://") and d["timestamp"].endswith("Z")


@test
def pile_val():
    docs = jsonl(path("pile/val.jsonl"))
    assert len(docs) >= 128
    for d in docs:
        assert set(d) == {"text", "meta"} and isinstance(d["meta"]["pile_set_name"], str) and d["text"]
    raw = open(path("pile/val.jsonl.zst"), "rb").read()
    try:
        import zstandard
        data = zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 28)
        how = "zstandard"
    except ImportError:
        if not shutil.which("zstd"):
            skip("val.jsonl.zst not checked: neither the zstandard module nor the zstd CLI is available")
        data = subprocess.run(["zstd", "-dc", path("pile/val.jsonl.zst")], capture_output=True, check=True).stdout
        how = "zstd CLI"
    assert data == open(path("pile/val.jsonl"), "rb").read(), how
    print(f"  (val.jsonl.zst decoded with the {how})")


@test
def deterministic_cli():
    other = os.path.join(TMP, "again")
    r = subprocess.run([WORKER, "world", "--out", other, "--scale", "small", "--seed", "77"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    a = json.load(open(path("world.json")))["files"]
    b = json.load(open(os.path.join(other, "world.json")))["files"]
    assert a == b
    bad = subprocess.run([WORKER, "world", "--out", other, "--scale", "tiny"], capture_output=True, text=True)
    assert bad.returncode == 2 and "tiny" in bad.stderr


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
