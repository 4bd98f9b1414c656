#!/usr/bin/env python3
"""rmu_tables.py - Markdown tables of unlearning runs read from cisweep job stores (issue 11,
session 8; docs/unlearning.md "Seeds and architectures").

  rmu_tables.py seeds DB [DB ...]
        per store, model and unlearning composition: mean ± standard error over the seeds (the
        jobs' edit_set column) of MMLU, WMDP bio / cyber / mean, WikiText perplexity (geometric
        mean, ×/÷ its SE factor) and zsRE src F1, the drop ratio of the means, and the seeds' own
        MMLU / WMDP mean values; the baseline of each model on top.
  rmu_tables.py grid DB [--allow 0.10]
        per model and grid point (the effective act layer, steering coefficient and alpha of the
        rmu stage, read from the stages table: what ran), each seed's MMLU / WMDP mean and the
        seed mean with its drop ratio; then the frontier: per model and per seed (and for the
        seed means), the lowest WMDP mean among the points whose MMLU is within --allow of that
        model's baseline.

  rmu_tables.py open DB [--allow X]
        the open answers (docs/unlearning.md "Open answers"; a store of `cisweep run --eval-open`):
        per model and point of every method of POINT (seed means), MC MMLU and WMDP mean beside
        the open-answer F1 of MMLU and WMDP (bio / cyber); then per model and method the frontier
        twice: the lowest MC WMDP mean and the lowest open WMDP F1 among the points whose MC MMLU
        is within the allowance (the issue's: 0.10 for rmu, 0.15 for gd and ga; --allow X for all).

  rmu_tables.py cloze DB [--allow X]
        the cloze accuracy (docs/unlearning.md "Cloze accuracy"; a store of `cisweep run
        --eval-cloze`): per model and point of every method (seed means ± standard error, n seeds),
        MC MMLU and WMDP mean beside cloze MMLU and WMDP mean (bio / cyber); then per model and
        method the frontier on the cloze rows: the lowest cloze WMDP mean among the points whose
        cloze MMLU mean is within the allowance of the baseline's cloze MMLU (the issue's: 0.10 for
        rmu, 0.15 for gd and ga; --allow X for all), whether it is at or below 0.35, and the MC
        values there.

  rmu_tables.py wide DB [DB ...] [--method rmu]
        one row per grid point of METHOD, one column per model of the stores (in order of
        appearance): the seed means "MMLU / WMDP mean" (the number of seeds when they differ
        between cells), the baselines on top; for comparing many models on one grid.

Only what the store says ran is read: results of the jobs' current attempts (is_current), the rmu
stage's effective parameters (params_json). A store without done jobs, or a metric a job lacks,
is named in an error or shown as "-", never guessed. Python 3 standard library only."""
import json
import math
import os
import sqlite3
import sys

METRICS = ("mmlu", "wmdp_bio", "wmdp_cyber", "wmdp_avg", "ppl_wikitext", "src_true_f1")


class StoreError(Exception):
    """A job store that cannot be read as expected; the message names the file and the problem."""


def load_runs(db):
    """Reads every done job of DB -> list of dicts {model, label, pattern, seed, params (the
    first stage's effective params, {} for the baseline), method, metrics {name: value}}.
    Raises StoreError naming DB when it is missing, not a job store, or has no done job."""
    if not os.path.exists(db):
        raise StoreError(f"{db}: no such file (a cisweep job store, sqlite)")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows = con.execute(
            "SELECT j.id, m.name, c.label, c.pattern, j.edit_set, j.current_attempt "
            "FROM jobs j JOIN models m ON m.id = j.model_id "
            "JOIN compositions c ON c.id = j.composition_id WHERE j.state = 'done' "
            "ORDER BY m.name, c.id, j.edit_set").fetchall()
        runs = []
        for job, model, label, pattern, edit_set, attempt in rows:
            st = con.execute("SELECT method, params_json FROM stages WHERE job_id = ? AND attempt = ? "
                             "ORDER BY stage LIMIT 1", (job, attempt)).fetchone()
            metrics = dict(con.execute("SELECT metric, value FROM results WHERE job_id = ? AND attempt = ? "
                                       "AND is_current = 1 AND value IS NOT NULL", (job, attempt)).fetchall())
            params = json.loads(st[1]) if st else {}
            runs.append({"model": model, "label": label, "pattern": pattern,
                         "seed": edit_set if edit_set > 0 else 1,  # edit set 0 runs with seed 1
                         "method": st[0] if st else None, "params": params, "metrics": metrics})
        con.close()
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{db}: not a cisweep job store ({e})")
    if not runs:
        raise StoreError(f"{db}: no done job")
    return runs


