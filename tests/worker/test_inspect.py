"""test_inspect.py - `cisweep inspect MODEL_DIR`: the printed fields, and the top-K next tokens
against the NumPy float64 reference forward of tests/worker/engine/test_reference.py.

Fixtures are built here: a random tiny Llama (GQA, llama3 RoPE scaling, fp32) with a byte-level BPE
tokenizer.json trained with the `tokenizers` package (BOS through TemplateProcessing); a sharded
bf16 Mistral without a tokenizer; and broken directories (exit status 2, a message naming what is
wrong).
"""
import json, os, re, shutil, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "engine"))
import harness  # noqa: E402
from harness import CISWEEP, test, main, run  # noqa: E402

import numpy as np  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

# the reference model and fixture writers; importing registers its tests, which are not ours to run
import test_reference as ref  # noqa: E402
harness._tests.clear()

TMP = tempfile.mkdtemp(prefix="cis_inspect_")
shutil.rmtree(ref.TMP, ignore_errors=True)
ref.TMP = TMP   # ref.write_dir writes model directories here
TEXTS = ["The capital of France is Paris.", "The capital of Italy is Rome, and the capital of Spain is Madrid.",
         "Numbers 12 345 6789, punctuation!? and spaces   here.", "the cat sat on the mat; the dog did not."] * 20


def train_tokenizer(d):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TEXTS, tr)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}, f)
    return tok


def inspect(*args, rc=0):
    if not os.path.exists(CISWEEP):
        raise AssertionError(f"{CISWEEP} is not built (make)")
    p = run([CISWEEP, "inspect", *map(str, args)], check=False)
    if p.returncode != rc:
        raise AssertionError(f"inspect {args}: exit {p.returncode} (wanted {rc})\n{p.stdout}\n{p.stderr}")
    return p


def fields(out):
    f = {}
    for line in out.splitlines():
        m = re.match(r"^([a-z_0-9]+): ?(.*)$", line)
        if m:
            f[m.group(1)] = m.group(2)
    return f


def top_rows(out):
    return [(int(m.group(1)), int(m.group(2)), float(m.group(3)))
            for m in re.finditer(r"^\s+(\d+)\. id (\d+) p=([0-9.eE+-]+) ", out, re.M)]


