"""test_report.py - `cisweep report --db DB --out DIR` on databases made by the real `cisweep launch`
with results inserted for the done jobs (tests/coordinator/report_db.py):
  - report.md's tables (the paper's Tables 2-4 and every composition's mean +- se) against values
    computed here by hand from the inserted rows;
  - text from the DB (a model name, labels) cannot inject markup into report.html or report.md;
  - bad input: a missing file, a text file, a foreign SQLite DB, an empty DB, bad options, an
    output directory that cannot be made;
  - a sweep with no results gives "no data" notes; the report runs while a writer holds the DB;
  - report.html in a real headless Chromium (Debian's `chromium`): no console message at all
    (the page has no script, so any message is an error or a blocked load), every plot's <svg> has
    marks with a non-zero bounding box (a check script injected into a copy, read back with
    --dump-dom), and a screenshot kept at build/test-artifacts/report.png. Skipped, visibly, where
    chromium is not installed.
"""
import json, math, os, re, shutil, sqlite3, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CISWEEP, ROOT, check, cleanup, main, run, skip, test  # noqa: E402
import report_db  # noqa: E402

BUILD = os.environ.get("CISWEEP_BUILD", "build")
ARTIFACTS = os.path.join(ROOT, BUILD, "test-artifacts")
_tmp = tempfile.mkdtemp(prefix="test_report.")
_made = {}


@cleanup
def _rm():
    shutil.rmtree(_tmp, ignore_errors=True)


def made(name, **kw):
    """a filled DB and its report directory (made once per name)"""
    if name not in _made:
        d = os.path.join(_tmp, name)
        os.makedirs(d)
        db = report_db.make_db(CISWEEP, d, **kw)
        out = os.path.join(d, "out")
        p = run([CISWEEP, "report", "--db", db, "--out", out])
        assert "report.md" in p.stdout and "report.html" in p.stdout, p.stdout
        _made[name] = (db, out)
    return _made[name]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---- report.md ---------------------------------------------------------------------------------

KIND_HEADINGS = {"Editing × compression": "edit_compress", "Unlearning × compression": "unlearn_compress",
                 "Editing × unlearning": "edit_unlearn"}
METRIC_NAMES = {"Edit success": "edit_success", "Generalization": "generalization", "Locality": "locality",
                "MMLU": "mmlu", "WMDP (avg)": "wmdp"}
NAMES = {"FT": "ft", "MEMIT": "memit", "Wanda": "wanda", "GPTQ": "gptq", "GA": "ga", "RMU": "rmu"}


def parse_tables(md):
    """{(kind, metric, row, col): (e_of, e_os)} from report.md's paper tables"""
    cells, kind, metric, cols = {}, None, None, None
    for line in md.splitlines():
        if line.startswith("### "):
            kind = next((v for k, v in KIND_HEADINGS.items() if line[4:].startswith(k)), None)
            metric = None
        elif line.startswith("**") and kind:
            metric = METRIC_NAMES.get(line[2:line.index("**", 2)])
        elif line.startswith("| ") and kind and metric:
            parts = [p.strip() for p in line.strip("|").split("|")]
            if parts[0] in ("Compressor", "Unlearner"):
                cols = [NAMES[p.split()[0]] for p in parts[1::2]]
            elif not parts[0].startswith("---"):
                row = "Average" if parts[0] == "*Average*" else NAMES[parts[0]]
                for i, col in enumerate(cols):
                    cells[(kind, metric, row, col)] = (float(parts[1 + 2 * i]), float(parts[2 + 2 * i]))
    return cells


