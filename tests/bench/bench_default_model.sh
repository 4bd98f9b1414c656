#!/usr/bin/env bash
# bench_default_model.sh - the embedded default's numbers in one run (README "Quality of the
# default model", docs/training.md "Measured"):
#   1. training throughput side by side: the same 200 steps of tiny-llama3 with all threads on
#      one model (--replicas 1: BLAS threads inside each matmul) and with one data-parallel
#      replica per thread (the default), as a ratio;
#   2. the default training command as shipped (its default step budget, or STEPS steps) and the
#      evaluation suite on its result: MMLU, WMDP bio/cyber, zsRE src F1, QA F1, WikiText
#      perplexity, and the evaluation's questions/s and perplexity tokens/s.
# Usage: tests/bench/bench_default_model.sh [OUT_DIR]   (env: STEPS= SEED=1 THREADS=0)
# Takes about 6 minutes at the default budget on an idle 2-core machine. Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${CISWEEP_BUILD:-build}/bin/cisweep-worker
OUT=${1:-/tmp/bench_default.$$}
STEPS=${STEPS:-}
SEED=${SEED:-1}
THREADS=${THREADS:-0}
mkdir -p "$OUT"
$W world --out "$OUT/world" --seed 1234 >/dev/null

field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

echo "== training throughput, 200 steps of tiny-llama3 (threads: ${THREADS}, 0 = all cores)"
for r in 1 0; do
    $W train --world "$OUT/world" --out "$OUT/steps_r$r" --steps 200 --threads "$THREADS" --replicas "$r" \
        --sft-from 0.5 --log-every 0 --seed "$SEED" 2>/dev/null >/dev/null
done
python3 - "$OUT" <<'EOF'
import json, sys
a = json.load(open(sys.argv[1] + "/steps_r1/train_info.json"))
b = json.load(open(sys.argv[1] + "/steps_r0/train_info.json"))
print("one model, BLAS threads : %6.1f s  %6.0f text tokens/s" % (a["train_seconds"], a["tokens_per_s"]))
print("replicas (default)      : %6.1f s  %6.0f text tokens/s" % (b["train_seconds"], b["tokens_per_s"]))
print("speed-up of the replicas: %.2fx" % (a["train_seconds"] / b["train_seconds"]))
EOF

echo "== the default training command (${STEPS:-the default} steps) and the evaluation suite"
t0=$(date +%s)
$W train --world "$OUT/world" --arch tiny-llama3 --out "$OUT/model" ${STEPS:+--steps "$STEPS"} --threads "$THREADS" \
    --seed "$SEED" --log-every 0 2>"$OUT/train.log" >/dev/null
t1=$(date +%s)
echo "wall: $((t1 - t0)) s; steps $(field "$OUT/model/train_info.json" steps) ($(field "$OUT/model/train_info.json" sft_steps) SFT)," \
     "epochs $(field "$OUT/model/train_info.json" epochs), $(field "$OUT/model/train_info.json" tokens_per_s) text tokens/s," \
     "SFT items $(field "$OUT/model/train_info.json" sft_seen), letter loss $(field "$OUT/model/train_info.json" sft_final_loss)"
ET=$THREADS; [ "$ET" -gt 0 ] || ET=$(nproc)
$W eval "$OUT/model" --world "$OUT/world" --threads "$ET" 2>/dev/null \
    | grep -E '^(mmlu|wmdp_bio|wmdp_cyber|src_true_f1|qa_f1|ppl_wikitext|mmlu_questions_per_s|ppl_tokens_per_s|time_eval_s) '
echo "(targets: mmlu, wmdp_bio, wmdp_cyber, src_true_f1 >= 0.80; results in $OUT)"