def llama_dir():
    d = os.path.join(TMP, "llama")
    os.makedirs(d, exist_ok=True)
    tok = train_tokenizer(d)
    V = tok.get_vocab_size()
    c = ref.config("llama", vocab_size=V, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                   intermediate_size=96, rope_theta=500000.0, eos_token_id=[2],
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
    p = ref.random_params(c, 21)
    ref.write_dir("llama", c, p)   # keeps the tokenizer files beside (write_dir recreates the folder)
    train_tokenizer(d)
    return d, c, p, Tokenizer.from_file(os.path.join(d, "tokenizer.json"))


@test
def inspect_llama_fields_and_top_tokens():
    d, c, p, tok = llama_dir()
    prompt = "The capital of"
    out = inspect(d, "--prompt", prompt, "--top", 7, "--threads", 2).stdout
    f = fields(out)
    want = {"architecture": "LlamaForCausalLM", "model_type": "llama", "layers": "2", "hidden_size": "64",
            "attention_heads": "4", "head_dim": "16", "vocab_size": str(c["vocab_size"]),
            "intermediate_size": "96", "tie_word_embeddings": "false", "rope_theta": "500000",
            "dtypes_on_disk": "F32=" + str(len(p)), "files": "model.safetensors", "tokenizer": "byte_level_bpe",
            "bos_token_id": "1", "eos_token_id": "2", "torch_dtype": "float32"}
    for k, v in want.items():
        assert f.get(k) == v, (k, f.get(k), v, out)
    assert f["kv_heads"].startswith("2 (grouped-query"), f["kv_heads"]
    assert f["rope_scaling"].startswith("llama3 (factor 8,") and "original_max_position_embeddings 64" in f["rope_scaling"]
    nparams = sum(v.size for v in p.values())
    assert f["parameters"].split()[0] == str(nparams), (f["parameters"], nparams)
    assert f["tokenizer_vocab_size"] == str(tok.get_vocab_size())
    assert f["tokenizer_bos"] == '1 "<s>"' and f["tokenizer_eos"] == '2 "</s>"', (f["tokenizer_bos"], f["tokenizer_eos"])
    ids = tok.encode(prompt).ids
    assert ids[0] == 1 and len(ids) > 2
    assert f["prompt_ids"].split() == [str(i) for i in ids], (f["prompt_ids"], ids)
    # the top-7 against the reference's softmax of the last position
    logits = ref.ref_forward(c, p, ids)[-1]
    pr = np.exp(logits - logits.max())
    pr /= pr.sum()
    order = sorted(range(len(pr)), key=lambda i: (-pr[i], i))[:7]
    rows = top_rows(out)
    assert [r[0] for r in rows] == list(range(1, 8)), rows
    assert [r[1] for r in rows] == order, ([r[1] for r in rows], order, pr[order])
    for _, i, q in rows:
        assert abs(q - pr[i]) < 2e-6 + 1e-5 * pr[i], (i, q, pr[i])
    assert rows[0][2] > 0.02, "degenerate fixture: flat distribution"
    # the printed token text is the tokenizers package's decoding of that id
    for _, i, _ in rows:
        m = re.search(rf'^\s+\d+\. id {i} p=\S+ logit=\S+ ("(?:[^"\\]|\\.)*")( \(token ("(?:[^"\\]|\\.)*")\))?$', out, re.M)
        text = tok.decode([i], skip_special_tokens=False)
        assert m and json.loads(m.group(1)) == text, (i, m and m.group(0), text)
        if "\ufffd" in text:   # a lone byte: the vocabulary string is shown too
            assert m.group(3) and json.loads(m.group(3)) == tok.id_to_token(i), m.group(0)


def sentencepiece_tokenizer(d):
    """a Mistral-style tokenizer.json: BPE over ▁-words (trained here), <0xAB> byte fallback, Metaspace"""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tok.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=200, limit_alphabet=60, show_progress=False))
    trained = json.loads(tok.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for t, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(t, len(vocab))
    sp = lambda i, c: {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,  # noqa: E731
                       "normalized": False, "special": True}
    ms = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    j = {"version": "1.0", "truncation": None, "padding": None, "normalizer": None,
         "added_tokens": [sp(0, "<unk>"), sp(1, "<s>"), sp(2, "</s>")], "pre_tokenizer": ms,
         "decoder": {"type": "Sequence", "decoders": [   # as Mistral's tokenizer.json
             {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
             {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
         "post_processor": {"type": "TemplateProcessing",
                            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
         "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                   "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                   "vocab": vocab, "merges": [m if isinstance(m, list) else m.split(" ") for m in trained["merges"]]}}
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(j, f, ensure_ascii=False)
    return Tokenizer.from_file(os.path.join(d, "tokenizer.json"))


@test
def inspect_sentencepiece_byte_fallback():
    probe = os.path.join(TMP, "probe_sp")
    os.makedirs(probe, exist_ok=True)
    V = sentencepiece_tokenizer(probe).get_vocab_size()
    c = ref.config("mistral", vocab_size=V, num_key_value_heads=2)
    p = ref.random_params(c, 26)
    d = ref.write_dir("mistral_sp", c, p)
    tok = sentencepiece_tokenizer(d)
    prompt = "The capital of \u00d6sterreich \u6771\u4eac"   # bytes outside the trained alphabet
    out = inspect(d, "--prompt", prompt, "--top", V).stdout
    f = fields(out)
    assert f["tokenizer"] == "sentencepiece_bpe" and f["tokenizer_vocab_size"] == str(V)
    ids = tok.encode(prompt).ids
    assert any(3 <= i < 259 for i in ids), "no byte-fallback token in the prompt"
    assert f["prompt_ids"].split() == [str(i) for i in ids], (f["prompt_ids"], ids)
    logits = ref.ref_forward(c, p, ids)[-1]
    pr = np.exp(logits - logits.max())
    pr /= pr.sum()
    rows = top_rows(out)
    assert len(rows) == V and sorted(r[1] for r in rows) == list(range(V))   # --top V lists every id once
    assert abs(sum(r[2] for r in rows) - 1) < 1e-4
    for _, i, q in rows:
        assert abs(q - pr[i]) < 2e-6 + 1e-5 * pr[i], (i, q, pr[i])
    # token texts as the package decodes them; a lone byte token (<0xC5>) decodes to U+FFFD and shows
    # its vocabulary string
    for i in (200, 1, ids[-1], rows[0][1]):
        m = re.search(rf'^\s+\d+\. id {i} p=\S+ logit=\S+ ("(?:[^"\\]|\\.)*")( \(token (".*")\))?$', out, re.M)
        text = tok.decode([i], skip_special_tokens=False)
        assert m and json.loads(m.group(1)) == text, (i, m and m.group(0), text)
        assert (m.group(3) is not None) == ("\ufffd" in text), m.group(0)
    assert tok.decode([200]) == "\ufffd" and re.search(r'id 200 .* "\ufffd" \(token "<0xC5>"\)$', out, re.M)


@test
def inspect_default_prompt_and_empty_prompt():
    d = os.path.join(TMP, "llama")
    if not os.path.exists(os.path.join(d, "tokenizer.json")):
        llama_dir()
    out = inspect(d).stdout
    f = fields(out)
    assert f["prompt"] == '"The capital of"' and len(top_rows(out)) == 10
    # an empty prompt is just BOS: still one position to predict from
    out = inspect(d, "--prompt", "", "--top", 3).stdout
    assert fields(out)["prompt_ids"].split() == ["1"] and len(top_rows(out)) == 3


@test
def inspect_sharded_bf16_without_tokenizer():
    c = ref.config("mistral", num_key_value_heads=2, tie_word_embeddings=True, torch_dtype="bfloat16")
    p = ref.random_params(c, 22)
    d = ref.write_dir("mistral", c, p, shards=2, bf16=True)
    out = inspect(d).stdout
    f = fields(out)
    assert f["architecture"] == "MistralForCausalLM" and f["model_type"] == "mistral"
    assert f["files"] == "2 shards (model.safetensors.index.json)" and f["dtypes_on_disk"] == f"BF16={len(p)}"
    assert f["tie_word_embeddings"] == "true" and f["kv_heads"].startswith("2")
    assert f["parameters"].split()[0] == str(sum(v.size for v in p.values()))   # no lm_head: tied
    assert f["sliding_window"] == "4096" and f["rope_scaling"] == "none"
    assert f["tokenizer"].startswith("none") and "top_" not in out


@test
def inspect_errors_exit_2():
    p = inspect(os.path.join(TMP, "missing"), rc=2)
    assert "not a directory" in p.stderr, p.stderr
    empty = os.path.join(TMP, "empty")
    os.makedirs(empty, exist_ok=True)
    p = inspect(empty, rc=2)
    assert "config.json" in p.stderr, p.stderr
    # config.json that is not JSON
    bad = os.path.join(TMP, "badcfg")
    os.makedirs(bad, exist_ok=True)
    with open(os.path.join(bad, "config.json"), "w") as f:
        f.write("{not json")
    p = inspect(bad, rc=2)
    assert "config.json" in p.stderr, p.stderr
    # a truncated model.safetensors
    c = ref.config("llama")
    d = ref.write_dir("trunc", c, ref.random_params(c, 23))
    st = os.path.join(d, "model.safetensors")
    with open(st, "r+b") as f:
        f.truncate(os.path.getsize(st) // 2)
    p = inspect(d, rc=2)
    assert "model.safetensors" in p.stderr, p.stderr
    # config.json disagreeing with the tensors' shapes
    d = ref.write_dir("shape", c, ref.random_params(c, 24))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(dict(c, intermediate_size=50), f)
    p = inspect(d, rc=2)
    assert "gate_proj" in p.stderr or "shape" in p.stderr, p.stderr
    # a tokenizer whose ids exceed the model's vocabulary
    d = ref.write_dir("smallvocab", dict(c, vocab_size=40), ref.random_params(dict(c, vocab_size=40), 25))
    train_tokenizer(d)
    p = inspect(d, "--prompt", "The capital of France", rc=2)
    assert "vocab_size" in p.stderr, p.stderr
    # bad options
    assert "--top" in inspect(d, "--top", "0", rc=2).stderr
    assert "unknown" in inspect(d, "--frobnicate", rc=2).stderr


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
