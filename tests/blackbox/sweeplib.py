"""sweeplib.py - start real coordinator and worker processes on loopback for the black-box tests.

Everything here is real: a SQLite file made by `cisweep launch`, a `cisweep coordinator` process
bound to a TCP port on 127.0.0.1, `cisweep-worker worker` processes, and signals sent with
os.kill. Logs of every process go to files in the test's temp dir (printed when a test fails).
"""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import CISWEEP, WORKER, free_port, query, wait_for, run  # noqa: E402

FAST = ["--heartbeat-ms", "100", "--liveness", "5"]


class Sweep:
    def __init__(self, selftest_count=0, params=None, compositions=None, max_attempts=3, name="t"):
        self.dir = tempfile.mkdtemp(prefix="cisweep-bb-")
        self.db = os.path.join(self.dir, "sweep.db")
        self.port = free_port()
        self.ep = f"tcp://127.0.0.1:{self.port}"
        self.procs = []
        self.coord = None
        grid = {"name": name, "models": ["m"], "max_attempts": max_attempts}
        if selftest_count:
            grid["selftest"] = {"count": selftest_count, "params": params or {}}
        if compositions:
            grid["compositions"] = compositions
        self.grid = os.path.join(self.dir, "grid.json")
        with open(self.grid, "w") as f:
            json.dump(grid, f)

    def launch(self):
        return run([CISWEEP, "launch", "--db", self.db, "--grid", self.grid, "--allow-selftest"])

    def start_coordinator(self, *extra):
        log = open(os.path.join(self.dir, f"coordinator-{len(self.procs)}.log"), "w")
        p = subprocess.Popen([CISWEEP, "coordinator", "--db", self.db, "--bind", self.ep, "--lease-ms", "3000",
                              *FAST, *extra], stdout=log, stderr=subprocess.STDOUT)
        self.coord = p
        self.procs.append(p)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                assert p.poll() is None, f"coordinator exited with {p.returncode}"
                return False
        wait_for(listening, 10, 0.02, what="coordinator listening")
        return p

    def start_worker(self, *extra, name=None):
        k = len(self.procs)
        cache = os.path.join(self.dir, f"cache-{name or k}")
        log = open(os.path.join(self.dir, f"worker-{k}.log"), "w")
        p = subprocess.Popen([WORKER, "worker", "--connect", self.ep, "--cache", cache, "--selftest",
                              "--max-backoff-ms", "500", "--preempt-grace-ms", "3000", *FAST, *extra],
                             stdout=log, stderr=subprocess.STDOUT)
        p.logpath = log.name
        self.procs.append(p)
        return p

    def q(self, sql, args=()):
        return query(self.db, sql, args)

    def count(self, state):
        return self.q("SELECT count(*) FROM jobs WHERE state=?", (state,))[0][0]

    def total(self):
        return self.q("SELECT count(*) FROM jobs")[0][0]

    def wait_finished(self, timeout=60):
        return wait_for(lambda: self.q("SELECT count(*) FROM jobs WHERE state IN ('pending','leased')")[0][0] == 0,
                        timeout=timeout, what="all jobs finished")

    def integrity_ok(self):
        r = self.q("PRAGMA integrity_check")
        assert r == [("ok",)], r

    def exactly_once(self):
        """every done job has exactly one current attempt, its rows all current, no current rows elsewhere"""
        bad = self.q("""SELECT j.id FROM jobs j WHERE j.state='done' AND
                        (SELECT count(DISTINCT attempt) FROM results r WHERE r.job_id=j.id AND r.is_current=1) != 1""")
        assert not bad, f"jobs without exactly one current attempt: {bad[:10]}"
        bad = self.q("""SELECT r.job_id FROM results r JOIN jobs j ON j.id=r.job_id
                        WHERE r.is_current=1 AND r.attempt != j.current_attempt""")
        assert not bad, f"current rows not of the job's current attempt: {bad[:10]}"

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        t0 = time.time()
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, 8 - (time.time() - t0)))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def logs(self):
        out = []
        for fn in sorted(os.listdir(self.dir)):
            if fn.endswith(".log"):
                with open(os.path.join(self.dir, fn)) as f:
                    out.append(f"==== {fn}\n" + "".join(f.readlines()[-30:]))
        return "\n".join(out)

    def close(self, ok=True):
        self.stop()
        if not ok:
            print(self.logs())
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        self.close(ok=et is None)
        return False


def rogue(s, rid=b"rogue", hello=True):
    """a pyzmq DEALER that registers as worker `rid` (HELLO without slots: it takes no job)"""
    import zmq
    ctx = zmq.Context.instance()
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.setsockopt(zmq.ROUTING_ID, rid)
    d.connect(s.ep)
    if hello:
        body = {"worker": rid.decode(), "host": "elsewhere", "device": "cpu", "version": "rogue"}
        d.send_multipart([b"", b"CISW1", b"HELLO", json.dumps(body).encode()])
        deadline = time.time() + 5
        while time.time() < deadline:
            if d.poll(200) and d.recv_multipart()[2] == b"WELCOME":
                break
        else:
            raise AssertionError("the rogue peer got no WELCOME")
    return d


def send(d, cmd, body):
    d.send_multipart([b"", b"CISW1", cmd, json.dumps(body).encode()])
