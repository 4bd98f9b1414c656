"""test_compress_apply.py - the compressors through `cisweep apply` and `cisweep eval` on a tiny
model trained for two steps on a small synthetic world: the checkpoint holds exactly the pruned
zeros per row (Wanda) and at most 2^bits values per (row, group of 64) (GPTQ, AWQ); apply.json records
the effective params (the group preset's 64 and its reason, the calibration keys: GPTQ's 64 windows,
AWQ's 16 lines); `cisweep eval`
of the output reports avg_bits as a sweep does (wbits + 32/group from apply.json; 16 - 15·sparsity
for Wanda); a group that does not fit the model is refused with exit status 2 naming the parameter."""
import json, os, shutil, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from harness import test, cleanup, main, run, CISWEEP, WORKER, tiny_world_and_model  # noqa: E402

import numpy as np  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

STATE = {}


def setup():
    if "dir" not in STATE:
        d = tempfile.mkdtemp(prefix="cmp_apply_")
        tiny_world_and_model(d, steps=2)
        STATE["dir"] = d
    return STATE["dir"]


def apply(stage, name):
    d = setup()
    out = os.path.join(d, name)
    p = run([CISWEEP, "apply", os.path.join(d, "model"), "--stage", json.dumps(stage), "--out", out,
             "--data", os.path.join(d, "world"), "--threads", "1"], check=False, timeout=600)
    return p, out


def avg_bits(out):
    d = setup()
    p = run([CISWEEP, "eval", out, "--world", os.path.join(d, "world"), "--limit", "2", "--skip",
             "mmlu,wmdp,zsre,qa", "--threads", "1"], timeout=600)
    rows = dict(line.split(" ", 1) for line in p.stdout.strip().splitlines() if " " in line)
    return float(rows["avg_bits"])


def linears(path):
    t = load_file(os.path.join(path, "model.safetensors"))
    return {k: v.astype(np.float32) for k, v in t.items() if k.startswith("model.layers.") and k.endswith("proj.weight")}


@test
def gptq_apply_and_eval():
    p, out = apply({"method": "gptq", "params": {"bits": 3}}, "gptq3")
    assert p.returncode == 0, p.stderr[-2000:]
    st = json.load(open(os.path.join(out, "apply.json")))["stages"][0]
    assert st["params"]["group"] == 64 and "group_reason" in st["params"], st["params"]
    # the tiny family's calibration preset (docs/compression.md): GPTQ 64 windows, noted
    assert st["params"]["n_samples"] == 64 and st["params"]["c4_sampler"] == "concat1000", st["params"]
    assert "n_samples: 128 -> 64 (hidden_size 64 < 1024)" in st["params"]["tiny_preset"], st["params"]
    assert st["record"]["calib_windows"] == 64, st["record"]
    worst = 0
    for name, w in linears(out).items():
        g = w.reshape(w.shape[0], -1, 64)
        for r in range(g.shape[0]):
            for j in range(g.shape[1]):
                worst = max(worst, len(np.unique(g[r, j])))
    assert worst <= 8, worst
    assert avg_bits(out) == 3.5


@test
def wanda_apply_and_eval():
    p, out = apply({"method": "wanda", "params": {"sparsity": 0.5}}, "wanda50")
    assert p.returncode == 0, p.stderr[-2000:]
    for name, w in linears(out).items():
        zeros = (w == 0).sum(axis=1)
        assert (zeros == w.shape[1] // 2).all(), (name, zeros)
    assert avg_bits(out) == 8.5


@test
def awq_apply_tiny_preset():
    # the tiny family's AWQ presets (docs/compression.md): 16 pile-val lines and (since results
    # epoch 8) a 10-ratio scale grid, each noted; the blocks they fill are at most 16 (each line <=
    # seqlen tokens); every ratio chosen on the 10-point grid; every linear on a 16-level grid
    p, out = apply({"method": "awq", "params": {"bits": 4}}, "awq4")
    assert p.returncode == 0, p.stderr[-2000:]
    st = json.load(open(os.path.join(out, "apply.json")))["stages"][0]
    assert st["params"]["n_samples"] == 16 and st["params"]["seqlen"] == 128, st["params"]
    assert st["params"]["tiny_preset"] == ["n_samples: 128 -> 16 (hidden_size 64 < 1024)",
                                           "n_grid: 20 -> 10 (hidden_size 64 < 1024)"], st["params"]
    assert st["params"]["n_grid"] == 10, st["params"]
    for lay in st["record"]["layers"]:
        for pair in ("qkv", "gate_up", "up->down"):
            assert len(lay[pair]["losses"]) == 10 and round(lay[pair]["ratio"] * 10, 9) % 1 == 0, lay[pair]
    assert 1 <= st["record"]["calib_blocks"] <= 16 and st["record"]["calib_seqlen"] == 128, st["record"]
    group = st["params"]["group"]
    for name, w in linears(out).items():
        g = w.reshape(w.shape[0], -1, group)
        worst = max(len(np.unique(g[r, j])) for r in range(g.shape[0]) for j in range(g.shape[1]))
        assert worst <= 16, (name, worst)
    assert avg_bits(out) == 4 + 32 / group


@test
def awq_group_that_does_not_fit():
    p, out = apply({"method": "awq", "params": {"bits": 4, "group_size": 24}}, "awq_bad")
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "params.group_size" in p.stderr and "does not divide" in p.stderr, p.stderr[-2000:]
    assert not os.path.exists(os.path.join(out, "model.safetensors"))


@cleanup
def rm():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
