#!/usr/bin/env bash
# compress_quality.sh - the quality table of docs/compression.md: every compressor at the paper's
# levels applied to a model with `cisweep apply` (its record in DIR/NAME/apply.json), then scored
# with `cisweep eval --json` (quantizers with --wbits/--group-size from the record, so avg_bits is
# upstream's wbits + 32/group), side by side with the uncompressed model and with per-matrix
# magnitude pruning (the SparseGPT/Wanda papers' baseline, written with NumPy here: not a method of
# the system). Prints a markdown table and writes OUT/quality.json.
# Usage: tests/bench/compress_quality.sh MODEL WORLD OUT   (env: LEVELS="wanda:0.5 gptq:4 ..." to
# run a subset; EDIT_SET=1). Takes about 25 minutes for the full set on an idle 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
C=${CISWEEP_BUILD:-build}/bin/cisweep
MODEL=$1 WORLD=$2 OUT=$3
EDIT_SET=${EDIT_SET:-1}
LEVELS=${LEVELS:-"base magnitude:0.5 wanda:0.25 wanda:0.5 wanda:0.75 sparsegpt:0.25 sparsegpt:0.5 sparsegpt:0.75 gptq:8 gptq:4 gptq:3 gptq:2 awq:8 awq:4 awq:3 awq:2"}
mkdir -p "$OUT"
for lv in $LEVELS; do
    name=${lv/:/_}
    [ -f "$OUT/$name/eval.json" ] && continue
    m=${lv%%:*} v=${lv#*:}
    extra=()
    case $m in
    base) dir=$MODEL ;;
    magnitude)
        dir=$OUT/$name; rm -rf "$dir"; mkdir -p "$dir"; cp "$MODEL"/*.json "$dir"/
        python3 - "$MODEL" "$dir" "$v" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file, save_file
src, dst, s = sys.argv[1], sys.argv[2], float(sys.argv[3])
t = load_file(f"{src}/model.safetensors")
for k, w in t.items():
    if k.startswith("model.layers.") and k.endswith("proj.weight"):
        a = np.abs(w.astype(np.float32)).flatten()
        thr = np.sort(a)[int(a.size * s)]
        t[k] = np.where(np.abs(w) <= thr, 0, w).astype(w.dtype)
save_file(t, f"{dst}/model.safetensors", metadata={"format": "pt"})
PY
        ;;
    *)
        dir=$OUT/$name; rm -rf "$dir"
        key=sparsity; case $m in gptq|awq) key=bits ;; esac
        t0=$(date +%s.%N)
        $C apply "$MODEL" --stage "{\"method\":\"$m\",\"params\":{\"$key\":$v}}" --out "$dir" --data "$WORLD" \
            --edit-set "$EDIT_SET" >/dev/null 2>"$OUT/$name.apply.log"
        case $m in gptq|awq)
            g=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['stages'][0]['record']['group'])" "$dir/apply.json")
            extra=(--wbits "$v" --group-size "$g") ;;
        esac ;;
    esac
    $C eval "$dir" --world "$WORLD" --edit-set "$EDIT_SET" --json "${extra[@]}" 2>/dev/null | tail -1 >"$OUT/$name.eval.tmp"
    mkdir -p "$OUT/$name"; mv "$OUT/$name.eval.tmp" "$OUT/$name/eval.json"
    echo "done $lv" >&2
done
python3 - "$OUT" $LEVELS <<'PY'
import json, os, sys
out, levels = sys.argv[1], sys.argv[2:]
rows, res = [], {}
print("| method | level | MMLU | WMDP bio | WMDP cyber | ppl (WikiText) | zsRE src F1 | avg bits | sparsity | apply s | layer err (vs RTN / magnitude) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for lv in levels:
    name = lv.replace(":", "_")
    e = json.load(open(f"{out}/{name}/eval.json"))
    ap = f"{out}/{name}/apply.json"
    rec, wall, err = {}, "", ""
    if os.path.exists(ap):
        st = json.load(open(ap))["stages"][0]
        rec, wall = st["record"], f"{st['wall_ms'] / 1000:.1f}"
        if "layer_err_total" in rec:
            base = rec.get("layer_err_rtn_total", rec.get("layer_err_magnitude_total"))
            err = f"{rec['layer_err_total']:.4g} vs {base:.4g}"
    m, v = (lv.split(":") + [""])[:2]
    g = lambda k: e.get(k, float("nan"))
    print(f"| {m} | {v} | {g('mmlu'):.3f} | {g('wmdp_bio'):.3f} | {g('wmdp_cyber'):.3f} | {g('ppl_wikitext'):.2f} | "
          f"{g('src_true_f1'):.3f} | {g('avg_bits'):.2f} | {g('sparsity'):.3f} | {wall} | {err} |")
    res[lv] = {"eval": e, "record": {k: v for k, v in rec.items() if k != "layers"}}
json.dump(res, open(f"{out}/quality.json", "w"), indent=1)
PY