def hand_tables():
    """the same cells computed here from report_db.value(): pairs at 25% sparsity / 4 bits"""
    comps = {"wanda": "wanda(sparsity=0.25)", "gptq": "gptq(bits=4)"}
    kinds = {
        "edit_compress": ([(c, e) for c in comps for e in ("ft", "memit")], ["edit_success", "generalization", "locality", "mmlu"]),
        "unlearn_compress": ([(c, u) for c in comps for u in ("ga", "rmu")], ["mmlu", "wmdp"]),
        "edit_unlearn": ([(u, e) for u in ("ga", "rmu") for e in ("ft", "memit")],
                         ["edit_success", "generalization", "locality", "mmlu", "wmdp"]),
    }
    out = {}
    for kind, (pairs, metrics) in kinds.items():
        for row, col in pairs:
            for m in metrics:
                if kind == "edit_unlearn":
                    ab, ba = f"{col}->{row}", f"{row}->{col}"           # editor first, unlearner first
                else:
                    ab, ba = f"{comps[row]}->{col}", f"{col}->{comps[row]}"
                k1, k2 = report_db.expected_kappa(ab, m), report_db.expected_kappa(ba, m)
                e_of = min(k1, k2) if m == "wmdp" else 1 - max(k1, k2)
                out[(kind, m, row, col)] = (e_of, abs(k1 - k2))
        for col in {c for _, c in pairs}:
            for m in metrics:
                rows = [out[(kind, m, r, c)] for r, c in pairs if c == col]
                out[(kind, m, "Average", col)] = (sum(r[0] for r in rows) / len(rows), sum(r[1] for r in rows) / len(rows))
    return out


@test
def markdown_tables_match_hand_computation():
    db, out = made("plain")
    md = read(os.path.join(out, "report.md"))
    got, want = parse_tables(md), hand_tables()
    assert set(got) == set(want), (sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5])
    for k, (of, os_) in want.items():
        # printed to 4 decimals; the Average of rounded or unrounded cells differs by < 1e-4
        assert abs(got[k][0] - of) <= 1.01e-4 and abs(got[k][1] - os_) <= 1.01e-4, (k, got[k], (of, os_))
    assert len(got) == 4 * 2 * 3 + 2 * 2 * 3 + 5 * 2 * 3, len(got)   # (pairs + Average rows) x metrics
    # the paper's table for editing x compression has no WMDP; unlearning x compression no edit metrics
    assert not any(k[0] == "edit_compress" and k[1] == "wmdp" for k in got)
    assert not any(k[0] == "unlearn_compress" and k[1] == "edit_success" for k in got)


@test
def markdown_level_means_match_hand_computation():
    """beyond the paper: E_OF / E_OS averaged over the levels (trapezoids / level range)"""
    db, out = made("plain")
    md = read(os.path.join(out, "report.md"))
    sec = md[md.index("### Over every compression level"):md.index("### Every composition")]

    def level_mean(comp, levels, other, metric):
        ofs, oss = [], []
        for lv in levels:
            c = f"{comp}({'sparsity' if comp == 'wanda' else 'bits'}={lv})"
            k1, k2 = report_db.expected_kappa(f"{c}->{other}", metric), report_db.expected_kappa(f"{other}->{c}", metric)
            ofs.append(min(k1, k2) if metric == "wmdp" else 1 - max(k1, k2))
            oss.append(abs(k1 - k2))
        xs = [float(l) for l in levels]
        trap = lambda ys: sum((xs[i] - xs[i - 1]) * (ys[i] + ys[i - 1]) / 2 for i in range(1, len(xs)))
        return trap(ofs) / (xs[-1] - xs[0]), trap(oss) / (xs[-1] - xs[0])

    checked = 0
    for comp, levels, name in (("wanda", ["0.25", "0.45", "0.65"], "Wanda"), ("gptq", ["2", "4", "8"], "GPTQ")):
        for other, oname, metrics in (("ft", "FT", ["edit_success", "generalization", "locality", "mmlu"]),
                                      ("memit", "MEMIT", ["edit_success", "generalization", "locality", "mmlu"]),
                                      ("rmu", "RMU", ["mmlu", "wmdp"]), ("ga", "GA", ["mmlu", "wmdp"])):
            row = next(l for l in sec.splitlines() if l.startswith(f"| {name} × {oname} |"))
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert cells[1] == f"3 ({levels[0]}-{levels[-1]})", cells
            for i, m in enumerate(metrics):
                of, os_ = level_mean(comp, levels, other, m)
                got = [float(v) for v in cells[2 + i].split(" / ")]
                assert abs(got[0] - of) <= 0.6e-4 and abs(got[1] - os_) <= 0.6e-4, (name, oname, m, got, of, os_)
                checked += 1
    assert checked == 2 * (4 + 4 + 2 + 2), checked


