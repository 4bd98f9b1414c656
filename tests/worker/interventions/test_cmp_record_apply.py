"""test_cmp_record_apply.py - the compression record file through the command line: `cisweep apply`
writes it next to apply.json and references it (file, bytes, sha256) from the stage's record; a
reader of the documented format written here in NumPy (docs/compression.md "The compression record
file"), not the C one, decodes GPTQ's packed 4-bit codes and AWQ's 3-bit ones and dequantizes them
to the checkpoint's weights bit for bit, and Wanda's mask bits to the checkpoint's zeros; `cisweep
inspect FILE.cisrec --json` recomputes avg_bits equal to the stage record's (GPTQ) and to `cisweep
eval`'s (Wanda); `cisweep apply BASE --record FILE` re-applies GPTQ's, AWQ's and Wanda's records to the
base model and writes the stage's checkpoint byte for byte; a truncated or corrupted file makes
inspect exit 2 naming the file and the field."""
import hashlib, json, os, shutil, struct, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from harness import test, cleanup, main, run, CISWEEP, tiny_world_and_model  # noqa: E402

import numpy as np  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

STATE = {}


def setup():
    if "dir" not in STATE:
        d = tempfile.mkdtemp(prefix="cmp_record_")
        tiny_world_and_model(d, steps=2)
        STATE["dir"] = d
    return STATE["dir"]


