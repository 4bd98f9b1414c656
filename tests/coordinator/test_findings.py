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
def cloze_form_reads_the_cloze_rows():
    """--form cloze: MMLU and WMDP are the views' cloze_mmlu / cloze_wmdp (a copy of the database with
    cloze rows added: cloze_mmlu = mmlu - 0.1, cloze_wmdp_* = half the lettered value); the
    lettered form is unchanged by them; a database without cloze rows is refused by name."""
    import shutil, sqlite3
    src = db()
    none = run([CISWEEP, "findings", "--db", src, "--form", "cloze"], check=False)
    check(none.returncode == 1 and "no cloze rows" in none.stdout and "--eval-cloze" in none.stdout,
          f"exit {none.returncode}: {none.stdout}")
    d = tempfile.mkdtemp(prefix="cis-findings-cloze-")
    p = os.path.join(d, "cloze.db")
    shutil.copyfile(src, p)
    con = sqlite3.connect(p)
    with con:
        for jid, metric, v in con.execute("SELECT job_id, metric, value FROM results WHERE is_current = 1 "
                                          "AND metric IN ('mmlu', 'wmdp_bio', 'wmdp_cyber')").fetchall():
            name, nv = ("cloze_mmlu", v - 0.1) if metric == "mmlu" else ("cloze_" + metric, v / 2)
            con.execute("INSERT INTO results(job_id, attempt, metric, value, is_current, created_at) "
                        "VALUES (?, 1, ?, ?, 1, 1000)", (jid, name, nv))
    con.close()
    letter = run([CISWEEP, "findings", "--db", p]).stdout
    check(letter == run([CISWEEP, "findings", "--db", src]).stdout, "the cloze rows changed the lettered findings")
    out = run([CISWEEP, "findings", "--db", p, "--form", "cloze"]).stdout
    check(out.startswith("(MMLU and WMDP below are the cloze rows"), out[:200])
    for model in ("small", "tiny"):
        blk = model_block(out, model)
        (base, nb), = query(p, "SELECT avg(mean), count(*) FROM v_composition_metrics WHERE model = ? AND "
                               "pattern = 'baseline' AND metric = 'cloze_wmdp'", (model,))
        (alone, n0), = query(p, "SELECT avg(mean), count(*) FROM v_composition_metrics WHERE model = ? AND "
                                "pattern = 'unlearn' AND metric = 'cloze_wmdp'", (model,))
        check(nb > 0 and n0 > 0, f"{model}: no cloze_wmdp rows in the copy")
        check(f"baseline {fmt(base)}; unlearners alone {fmt(alone)} ({n0})" in blk,
              f"{model}: finding 2 is not the view's cloze_wmdp ({fmt(base)}, {fmt(alone)}):\n{blk}")
        for metric in ("mmlu", "wmdp"):
            (v, n), = query(p, "SELECT avg(e_os), count(*) FROM v_composability WHERE model = ? AND headline = 1 "
                               "AND metric = ?", (model, "cloze_" + metric))
            check(f" {metric} {fmt(v)} ({n})" in blk, f"{model}: E_OS of cloze_{metric} is not the view's:\n{blk}")
    bad = run([CISWEEP, "findings", "--db", p, "--form", "olmes"], check=False)
    check(bad.returncode == 2 and "--form expects letter or cloze" in bad.stderr, bad.stderr)


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
