#!/usr/bin/env python3
"""half_world.py - a copy of a world scored on the even-numbered MC questions only (issue 11,
session 11; docs/unlearning.md "Transfer binding").

    half_world.py WORLD OUT [--parity even|odd] [--forget-items ITEMS.jsonl]

OUT gets every MMLU test CSV and both WMDP files with only the rows at even (or odd) positions
(0-based), what a model trained on `practice_items.py --questions even` practised; every other
file and directory of WORLD is linked, so the forget corpora, retain text, zsRE and the corpus
are the world's. With --forget-items, the two WMDP forget corpora are replaced by the
biology / cybersecurity items of ITEMS.jsonl (`{"prompt","completion"}` lines), each as one
document prompt + completion, in the corpora's formats (bio {"title","abstract","text"}, cyber
{"text"}): the probe of unlearning on the form the MC answers were learned in. Python 3
standard library only."""
import argparse, csv, json, os, shutil, sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("world"); ap.add_argument("out")
    ap.add_argument("--parity", choices=["even", "odd"], default="even")
    ap.add_argument("--forget-items", metavar="ITEMS.jsonl")
    a = ap.parse_args()
    w = os.path.abspath(a.world)
    r0 = 0 if a.parity == "even" else 1
    for need in ("mmlu/data/test", "mmlu/data/dev", "wmdp/wmdp-bio.json", "wmdp/wmdp-cyber.json"):
        if not os.path.exists(os.path.join(w, need)):
            sys.exit(f"half_world: {os.path.join(w, need)}: missing (a cisweep world directory is expected)")
    if os.path.exists(a.out):
        sys.exit(f"half_world: {a.out}: exists (a new directory is written)")
    os.makedirs(os.path.join(a.out, "mmlu", "data", "test"))
    os.makedirs(os.path.join(a.out, "wmdp"))
    for b in os.listdir(w):
        if b not in ("mmlu", "wmdp"):
            os.symlink(os.path.join(w, b), os.path.join(a.out, b))
    os.symlink(os.path.join(w, "mmlu", "data", "dev"), os.path.join(a.out, "mmlu", "data", "dev"))
    for f in sorted(os.listdir(os.path.join(w, "mmlu", "data", "test"))):
        rows = [r for r in csv.reader(open(os.path.join(w, "mmlu", "data", "test", f), newline="")) if r]
        with open(os.path.join(a.out, "mmlu", "data", "test", f), "w", newline="") as o:
            csv.writer(o).writerows(rows[r0::2])
    for d in ("bio", "cyber"):
        q = json.load(open(os.path.join(w, "wmdp", f"wmdp-{d}.json")))
        with open(os.path.join(a.out, "wmdp", f"wmdp-{d}.json"), "w") as o:
            json.dump(q[r0::2], o, indent=1)
    heads = {"bio": "biology", "cyber": "cybersecurity"}
    for d in ("bio", "cyber"):
        dst = os.path.join(a.out, "wmdp", f"{d}-forget-corpus.jsonl")
        if not a.forget_items:
            os.symlink(os.path.join(w, "wmdp", f"{d}-forget-corpus.jsonl"), dst)
            continue
        n = 0
        with open(a.forget_items) as f, open(dst, "w") as o:
            for k, line in enumerate(f, 1):
                try:
                    it = json.loads(line)
                    p, c = it["prompt"], it["completion"]
                except (ValueError, KeyError, TypeError) as e:
                    sys.exit(f"half_world: {a.forget_items}:{k}: expected a JSON line with prompt and completion ({e})")
                if f"about {heads[d]}.\n" in p:
                    t = p + c
                    o.write(json.dumps({"title": "", "abstract": "", "text": t} if d == "bio" else {"text": t}) + "\n")
                    n += 1
        if n == 0:
            sys.exit(f"half_world: {a.forget_items}: no {heads[d]} item for the {d} forget corpus")
    print(f"half_world: {a.out} ({a.parity} questions{', forget corpora from ' + a.forget_items if a.forget_items else ''})",
          file=sys.stderr)


if __name__ == "__main__":
    main()
