"""Black-box tests of the guards of issue 13 item 6: what a user gets for a wrong number, an empty
or huge grid, the wrong file, a second coordinator, a read-only sweep, and what a rogue peer
leaves behind. Real processes, real files, a real pyzmq peer; assertions on exit statuses, messages
and the DB."""
import json, os, shutil, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, main, wait_for, run, skip, CISWEEP, WORKER, free_port  # noqa: E402
from sweeplib import Sweep, rogue, send  # noqa: E402


@test
def integer_options_that_overflow_are_refused():
    for argv in ([CISWEEP, "coordinator", "--db", "x.db", "--bind", "tcp://127.0.0.1:1", "--lease-ms", "4294967396"],
                 [CISWEEP, "coordinator", "--db", "x.db", "--bind", "tcp://127.0.0.1:1", "--heartbeat-ms", "99999999999"],
                 [WORKER, "worker", "--connect", "tcp://127.0.0.1:1", "--heartbeat-ms", "4294967396"]):
        p = run(argv, check=False, timeout=10)
        assert p.returncode == 2, (argv, p.returncode, p.stderr)
        assert "expects an integer from" in p.stderr and "2147483647" in p.stderr, p.stderr


@test
def empty_grid_is_an_error_and_huge_grid_needs_a_flag():
    with Sweep(1) as s:
        g = os.path.join(s.dir, "empty.json")
        json.dump({"name": "e", "models": ["m"]}, open(g, "w"))
        p = run([CISWEEP, "launch", "--db", s.db, "--grid", g], check=False)
        assert p.returncode == 2 and "generates no job" in p.stderr and "empty.json" in p.stderr, p.stderr
        assert not os.path.exists(s.db)
        big = os.path.join(s.dir, "big.json")
        json.dump({"name": "b", "models": ["m"], "selftest": {"count": 1000001, "params": {}}}, open(big, "w"))
        p = run([CISWEEP, "launch", "--db", s.db, "--grid", big, "--allow-selftest"], check=False, timeout=300)
        assert p.returncode == 2 and "more than 1000000 jobs" in p.stderr and "--allow-huge-grid" in p.stderr, p.stderr
        assert not os.path.exists(s.db)


@test
def zero_byte_db_is_refused_unless_launch_creates_it():
    with Sweep(2) as s:
        open(s.db, "w").close()
        p = run([CISWEEP, "status", "--db", s.db], check=False)
        assert p.returncode != 0 and "empty file (0 bytes)" in p.stderr and "cisweep launch" in p.stderr, p.stderr
        p = run([CISWEEP, "coordinator", "--db", s.db, "--bind", s.ep], check=False, timeout=10)
        assert p.returncode != 0 and "empty file (0 bytes)" in p.stderr, p.stderr
        assert os.path.getsize(s.db) == 0, "a refused command wrote into the file"
        s.launch()
        assert s.total() == 2


@test
def different_grid_under_an_existing_sweep_name_needs_extend():
    with Sweep(3) as s:
        s.launch()
        g2 = os.path.join(s.dir, "grid2.json")
        json.dump({"name": "t", "models": ["m"], "selftest": {"count": 5, "params": {}}}, open(g2, "w"))
        p = run([CISWEEP, "launch", "--db", s.db, "--grid", g2, "--allow-selftest"], check=False)
        assert p.returncode == 2, (p.returncode, p.stderr)
        assert 'sweep "t" (3 jobs)' in p.stderr and "would add 2 jobs" in p.stderr and "--extend" in p.stderr, p.stderr
        assert s.total() == 3
        out = run([CISWEEP, "launch", "--db", s.db, "--grid", g2, "--allow-selftest", "--extend"]).stdout
        assert "2 jobs added" in out, out
        assert s.total() == 5
        assert "0 jobs added" in s.launch().stdout  # the same grid again: nothing to add, no flag needed