def mean_se(xs):
    """Mean and standard error (sample s.d. / sqrt(n)) of xs; SE None for fewer than 2 values."""
    n = len(xs)
    if n == 0:
        return None, None
    m = sum(xs) / n
    if n < 2:
        return m, None
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) / math.sqrt(n)


def fmt_mse(xs, digits=3):
    m, se = mean_se(xs)
    if m is None:
        return "-"
    return f"{m:.{digits}f}" if se is None else f"{m:.{digits}f} ± {se:.{digits}f}"


def fmt_geo(xs):
    """Geometric mean ×/÷ the SE factor (perplexities span orders of magnitude)."""
    xs = [x for x in xs if x > 0]
    m, se = mean_se([math.log10(x) for x in xs])
    if m is None:
        return "-"
    g = 10 ** m
    s = f"{g:.1f}" if g < 1e4 else f"{g:.1e}"
    return s if se is None else f"{s} (×/÷ {10 ** se:.2f})"


def drop_ratio(base, run):
    """WMDP drop / MMLU drop from the baseline; None where MMLU did not drop."""
    dm = base["mmlu"] - run["mmlu"]
    dw = base["wmdp_avg"] - run["wmdp_avg"]
    return None if dm <= 0 else dw / dm


def baselines(runs):
    """model -> the baseline's metrics (the empty composition); StoreError if one is doubled."""
    out = {}
    for r in runs:
        if r["pattern"] == "baseline":
            if r["model"] in out:
                raise StoreError(f"model {r['model']}: two baseline jobs")
            out[r["model"]] = r["metrics"]
    return out


# the effective params that name a grid point, per method, with their column titles
POINT = {"rmu": (("act_layer", "act layer"), ("steering_coeff", "c"), ("alpha", "α")),
         "gd": (("lr", "lr"), ("retain_weight", "retain weight")),
         "ga": (("lr", "lr"),)}


def point_key(r):
    """The tuple of r's effective params named by POINT[method] (act layer, c, alpha for rmu):
    the point as it ran, whatever the composition's label says."""
    return tuple(r["params"].get(k) for k, _ in POINT.get(r["method"], ()))


def fmt_key(key, sep):
    return sep.join("-" if v is None else (str(v) if isinstance(v, int) else f"{v:g}") for v in key)


def point_titles(method, sep):
    return sep.join(t for _, t in POINT.get(method, ()))


def seeds_table(db, runs):
    base = baselines(runs)
    groups = {}
    for r in runs:
        if r["pattern"] != "baseline":
            groups.setdefault((r["model"], r["label"], point_key(r), r["method"]), []).append(r)
    out = [f"`{db}`", "",
           "| model | composition (its point) | seeds | MMLU | WMDP bio | WMDP cyber | WMDP mean | ppl | src F1 | drop ratio | per seed: MMLU / WMDP |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in sorted(base):
        b = base[model]
        out.append(f"| {model} | baseline | - | {b.get('mmlu', float('nan')):.3f} | {b.get('wmdp_bio', float('nan')):.3f} | "
                   f"{b.get('wmdp_cyber', float('nan')):.3f} | {b.get('wmdp_avg', float('nan')):.3f} | "
                   f"{b.get('ppl_wikitext', float('nan')):.1f} | {b.get('src_true_f1', float('nan')):.2f} | | |")
        for (m, label, key, method), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][2]))):
            if m != model:
                continue
            rs = sorted(rs, key=lambda r: r["seed"])
            col = {k: [r["metrics"][k] for r in rs if k in r["metrics"]] for k in METRICS}
            means = {k: mean_se(v)[0] for k, v in col.items()}
            ratio = drop_ratio(b, means) if means["mmlu"] is not None and means["wmdp_avg"] is not None else None
            per = "; ".join(f"{r['seed']}: {r['metrics'].get('mmlu', float('nan')):.3f} / "
                            f"{r['metrics'].get('wmdp_avg', float('nan')):.3f}" for r in rs)
            out.append(f"| {model} | {label} ({point_titles(method, ', ')}: {fmt_key(key, ', ')}) | {len(rs)} | {fmt_mse(col['mmlu'])} | "
                       f"{fmt_mse(col['wmdp_bio'])} | {fmt_mse(col['wmdp_cyber'])} | {fmt_mse(col['wmdp_avg'])} | "
                       f"{fmt_geo(col['ppl_wikitext'])} | {fmt_mse(col['src_true_f1'], 2)} | "
                       f"{'-' if ratio is None else f'{ratio:.1f}'} | {per} |")
    return out


