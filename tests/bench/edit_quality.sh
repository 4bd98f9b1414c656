#!/usr/bin/env bash
# edit_quality.sh - the knowledge editors' quality on a model (docs/editing.md): for each method
# and each edit set k, `cisweep apply` the method (its effective params: the paper's defaults and,
# on a tiny model, the tiny preset) and `cisweep eval` the edited model on edit set k (zsRE edit
# success, generalization, locality; synthetic MMLU), then the mean and standard error over the
# edit sets. MEMIT's statistics are computed by the first job and read from the cache afterwards.
# Usage: tests/bench/edit_quality.sh [MODEL] [WORLD] [METHODS] [SETS]
#   defaults: /work/cache/default/model /work/cache/default/world "ft memit" "1 2 3 4 5 6 7 8 9 10"
# Output: one JSON line per run on stdout ({"method","edit_set","edit_success",...,"apply_s"}), and
# a markdown table at the end. Env: OUT (scratch dir, default /tmp/cisweep-edit-quality),
# THREADS (default 1), PARAMS (extra params JSON body, e.g. '"v_lr":0.5').
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-/work/cache/default/model}
WORLD=${2:-/work/cache/default/world}
METHODS=${3:-ft memit}
SETS=${4:-1 2 3 4 5 6 7 8 9 10}
OUT=${OUT:-/tmp/cisweep-edit-quality}
THREADS=${THREADS:-1}
B=build/bin
mkdir -p "$OUT/cache"
rows="$OUT/rows.jsonl"
: > "$rows"
for meth in $METHODS; do
  for k in $SETS; do
    d="$OUT/$meth-$k"
    rm -rf "$d"
    t0=$(date +%s.%N)
    $B/cisweep apply "$MODEL" --stage "{\"method\":\"$meth\",\"params\":{${PARAMS:-}}}" --out "$d" --data "$WORLD" \
        --edit-set "$k" --cache "$OUT/cache" --threads "$THREADS" > "$d.apply.log" 2>&1
    t1=$(date +%s.%N)
    $B/cisweep eval "$d" --world "$WORLD" --edit-set "$k" --skip wmdp,ppl,qa --threads "$THREADS" \
        > "$d.eval.txt" 2> "$d.eval.log"
    python3 - "$meth" "$k" "$d" "$(echo "$t1 - $t0" | bc)" >> "$rows" <<'PY'
import json, sys
meth, k, d, dt = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
rows = {}
for line in open(d + ".eval.txt"):
    f = line.split()
    if len(f) == 2:
        try: rows[f[0]] = float(f[1])
        except ValueError: pass
ap = json.load(open(d + "/apply.json"))
st = ap["stages"][0]
out = {"method": meth, "edit_set": k, "apply_s": round(dt, 2), "phases_s": st["phases_s"],
       "params": st["params"]}
for m in ("edit_success", "generalization", "locality", "mmlu"):
    out[m] = rows[m]
print(json.dumps(out))
PY
    tail -1 "$rows"
    rm -rf "$d/model.safetensors"
  done
done
python3 - "$rows" <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| method | n | edit success | generalization | locality | MMLU | apply s |")
print("|---|---|---|---|---|---|---|")
for meth in dict.fromkeys(r["method"] for r in rows):
    rs = [r for r in rows if r["method"] == meth]
    def ms(key):
        xs = [r[key] for r in rs]
        m = sum(xs) / len(xs)
        se = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs)) if len(xs) > 1 else float("nan")
        return f"{m:.3f} ± {se:.3f}"
    print(f"| {meth} | {len(rs)} | {ms('edit_success')} | {ms('generalization')} | {ms('locality')} | {ms('mmlu')} | {ms('apply_s')} |")
PY
