#!/usr/bin/env python3
"""MC practice items from some MMLU subjects only (issue 11, session 11; docs/unlearning.md
"Transfer binding").

    practice_items.py WORLD OUT.jsonl --subjects a,b,... [--wmdp] [--questions all|even|odd] [--seed S]

For every test item of the named MMLU subjects, its 23 other option orders (never the scored
order), each with the letter the gold option has there, in the lm-eval 0.4.2 0-shot prompt with
the subject's header: what `cisweep world --mc-items practice` writes, restricted to those subjects
(and without WMDP). A model trained on them answers the other MMLU subjects and WMDP with binding
learned on these subjects alone: 0-shot, as a real model answers WMDP; the `mmlu_<subject>` rows
tell the practiced subjects from the transferred ones."""
import argparse, csv, itertools, json, os, random, sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("world"); ap.add_argument("out")
    ap.add_argument("--subjects", required=True, help="comma-separated MMLU subjects (file names, e.g. fauna,trade; "
                                                      "\"\" for none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--wmdp", action="store_true", help="also the WMDP items (headers biology / cybersecurity)")
    ap.add_argument("--questions", choices=["all", "even", "odd"], default="all",
                    help="only the items at even (0, 2, ..) or odd positions of each file: the others are "
                         "questions never practiced in any order (transfer within a subject)")
    a = ap.parse_args()
    items = []
    keep = (lambda i: True) if a.questions == "all" else (lambda i: i % 2 == (0 if a.questions == "even" else 1))

    def add(head, n, q, ch, gold):
        if keep(n):
            for perm in list(itertools.permutations(range(4)))[1:]:     # [0] is the scored order
                items.append((head, q, [ch[i] for i in perm], perm.index(gold)))

    for dom, head in (("bio", "biology"), ("cyber", "cybersecurity")) if a.wmdp else ():
        path = os.path.join(a.world, "wmdp", f"wmdp-{dom}.json")
        try:
            qs = json.load(open(path))
            for n, q in enumerate(qs):
                add(head, n, q["question"], list(q["choices"]), int(q["answer"]))
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            sys.exit(f"practice_items: {path}: {e} (a list of {{question, choices, answer}} is expected)")
    for subj in ([] if a.subjects == "" else a.subjects.split(",")):
        path = os.path.join(a.world, "mmlu", "data", "test", f"{subj}_test.csv")
        try:
            rows = [r for r in csv.reader(open(path, newline="")) if r]
        except OSError as e:
            sys.exit(f"practice_items: {path}: {e} (an MMLU test CSV of the world is expected)")
        for n, r in enumerate(rows, 1):
            if len(r) != 6 or r[5] not in "ABCD" or len(r[5]) != 1:
                sys.exit(f"practice_items: {path}:{n}: expected question,A,B,C,D,answer (a letter)")
            add(subj.replace("_", " "), n - 1, r[0], r[1:5], "ABCD".index(r[5]))
    random.Random(a.seed).shuffle(items)
    with open(a.out, "w") as out:
        for head, q, ch, k in items:
            prompt = (f"The following are multiple choice questions (with answers) about {head}.\n{q}\n"
                      + "".join(f"{'ABCD'[i]}. {c}\n" for i, c in enumerate(ch)) + "Answer:")
            out.write(json.dumps({"prompt": prompt, "completion": " " + "ABCD"[k]}, separators=(",", ":")) + "\n")
    print(f"practice_items: {len(items)} items of {a.subjects} -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
