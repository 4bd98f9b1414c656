"""test_checkpoint.py - peer parity of our safetensors reader/writer and checkpoint loader with the
`safetensors` Python package, on files and tiny model directories built here with NumPy.

Our side runs through the tool mode of build/tests/worker/engine/test_safetensors (see its file
comment): `write`, `read`, `ckpt-load`, `ckpt-save`. Fixtures: random tiny Llama (GQA, tied head,
llama3 RoPE scaling), Mistral (fp16, sharded through model.safetensors.index.json) and Phi-3
(fused qkv_proj / gate_up_proj, bf16) directories with config.json, plus broken variants.
"""
import json, os, shutil, struct, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from harness import ROOT, test, main, run  # noqa: E402

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
from safetensors.numpy import load_file, save_file  # noqa: E402

TOOL = os.path.join(ROOT, os.environ.get("CISWEEP_BUILD", "build"), "tests", "worker", "engine", "test_safetensors")
TMP = tempfile.mkdtemp(prefix="cis_ckpt_")


def tool(*args, ok=True):
    if not os.path.exists(TOOL):
        raise AssertionError(f"{TOOL} is not built (make tests-build)")
    p = run([TOOL, *map(str, args)], check=False)
    if ok and p.returncode != 0:
        raise AssertionError(f"{args} failed: {p.stderr}")
    if not ok and p.returncode == 0:
        raise AssertionError(f"{args} succeeded but should fail")
    return p


# ------------------------------------------------------------------ numeric references

def bf16_bits(x32):
    """float32 array -> bf16 bit patterns, round to nearest even (NaN stays NaN)."""
    u = np.ascontiguousarray(x32, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x32)
    r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def same_bits(a, b):
    """float32 arrays equal bit for bit, any NaN matching any NaN"""
    a = np.asarray(a, dtype=np.float32).ravel()
    b = np.asarray(b, dtype=np.float32).ravel()
    if a.shape != b.shape:
        return False
    na, nb = np.isnan(a), np.isnan(b)
    return bool(np.array_equal(na, nb) and np.array_equal(a[~na].view(np.uint32), b[~nb].view(np.uint32)))


def tool_values():
    """the 'values' tensor of `test_safetensors write` (same formula as tool_values in C)"""
    v = []
    for i in range(4000):
        h = ((i + 1) * 2654435761) % (1 << 32)
        scale = 8.0 ** (i % 13)
        v.append((h / 4294967296.0 - 0.5) * scale * 0.0009765625)
    v = np.array(v, dtype=np.float64).astype(np.float32)
    special = np.array([0x3F800000, 0xC0200000, 0x477FE000, 0x477FF000, 0x33800000, 0x33000000, 0x33C00000,
                        0x387FC000, 0x38800000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x80000000, 0x3F808000,
                        0x3F818000, 0x7F7FFFFF, 0x00000001, 0x00018000, 0x3F801000, 0x3F803000],
                       dtype=np.uint32).view(np.float32)
    return np.concatenate([v, special])


def package_read(path):
    """every tensor of a file through the package: name -> (dtype, shape, float32 values, raw bytes)"""
    with open(path, "rb") as f:
        items = safetensors.deserialize(f.read())
    out = {}
    for name, d in items:
        raw = bytes(d["data"])
        dt = d["dtype"]
        if dt == "F32":
            x = np.frombuffer(raw, dtype="<f4")
        elif dt == "F16":
            x = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dt == "BF16":
            x = bf16_to_f32(np.frombuffer(raw, dtype="<u2"))
        else:
            raise AssertionError(f"{path}: unexpected dtype {dt}")
        out[name] = (dt, list(d["shape"]), x.reshape(d["shape"]), raw)
    return out


def bf16_spec(bits, shape):
    return safetensors.TensorSpec(dtype="bfloat16", shape=list(shape), data_ptr=bits.ctypes.data,
                                  data_len=bits.nbytes)


# ------------------------------------------------------------------ writer / reader parity

