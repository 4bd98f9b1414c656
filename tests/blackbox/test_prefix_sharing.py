"""Black-box: shared work is done once (issue 12 item 2). A real `cisweep run` (coordinator + worker
processes, a SQLite file) on a tiny trained model, with compositions of the test stage test_scale
that share a first stage: A->X1..X4 and B->X1..X4, listed interleaved (A->X1, B->X1, A->X2, ...).

- With one worker whose snapshot budget holds ONE snapshot (--snapshot-mb 4 for a 3 MB model), the
  id order would evict A for B and B for A at every job (8 first stages computed). The coordinator
  prefers the jobs whose prefix the worker advertises, so it runs all A jobs, then all B jobs: the
  first stage is computed twice and restored six times; the stages table still lists every stage
  and names the job each restored stage came from.
- Every metric of every job equals, exactly, the same sweep run with snapshots off (--snapshot-mb 0,
  where every first stage is computed): starting from a snapshot gives the from-scratch model.
- With two workers, every job is done and every restored stage came from a job of the same prefix."""
import json, os, shutil, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, cleanup, main, run, query, CISWEEP, WORKER, tiny_world_and_model  # noqa: E402

STATE = {}
A = {"method": "test_scale", "params": {"factor": 0.5}}
B = {"method": "test_scale", "params": {"factor": 0.25, "last_layers": 1}}


def X(i):
    return {"method": "test_scale", "params": {"factor": 1.0 + i / 10, "param": "model.norm.weight"}}


def setup():
    if "dir" in STATE:
        return STATE["dir"]
    d = tempfile.mkdtemp(prefix="cisweep-prefix-")
    tiny_world_and_model(d, steps=2)
    comps = []
    for i in range(1, 5):
        comps += [[A, X(i)], [B, X(i)]]
    json.dump({"name": "prefix", "models": ["default"], "baseline": False, "singles": False, "compositions": comps},
              open(os.path.join(d, "g.json"), "w"))
    STATE["dir"] = d
    return d


def sweep(name, workers, snapshot_mb):
    d = setup()
    db = os.path.join(d, name + ".db")
    p = run([CISWEEP, "run", "--grid", os.path.join(d, "g.json"), "--workers", str(workers), "--slots", "1",
             "--db", db, "--models", os.path.join(d, "models.json"), "--data", os.path.join(d, "world"),
             "--eval-limit", "4", "--threads", "1", "--allow-selftest", "--snapshot-mb", str(snapshot_mb),
             "--cache", os.path.join(d, "c-" + name)], check=False, timeout=600)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr[-3000:])
    assert query(db, "SELECT state, count(*) FROM jobs GROUP BY state") == [("done", 8)]
    return db


def first_stages(db):
    """(label, worker, restored_from job or None) of every job's stage 1, in job order"""
    return query(db, "SELECT c.label, j.worker_id, json_extract(s.record_json, '$.restored_from.job') "
                     "FROM stages s JOIN jobs j ON j.id = s.job_id JOIN compositions c ON c.id = j.composition_id "
                     "WHERE s.stage = 1 AND s.attempt = j.current_attempt ORDER BY j.id")


def metrics(db):
    rows = query(db, "SELECT c.label, r.metric, r.value, r.value_text FROM results r JOIN jobs j ON j.id = r.job_id "
                     "JOIN compositions c ON c.id = j.composition_id WHERE r.is_current = 1 "
                     "AND r.metric NOT LIKE 'time%' AND r.metric NOT LIKE '%per_s' AND substr(r.metric, 1, 4) <> 'cpu_'")  # wall/CPU times and rates vary
    return {(lab, m): (v, t) for lab, m, v, t in rows}


@test
def one_worker_runs_a_prefix_once_and_results_match_scratch():
    on = sweep("on", 1, 4)
    off = sweep("off", 1, 0)
    st = first_stages(on)
    restored = [r for r in st if r[2] is not None]
    assert len(st) == 8 and len(restored) == 6, st
    # the order the worker ran them in: all of one prefix, then all of the other
    order = query(on, "SELECT c.label FROM jobs j JOIN compositions c ON c.id = j.composition_id "
                      "JOIN attempts a ON a.job_id = j.id ORDER BY a.started_at, j.id")
    firsts = [lab[0].split("->")[0] for lab in order]
    assert firsts == [firsts[0]] * 4 + [firsts[4]] * 4 and firsts[0] != firsts[4], firsts
    # each restored stage came from a job with the same first stage
    lab_of = dict(query(on, "SELECT j.id, c.label FROM jobs j JOIN compositions c ON c.id = j.composition_id"))
    for lab, _, src in restored:
        assert lab_of[src].split("->")[0] == lab.split("->")[0], (lab, lab_of[src])
    # every stage of every plan is in the stages table (2 per job), restored ones with the copy's time
    assert query(on, "SELECT count(*) FROM stages") == [(16,)]
    recs = query(on, "SELECT params_json, record_json FROM stages WHERE stage = 1 AND "
                     "json_extract(record_json, '$.restored_from.job') IS NOT NULL")
    for params, rec in recs:
        rec = json.loads(rec)
        assert rec["n_matched"] >= 1 and "wall_ms" in rec["restored_from"] and len(rec["restored_from"]["key"]) == 64
        assert json.loads(params)["factor"] in (0.5, 0.25)
    # snapshots off: every first stage computed, and the very same metrics, bit for bit
    assert all(r[2] is None for r in first_stages(off))
    m_on, m_off = metrics(on), metrics(off)
    assert len(m_on) > 8 * 3 and m_on == m_off, [k for k in m_on if m_on.get(k) != m_off.get(k)][:5]


@test
def two_workers_finish_and_reuse_within_a_prefix():
    db = sweep("two", 2, 4)
    st = first_stages(db)
    lab_of = dict(query(db, "SELECT j.id, c.label FROM jobs j JOIN compositions c ON c.id = j.composition_id"))
    restored = [r for r in st if r[2] is not None]
    assert len(restored) >= 4, st  # at most one computation of each prefix per worker
    for lab, _, src in restored:
        assert lab_of[src].split("->")[0] == lab.split("->")[0], (lab, lab_of[src])


@cleanup
def remove_tmp():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
