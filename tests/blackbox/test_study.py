"""Black-box: the study end to end (issue 12), `cisweep run` without --grid, as `make run` runs it but
on the smoke grid (grids/study-smoke.json: every category, both orders, a pruner and a quantizer at
the headline levels), a small world and a briefly trained model. Real coordinator and worker
processes, a real SQLite file. The first run is interrupted with SIGINT in the middle of the sweep;
the second continues where it stopped (world and model kept, no job added twice) and finishes;
a third finds nothing to do. Then: every job done, the paper's recompress rule in the stages table,
the composability views agree with the per-composition means, the report is written, and each of
the five findings has a verdict line computed from this run, twice: the run asks for the cloze rows
(--eval-cloze), so the findings are printed on them too."""
import json, os, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, main, run, CISWEEP  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GRID = os.path.join(ROOT, "grids", "study-smoke.json")
STATE = {}


def args(out):
    return [CISWEEP, "run", "--out", out, "--study-grid", GRID, "--family-steps", "20", "--workers", "2",
            "--eval-limit", "8", "--world-scale", "small", "--eval-cloze"]


def q(db, sql):
    p = run(["sqlite3", "-readonly", "-json", f"file:{db}?mode=ro", sql])
    return json.loads(p.stdout or "[]")


def done_jobs(db):
    try:
        return q(db, "SELECT count(*) AS n FROM jobs WHERE state = 'done'")[0]["n"]
    except Exception:
        return 0


