"""Black-box: the composability views (schema/views.sql) on rows real workers wrote. A small world,
a tiny model trained for 2 steps, then `cisweep run` of Wanda 0.25 <-> FT and Wanda 0.25 <-> GA in
both orders (4 jobs, the paper's recompress rule included) with the real evaluation suite. The
views must pair the orders the worker ran (the stages' canonical JSON of both orders must match),
and their E_OF / E_OS must equal what Python computes from the metric rows of `v_runs`, by the
paper's formulas (docs/composability.md), independently of the SQL."""
import json, os, shutil, sqlite3, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import CISWEEP, WORKER, check, cleanup, main, run, test, tiny_world_and_model  # noqa: E402

STATE = {}


def sweep():
    """the finished sweep's database path (made once)"""
    if "db" in STATE:
        return STATE["db"]
    d = tempfile.mkdtemp(prefix="cisweep-views-sweep-")
    STATE["dir"] = d
    tiny_world_and_model(d, steps=2)
    grid = os.path.join(d, "pairs.json")
    json.dump({"name": "pairs", "models": ["default"], "edit_sets": [1], "singles": False,
               "categories": {"edit": [{"method": "ft"}],
                              "compress": [{"method": "wanda", "levels": {"sparsity": [0.25]}}],
                              "unlearn": [{"method": "ga"}]},
               "pairs": [["edit", "compress"], ["unlearn", "compress"]], "both_orders": True}, open(grid, "w"))
    models = os.path.join(d, "models.json")
    json.dump({"default": os.path.join(d, "model")}, open(models, "w"))
    db = os.path.join(d, "pairs.db")
    run([CISWEEP, "run", "--grid", grid, "--workers", "1", "--db", db, "--models", models, "--data",
         os.path.join(d, "world"), "--eval-limit", "8", "--threads", "1", "--cache", os.path.join(d, "cache")],
        timeout=600)
    STATE["db"] = db
    return db


def q(sql, args=()):
    con = sqlite3.connect(f"file:{sweep()}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


@test
def views_pair_the_orders_real_workers_ran():
    runs = {r["label"]: r for r in q("SELECT * FROM v_runs")}
    check(sorted(runs) == ["ft->wanda(sparsity=0.25)", "ga->wanda(sparsity=0.25)", "wanda(sparsity=0.25)->ft",
                           "wanda(sparsity=0.25)->ga"], sorted(runs))
    # the recompress rule ran (wanda re-applied after the second stage), the key stays 2-stage
    st = q("SELECT label, count(*) AS n, sum(recompress) AS rc FROM v_stages WHERE is_current GROUP BY label")
    check({r["label"]: (r["n"], r["rc"]) for r in st}["wanda(sparsity=0.25)->ft"] == (3, 1), st)
    comp = {(r["method_b"], r["metric"]): r for r in q("SELECT * FROM v_composability")}
    want_keys = {(b, m) for b in ("ft", "ga") for m in ("edit_success", "generalization", "locality", "mmlu", "wmdp")}
    check(set(comp) == want_keys, sorted(comp))
    for (b, metric), r in comp.items():
        ab, ba = runs[f"wanda(sparsity=0.25)->{b}"], runs[f"{b}->wanda(sparsity=0.25)"]
        if metric == "wmdp":
            kab, kba = (ab["wmdp_bio"] + ab["wmdp_cyber"]) / 2, (ba["wmdp_bio"] + ba["wmdp_cyber"]) / 2
            e_of = min(kab, kba)
            check(abs(ab["wmdp_avg"] - kab) < 1e-12, f"the worker's wmdp_avg {ab['wmdp_avg']} vs {kab}")
        else:
            kab, kba = ab[metric], ba[metric]
            e_of = 1 - max(kab, kba)
        what = f"{b} {metric}: {r}"
        check(r["pair_kind"] == ("edit_compress" if b == "ft" else "unlearn_compress"), what)
        check(r["method_a"] == "wanda" and r["level_a"] == 0.25 and r["level_b"] is None, what)
        check(abs(r["kappa_ab"] - kab) < 1e-12 and abs(r["kappa_ba"] - kba) < 1e-12, what)
        check(abs(r["e_of"] - e_of) < 1e-12 and abs(r["e_os"] - abs(kab - kba)) < 1e-12, what)
        check(abs(r["e_of_r4"] - e_of) <= 0.00005 + 1e-12 and abs(r["e_os_r4"] - abs(kab - kba)) <= 0.00005 + 1e-12,
              what)
        check(r["headline"] == 1 and r["n_ab"] == 1 and r["n_ba"] == 1 and r["se_ab"] is None, what)
        check(r["n_sets"] == 1 and abs(r["e_of_set_mean"] - e_of) < 1e-12, what)
    # the table: one wanda cell per column and metric, and its Average (one compressor) equals it
    t = q("SELECT * FROM v_composability_table")
    check(len(t) == 20, f"{len(t)} rows: (1 cell + 1 Average) x 2 columns x 5 metrics")
    cells = {(r["row_method"], r["col_method"], r["metric"]): r for r in t}
    for (b, metric), r in comp.items():
        check(cells[("wanda", b, metric)]["e_of"] == r["e_of_r4"], (b, metric))
        check(cells[("Average", b, metric)]["e_os"] == r["e_os_r4"], (b, metric))


@cleanup
def _rm():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