@test
def second_coordinator_on_the_same_db_is_refused_naming_the_holder():
    with Sweep(2) as s:
        s.launch()
        first = s.start_coordinator()
        p = run([CISWEEP, "coordinator", "--db", s.db, "--bind", f"tcp://127.0.0.1:{free_port()}"], check=False,
                timeout=10)
        assert p.returncode == 1, (p.returncode, p.stderr)
        assert "already served by another coordinator" in p.stderr and f"pid {first.pid}" in p.stderr, p.stderr
        assert first.poll() is None
        first.send_signal(signal.SIGKILL)  # the kernel releases the lock with the process
        first.wait()
        s.start_coordinator()
        s.start_worker()
        s.wait_finished(20)
        assert s.count("done") == 2


def as_reader(argv):
    """run argv as a user who may read but not write the sweep (nobody when we are root)"""
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            skip("running as root without setpriv: cannot act as a read-only user")
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    return run(argv, check=False, timeout=20)


@test
def status_and_export_of_a_read_only_sweep_work_or_say_why_in_plain_words():
    with Sweep(4, {"sleep_ms": 50}) as s:
        s.launch()
        os.chmod(s.dir, 0o755)
        # a sweep stopped cleanly: the file alone is complete and readable
        p = as_reader([CISWEEP, "status", "--db", s.db])
        assert p.returncode == 0 and "jobs: 4 total" in p.stdout, (p.returncode, p.stderr)
        # a coordinator killed with -9 leaves a write-ahead log that a reader cannot merge
        c = s.start_coordinator()
        s.start_worker()
        wait_for(lambda: s.count("done") >= 1, 20, what="a job done")
        c.send_signal(signal.SIGKILL)
        c.wait()
        s.stop()
        if os.path.exists(s.db + "-shm"):
            os.remove(s.db + "-shm")
        assert os.path.getsize(s.db + "-wal") > 0
        if os.geteuid() != 0:
            for f in (s.db, s.db + "-wal"):
                os.chmod(f, 0o444)
            os.chmod(s.dir, 0o555)
        try:
            for cmd in ("status", "export"):
                p = as_reader([CISWEEP, cmd, "--db", s.db])
                assert p.returncode == 1, (cmd, p.returncode, p.stdout, p.stderr)
                assert "is read-only to you" in p.stderr and "-wal" in p.stderr and "HINT" in p.stderr, p.stderr
                assert "attempt to write a readonly database" not in p.stderr, p.stderr
        finally:
            os.chmod(s.dir, 0o755)


@test
def rogue_peers_leave_no_permanent_rows_and_their_refusals_are_rate_limited():
    with Sweep(2, {"sleep_ms": 4000}) as s:
        s.launch()
        s.start_coordinator()
        s.start_worker("--slots", "2")
        wait_for(lambda: s.count("leased") == 2, 10, what="both jobs leased")
        job, att = s.q("SELECT id, attempt FROM jobs ORDER BY id LIMIT 1")[0]
        d = rogue(s, b"rogue-1")
        for i in range(100):
            send(d, b"RESULT", {"job": job, "attempt": att, "rows": {"x": i}})
        wait_for(lambda: s.q("SELECT count(*) FROM events WHERE kind='refused'")[0][0] >= 20, 5, what="refusals")
        time.sleep(0.5)
        assert s.q("SELECT count(*) FROM events WHERE kind='refused'")[0][0] == 20
        d.close()  # it never heartbeats: declared lost after 5 heartbeats (500 ms)
        wait_for(lambda: s.q("SELECT count(*) FROM workers WHERE id='rogue-1'")[0][0] == 0, 10,
                 what="the rogue's workers row gone")
        assert s.q("SELECT count(*) FROM events WHERE worker_id='rogue-1' AND kind != 'refused'")[0][0] == 0
        assert s.q("SELECT count(*) FROM results WHERE metric='x'")[0][0] == 0
        s.wait_finished(30)
        assert s.count("done") == 2
        assert s.q("SELECT count(*) FROM workers")[0][0] == 1  # the real worker stays


if __name__ == "__main__":
    main()
