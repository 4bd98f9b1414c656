"""Black-box tests of the orchestration: real coordinator and worker processes on loopback TCP, a
real SQLite file, real signals. Every assertion is on the DB (read-only, as a user would)."""
import json, os, random, signal, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, main, wait_for, run, skip, CISWEEP, WORKER  # noqa: E402
from sweeplib import Sweep  # noqa: E402


@test
def three_workers_200_jobs_done_exactly_once():
    with Sweep(200, {"sleep_ms": 2, "rows": {"acc": 0.5, "loss": 1.25}}) as s:
        s.launch()
        s.start_coordinator()
        for _ in range(3):
            s.start_worker()
        s.wait_finished(60)
        assert s.count("done") == 200, s.q("SELECT state, count(*) FROM jobs GROUP BY state")
        # every job ran exactly once (no loss, no duplicate), each with its rows
        assert s.q("SELECT count(*) FROM attempts")[0][0] == 200
        assert s.q("SELECT count(*) FROM results WHERE is_current=1")[0][0] == 400
        assert s.q("SELECT min(value), max(value) FROM results WHERE metric='acc'")[0] == (0.5, 0.5)
        workers = s.q("SELECT count(DISTINCT worker_id) FROM attempts")[0][0]
        assert workers == 3, f"work spread over {workers} workers"
        s.exactly_once()
        s.integrity_ok()


@test
def kill9_worker_mid_job_requeued_and_lost_attempt_recorded():
    with Sweep(12, {"sleep_ms": 400}) as s:
        s.launch()
        s.start_coordinator()
        victim = s.start_worker()
        wait_for(lambda: s.count("leased") >= 1, 10, what="a lease")
        time.sleep(0.1)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        s.integrity_ok()
        s.start_worker()
        s.start_worker()
        s.wait_finished(60)
        assert s.count("done") == 12
        lost = s.q("SELECT job_id, attempt FROM attempts WHERE outcome='lost'")
        assert len(lost) == 1, lost
        job = lost[0][0]
        row = s.q("SELECT state, attempt, spent, lost_count, current_attempt FROM jobs WHERE id=?", (job,))[0]
        assert row == ("done", 2, 1, 1, 2), row
        ev = s.q("SELECT count(*) FROM events WHERE kind='worker_lost'")[0][0]
        assert ev >= 1
        s.exactly_once()
        s.integrity_ok()


@test
def kill9_coordinator_mid_sweep_then_restart_completes():
    with Sweep(150, {"sleep_ms": 20}) as s:
        s.launch()
        c = s.start_coordinator()
        for _ in range(3):
            s.start_worker()
        wait_for(lambda: s.count("done") >= 30, 30, what="30 jobs done")
        c.send_signal(signal.SIGKILL)
        c.wait()
        s.integrity_ok()
        done_at_kill = s.count("done")
        assert done_at_kill < 150, "the sweep finished before the kill: make the jobs longer"
        time.sleep(0.3)
        s.start_coordinator()
        s.wait_finished(60)
        assert s.count("done") == 150
        # no job lost or counted twice: one current set of rows per job
        assert s.q("SELECT count(*) FROM results WHERE is_current=1")[0][0] == 150
        s.exactly_once()
        s.integrity_ok()
        starts = s.q("SELECT count(*) FROM events WHERE kind='coordinator_start'")[0][0]
        assert starts >= 1, "restart not recorded"


@test
def sigterm_coordinator_stops_cleanly_and_resumes():
    with Sweep(100, {"sleep_ms": 20}) as s:
        s.launch()
        c = s.start_coordinator()
        for _ in range(2):
            s.start_worker()
        wait_for(lambda: s.count("done") >= 10, 30, what="10 jobs done")
        c.send_signal(signal.SIGTERM)
        assert c.wait(timeout=10) == 0, "coordinator should exit 0 on SIGTERM"
        s.integrity_ok()
        # a clean stop leaves no WAL behind (checkpointed and truncated at close)
        wal = s.db + "-wal"
        assert not os.path.exists(wal) or os.path.getsize(wal) == 0, os.path.getsize(wal)
        assert s.count("done") < 100
        s.start_coordinator()
        s.wait_finished(60)
        assert s.count("done") == 100
        s.exactly_once()
        seen = s.q("SELECT count(*) FROM workers WHERE last_seen > first_seen")[0][0]
        assert seen >= 1, "workers.last_seen is kept fresh for status"


