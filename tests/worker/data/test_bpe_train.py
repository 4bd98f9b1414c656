"""test_bpe_train.py - the tokenizer our BPE trainer writes is read by the Python `tokenizers`
package and encodes exactly like the engine's tokenizer (ids with and without the BOS rule,
decoding), over a synthetic fact corpus plus texts with digits, punctuation runs, whitespace runs,
contractions and non-ASCII text. Trains with `test_bpe_train train` (tool mode) and encodes with
`test_tokenizer encode` (the engine tokenizer's tool)."""
import json, os, random, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from harness import test, skip, main, ROOT  # noqa: E402

BUILD = os.path.join(ROOT, os.environ.get("CISWEEP_BUILD", "build"))
TRAIN = os.path.join(BUILD, "tests", "worker", "data", "test_bpe_train")
ENC = os.path.join(BUILD, "tests", "worker", "engine", "test_tokenizer")

NAMES = ["Veloria", "Marth", "Osk", "Tessa Quill", "Dunmere", "Kovari", "Lintel Bay", "Ardent Corp", "Yssa"]
RELS = ["is the capital of", "was born in", "works as a", "is located in", "was founded by", "speaks"]
FIXED = [
    "", " ", "A", " A", " B", " C", " D", "Answer: A", "Answer: D", "0123456789", "1234567 89",
    "The following are multiple choice questions (with answers) about biology.\n\nQ?\nA. a\nB. b\nC. c\nD. d\nAnswer:",
    "The following are multiple choice questions (with answers) about biology.\nQ?\nA. a\nB. b\nC. c\nD. d\nAnswer:",
    "it's they're we've I'm you'll he'd IT'S", "  two  spaces   three\t\ttabs\n\nnewlines \r\n",
    "...!!!??? --- ___", "naïve café 東京 😀 Ελληνικά", "<|begin_of_text|>hello<|end_of_text|>", "x<|pad|>y",
    "trailing   ", "\n", "nq question: who founded Ardent Corp?",
]


def corpus(rng, n=2500):
    out = []
    for _ in range(n):
        a, b = rng.choice(NAMES), rng.choice(NAMES)
        r = rng.choice(RELS)
        y = rng.randint(1000, 2100)
        form = rng.randrange(4)
        if form == 0:
            out.append(f"{a} {r} {b}.")
        elif form == 1:
            out.append(f"In {y}, {a} {r} {b}; it had {rng.randint(1, 99999)} people.")
        elif form == 2:
            out.append(f"Question: Who {r} {b}?\nAnswer: {a}")
        else:
            out.append(f"Q: {a}?\nA. {b}\nB. {a}\nC. {r}\nD. {y}\nAnswer: {rng.choice('ABCD')}")
    return out


def encode_c(d, texts, special):
    args = [ENC, "encode", d] + (["--special"] if special else [])
    p = subprocess.run(args, input=json.dumps(texts), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def train(d, lines, vocab):
    f = os.path.join(d, "lines.txt")
    with open(f, "w", encoding="utf-8") as fh:
        fh.write("\n".join(x.replace("\n", " ") for x in lines))
    out = os.path.join(d, "tok")
    p = subprocess.run([TRAIN, "train", f, out, str(vocab)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return out, json.loads(p.stdout)


@test
def parity_with_tokenizers():
    try:
        from tokenizers import Tokenizer
    except ImportError:
        skip("tokenizers not installed")
    if not (os.path.exists(TRAIN) and os.path.exists(ENC)):
        skip("build the tests first (make tests-build)")
    tmp = tempfile.mkdtemp()
    try:
        rng = random.Random(7)
        lines = corpus(rng)
        d, info = train(tmp, lines, 600)
        assert info["vocab_size"] == 600, info
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        assert tok.get_vocab_size(with_added_tokens=True) == 600
        texts = FIXED + corpus(random.Random(8), 400)
        for special in (False, True):
            c_ids = encode_c(d, texts, special)
            py_ids = [e.ids for e in tok.encode_batch(texts, add_special_tokens=special)]
            for t, a, b in zip(texts, c_ids, py_ids):
                assert a == b, f"{t!r}: C {a} vs tokenizers {b}"
        # BOS first with add_special_tokens, the letters single tokens, decode round trip
        bos = tok.token_to_id("<|begin_of_text|>")
        assert tok.encode("hi").ids[0] == bos
        for s in [" A", " B", " C", " D"] + list("0123456789"):
            assert len(tok.encode(s, add_special_tokens=False).ids) == 1, s
        for t in (x for x in texts if "<|" not in x):
            assert tok.decode(tok.encode(t).ids, skip_special_tokens=True) == t, t
        cfg = json.load(open(os.path.join(d, "tokenizer_config.json")))
        assert cfg["add_bos_token"] is True and cfg["eos_token"] == "<|end_of_text|>" and cfg["pad_token"] == "<|pad|>"
        # deterministic: training again gives the same file
        os.makedirs(os.path.join(tmp, "again"))
        d2, _ = train(os.path.join(tmp, "again"), lines, 600)
        assert open(os.path.join(d, "tokenizer.json"), "rb").read() == open(os.path.join(d2, "tokenizer.json"), "rb").read()
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