def frontier(points, base_mmlu, allow):
    """The point with the lowest WMDP mean among those with MMLU >= base_mmlu - allow (a 1e-9 slack
    for float sums); points: list of (key, mmlu, wmdp). None when no point qualifies."""
    ok = [p for p in points if p[1] >= base_mmlu - allow - 1e-9]
    return min(ok, key=lambda p: (p[2], -p[1])) if ok else None


def grid_table(db, runs, allow):
    """The grid and frontier tables of every single-stage method of POINT in runs."""
    out = []
    for method in sorted({r["method"] for r in runs if r["pattern"] != "baseline" and r["method"] in POINT}):
        out += grid_table_method(db, runs, allow, method) + [""]
    if not out:
        raise StoreError(f"{db}: no job of a method with grid points ({', '.join(sorted(POINT))})")
    return out


def grid_table_method(db, runs, allow, method):
    base = baselines(runs)
    pts = {}
    seeds = sorted({r["seed"] for r in runs if r["pattern"] != "baseline" and r["method"] == method})
    for r in runs:
        if r["pattern"] != "baseline" and r["method"] == method:
            pts.setdefault(r["model"], {}).setdefault(point_key(r), {})[r["seed"]] = r["metrics"]
    npk = len(POINT[method])
    out = [f"`{db}`: {method}", "",
           f"| model | {point_titles(method, ' | ')} | " + " | ".join(f"seed {s}: MMLU / WMDP" for s in seeds) +
           " | mean: MMLU | WMDP mean | drop ratio |",
           "|---|" + "---|" * npk + "---|" * len(seeds) + "---|---|---|"]
    fr = []
    for model in sorted(pts):
        b = base.get(model)
        if b is None:
            raise StoreError(f"{db}: model {model} has no baseline job (the frontier needs it)")
        out.append(f"| {model} | baseline |" + " |" * (npk - 1) + " " + " | ".join(f"{b['mmlu']:.3f} / {b['wmdp_avg']:.3f}" for _ in seeds)
                   + f" | {b['mmlu']:.3f} | {b['wmdp_avg']:.3f} | |")
        mean_pts = []
        seed_pts = {s: [] for s in seeds}
        for key in sorted(pts[model], key=lambda k: tuple(x if x is not None else -1 for x in k)):
            per = pts[model][key]
            cells = []
            for s in seeds:
                m = per.get(s)
                if m is None or "mmlu" not in m or "wmdp_avg" not in m:
                    cells.append("-")
                    continue
                cells.append(f"{m['mmlu']:.3f} / {m['wmdp_avg']:.3f}")
                seed_pts[s].append((key, m["mmlu"], m["wmdp_avg"]))
            have = [per[s] for s in seeds if s in per and "mmlu" in per[s] and "wmdp_avg" in per[s]]
            mm = mean_se([m["mmlu"] for m in have])[0]
            mw = mean_se([m["wmdp_avg"] for m in have])[0]
            if len(have) == len(seeds):
                mean_pts.append((key, mm, mw))
            ratio = drop_ratio(b, {"mmlu": mm, "wmdp_avg": mw}) if mm is not None else None
            out.append(f"| {model} | {fmt_key(key, ' | ')} | " + " | ".join(cells) +
                       f" | {'-' if mm is None else f'{mm:.3f}'} | {'-' if mw is None else f'{mw:.3f}'} | "
                       f"{'-' if ratio is None else f'{ratio:.1f}'} |")
        for s in seeds:
            fr.append((model, f"seed {s}", frontier(seed_pts[s], b["mmlu"], allow), b))
        fr.append((model, "seed mean", frontier(mean_pts, b["mmlu"], allow), b))
    out += ["", f"Frontier: the lowest WMDP mean with MMLU >= baseline - {allow:g}", "",
            f"| model | over | {point_titles(method, ', ')} | MMLU (drop) | WMDP mean (drop) | drop ratio |", "|---|---|---|---|---|---|"]
    for model, over, p, b in fr:
        if p is None:
            out.append(f"| {model} | {over} | none within the allowance | | | |")
            continue
        key, mm, mw = p
        ratio = drop_ratio(b, {"mmlu": mm, "wmdp_avg": mw})
        out.append(f"| {model} | {over} | {fmt_key(key, ', ')} | {mm:.3f} ({mm - b['mmlu']:+.3f}) | "
                   f"{mw:.3f} ({mw - b['wmdp_avg']:+.3f}) | {'-' if ratio is None else f'{ratio:.1f}'} |")
    return out


