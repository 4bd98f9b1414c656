"""test_apply.py - `cisweep apply` end to end on a real model directory: a tiny model trained for
two steps on a small synthetic world, the test stage test_scale applied through `cisweep` (which
hands over to cisweep-worker), the checkpoint it writes read back with the `safetensors` package
(exactly the selected tensors scaled, the others bit-identical), apply.json (the effective params
with the defaults and the preset's resolved layers, seed = edit set, record, wall time), `cisweep
eval` scoring the result, --dtype, and bad input: exit status 2 and a message naming the stage,
field or directory, nothing written."""
import json, os, shutil, struct, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from harness import test, cleanup, main, run, CISWEEP, WORKER, tiny_world_and_model  # noqa: E402

import numpy as np  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

STATE = {}


def setup():
    if "dir" in STATE:
        return STATE["dir"]
    d = tempfile.mkdtemp(prefix="cisweep-apply-")
    tiny_world_and_model(d, steps=2)
    STATE["dir"] = d
    return d


def apply(*args, check=True):
    d = setup()
    return run([CISWEEP, "apply", os.path.join(d, "model"), *args], check=check, timeout=300)


def header_dtypes(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    return {k: v["dtype"] for k, v in h.items() if k != "__metadata__"}


@test
def scales_exactly_the_selected_tensors():
    d = setup()
    out = os.path.join(d, "scaled")
    p = apply("--stage", '{"method":"test_scale","params":{"factor":0.5,"last_layers":2}}', "--out", out,
              "--edit-set", "3", "--data", os.path.join(d, "world"), "--allow-test-stages", "--threads", "1")
    assert "stage 1: test_scale" in p.stdout, p.stdout
    before, after = load_file(os.path.join(d, "model", "model.safetensors")), load_file(os.path.join(out, "model.safetensors"))
    assert sorted(before) == sorted(after)
    cfg = json.load(open(os.path.join(d, "model", "config.json")))
    L = cfg["num_hidden_layers"]
    scaled = {f"model.layers.{L - 2}.mlp.down_proj.weight", f"model.layers.{L - 1}.mlp.down_proj.weight"}
    for name in before:
        a, b = before[name].astype(np.float32), after[name].astype(np.float32)
        if name in scaled:
            assert np.array_equal(b, a * np.float32(0.5)), name
        else:
            assert np.array_equal(a, b), name
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        assert os.path.exists(os.path.join(out, f)), f
    assert open(os.path.join(out, "tokenizer.json")).read() == open(os.path.join(d, "model", "tokenizer.json")).read()
    rec = json.load(open(os.path.join(out, "apply.json")))
    assert rec["edit_set"] == 3 and rec["seed"] == 3 and rec["plan"] == "paper", rec
    assert rec["composition"] == [{"method": "test_scale", "params": {"factor": 0.5, "last_layers": 2,
                                   "param": "model.layers.*.mlp.down_proj.weight"}}], rec["composition"]
    [st] = rec["stages"]
    assert st["stage"] == 1 and st["of_stage"] == 1 and not st["recompress"] and st["seed"] == 3, st
    assert st["params"] == {"factor": 0.5, "last_layers": 2, "param": "model.layers.*.mlp.down_proj.weight",
                            "layers": [L - 2, L - 1]}, st["params"]
    assert sorted(st["record"]["matched"]) == sorted(scaled), st["record"]
    assert abs(st["record"]["rms_after"] / st["record"]["rms_before"] - 0.5) < 1e-9
    assert "scale" in st["phases_s"] and st["wall_ms"] >= 0
    STATE["scaled"] = out


@test
def eval_scores_the_result():
    d = setup()
    out = STATE.get("scaled")
    if not out:
        raise AssertionError("scales_exactly_the_selected_tensors did not leave a model")
    rows = {}
    for line in run([CISWEEP, "eval", out, "--world", os.path.join(d, "world"), "--limit", "8", "--threads", "1"],
                    timeout=300).stdout.splitlines():
        k, v = line.split()
        rows[k] = float(v)
    for name in ("mmlu", "wmdp_avg", "ppl_wikitext", "edit_success"):
        assert name in rows, sorted(rows)
    assert rows["ppl_wikitext"] > 1


@test
def stages_in_order_and_dtype():
    d = setup()
    out = os.path.join(d, "two")
    apply("--stage", '[{"method":"test_scale","params":{"factor":2}},'
          '{"method":"test_scale","params":{"factor":0.25,"param":"model.norm.weight"}}]',
          "--stage", '{"method":"test_scale","params":{"factor":4,"param":"model.norm.weight"}}',
          "--out", out, "--dtype", "BF16", "--allow-test-stages")
    rec = json.load(open(os.path.join(out, "apply.json")))
    assert [s["stage"] for s in rec["stages"]] == [1, 2, 3]
    assert [s["params"]["factor"] for s in rec["stages"]] == [2.0, 0.25, 4.0]
    assert all(s["seed"] == 1 for s in rec["stages"]) and rec["dtype"] == "BF16"
    assert set(header_dtypes(os.path.join(out, "model.safetensors")).values()) == {"BF16"}
    assert json.load(open(os.path.join(out, "config.json")))["torch_dtype"] == "bfloat16"


@test
def recompress_policy_option():
    d = setup()
    wanda = '{"method":"wanda","params":{"sparsity":0.5}}'
    ts = '{"method":"test_scale","params":{"factor":2}}'
    for policy, want in [("always", [("wanda", False), ("test_scale", False), ("wanda", True)]),
                         ("mask", [("wanda", False), ("test_scale", False)])]:
        out = os.path.join(d, "rc-" + policy)
        apply("--stage", wanda, "--stage", ts, "--recompress", policy, "--data", os.path.join(d, "world"),
              "--out", out, "--allow-test-stages")
        rec = json.load(open(os.path.join(out, "apply.json")))
        assert rec["recompress"] == policy and rec["plan"] == policy, rec
        assert [(s["method"], s["recompress"]) for s in rec["stages"]] == want, rec["stages"]
    rec = json.load(open(os.path.join(d, "rc-mask", "apply.json")))
    assert rec["stages"][0]["record"]["mask_zeros"] > 0 and rec["stages"][1]["record"]["mask_reimposed"] == 1, rec
    out = os.path.join(d, "rc-bad")
    p = apply("--stage", '{"method":"gptq","params":{"bits":4}}', "--stage", ts, "--recompress", "mask",
              "--out", out, "--allow-test-stages", check=False)
    assert p.returncode == 2 and '"gptq" (stage 1) is a quantizer followed by stage 2' in p.stderr, p.stderr
    p = apply("--stage", ts, "--recompress", "sometimes", "--out", out, "--allow-test-stages", check=False)
    assert p.returncode == 2 and '--recompress: "sometimes" is not a policy (allowed: paper|never|always|mask)' \
        in p.stderr, p.stderr
    assert not os.path.exists(out)


MEMIT_FAST = '{"method":"memit","params":{"v_steps":1,"mom2_n_samples":40}}'


def stats_of(out, method="memit"):
    rec = json.load(open(os.path.join(out, "apply.json")))
    return [s for s in rec["stages"] if s["method"] == method][0]["record"]["stats"]


@test
def memit_after_a_compressor_uses_the_base_models_statistics():
    """`cisweep apply` with GPTQ before MEMIT keys (and computes) MEMIT's statistics on the model as
    loaded, not on the quantized one: the same key as MEMIT alone on the same base, and, given the
    cache MEMIT alone filled, read from it, not computed."""
    d = setup()
    world = os.path.join(d, "world")
    c1, c2 = os.path.join(d, "stats-plain"), os.path.join(d, "stats-gptq")
    plain, after = os.path.join(d, "memit-plain"), os.path.join(d, "gptq-memit")
    apply("--stage", MEMIT_FAST, "--out", plain, "--data", world, "--cache", c1, "--threads", "1")
    s1 = stats_of(plain)
    assert s1["computed_layers"] >= 1 and s1["cached_layers"] == 0 and s1["source"] == "computed", s1
    gptq = '{"method":"gptq","params":{"bits":4}}'
    # a fresh cache: computed here, on the base weights (same key)
    apply("--stage", gptq, "--stage", MEMIT_FAST, "--exact", "--out", after, "--data", world, "--cache", c2,
          "--threads", "1")
    s2 = stats_of(after)
    assert s2["key"] == s1["key"], (s1, s2)
    assert s2["computed_layers"] == s1["computed_layers"] and s2["n_tokens"] == s1["n_tokens"], (s1, s2)
    # the gptq stage did change the weights MEMIT sees (else the check above proves nothing)
    rec = json.load(open(os.path.join(after, "apply.json")))
    assert [s["method"] for s in rec["stages"]] == ["gptq", "memit"], rec["stages"]
    w0 = load_file(os.path.join(d, "model", "model.safetensors"))["model.layers.0.mlp.up_proj.weight"]
    q = load_file(os.path.join(after, "model.safetensors"))["model.layers.0.mlp.up_proj.weight"]
    assert not np.array_equal(w0, q), "gptq left layer 0 unchanged"
    # the cache MEMIT alone filled: read, not computed
    again = os.path.join(d, "gptq-memit-cached")
    apply("--stage", gptq, "--stage", MEMIT_FAST, "--exact", "--out", again, "--data", world, "--cache", c1,
          "--threads", "1")
    s3 = stats_of(again)
    assert s3["key"] == s1["key"] and s3["computed_layers"] == 0 and s3["source"] == "artifact", s3
    assert s3["cached_layers"] == s1["computed_layers"], (s1, s3)
    # the entries are in the shared artifact cache layout: objects/<2 hex>/<key>
    assert os.path.isfile(os.path.join(c1, "objects", s1["key"][:2], s1["key"])), os.listdir(c1)


@test
def bad_input_exits_2_and_names_the_problem():
    d = setup()
    out = os.path.join(d, "never")
    ts = '{"method":"test_scale"}'
    cases = [
        (["--stage", "{bad", "--out", out], "--stage #1: JSON syntax error"),
        (["--stage", '{"method":"rome"}', "--out", out], 'stage 1.method: unknown method "rome"'),
        (["--stage", ts, "--out", out], "--allow-test-stages"),
        (["--stage", ts, "--stage", '{"method":"test_scale","params":{"factor":"x"}}', "--out", out,
          "--allow-test-stages"], "stage 2.params.factor"),
        (["--stage", '{"method":"test_scale","params":{"bogus":1}}', "--out", out, "--allow-test-stages"],
         'unknown parameter "bogus"'),
        (["--stage", '{"method":"memit"}', "--out", out], "memit (stage 1): the edits come from DATA_DIR/zsre"),
        (["--stage", '{"method":"selftest"}', "--out", out, "--allow-test-stages"], "orchestration fixture"),
        (["--stage", '{"method":"test_scale","params":{"last_layers":999}}', "--out", out, "--allow-test-stages"],
         "test_scale (stage 1): preset for this model: params.last_layers: 999"),
        (["--stage", '{"method":"test_scale","params":{"param":"nothing.*"}}', "--out", out,
          "--allow-test-stages"], 'params.param: "nothing.*" matches no parameter'),
        (["--stage", ts, "--out", os.path.join(d, "model"), "--allow-test-stages"], "is the model directory itself"),
        (["--stage", ts, "--out", out, "--allow-test-stages", "--data", os.path.join(d, "nope")], "not a directory"),
        (["--out", out], "at least one --stage"),
        (["--stage", ts, "--out", out, "--allow-test-stages", "--dtype", "F8"], "--dtype must be"),
    ]
    for args, want in cases:
        p = apply(*args, check=False)
        assert p.returncode == 2 and want in p.stderr, (args, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr and "assertion" not in p.stderr
    # the same program behind both front ends
    p = run([WORKER, "apply", os.path.join(d, "missing"), "--stage", ts, "--out", out, "--allow-test-stages"],
            check=False)
    assert p.returncode == 2 and "missing: no config.json" in p.stderr, p.stderr
    assert "usage: cisweep apply MODEL_DIR" in run([CISWEEP, "apply", "--help"]).stdout
    assert not os.path.exists(out)


@cleanup
def remove_tmp():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