def study():
    """the interrupted run, the continued run and the no-op run, once for every test below"""
    if "out" in STATE:
        return STATE
    out = tempfile.mkdtemp(prefix="cisweep-study-")
    db = os.path.join(out, "sweep.db")
    p = subprocess.Popen(args(out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.time()
    while time.time() - t0 < 600 and p.poll() is None and done_jobs(db) < 3:
        time.sleep(0.5)
    interrupted = p.poll() is None
    if interrupted:
        p.send_signal(signal.SIGINT)
    first_out, _ = p.communicate(timeout=120)
    STATE.update(out=out, db=db, first_rc=p.returncode, first_out=first_out, interrupted=interrupted,
                 done_after_first=done_jobs(db))
    second = run(args(out), check=False, timeout=900)
    STATE.update(second=second)
    attempts = q(db, "SELECT job_id, attempt FROM attempts ORDER BY job_id, attempt")
    third = run(args(out), check=False, timeout=300)
    STATE.update(third=third, attempts_before_third=attempts)
    return STATE


@test
def interrupted_study_continues_and_finishes():
    s = study()
    assert s["interrupted"], "the sweep finished before it could be interrupted: " + s["first_out"][-2000:]
    assert s["first_rc"] == 130, (s["first_rc"], s["first_out"][-2000:])
    assert "interrupted; run it again to continue" in s["first_out"], s["first_out"][-2000:]
    # the small world is not the shipped family's (models/family): the first run trained
    assert "training (not the shipped family: the world's scale is \"small\"" in s["first_out"], s["first_out"][:3000]
    second = s["second"]
    assert second.returncode == 0, (second.returncode, second.stdout[-3000:], second.stderr[-3000:])
    # the world (step 1) and the models (step 2: every member exists, so no training) are kept
    assert "(exists)" in second.stdout and "(exist; kept)" in second.stdout, (second.stdout[-2000:], second.stderr[-2000:])
    assert "0 compositions added, 15 already there" in second.stdout, second.stdout[-2000:]
    rows = q(s["db"], "SELECT state, count(*) AS n FROM jobs GROUP BY state")
    assert rows == [{"state": "done", "n": 15}], rows
    # the third run found nothing to do: no attempt started, exit 0
    third = s["third"]
    assert third.returncode == 0, (third.returncode, third.stdout[-2000:], third.stderr[-2000:])
    assert q(s["db"], "SELECT job_id, attempt FROM attempts ORDER BY job_id, attempt") == s["attempts_before_third"]


@test
def recompress_rule_in_stages_table():
    s = study()
    rows = q(s["db"], "SELECT label, group_concat(method || CASE WHEN recompress THEN '*' ELSE '' END, ' ') AS plan "
                      "FROM (SELECT * FROM v_stages WHERE is_current = 1 ORDER BY job_id, stage) GROUP BY job_id ORDER BY label")
    plans = {r["label"]: r["plan"] for r in rows}
    assert plans["wanda(sparsity=0.25)->ft"] == "wanda ft wanda*", plans
    assert plans["gptq(bits=4)->ga"] == "gptq ga gptq*", plans
    assert plans["ft->wanda(sparsity=0.25)"] == "ft wanda", plans
    assert plans["ga->ft"] == "ga ft", plans


@test
def composability_views_agree_with_the_runs():
    s = study()
    rows = q(s["db"], "SELECT method_a, level_a, method_b, metric, kappa_ab, kappa_ba, e_of, e_os FROM v_composability "
                      "WHERE pair_kind = 'edit_compress' AND method_b = 'ft' AND metric = 'edit_success'")
    assert len(rows) == 2, rows   # wanda 0.25 x ft and gptq 4 x ft
    for r in rows:
        lab = "wanda(sparsity=0.25)" if r["method_a"] == "wanda" else "gptq(bits=4)"
        ab = q(s["db"], f"SELECT value FROM v_results WHERE label = '{lab}->ft' AND metric = 'edit_success'")[0]["value"]
        ba = q(s["db"], f"SELECT value FROM v_results WHERE label = 'ft->{lab}' AND metric = 'edit_success'")[0]["value"]
        assert abs(r["kappa_ab"] - ab) < 1e-12 and abs(r["kappa_ba"] - ba) < 1e-12, (r, ab, ba)
        assert abs(r["e_of"] - (1 - max(ab, ba))) < 1e-12 and abs(r["e_os"] - abs(ab - ba)) < 1e-12, r
    kinds = {r["pair_kind"] for r in q(s["db"], "SELECT DISTINCT pair_kind FROM v_composability")}
    assert kinds == {"edit_compress", "unlearn_compress", "edit_unlearn"}, kinds


@test
def report_findings_and_timings():
    s = study()
    out = s["out"]
    for f in ("report/report.md", "report/report.html", "timings.json"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    text = s["second"].stdout
    assert "== 6. the paper's findings on this run" in text, text[-3000:]
    # --eval-cloze: the workers stored the cloze rows, and the findings are printed again on them
    assert "== 6. the paper's findings on this run, read on the cloze rows" in text, text[-3000:]
    assert "(MMLU and WMDP below are the cloze rows" in text, text[-3000:]
    cnt = "SELECT count(DISTINCT r.job_id) AS n FROM results r JOIN jobs j ON j.id = r.job_id " \
          "WHERE r.is_current = 1 AND j.state = 'done' AND r.metric = '%s'"
    n_cloze, n_mc = q(s["db"], cnt % "cloze_wmdp_avg")[0]["n"], q(s["db"], cnt % "mmlu")[0]["n"]
    assert n_cloze == n_mc and n_mc >= 12, (n_cloze, n_mc)   # every evaluated job (not the statistics)
    verdicts = [l for l in text.splitlines() if l.strip().startswith("=> this run:")]
    assert len(verdicts) == 10, text[-4000:]
    # every finding had data on this grid
    assert not any("no data" in v for v in verdicts), text[-4000:]
    t = json.load(open(os.path.join(out, "timings.json")))
    assert t["jobs"] == 15 and t["sweep_s"] >= 0 and t["workers"] == 2, t


@test
def breakdown_reads_the_run():
    """tests/bench/study_breakdown.py (bench_study.sh's table, docs/study.md "Time") on this run:
    its counts are the database's (15 jobs, every stage fresh or restored), and a missing
    database is a clear error naming it."""
    s = study()
    out = s["out"]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tool = os.path.join(root, "tests", "bench", "study_breakdown.py")
    r = subprocess.run([sys.executable, tool, out], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    n_jobs = q(s["db"], "SELECT count(*) AS n FROM jobs")[0]["n"]
    assert f"jobs {n_jobs}, done {n_jobs}, failed/dead 0" in r.stdout, r.stdout
    n_stages = q(s["db"], "SELECT count(*) AS n FROM stages s JOIN attempts a USING (job_id, attempt) "
                          "WHERE a.outcome = 'done'")[0]["n"]
    counted = 0
    for line in r.stdout.split("## Stages")[1].split("## Evaluation")[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[2].isdigit() and cells[3].isdigit():
            counted += int(cells[2]) + int(cells[3])
    assert counted == n_stages, (counted, n_stages, r.stdout)
    assert "| cpu_eval_s |" in r.stdout and "| compress->edit |" in r.stdout, r.stdout
    bad = subprocess.run([sys.executable, tool, os.path.join(out, "nowhere")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "nowhere/sweep.db: no such file" in bad.stderr, bad.stderr


if __name__ == "__main__":
    main()
