"""Black-box: MEMIT's covariance statistics as a prerequisite job and a shared artifact (issue 10;
issue 15's artifact cache in the runner). Real processes: `cisweep run` (the launch code of
`cisweep launch`, a real coordinator, two real workers) on a tiny trained model and a small
synthetic world, a real SQLite file read with the sqlite3 shell.

- A grid with two MEMIT jobs (edit sets 1 and 2) and FT jobs gets exactly ONE statistics job
  (composition pattern 'prereq', method memit_stats); both MEMIT jobs, and only they, depend on
  it; it finished before either MEMIT job started; its result registered one `artifacts` row per
  edited layer (key, path under the artifact root, sha256 and size of the real file); both MEMIT
  stage records say the statistics were read from the artifact cache (source "artifact", every
  layer cached, none computed, seconds 0) and their "stats" phase took a small part of the time
  the statistics job spent computing.
- A relaunch and a second `cisweep run` add nothing (no job, no dependency, no attempt).
- With the artifact cache wiped, a retried MEMIT job computes the statistics itself and its stage
  record says so (source "computed", a note naming the cache).
- A grid without MEMIT gets no statistics job; MEMIT variants that differ only in value-optimisation
  settings share one, a different mom2_n_samples gets its own."""
import hashlib, json, os, shutil, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, cleanup, main, run, query, CISWEEP, tiny_world_and_model  # noqa: E402

STATE = {}
MEMIT = {"method": "memit", "params": {"v_steps": 2, "mom2_n_samples": 400}}
FT = {"method": "ft", "params": {"steps": 2}}


def setup():
    if "dir" in STATE:
        return STATE["dir"]
    d = tempfile.mkdtemp(prefix="cisweep-statsjob-")
    tiny_world_and_model(d, steps=4)
    STATE["dir"] = d
    return d


def sh(db, sql):
    p = run(["sqlite3", "-readonly", "-json", f"file:{db}?mode=ro", sql])
    return json.loads(p.stdout or "[]")


def grid(d, name, comps, edit_sets=(1, 2)):
    path = os.path.join(d, name + ".json")
    json.dump({"name": name, "models": ["default"], "baseline": False, "singles": False,
               "edit_sets": list(edit_sets), "compositions": comps}, open(path, "w"))
    return path


def sweep_run(d, g, db, check=True):
    p = run([CISWEEP, "run", "--grid", g, "--workers", "2", "--db", db, "--models", os.path.join(d, "models.json"),
             "--data", os.path.join(d, "world"), "--eval-limit", "4", "--threads", "1",
             "--cache", os.path.join(d, "cache")], check=False, timeout=900)
    if check:
        assert p.returncode == 0, (p.returncode, p.stdout[-3000:], p.stderr[-3000:])
    return p


def ran():
    """the sweep of two MEMIT jobs and two FT jobs, run once for the tests below"""
    if "db" in STATE:
        return STATE
    d = setup()
    g = grid(d, "stats", [[MEMIT], [FT]])
    db = os.path.join(d, "s.db")
    p = sweep_run(d, g, db)
    STATE.update(db=db, grid=g, first=p, artifacts=os.path.join(d, "cache", "artifacts"))
    return STATE


def prereq_jobs(db):
    return sh(db, "SELECT j.id, j.state, j.priority, j.edit_set, c.canonical, c.label, j.finished_at FROM jobs j "
                  "JOIN compositions c ON c.id = j.composition_id WHERE c.pattern = 'prereq' ORDER BY j.id")


