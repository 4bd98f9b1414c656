#!/usr/bin/env python3
"""edit_presets.py - a tiny-preset candidate for an editor measured side by side with the current one.

For each setting (a name and a stage JSON), model and edit set it runs
    cisweep apply MODEL --stage STAGE --out TMP --data WORLD --edit-set K --threads 1 [--cache C]
    cisweep-worker eval TMP --world WORLD --edit-set K --profile sweep --threads 1 --json
(the study's own evaluation profile) and appends one JSON line per run to OUT.jsonl: setting,
model, edit set, the stage's effective params, its apply wall and CPU seconds, and the metrics the
study reports (edit success, generalization, locality, MMLU, WMDP, wikitext perplexity). Settings
run interleaved per edit set (setting A then B on the same set), so timing ratios are side by side.
With --summary it prints, from OUT.jsonl only, a Markdown table per model: mean ± standard error
over the edit sets of every metric and the apply seconds.

Usage:
  edit_presets.py run OUT.jsonl --world W --models DIR[,DIR..] --sets 1-10 [--cache C]
                  --setting NAME='{"method":"memit","params":{"v_steps":35}}' [--setting ...]
  edit_presets.py summary OUT.jsonl
(docs/editing.md "Tiny presets measured"; every number is computed from the runs' own output.)"""
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

METRICS = ["edit_success", "generalization", "locality", "mmlu", "wmdp_avg", "ppl_wikitext"]
HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(HERE, "..", "..", "build", "bin")