def apply(stage, name):
    d = setup()
    out = os.path.join(d, name)
    p = run([CISWEEP, "apply", os.path.join(d, "model"), "--stage", json.dumps(stage), "--out", out,
             "--data", os.path.join(d, "world"), "--threads", "1"], check=False, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    st = json.load(open(os.path.join(out, "apply.json")))["stages"][0]
    return out, st


def read_record(path):
    """the documented format, decoded independently of cmp_record.c"""
    b = open(path, "rb").read()
    assert b[:8] == b"CISCREC\0"
    version, kind, bits, group, flags, nt = struct.unpack_from("<6I", b, 8)
    assert version == 1
    method = b[32:48].rstrip(b"\0").decode()
    assert b[-72:-64] == b"CISCEND\0" and b[-64:].decode() == hashlib.sha256(b[:-72]).hexdigest()
    off, tensors = 48, {}
    for _ in range(nt):
        (nl,) = struct.unpack_from("<I", b, off)
        name = b[off + 4:off + 4 + nl].decode()
        off += 4 + nl
        ndim, rows, cols, tflags, plen = struct.unpack_from("<IQQIQ", b, off)
        off += 4 + 8 + 8 + 4 + 8
        pay = b[off:off + plen]
        off += plen
        n = rows * cols
        if tflags & 2:
            tensors[name] = ("raw", np.frombuffer(pay, "<f4").reshape(cols if ndim == 1 else (rows, cols)))
        elif kind == 1:
            bitsarr = np.unpackbits(np.frombuffer(pay, np.uint8), bitorder="little")[:n]
            tensors[name] = ("mask", bitsarr.reshape(rows, cols).astype(bool))
        else:
            ng = -(-cols // group)
            cb = (n * bits + 7) // 8
            stream = np.unpackbits(np.frombuffer(pay[:cb], np.uint8), bitorder="little")[:n * bits]
            codes = (stream.reshape(n, bits).astype(np.uint32) << np.arange(bits, dtype=np.uint32)).sum(1)
            scale = np.frombuffer(pay[cb:cb + 4 * rows * ng], "<f4").reshape(rows, ng)
            zero = np.frombuffer(pay[cb + 4 * rows * ng:cb + 5 * rows * ng], np.uint8).reshape(rows, ng)
            perm = np.frombuffer(pay[cb + 5 * rows * ng:], "<i4") if tflags & 1 else None
            tensors[name] = ("quant", codes.reshape(rows, cols), scale, zero, perm)
    assert off == len(b) - 72
    return {"kind": kind, "bits": bits, "group": group, "method": method, "tensors": tensors}


def check_ref(out, st):
    ref = st["record"]["cmp_record"]
    path = os.path.join(out, ref["file"])
    assert os.path.abspath(ref["path"]) == os.path.abspath(path), ref
    data = open(path, "rb").read()
    assert len(data) == ref["bytes"] and hashlib.sha256(data).hexdigest() == ref["sha256"], ref
    assert ref["file"] == ref["sha256"] + ".cisrec", ref
    return path


def inspect_json(path):
    p = run([CISWEEP, "inspect", path, "--json"], timeout=120)
    return json.loads(p.stdout)


def quant_roundtrip(stage, name, bits):
    out, st = apply(stage, name)
    path = check_ref(out, st)
    rec = read_record(path)
    assert rec["kind"] == 2 and rec["bits"] == bits and rec["group"] == st["record"]["group"], rec["method"]
    w = load_file(os.path.join(out, "model.safetensors"))
    g = rec["group"]
    n_quant = 0
    for tname, t in rec["tensors"].items():
        if t[0] == "raw":
            assert np.array_equal(t[1].view(np.uint32), w[tname].astype(np.float32).view(np.uint32)), tname
            continue
        _, codes, scale, zero, perm = t
        assert codes.max() < 2 ** bits and zero.max() < 2 ** bits, tname
        cols = codes.shape[1]
        pos = np.empty(cols, np.int64)  # the (permuted) position of each column
        pos[perm if perm is not None else np.arange(cols)] = np.arange(cols)
        gi = pos // g
        deq = scale[:, gi] * (codes.astype(np.float32) - zero[:, gi].astype(np.float32))
        assert deq.dtype == np.float32
        assert np.array_equal(deq.view(np.uint32), w[tname].astype(np.float32).view(np.uint32)), tname
        n_quant += 1
    assert n_quant == 7 * sum(1 for k in w if k.endswith("self_attn.q_proj.weight")), n_quant
    s = inspect_json(path)
    assert abs(s["avg_bits"] - st["record"]["avg_bits"]) < 1e-12, (s["avg_bits"], st["record"]["avg_bits"])
    assert s["method"] == stage["method"] and s["sha256"] == st["record"]["cmp_record"]["sha256"]
    return out, path


@test
def gptq_codes_reproduce_the_checkpoint():
    quant_roundtrip({"method": "gptq", "params": {"bits": 4}}, "gptq4", 4)


@test
def gptq_desc_act_codes_reproduce_the_checkpoint():
    quant_roundtrip({"method": "gptq", "params": {"bits": 3, "desc_act": True}}, "gptq3da", 3)


@test
def awq_codes_and_norms_reproduce_the_checkpoint():
    quant_roundtrip({"method": "awq", "params": {"bits": 3}}, "awq3", 3)


@test
def wanda_mask_is_the_checkpoints_zeros():
    out, st = apply({"method": "wanda", "params": {"sparsity": 0.5}}, "wanda50")
    path = check_ref(out, st)
    rec = read_record(path)
    w = load_file(os.path.join(out, "model.safetensors"))
    assert rec["kind"] == 1 and len(rec["tensors"]) == 7 * sum(1 for k in w if k.endswith("q_proj.weight"))
    ones = 0
    for tname, (_, mask) in rec["tensors"].items():
        assert np.array_equal(mask, w[tname] == 0), tname
        ones += int(mask.sum())
    assert ones == st["record"]["masked"], (ones, st["record"]["masked"])
    d = setup()
    p = run([CISWEEP, "eval", out, "--world", os.path.join(d, "world"), "--limit", "2", "--skip",
             "mmlu,wmdp,zsre,qa", "--threads", "1"], timeout=600)
    rows = dict(line.split(" ", 1) for line in p.stdout.strip().splitlines() if " " in line)
    s = inspect_json(path)
    assert abs(s["avg_bits"] - float(rows["avg_bits"])) < 1e-5, (s["avg_bits"], rows["avg_bits"])
    assert abs(s["sparsity"] - float(rows["sparsity"])) < 1e-5, (s["sparsity"], rows["sparsity"])
    text = run([CISWEEP, "inspect", path], timeout=120).stdout
    assert "kind: mask" in text and "avg_bits: " in text and "model.layers.0.mlp.down_proj.weight" in text, text


def reapply(path, name):
    """`cisweep apply BASE --record path`: the checkpoint it writes"""
    d = setup()
    out = os.path.join(d, name)
    p = run([CISWEEP, "apply", os.path.join(d, "model"), "--record", path, "--out", out], check=False, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return out


@test
def apply_record_reproduces_the_stage():
    # GPTQ and AWQ (codes, AWQ's norms) and Wanda (no weight update: the mask alone) re-applied to the
    # base model give the stage's checkpoint byte for byte
    for stage, name in [({"method": "gptq", "params": {"bits": 4}}, "re_gptq4"),
                        ({"method": "awq", "params": {"bits": 4}}, "re_awq4"),
                        ({"method": "wanda", "params": {"sparsity": 0.5}}, "re_wanda50")]:
        out, st = apply(stage, name)
        again = reapply(check_ref(out, st), name + "_again")
        a = open(os.path.join(out, "model.safetensors"), "rb").read()
        b = open(os.path.join(again, "model.safetensors"), "rb").read()
        assert a == b, name
        rs = json.load(open(os.path.join(again, "apply.json")))["stages"][0]
        assert rs["method"] == stage["method"] and rs["record"]["changed"] > 0, rs
        if stage["method"] != "wanda":
            assert rs["record"]["wbits"] == 4 and rs["record"]["group"] == st["record"]["group"], rs
    d = setup()
    p = run([CISWEEP, "apply", os.path.join(d, "model"), "--record", os.path.join(d, "nope.cisrec"), "--out",
             os.path.join(d, "x")], check=False, timeout=120)
    assert p.returncode == 2 and "nope.cisrec" in p.stderr, p.stderr
    p = run([CISWEEP, "apply", os.path.join(d, "model"), "--record", os.path.join(d, "nope.cisrec"), "--stage",
             json.dumps({"method": "gptq", "params": {"bits": 4}}), "--out", os.path.join(d, "x")], check=False,
            timeout=120)
    assert p.returncode == 2 and "exclude each other" in p.stderr, p.stderr


@test
def corrupt_record_named():
    out, st = apply({"method": "gptq", "params": {"bits": 4}}, "gptq4b")
    path = check_ref(out, st)
    data = open(path, "rb").read()
    d = setup()
    cut = os.path.join(d, "cut.cisrec")
    open(cut, "wb").write(data[:len(data) // 2])
    p = run([CISWEEP, "inspect", cut], check=False, timeout=120)
    assert p.returncode == 2 and cut in p.stderr and "truncated" in p.stderr, p.stderr
    flip = os.path.join(d, "flip.cisrec")
    open(flip, "wb").write(data[:200] + bytes([data[200] ^ 1]) + data[201:])
    p = run([CISWEEP, "inspect", flip], check=False, timeout=120)
    assert p.returncode == 2 and flip in p.stderr and "corrupt" in p.stderr, p.stderr
    bad = os.path.join(d, "bad.cisrec")
    open(bad, "wb").write(b"NOTAREC\0" + data[8:])
    p = run([CISWEEP, "inspect", bad], check=False, timeout=120)
    assert p.returncode == 2 and bad in p.stderr and "header.magic" in p.stderr, p.stderr


@cleanup
def remove_dir():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
