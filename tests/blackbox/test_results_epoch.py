"""Black-box: the results epoch guard (docs/orchestration.md "Results epoch", issue 12). Real
`cisweep run` / `cisweep launch` processes, a worker process, a real SQLite file, a 2-step model on a
small world and a 2-job grid (baseline, Wanda 25%). Every model job's result carries the row
`results_epoch` = this build's CISWEEP_RESULTS_EPOCH. A job is made to look computed by an older
build by rewriting (or deleting) that row with sqlite3, as an older build would have left it:
  - `cisweep run` continuing a sweep with such done jobs refuses before any work (exit 2, the count,
    the epochs found, --rerun-stale named, nothing changed); with --rerun-stale those jobs go back to
    pending and are recomputed (a new attempt with the current epoch; the old attempt's rows stay,
    not current); a further run finds nothing stale;
  - cross-sweep reuse at launch copies only done jobs of the current epoch: one of an older epoch
    or without the row runs again, and the launch message counts them;
  - a standalone `cisweep coordinator` (and `cisweep slurm submit`) refuses (exit 2) to serve a
    sweep that has jobs to run and done jobs of another epoch, naming the sweep and `cisweep retry
    --stale`, which requeues them;
    then it serves the sweep to a real worker to the end, every result of this build's epoch.
(tests/blackbox/test_epoch_peers.py: workers and coordinators of different epochs.)"""
import json, os, re, shutil, sqlite3, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, cleanup, main, run, query, CISWEEP, WORKER, free_port, tiny_world_and_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATE = {}


def epoch_of_build():
    with open(os.path.join(ROOT, "common", "version.h")) as f:
        return int(re.search(r"#define CISWEEP_RESULTS_EPOCH (\d+)", f.read()).group(1))


def grid(d, name):
    p = os.path.join(d, name + ".json")
    json.dump({"name": name, "models": ["default"], "baseline": True, "singles": True,
               "categories": {"compress": [{"method": "wanda", "levels": {"sparsity": [0.25]}}]}}, open(p, "w"))
    return p


def setup():
    if "dir" not in STATE:
        d = tempfile.mkdtemp(prefix="cisweep-epoch-")
        tiny_world_and_model(d, steps=2)
        STATE["dir"] = d
    return STATE["dir"]


def sweep(db, name, *extra, check=True, gridfile=None):
    d = setup()
    p = run([CISWEEP, "run", "--grid", gridfile or grid(d, name), "--workers", "1", "--db", db, "--models",
             os.path.join(d, "models.json"), "--data", os.path.join(d, "world"), "--eval-limit", "4",
             "--threads", "1", "--cache", os.path.join(d, "cache"), "--heartbeat-ms", "100", *extra],
            check=False, timeout=600)
    if check:
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr[-3000:])
    return p


def write(db, sql, args=()):
    con = sqlite3.connect(db, timeout=10)
    try:
        con.execute(sql, args)
        con.commit()
    finally:
        con.close()


def job_of(db, sweep_name, pattern):
    return query(db, "SELECT id FROM v_jobs WHERE sweep = ? AND pattern = ?", (sweep_name, pattern))[0][0]


@test
def every_model_job_records_the_epoch():
    d = setup()
    db = os.path.join(d, "rec.db")
    sweep(db, "rec")
    rows = query(db, "SELECT j.id, r.value FROM jobs j LEFT JOIN results r ON r.job_id = j.id AND r.is_current = 1 "
                 "AND r.metric = 'results_epoch' WHERE j.state = 'done' ORDER BY j.id")
    assert len(rows) == 2 and all(v == epoch_of_build() for _, v in rows), rows