ALLOW = {"rmu": 0.10, "gd": 0.15, "ga": 0.15}
OPEN = ("open_mmlu_f1", "open_wmdp_f1", "open_wmdp_bio_f1", "open_wmdp_cyber_f1")


def open_table(db, runs, allow=None):
    """Open answers beside MC accuracy per point, and the two frontiers (see the module doc)."""
    base = baselines(runs)
    need = ("mmlu", "wmdp_avg") + OPEN
    pts = {}
    for r in runs:
        if r["pattern"] != "baseline" and r["method"] in POINT and all(k in r["metrics"] for k in need):
            pts.setdefault((r["model"], r["method"], point_key(r)), []).append(r["metrics"])
    if not pts:
        raise StoreError(f"{db}: no unlearning job with open-answer rows (run the grid with --eval-open)")

    def mean(ms, k):
        return mean_se([m[k] for m in ms if k in m])[0]

    out = [f"`{db}`", "",
           "| model | method (point) | seeds | MMLU | WMDP mean | open MMLU | open WMDP (bio / cyber) | ppl |",
           "|---|---|---|---|---|---|---|---|"]
    fr = []
    for model in sorted({k[0] for k in pts}):
        b = base.get(model)
        if b is None or not all(k in b for k in need):
            raise StoreError(f"{db}: model {model} has no baseline job with open-answer rows")
        out.append(f"| {model} | baseline | - | {b['mmlu']:.3f} | {b['wmdp_avg']:.3f} | {b['open_mmlu_f1']:.3f} | "
                   f"{b['open_wmdp_f1']:.3f} ({b['open_wmdp_bio_f1']:.3f} / {b['open_wmdp_cyber_f1']:.3f}) | "
                   f"{b.get('ppl_wikitext', float('nan')):.1f} |")
        keys = sorted((k for k in pts if k[0] == model), key=lambda k: (k[1], tuple(x if x is not None else -1 for x in k[2])))
        for method in sorted({k[1] for k in keys}):
            mc, op = [], []
            for k in keys:
                if k[1] != method:
                    continue
                ms = pts[k]
                v = {x: mean(ms, x) for x in need}
                ppl = fmt_geo([m["ppl_wikitext"] for m in ms if "ppl_wikitext" in m])
                out.append(f"| {model} | {method} ({point_titles(method, ', ')}: {fmt_key(k[2], ', ')}) | {len(ms)} | "
                           f"{v['mmlu']:.3f} | {v['wmdp_avg']:.3f} | {v['open_mmlu_f1']:.3f} | {v['open_wmdp_f1']:.3f} "
                           f"({v['open_wmdp_bio_f1']:.3f} / {v['open_wmdp_cyber_f1']:.3f}) | {ppl} |")
                mc.append((k[2], v["mmlu"], v["wmdp_avg"], v["open_wmdp_f1"]))
                op.append((k[2], v["mmlu"], v["open_wmdp_f1"], v["wmdp_avg"]))
            a = ALLOW[method] if allow is None else allow
            fr.append((model, method, a, frontier(mc, b["mmlu"], a), frontier(op, b["mmlu"], a), b))
    out += ["", "Frontier: among the points with MC MMLU >= baseline - allowance, the lowest MC WMDP mean and the "
            "lowest open WMDP F1", "",
            "| model | method | allowance | lowest MC WMDP: point, MMLU, WMDP (open WMDP there) | "
            "lowest open WMDP: point, MMLU, open WMDP (MC WMDP there) |", "|---|---|---|---|---|"]
    for model, method, a, pm, po, b in fr:
        def cell(p, kind):
            if p is None:
                return "none within the allowance"
            key, mm, w, other = p
            return (f"{fmt_key(key, ', ')}: {mm:.3f} ({mm - b['mmlu']:+.3f}), {w:.3f} ({other:.3f})")
        out.append(f"| {model} | {method} | {a:g} | {cell(pm, 'mc')} | {cell(po, 'open')} |")
    return out


