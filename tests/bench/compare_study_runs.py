#!/usr/bin/env python3
"""compare_study_runs.py - which metric rows two study runs share (docs/study.md "Time").

Joins the current result rows of two sweep databases (e.g. /work/study8/sweep.db and
/work/study9/sweep.db) on (composition key, model slot, edit set, metric), leaves out timings
(`time_*`, `cpu_*`, `*_s`, `stats_seconds`) and `results_epoch`, and counts identical and differing
rows, split by whether the composition uses one of --methods (the methods a change touched) and
whether the metric is scored on the edit set (edit success, generalization, locality, src_true,
the edit perplexities, bits: the sets that a resized evaluation profile leaves alone). A change that
claims to move only those methods must leave every row of the other compositions' edit-set metrics
identical; a change that claims to move nothing must leave every row identical.

usage: compare_study_runs.py DB_A DB_B [--methods memit,lora,gd,awq,rmu] [--examples N]
exit 0; prints the counts and up to N differing rows of the untouched compositions' edit-set metrics
"""
import argparse
import collections
import re
import sqlite3
import sys

EDIT_SET = re.compile(r"^(edit_success|generalization|locality|src_true|ppl_edits|edit_set|n_edits|avg_bits|bits)")


def load(path):
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    q = """SELECT co.canonical, m.name, j.edit_set, r.metric, r.value, r.value_text
           FROM results r JOIN jobs j ON j.id = r.job_id JOIN compositions co ON co.id = j.composition_id
           JOIN models m ON m.id = j.model_id WHERE r.is_current = 1"""
    rows = {}
    for key, model, es, metric, v, vt in c.execute(q):
        if metric.startswith(("time_", "cpu_", "stats_seconds")) or metric.endswith("_s") or metric == "results_epoch":
            continue
        rows[(key, model, es, metric)] = (v, vt)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("db_a")
    ap.add_argument("db_b")
    ap.add_argument("--methods", default="", help="comma-separated methods the change touched")
    ap.add_argument("--examples", type=int, default=5)
    a = ap.parse_args()
    try:
        ra, rb = load(a.db_a), load(a.db_b)
    except sqlite3.Error as e:
        sys.exit("compare_study_runs: %s" % e)
    touched = ['"%s"' % m for m in a.methods.split(",") if m]
    same, diff, ex = collections.Counter(), collections.Counter(), []
    for k in set(ra) & set(rb):
        t = any(m in k[0] for m in touched)
        kind = ("touched" if t else "untouched", "edit-set metric" if EDIT_SET.match(k[3]) else "other metric")
        if ra[k] == rb[k]:
            same[kind] += 1
        else:
            diff[kind] += 1
            if not t and EDIT_SET.match(k[3]) and len(ex) < a.examples:
                ex.append((k, ra[k], rb[k]))
    print("rows: %d in A, %d in B, %d only in A, %d only in B" % (len(ra), len(rb), len(set(ra) - set(rb)),
                                                                  len(set(rb) - set(ra))))
    for kind in sorted(set(same) | set(diff)):
        print("%-10s %-15s identical %6d  differ %6d" % (kind[0], kind[1], same[kind], diff[kind]))
    for k, x, y in ex:
        print("differs (untouched, edit-set metric): %s %s set %s %s: %s -> %s" % (k[1], k[0][:80], k[2], k[3], x, y))
    return 0


if __name__ == "__main__":
    sys.exit(main())
