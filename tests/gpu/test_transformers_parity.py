"""test_transformers_parity.py - our CPU engine against Hugging Face transformers on random small
checkpoints, both ways. Meant for a machine with PyTorch and transformers (our GPU machine; no
network needed); everywhere else every test skips visibly ("ok - ... # SKIP no torch/transformers"),
so it is harmless in `make test`. How to run it on the device: tests/gpu/README.md.

transformers -> us: a random LlamaForCausalLM (GQA, rope_theta 500000, llama3 rope scaling; and one
  tied, MHA), MistralForCausalLM and Phi3ForCausalLM are built and saved by transformers
  (save_pretrained, safetensors, fp32); our engine loads each directory and runs all prompts as one
  right-padded batch; logits are compared with transformers' (each prompt alone, eager attention,
  fp32 on the CPU): max |ours - theirs| / max |theirs| < 1e-4 per prompt.
us -> transformers: a random model written by our checkpoint_save (Llama GQA tied in F32, Phi-3 fused
  and sharded in F32, Llama in BF16) loads in transformers with no missing, unexpected or mismatched
  tensor, and gives the same logits (same bound).

Our side is the tool mode of build/tests/worker/engine/test_reference_tool (or $CISWEEP_REF_TOOL).
"""
import json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import ROOT, test, main, skip  # noqa: E402

import numpy as np  # noqa: E402

try:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    HAVE = True
except Exception as e:  # noqa: BLE001  (any import failure means: not this machine)
    HAVE, WHY = False, f"{type(e).__name__}: {e}"

TOOL = os.environ.get("CISWEEP_REF_TOOL") or os.path.join(
    ROOT, os.environ.get("CISWEEP_BUILD", "build"), "tests", "worker", "engine", "test_reference_tool")
TMP = tempfile.mkdtemp(prefix="cis_hfparity_")
TOL = 1e-4
LENS = (1, 7, 33, 90)


def need_torch():
    if not HAVE:
        skip("no torch/transformers")
    if not os.path.exists(TOOL):
        raise AssertionError(f"{TOOL} is missing: build it with `make tests-build` (and ship it, see tests/gpu/README.md)")
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))


def sequences(V, seed, lens=LENS):
    rng = np.random.default_rng(seed)
    return [list(map(int, rng.integers(0, V, size=n))) for n in lens]


def ours(d, seqs):
    """our logits per sequence (float64 [len, V]) from one right-padded batch"""
    p = subprocess.run([TOOL, "logits", d, "-t", "4"] + [",".join(map(str, s)) for s in seqs],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise AssertionError(f"our engine failed on {d}: {p.stderr}")
    rows = {}
    for line in p.stdout.splitlines():
        f = line.split()
        rows[(int(f[0]), int(f[1]))] = np.array(f[2:], dtype=np.float64)
    return [np.stack([rows[(b, t)] for t in range(len(s))]) for b, s in enumerate(seqs)]


def theirs(model, seqs):
    """transformers' logits per sequence, each run alone (no padding), fp32 on the CPU"""
    out = []
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor([s], dtype=torch.long)
            out.append(model(input_ids=ids).logits[0].double().numpy())
    return out


def compare(name, got, want):
    worst = 0.0
    for g, w in zip(got, want):
        assert g.shape == w.shape, (name, g.shape, w.shape)
        assert np.max(np.abs(w)) > 0, f"{name}: all-zero logits"
        e = float(np.max(np.abs(g - w)) / np.max(np.abs(w)))
        worst = max(worst, e)
        assert e < TOL, f"{name}: prompt of length {g.shape[0]}: relative error {e:.3g} >= {TOL}"
    print(f"# {name}: worst relative error {worst:.3g} (transformers {transformers.__version__}, "
          f"torch {torch.__version__})", flush=True)


def randomize(model, seed):
    """weights at scales that keep logits O(1) (HF's 0.02 init gives near-uniform outputs), norms
    around 1, so every weight matters"""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                scale = 0.3 if any(k in name for k in ("q_proj", "k_proj", "qkv_proj")) else 1 / p.shape[1] ** 0.5
                p.copy_(torch.randn(p.shape, generator=g) * scale)


def hf_model(cls_name, seed, **cfg):
    cls = getattr(transformers, cls_name)
    conf_cls = getattr(transformers, cls_name.replace("ForCausalLM", "Config"))
    conf = conf_cls(**cfg)
    conf._attn_implementation = "eager"
    model = cls(conf).float().eval()
    randomize(model, seed)
    if getattr(conf, "tie_word_embeddings", False):
        model.tie_weights()
    return model


def save_hf(model, name):
    d = os.path.join(TMP, name)
    model.save_pretrained(d, safe_serialization=True)
    assert os.path.exists(os.path.join(d, "model.safetensors")) or \
        os.path.exists(os.path.join(d, "model.safetensors.index.json")), os.listdir(d)
    return d


def load_hf(d):
    model, info = AutoModelForCausalLM.from_pretrained(d, output_loading_info=True, attn_implementation="eager")
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    assert not bad, f"{d}: transformers reports {bad}"
    return model.float().eval()


BASE = dict(vocab_size=211, hidden_size=64, intermediate_size=112, num_hidden_layers=3,
            num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5,
            bos_token_id=1, eos_token_id=2, hidden_act="silu")


# ------------------------------------------------------------------ transformers -> us

@test
def hf_llama_gqa_llama3_to_ours():
    need_torch()
    cfg = dict(BASE, rope_theta=500000.0, tie_word_embeddings=False,
               rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 32})
    model = hf_model("LlamaForCausalLM", 1, **cfg)
    d = save_hf(model, "hf_llama_gqa")
    saved = json.load(open(os.path.join(d, "config.json")))
    print("# saved config keys:", sorted(saved), flush=True)
    assert '"llama3"' in json.dumps(saved), f"transformers did not keep the llama3 rope scaling: {saved}"
    seqs = sequences(cfg["vocab_size"], 1)
    compare("hf llama gqa llama3", ours(d, seqs), theirs(model, seqs))