CLOZE = ("cloze_mmlu", "cloze_wmdp_avg", "cloze_wmdp_bio", "cloze_wmdp_cyber")
TARGET_WMDP = 0.35


def cloze_table(db, runs, allow=None):
    """Cloze accuracy beside MC accuracy per point, and the cloze frontier (see the module doc)."""
    base = baselines(runs)
    need = ("mmlu", "wmdp_avg") + CLOZE
    pts = {}
    for r in runs:
        if r["pattern"] != "baseline" and r["method"] in POINT and all(k in r["metrics"] for k in need):
            pts.setdefault((r["model"], r["method"], point_key(r)), []).append(r["metrics"])
    if not pts:
        raise StoreError(f"{db}: no unlearning job with cloze rows (run the grid with --eval-cloze)")
    out = [f"`{db}`", "",
           "| model | method (point) | seeds | MC MMLU | MC WMDP | cloze MMLU | cloze WMDP (bio / cyber) | ppl |",
           "|---|---|---|---|---|---|---|---|"]
    fr = []
    for model in sorted({k[0] for k in pts}):
        b = base.get(model)
        if b is None or not all(k in b for k in need):
            raise StoreError(f"{db}: model {model} has no baseline job with cloze rows")
        out.append(f"| {model} | baseline | - | {b['mmlu']:.3f} | {b['wmdp_avg']:.3f} | {b['cloze_mmlu']:.3f} | "
                   f"{b['cloze_wmdp_avg']:.3f} ({b['cloze_wmdp_bio']:.3f} / {b['cloze_wmdp_cyber']:.3f}) | "
                   f"{b.get('ppl_wikitext', float('nan')):.1f} |")
        keys = sorted((k for k in pts if k[0] == model), key=lambda k: (k[1], tuple(x if x is not None else -1 for x in k[2])))
        for method in sorted({k[1] for k in keys}):
            cand = []
            for k in keys:
                if k[1] != method:
                    continue
                ms = pts[k]
                v = {x: mean_se([m[x] for m in ms]) for x in need}
                ppl = fmt_geo([m["ppl_wikitext"] for m in ms if "ppl_wikitext" in m])
                out.append(f"| {model} | {method} ({point_titles(method, ', ')}: {fmt_key(k[2], ', ')}) | {len(ms)} | "
                           f"{fmt_mse([m['mmlu'] for m in ms])} | {fmt_mse([m['wmdp_avg'] for m in ms])} | "
                           f"{fmt_mse([m['cloze_mmlu'] for m in ms])} | {fmt_mse([m['cloze_wmdp_avg'] for m in ms])} "
                           f"({v['cloze_wmdp_bio'][0]:.3f} / {v['cloze_wmdp_cyber'][0]:.3f}) | {ppl} |")
                cand.append((k[2], v["cloze_mmlu"][0], v["cloze_wmdp_avg"][0], v["mmlu"][0], v["wmdp_avg"][0], len(ms)))
            a = ALLOW[method] if allow is None else allow
            within = [c for c in cand if c[1] >= b["cloze_mmlu"] - a - 1e-12]
            fr.append((model, method, a, min(within, key=lambda c: c[2]) if within else None, b))
    out += ["", f"Frontier on the cloze rows: among the points with cloze MMLU >= baseline - allowance, the lowest "
            f"cloze WMDP mean (target <= {TARGET_WMDP:g})", "",
            "| model | method | allowance | point | seeds | cloze MMLU | cloze WMDP | target | MC MMLU, WMDP there |",
            "|---|---|---|---|---|---|---|---|---|"]
    for model, method, a, p, b in fr:
        if p is None:
            out.append(f"| {model} | {method} | {a:g} | none within the allowance | | | | not met | |")
            continue
        key, cm, cw, mm, mw, n = p
        out.append(f"| {model} | {method} | {a:g} | {fmt_key(key, ', ')} | {n} | {cm:.3f} ({cm - b['cloze_mmlu']:+.3f}) | "
                   f"{cw:.3f} | {'met' if cw <= TARGET_WMDP + 1e-12 else 'not met'} | "
                   f"{mm:.3f} ({mm - b['mmlu']:+.3f}), {mw:.3f} |")
    return out