@test
def writer_read_by_package():
    want = tool_values()
    m = (np.arange(12, dtype=np.float32) - 5.5).reshape(3, 4)
    for dt in ("F32", "F16", "BF16"):
        p = os.path.join(TMP, f"ours_{dt}.safetensors")
        tool("write", p, dt)
        got = package_read(p)
        assert set(got) == {"values", "matrix.weight", "scalar", "empty"}, got.keys()
        assert got["values"][0] == dt and got["values"][1] == [len(want)]
        assert got["scalar"][1] == [] and got["empty"][1] == [0, 4] and got["matrix.weight"][1] == [3, 4]
        if dt == "F32":
            ref = want
            assert same_bits(got["values"][2], ref)
        elif dt == "F16":
            with np.errstate(over="ignore"):
                ref16 = want.astype(np.float16)  # NumPy rounds to nearest even
            assert same_bits(got["values"][2], ref16.astype(np.float32)), "fp16 rounding differs from NumPy"
        else:
            refb = bf16_bits(want)
            gotb = np.frombuffer(got["values"][3], dtype="<u2")
            nan = np.isnan(want)
            assert np.array_equal(gotb[~nan], refb[~nan]), "bf16 rounding differs from the RNE reference"
            assert np.all(np.isnan(bf16_to_f32(gotb[nan])))
        assert same_bits(got["matrix.weight"][2], m)
        assert float(got["scalar"][2]) == 3.25
        assert_same_bytes_as_package(p, got)
    # one dtype per tensor: the package's ordering (F32, then BF16, then F16; then by name)
    p = os.path.join(TMP, "ours_mixed.safetensors")
    tool("write", p, "MIXED")
    got = package_read(p)
    assert [got[k][0] for k in ("values", "matrix.weight", "scalar", "empty")] == ["F16", "BF16", "F32", "BF16"]
    assert same_bits(got["matrix.weight"][2], m) and float(got["scalar"][2]) == 3.25
    assert_same_bytes_as_package(p, got)


def assert_same_bytes_as_package(path, got):
    """the file is byte-identical to what the package writes for the same tensors"""
    names = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
    keep = {k: np.frombuffer(v[3], dtype=np.uint8).copy() for k, v in got.items()}
    specs = {k: safetensors.TensorSpec(dtype=names[v[0]], shape=v[1], data_ptr=keep[k].ctypes.data,
                                       data_len=keep[k].nbytes) for k, v in got.items()}
    theirs = bytes(safetensors.serialize(specs, metadata={"format": "pt"}))
    with open(path, "rb") as f:
        ours = f.read()
    assert ours == theirs, f"{path}: our file differs from the package's bytes\n{ours[:200]}\n{theirs[:200]}"


def tool_read(path, name):
    out = tool("read", path, name).stdout.split("\n")
    head = out[0].split()
    bits = np.array([int(x, 16) for x in out[1:] if x], dtype=np.uint32)
    return head[0], [int(x) for x in head[1:]], bits.view(np.float32)


@test
def package_files_read_by_us():
    rng = np.random.default_rng(1)
    a32 = (rng.standard_normal((5, 7)) * 3).astype(np.float32)
    a32[0, :4] = [np.inf, -np.inf, np.nan, 0.0]
    a16 = np.concatenate([rng.standard_normal(50).astype(np.float16),
                          np.array([65504, -65504, 6e-8, 6.1e-5, np.inf, -0.0], dtype=np.float16)])
    b = rng.standard_normal((3, 4)).astype(np.float32)
    bbits = bf16_bits(b)
    p = os.path.join(TMP, "theirs.safetensors")
    save_file({"w.f32": a32, "w.f16": a16, "one": np.array(7.5, dtype=np.float32)}, p, metadata={"format": "pt"})
    dt, shape, x = tool_read(p, "w.f32")
    assert dt == "F32" and shape == [5, 7] and same_bits(x, a32)
    dt, shape, x = tool_read(p, "w.f16")
    assert dt == "F16" and shape == [56] and same_bits(x, a16.astype(np.float32))
    dt, shape, x = tool_read(p, "one")
    assert shape == [] and x[0] == 7.5
    pb = os.path.join(TMP, "theirs_bf16.safetensors")
    safetensors.serialize_file({"w.bf16": bf16_spec(bbits, b.shape)}, pb, metadata={"format": "pt"})
    dt, shape, x = tool_read(pb, "w.bf16")
    assert dt == "BF16" and shape == [3, 4] and same_bits(x, bf16_to_f32(bbits))


@test
def package_rejects_what_we_reject_and_we_name_it():
    # a file whose header lies about a tensor's size: both sides refuse it
    hdr = json.dumps({"lie": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    p = os.path.join(TMP, "lie.safetensors")
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)) + hdr + bytes(8))
    try:
        load_file(p)
        raise AssertionError("package accepted a lying header")
    except AssertionError:
        raise
    except Exception:
        pass
    e = tool("read", p, "lie", ok=False).stderr
    assert "'lie'" in e and "needs 16" in e, e


# ------------------------------------------------------------------ model fixtures