@test
def run_refuses_stale_done_jobs_then_reruns_them():
    d = setup()
    db = os.path.join(d, "study.db")
    sweep(db, "st")
    base, wanda = job_of(db, "st", "baseline"), job_of(db, "st", "compress")
    before = dict(query(db, "SELECT metric, value FROM results WHERE job_id = ? AND is_current = 1", (base,)))
    # as an older build left them: the baseline of epoch 6, the Wanda job from before the row existed
    write(db, "UPDATE results SET value = 6 WHERE job_id = ? AND metric = 'results_epoch'", (base,))
    write(db, "DELETE FROM results WHERE job_id = ? AND metric = 'results_epoch'", (wanda,))
    attempts = query(db, "SELECT count(*) FROM attempts")[0][0]
    p = sweep(db, "st", check=False)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr[-3000:])
    assert "2 done jobs of sweep \"st\"" in p.stderr and "none: 1, 6: 1" in p.stderr, p.stderr
    assert "--rerun-stale" in p.stderr and "Nothing was started" in p.stderr, p.stderr
    assert query(db, "SELECT count(*) FROM attempts")[0][0] == attempts
    assert query(db, "SELECT count(*) FROM jobs WHERE state = 'done'")[0][0] == 2
    # --rerun-stale: both recomputed as attempt 2 under this build's epoch, the old rows kept as history
    p = sweep(db, "st", "--rerun-stale")
    assert "--rerun-stale: 2 done jobs" in p.stdout, p.stdout
    rows = query(db, "SELECT j.id, j.state, j.current_attempt, r.value FROM jobs j JOIN results r ON r.job_id = j.id "
                 "AND r.is_current = 1 AND r.metric = 'results_epoch' ORDER BY j.id")
    assert rows == [(base, "done", 2, float(epoch_of_build())), (wanda, "done", 2, float(epoch_of_build()))], rows
    old = query(db, "SELECT count(*), max(is_current) FROM results WHERE attempt = 1 AND job_id IN (?, ?)", (base, wanda))
    assert old[0][0] > 10 and old[0][1] == 0, old
    assert query(db, "SELECT count(*) FROM events WHERE kind = 'retry'")[0][0] == 2
    # the same model and presets: the recomputed metrics are the old ones
    after = dict(query(db, "SELECT metric, value FROM results WHERE job_id = ? AND is_current = 1", (base,)))
    for k in ("ppl_wikitext", "mmlu", "edit_success"):
        if k in before:
            assert after[k] == before[k], (k, before[k], after[k])
    # nothing stale any more: a plain run continues (nothing to do)
    p = sweep(db, "st")
    assert "stale" not in p.stderr and "2 done" in p.stdout, (p.stdout, p.stderr[-2000:])


@test
def reuse_takes_only_current_epoch_results():
    d = setup()
    db = os.path.join(d, "reuse.db")
    sweep(db, "a")
    base, wanda = job_of(db, "a", "baseline"), job_of(db, "a", "compress")
    models = os.path.join(d, "models.json")
    write(db, "UPDATE results SET value = 6 WHERE job_id = ? AND metric = 'results_epoch'", (base,))
    write(db, "DELETE FROM results WHERE job_id = ? AND metric = 'results_epoch'", (wanda,))
    # neither is of this build's epoch: both shared, none reused, both to run in "b"
    p = run([CISWEEP, "launch", "--db", db, "--grid", grid(d, "b"), "--models", models])
    assert "2 of the added jobs are the same work" in p.stdout and "0 reused" in p.stdout, p.stdout
    assert "2 to run (not reused: the other sweep's result is of another results epoch" in p.stdout, p.stdout
    assert query(db, "SELECT count(*) FROM v_jobs WHERE sweep = 'b' AND state = 'pending'")[0][0] == 2
    # the Wanda job of "a" back at the current epoch: reused by "c"; the epoch-6 baseline is not
    write(db, "INSERT INTO results(job_id, attempt, metric, value, is_current, created_at) "
          "SELECT id, current_attempt, 'results_epoch', ?, 1, 0 FROM jobs WHERE id = ?", (epoch_of_build(), wanda))
    # "b" still to run would make a reusing launch refuse (the same work twice): cancel it first
    run([CISWEEP, "cancel", "--db", db, "--where", "sweep = 'b'"])
    p = run([CISWEEP, "launch", "--db", db, "--grid", grid(d, "c"), "--models", models])
    assert "1 reused" in p.stdout and "1 to run (not reused" in p.stdout, p.stdout
    assert query(db, "SELECT pattern, state FROM v_jobs WHERE sweep = 'c' ORDER BY pattern") == \
        [("baseline", "pending"), ("compress", "done")]
    # the copy carries the epoch row, so it is itself reusable and never stale
    c_wanda = job_of(db, "c", "compress")
    assert query(db, "SELECT value FROM results WHERE job_id = ? AND is_current = 1 AND metric = 'results_epoch'",
                 (c_wanda,)) == [(float(epoch_of_build()),)]


