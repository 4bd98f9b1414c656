"""test_grid_reuse.py - two grids into one database through the real binaries (docs/grids.md, "Two
grids in one database"): `cisweep launch` of a second grid that shares work with a sweep still
running is refused (exit 2, the count, the other sweep's name and the way out; the DB unchanged);
after the first sweep finished, the shared jobs are reused (done at once with the first sweep's
metric rows, seen in v_runs and in `cisweep export` under both sweeps; the worker never runs them
again) and only the rest runs; `--no-reuse` runs them again; the "seeds" key gives a composition
without an editor one job per seed; `--models-dir` stores a map's relative paths absolute.

Selftest compositions (--allow-selftest, workers with --selftest) stand in for interventions: the
reuse is keyed on (model path and config, composition key, seed), whatever the methods are."""
import csv, io, json, os, shutil, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import CISWEEP, main, query, run, test  # noqa: E402


def write(d, name, obj):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        json.dump(obj, f)
    return p


def sweep_run(d, grid, db, *extra):
    return run([CISWEEP, "run", "--grid", grid, "--workers", "1", "--db", db, "--allow-selftest",
                "--heartbeat-ms", "100", "--cache", os.path.join(d, "cache"), *extra], check=False, timeout=120)


@test
def two_grids_share_work():
    d = tempfile.mkdtemp(prefix="cisweep-reuse-")
    try:
        db = os.path.join(d, "sweep.db")
        models = write(d, "models.json", {"m": "/models/default"})
        # A: 3 selftest compositions (no editor) over seeds 1, 2 = 6 jobs, each returning x = 1.5
        a = write(d, "a.json", {"name": "a", "models": ["m"], "seeds": [1, 2],
                                "selftest": {"count": 3, "params": {"rows": {"x": 1.5}}}})
        # B: 4 compositions over seeds 2, 3 (ids 0..2 shared with A on seed 2)
        b = write(d, "b.json", {"name": "b", "models": ["m"], "seeds": [2, 3],
                                "selftest": {"count": 4, "params": {"rows": {"x": 1.5}}}})
        # seeds leave the baseline (no stage to seed) at one job: 4 x 2 seeds + 1
        c = write(d, "c.json", {"name": "c", "models": ["m"], "seeds": [2, 3], "baseline": True,
                                "selftest": {"count": 4, "params": {"rows": {"x": 1.5}}}})
        p = run([CISWEEP, "grid", c, "--allow-selftest", "--jobs", "--quiet"])
        assert p.stdout.strip().splitlines()[-1] == "9", p.stdout
        run([CISWEEP, "launch", "--db", db, "--grid", a, "--models", models, "--allow-selftest"])
        # A not run yet: B would run 3 of A's jobs a second time -> refused, nothing changed
        p = run([CISWEEP, "launch", "--db", db, "--grid", b, "--models", models, "--allow-selftest"], check=False)
        assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
        assert "3 of the 8 jobs" in p.stderr and 'sweep "a"' in p.stderr and "--no-reuse" in p.stderr, p.stderr
        assert "Nothing was changed" in p.stderr, p.stderr
        assert query(db, "SELECT count(*) FROM sweeps")[0][0] == 1
        # run A to the end, then B: 3 reused, 6 run
        p = sweep_run(d, a, db, "--models", models)
        assert p.returncode == 0 and "6 done" in p.stdout, (p.stdout, p.stderr[-2000:])
        p = run([CISWEEP, "launch", "--db", db, "--grid", b, "--models", models, "--allow-selftest"])
        assert "8 jobs added" in p.stdout and "3 reused" in p.stdout, p.stdout
        assert query(db, "SELECT count(*) FROM jobs WHERE sweep_id = 2 AND state = 'done'")[0][0] == 3
        leased_before = query(db, "SELECT count(*) FROM events WHERE kind = 'leased'")[0][0]
        p = sweep_run(d, b, db, "--models", models)
        assert p.returncode == 0, (p.stdout, p.stderr[-2000:])
        assert query(db, "SELECT count(*) FROM events WHERE kind = 'leased'")[0][0] - leased_before == 5
        # every job of both sweeps is done, and the shared ones show the same rows in both
        rows = query(db, "SELECT sweep, label, edit_set, json_extract(metrics_json, '$.x') FROM v_runs "
                         "WHERE label LIKE 'selftest%' ORDER BY sweep, label, edit_set")
        assert len(rows) == 6 + 8, rows
        assert all(r[3] == 1.5 for r in rows), rows
        shared = query(db, "SELECT r.label, r.edit_set, r.job_id, e.detail FROM v_runs r JOIN events e ON "
                           "e.job_id = r.job_id AND e.kind = 'reused' WHERE r.sweep = 'b' ORDER BY r.label")
        assert [(s[0], s[1]) for s in shared] == [("selftest(id=0)", 2), ("selftest(id=1)", 2),
                                                  ("selftest(id=2)", 2)], shared
        for s in shared:
            src = json.loads(s[3])
            assert src["from_sweep"] == "a", src
            assert query(db, "SELECT edit_set FROM jobs WHERE id = ?", (src["from_job"],))[0][0] == 2
        # the export lists the reused rows under both sweeps
        out = run([CISWEEP, "export", "--db", db, "--format", "csv"]).stdout
        recs = list(csv.DictReader(io.StringIO(out)))
        assert "sweep" in recs[0], list(recs[0])
        keyed = {(r["sweep"], r["label"], r["edit_set"]) for r in recs}
        assert ("a", "selftest(id=1)", "2") in keyed and ("b", "selftest(id=1)", "2") in keyed, sorted(keyed)
        assert len(recs) == 6 + 8, len(recs)
        # --no-reuse: a third sweep of B runs everything again
        p = run([CISWEEP, "launch", "--db", db, "--grid", b, "--models", models, "--allow-selftest", "--name", "c",
                 "--no-reuse"])
        assert "--no-reuse: they run again" in p.stdout, p.stdout
        assert query(db, "SELECT count(*) FROM v_jobs WHERE sweep = 'c' AND state = 'pending'")[0][0] == 8
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def models_dir_resolves_relative_paths():
    d = tempfile.mkdtemp(prefix="cisweep-reuse-")
    try:
        db = os.path.join(d, "s.db")
        g = write(d, "g.json", {"name": "g", "models": ["x", "y", "z"], "baseline": True})
        models = write(d, "m.json", {"x": "tiny-llama3", "y": {"path": "sub/tiny-yi", "note": 1}, "z": "/abs/model"})
        run([CISWEEP, "launch", "--db", db, "--grid", g, "--models", models, "--models-dir", "fam/"], cwd=d)
        paths = dict(query(db, "SELECT name, path FROM models"))
        real = os.path.realpath(d)
        assert paths["x"] in (os.path.join(d, "fam", "tiny-llama3"), os.path.join(real, "fam", "tiny-llama3")), paths
        assert paths["y"].endswith("/fam/sub/tiny-yi") and os.path.isabs(paths["y"]), paths
        assert paths["z"] == "/abs/model", paths
        cfg = json.loads(query(db, "SELECT config FROM models WHERE name = 'y'")[0][0])
        assert cfg["path"] == paths["y"] and cfg["note"] == 1, cfg
        # --models-dir without --models, and an empty path, are refused with a message
        p = run([CISWEEP, "launch", "--db", db, "--grid", g, "--models-dir", "fam"], check=False, cwd=d)
        assert p.returncode == 2 and "--models MAP" in p.stderr, p.stderr
        bad = write(d, "bad.json", {"x": ""})
        p = run([CISWEEP, "launch", "--db", db, "--grid", g, "--models", bad], check=False, cwd=d)
        assert p.returncode == 2 and "bad.json: $.x" in p.stderr and "non-empty path" in p.stderr, p.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