@test
def one_statistics_job_that_both_memit_jobs_wait_for():
    s = ran()
    db = s["db"]
    assert "1 statistics jobs added, 0 already there" in s["first"].stdout, s["first"].stdout[-2000:]
    states = sh(db, "SELECT state, count(*) AS n FROM jobs GROUP BY state")
    assert states == [{"state": "done", "n": 5}], states        # 2 MEMIT + 2 FT + 1 statistics
    pj = prereq_jobs(db)
    assert len(pj) == 1, pj
    stats = pj[0]
    comp = json.loads(stats["canonical"])
    assert comp == [{"method": "memit_stats", "params": {"layers": [4, 5, 6, 7, 8], "layers_depth": 32,
                                                          "mom2_n_samples": 400}}], comp
    memit = sh(db, "SELECT j.id FROM jobs j JOIN compositions c ON c.id = j.composition_id "
                   "WHERE c.canonical LIKE '%\"memit\"%' ORDER BY j.id")
    deps = sh(db, "SELECT job_id, depends_on FROM dependencies ORDER BY job_id")
    assert deps == [{"job_id": m["id"], "depends_on": stats["id"]} for m in memit] and len(memit) == 2, (deps, memit)
    others = sh(db, "SELECT max(priority) AS p FROM jobs WHERE id <> %d" % stats["id"])[0]["p"]
    assert stats["priority"] > others, (stats, others)
    # the statistics job ended before either MEMIT job's (only) attempt started
    starts = sh(db, "SELECT a.job_id, a.started_at FROM attempts a JOIN dependencies d ON d.job_id = a.job_id")
    assert len(starts) == 2 and all(r["started_at"] >= stats["finished_at"] for r in starts), (starts, stats)


@test
def the_statistics_job_registers_its_artifacts():
    s = ran()
    db = s["db"]
    stats = prereq_jobs(db)[0]
    st = sh(db, "SELECT method, category, params_json, record_json FROM v_stages WHERE job_id = %d AND is_current"
            % stats["id"])
    assert len(st) == 1 and st[0]["method"] == "memit_stats" and st[0]["category"] == "prereq", st
    rec = json.loads(st[0]["record_json"])
    layers = json.loads(st[0]["params_json"])["edit_layers"]
    assert rec["computed_layers"] == len(layers) and rec["cached_layers"] == 0 and rec["n_docs"] == 400, rec
    arts = sh(db, "SELECT key, kind, path, sha256, bytes, job_id FROM artifacts ORDER BY id")
    assert [a["key"] for a in arts] == rec["keys"] and len(arts) == len(layers), (arts, rec)
    for a in arts:
        assert a["kind"] == "memit_mom2" and a["job_id"] == stats["id"], a
        assert a["path"] == "objects/%s/%s" % (a["key"][:2], a["key"]), a
        f = os.path.join(s["artifacts"], a["path"])
        data = open(f, "rb").read()
        assert len(data) == a["bytes"] and hashlib.sha256(data).hexdigest() == a["sha256"], a
    rows = {r["metric"]: r["value"] for r in sh(db, "SELECT metric, value FROM v_results WHERE job_id = %d" % stats["id"])}
    assert rows["stats_layers_computed"] == len(layers) and rows["stats_seconds"] > 0, rows
    assert not os.listdir(os.path.join(s["artifacts"], "tmp")), "temporary files left in the artifact cache"


@test
def memit_jobs_read_the_statistics_and_do_not_recompute():
    s = ran()
    db = s["db"]
    stats_s = sh(db, "SELECT value FROM v_results WHERE pattern = 'prereq' AND metric = 'stats_seconds' "
                     "AND is_current")[0]["value"]
    rows = sh(db, "SELECT job_id, seed, record_json, phases_json FROM v_stages WHERE is_current AND method = 'memit' "
                  "ORDER BY seed")
    assert [r["seed"] for r in rows] == [1, 2], rows
    keys = [a["key"] for a in sh(db, "SELECT key FROM artifacts ORDER BY id")]
    for r in rows:
        st = json.loads(r["record_json"])["stats"]
        n = len(json.loads(r["record_json"])["edit_layers"])
        assert st["source"] == "artifact" and "note" not in st, st
        assert st["cached_layers"] == n and st["computed_layers"] == 0 and st["seconds"] == 0, st
        assert st["key"] == keys[-1] and st["artifact_root"] == s["artifacts"], (st, keys)
        t = json.loads(r["phases_json"])["stats"]
        assert t < stats_s / 3, (t, stats_s)    # reading (and hashing the weights for the key), not computing