@test
def standalone_coordinator_refuses_mixed_sweeps_until_retry_stale():
    import subprocess
    d = setup()
    db = os.path.join(d, "standalone.db")
    def own_grid(name, sparsity):   # work of its own (no job shared with "sa")
        path = os.path.join(d, name + ".json")
        json.dump({"name": name, "models": ["default"], "baseline": False, "singles": True,
                   "categories": {"compress": [{"method": "wanda", "levels": {"sparsity": [sparsity]}}]}}, open(path, "w"))
        return path
    # a finished sweep computed by an older build: left alone by everything below
    sweep(db, "fin", gridfile=own_grid("fin", 0.5))
    fin = job_of(db, "fin", "compress")
    write(db, "UPDATE results SET value = 6 WHERE job_id = ? AND metric = 'results_epoch'", (fin,))
    sweep(db, "sa")
    base, wanda = job_of(db, "sa", "baseline"), job_of(db, "sa", "compress")
    # the baseline as an older build left it: with nothing left to run, serving the DB mixes nothing
    write(db, "UPDATE results SET value = 6 WHERE job_id = ? AND metric = 'results_epoch'", (base,))
    ep = f"tcp://127.0.0.1:{free_port()}"
    coord = [CISWEEP, "coordinator", "--db", db, "--bind", ep, "--heartbeat-ms", "100", "--exit-when-done"]
    p = run(coord, check=False, timeout=60)
    assert p.returncode == 0 and "another results epoch" not in p.stderr, (p.returncode, p.stderr[-2000:])
    # the Wanda job to run again (as after a crash): now the sweep would be completed by this epoch
    run([CISWEEP, "retry", "--db", db, "--where", f"id = {wanda} AND state = 'done'"])
    p = run(coord, check=False, timeout=60)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr[-2000:])
    assert "1 done jobs hold results of another results epoch" in p.stderr and '"sa": 1' in p.stderr, p.stderr
    assert '"fin"' not in p.stderr, p.stderr   # finished: nothing of it would run
    assert f"cisweep retry --db {db} --stale --sweep NAME" in p.stderr and "Nothing was started" in p.stderr, p.stderr
    assert query(db, "SELECT state FROM jobs WHERE id = ?", (wanda,)) == [("pending",)]
    # `cisweep run` of another grid into the same file would serve "sa" too: refused as well
    p = sweep(db, "third", check=False, gridfile=own_grid("third", 0.75))
    assert p.returncode == 2 and '"sa": 1' in p.stderr and "--stale" in p.stderr, (p.returncode, p.stderr[-2000:])
    assert query(db, "SELECT count(*) FROM attempts WHERE job_id IN (SELECT id FROM v_jobs WHERE sweep = 'third')")[0][0] == 0
    # `cisweep slurm submit` says so at once, instead of a coordinator job failing later
    p = run([CISWEEP, "slurm", "submit", "--db", db, "--sweep", "sa", "--shared", os.path.join(d, "slurm-sa"), "--dry-run"],
            check=False)
    assert p.returncode == 2 and '"sa": 1' in p.stderr and "--stale" in p.stderr, (p.returncode, p.stderr)
    assert not os.path.exists(os.path.join(d, "slurm-sa", "worker.sbatch"))
    p = run([CISWEEP, "retry", "--db", db, "--stale", "--sweep", "sa"])
    assert f"1 done jobs of results epoch 6: 1 back to pending" in p.stdout, p.stdout
    assert query(db, "SELECT state FROM jobs WHERE id = ?", (base,)) == [("pending",)]
    assert query(db, "SELECT state FROM jobs WHERE id = ?", (fin,)) == [("done",)]   # another sweep: untouched
    p = run([CISWEEP, "retry", "--db", db, "--stale", "--sweep", "sa"])
    assert p.stdout.startswith("0 jobs back to pending"), p.stdout
    for bad, msg in ((["--stale", "--failed"], "takes no --failed or --where"), (["--sweep", "sa"], "goes with --stale")):
        p = run([CISWEEP, "retry", "--db", db, *bad], check=False)
        assert p.returncode == 2 and msg in p.stderr, (bad, p.stderr)
    c = subprocess.Popen(coord, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    w = subprocess.Popen([WORKER, "worker", "--connect", ep, "--cache", os.path.join(d, "cache-sa"), "--data",
                          os.path.join(d, "world"), "--eval-limit", "4", "--threads", "1", "--heartbeat-ms", "100"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out, errs = c.communicate(timeout=300)
    finally:
        w.kill()
        w.wait()
    assert c.returncode == 0, (c.returncode, errs[-3000:])
    rows = query(db, "SELECT j.id, j.state, r.value FROM v_jobs j JOIN results r ON r.job_id = j.id AND r.is_current = 1 "
                 "AND r.metric = 'results_epoch' WHERE j.sweep = 'sa' ORDER BY j.id")
    assert rows == [(base, "done", float(epoch_of_build())), (wanda, "done", float(epoch_of_build()))], rows
    assert query(db, "SELECT state FROM v_jobs WHERE sweep = 'third'") == [("done",)]
    # the finished old sweep keeps its results; `cisweep status` still counts them as stale
    assert query(db, "SELECT current_attempt FROM jobs WHERE id = ?", (fin,)) == [(1,)]
    st = run([CISWEEP, "status", "--db", db]).stdout
    assert "stale: 1 done jobs" in st, st


@cleanup
def remove():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