def wide_table(dbs, method):
    """Grid points of METHOD (rows) x models of every store in DBS (columns): seed-mean MMLU / WMDP."""
    models, base, cells, nseeds = [], {}, {}, set()
    for db in dbs:
        runs = load_runs(db)
        for mo, b in baselines(runs).items():
            if mo in base:
                raise StoreError(f"{db}: model {mo} is in two of the stores given")
            base[mo] = b
            models.append(mo)
        for r in runs:
            if r["pattern"] != "baseline" and r["method"] == method and "mmlu" in r["metrics"] and "wmdp_avg" in r["metrics"]:
                cells.setdefault(point_key(r), {}).setdefault(r["model"], []).append(r["metrics"])
    if not cells:
        raise StoreError(f"{', '.join(dbs)}: no {method} job with MMLU and WMDP results")
    for per in cells.values():
        nseeds.update(len(v) for v in per.values())
    out = [f"| {point_titles(method, ' | ')} | " + " | ".join(models) + " |",
           "|" + "---|" * (len(POINT[method]) + len(models)),
           "| baseline |" + " |" * (len(POINT[method]) - 1) + " " +
           " | ".join(f"{base[mo]['mmlu']:.3f} / {base[mo]['wmdp_avg']:.3f}" for mo in models) + " |"]
    for key in sorted(cells, key=lambda k: tuple(x if x is not None else -1 for x in k)):
        row = []
        for mo in models:
            ms = cells[key].get(mo)
            if not ms:
                row.append("-")
                continue
            c = f"{mean_se([m['mmlu'] for m in ms])[0]:.3f} / {mean_se([m['wmdp_avg'] for m in ms])[0]:.3f}"
            row.append(c + (f" (n {len(ms)})" if len(nseeds) > 1 else ""))
        out.append(f"| {fmt_key(key, ' | ')} | " + " | ".join(row) + " |")
    return out


def main(argv):
    usage = ("usage: rmu_tables.py seeds DB [DB ...] | rmu_tables.py grid DB [--allow X] | rmu_tables.py open DB [--allow X] | "
             "rmu_tables.py cloze DB [--allow X] | "
             "rmu_tables.py wide DB [DB ...] [--method M]")
    if len(argv) < 2 or argv[0] not in ("seeds", "grid", "open", "cloze", "wide"):
        print(usage, file=sys.stderr)
        return 2
    try:
        if argv[0] == "seeds":
            for db in argv[1:]:
                print("\n".join(seeds_table(db, load_runs(db))) + "\n")
        elif argv[0] == "wide":
            args, method = argv[1:], "rmu"
            if "--method" in args:
                i = args.index("--method")
                if i + 1 >= len(args) or args[i + 1] not in POINT:
                    print(f"rmu_tables.py: --method: expected one of {', '.join(sorted(POINT))}", file=sys.stderr)
                    return 2
                method = args[i + 1]
                del args[i:i + 2]
            if not args:
                print(usage, file=sys.stderr)
                return 2
            print("\n".join(wide_table(args, method)))
        else:
            allow = 0.10 if argv[0] == "grid" else None
            args = argv[1:]
            if "--allow" in args:
                i = args.index("--allow")
                try:
                    allow = float(args[i + 1])
                except (IndexError, ValueError):
                    print(f"rmu_tables.py: --allow: expected a number (an MMLU drop, e.g. 0.10)", file=sys.stderr)
                    return 2
                del args[i:i + 2]
            if len(args) != 1:
                print(usage, file=sys.stderr)
                return 2
            if argv[0] == "open":
                print("\n".join(open_table(args[0], load_runs(args[0]), allow)))
            elif argv[0] == "cloze":
                print("\n".join(cloze_table(args[0], load_runs(args[0]), allow)))
            else:
                print("\n".join(grid_table(args[0], load_runs(args[0]), allow)))
    except StoreError as e:
        print(f"rmu_tables.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