def cfg_llama(**kw):
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 53, "hidden_size": 16,
         "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "max_position_embeddings": 128, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
         "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 64},
         "tie_word_embeddings": True, "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
         "bos_token_id": 1, "eos_token_id": [2, 3], "torch_dtype": "float32"}
    c.update(kw)
    return c


def cfg_mistral(**kw):
    c = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "vocab_size": 61, "hidden_size": 24,
         "intermediate_size": 40, "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 2,
         "max_position_embeddings": 256, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
         "tie_word_embeddings": False, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2,
         "torch_dtype": "float16"}
    c.update(kw)
    return c


def cfg_phi3(**kw):
    c = {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "vocab_size": 47, "hidden_size": 32,
         "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "max_position_embeddings": 64, "original_max_position_embeddings": 64, "rms_norm_eps": 1e-05,
         "rope_theta": 10000.0, "rope_scaling": None, "sliding_window": 63, "tie_word_embeddings": False,
         "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 32000, "pad_token_id": 0,
         "torch_dtype": "bfloat16"}
    c.update(kw)
    return c


def llama_params(c, rng):
    """Hugging Face names -> float32 arrays in nn.Linear [out, in] layout"""
    V, D, F, L = c["vocab_size"], c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    H, Hkv = c["num_attention_heads"], c["num_key_value_heads"]
    Dh = c.get("head_dim") or D // H
    r = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    p = {"model.embed_tokens.weight": r(V, D), "model.norm.weight": r(D)}
    for i in range(L):
        pre = f"model.layers.{i}."
        p[pre + "input_layernorm.weight"] = r(D)
        p[pre + "post_attention_layernorm.weight"] = r(D)
        p[pre + "self_attn.q_proj.weight"] = r(H * Dh, D)
        p[pre + "self_attn.k_proj.weight"] = r(Hkv * Dh, D)
        p[pre + "self_attn.v_proj.weight"] = r(Hkv * Dh, D)
        p[pre + "self_attn.o_proj.weight"] = r(D, H * Dh)
        p[pre + "mlp.gate_proj.weight"] = r(F, D)
        p[pre + "mlp.up_proj.weight"] = r(F, D)
        p[pre + "mlp.down_proj.weight"] = r(D, F)
    if not c["tie_word_embeddings"]:
        p["lm_head.weight"] = r(V, D)
    return p


def fuse_phi3(p, L):
    """the Phi-3 on-disk layout of a Llama parameter dict"""
    out = dict(p)
    for i in range(L):
        pre = f"model.layers.{i}."
        out[pre + "self_attn.qkv_proj.weight"] = np.concatenate(
            [out.pop(pre + f"self_attn.{w}_proj.weight") for w in "qkv"], axis=0)
        out[pre + "mlp.gate_up_proj.weight"] = np.concatenate(
            [out.pop(pre + "mlp.gate_proj.weight"), out.pop(pre + "mlp.up_proj.weight")], axis=0)
    return out


def write_dir(name, cfg, tensors, shards=1, dtype="F32"):
    """a model directory: config.json and tensors as one file or `shards` files + index"""
    d = os.path.join(TMP, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    names = list(tensors)
    groups = [names[i::shards] for i in range(shards)]

    def put(path, keys):
        if dtype == "BF16":
            keep = {k: bf16_bits(tensors[k]) for k in keys}
            specs = {k: bf16_spec(keep[k], tensors[k].shape) for k in keys}
            safetensors.serialize_file(specs, path, metadata={"format": "pt"})
        else:
            npdt = np.float16 if dtype == "F16" else np.float32
            save_file({k: tensors[k].astype(npdt) for k in keys}, path, metadata={"format": "pt"})

    if shards == 1:
        put(os.path.join(d, "model.safetensors"), names)
    else:
        wm, total = {}, 0
        for j, g in enumerate(groups):
            fn = f"model-{j + 1:05d}-of-{shards:05d}.safetensors"
            put(os.path.join(d, fn), g)
            for k in g:
                wm[k] = fn
                total += tensors[k].size * (4 if dtype == "F32" else 2)
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2)
    return d


def rounded(x, dtype):
    if dtype == "F16":
        return x.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return bf16_to_f32(bf16_bits(x))
    return x


def load_ours(d):
    out = os.path.join(TMP, os.path.basename(d) + ".loaded.safetensors")
    tool("ckpt-load", d, out)
    return load_file(out)


def compare(ours, params, dtype):
    assert set(ours) == set(params), (sorted(set(ours) ^ set(params)))
    for k, v in params.items():
        assert ours[k].shape == v.shape, (k, ours[k].shape, v.shape)
        assert same_bits(ours[k], rounded(v, dtype)), f"{k} differs"