@test
def sigterm_worker_preempted_attempt_not_spent():
    with Sweep(3, {"sleep_ms": 1500}) as s:
        s.launch()
        s.start_coordinator()
        w = s.start_worker()
        wait_for(lambda: s.count("leased") == 1, 10, what="a lease")
        time.sleep(0.2)
        w.send_signal(signal.SIGTERM)
        rc = w.wait(timeout=10)
        assert rc == 0, f"worker exited {rc}"
        pre = wait_for(lambda: s.q("SELECT job_id FROM attempts WHERE outcome='preempted'"), 10, what="preempted attempt")
        job = pre[0][0]
        row = s.q("SELECT state, spent FROM jobs WHERE id=?", (job,))[0]
        assert row == ("pending", 0), row
        s.integrity_ok()
        s.start_worker()
        s.wait_finished(60)
        assert s.count("done") == 3
        assert s.q("SELECT spent FROM jobs WHERE id=?", (job,))[0][0] == 0
        s.exactly_once()


@test
def job_that_crashes_its_worker_every_time_is_quarantined():
    comps = [[{"method": "selftest", "params": {"action": "crash", "id": 1}}],
             [{"method": "selftest", "params": {"action": "ok", "id": 2}}]]
    with Sweep(compositions=comps, max_attempts=10) as s:
        s.launch()
        s.start_coordinator("--quarantine-after", "3")
        deadline = time.time() + 60
        # a supervisor that restarts crashed workers, as systemd or `cisweep run` would
        workers = [s.start_worker()]
        while time.time() < deadline and s.q("SELECT count(*) FROM jobs WHERE state IN ('pending','leased')")[0][0]:
            for i, w in enumerate(workers):
                if w.poll() is not None:
                    assert w.returncode != 0
                    s.integrity_ok()
                    workers[i] = s.start_worker()
            time.sleep(0.05)
        crash = s.q("SELECT j.state, j.lost_count FROM jobs j JOIN compositions c ON c.id=j.composition_id "
                    "WHERE c.canonical LIKE '%crash%'")[0]
        assert crash == ("dead", 3), crash
        assert s.q("SELECT count(*) FROM events WHERE kind='quarantined'")[0][0] == 1
        assert s.count("done") == 1
        s.integrity_ok()


@test
def failing_job_reports_error_and_log_tail_then_budget_spent():
    comps = [[{"method": "selftest", "params": {"action": "fail", "id": 1}}],
             [{"method": "selftest", "params": {"action": "fail_then_ok", "fail_attempts": 1, "id": 2}}]]
    with Sweep(compositions=comps, max_attempts=2) as s:
        s.launch()
        s.start_coordinator()
        w = s.start_worker()
        s.wait_finished(30)
        rows = dict(s.q("SELECT c.canonical LIKE '%fail_then_ok%', j.state FROM jobs j JOIN compositions c "
                        "ON c.id=j.composition_id"))
        assert rows == {1: "done", 0: "failed"}, rows
        err = s.q("SELECT error, log_tail FROM attempts WHERE outcome='failed' ORDER BY job_id LIMIT 1")[0]
        assert "failing on purpose" in err[0], err
        assert "failing on purpose" in err[1], "log tail should carry the job's log lines"
        assert w.poll() is None, "the daemon must survive a failing job"
        # retry --failed brings it back with a fresh budget
        out = run([CISWEEP, "retry", "--db", s.db, "--failed"]).stdout
        assert "1 jobs back to pending" in out, out
        wait_for(lambda: s.q("SELECT state FROM jobs WHERE state='failed'") != [] and
                 s.q("SELECT spent FROM jobs WHERE state='failed'")[0][0] == 2, 30, what="failed again")
        assert s.q("SELECT max(attempt) FROM jobs")[0][0] == 4


