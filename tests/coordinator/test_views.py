"""test_views.py - the composability views of schema/views.sql (v_composition_metrics,
v_composability, v_composability_sets, v_composability_table) against numbers computed by hand.

A real sweep database: `cisweep launch` of a small handmade grid (below: models m1 and m2, edit sets
1-3, memit, wanda at 0.25 and 0.5, gptq 4-bit, rmu, the edit x compress and unlearn x compress pairs
in both orders, memit<->rmu, ft->rmu alone), then attempts and metric rows inserted by SQL as the
coordinator would store them, including what must NOT count: a failed job that has rows, a
superseded attempt (is_current = 0), a pending job, a pair with results in one order only, a
non-finite value. The expected values are written out below, worked by hand in the comments; they
are not recomputed with SQL. Also: the views appear in a file an older build wrote (schema v2 from
schema/schema.sql, no views) when the new binary opens it, and `sqlite3 -readonly` queries them.
"""
import os, shutil, sqlite3, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import CISWEEP, ROOT, check, main, query, run, test  # noqa: E402

SCHEMA = os.path.join(ROOT, "schema", "schema.sql")
GRID = """{"name": "views-test", "models": ["m1", "m2"], "edit_sets": [1, 2, 3], "baseline": true,
 "singles": true,
 "categories": {"edit": [{"method": "memit"}],
                "compress": [{"method": "wanda", "levels": {"sparsity": [0.25, 0.5]}},
                             {"method": "gptq", "levels": {"bits": [4]}}],
                "unlearn": [{"method": "rmu"}]},
 "pairs": [["edit", "compress"], ["unlearn", "compress"]],
 "compositions": [[{"method": "memit"}, {"method": "rmu"}], [{"method": "rmu"}, {"method": "memit"}],
                  [{"method": "ft"}, {"method": "rmu"}]]}
"""
W25, W50, G4 = "wanda(sparsity=0.25)", "wanda(sparsity=0.5)", "gptq(bits=4)"

# (model, label, edit_set) -> {metric: value}; None = a non-finite value (value NULL, value_text 'inf')
DONE = {
    ("m1", "baseline", 0): {"mmlu": 0.62},
    ("m1", "memit", 1): {"edit_success": 1.0},
    ("m1", "memit", 2): {"edit_success": 1.0},
    ("m1", "memit", 3): {"edit_success": 0.9},
    # wanda 0.25 <-> memit (headline). Set 2 of W25->memit also has a superseded attempt (below).
    ("m1", f"{W25}->memit", 1): {"edit_success": 0.9, "mmlu": 0.60},
    ("m1", f"{W25}->memit", 2): {"edit_success": 0.8, "mmlu": 0.60},
    ("m1", f"{W25}->memit", 3): {"edit_success": 0.7, "mmlu": 0.60},
    ("m1", f"memit->{W25}", 1): {"edit_success": 0.6, "mmlu": 0.58},
    ("m1", f"memit->{W25}", 2): {"edit_success": 0.5, "mmlu": 0.58},
    ("m1", f"memit->{W25}", 3): {"edit_success": 0.4, "mmlu": 0.58},
    # wanda 0.5 <-> memit (not headline); set 3 of W50->memit failed (its rows below must not count)
    ("m1", f"{W50}->memit", 1): {"edit_success": 0.3},
    ("m1", f"{W50}->memit", 2): {"edit_success": 0.5},
    ("m1", f"memit->{W50}", 1): {"edit_success": 0.6},
    ("m1", f"memit->{W50}", 2): {"edit_success": 0.6},
    ("m1", f"memit->{W50}", 3): {"edit_success": 0.6},
    # gptq 4 <-> memit (headline)
    ("m1", f"{G4}->memit", 1): {"edit_success": 0.95},
    ("m1", f"{G4}->memit", 2): {"edit_success": 0.85},
    ("m1", f"{G4}->memit", 3): {"edit_success": 0.75},
    ("m1", f"memit->{G4}", 1): {"edit_success": 0.9},
    ("m1", f"memit->{G4}", 2): {"edit_success": 0.9},
    ("m1", f"memit->{G4}", 3): {"edit_success": 0.9},
    # gptq 4 <-> rmu: no editor (edit set 0). wmdp from bio/cyber; rmu->gptq reports only wmdp_avg
    # and the cloze rows (--eval-cloze): cloze_wmdp from bio/cyber (0.25), or the reported avg (0.40)
    ("m1", f"{G4}->rmu", 0): {"mmlu": 0.61234, "wmdp_bio": 0.30, "wmdp_cyber": 0.40, "wmdp_avg": 0.35,
                              "cloze_mmlu": 0.70, "cloze_wmdp_bio": 0.30, "cloze_wmdp_cyber": 0.20,
                              "cloze_wmdp_avg": 0.26},
    ("m1", f"rmu->{G4}", 0): {"mmlu": 0.55556, "wmdp_avg": 0.27, "ppl_wikitext": None,
                              "cloze_mmlu": 0.66, "cloze_wmdp_avg": 0.40},
    # wanda 0.25 <-> rmu: one order only (W25->rmu stays pending) -> no pair
    ("m1", f"rmu->{W25}", 0): {"mmlu": 0.5, "wmdp_bio": 0.25, "wmdp_cyber": 0.25},
    # memit <-> rmu: memit->rmu sets 1, 2; rmu->memit sets 1, 2, 3
    ("m1", "memit->rmu", 1): {"edit_success": 1.0},
    ("m1", "memit->rmu", 2): {"edit_success": 0.8},
    ("m1", "rmu->memit", 1): {"edit_success": 0.7},
    ("m1", "rmu->memit", 2): {"edit_success": 0.9},
    ("m1", "rmu->memit", 3): {"edit_success": 0.5},
    # ft -> rmu: its reverse is not in the grid
    ("m1", "ft->rmu", 1): {"edit_success": 0.99},
    # model m2: the same pair with other numbers, one edit set: must not mix with m1
    ("m2", f"{W25}->memit", 1): {"edit_success": 0.2},
    ("m2", f"memit->{W25}", 1): {"edit_success": 0.1},
}
FAILED = {("m1", f"{W50}->memit", 3): {"edit_success": 0.0}}        # state failed, rows present
SUPERSEDED = {("m1", f"{W25}->memit", 2): {"edit_success": 0.0, "mmlu": 0.0}}  # attempt 2, is_current 0

