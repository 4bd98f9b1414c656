"""bench_many_workers.py - a 1,000-worker sweep against one coordinator on loopback (issue 15).

A real `cisweep coordinator` (WAL, synchronous=FULL, default heartbeat 1000 ms x 5 unless told)
serves a selftest sweep; ONE Python process speaks for N worker identities, each its own ZeroMQ
DEALER socket and TCP connection with its own routing id, speaking the real protocol
(common/protocol.h): HELLO, READY, JOB, HEARTBEAT with the held job every heartbeat, RESULT, ACK.
A simulated job "runs" for --job-ms (a timer; no work), so what is measured is the coordinator.

Reported: time for all N to register; dispatch rate (jobs done / (last ACK - first JOB)); lease
traffic (heartbeats/s in, messages/s both ways); the coordinator's CPU use (utime+stime from
/proc over the measured window, as a fraction of one core); the gap between a worker's RESULT and
its next JOB (p50/p99); database and WAL size per job at the end.
Usage: python3 tests/bench/bench_many_workers.py [--workers 1000] [--jobs 20000] [--job-ms 0]
                                                 [--heartbeat-ms 1000] [--seconds 60]
"""
import argparse, heapq, json, os, resource, shutil, socket, sqlite3, subprocess, sys, tempfile, time

import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CISWEEP = os.path.join(ROOT, "build", "bin", "cisweep")
TAG = b"CISW1"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def pct(v, q):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--job-ms", type=int, default=0)
    ap.add_argument("--heartbeat-ms", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60, help="stop measuring after this long (jobs may be left)")
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.workers * 4 + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))

    tmp = tempfile.mkdtemp(prefix="cisweep-bench-many-")
    db = os.path.join(tmp, "s.db")
    grid = os.path.join(tmp, "g.json")
    json.dump({"name": "many", "models": ["m"], "selftest": {"count": a.jobs, "params": {}}}, open(grid, "w"))
    subprocess.run([CISWEEP, "launch", "--db", db, "--grid", grid, "--allow-selftest"], check=True, capture_output=True)
    port = free_port()
    ep = f"tcp://127.0.0.1:{port}"
    clog = open(os.path.join(tmp, "coordinator.log"), "w")
    coord = subprocess.Popen([CISWEEP, "coordinator", "--db", db, "--bind", ep, "--heartbeat-ms", str(a.heartbeat_ms),
                              "--log-level", "warn"], stdout=clog, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        ctx = zmq.Context(io_threads=1)
        ctx.setsockopt(zmq.MAX_SOCKETS, a.workers + 64)
        socks, ids = [], []
        poller = zmq.Poller()
        by_sock = {}
        for i in range(a.workers):
            s = ctx.socket(zmq.DEALER)
            wid = f"sim/cpu/{i:05d}".encode()
            s.setsockopt(zmq.IDENTITY, wid)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(ep)
            socks.append(s)
            ids.append(wid)
            poller.register(s, zmq.POLLIN)
            by_sock[s] = i

        sent = {}
        recv = {}
        bytes_in = [0]

        def send(i, cmd, body):
            b = json.dumps(body, separators=(",", ":")).encode()
            socks[i].send_multipart([b"", TAG, cmd, b])
            sent[cmd] = sent.get(cmd, 0) + 1

        t_start = time.time()
        for i in range(a.workers):
            send(i, b"HELLO", {"worker": ids[i].decode(), "host": "sim", "device": "cpu", "backend": "cpu",
                               "memory_mb": 1024, "version": "bench", "pid": os.getpid(), "slots": 1,
                               "running": None, "held": []})
        welcomed = 0
        t_all_welcomed = None
        running = [None] * a.workers          # (job, attempt)
        result_sent_at = [None] * a.workers
        gaps = []
        timers = []                           # (when, kind, worker, token)
        hb = a.heartbeat_ms / 1000.0
        for i in range(a.workers):
            heapq.heappush(timers, (t_start + hb * (i / a.workers), 1, i, None))
        done = 0
        first_job = last_ack = None
        hb_count = 0
        cpu0 = cpu_t0 = None
        deadline = t_start + a.seconds
        while done < a.jobs and time.time() < deadline:
            now = time.time()
            while timers and timers[0][0] <= now:
                when, kind, i, tok = heapq.heappop(timers)
                if kind == 1:      # heartbeat, with the held job (keeps its lease)
                    body = {} if running[i] is None else {"job": running[i][0], "attempt": running[i][1], "progress": 0.5}
                    send(i, b"HEARTBEAT", body)
                    hb_count += 1
                    heapq.heappush(timers, (when + hb, 1, i, None))
                elif kind == 2 and running[i] == tok:   # the job's time is up: RESULT
                    send(i, b"RESULT", {"job": tok[0], "attempt": tok[1], "rows": {"x": 1.0}, "run_ms": a.job_ms})
                    result_sent_at[i] = time.time()
                    running[i] = None
            timeout = 50 if not timers else max(0, min(50, int((timers[0][0] - time.time()) * 1000)))
            for s, _ in poller.poll(timeout):
                i = by_sock[s]
                while True:
                    try:
                        fr = s.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    cmd = fr[2]
                    recv[cmd] = recv.get(cmd, 0) + 1
                    bytes_in[0] += sum(len(x) for x in fr)
                    if cmd == b"WELCOME":
                        welcomed += 1
                        if welcomed == a.workers:
                            t_all_welcomed = time.time()
                        send(i, b"READY", {"slots": 1})
                    elif cmd == b"JOB":
                        body = json.loads(fr[3])
                        tok = (body["job"], body["attempt"])
                        running[i] = tok
                        t = time.time()
                        if first_job is None:
                            first_job = t
                            cpu0, cpu_t0 = cpu_s(coord.pid), t
                        if result_sent_at[i] is not None:
                            gaps.append(t - result_sent_at[i])
                            result_sent_at[i] = None
                        heapq.heappush(timers, (t + a.job_ms / 1000.0, 2, i, tok))
                    elif cmd == b"ACK":
                        done += 1
                        last_ack = time.time()
                    elif cmd == b"RECONNECT":
                        send(i, b"HELLO", {"worker": ids[i].decode(), "host": "sim", "device": "cpu", "backend": "cpu",
                                           "memory_mb": 1024, "version": "bench", "pid": os.getpid(), "slots": 1,
                                           "running": None if running[i] is None else {"job": running[i][0], "attempt": running[i][1]},
                                           "held": [] if running[i] is None else [{"job": running[i][0], "attempt": running[i][1]}]})
        t_end = time.time()
        cpu1 = cpu_s(coord.pid)
        win = (last_ack or t_end) - (first_job or t_end)
        meas = t_end - (cpu_t0 or t_end)
        for s in socks:
            s.close(0)
        ctx.term()
        coord.terminate()
        coord.wait(timeout=30)
        con = sqlite3.connect(db)
        states = dict(con.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        nworkers = con.execute("SELECT count(*) FROM workers").fetchone()[0]
        lost = con.execute("SELECT count(*) FROM attempts WHERE outcome='lost'").fetchone()[0]
        con.close()
        dbsz = os.path.getsize(db) + (os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0)
        msgs = sum(sent.values()) + sum(recv.values())
        print(f"workers {a.workers}, jobs {done}/{a.jobs} done in the window, job {a.job_ms} ms, heartbeat {a.heartbeat_ms} ms")
        print(f"  all registered after {((t_all_welcomed or t_end) - t_start):.2f} s; workers in DB {nworkers}; lost attempts {lost}; states {states}")
        print(f"  dispatch rate {done / win if win > 0 else float('nan'):.0f} jobs/s over {win:.1f} s")
        print(f"  heartbeats in {hb_count / meas if meas > 0 else 0:.0f}/s; messages both ways {msgs / (t_end - t_start):.0f}/s "
              f"(sent {dict((k.decode(), v) for k, v in sent.items())}, received {dict((k.decode(), v) for k, v in recv.items())})")
        print(f"  coordinator CPU {100 * (cpu1 - cpu0) / meas if meas > 0 and cpu0 is not None else float('nan'):.0f}% of one core over {meas:.1f} s")
        print(f"  RESULT -> next JOB gap p50 {1000 * pct(gaps, 0.5):.1f} ms, p99 {1000 * pct(gaps, 0.99):.1f} ms ({len(gaps)} gaps)")
        print(f"  database + WAL {dbsz / 1e6:.1f} MB at the end ({dbsz / max(1, a.jobs):.0f} bytes per job of the sweep)")
        print(f"  bench process CPU {time.process_time():.1f} s (the simulator shares the 2 cores with the coordinator)")
    finally:
        if coord.poll() is None:
            coord.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
