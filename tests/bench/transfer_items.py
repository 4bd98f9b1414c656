#!/usr/bin/env python3
"""MC practice items on facts that no MC test set asks (issue 11, session 11; docs/unlearning.md
"Transfer binding").

    transfer_items.py WORLD OUT.jsonl [--items N] [--seed S] [--forms src|both]

Writes N {"prompt","completion"} items for `cisweep-worker train --sft OUT.jsonl`: zsRE facts
whose relation no MMLU or WMDP item asks (in the default world the person relations: birthplace,
employer, instrument, occupation), each question with the gold object and three other objects of
the same relation, the gold letter uniform, every draw fresh, in the lm-eval 0.4.2 0-shot prompt
with a header subject drawn from the test sets' ten. A model trained on them and scored on the
MMLU/WMDP test items has never seen an MC item on any tested relation: the test is answered by
binding learned elsewhere plus recall, as a real model's 0-shot MC is (docs/world.md "Multiple
choice").

The relation of a zsRE record is its question with the subject replaced by {S}; a relation is
asked by a test set when an MMLU test/dev row or a WMDP question has the same template for some
subject of the world (the record's own subject is tried against every test question)."""
import argparse, csv, glob, itertools, json, os, random, sys

def die(msg):
    sys.exit(f"transfer_items: {msg}")

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("world"); ap.add_argument("out")
    ap.add_argument("--items", type=int, default=300000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--holdout", type=int, default=0, metavar="K",
                    help="keep K facts per relation out of the items and write them as an MMLU test CSV "
                         "OUT.heldout.csv (question,A,B,C,D,answer): binding within the practice relations")
    ap.add_argument("--options", choices=["fresh", "fixed"], default="fresh",
                    help="fresh: every item draws its three distractors anew (--items items); fixed: each fact "
                         "gets one option set, written in all 24 orders (facts x 24 items, --items ignored), "
                         "the structure of --mc-items practice on facts no test asks")
    ap.add_argument("--drills", type=float, default=0.0, metavar="P",
                    help="with --options fresh: a share P of the items are pure-match drills instead, \"Which of "
                         "these is {O}?\" over four objects of one practice relation (the copy task, nothing to recall)")
    ap.add_argument("--forms", choices=["src", "both"], default="src",
                    help="src: the zsRE src question only (q1, as the MC tests ask); both: src or rephrase")
    a = ap.parse_args()
    zpath = os.path.join(a.world, "zsre", "zsre_mend_train.json")
    try:
        recs = json.load(open(zpath))
    except (OSError, ValueError) as e:
        die(f"{zpath}: {e} (a cisweep world directory is expected)")
    # every MC test question of the world
    tests = []
    for p in glob.glob(os.path.join(a.world, "mmlu", "data", "*", "*.csv")):
        with open(p, newline="") as f:
            tests += [row[0] for row in csv.reader(f) if row]
    for dom in ("bio", "cyber"):
        p = os.path.join(a.world, "wmdp", f"wmdp-{dom}.json")
        try:
            tests += [q["question"] for q in json.load(open(p))]
        except (OSError, ValueError, KeyError, TypeError) as e:
            die(f"{p}: {e} (a list of {{question, choices, answer}} is expected)")
    if not tests:
        die(f"{a.world}: no MMLU or WMDP questions found")
    subjects = sorted({r["subject"] for r in recs})
    # a test question's template: any world subject it contains, replaced by {S}
    tested = set()
    for q in tests:
        for s in subjects:
            if s in q:
                tested.add(q.replace(s, "{S}"))
    rel = {}
    for r in recs:
        t = r["src"].replace(r["subject"], "{S}")
        if t in tested:
            continue
        rel.setdefault(t, []).append(r)
    if not rel:
        die(f"{zpath}: every zsRE relation is asked by an MC test set")
    heads = sorted({os.path.basename(p)[:-len("_test.csv")].replace("_", " ")
                    for p in glob.glob(os.path.join(a.world, "mmlu", "data", "test", "*_test.csv"))})
    heads += ["biology", "cybersecurity"]
    pools = {t: sorted({r["answers"][0] for r in rs}) for t, rs in rel.items()}
    facts = [(t, r) for t, rs in sorted(rel.items()) for r in rs]
    for t, p in pools.items():
        if len(p) < 4:
            die(f"relation {t!r}: {len(p)} objects, 4 needed for an MC item")
    rng = random.Random(a.seed)

    def options(t, gold):
        """three other objects of relation t and the gold at a uniform position: (options, gold index)"""
        ch = rng.sample([o for o in pools[t] if o != gold], 3)
        k = rng.randrange(4)
        ch.insert(k, gold)
        return ch, k

    if a.holdout:
        held = []
        for t in sorted(rel):
            rs = rel[t][:]
            rng.shuffle(rs)
            held += [(t, r) for r in rs[:a.holdout]]
        hid = {id(r) for _, r in held}
        facts = [(t, r) for t, r in facts if id(r) not in hid]
        with open(a.out[:-len(".jsonl")] + ".heldout.csv" if a.out.endswith(".jsonl") else a.out + ".heldout.csv",
                  "w", newline="") as f:
            w = csv.writer(f)
            for t, r in held:
                ch, k = options(t, r["answers"][0])
                w.writerow([r["src"]] + ch + ["ABCD"[k]])

    def draws():
        """(zsRE record or drill, options, gold index) per item, in the order written"""
        if a.options == "fresh":
            for _ in range(a.items):
                t, r = facts[rng.randrange(len(facts))]
                gold = r["answers"][0]
                ch, k = options(t, gold)
                if a.drills > 0 and rng.random() < a.drills:
                    yield {"src": f"Which of these is {gold}?", "rephrase": f"Which of these is {gold}?"}, ch, k
                else:
                    yield r, ch, k
            return
        items = []
        for t, r in facts:
            gold = r["answers"][0]
            base = [gold] + rng.sample([o for o in pools[t] if o != gold], 3)
            for perm in itertools.permutations(range(4)):
                items.append((r, [base[i] for i in perm], perm.index(0)))
        rng.shuffle(items)
        yield from items

    n = 0
    with open(a.out, "w") as out:
        for r, ch, k in draws():
            n += 1
            q = r["src"] if a.forms == "src" or rng.random() < 0.5 else r["rephrase"]
            prompt = (f"The following are multiple choice questions (with answers) about {rng.choice(heads)}.\n"
                      f"{q}\n" + "".join(f"{'ABCD'[i]}. {c}\n" for i, c in enumerate(ch)) + "Answer:")
            out.write(json.dumps({"prompt": prompt, "completion": " " + "ABCD"[k]}, separators=(",", ":")) + "\n")
    print(f"transfer_items: {n} items on {len(facts)} facts of {len(rel)} relations "
          f"({', '.join(sorted(rel))}) -> {a.out}", file=sys.stderr)

if __name__ == "__main__":
    main()