_tmp = tempfile.mkdtemp(prefix="test_views.")
_db = None


def job_id(con, model, label, edit_set):
    r = con.execute("SELECT j.id FROM jobs j JOIN compositions c ON c.id = j.composition_id "
                    "JOIN models m ON m.id = j.model_id WHERE m.name = ? AND c.label = ? AND j.edit_set = ?",
                    (model, label, edit_set)).fetchall()
    assert len(r) == 1, (model, label, edit_set, r)
    return r[0][0]


def add_rows(con, jid, attempt, rows, current):
    for metric, v in rows.items():
        con.execute("INSERT INTO results(job_id, attempt, metric, value, value_text, is_current, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, 1000)", (jid, attempt, metric, v, None if v is not None else "inf",
                                                        1 if current else 0))


def db():
    """the launched sweep with the rows above (made once)"""
    global _db
    if _db:
        return _db
    path = os.path.join(_tmp, "views.db")
    grid = os.path.join(_tmp, "views-test.json")
    with open(grid, "w") as f:
        f.write(GRID)
    run([CISWEEP, "launch", "--db", path, "--grid", grid], cwd=ROOT, timeout=60)
    con = sqlite3.connect(path)
    con.execute("PRAGMA foreign_keys = ON")
    with con:
        for (model, label, es), rows in DONE.items():
            jid = job_id(con, model, label, es)
            con.execute("INSERT INTO attempts(job_id, attempt, worker_id, started_at, outcome, result_at) "
                        "VALUES (?, 1, 'w1', 1000, 'done', 1000)", (jid,))
            add_rows(con, jid, 1, rows, True)
            con.execute("UPDATE jobs SET state = 'done', attempt = 1, current_attempt = 1, worker_id = 'w1' "
                        "WHERE id = ?", (jid,))
        for (model, label, es), rows in SUPERSEDED.items():
            jid = job_id(con, model, label, es)
            con.execute("INSERT INTO attempts(job_id, attempt, worker_id, started_at, outcome, result_at) "
                        "VALUES (?, 2, 'w2', 2000, 'superseded', 2000)", (jid,))
            add_rows(con, jid, 2, rows, False)
            con.execute("UPDATE jobs SET attempt = 2 WHERE id = ?", (jid,))
        for (model, label, es), rows in FAILED.items():
            jid = job_id(con, model, label, es)
            con.execute("INSERT INTO attempts(job_id, attempt, worker_id, started_at, outcome, error) "
                        "VALUES (?, 1, 'w1', 1000, 'failed', 'boom')", (jid,))
            # as hostile as it gets: rows marked current and the job naming the attempt current; only
            # its state says it failed, and that alone must keep its rows out
            add_rows(con, jid, 1, rows, True)
            con.execute("UPDATE jobs SET state = 'failed', attempt = 1, spent = 1, current_attempt = 1 "
                        "WHERE id = ?", (jid,))
    con.close()
    _db = path
    return path


def near(a, b, tol=1e-9):
    return a is not None and b is not None and abs(a - b) <= tol


