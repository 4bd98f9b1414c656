#!/usr/bin/env python3
"""awq_preset_bench.py - AWQ's tiny calibration preset (n_samples) measured side by side (issue 12).

For each n_samples setting (default 64, the tiny preset, against 32 and 16) this runs, with
`cisweep apply --threads 1` and `cisweep-worker eval --profile sweep --threads 1`:
  singles       AWQ alone on each family model at each bit level: MMLU, WMDP mean, WikiText
                perplexity, AWQ's own recorded scale-search loss (sum over layers and scaling pairs of
                the chosen ratio's mean squared output error, on that setting's own calibration
                blocks), the stage's phases, and the apply's CPU seconds (user + sys of the process);
  compositions  MEMIT and LoRA before and after AWQ at the given bits on edit sets 1..K: edit
                success, generalization, locality, MMLU, WMDP, perplexity.
Every run is one JSON line in OUT/results.jsonl (a rerun skips the lines already there); `--summary`
prints the side-by-side tables: per row the setting's mean and, for each cheaper setting, the mean
paired difference to the reference (64) ± its standard error over the pairs (models x edit sets).

The tiny preset's n_samples is a compile-time constant (compress.h CMP_TINY_N_SAMPLES_AWQ), not a
stage parameter, so each setting runs from its own build: --bins 32=DIR32,16=DIR16 (each DIR a
build/bin made with that constant); the recorded params.n_samples of every run is checked.

Session 9 generalised it to any tiny-preset constant of AWQ: --key n_grid --ref 20 --settings 20,10
--bins 20=OLD/bin compares the scale grid (each setting's recorded params.n_grid checked), with
--eval-bin DIR --profile default scoring every setting with one binary on every item, and
--editors memit --edit-params '{"memit": {"v_steps": 35}}' pinning the editor's settings across
builds whose editor presets differ.

usage: awq_preset_bench.py --study /work/study6 --out DIR [--jobs 2] [--settings 64,32,16] [--bins N=DIR,...]
                           [--key n_samples] [--ref 64] [--eval-bin DIR] [--profile sweep]
                           [--editors memit,lora] [--edit-params JSON]
                           [--parts singles,comp] [--bits 2,3,4,5,6,8] [--comp-bits 3,4]
                           [--edit-sets 3] [--summary]
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "build", "bin")
MODELS = ["tiny-llama3", "tiny-mistral", "tiny-yi"]
METRICS = ["mmlu", "wmdp_avg", "ppl_wikitext", "edit_success", "generalization", "locality"]


def run_timed(cmd):
    """runs cmd, returns (returncode, stdout, stderr); CPU time comes from /usr/bin/time in cmd"""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stdout, p.stderr


def task_key(t):
    return json.dumps(t, sort_keys=True)


def awq_stage(bits):
    """the grid's AWQ stage: n_samples is not a stage parameter, it comes from the binary's tiny preset"""
    return {"method": "awq", "params": {"bits": bits}}


_locks = {}
_locks_guard = threading.Lock()


def apply(a, bindir, src, stages, edit_set, d):
    """cisweep apply SRC --stage ... --out D; returns (CPU seconds user + sys, apply.json)"""
    shutil.rmtree(d, ignore_errors=True)
    cmd = ["/usr/bin/time", "-f", "CPU %U %S", os.path.join(bindir, "cisweep"), "apply", src, "--out", d,
           "--data", os.path.join(a.study, "world"), "--edit-set", str(edit_set), "--threads", "1", "--cache", a.cache]
    for s in stages:
        cmd += ["--stage", json.dumps(s)]
    rc, out, err = run_timed(cmd)
    if rc != 0:
        raise RuntimeError("apply %s -> %s failed: %s" % (src, d, err[-2000:]))
    cpu = [l for l in err.splitlines() if l.startswith("CPU ")][-1].split()
    with open(os.path.join(d, "apply.json")) as f:
        return float(cpu[1]) + float(cpu[2]), json.load(f)


def shared_model(a, name, build):
    """OUT/models/NAME, made once by build(dir) (a stage prefix that several runs share: the edited
    model for edit->AWQ, the AWQ model for AWQ->edit); the weights are saved in F32, so the next stage
    starts from exactly the weights it would have in one process"""
    with _locks_guard:
        lk = _locks.setdefault(name, threading.Lock())
    d = os.path.join(a.out, "models", name)
    with lk:
        if not os.path.exists(os.path.join(d, ".done")):
            build(d)
            open(os.path.join(d, ".done"), "w").close()
    return d


def awq_fields(row, ap, t, bindir):
    for s in ap["stages"]:
        if s["method"] != "awq":
            continue
        rec = s["record"]
        loss = 0.0
        for lay in rec.get("layers", []):
            for pr in ("qkv", "v->o", "gate_up", "up->down"):
                v = lay.get(pr)
                if isinstance(v, dict):
                    loss += v["loss"]
        row["awq_loss"] = loss
        row["awq_wall_s"] = s["wall_ms"] / 1000.0
        row["awq_phases"] = s["phases_s"]
        row["awq_params"] = s["params"]
        row["calib_blocks"] = rec.get("calib_blocks")
        if s["params"].get(KEY[0]) != t["n"]:
            raise RuntimeError("%s/cisweep ran AWQ with %s %s, expected %d (a build whose tiny preset gives %d)"
                               % (bindir, KEY[0], s["params"].get(KEY[0]), t["n"], t["n"]))


KEY = ["n_samples"]   # the params field a setting names (--key)


def edit_stage(a, e):
    p = a.edit_params.get(e)
    return {"method": e, "params": p} if p else {"method": e}


def run_task(t, a, out_dir):
    name = "-".join(str(t[k]) for k in sorted(t))
    bindir = a.bins[t["n"]]
    model = os.path.join(a.study, "family", t["model"])
    row = dict(t)
    keep = t["part"] == "singles" and str(t["bits"]) in a.comp_bits.split(",")
    single = {"part": "singles", "model": t["model"], "bits": t["bits"], "n": t["n"], "edit_set": 1}

    def awq_single(d):  # the AWQ model of (model, bits, n), edit set 1; row.json: its singles row so far
        r = dict(single)
        r["apply_cpu_s"], ap = apply(a, bindir, model, [awq_stage(t["bits"])], 1, d)
        awq_fields(r, ap, t, bindir)
        with open(os.path.join(d, "row.json"), "w") as f:
            json.dump(r, f)
        if t["part"] == "singles":
            row.update(r)

    if t["part"] == "singles":
        if keep:
            d = shared_model(a, "awq-%s-%d-%d" % (t["model"], t["bits"], t["n"]), awq_single)
            with open(os.path.join(d, "row.json")) as f:
                row = json.load(f)
        else:
            d = os.path.join(out_dir, "runs", name)
            awq_single(d)
    elif t["order"] == "edit-awq":
        ed = shared_model(a, "%s-%s-%d" % (t["edit"], t["model"], t["edit_set"]),
                          lambda d: apply(a, a.bins[min(a.bins)], model, [edit_stage(a, t["edit"])], t["edit_set"], d))
        d = os.path.join(out_dir, "runs", name)
        row["apply_cpu_s"], ap = apply(a, bindir, ed, [awq_stage(t["bits"])], t["edit_set"], d)
        awq_fields(row, ap, t, bindir)
    else:
        aq = shared_model(a, "awq-%s-%d-%d" % (t["model"], t["bits"], t["n"]), awq_single)
        d = os.path.join(out_dir, "runs", name)
        row["apply_cpu_s"], ap = apply(a, bindir, aq, [edit_stage(a, t["edit"])], t["edit_set"], d)
    rc, out, err = run_timed([os.path.join(a.eval_bin or bindir, "cisweep-worker"), "eval", d, "--world",
                              os.path.join(a.study, "world"), "--edit-set", str(t["edit_set"]), "--profile", a.profile,
                              "--threads", "1", "--json"])
    if rc != 0:
        raise RuntimeError("eval failed for %s: %s" % (name, err[-2000:]))
    ev = json.loads(out.strip().splitlines()[-1])
    for k in METRICS:
        row[k] = ev.get(k)
    if d.startswith(os.path.join(out_dir, "runs")):
        shutil.rmtree(d, ignore_errors=True)
    return row


def tasks(a):
    settings = [int(x) for x in a.settings.split(",")]
    parts = a.parts.split(",")
    out = []
    if "singles" in parts:
        for n in settings:
            for m in MODELS:
                for b in [int(x) for x in a.bits.split(",")]:
                    out.append({"part": "singles", "model": m, "bits": b, "n": n, "edit_set": 1})
    if "comp" in parts:
        for k in range(1, a.edit_sets + 1):  # edit set outermost: a partial run covers every model
            for m in MODELS:
                for e in a.editors.split(","):
                    for order in ("edit-awq", "awq-edit"):
                        for b in [int(x) for x in a.comp_bits.split(",")]:
                            for n in settings:  # the settings side by side, run next to each other
                                out.append({"part": "comp", "model": m, "bits": b, "n": n, "edit": e,
                                           "order": order, "edit_set": k})
    return out


def load(out_dir):
    rows = []
    p = os.path.join(out_dir, "results.jsonl")
    if os.path.exists(p):
        with open(p) as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
    return rows


def mean_se(xs):
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(xs) / n
    if n < 2:
        return m, float("nan")
    v = sum((x - m) ** 2 for x in xs) / (n - 1)
    return m, math.sqrt(v / n)


def fmt(m, se, nd=3):
    return ("%.*f" % (nd, m)) + ("" if math.isnan(se) else " ± %.*f" % (nd, se))


def summary(out_dir, ref=64):
    rows = load(out_dir)
    by = {}
    for r in rows:
        by[task_key({k: v for k, v in r.items() if k in ("part", "model", "bits", "n", "edit", "order", "edit_set")})] = r
    settings = sorted({r["n"] for r in rows}, reverse=True)
    others = [n for n in settings if n != ref]

    def get(r, n):
        k = {x: r[x] for x in ("part", "model", "bits", "n", "edit", "order", "edit_set") if x in r}
        k["n"] = n
        return by.get(task_key(k))

    print("## singles: AWQ alone (3 models, edit set 1); per bits: mean over models at n=%d, "
          "then Δ(n - %d) mean ± SE over the 3 models" % (ref, ref))
    sing = [r for r in rows if r["part"] == "singles" and r["n"] == ref]
    for b in sorted({r["bits"] for r in sing}):
        rs = [r for r in sing if r["bits"] == b]
        for met in ("mmlu", "wmdp_avg", "ppl_wikitext", "awq_loss"):
            line = "bits %d %-13s n=%d %s" % (b, met, ref, fmt(*mean_se([r[met] for r in rs])))
            for n in others:
                ds = [get(r, n)[met] - r[met] for r in rs if get(r, n)]
                line += " | n=%d Δ %s" % (n, fmt(*mean_se(ds)))
            print(line)
    print("\n## per model, singles (mmlu / wmdp / ppl at each n)")
    for r in sorted(sing, key=lambda r: (r["model"], r["bits"])):
        line = "%-13s %d" % (r["model"], r["bits"])
        for n in settings:
            x = get(r, n)
            if x:
                line += " | n=%d %.4f %.3f %.2f" % (n, x["mmlu"], x["wmdp_avg"], x["ppl_wikitext"])
        print(line)
    print("\n## AWQ apply CPU seconds per application (singles, one thread), mean ± SE; phases (wall s)")
    for n in settings:
        rs = [r for r in rows if r["part"] == "singles" and r["n"] == n]
        if not rs:
            continue
        ph = {}
        for r in rs:
            for k, v in r["awq_phases"].items():
                ph.setdefault(k, []).append(v)
        print("n=%d apply cpu %s, awq wall %s, blocks %s, phases %s" % (
            n, fmt(*mean_se([r["apply_cpu_s"] for r in rs]), 2), fmt(*mean_se([r["awq_wall_s"] for r in rs]), 2),
            sorted({r["calib_blocks"] for r in rs}),
            ", ".join("%s %.2f" % (k, sum(v) / len(v)) for k, v in sorted(ph.items()))))
    comp = [r for r in rows if r["part"] == "comp" and r["n"] == ref]
    if comp:
        print("\n## compositions: mean at n=%d over models x edit sets, then Δ(n - %d) mean ± SE over the pairs" % (ref, ref))
        for e in sorted({r["edit"] for r in comp}):
            for order in ("edit-awq", "awq-edit"):
                for b in sorted({r["bits"] for r in comp}):
                    rs = [r for r in comp if r["edit"] == e and r["order"] == order and r["bits"] == b]
                    if not rs:
                        continue
                    for met in ("edit_success", "generalization", "locality", "mmlu"):
                        line = "%-5s %-8s %d %-14s n=%d %s (%d)" % (e, order, b, met, ref,
                                                                   fmt(*mean_se([r[met] for r in rs])), len(rs))
                        for n in others:
                            ds = [get(r, n)[met] - r[met] for r in rs if get(r, n)]
                            line += " | n=%d Δ %s (%d)" % (n, fmt(*mean_se(ds)), len(ds))
                        print(line)
        print("\n## compositions pooled (all edits, orders, bits): Δ(n - %d) mean ± SE" % ref)
        for met in ("edit_success", "generalization", "locality", "mmlu", "wmdp_avg", "ppl_wikitext"):
            line = "%-14s n=%d %s" % (met, ref, fmt(*mean_se([r[met] for r in comp])))
            for n in others:
                ds = [get(r, n)[met] - r[met] for r in comp if get(r, n)]
                line += " | n=%d Δ %s (%d)" % (n, fmt(*mean_se(ds), 4), len(ds))
            print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", required=True, help="a study dir with family/, world/, cache/")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", help="MEMIT statistics cache (default OUT/cache, copied from STUDY/cache)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--settings", default="64,32,16")
    ap.add_argument("--bins", default="",
                    help="N=DIR,...: the build/bin of a build whose compress.h has CMP_TINY_N_SAMPLES_AWQ N "
                         "(default: this checkout's build/bin for every N; the run checks the recorded n_samples)")
    ap.add_argument("--parts", default="singles,comp")
    ap.add_argument("--bits", default="2,3,4,5,6,8")
    ap.add_argument("--comp-bits", default="3,4")
    ap.add_argument("--edit-sets", type=int, default=3)
    ap.add_argument("--summary", action="store_true")
    ap.add_argument("--key", default="n_samples", help="the AWQ params field the settings name (n_samples, n_grid)")
    ap.add_argument("--ref", type=int, default=64, help="the reference setting of --summary")
    ap.add_argument("--eval-bin", default="", help="score every run with this build/bin (default: the setting's)")
    ap.add_argument("--profile", default="sweep", help="cisweep-worker eval --profile")
    ap.add_argument("--editors", default="memit,lora")
    ap.add_argument("--edit-params", default="{}", help="JSON: method -> params given to that editor's stage")
    a = ap.parse_args()
    KEY[0] = a.key
    a.edit_params = json.loads(a.edit_params)
    os.makedirs(a.out, exist_ok=True)
    a.bins = {int(n): BIN for n in a.settings.split(",")} | {
        int(kv.split("=")[0]): kv.split("=", 1)[1] for kv in a.bins.split(",") if kv}
    if a.summary:
        summary(a.out, a.ref)
        return 0
    for sub in ("family", "world"):
        if not os.path.isdir(os.path.join(a.study, sub)):
            sys.exit("awq_preset_bench: %s/%s: not a directory (expected a study run dir)" % (a.study, sub))
    if not a.cache:
        a.cache = os.path.join(a.out, "cache")
        if not os.path.isdir(a.cache) and os.path.isdir(os.path.join(a.study, "cache")):
            shutil.copytree(os.path.join(a.study, "cache"), a.cache)
    done = {task_key({k: v for k, v in r.items() if k in ("part", "model", "bits", "n", "edit", "order", "edit_set")})
            for r in load(a.out)}
    todo = [t for t in tasks(a) if task_key(t) not in done]
    lock = threading.Lock()
    print("awq_preset_bench: %d runs to do (%d done)" % (len(todo), len(done)), flush=True)

    def one(t):
        r = run_task(t, a, a.out)
        with lock:
            with open(os.path.join(a.out, "results.jsonl"), "a") as f:
                f.write(json.dumps(r, sort_keys=True) + "\n")
            print(json.dumps({k: r[k] for k in t} | {"apply_cpu_s": r["apply_cpu_s"], "edit_success": r["edit_success"],
                                                      "mmlu": r["mmlu"]}), flush=True)

    with ThreadPoolExecutor(max_workers=a.jobs) as ex:
        for f in [ex.submit(one, t) for t in todo]:
            f.result()
    return 0


if __name__ == "__main__":
    sys.exit(main())