@test
def markdown_header_and_every_composition():
    db, out = made("plain")
    md = read(os.path.join(out, "report.md"))
    # 135 jobs of the grid and the launch's MEMIT statistics job (done, like 133 of the others)
    assert "136 total: 134 done, 1 failed, 0 dead, 1 pending, 0 leased, 0 cancelled" in md
    assert "| models | tiny |" in md and "report test grid" in md
    assert "methods that ran (done jobs) | ft, ga, gptq, memit, memit_stats, rmu, wanda |" in md
    assert "| worker time of the done jobs | 120.6 s |" in md            # 134 done jobs x 900 ms
    # compress->edit: 12 compositions x 3 edit sets; compress->unlearn: 12 x 1
    assert "| compressors re-applied at the end (the paper's rule) | 48 stages |" in md
    # one row per composition with metrics: 67 less the failed gptq(bits=8)
    rows = [l for l in md.splitlines() if re.match(r"\| \S.* \| (baseline|edit|compress|unlearn)\S* \| \d+ \|", l)]
    assert len(rows) == 66, len(rows)
    # ft->wanda(sparsity=0.45): edit sets 1 and 2 (3 is pending); mean +- se by hand
    lab = "ft->wanda(sparsity=0.45)"
    row = next(l for l in rows if l.startswith(f"| {lab} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "2", cells
    vals = [report_db.value(lab, "edit_success", s) for s in (1, 2)]
    mean = sum(vals) / 2
    se = math.sqrt(sum((v - mean) ** 2 for v in vals) / 1) / math.sqrt(2)
    assert cells[3] == f"{mean:.4f} ± {se:.4f}", (cells[3], mean, se)
    wm = [(report_db.value(lab, "wmdp_bio", s) + report_db.value(lab, "wmdp_cyber", s)) / 2 for s in (1, 2)]
    assert cells[7].startswith(f"{sum(wm) / 2:.4f} ± "), cells[7]
    # a composition without an editor: one job, no se, no edit metrics
    row = next(l for l in rows if l.startswith("| gptq(bits=2) |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "1" and cells[3] == "-" and cells[6] == f"{report_db.value('gptq(bits=2)', 'mmlu', 1):.4f}", cells
    assert not any(l.startswith("| gptq(bits=8) |") for l in rows)


@test
def file_without_views_reads_through_temp_views():
    """a file an older build wrote (no composability views in it): the read-only report still has
    them (job_store_open makes them TEMP views on its own connection) and never writes the file"""
    db, out = made("plain")
    old = os.path.join(_tmp, "old.db")
    src = sqlite3.connect(db)
    dst = sqlite3.connect(old)
    src.backup(dst)
    src.close()
    views = [r[0] for r in dst.execute("SELECT name FROM sqlite_schema WHERE type = 'view' AND name IN "
                                       "('v_composability_table', 'v_composability', 'v_composability_sets', "
                                       "'v_composition_metrics', 'v_run_metrics', 'v_composition_stages', 'v_views_version')")]
    assert len(views) == 7, views
    for v in ("v_composability_table", "v_composability", "v_composability_sets", "v_composition_metrics",
              "v_run_metrics", "v_composition_stages", "v_views_version"):
        dst.execute(f"DROP VIEW {v}")
    dst.commit()
    dst.close()
    before = os.path.getmtime(old), os.path.getsize(old)
    out2 = os.path.join(_tmp, "old-out")
    run([CISWEEP, "report", "--db", old, "--out", out2])
    assert parse_tables(read(os.path.join(out2, "report.md"))) == parse_tables(read(os.path.join(out, "report.md")))
    assert (os.path.getmtime(old), os.path.getsize(old)) == before
    assert sqlite3.connect(old).execute("SELECT count(*) FROM sqlite_schema WHERE name = 'v_composability'").fetchone() == (0,)


# ---- escaping ----------------------------------------------------------------------------------

EVIL_MODEL = '<script>alert("m")</script>'
EVIL_LABEL = "<img src=x onerror=alert(1)>|"


@test
def db_text_cannot_inject_markup():
    db, out = made("evil", model_name=EVIL_MODEL, label_prefix=EVIL_LABEL)
    html = read(os.path.join(out, "report.html"))
    md = read(os.path.join(out, "report.md"))
    assert "<script" not in html.lower(), "a <script> element in the page"
    assert "<img" not in html.lower() and "onerror=alert" not in html.replace("&lt;img src=x onerror=alert", "")
    assert "&lt;script&gt;alert(&quot;m&quot;)&lt;/script&gt;" in html
    assert "<script" not in md and "<img" not in md
    assert "&lt;script>alert(\"m\")&lt;/script>" in md           # shown, not interpreted
    assert "&lt;img src=x onerror=alert(1)>\\|" in md             # the | cannot split a table cell
    # the page still has its plots (the model's data is all there under the odd name)
    assert html.count('<svg class="plot') == len(re.findall(r"<svg class=\"plot", read(os.path.join(made("plain")[1], "report.html"))))


# ---- bad input ---------------------------------------------------------------------------------

def report_fails(db, out, code=2):
    p = run([CISWEEP, "report", "--db", db, "--out", out], check=False)
    check(p.returncode == code, f"exit {p.returncode}, want {code}: {p.stderr}")
    return p.stderr


@test
def bad_inputs_exit_2_naming_the_db():
    out = os.path.join(_tmp, "bad-out")
    missing = os.path.join(_tmp, "nope.db")
    err = report_fails(missing, out)
    assert f"cisweep report: {missing}: no such file" in err, err
    err = report_fails(_tmp, out)
    assert f"{_tmp}: is a directory" in err, err
    text = os.path.join(_tmp, "notes.txt")
    with open(text, "w") as f:
        f.write("this is not a database\n" * 100)
    err = report_fails(text, out)
    assert text in err and "database" in err, err
    foreign = os.path.join(_tmp, "foreign.db")
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    err = report_fails(foreign, out)
    assert foreign in err and "not a cisweep database" in err, err
    empty = os.path.join(_tmp, "empty.db")
    open(empty, "w").close()
    err = report_fails(empty, out)
    assert empty in err and "empty" in err, err
    assert not os.path.exists(out), "nothing is written for a bad DB"
    for args in (["report"], ["report", "--db", missing], ["report", "--out", out], ["report", "--db"],
                 ["report", "--db", missing, "--out", out, "--bogus"]):
        p = run([CISWEEP] + args, check=False)
        assert p.returncode == 2 and "usage: cisweep report" in p.stderr + p.stdout or "required" in p.stderr, (args, p.stderr)
    p = run([CISWEEP, "--help"])
    assert "report --db DB --out DIR" in p.stdout, p.stdout
    # an output directory that cannot be made: exit 1, naming it
    db, _ = made("plain")
    blocker = os.path.join(_tmp, "file-not-dir")
    open(blocker, "w").close()
    err = report_fails(db, os.path.join(blocker, "out"), code=1)
    assert blocker in err, err


@test
def empty_sweep_says_no_data():
    d = os.path.join(_tmp, "nodata")
    os.makedirs(d)
    grid = os.path.join(d, "grid.json")
    with open(grid, "w") as f:
        json.dump(report_db.GRID, f)
    db = os.path.join(d, "sweep.db")
    run([CISWEEP, "launch", "--db", db, "--grid", grid])
    out = os.path.join(d, "out")
    run([CISWEEP, "report", "--db", db, "--out", out])
    md, html = read(os.path.join(out, "report.md")), read(os.path.join(out, "report.html"))
    assert "136 total: 0 done" in md and "No data: no job has finished" in md, md[:2000]   # 135 + statistics
    assert "no data: no job has finished" in html and "<svg" not in html


@test
def singles_only_sweep_gives_no_data_boxes():
    """only the baseline and single interventions finished: every pair plot and heat map is a
    "no data" box (none is an empty frame), the tables say No data"""
    d = os.path.join(_tmp, "singles")
    os.makedirs(d)
    db = report_db.make_db(CISWEEP, d)
    con = sqlite3.connect(db)
    two = "SELECT j.id FROM jobs j JOIN compositions c ON c.id = j.composition_id WHERE c.n_stages = 2"
    for t in ("results", "stages"):
        con.execute(f"DELETE FROM {t} WHERE job_id IN ({two})")
    con.execute(f"UPDATE jobs SET state = 'pending', current_attempt = NULL, finished_at = NULL WHERE id IN ({two})")
    con.execute(f"DELETE FROM attempts WHERE job_id IN ({two})")
    con.execute(f"UPDATE jobs SET attempt = 0 WHERE id IN ({two})")
    con.commit()
    con.close()
    out = os.path.join(d, "out")
    run([CISWEEP, "report", "--db", db, "--out", out])
    md, html = read(os.path.join(out, "report.md")), read(os.path.join(out, "report.html"))
    assert md.count("No data: no pair of this kind") == 3, md[:3000]
    assert "No data: no compressor has both orders finished" in md
    assert html.count('<svg class="plot') == 0
    # 4 heat maps + 6 figures + 24 pair plots, each a visible note
    assert html.count('<div class="nodata">') == 4 + 6 + 24, html.count('<div class="nodata">')
    assert html.count("no data: no compressor has both orders finished at two levels or more") == 2


@test
def two_models_two_sections():
    d = os.path.join(_tmp, "two")
    os.makedirs(d)
    db = report_db.make_db(CISWEEP, d, models=["tiny", "small"])
    out = os.path.join(d, "out")
    run([CISWEEP, "report", "--db", db, "--out", out])
    md, html = read(os.path.join(out, "report.md")), read(os.path.join(out, "report.html"))
    assert "## Model tiny (sweep report-test)" in md and "## Model small (sweep report-test)" in md
    ids = dict((m, n) for n, m in re.findall(r'<h2 id="model-(\d)">Model (\w+)', html))
    assert sorted(ids) == ["small", "tiny"] and sorted(ids.values()) == ["1", "2"], ids
    for m, n in ids.items():   # the table of contents links each section
        assert f'<a href="#model-{n}">{m} (report-test)</a>' in html, (m, n)
    # the same values in both slots: the same tables twice
    a, b = re.split(r"^## Model ", md, flags=re.M)[1:]
    t = parse_tables(a)
    assert t and t == parse_tables(b) == hand_tables_rounded(t)
    assert html.count('<svg class="plot') == 2 * (2 + 2 + 6 + 24)


def hand_tables_rounded(got):
    """hand_tables() where each value is within the printing tolerance of got's, else the hand value"""
    want = hand_tables()
    return {k: got[k] if k in got and abs(got[k][0] - v[0]) <= 1.01e-4 and abs(got[k][1] - v[1]) <= 1.01e-4 else v
            for k, v in want.items()}


@test
def runs_while_a_writer_holds_the_db():
    db, _ = made("plain")
    w = sqlite3.connect(db, timeout=10)
    w.execute("BEGIN IMMEDIATE")                    # the coordinator's write transaction
    w.execute("UPDATE jobs SET priority = priority + 1")
    try:
        out = os.path.join(_tmp, "during-write")
        p = run([CISWEEP, "report", "--db", db, "--out", out], timeout=30)
        assert os.path.getsize(os.path.join(out, "report.html")) > 10000, p.stdout
    finally:
        w.rollback()
        w.close()


# ---- Chromium ----------------------------------------------------------------------------------

CHECK_JS = """<script>
(function () {
  var errs = [];
  window.addEventListener('error', function (e) { errs.push('error: ' + e.message); });
  var plots = document.querySelectorAll('svg.plot'), bad = [], marks = 0;
  for (var i = 0; i < plots.length; i++) {
    var ms = plots[i].querySelectorAll('.mark'), ok = 0;
    for (var j = 0; j < ms.length; j++) {
      var b = ms[j].getBBox();
      if (b.width > 0 || b.height > 0) ok++;
    }
    marks += ok;
    var t = plots[i].querySelector('title');
    if (ok === 0) bad.push(t ? t.textContent : 'plot ' + i);
    var box = plots[i].getBoundingClientRect();
    if (!(box.width > 0 && box.height > 0)) bad.push('zero-size ' + i);
  }
  var pre = document.createElement('pre');
  pre.id = 'report-check';
  pre.textContent = JSON.stringify({plots: plots.length, marks: marks, bad: bad, errors: errs,
                                    nodata: document.querySelectorAll('.nodata').length});
  document.body.appendChild(pre);
})();
</script>"""


def chromium():
    """the browser: $CISWEEP_CHROMIUM when set (a path that does not exist = none), else on PATH"""
    forced = os.environ.get("CISWEEP_CHROMIUM")
    if forced is not None:
        return forced if os.access(forced, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def run_chromium(args, url):
    exe = chromium()
    prof = tempfile.mkdtemp(prefix="chromium.", dir=_tmp)
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           "--enable-logging=stderr", "--v=0", f"--user-data-dir={prof}"] + args + [url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def console_lines(stderr):
    """the page's console messages (Chromium logs each as ...:CONSOLE:N] "text", source: ...)"""
    return [l for l in stderr.splitlines() if ":CONSOLE" in l]


def needs_chromium():
    if not chromium():
        print("SKIP: chromium is not installed (bash deploy/install-deps.sh installs it)")
        skip("chromium is not installed (bash deploy/install-deps.sh installs Debian's chromium)")


@test
def chromium_detects_a_broken_page():
    """the harness itself: a page with a blocked load and a script error must be caught"""
    needs_chromium()
    page = os.path.join(_tmp, "broken.html")
    with open(page, "w") as f:
        f.write('<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="default-src '
                "'none'; script-src 'unsafe-inline'\"></head><body><img src=\"http://192.0.2.1/x.png\">"
                "<script>nosuchfunction();</script></body></html>")
    p = run_chromium(["--dump-dom"], "file://" + page)
    lines = console_lines(p.stderr)
    assert any("nosuchfunction" in l for l in lines), p.stderr[-2000:]
    assert any("Content Security Policy" in l for l in lines), p.stderr[-2000:]


@test
def chromium_renders_every_plot():
    needs_chromium()
    db, out = made("plain")
    page = os.path.join(out, "report.html")
    html = read(page)
    n_svg = html.count('<svg class="plot')
    # 2 + 2 heat maps (the paper's level, every level), 6 of the paper's figures (2 compressors x
    # edit success, WMDP, MMLU), 24 pair plots (3 edit metrics x 4 editor pairs, MMLU x 8 pairs,
    # WMDP x 4 unlearner pairs)
    assert n_svg == 2 + 2 + 6 + 24, n_svg
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", html), "an external resource"
    # 1. the page as shipped: loads with no console message at all; screenshot kept
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "report.png")
    if os.path.exists(shot):
        os.remove(shot)
    p = run_chromium(["--hide-scrollbars", "--window-size=1400,3000", f"--screenshot={shot}"], "file://" + page)
    assert console_lines(p.stderr) == [], console_lines(p.stderr)
    assert os.path.exists(shot) and os.path.getsize(shot) > 50000, p.stderr[-2000:]
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    shutil.copy(os.path.join(out, "report.html"), os.path.join(ARTIFACTS, "report.html"))
    shutil.copy(os.path.join(out, "report.md"), os.path.join(ARTIFACTS, "report.md"))
    # 2. a copy with the check script (and a CSP that lets it run): every plot has drawn marks
    probe = os.path.join(out, "probe.html")
    with open(probe, "w", encoding="utf-8") as f:
        f.write(html.replace("img-src data:", "img-src data:; script-src 'unsafe-inline'")
                    .replace("</body>", CHECK_JS + "</body>"))
    p = run_chromium(["--dump-dom"], "file://" + probe)
    assert console_lines(p.stderr) == [], console_lines(p.stderr)
    m = re.search(r'<pre id="report-check">(.*?)</pre>', p.stdout, re.S)
    assert m, p.stdout[-2000:]
    res = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert res["plots"] == n_svg, (res["plots"], n_svg)
    assert res["bad"] == [] and res["errors"] == [], res
    assert res["marks"] > 10 * n_svg // 2, res
    assert res["nodata"] == 0, res                      # the full grid has data for every plot
    print(f"# chromium: {res['plots']} plots, {res['marks']} marks drawn; screenshot {shot}")


if __name__ == "__main__":
    main()