@test
def relaunch_and_rerun_add_nothing():
    s = ran()
    db = s["db"]
    d = STATE["dir"]
    before = (sh(db, "SELECT count(*) AS n FROM jobs"), sh(db, "SELECT count(*) AS n FROM dependencies"),
              sh(db, "SELECT count(*) AS n FROM attempts"), sh(db, "SELECT count(*) AS n FROM artifacts"))
    p = run([CISWEEP, "launch", "--db", db, "--grid", s["grid"], "--models", os.path.join(d, "models.json")])
    assert "0 jobs added" in p.stdout and "0 statistics jobs added, 1 already there" in p.stdout, p.stdout
    sweep_run(d, s["grid"], db)
    after = (sh(db, "SELECT count(*) AS n FROM jobs"), sh(db, "SELECT count(*) AS n FROM dependencies"),
             sh(db, "SELECT count(*) AS n FROM attempts"), sh(db, "SELECT count(*) AS n FROM artifacts"))
    assert before == after, (before, after)
    assert len(prereq_jobs(db)) == 1


@test
def a_wiped_cache_makes_memit_compute_and_say_so():
    s = ran()
    db = s["db"]
    d = STATE["dir"]
    shutil.rmtree(s["artifacts"])
    job = sh(db, "SELECT job_id FROM v_stages WHERE is_current AND method = 'memit' AND seed = 2")[0]["job_id"]
    p = run([CISWEEP, "retry", "--db", db, "--where", "id = %d AND state = 'done'" % job])
    assert "1 jobs back to pending" in p.stdout, p.stdout
    sweep_run(d, s["grid"], db)
    r = sh(db, "SELECT record_json FROM v_stages WHERE is_current AND job_id = %d AND method = 'memit'" % job)
    st = json.loads(r[0]["record_json"])["stats"]
    assert st["source"] == "computed" and st["computed_layers"] >= 1 and st["cached_layers"] == 0, st
    assert "not in the artifact cache" in st["note"] and s["artifacts"] in st["note"], st
    # and it published them again for whoever comes next
    assert os.path.isfile(os.path.join(s["artifacts"], "objects", st["key"][:2], st["key"]))


@test
def statistics_jobs_follow_the_memit_settings_and_only_memit():
    d = setup()
    models = os.path.join(d, "models.json")
    db = os.path.join(d, "launch-only.db")
    g = grid(d, "nomemit", [[FT], [{"method": "wanda", "params": {"sparsity": 0.25}}]])
    p = run([CISWEEP, "launch", "--db", db, "--grid", g, "--models", models])
    assert "statistics" not in p.stdout, p.stdout
    assert prereq_jobs(db) == [] and sh(db, "SELECT count(*) AS n FROM dependencies") == [{"n": 0}]
    # value-optimisation settings do not change the statistics: one job; another mom2_n_samples: its own
    m2 = {"method": "memit", "params": {"v_steps": 5, "mom2_n_samples": 400}}
    m3 = {"method": "memit", "params": {"mom2_n_samples": 100}}
    g = grid(d, "variants", [[MEMIT], [m2], [m3], [{"method": "wanda", "params": {"sparsity": 0.25}}, MEMIT]])
    db2 = os.path.join(d, "variants.db")
    p = run([CISWEEP, "launch", "--db", db2, "--grid", g, "--models", models])
    assert "2 statistics jobs added, 0 already there" in p.stdout, p.stdout
    pj = prereq_jobs(db2)
    ns = sorted(json.loads(r["canonical"])[0]["params"]["mom2_n_samples"] for r in pj)
    assert ns == [100, 400], pj
    per = {r["n"]: r["k"] for r in sh(db2, "SELECT json_extract(c.canonical, '$[0].params.mom2_n_samples') AS n, "
                                          "count(*) AS k FROM dependencies d JOIN jobs j ON j.id = d.depends_on "
                                          "JOIN compositions c ON c.id = j.composition_id GROUP BY n")}
    assert per == {400: 6, 100: 2}, per     # memit, memit(v_steps 5), wanda->memit x 2 edit sets; memit(n 100) x 2
    p = run([CISWEEP, "launch", "--db", db2, "--grid", g, "--models", models])
    assert "0 statistics jobs added, 2 already there" in p.stdout, p.stdout
    assert len(prereq_jobs(db2)) == 2


@cleanup
def remove_tmp():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
