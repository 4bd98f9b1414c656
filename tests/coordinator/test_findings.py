"""test_findings.py - `cisweep findings` (coordinator/findings.c) on a real sweep database
(report_db.make_db: a launched grid with results inserted by SQL, two models). findings.c copies
the composability views once into temporary tables and reads only those (the views cost ~0.5 s
each on the study's database and were evaluated 24 times per model): the printed numbers must be those of
the views themselves, the database file must be left byte-identical (the copies are temporary,
made on a read-only connection), a second run must print the same, and --sweep must filter."""
import hashlib, os, re, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import CISWEEP, check, main, query, run, test  # noqa: E402
import report_db  # noqa: E402

_DB = {}


def db():
    if "db" not in _DB:
        d = tempfile.mkdtemp(prefix="cis-findings-")
        _DB["db"] = report_db.make_db(CISWEEP, d, models=["tiny", "small"])
    return _DB["db"]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fmt(v):
    return "-" if v is None else "%.3f" % v


def model_block(text, model):
    m = re.search(r"^model %s:\n((?:  .*\n)*)" % re.escape(model), text, re.M)
    check(m, f"no block for model {model} in:\n{text}")
    return m.group(1)


@test
def numbers_are_the_views_numbers():
    p = db()
    before = sha(p)
    out = run([CISWEEP, "findings", "--db", p]).stdout
    check(sha(p) == before, "cisweep findings changed the database file")
    for model in ("small", "tiny"):
        blk = model_block(out, model)
        # finding 1: the editors alone, from v_composition_metrics
        (v, n), = query(p, "SELECT avg(mean), count(*) FROM v_composition_metrics WHERE model = ? AND pattern = 'edit' "
                           "AND metric = 'edit_success'", (model,))
        check(n > 0, f"{model}: the test database has no editor alone")
        check(f"edit success: editors alone {fmt(v)} ({n})" in blk, f"{model}: finding 1 is not the view's:\n{blk}")
        # finding 3: the mean E_OS per metric over the headline pairs, from v_composability
        for metric in ("edit_success", "mmlu", "wmdp"):
            (v, n), = query(p, "SELECT avg(e_os), count(*) FROM v_composability WHERE model = ? AND headline = 1 "
                               "AND metric = ?", (model, metric))
            check(f" {metric} {fmt(v)} ({n})" in blk, f"{model}: E_OS of {metric} is not the view's ({fmt(v)}, {n}):\n{blk}")
        rows = query(p, "SELECT pair_kind, method_a, method_b, metric, e_os FROM v_composability WHERE model = ? "
                        "AND headline = 1 AND metric IN ('edit_success','wmdp') "
                        "ORDER BY e_os DESC, pair_kind, method_a, level_a, method_b, level_b, metric LIMIT 1", (model,))
        if rows:
            k, a, b, metric, e = rows[0]
            check(re.search(r"largest: %s %s(@\S+)? x %s on %s: E_OS %.3f " % (k, a, b, metric, e), blk),
                  f"{model}: the largest pair is not {rows[0]}:\n{blk}")
    again = run([CISWEEP, "findings", "--db", p]).stdout
    check(again == out, "a second run printed something else")


@test
def sweep_filter():
    p = db()
    (name,), = query(p, "SELECT DISTINCT sweep FROM v_composition_metrics")
    all_ = run([CISWEEP, "findings", "--db", p]).stdout
    one = run([CISWEEP, "findings", "--db", p, "--sweep", name]).stdout
    check(one == all_, "--sweep of the only sweep printed something else than all sweeps")
    none = run([CISWEEP, "findings", "--db", p, "--sweep", "no-such-sweep"])
    check("no finished compositions in no-such-sweep" in none.stdout, none.stdout)


@test
def not_a_sweep_database():
    d = tempfile.mkdtemp(prefix="cis-findings-")
    bad = os.path.join(d, "x.db")
    with open(bad, "w") as f:
        f.write("not sqlite")
    r = run([CISWEEP, "findings", "--db", bad], check=False)
    check(r.returncode != 0 and "x.db" in r.stderr, f"exit {r.returncode}: {r.stdout} {r.stderr}")


if __name__ == "__main__":
    main()
