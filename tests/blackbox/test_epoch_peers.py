"""Black-box: workers and coordinators of different results epochs never meet in a sweep
(docs/orchestration.md "Results epoch"; common/protocol.h HELLO.results_epoch, BYE.final). Real
processes on loopback TCP and a real SQLite file; the peer of another epoch is a pyzmq socket
speaking the wire protocol (a real build of another epoch cannot be made inside one test run):
  - a HELLO with another results_epoch is answered BYE {final: true} naming both epochs, the worker
    gets no job, the refusal is an event in the DB and `cisweep status` counts it; a HELLO with this build's epoch (and one
    without the field, an older build's) is welcomed;
  - a real `cisweep-worker worker` sends this build's epoch in its HELLO, and one told BYE final
    stops (exit 1, the coordinator's reason in its log) instead of reconnecting."""
import json, os, re, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import test, main, run, CISWEEP, WORKER, free_port  # noqa: E402
from sweeplib import Sweep, FAST  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def epoch_of_build():
    with open(os.path.join(ROOT, "common", "version.h")) as f:
        return int(re.search(r"#define CISWEEP_RESULTS_EPOCH (\d+)", f.read()).group(1))


def dealer(ep, rid):
    import zmq
    d = zmq.Context.instance().socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.setsockopt(zmq.ROUTING_ID, rid)
    d.connect(ep)
    return d


def hello(d, rid, epoch, slots=2):
    body = {"worker": rid.decode(), "host": "elsewhere", "device": "cpu", "version": "peer", "slots": slots}
    if epoch is not None:
        body["results_epoch"] = epoch
    d.send_multipart([b"", b"CISW1", b"HELLO", json.dumps(body).encode()])


def replies(d, seconds):
    """every (command, body) the coordinator sends within `seconds`"""
    out, deadline = [], time.time() + seconds
    while time.time() < deadline:
        if d.poll(100):
            f = d.recv_multipart()
            out.append((f[2].decode(), json.loads(f[3]) if len(f) > 3 and f[3] else {}))
    return out


@test
def coordinator_refuses_a_worker_of_another_epoch():
    e = epoch_of_build()
    with Sweep(3, {"sleep_ms": 10}) as s:
        s.launch()
        s.start_coordinator()
        old = dealer(s.ep, b"old-build")
        hello(old, b"old-build", e - 1)
        got = replies(old, 1.5)
        assert got and got[0][0] == "BYE", got
        reason = got[0][1]["reason"]
        assert got[0][1].get("final") is True, got
        assert f"results epoch {e - 1} of worker \"old-build\"" in reason and f"coordinator's {e}" in reason, reason
        assert not [c for c, _ in got if c == "JOB"], got   # slots 2, yet no job leased to it
        ev = s.q("SELECT worker_id, detail FROM events WHERE kind = 'refused'")
        assert ev and ev[0][0] == "old-build" and "results epoch" in ev[0][1], ev
        assert s.count("pending") == 3
        st = run([CISWEEP, "status", "--db", s.db]).stdout
        assert "refused: 1 workers of another results epoch in the last hour" in st, st
        # the same epoch, and an older build's HELLO without the field, are welcomed and given jobs
        for rid, ep in ((b"same-build", e), (b"no-field", None)):
            d = dealer(s.ep, rid)
            hello(d, rid, ep, slots=1)
            got = replies(d, 1.5)
            assert got and got[0][0] == "WELCOME" and "JOB" in [c for c, _ in got], (rid, got)
            d.close()
        old.close()


@test
def real_worker_sends_its_epoch_and_stops_on_a_final_bye():
    import zmq
    port = free_port()
    r = zmq.Context.instance().socket(zmq.ROUTER)
    r.setsockopt(zmq.LINGER, 0)
    r.bind(f"tcp://127.0.0.1:{port}")
    import tempfile, shutil
    tmp = tempfile.mkdtemp(prefix="cisweep-epoch-peer-")
    log = open(os.path.join(tmp, "worker.log"), "w")
    w = subprocess.Popen([WORKER, "worker", "--connect", f"tcp://127.0.0.1:{port}", "--cache", os.path.join(tmp, "c"),
                          "--selftest", "--max-backoff-ms", "200", *FAST], stdout=log, stderr=subprocess.STDOUT)
    try:
        assert r.poll(10000), "no HELLO from the worker"
        f = r.recv_multipart()
        assert f[2] == b"CISW1" and f[3] == b"HELLO", f[:4]
        body = json.loads(f[4])
        assert body["results_epoch"] == epoch_of_build(), body
        r.send_multipart([f[0], b"", b"CISW1", b"BYE", json.dumps({"reason": "results epoch test refusal",
                                                                    "final": True}).encode()])
        rc = w.wait(timeout=10)
        text = open(log.name).read()
        assert rc == 1, (rc, text[-2000:])
        assert "refused this worker for good: results epoch test refusal" in text, text[-2000:]
        # it said HELLO once and did not come back
        assert not r.poll(300) or r.recv_multipart()[3] != b"HELLO"
    finally:
        if w.poll() is None:
            w.kill()
        w.wait()
        r.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