def same(got, want, what):
    """got/want: dicts of column -> value; floats compared to 1e-9, None exactly"""
    for k, w in want.items():
        g = got.get(k, "<missing>")
        if isinstance(w, float):
            check(near(g, w), f"{what}: {k} = {g!r}, want {w!r}")
        else:
            check(g == w, f"{what}: {k} = {g!r}, want {w!r}")


def rows(sql, args=()):
    con = sqlite3.connect(f"file:{db()}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def one(sql, args=()):
    r = rows(sql, args)
    assert len(r) == 1, f"{sql} {args}: {len(r)} rows: {r}"
    return r[0]


SE3 = 0.1 / 3 ** 0.5  # sd 0.1 of three values spaced 0.1 apart, over sqrt(3): 0.05773502691896258


@test
def composition_metrics_means_and_se():
    cm = "SELECT * FROM v_composition_metrics WHERE model = ? AND label = ? AND metric = ?"
    # baseline: one run, no stage, se NULL
    same(one(cm, ("m1", "baseline", "mmlu")),
         {"n": 1, "mean": 0.62, "se": None, "n_stages": 0, "method_1": None, "category_1": None,
          "level_1": None, "method_2": None, "pattern": "baseline", "sweep": "views-test"}, "baseline")
    # memit alone: 1.0, 1.0, 0.9 -> mean 0.96667; deviations .0333,.0333,-.0667 -> ss 0.00667, sd 0.057735,
    # se 0.057735 / sqrt 3 = 0.033333
    same(one(cm, ("m1", "memit", "edit_success")),
         {"n": 3, "mean": 2.9 / 3, "se": 1 / 30, "method_1": "memit", "category_1": "edit", "level_1": None,
          "method_2": None, "n_stages": 1}, "memit")
    # W25->memit: the superseded attempt 2 of set 2 (0.0) does not count: 0.9, 0.8, 0.7 -> 0.8, se 0.057735
    same(one(cm, ("m1", f"{W25}->memit", "edit_success")),
         {"n": 3, "mean": 0.8, "se": SE3, "method_1": "wanda", "category_1": "compress", "level_1": 0.25,
          "method_2": "memit", "category_2": "edit", "level_2": None, "pattern": "compress->edit"}, "W25->memit")
    same(one(cm, ("m1", f"{W25}->memit", "mmlu")), {"n": 3, "mean": 0.60, "se": 0.0}, "W25->memit mmlu")
    # W50->memit: the failed set 3 (0.0) does not count: 0.3, 0.5 -> 0.4, sd 0.141421, se 0.1
    same(one(cm, ("m1", f"{W50}->memit", "edit_success")),
         {"n": 2, "mean": 0.4, "se": 0.1, "level_1": 0.5}, "W50->memit")
    same(one(cm, ("m1", f"memit->{G4}", "edit_success")),
         {"n": 3, "mean": 0.9, "se": 0.0, "method_2": "gptq", "category_2": "compress", "level_2": 4},
         "memit->G4")
    # wmdp = (bio + cyber) / 2 = 0.35; the reported-only wmdp_avg 0.27 is used when bio/cyber are absent
    same(one(cm, ("m1", f"{G4}->rmu", "wmdp")), {"n": 1, "mean": 0.35, "se": None}, "G4->rmu wmdp")
    same(one(cm, ("m1", f"rmu->{G4}", "wmdp")), {"n": 1, "mean": 0.27}, "rmu->G4 wmdp")
    same(one(cm, ("m1", f"rmu->{W25}", "wmdp")), {"n": 1, "mean": 0.25}, "rmu->W25 wmdp")
    # cloze_wmdp likewise: (0.30 + 0.20) / 2 = 0.25 over the reported 0.26; the reported-only 0.40
    same(one(cm, ("m1", f"{G4}->rmu", "cloze_wmdp")), {"n": 1, "mean": 0.25}, "G4->rmu cloze_wmdp")
    same(one(cm, ("m1", f"rmu->{G4}", "cloze_wmdp")), {"n": 1, "mean": 0.40}, "rmu->G4 cloze_wmdp")
    check(rows("SELECT * FROM v_composition_metrics WHERE label = ? AND metric = 'cloze_wmdp'", (f"rmu->{W25}",)) == [],
          "no cloze rows, no cloze_wmdp")
    # a non-finite value: reported (n_runs 1) but not averaged (n 0, mean NULL)
    same(one(cm, ("m1", f"rmu->{G4}", "ppl_wikitext")), {"n": 0, "n_runs": 1, "mean": None, "se": None}, "inf")
    # m2 is its own model
    same(one(cm, ("m2", f"{W25}->memit", "edit_success")), {"n": 1, "mean": 0.2, "model": "m2"}, "m2")
    # pending compositions have no rows; the failed job alone would have made one
    check(rows("SELECT * FROM v_composition_metrics WHERE label = ?", (f"{W25}->rmu",)) == [], "pending W25->rmu")
    # m1: baseline 1 + memit 1 + W25<->memit 2 x 2 + W50<->memit 2 + G4<->memit 2 + G4->rmu (mmlu, wmdp_bio,
    # wmdp_cyber, wmdp_avg, wmdp, cloze_mmlu, cloze_wmdp_bio, cloze_wmdp_cyber, cloze_wmdp_avg, cloze_wmdp) 10
    # + rmu->G4 (mmlu, wmdp_avg, ppl_wikitext, wmdp, cloze_mmlu, cloze_wmdp_avg, cloze_wmdp) 7 + rmu->W25
    # (mmlu, bio, cyber, wmdp) 4 + memit<->rmu 2 + ft->rmu 1 = 34
    n = one("SELECT count(*) AS n FROM v_composition_metrics WHERE model = 'm1'")["n"]
    check(n == 34, f"{n} rows for m1, want 34")


@test
def composability_pairs():
    q = ("SELECT * FROM v_composability WHERE model = ? AND method_a = ? AND level_a IS ? AND method_b = ? "
         "AND level_b IS ? AND metric = ?")
    # W25 <-> memit, edit_success: kappa_ab 0.8 (W25 first), kappa_ba 0.5; E_OF = 1 - 0.8 = 0.2, E_OS 0.3.
    # per set: (0.9, 0.6) (0.8, 0.5) (0.7, 0.4): E_OF 0.1 0.2 0.3 -> mean 0.2, se 0.057735; E_OS 0.3 x3 -> se 0
    same(one(q, ("m1", "wanda", 0.25, "memit", None, "edit_success")),
         {"pair_kind": "edit_compress", "kappa_ab": 0.8, "kappa_ba": 0.5, "n_ab": 3, "n_ba": 3, "se_ab": SE3,
          "se_ba": SE3, "e_of": 0.2, "e_os": 0.3, "e_of_r4": 0.2, "e_os_r4": 0.3, "headline": 1, "n_sets": 3,
          "e_of_set_mean": 0.2, "e_of_set_se": SE3, "e_os_set_mean": 0.3, "e_os_set_se": 0.0,
          "label_ab": f"{W25}->memit", "label_ba": f"memit->{W25}"}, "W25<->memit")
    # mmlu: 0.60 vs 0.58: E_OF 0.4, E_OS 0.02
    same(one(q, ("m1", "wanda", 0.25, "memit", None, "mmlu")),
         {"kappa_ab": 0.60, "kappa_ba": 0.58, "e_of": 0.4, "e_os": 0.02, "headline": 1}, "W25<->memit mmlu")
    # W50 <-> memit: 0.4 (n 2) vs 0.6 (n 3): E_OF 0.4, E_OS 0.2; sets 1, 2 shared: (0.3, 0.6) (0.5, 0.6):
    # E_OF 0.4 0.4 -> 0.4, se 0; E_OS 0.3 0.1 -> 0.2, sd 0.141421 -> se 0.1. Not headline.
    same(one(q, ("m1", "wanda", 0.5, "memit", None, "edit_success")),
         {"kappa_ab": 0.4, "kappa_ba": 0.6, "n_ab": 2, "n_ba": 3, "e_of": 0.4, "e_os": 0.2, "headline": 0,
          "n_sets": 2, "e_of_set_mean": 0.4, "e_of_set_se": 0.0, "e_os_set_mean": 0.2, "e_os_set_se": 0.1},
         "W50<->memit")
    # G4 <-> memit: 0.85 vs 0.9: E_OF 0.1, E_OS 0.05. Sets: (0.95, 0.9) (0.85, 0.9) (0.75, 0.9):
    # E_OF 0.05 0.1 0.1 -> 0.083333; ss = 2 * (1/60)^2 + (1/30)^2 = 1/600 -> sd 0.028868 -> se 0.016667;
    # E_OS 0.05 0.05 0.15 -> 0.083333, ss = 2 * (1/30)^2 + (1/15)^2 = 1/150 -> sd 0.057735 -> se 0.033333
    same(one(q, ("m1", "gptq", 4, "memit", None, "edit_success")),
         {"kappa_ab": 0.85, "kappa_ba": 0.9, "e_of": 0.1, "e_os": 0.05, "e_of_r4": 0.1, "e_os_r4": 0.05,
          "headline": 1, "n_sets": 3, "e_of_set_mean": 0.25 / 3, "e_of_set_se": 1 / 60,
          "e_os_set_mean": 0.25 / 3, "e_os_set_se": 1 / 30}, "G4<->memit")
    # G4 <-> rmu, mmlu 0.61234 vs 0.55556: E_OF = 1 - 0.61234 = 0.38766, the notebook's 1 - round(0.61234, 4)
    # = 0.3877; E_OS 0.05678 -> 0.0568. One run each: se NULL, one "set" (0)
    same(one(q, ("m1", "gptq", 4, "rmu", None, "mmlu")),
         {"pair_kind": "unlearn_compress", "kappa_ab": 0.61234, "kappa_ba": 0.55556, "e_of": 0.38766,
          "e_os": 0.05678, "e_of_r4": 0.3877, "e_os_r4": 0.0568, "se_ab": None, "se_ba": None, "n_sets": 1,
          "e_of_set_mean": 0.38766, "e_of_set_se": None, "headline": 1}, "G4<->rmu mmlu")
    # the rounded value is exactly the 4-decimal number (1 - 0.6123 alone is 0.38770000000000004)
    r = one(q, ("m1", "gptq", 4, "rmu", None, "mmlu"))
    check(r["e_of_r4"] == 0.3877 and r["e_os_r4"] == 0.0568, f"exact rounding {r['e_of_r4']!r} {r['e_os_r4']!r}")
    # wmdp (lower is better): W 0.35 vs 0.27: E_OF = min = 0.27, E_OS 0.08
    same(one(q, ("m1", "gptq", 4, "rmu", None, "wmdp")),
         {"kappa_ab": 0.35, "kappa_ba": 0.27, "e_of": 0.27, "e_os": 0.08, "e_of_r4": 0.27, "e_os_r4": 0.08},
         "G4<->rmu wmdp")
    # the cloze rows pair up as their lettered counterparts: cloze_wmdp 0.25 vs 0.40, E_OF = min = 0.25,
    # E_OS 0.15; cloze_mmlu 0.70 vs 0.66, E_OF 1 - 0.70 = 0.30, E_OS 0.04
    same(one(q, ("m1", "gptq", 4, "rmu", None, "cloze_wmdp")),
         {"kappa_ab": 0.25, "kappa_ba": 0.40, "e_of": 0.25, "e_os": 0.15, "e_of_r4": 0.25, "e_os_r4": 0.15},
         "G4<->rmu cloze_wmdp")
    same(one(q, ("m1", "gptq", 4, "rmu", None, "cloze_mmlu")),
         {"kappa_ab": 0.70, "kappa_ba": 0.66, "e_of": 0.30, "e_os": 0.04}, "G4<->rmu cloze_mmlu")
    # edit_unlearn, a = the editor: memit->rmu 1.0, 0.8 (0.9) vs rmu->memit 0.7, 0.9, 0.5 (0.7):
    # E_OF 0.1, E_OS 0.2; sets 1, 2: (1.0, 0.7) (0.8, 0.9): E_OF 0, 0.1 -> 0.05, sd 0.070711 -> se 0.05;
    # E_OS 0.3 0.1 -> 0.2, se 0.1. rmu->memit se: values .7 .9 .5, sd 0.2 -> 0.11547
    same(one(q, ("m1", "memit", None, "rmu", None, "edit_success")),
         {"pair_kind": "edit_unlearn", "kappa_ab": 0.9, "kappa_ba": 0.7, "n_ab": 2, "n_ba": 3,
          "se_ab": 0.1, "se_ba": 0.2 / 3 ** 0.5, "e_of": 0.1, "e_os": 0.2, "headline": 1, "n_sets": 2,
          "e_of_set_mean": 0.05, "e_of_set_se": 0.05, "e_os_set_mean": 0.2, "e_os_set_se": 0.1}, "memit<->rmu")
    # m2: 0.2 vs 0.1 -> E_OF 0.8, E_OS 0.1
    same(one(q, ("m2", "wanda", 0.25, "memit", None, "edit_success")),
         {"kappa_ab": 0.2, "kappa_ba": 0.1, "e_of": 0.8, "e_os": 0.1, "n_sets": 1}, "m2")
    # exactly these pairs: no W25<->rmu (one order), no ft<->rmu (one order), no wmdp_bio etc.
    got = sorted((r["model"], r["method_a"], r["level_a"], r["method_b"], r["metric"])
                 for r in rows("SELECT * FROM v_composability"))
    want = sorted([("m1", "wanda", 0.25, "memit", "edit_success"), ("m1", "wanda", 0.25, "memit", "mmlu"),
                   ("m1", "wanda", 0.5, "memit", "edit_success"), ("m1", "gptq", 4, "memit", "edit_success"),
                   ("m1", "gptq", 4, "rmu", "mmlu"), ("m1", "gptq", 4, "rmu", "wmdp"),
                   ("m1", "gptq", 4, "rmu", "cloze_mmlu"), ("m1", "gptq", 4, "rmu", "cloze_wmdp"),
                   ("m1", "memit", None, "rmu", "edit_success"), ("m2", "wanda", 0.25, "memit", "edit_success")])
    check(got == want, f"pairs {got}")


@test
def composability_sets():
    r = rows("SELECT edit_set, kappa_ab, kappa_ba, e_of, e_os, job_ab, job_ba FROM v_composability_sets "
             "WHERE model = 'm1' AND method_a = 'wanda' AND level_a = 0.5 AND metric = 'edit_success' "
             "ORDER BY edit_set")
    check([x["edit_set"] for x in r] == [1, 2], f"sets {r}")  # set 3: W50->memit failed
    same(r[0], {"kappa_ab": 0.3, "kappa_ba": 0.6, "e_of": 0.4, "e_os": 0.3}, "W50 set 1")
    same(r[1], {"kappa_ab": 0.5, "kappa_ba": 0.6, "e_of": 0.4, "e_os": 0.1}, "W50 set 2")
    r = one("SELECT * FROM v_composability_sets WHERE model = 'm1' AND method_a = 'wanda' AND level_a = 0.25 "
            "AND metric = 'edit_success' AND edit_set = 2")
    same(r, {"kappa_ab": 0.8, "kappa_ba": 0.5}, "W25 set 2 (the superseded 0.0 does not count)")


@test
def composability_table():
    t = {(r["model"], r["pair_kind"], r["row_method"], r["col_method"], r["metric"]): r
         for r in rows("SELECT * FROM v_composability_table")}
    # headline cells only: W50 is absent
    check(("m1", "edit_compress", "wanda", "memit", "edit_success") in t, "W25 cell")
    check(len([k for k in t if k[2] == "wanda" and k[0] == "m1" and k[4] == "edit_success"]) == 1, "one wanda cell")
    same(t[("m1", "edit_compress", "wanda", "memit", "edit_success")], {"e_of": 0.2, "e_os": 0.3, "is_average": 0},
         "wanda cell")
    same(t[("m1", "edit_compress", "gptq", "memit", "edit_success")], {"e_of": 0.1, "e_os": 0.05}, "gptq cell")
    # Average over the compressors wanda 0.25 and gptq 4: E_OF (0.2 + 0.1) / 2 = 0.15, E_OS (0.3 + 0.05) / 2
    same(t[("m1", "edit_compress", "Average", "memit", "edit_success")],
         {"e_of": 0.15, "e_os": 0.175, "n_rows": 2, "is_average": 1}, "edit_compress Average")
    # MMLU has one compressor cell: its Average is that cell
    same(t[("m1", "edit_compress", "Average", "memit", "mmlu")], {"e_of": 0.4, "e_os": 0.02, "n_rows": 1}, "mmlu")
    # the table uses the notebook's rounded cells; the Average row averages them; _raw the unrounded
    same(t[("m1", "unlearn_compress", "gptq", "rmu", "mmlu")],
         {"e_of": 0.3877, "e_os": 0.0568, "e_of_raw": 0.38766, "e_os_raw": 0.05678}, "rounded cell")
    same(t[("m1", "unlearn_compress", "Average", "rmu", "wmdp")], {"e_of": 0.27, "e_os": 0.08}, "wmdp Average")
    # editing x unlearning as the paper lays it out: rows unlearners, columns editors
    same(t[("m1", "edit_unlearn", "rmu", "memit", "edit_success")], {"e_of": 0.1, "e_os": 0.2}, "KE x MU cell")
    same(t[("m1", "edit_unlearn", "Average", "memit", "edit_success")], {"e_of": 0.1, "e_os": 0.2}, "KE x MU avg")
    same(t[("m2", "edit_compress", "Average", "memit", "edit_success")], {"e_of": 0.8, "e_os": 0.1}, "m2 Average")
    # the cloze rows make cells of their own: cloze_wmdp 0.25 / 0.15, its Average the same
    same(t[("m1", "unlearn_compress", "Average", "rmu", "cloze_wmdp")], {"e_of": 0.25, "e_os": 0.15}, "cloze Average")
    # m1: edit_compress 3 cells + 2 Average rows, unlearn_compress 4 + 4 (mmlu, wmdp, cloze_mmlu,
    # cloze_wmdp), edit_unlearn 1 + 1; m2: 1 + 1 = 17
    check(len(t) == 17, f"{len(t)} table rows, want 17: {sorted(t)}")


@test
def composability_area():
    r = {(x["model"], x["method_a"], x["method_b"], x["metric"]): x for x in rows("SELECT * FROM v_composability_area")}
    # wanda x memit, edit_success, levels 0.25 (E_OF 0.2, E_OS 0.3) and 0.5 (E_OF 0.4, E_OS 0.2): trapezoids
    # 0.25 * (0.2 + 0.4) / 2 = 0.075 and 0.25 * (0.3 + 0.2) / 2 = 0.0625; over the range 0.25: 0.3 and 0.25
    same(r[("m1", "wanda", "memit", "edit_success")],
         {"pair_kind": "edit_compress", "n_levels": 2, "level_min": 0.25, "level_max": 0.5, "e_of_area": 0.075,
          "e_os_area": 0.0625, "e_of_level_mean": 0.3, "e_os_level_mean": 0.25}, "wanda area")
    # one level: no area, no level mean
    same(r[("m1", "gptq", "memit", "edit_success")],
         {"n_levels": 1, "e_of_area": 0.0, "e_os_area": 0.0, "e_of_level_mean": None, "e_os_level_mean": None},
         "gptq area")
    check(("m1", "memit", "rmu", "edit_success") not in r, "no area without a compressor")
    # m1: wanda/memit edit_success + mmlu, gptq/memit edit_success, gptq/rmu mmlu + wmdp + cloze_mmlu +
    # cloze_wmdp; m2: wanda/memit = 8
    check(len(r) == 8, f"{len(r)} rows, want 8: {sorted(r)}")


@test
def seeds_average_like_edit_sets():
    """a block with `seeds` (compositions without an editor, one job per seed in jobs.edit_set)"""
    path = os.path.join(_tmp, "seeds.db")
    grid = os.path.join(_tmp, "seeds.json")
    with open(grid, "w") as f:
        f.write('{"name": "seeds", "models": ["m1"], "seeds": [1, 2], "singles": false, "categories": '
                '{"compress": [{"method": "wanda", "levels": {"sparsity": [0.25]}}], "unlearn": [{"method": "ga"}]}, '
                '"pairs": [["unlearn", "compress"]]}')
    run([CISWEEP, "launch", "--db", path, "--grid", grid], cwd=ROOT, timeout=60)
    con = sqlite3.connect(path)
    with con:
        # wanda->ga: seeds 1, 2 mmlu 0.5, 0.7 (mean 0.6, sd 0.141421, se 0.1); ga->wanda: 0.4, 0.4
        for label, es, v in [(f"{W25}->ga", 1, 0.5), (f"{W25}->ga", 2, 0.7), (f"ga->{W25}", 1, 0.4),
                             (f"ga->{W25}", 2, 0.4)]:
            jid = job_id(con, "m1", label, es)
            con.execute("INSERT INTO attempts(job_id, attempt, worker_id, started_at, outcome) "
                        "VALUES (?, 1, 'w1', 1000, 'done')", (jid,))
            add_rows(con, jid, 1, {"mmlu": v}, True)
            con.execute("UPDATE jobs SET state = 'done', attempt = 1, current_attempt = 1 WHERE id = ?", (jid,))
    con.close()
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    c.row_factory = sqlite3.Row
    try:
        r = [dict(x) for x in c.execute("SELECT * FROM v_composability")]
    finally:
        c.close()
    check(len(r) == 1, f"{r}")
    # E_OF = 1 - 0.6 = 0.4, E_OS 0.2; per seed (0.5, 0.4) (0.7, 0.4): E_OF 0.5, 0.3 -> 0.4, se 0.1;
    # E_OS 0.1, 0.3 -> 0.2, se 0.1
    same(r[0], {"pair_kind": "unlearn_compress", "kappa_ab": 0.6, "kappa_ba": 0.4, "n_ab": 2, "se_ab": 0.1,
                "se_ba": 0.0, "e_of": 0.4, "e_os": 0.2, "n_sets": 2, "e_of_set_mean": 0.4, "e_of_set_se": 0.1,
                "e_os_set_mean": 0.2, "e_os_set_se": 0.1}, "seeds")


@test
def a_malformed_canonical_row_does_not_break_the_views():
    """a hand-edited composition whose canonical text is not a JSON array of objects pairs with
    nothing and is flagged (canonical_valid = 0); every view still answers, with the same pairs"""
    path = os.path.join(_tmp, "bad.db")
    shutil.copy(db(), path)
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE compositions SET canonical = '[{\"method\": \"wanda\", ' WHERE label = ?", (f"{G4}->rmu",))
        con.execute("UPDATE compositions SET canonical = '[\"wanda\", 3]' WHERE label = ?", (f"memit->{W50}",))
    con.close()
    got = query(path, "SELECT label, canonical_valid, method_1, stage_1, stage_2 FROM v_composition_stages "
                      "WHERE label IN (?, ?) AND model = 'm1' ORDER BY label", (f"{G4}->rmu", f"memit->{W50}"))
    check(got == [(f"{G4}->rmu", 0, None, None, None), (f"memit->{W50}", 1, None, None, None)], got)
    pairs = {(r[0], r[1], r[2]) for r in query(path, "SELECT method_a, level_a, metric FROM v_composability "
                                                     "WHERE model = 'm1'")}
    check(pairs == {("wanda", 0.25, "edit_success"), ("wanda", 0.25, "mmlu"), ("gptq", 4, "edit_success"),
                    ("memit", None, "edit_success")}, pairs)  # G4<->rmu and W50<->memit lost their pairing
    for v in ("v_composability_table", "v_composability_sets", "v_composability_area", "v_composition_metrics"):
        check(query(path, f"SELECT count(*) FROM {v}")[0][0] > 0, v)


@test
def readme_queries():
    """every SQL example of schema/README.md "Composability views" runs; the Table 2 one prints the cells"""
    import re
    with open(os.path.join(ROOT, "schema", "README.md")) as f:
        text = f.read()
    sec = text[text.index("## Composability views"):text.index("## Changing the schema")]
    blocks = re.findall(r"```sql\n(.*?)```", sec, re.S)
    check(len(blocks) >= 4, f"{len(blocks)} sql blocks")
    con = sqlite3.connect(f"file:{db()}?mode=ro", uri=True)
    try:
        # the examples name the paper grid's main model slot; this sweep's is m1
        out = [con.execute(stmt.replace("'llama3-8b'", "'m1'")).fetchall()
               for b in blocks for stmt in b.split(";") if stmt.strip()]
    finally:
        con.close()
    # Table 2, edit success, m1: columns ft/memit/lora E_OF, then E_OS; only memit ran here
    check(out[0] == [("wanda", None, "0.20", None, None, "0.30", None),
                     ("gptq", None, "0.10", None, None, "0.05", None),
                     ("Average", None, "0.15", None, None, "0.18", None)], f"Table 2 {out[0]}")
    # the wanda x memit curve of m1: levels 0.25 and 0.5
    check([r[0] for r in out[1]] == [0.25, 0.5], f"curve levels {out[1]}")


@test
def views_in_an_older_file_and_readonly_sqlite3():
    """a file of the current schema version written by an older build (schema.sql only, no views.sql)
    gains the views on the new binary's first writing open; `sqlite3 -readonly` then queries them"""
    path = os.path.join(_tmp, "old.db")
    con = sqlite3.connect(path)
    with open(SCHEMA) as f:
        con.executescript(f.read())
    con.execute("PRAGMA journal_mode = WAL")
    con.close()
    check(query(path, "PRAGMA user_version") == [(4,)], "schema v4")
    check(query(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'v_composability'") == [(0,)], "no views yet")
    grid = os.path.join(_tmp, "views-test.json")
    db()  # writes the grid file
    run([CISWEEP, "launch", "--db", path, "--grid", grid], cwd=ROOT, timeout=60)
    names = {r[0] for r in query(path, "SELECT name FROM sqlite_schema WHERE type = 'view'")}
    for v in ["v_composition_stages", "v_run_metrics", "v_composition_metrics", "v_composability_sets",
              "v_composability", "v_composability_table", "v_composability_area", "v_views_version", "v_runs"]:
        check(v in names, f"{v} missing after the open: {sorted(names)}")
    check(query(path, "PRAGMA user_version") == [(4,)], "the version is untouched")
    if not shutil.which("sqlite3"):
        check(query(path, "SELECT count(*) FROM v_composability_table") == [(0,)], "empty table")
        return
    p = run(["sqlite3", "-readonly", path, "SELECT count(*) FROM v_composition_stages; "
             "SELECT count(*) FROM v_composability_table; SELECT length(views_sha256) FROM v_views_version"],
            timeout=30)
    # 42 compositions of the grid and the launch's 2 MEMIT statistics compositions (one per model;
    # coordinator/job_store_prereq.c)
    check(p.stdout.split() == ["44", "0", "64"], f"sqlite3 -readonly: {p.stdout!r} {p.stderr!r}")
    # and on the made sweep, the Table 2 query of schema/README.md
    p = run(["sqlite3", "-readonly", db(), "-cmd", ".mode list",
             "SELECT row_method, col_method, printf('%.4f', e_of), printf('%.4f', e_os) FROM v_composability_table "
             "WHERE model = 'm1' AND pair_kind = 'edit_compress' AND metric = 'edit_success' ORDER BY is_average, "
             "row_method"], timeout=30)
    check(p.stdout.split() == ["gptq|memit|0.1000|0.0500", "wanda|memit|0.2000|0.3000", "Average|memit|0.1500|0.1750"],
          p.stdout)


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(_tmp, ignore_errors=True)
