"""test_devices.py - `cisweep worker --devices all|LIST` (issue 15): one worker process per device,
each with its own id and cache; SIGTERM to the parent reaches every child (their jobs are
preempted, no attempt spent) and the parent exits 0; a child that crashes is restarted; bad device
lists are refused with a clear message. On this CPU machine the list is `cpu,cpu`; `all` needs GPUs
(checked on a GPU machine by tests/gpu/, refused with the reason here)."""
import os, shutil, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import WORKER, test, run, wait_for, main  # noqa: E402
from sweeplib import Sweep, FAST  # noqa: E402


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


@test
def devices_list_runs_one_worker_per_device_and_forwards_sigterm():
    with Sweep(6, {"sleep_ms": 1500}, name="devs") as s:
        s.launch()
        s.start_coordinator()
        cache = os.path.join(s.dir, "cache-multi")
        log = open(os.path.join(s.dir, "multi.log"), "w")
        p = subprocess.Popen([WORKER, "worker", "--connect", s.ep, "--devices", "cpu,cpu", "--cache", cache,
                              "--selftest", "--id", "box", "--preempt-grace-ms", "3000", *FAST],
                             stdout=log, stderr=subprocess.STDOUT)
        s.procs.append(p)
        ids = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(
            s.q("SELECT id FROM workers WHERE id LIKE 'box-%' AND state != 'gone' ORDER BY id")), 20, 0.1,
            what="two workers registered")
        assert [r[0] for r in ids] == ["box-cpu.0", "box-cpu.1"], ids
        assert sorted(os.listdir(cache)) == ["cpu.0", "cpu.1"], os.listdir(cache)
        wait_for(lambda: s.q("SELECT count(*) FROM jobs WHERE state='leased' AND started_at IS NOT NULL")[0][0] >= 2,
                 20, 0.05, what="both running a job")
        kids = children(p.pid)
        assert len(kids) == 2, kids
        # a crashed child is restarted by the parent
        os.kill(kids[0], signal.SIGKILL)
        wait_for(lambda: len(children(p.pid)) == 2 and children(p.pid)[0] != kids[0] or
                 (len(children(p.pid)) == 2 and kids[0] not in children(p.pid)), 20, 0.1, what="the killed child restarted")
        wait_for(lambda: s.q("SELECT count(*) FROM workers WHERE id='box-cpu.0' AND state != 'gone'")[0][0] == 1
                 and s.count("leased") >= 2, 30, 0.1, what="the restarted child working again")
        time.sleep(0.3)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0, "the parent exits 0 when every child stopped cleanly"
        pre = wait_for(lambda: s.q("SELECT DISTINCT worker_id FROM attempts WHERE outcome='preempted'"), 10, 0.1,
                       what="preempted attempts")
        assert {r[0] for r in pre} >= {"box-cpu.1"}, pre
        # preemption spends nothing (the SIGKILLed child's job was lost, and that one does spend)
        spent = s.q("SELECT j.id, j.spent FROM jobs j WHERE j.id IN (SELECT job_id FROM attempts WHERE outcome='preempted') "
                    "AND j.id NOT IN (SELECT job_id FROM attempts WHERE outcome='lost')")
        assert spent and all(r[1] == 0 for r in spent), spent
        s.start_worker()
        s.wait_finished(60)
        assert s.count("done") == 6
        s.exactly_once()


@test
def devices_refuses_bad_lists():
    cases = [(["--devices", "cpu,bogus"], "\"bogus\""),
             (["--devices", ","], "expects all or a comma-separated list"),
             (["--devices", "cpu", "--device", "cpu"], "exclude each other")]
    if not shutil.which("nvidia-smi"):
        cases.append((["--devices", "all"], "no GPU is visible"))
    for args, msg in cases:
        p = run([WORKER, "worker", "--connect", "tcp://127.0.0.1:1", *args], check=False, timeout=20)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert msg in p.stderr, (args, p.stderr)


if __name__ == "__main__":
    main()