@test
def hf_llama_tied_mha_to_ours():
    need_torch()
    cfg = dict(BASE, num_key_value_heads=8, rope_theta=10000.0, tie_word_embeddings=True)
    model = hf_model("LlamaForCausalLM", 2, **cfg)
    d = save_hf(model, "hf_llama_tied")
    seqs = sequences(cfg["vocab_size"], 2)
    compare("hf llama tied", ours(d, seqs), theirs(model, seqs))


@test
def hf_mistral_to_ours():
    need_torch()
    cfg = dict(BASE, head_dim=16, rope_theta=1000000.0, sliding_window=4096, tie_word_embeddings=False)
    model = hf_model("MistralForCausalLM", 3, **cfg)
    d = save_hf(model, "hf_mistral")
    seqs = sequences(cfg["vocab_size"], 3)
    compare("hf mistral", ours(d, seqs), theirs(model, seqs))


@test
def hf_phi3_to_ours():
    need_torch()
    cfg = dict(BASE, rope_theta=10000.0, original_max_position_embeddings=128, sliding_window=None,
               pad_token_id=0, tie_word_embeddings=False)
    model = hf_model("Phi3ForCausalLM", 4, **cfg)
    d = save_hf(model, "hf_phi3")
    from safetensors.numpy import load_file
    assert any(k.endswith("qkv_proj.weight") for k in load_file(os.path.join(d, "model.safetensors")))
    seqs = sequences(cfg["vocab_size"], 4)
    compare("hf phi3", ours(d, seqs), theirs(model, seqs))


# ------------------------------------------------------------------ us -> transformers

def our_config(arch, **kw):
    c = {"architectures": [arch + "ForCausalLM"], "model_type": arch.lower(), "vocab_size": 199,
         "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "max_position_embeddings": 128, "rms_norm_eps": 1e-05,
         "rope_theta": 500000.0, "tie_word_embeddings": False, "hidden_act": "silu", "bos_token_id": 1,
         "eos_token_id": 2, "torch_dtype": "float32"}
    c.update(kw)
    return c


def ours_to_hf(name, cfg, seed, dtype="F32", shard=0):
    src = os.path.join(TMP, name + ".config.json")
    with open(src, "w") as f:
        json.dump(cfg, f)
    d = os.path.join(TMP, name)
    args = [TOOL, "init-save", src, d, str(seed), dtype] + ([str(shard)] if shard else [])
    p = subprocess.run(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    model = load_hf(d)
    seqs = sequences(cfg["vocab_size"], seed)
    compare(name, ours(d, seqs), theirs(model, seqs))
    return d


@test
def ours_llama_tied_to_hf():
    need_torch()
    ours_to_hf("ours_llama_tied", our_config("Llama", tie_word_embeddings=True,
                                             rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                           "original_max_position_embeddings": 32}), 11)


@test
def ours_phi3_sharded_to_hf():
    need_torch()
    d = ours_to_hf("ours_phi3", our_config("Phi3", rope_theta=10000.0, original_max_position_embeddings=128,
                                           pad_token_id=0), 12, shard=60000)
    assert os.path.exists(os.path.join(d, "model.safetensors.index.json"))


@test
def ours_llama_bf16_to_hf():
    need_torch()
    ours_to_hf("ours_llama_bf16", our_config("Llama", torch_dtype="bfloat16"), 13, dtype="BF16")


if __name__ == "__main__":
    if not HAVE:
        print(f"# torch/transformers not importable here ({WHY})", flush=True)
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