@test
def malformed_frames_and_random_bytes_are_dropped_coordinator_keeps_serving():
    import zmq
    with Sweep(20, {"sleep_ms": 5}) as s:
        s.launch()
        s.start_coordinator()
        # well-formed ZeroMQ, malformed cisweep messages
        ctx = zmq.Context()
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.connect(s.ep)
        bad = [[b"garbage"], [b"", b"CISW1", b"HELLO", b"{not json"], [b"", b"CISW9", b"HELLO", b"{}"],
               [b"", b"CISW1", b"NOPE", b"{}"], [b"", b"CISW1", b"HELLO", b"[]"],
               [b"", b"CISW1", b"RESULT", b'{"job":-1,"attempt":1,"rows":{}}'],
               [b"", b"CISW1", b"HELLO", b'{"worker":"x"}'], [b"", b"CISW1", b"HEARTBEAT", b'{"progress":7}'],
               [b"", b"CISW1", b"RESULT", b'{"job":1,"attempt":1,"rows":{"a":"text"}}'],
               [b"", b"CISW1"] + [b"x"] * 20, [b"", b"CISW1", b"READY", b"\xff\xfe"]]
        for frames in bad:
            d.send_multipart(frames)
        # a RESULT from a peer that never said HELLO is not trusted: it is told to register
        d.send_multipart([b"", b"CISW1", b"RESULT", b'{"job":1,"attempt":1,"rows":{"a":1}}'])
        assert d.poll(3000), "coordinator did not answer the unregistered peer"
        reply = d.recv_multipart()
        assert reply[2] == b"RECONNECT", reply
        d.close()
        ctx.term()
        # random bytes on the raw TCP port (libzmq may parse some as legacy ZMTP/1.0 frames: they
        # reach us as malformed messages and are dropped too; logging is rate-limited)
        for n in (1, 7, 64, 4096):
            with socket.create_connection(("127.0.0.1", s.port)) as raw:
                raw.sendall(bytes(random.getrandbits(8) for _ in range(n)))
                time.sleep(0.02)
        assert s.coord.poll() is None, "coordinator died"
        for _ in range(2):
            s.start_worker()
        s.wait_finished(30)
        assert s.count("done") == 20
        assert s.q("SELECT count(*) FROM results WHERE job_id=1 AND attempt=1 AND metric='a'")[0][0] == 0
        assert s.q("SELECT count(*) FROM events WHERE kind='bad_message'")[0][0] >= 8
        s.integrity_ok()
        log = open(os.path.join(s.dir, "coordinator-0.log")).read()
        for needle in ("malformed message", "not valid JSON", "protocol version mismatch", "unknown command"):
            assert needle in log, (needle, log[-3000:])


@test
def two_workers_claiming_the_same_identity():
    with Sweep(30, {"sleep_ms": 50}) as s:
        s.launch()
        s.start_coordinator()
        first = s.start_worker("--id", "gpu-node-1/cuda0")
        wait_for(lambda: s.count("done") >= 2, 20, what="first worker working")
        second = s.start_worker("--id", "gpu-node-1/cuda0")
        s.wait_finished(60)
        assert s.count("done") == 30
        assert first.poll() is None and second.poll() is None
        assert s.q("SELECT count(*) FROM attempts WHERE outcome != 'done'")[0][0] == 0, \
            s.q("SELECT job_id, attempt, outcome FROM attempts WHERE outcome != 'done'")
        s.exactly_once()
        s.integrity_ok()
        log2 = open(second.logpath).read()
        # the second one is refused by the ROUTER (libzmq keeps the first connection): it says so and retries
        assert "no answer from coordinator" in log2 and "another worker using the id" in log2, log2[-2000:]


@test
def worker_without_coordinator_retries_with_backoff_and_says_so():
    with Sweep(1) as s:
        w = s.start_worker()
        wait_for(lambda: open(w.logpath).read().count("no answer from coordinator") >= 2, 15,
                 what="two reconnect attempts logged")
        log = open(w.logpath).read()
        assert "reconnecting to" in log and "in 500 ms" in log, log
        # and it registers once the coordinator appears
        s.launch()
        s.start_coordinator()
        s.wait_finished(20)
        assert s.count("done") == 1


@test
def oom_job_fails_cleanly_under_a_memory_limit():
    comps = [[{"method": "selftest", "params": {"action": "oom", "oom_mb": 4096, "id": 1}}],
             [{"method": "selftest", "params": {"action": "ok", "id": 2}}]]
    with Sweep(compositions=comps, max_attempts=1) as s:
        s.launch()
        s.start_coordinator()
        w = s.start_worker("--mem-limit-mb", "1024")
        s.wait_finished(30)
        err = s.q("SELECT last_error FROM jobs WHERE state='failed'")
        assert len(err) == 1 and "out of memory" in err[0][0], err
        assert s.count("done") == 1
        assert w.poll() is None


@test
def hung_job_times_out_and_worker_restarts_itself():
    comps = [[{"method": "selftest", "params": {"action": "hang", "id": 1}}],
             [{"method": "selftest", "params": {"action": "ok", "id": 2}}]]
    with Sweep(compositions=comps, max_attempts=1) as s:
        s.launch()
        s.start_coordinator("--job-timeout-ms", "1000")
        w = s.start_worker("--preempt-grace-ms", "500")
        s.wait_finished(30)
        hung = s.q("SELECT j.state, a.outcome FROM jobs j JOIN attempts a ON a.job_id=j.id "
                   "JOIN compositions c ON c.id=j.composition_id WHERE c.canonical LIKE '%hang%'")
        assert hung == [("failed", "lost")], hung
        assert s.count("done") == 1
        assert w.poll() is None, "the worker re-executes itself, same pid"
        log = open(w.logpath).read()
        assert "re-executing the worker" in log


