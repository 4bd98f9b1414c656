#!/usr/bin/env python3
"""open_items.py - what the memorized MC letters do when a fact is gone (issue 11, session 10;
docs/unlearning.md "Open answers"). Reads the per-question files of `cisweep-worker eval MODEL
--world W --per-item FILE` (one JSON line per MMLU/WMDP question: gold, mc_pred, mc_correct,
open_f1) of a model before and after an intervention, and prints per domain (MMLU, WMDP):

  - MC accuracy and the share of questions whose fact the model states (open F1 1) before / after;
  - of the questions whose fact was stated and whose letter was right before, those whose fact is
    gone after (open F1 0): how many of them keep the right letter (chance is 1/4).

  open_items.py BEFORE.jsonl AFTER.jsonl [--label NAME]

A file that is missing or malformed, or two files of different questions, is an error naming the
file and line (exit 1). Python 3 standard library only."""
import json
import sys


def load(path):
    items = {}
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                try:
                    o = json.loads(line)
                    key = (o["task"], int(o["index"]))
                    items[key] = (bool(o["mc_correct"]), float(o["open_f1"]), int(o["gold"]))
                except (ValueError, KeyError, TypeError) as e:
                    raise SystemExit(f"open_items.py: {path}:{n}: expected a JSON line with task, index, gold, "
                                     f"mc_correct, open_f1 ({e})")
    except OSError as e:
        raise SystemExit(f"open_items.py: {path}: {e.strerror}")
    if not items:
        raise SystemExit(f"open_items.py: {path}: no question")
    return items


def domain(task):
    return "WMDP" if task.startswith("wmdp") else "MMLU"


def table(before, after, label):
    if set(before) != set(after) or any(before[k][2] != after[k][2] for k in before):
        raise SystemExit("open_items.py: the two files hold different questions (or different gold letters)")
    out = ["| model | domain | n | MC before -> after | fact stated (open F1 1) before -> after | "
           "stated + right before, fact gone after (open F1 0) | of those, letter still right |",
           "|---|---|---|---|---|---|---|"]
    for d in ("MMLU", "WMDP"):
        ks = [k for k in before if domain(k[0]) == d]
        if not ks:
            continue
        n = len(ks)
        mc0 = sum(before[k][0] for k in ks) / n
        mc1 = sum(after[k][0] for k in ks) / n
        st0 = sum(before[k][1] >= 1.0 for k in ks) / n
        st1 = sum(after[k][1] >= 1.0 for k in ks) / n
        gone = [k for k in ks if before[k][0] and before[k][1] >= 1.0 and after[k][1] == 0.0]
        kept = sum(after[k][0] for k in gone)
        share = f"{kept}/{len(gone)} = {kept / len(gone):.2f}" if gone else "-"
        out.append(f"| {label} | {d} | {n} | {mc0:.3f} -> {mc1:.3f} | {st0:.3f} -> {st1:.3f} | {len(gone)} | {share} |")
    return out


def main(argv):
    label = "-"
    if "--label" in argv:
        i = argv.index("--label")
        if i + 1 >= len(argv):
            print("open_items.py: --label expects a name", file=sys.stderr)
            return 2
        label = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) != 2:
        print("usage: open_items.py BEFORE.jsonl AFTER.jsonl [--label NAME]", file=sys.stderr)
        return 2
    print("\n".join(table(load(argv[0]), load(argv[1]), label)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
