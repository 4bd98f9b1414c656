"""test_preempt_drain.py - a worker that is shutting down gets no new job (issue 15, preemption under
Slurm). A stopping worker hands back its queued job (PREEMPTED) and lets its running job finish
when the job does not stop in time; the coordinator must then give it nothing more until it says
READY (or HELLO with slots) again. Before the fix, the RESULT of the running job freed a slot and
the handed-back job was leased straight back to the stopping worker, which handed it back again
(seen in the docs/cluster.md walk-through rehearsal: one job preempted twice by the same task).

A scripted worker (a pyzmq DEALER speaking the real protocol to a real coordinator) takes two
jobs, hands the second back, reports the first done, heartbeats for 1.5 s: no JOB may arrive;
then it says READY and gets one."""
import json, os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, wait_for, main  # noqa: E402
from sweeplib import Sweep, send  # noqa: E402


def recv(d, timeout_s):
    """the next message (cmd, body) within timeout_s, skipping HEARTBEATs; None when none came"""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if d.poll(50):
            f = d.recv_multipart()
            cmd, body = f[2], json.loads(f[3]) if len(f) > 3 and f[3] else {}
            if cmd != b"HEARTBEAT":
                return cmd, body
    return None


@test
def a_draining_worker_gets_no_job_until_ready():
    import zmq
    with Sweep(4, {"sleep_ms": 100}, name="drain") as s:
        s.launch()
        s.start_coordinator()
        d = zmq.Context.instance().socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.setsockopt(zmq.ROUTING_ID, b"drainer")
        d.connect(s.ep)
        send(d, b"HELLO", {"worker": "drainer", "host": "h", "device": "cpu", "backend": "cpu", "version": "t",
                           "pid": os.getpid(), "slots": 2})
        jobs = []
        deadline = time.time() + 10
        while len(jobs) < 2 and time.time() < deadline:
            m = recv(d, 1)
            if m and m[0] == b"JOB":
                jobs.append((m[1]["job"], m[1]["attempt"]))
        assert len(jobs) == 2, jobs
        (j1, a1), (j2, a2) = jobs
        send(d, b"PREEMPTED", {"job": j2, "attempt": a2})          # stopping: the queued job goes back
        send(d, b"RESULT", {"job": j1, "attempt": a1, "rows": {"selftest_metric": 1}})  # the running one ends
        wait_for(lambda: s.q("SELECT state FROM jobs WHERE id=?", (j1,)) == [("done",)], 5, what="job 1 done")
        t_end = time.time() + 1.5
        while time.time() < t_end:
            send(d, b"HEARTBEAT", {})
            m = recv(d, 0.1)
            assert m is None or m[0] != b"JOB", f"a draining worker was given a job: {m}"
        assert s.q("SELECT state, spent FROM jobs WHERE id=?", (j2,)) == [("pending", 0)]
        assert s.q("SELECT count(*) FROM attempts WHERE job_id=?", (j2,)) == [(1,)]
        send(d, b"READY", {"slots": 1})                             # it takes work again
        m = None
        t_end = time.time() + 5
        while time.time() < t_end and not (m and m[0] == b"JOB"):
            send(d, b"HEARTBEAT", {})
            m = recv(d, 0.1)
        assert m and m[0] == b"JOB", m
        d.close()


@test
def a_preempted_outcome_replayed_from_the_spool_does_not_drain():
    """an interrupted `cisweep run` leaves the worker's PREEMPTED outcomes in its spool; the next
    process with the same identity lists them in HELLO.spooled and sends them after WELCOME. They
    requeue their jobs, but the new process is not stopping: it must keep getting jobs (before the
    fix it got none after its first ones, and the second `cisweep run` of test_study.py hung)"""
    import zmq
    with Sweep(6, {"sleep_ms": 50}, name="replay") as s:
        s.launch()
        s.start_coordinator()
        hello = {"worker": "replayer", "host": "h", "device": "cpu", "backend": "cpu", "version": "t", "pid": os.getpid(),
                 "slots": 1}
        d = zmq.Context.instance().socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.setsockopt(zmq.ROUTING_ID, b"replayer")
        d.connect(s.ep)
        send(d, b"HELLO", hello)
        m = None
        t_end = time.time() + 10
        while time.time() < t_end and not (m and m[0] == b"JOB"):
            m = recv(d, 0.5)
        assert m and m[0] == b"JOB", m
        j1, a1 = m[1]["job"], m[1]["attempt"]
        d.close()                                                     # the process dies with its outcome spooled
        time.sleep(0.5)                                               # (its routing id free again on the ROUTER)
        d = zmq.Context.instance().socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.setsockopt(zmq.ROUTING_ID, b"replayer")
        d.connect(s.ep)
        welcome, t_end = None, time.time() + 10
        while welcome is None and time.time() < t_end:   # HELLO until WELCOME: the ROUTER refuses the
            send(d, b"HELLO", dict(hello, pid=os.getpid() + 1, spooled=[{"job": j1, "attempt": a1}]))
            m = recv(d, 0.5)                              # routing id until it saw the old one go
            welcome = m if m and m[0] == b"WELCOME" else None
        assert welcome, "no WELCOME for the new process"
        send(d, b"PREEMPTED", {"job": j1, "attempt": a1})           # the spool replayed after HELLO
        wait_for(lambda: s.q("SELECT count(*) FROM events WHERE kind='preempted' AND job_id=?", (j1,)) == [(1,)], 5,
                 what="the replayed PREEMPTED applied (the job requeued)")
        assert s.q("SELECT spent FROM jobs WHERE id=?", (j1,)) == [(0,)]
        got = []
        t_end = time.time() + 10
        while time.time() < t_end and len(got) < 2:
            send(d, b"HEARTBEAT", {})
            m = recv(d, 0.1)
            if m and m[0] == b"JOB":
                got.append(m[1]["job"])
                send(d, b"RESULT", {"job": m[1]["job"], "attempt": m[1]["attempt"], "rows": {"selftest_metric": 1}})
        assert len(got) == 2, f"the new worker process got {got} after the replayed PREEMPTED"
        d.close()


if __name__ == "__main__":
    main()