@test
def bad_grid_exit_2_db_untouched():
    with Sweep(5) as s:
        s.launch()
        before = s.q("SELECT count(*) FROM jobs")[0][0]
        mtime = os.path.getmtime(s.db)
        bad = os.path.join(s.dir, "bad.json")
        for text, needle in [('{"name": "x", "models": ["m"], ', "bad.json"),
                             ('{"name":"x","models":["m"],"categories":{"edit":[{"method":"rome"}]}}', "rome"),
                             ('{"name":"x","models":["m"],"categories":{"compress":[{"method":"gptq","levels":{"bits":[5]}}]}}', "bits")]:
            open(bad, "w").write(text)
            p = run([CISWEEP, "launch", "--db", s.db, "--grid", bad], check=False)
            assert p.returncode == 2, (p.returncode, p.stderr)
            assert needle in p.stderr and "bad.json" in p.stderr, p.stderr
        assert s.q("SELECT count(*) FROM jobs")[0][0] == before
        assert os.path.getmtime(s.db) == mtime
        # launching the same grid twice adds nothing
        out = s.launch().stdout
        assert "0 jobs added, 5 already there" in out, out


@test
def launch_with_models_map_and_bad_maps():
    with Sweep(3) as s:
        good = os.path.join(s.dir, "models.json")
        json.dump({"m": {"path": "/models/llama3-8b", "dtype": "bf16"}}, open(good, "w"))
        run([CISWEEP, "launch", "--db", s.db, "--grid", s.grid, "--allow-selftest", "--models", good])
        assert s.q("SELECT name, path FROM models") == [("m", "/models/llama3-8b")]
        s.start_coordinator()
        w = s.start_worker("--log-level", "debug")
        s.wait_finished(20)
        assert s.count("done") == 3
        bad = os.path.join(s.dir, "bad-models.json")
        for text, needle in [("[1,2]", "expected an object"), ('{"m": 3}', "$.m"), ("{", "bad-models.json:")]:
            open(bad, "w").write(text)
            p = run([CISWEEP, "launch", "--db", s.db, "--grid", s.grid, "--allow-selftest", "--models", bad],
                    check=False)
            assert p.returncode == 2 and needle in p.stderr and "bad-models.json" in p.stderr, p.stderr


@test
def status_cancel_export_and_run():
    with Sweep(40, {"sleep_ms": 30, "rows": {"mmlu": 0.61, "ppl_wikitext": 5.5}}) as s:
        s.launch()
        st = run([CISWEEP, "status", "--db", s.db]).stdout
        assert "pending 40" in st and "no worker is connected" in st, st
        n = run([CISWEEP, "cancel", "--db", s.db, "--where", "id > 30"]).stdout
        assert n.startswith("10 jobs cancelled"), n
        s.start_coordinator()
        s.start_worker()
        wait_for(lambda: s.count("done") >= 3, 20, what="progress")
        st = run([CISWEEP, "status", "--db", s.db]).stdout
        assert "leased" in st and "last seen" in st and "ETA" in st, st
        s.wait_finished(30)
        assert s.count("done") == 30 and s.count("cancelled") == 10
        csv = run([CISWEEP, "export", "--db", s.db, "--format", "csv"]).stdout.splitlines()
        assert len(csv) == 31, len(csv)
        hdr = csv[0].split(",")
        assert "mmlu" in hdr and "ppl_wikitext" in hdr, hdr
        assert "0.61" in csv[1]
        s.stop()
        # the local launcher on a fresh DB: a failure makes the exit status non-zero
        db2 = os.path.join(s.dir, "run.db")
        g2 = os.path.join(s.dir, "g2.json")
        json.dump({"name": "r", "models": ["m"], "max_attempts": 1, "selftest": {"count": 30, "params": {}},
                   "compositions": [[{"method": "selftest", "params": {"action": "fail", "id": 999}}]]}, open(g2, "w"))
        p = run([CISWEEP, "run", "--grid", g2, "--workers", "3", "--db", db2, "--allow-selftest",
                 "--cache", os.path.join(s.dir, "rc")], check=False, timeout=60)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr[-2000:])
        assert "30 done, 1 failed" in p.stdout, p.stdout


if __name__ == "__main__":
    main()
