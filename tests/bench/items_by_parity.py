#!/usr/bin/env python3
"""items_by_parity.py - MC accuracy of the practiced and the never-practiced questions (issue 11,
session 11; docs/unlearning.md "Transfer binding"). Reads one per-question file of `cisweep-worker
eval MODEL --world W --per-item FILE` of a model trained on `practice_items.py --questions even`
(or odd) items and prints, per domain (MMLU, WMDP) and per parity of the question's position in
its file, the questions and the MC accuracy: the practiced half against the half it never saw in
any order.

  items_by_parity.py FILE.jsonl

A missing file or a malformed line is an error naming the file and line (exit 1). Python 3
standard library only."""
import json
import sys


def main(argv):
    if len(argv) != 2:
        raise SystemExit("usage: items_by_parity.py FILE.jsonl")
    path = argv[1]
    n = {}
    try:
        with open(path) as f:
            for k, line in enumerate(f, 1):
                try:
                    o = json.loads(line)
                    dom = "WMDP" if o["task"].startswith("wmdp") else "MMLU"
                    key = (dom, "even" if int(o["index"]) % 2 == 0 else "odd")
                    c = n.setdefault(key, [0, 0])
                    c[0] += 1
                    c[1] += bool(o["mc_correct"])
                except (ValueError, KeyError, TypeError, AttributeError) as e:
                    raise SystemExit(f"items_by_parity.py: {path}:{k}: expected a JSON line with task, index, mc_correct ({e})")
    except OSError as e:
        raise SystemExit(f"items_by_parity.py: {path}: {e}")
    if not n:
        raise SystemExit(f"items_by_parity.py: {path}: no questions")
    print("| domain | questions at | n | MC accuracy |")
    print("|---|---|---|---|")
    for key in sorted(n):
        print(f"| {key[0]} | {key[1]} positions | {n[key][0]} | {n[key][1] / n[key][0]:.3f} |")


if __name__ == "__main__":
    main(sys.argv)