@test
def fixture_llama_gqa_tied_llama3_rope():
    c = cfg_llama()
    p = llama_params(c, np.random.default_rng(10))
    assert "lm_head.weight" not in p
    disk = dict(p)
    disk["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.ones(2, dtype=np.float32)  # old exports carry it
    d = write_dir("llama_tied", c, disk)
    compare(load_ours(d), p, "F32")
    # a tied checkpoint that also stores lm_head (equal to the embedding) loads too
    disk["lm_head.weight"] = p["model.embed_tokens.weight"].copy()
    d = write_dir("llama_tied_head", c, disk)
    compare(load_ours(d), p, "F32")
    disk["lm_head.weight"][0, 0] += 1
    d = write_dir("llama_tied_head_bad", c, disk)
    e = tool("ckpt-load", d, os.path.join(TMP, "x.safetensors"), ok=False).stderr
    assert "lm_head.weight" in e and "tie_word_embeddings" in e, e


@test
def fixture_llama_untied_bf16():
    c = cfg_llama(tie_word_embeddings=False, rope_scaling=None, num_key_value_heads=4, torch_dtype="bfloat16")
    p = llama_params(c, np.random.default_rng(11))
    d = write_dir("llama_bf16", c, p, dtype="BF16")
    compare(load_ours(d), p, "BF16")


@test
def fixture_mistral_sharded_f16():
    c = cfg_mistral()
    p = llama_params(c, np.random.default_rng(12))
    d = write_dir("mistral_sharded", c, p, shards=3, dtype="F16")
    compare(load_ours(d), p, "F16")


@test
def fixture_phi3_fused_bf16():
    c = cfg_phi3()
    p = llama_params(c, np.random.default_rng(13))
    d = write_dir("phi3", c, fuse_phi3(p, c["num_hidden_layers"]), dtype="BF16")
    compare(load_ours(d), p, "BF16")  # split back into q/k/v and gate/up by rows


@test
def save_read_by_package():
    # Phi-3: load (bf16, fused) and save sharded bf16; the package reads the fused tensors back
    c = cfg_phi3()
    p = llama_params(c, np.random.default_rng(14))
    fused = fuse_phi3(p, c["num_hidden_layers"])
    src = write_dir("phi3_src", c, fused, dtype="BF16")
    out = os.path.join(TMP, "phi3_saved")
    tool("ckpt-save", src, out, "BF16", 6000)
    idx = json.load(open(os.path.join(out, "model.safetensors.index.json")))
    files = sorted(set(idx["weight_map"].values()))
    assert len(files) >= 2 and all(f.endswith(f"-of-{len(files):05d}.safetensors") for f in files), files
    assert not os.path.exists(os.path.join(out, "model.safetensors"))
    seen, total = {}, 0
    for fn in files:
        for k, (dt, shape, x, raw) in package_read(os.path.join(out, fn)).items():
            assert dt == "BF16" and idx["weight_map"][k] == fn
            seen[k] = x
            total += len(raw)
    assert idx["metadata"]["total_size"] == total
    assert set(seen) == set(fused), sorted(set(seen) ^ set(fused))
    for k, v in fused.items():
        assert same_bits(seen[k], rounded(v, "BF16")), k
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["architectures"] == ["Phi3ForCausalLM"] and cfg["model_type"] == "phi3"
    assert cfg["torch_dtype"] == "bfloat16" and cfg["sliding_window"] == 63 and cfg["pad_token_id"] == 0
    for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "rms_norm_eps", "rope_theta", "eos_token_id"):
        assert cfg[k] == c[k], (k, cfg[k], c[k])
    compare(load_ours(out), p, "BF16")  # and we read our own output

    # Llama tied, fp32, one file: no lm_head written, values exact, llama3 rope kept
    c = cfg_llama()
    p = llama_params(c, np.random.default_rng(15))
    src = write_dir("llama_src", c, p)
    out = os.path.join(TMP, "llama_saved")
    tool("ckpt-save", src, out, "F32", 0)
    got = load_file(os.path.join(out, "model.safetensors"))
    assert set(got) == set(p)
    for k in p:
        assert same_bits(got[k], p[k]), k
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["rope_scaling"] == c["rope_scaling"] and cfg["tie_word_embeddings"] is True
    assert cfg["eos_token_id"] == [2, 3] and cfg["head_dim"] == 4 and cfg["rms_norm_eps"] == 1e-05


