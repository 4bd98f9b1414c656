#!/usr/bin/env python3
"""unlearn_sizing.py - GD's (and RMU's) tiny-preset candidates measured side by side (issue 12;
docs/unlearning.md "GD sized for the tiny family").

  unlearn_sizing.py run OUT.jsonl SEEDS SETTINGS   cisweep apply of each setting (SETTINGS below)
        on MODEL with WORLD, edit set = each of SEEDS (comma list), then cisweep-worker eval
        --profile sweep; one JSON line per (setting, edit set) appended to OUT.jsonl: the stages'
        effective params, records and wall_ms, the model's sha256, the eval's metrics, the load.
  unlearn_sizing.py table OUT.jsonl [...]          Markdown tables: per setting mean ± SE over the
        edit sets, the paired difference to the reference (the old preset with its values given
        explicitly, so it does not depend on the binary), and the compositions' interactions.
Environment: CISWEEP_BIN (default build/bin), SIZING_MODEL (default /work/study6/family/tiny-llama3),
SIZING_WORLD (default /work/study6/world), CACHE (a MEMIT statistics cache dir; it is written to, so
give a copy). One thread per run; at most two runs at a time on the 2-core VM."""
import collections
import json
import math
import os
import shutil
import subprocess
import sys

BIN = os.environ.get("CISWEEP_BIN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "bin"))
MODEL = os.environ.get("SIZING_MODEL", "/work/study6/family/tiny-llama3")
WORLD = os.environ.get("SIZING_WORLD", "/work/study6/world")

# the stages of each setting; gd_p = the tiny preset before issue 12 (lr 1e-3, retain weight 5, all
# 480 forget documents of the default world: 120 steps), given explicitly
GD = {"accum": 2, "batch_size": 2, "freeze_lower_half": True, "lr": 5e-05, "max_len": 1024,
      "pad_in_loss": True, "retain_weight": 40.0, "train_size": 2000, "use_preset": True}
def gd(**kw):
    p = dict(GD); p.update(kw); return {"method": "gd", "params": p}
GPTQ4 = {"method": "gptq", "params": {"bits": 4, "desc_act": False, "group_size": 128}}
WANDA25 = {"method": "wanda", "params": {"prune_m": 0, "prune_n": 0, "sparsity": 0.25}}
MEMIT = {"method": "memit", "params": {"clamp_norm_factor": 4.0, "kl_factor": 0.0625, "layers": [4, 5, 6, 7, 8], "layers_depth": 32, "mom2_n_samples": 100000, "mom2_update_weight": 15000.0, "v_lr": 0.5, "v_steps": 25, "v_weight_decay": 0.001, "value_batch": 0}}
RMUP = {"alpha": 1000.0, "batch_size": 4, "layer": 3, "lr": 5e-05, "max_batches": 250, "module": "o_proj", "pad_in_loss": True, "steering_coeff": 20.0, "use_preset": True}
RMU = {"method": "rmu", "params": RMUP}
RMU200 = {"method": "rmu", "params": dict(RMUP, max_batches=200)}
GDP = dict(use_preset=False, lr=1e-3, retain_weight=5.0, train_size=2000)
SETTINGS = {
    "gd_new": [gd()],   # the grid's canonical gd stage: whatever the binary's preset makes of it
    "base": [],
    "gd_p": [gd(**GDP)],
    "gd_1000": [gd(train_size=1000)],
    "gd_240": [gd(train_size=240)],
    "gd_240_lr2": [gd(train_size=240, use_preset=False, lr=2e-3, retain_weight=5.0)],
    "gd_360": [gd(train_size=360)],
    "gd_360_lr133>gptq4": [gd(train_size=360, use_preset=False, lr=1.333e-3, retain_weight=5.0), GPTQ4],
    "wanda25>gd_360_lr133": [WANDA25, gd(train_size=360, use_preset=False, lr=1.333e-3, retain_weight=5.0)],
    "memit>gd_360_lr133": [MEMIT, gd(train_size=360, use_preset=False, lr=1.333e-3, retain_weight=5.0)],
    "gd_240_lr17": [gd(train_size=240, use_preset=False, lr=1.7e-3, retain_weight=5.0)],
    "gd_240_lr17>gptq4": [gd(train_size=240, use_preset=False, lr=1.7e-3, retain_weight=5.0), GPTQ4],
    "wanda25>gd_240_lr17": [WANDA25, gd(train_size=240, use_preset=False, lr=1.7e-3, retain_weight=5.0)],
    "memit>gd_240_lr17": [MEMIT, gd(train_size=240, use_preset=False, lr=1.7e-3, retain_weight=5.0)],
    "gd_360_lr133": [gd(train_size=360, use_preset=False, lr=1.333e-3, retain_weight=5.0)],
    "gd_p>gptq4": [gd(**GDP), GPTQ4],
    "gd_240>gptq4": [gd(train_size=240), GPTQ4],
    "gd_240_lr2>gptq4": [gd(train_size=240, use_preset=False, lr=2e-3, retain_weight=5.0), GPTQ4],
    "gd_360>gptq4": [gd(train_size=360), GPTQ4],
    "wanda25>gd_p": [WANDA25, gd(**GDP)],
    "wanda25>gd_240": [WANDA25, gd(train_size=240)],
    "wanda25>gd_240_lr2": [WANDA25, gd(train_size=240, use_preset=False, lr=2e-3, retain_weight=5.0)],
    "wanda25>gd_360": [WANDA25, gd(train_size=360)],
    "memit>gd_p": [MEMIT, gd(**GDP)],
    "memit>gd_240_lr2": [MEMIT, gd(train_size=240, use_preset=False, lr=2e-3, retain_weight=5.0)],
    "rmu_250>gptq4": [RMU, GPTQ4],
    "rmu_200>gptq4": [RMU200, GPTQ4],
    "wanda25>rmu_250": [WANDA25, RMU],
    "wanda25>rmu_200": [WANDA25, RMU200],
    "rmu_250": [{"method": "rmu", "params": {}}],
    "rmu_200": [{"method": "rmu", "params": {"max_batches": 200}}],
    "rmu_150": [{"method": "rmu", "params": {"max_batches": 150}}],
}


def run(out, seeds, names):
    for name in names:
        if name not in SETTINGS:
            sys.exit(f"unlearn_sizing.py: unknown setting {name!r} (expected one of {', '.join(SETTINGS)})")
    scratch = out + ".runs"
    os.makedirs(scratch, exist_ok=True)
    for seed in seeds:
        for name in names:
            d = os.path.join(scratch, f"{name}.{seed}")
            row = {"setting": name, "seed": seed, "load": os.getloadavg()[0]}
            src = MODEL
            if SETTINGS[name]:
                shutil.rmtree(d, ignore_errors=True)
                cmd = [f"{BIN}/cisweep", "apply", MODEL, "--out", d, "--data", WORLD, "--edit-set", str(seed),
                       "--threads", "1"]
                if os.environ.get("CACHE"):
                    cmd += ["--cache", os.environ["CACHE"]]
                for st in SETTINGS[name]:
                    cmd += ["--stage", json.dumps(st)]
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode:
                    row["error"] = r.stderr[-800:]
                    open(out, "a").write(json.dumps(row) + "\n")
                    continue
                a = json.load(open(f"{d}/apply.json"))
                row["stages"] = [{"method": s["method"], "wall_ms": s["wall_ms"], "params": s["params"],
                                  "record": s.get("record"), "phases": s.get("phases_s")} for s in a["stages"]]
                row["sha256"] = subprocess.run(["sha256sum", f"{d}/model.safetensors"], capture_output=True,
                                               text=True).stdout.split()[0]
                src = d
            r = subprocess.run([f"{BIN}/cisweep-worker", "eval", src, "--world", WORLD, "--edit-set", str(seed),
                                "--profile", "sweep", "--threads", "1", "--json"], capture_output=True, text=True)
            if r.returncode:
                row["error"] = r.stderr[-800:]
            else:
                row["eval"] = json.loads(r.stdout.strip().splitlines()[-1])
            open(out, "a").write(json.dumps(row) + "\n")
            if SETTINGS[name]:
                os.remove(f"{d}/model.safetensors")


by = collections.defaultdict(dict)   # setting -> edit set -> row


def report(files):
    for f in files:
        for line in open(f):
            r = json.loads(line)
            if "eval" in r:
                by[r["setting"]][r["seed"]] = r
    M = ["wmdp_bio", "wmdp_cyber", "wmdp_avg", "mmlu", "ppl_wikitext", "qa_f1"]
    E = ["edit_success", "generalization", "locality", "wmdp_avg", "mmlu", "ppl_wikitext", "qa_f1"]
    print("GD alone"); table(["base", "gd_p", "gd_1000", "gd_240", "gd_240_lr2", "gd_240_lr17", "gd_360", "gd_360_lr133", "gd_new"], "gd_p", M, "setting")
    print("\nGD then GPTQ 4"); table(["gd_p>gptq4", "gd_240_lr2>gptq4", "gd_240_lr17>gptq4", "gd_360_lr133>gptq4"], "gd_p>gptq4", M, "setting")
    print("\nWanda 25% then GD"); table(["wanda25>gd_p", "wanda25>gd_240_lr2", "wanda25>gd_240_lr17", "wanda25>gd_360_lr133"], "wanda25>gd_p", M, "setting")
    print("\nMEMIT then GD"); table(["memit>gd_p", "memit>gd_240_lr2", "memit>gd_240_lr17", "memit>gd_360_lr133"], "memit>gd_p", E, "setting")
    print("\nRMU"); table(["rmu_250", "rmu_200", "rmu_150"], "rmu_250", M, "setting")
    print("\nRMU compositions"); table(["rmu_250>gptq4", "rmu_200>gptq4"], "rmu_250>gptq4", M, "setting"); table(["wanda25>rmu_250", "wanda25>rmu_200"], "wanda25>rmu_250", M, "setting")
    print("\nInteraction (composed - GD alone, same seed), candidate vs reference")
    print("| composition | GD setting | seeds | Δ wmdp_avg | Δ mmlu | Δ qa_f1 | candidate − reference (wmdp_avg / mmlu) |")
    print("|---|---|---|---|---|---|---|")
    for comp, fmt in [("GD then GPTQ 4", "{}>gptq4"), ("Wanda 25% then GD", "wanda25>{}"), ("MEMIT then GD", "memit>{}")]:
        for g in ["gd_p", "gd_240_lr2", "gd_360_lr133"]:
            c = fmt.format(g); cr = fmt.format("gd_p")
            if c not in by or g not in by: continue
            seeds = sorted(set(by[c]) & set(by[g]) & set(by[cr]) & set(by["gd_p"]))
            d = {m: [by[c][k]["eval"][m] - by[g][k]["eval"][m] for k in seeds] for m in ["wmdp_avg", "mmlu", "qa_f1"]}
            dr = {m: [by[cr][k]["eval"][m] - by["gd_p"][k]["eval"][m] for k in seeds] for m in ["wmdp_avg", "mmlu"]}
            cells = [f"{ms(d[m])[0]:+.3f} ± {ms(d[m])[1]:.3f}" for m in ["wmdp_avg", "mmlu", "qa_f1"]]
            diff = "" if g == "gd_p" else " / ".join(f"{ms([a - b for a, b in zip(d[m], dr[m])])[0]:+.3f} ± {ms([a - b for a, b in zip(d[m], dr[m])])[1]:.3f}" for m in ["wmdp_avg", "mmlu"])
            print(f"| {comp} | {g} | {len(seeds)} | " + " | ".join(cells) + f" | {diff} |")


def ms(xs):
    n = len(xs); mu = sum(xs) / n
    return mu, (math.sqrt(sum((x - mu) ** 2 for x in xs) / (n - 1) / n) if n > 1 else float("nan"))
def v(r, m):
    x = r["eval"][m]; return math.log10(x) if m == "ppl_wikitext" else x
def cell(xs, m):
    mu, se = ms(xs)
    if m == "ppl_wikitext": return f"{10**mu:.0f} (×/÷ {10**se:.2f})"
    return f"{mu:.3f} ± {se:.3f}"
def dcell(xs, m):
    mu, se = ms(xs)
    if m == "ppl_wikitext": return f"×{10**mu:.2f} (×/÷ {10**se:.2f})"
    return f"{mu:+.3f} ± {se:.3f}"
def table(settings, ref, M, label):
    print(f"| {label} | seeds | " + " | ".join(M) + " | stage s | ratio |")
    print("|---" * (len(M) + 4) + "|")
    for s in settings:
        if s not in by: continue
        seeds = sorted(by[s])
        w = [sum(st["wall_ms"] for st in by[s][k].get("stages", [])) / 1000 for k in seeds]
        ps = sorted(set(seeds) & set(by.get(ref, {})))
        rat = ms([sum(st["wall_ms"] for st in by[s][k]["stages"]) / sum(st["wall_ms"] for st in by[ref][k]["stages"]) for k in ps]) if s != ref and ps and by[s][ps[0]].get("stages") else None
        print(f"| {s} | {len(seeds)} | " + " | ".join(cell([v(by[s][k], m) for k in seeds], m) for m in M)
              + f" | {ms(w)[0]:.1f} | " + (f"{rat[0]:.2f} ± {rat[1]:.2f}" if rat else "") + " |")
        if s != ref and ref in by and ps and by[s][ps[0]].get("stages"):
            print(f"| − {ref} (paired) | {len(ps)} | " + " | ".join(dcell([v(by[s][k], m) - v(by[ref][k], m) for k in ps], m) for m in M) + " | | |")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "run":
        run(sys.argv[2], [int(s) for s in sys.argv[3].split(",")], sys.argv[4].split(","))
    elif len(sys.argv) >= 3 and sys.argv[1] == "table":
        report(sys.argv[2:])
    else:
        sys.exit(__doc__)
