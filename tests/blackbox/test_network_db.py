"""test_network_db.py - the coordinator refuses a sweep database on a network filesystem unless
given --allow-network-db (issue 15; common/fs_check.h). A real NFS mount cannot be made in the test
environment, so CISWEEP_FSTYPE_OVERRIDE stands in for what statfs(2) would say; the local case runs
on the real temp folder with no override."""
import os, signal, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import CISWEEP, test, run, wait_for, main  # noqa: E402
from sweeplib import Sweep  # noqa: E402


@test
def coordinator_refuses_db_on_network_fs_unless_told():
    with Sweep(2, {}, name="nfs") as s:
        s.launch()
        env = dict(os.environ, CISWEEP_FSTYPE_OVERRIDE="nfs")
        p = run([CISWEEP, "coordinator", "--db", s.db, "--bind", s.ep], check=False, env=env, timeout=20)
        assert p.returncode == 2, (p.returncode, p.stderr)
        assert "network filesystem (nfs)" in p.stderr and "--allow-network-db" in p.stderr, p.stderr
        assert s.q("SELECT count(*) FROM events WHERE kind LIKE 'coordinator%'")[0][0] == 0, "it must not have started"
        # told: it serves, and a worker finishes the sweep
        c = subprocess.Popen([CISWEEP, "coordinator", "--db", s.db, "--bind", s.ep, "--allow-network-db",
                              "--exit-when-done"], env=env, stderr=subprocess.PIPE, text=True)
        s.procs.append(c)
        s.start_worker()
        s.wait_finished(60)
        assert s.count("done") == 2
        assert c.wait(timeout=20) == 0
        assert "continuing because of --allow-network-db" in c.stderr.read()


@test
def coordinator_accepts_db_on_local_disk():
    with Sweep(1, {}, name="local") as s:
        s.launch()
        env = {k: v for k, v in os.environ.items() if k != "CISWEEP_FSTYPE_OVERRIDE"}
        c = subprocess.Popen([CISWEEP, "coordinator", "--db", s.db, "--bind", s.ep, "--exit-when-done"], env=env,
                             stderr=subprocess.PIPE, text=True)
        s.procs.append(c)
        s.start_worker()
        s.wait_finished(60)
        assert c.wait(timeout=20) == 0
        assert "network filesystem" not in c.stderr.read()


if __name__ == "__main__":
    main()