@test
def shapes_disagreeing_with_config_are_clear_errors():
    c = cfg_llama()
    p = llama_params(c, np.random.default_rng(16))
    bad = cfg_llama(intermediate_size=40)
    d = write_dir("llama_badshape", bad, p)
    e = tool("ckpt-load", d, os.path.join(TMP, "x.safetensors"), ok=False).stderr
    assert "model.layers.0.mlp.gate_proj.weight" in e and "[32, 16]" in e and "[40, 16]" in e, e
    assert "model.safetensors" in e and "config.json" in e, e
    d = write_dir("llama_badkv", cfg_llama(num_key_value_heads=4), p)
    e = tool("ckpt-load", d, os.path.join(TMP, "x.safetensors"), ok=False).stderr
    assert "model.layers.0.self_attn.k_proj.weight" in e and "[8, 16]" in e and "[16, 16]" in e, e
    # Phi-3: the fused tensor is named
    c = cfg_phi3()
    p = llama_params(c, np.random.default_rng(17))
    d = write_dir("phi3_bad", cfg_phi3(intermediate_size=40), fuse_phi3(p, 2))
    e = tool("ckpt-load", d, os.path.join(TMP, "x.safetensors"), ok=False).stderr
    assert "gate_up_proj" in e and "[96, 32]" in e and "[80, 32]" in e, e


@test
def broken_directories_are_clear_errors():
    c = cfg_mistral()
    p = llama_params(c, np.random.default_rng(18))
    x = os.path.join(TMP, "x.safetensors")
    # an unsupported dtype in one tensor
    d = write_dir("mistral_f64", c, p)
    t = dict(p)
    t["model.norm.weight"] = p["model.norm.weight"].astype(np.float64)
    save_file(t, os.path.join(d, "model.safetensors"))
    e = tool("ckpt-load", d, x, ok=False).stderr
    assert "model.norm.weight" in e and "unsupported dtype 'F64'" in e, e
    # a missing tensor
    t = dict(p)
    del t["model.layers.2.mlp.down_proj.weight"]
    d = write_dir("mistral_missing", c, t)
    e = tool("ckpt-load", d, x, ok=False).stderr
    assert "model.layers.2.mlp.down_proj.weight" in e and "missing" in e, e
    # an unexpected tensor
    t = dict(p)
    t["model.layers.0.self_attn.q_proj.bias"] = np.zeros(24, dtype=np.float32)
    d = write_dir("mistral_extra", c, t)
    e = tool("ckpt-load", d, x, ok=False).stderr
    assert "model.layers.0.self_attn.q_proj.bias" in e and "unexpected" in e, e
    # a truncated shard
    d = write_dir("mistral_trunc", c, p, shards=2)
    sh = os.path.join(d, "model-00002-of-00002.safetensors")
    data = open(sh, "rb").read()
    open(sh, "wb").write(data[: len(data) - 10])
    e = tool("ckpt-load", d, x, ok=False).stderr
    assert "model-00002-of-00002.safetensors" in e and "outside the data region" in e, e
    # an index naming a shard that is not there
    d = write_dir("mistral_noshard", c, p, shards=2)
    os.unlink(os.path.join(d, "model-00001-of-00002.safetensors"))
    e = tool("ckpt-load", d, x, ok=False).stderr
    assert "model-00001-of-00002.safetensors" in e and "does not exist" in e, e
    # a shard holding a tensor its index does not list under it
    d = write_dir("mistral_unlisted", c, p, shards=2)
    sh = os.path.join(d, "model-00001-of-00002.safetensors")
    t = load_file(sh)
    t["model.norm.weight"] = p["model.norm.weight"]  # listed under shard 2 (or not at all) in the index
    idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    save_file(t, sh, metadata={"format": "pt"})
    e = tool("ckpt-load", d, x, ok=False).stderr
    assert "model.norm.weight" in e and "model-00001-of-00002.safetensors" in e, e
    assert idx["weight_map"]["model.norm.weight"] == "model-00002-of-00002.safetensors"
    # options we do not implement
    for kw, needle in (({"rope_scaling": {"type": "yarn", "factor": 4.0}}, "yarn"),
                       ({"hidden_act": "gelu"}, "hidden_act"), ({"attention_bias": True}, "attention_bias"),
                       ({"architectures": ["GemmaForCausalLM"]}, "GemmaForCausalLM")):
        d = write_dir("mistral_opt", cfg_mistral(**kw), p)
        e = tool("ckpt-load", d, x, ok=False).stderr
        assert needle in e and "config.json" in e, e


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