def die(msg):
    print(f"edit_presets: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_sets(s):
    out = []
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def one_run(model, stage, k, world, cache, tmp):
    cmd = [os.path.join(BIN, "cisweep"), "apply", model, "--stage", json.dumps(stage), "--out", tmp,
           "--data", world, "--edit-set", str(k), "--threads", "1"]
    if cache:
        cmd += ["--cache", cache]
    c0, t0 = child_cpu(), time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    cpu, wall = child_cpu() - c0, time.monotonic() - t0
    if p.returncode != 0:
        die(f"apply {model} set {k}: exit {p.returncode}: {p.stderr.strip()[-400:]}")
    applied = json.load(open(os.path.join(tmp, "apply.json")))
    st = applied["stages"][0]
    e = subprocess.run([os.path.join(BIN, "cisweep-worker"), "eval", tmp, "--world", world, "--edit-set", str(k),
                        "--profile", "sweep", "--threads", "1", "--json"], capture_output=True, text=True)
    if e.returncode != 0:
        die(f"eval {model} set {k}: exit {e.returncode}: {e.stderr.strip()[-400:]}")
    lines = [l for l in e.stdout.splitlines() if l.startswith("{")]
    if not lines:
        die(f"eval {model} set {k}: no JSON line on stdout")
    m = json.loads(lines[-1])
    row = {"model": os.path.basename(model.rstrip("/")), "edit_set": k, "params": st["params"],
           "apply_s": applied["apply_s"], "apply_cpu_s": cpu, "apply_wall_s": wall,
           "phases_s": st.get("phases_s", {})}
    for name in METRICS:
        if name not in m:
            die(f"eval {model} set {k}: metric {name} missing from the JSON")
        row[name] = m[name]
    return row


def cmd_run(argv):
    out, world, models, sets, cache, settings = None, None, [], [], None, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--world", "--models", "--sets", "--cache", "--setting"):
            if i + 1 >= len(argv):
                die(f"{a}: expected a value")
            v = argv[i + 1]
            i += 2
            if a == "--world":
                world = v
            elif a == "--models":
                models = v.split(",")
            elif a == "--sets":
                sets = parse_sets(v)
            elif a == "--cache":
                cache = v
            else:
                if "=" not in v:
                    die(f"--setting {v!r}: expected NAME=STAGE_JSON")
                name, js = v.split("=", 1)
                try:
                    settings.append((name, json.loads(js)))
                except json.JSONDecodeError as ex:
                    die(f"--setting {name}: stage JSON: {ex}")
        elif out is None:
            out, i = a, i + 1
        else:
            die(f"unexpected argument {a!r}")
    if not out or not world or not models or not sets or not settings:
        die("run: expected OUT.jsonl --world W --models M --sets S --setting NAME=JSON ...")
    tmp = tempfile.mkdtemp(prefix="edit_presets.")
    try:
        with open(out, "a") as f:
            for model in models:
                for k in sets:
                    for name, stage in settings:
                        row = one_run(model, stage, k, world, cache, tmp)
                        row["setting"] = name
                        f.write(json.dumps(row) + "\n")
                        f.flush()
                        print(f"{name} {row['model']} set {k}: es {row['edit_success']:.3f} "
                              f"loc {row['locality']:.3f} mmlu {row['mmlu']:.3f} apply {row['apply_s']:.2f} s",
                              flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def mse(xs):
    n = len(xs)
    m = sum(xs) / n
    se = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n) if n > 1 else float("nan")
    return m, se


def cmd_summary(argv):
    if len(argv) != 1:
        die("summary: expected OUT.jsonl")
    rows = []
    try:
        f = open(argv[0])
    except OSError as ex:
        die(f"{argv[0]}: {ex.strerror} (expected the JSON lines of `edit_presets.py run`)")
    with f:
        for ln, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as ex:
                die(f"{argv[0]}:{ln}: {ex}")
            missing = [k for k in ["model", "setting", "edit_set", "apply_cpu_s"] + METRICS
                       if not isinstance(row, dict) or k not in row]
            if missing:
                die(f"{argv[0]}:{ln}: expected a run row, missing {', '.join(missing)}")
            rows.append(row)
    if not rows:
        die(f"{argv[0]}: no rows")
    for model in sorted({r["model"] for r in rows}):
        mr = [r for r in rows if r["model"] == model]
        names = list(dict.fromkeys(r["setting"] for r in mr))
        sets = sorted({r["edit_set"] for r in mr})
        print(f"\n{model}, edit sets {sets[0]}-{sets[-1]} (n = {len(sets)}), mean ± standard error\n")
        print("| setting | " + " | ".join(METRICS) + " | apply wall s | apply CPU s |")
        print("|---" * (len(METRICS) + 3) + "|")
        for name in names:
            sr = [r for r in mr if r["setting"] == name]
            cells = []
            for k in METRICS + ["apply_s", "apply_cpu_s"]:
                m, se = mse([r[k] for r in sr])
                fmt = "{:.2f} ± {:.2f}" if k in ("ppl_wikitext", "apply_s", "apply_cpu_s") else "{:.3f} ± {:.3f}"
                cells.append(fmt.format(m, se))
            print(f"| {name} (n {len(sr)}) | " + " | ".join(cells) + " |")
        # paired over the edit sets both ran: each setting minus the first (the reference)
        ref = {r["edit_set"]: r for r in mr if r["setting"] == names[0]}
        if len(names) > 1:
            print(f"\npaired difference to {names[0]} (mean ± standard error of the per-set difference)\n")
            print("| setting | " + " | ".join("Δ " + k for k in METRICS) + " | apply CPU ratio |")
            print("|---" * (len(METRICS) + 2) + "|")
            for name in names[1:]:
                sr = [r for r in mr if r["setting"] == name and r["edit_set"] in ref]
                cells = []
                for k in METRICS:
                    m, se = mse([r[k] - ref[r["edit_set"]][k] for r in sr])
                    fmt = "{:+.2f} ± {:.2f}" if k == "ppl_wikitext" else "{:+.3f} ± {:.3f}"
                    cells.append(fmt.format(m, se))
                ratio = sum(r["apply_cpu_s"] for r in sr) / sum(ref[r["edit_set"]]["apply_cpu_s"] for r in sr)
                print(f"| {name} (n {len(sr)}) | " + " | ".join(cells) + f" | {ratio:.2f} |")
    return 0


def main(argv):
    if len(argv) < 2 or argv[1] not in ("run", "summary"):
        print(__doc__, file=sys.stderr)
        return 2
    return cmd_run(argv[2:]) if argv[1] == "run" else cmd_summary(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
