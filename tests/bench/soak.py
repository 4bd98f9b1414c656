"""soak.py - the chaos soak of issue 13, as anyone can run it: a real coordinator and real selftest
workers on loopback TCP over a real SQLite file, under load, while a chaos loop kill -9s workers
and the coordinator and SIGTERMs workers; a supervisor restarts whatever died (as systemd would).
At the end it lets the sweep finish and reports, from the DB:
  jobs (done / total), coordinator kill -9s, worker kill -9s, worker SIGTERMs,
  lost (attempts lost: each should be a job running on a worker killed -9),
  lost without a worker kill (should be 0: restarts and spooled results must not lose work),
  duplicated (jobs with more than one current set of rows: must be 0),
  superseded (late results stored and flagged, never counted),
  quarantined (jobs dead), integrity_check.
Usage: python3 tests/bench/soak.py [JOBS] [WORKERS] [CHAOS_SECONDS]   (defaults 2000 6 60)
Not part of `make test` (it is a benchmark: timing and load dependent); `make bench` does not run it
either (minutes). The README's figures come from its last run."""
import json, os, random, shutil, signal, socket, sqlite3, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CISWEEP = os.path.join(ROOT, "build", "bin", "cisweep")
WORKER = os.path.join(ROOT, "build", "bin", "cisweep-worker")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def q(db, sql):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def main():
    n_jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    n_workers = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    chaos_s = float(sys.argv[3]) if len(sys.argv) > 3 else 60
    rnd = random.Random(13)
    tmp = tempfile.mkdtemp(prefix="cisweep-soak-")
    db, port = os.path.join(tmp, "soak.db"), free_port()
    ep = f"tcp://127.0.0.1:{port}"
    comps = [[{"method": "selftest", "params": {"sleep_ms": rnd.randint(50, 300), "id": i}}] for i in range(n_jobs)]
    grid = os.path.join(tmp, "grid.json")
    json.dump({"name": "soak", "models": ["m"], "max_attempts": 10, "compositions": comps}, open(grid, "w"))
    subprocess.run([CISWEEP, "launch", "--db", db, "--grid", grid, "--allow-selftest"], check=True,
                   capture_output=True)
    fast = ["--heartbeat-ms", "200", "--liveness", "5"]
    logs = []

    def start_coord():
        log = open(os.path.join(tmp, f"coordinator-{len(logs)}.log"), "w")
        logs.append(log)
        p = subprocess.Popen([CISWEEP, "coordinator", "--db", db, "--bind", ep, "--lease-ms", "5000",
                              "--quarantine-after", "5", *fast], stdout=log, stderr=subprocess.STDOUT)
        for _ in range(200):  # until it listens (or has exited: then the loop restarts it)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if p.poll() is not None:
                    break
                time.sleep(0.02)
        return p

    def start_worker(k):
        log = open(os.path.join(tmp, f"worker-{k}-{len(logs)}.log"), "w")
        logs.append(log)
        return subprocess.Popen([WORKER, "worker", "--connect", ep, "--cache", os.path.join(tmp, f"cache-{k}"),
                                 "--selftest", "--max-backoff-ms", "1000", "--preempt-grace-ms", "2000", *fast],
                                stdout=log, stderr=subprocess.STDOUT)

    coord = start_coord()
    workers = [start_worker(k) for k in range(n_workers)]
    kills_c = kills_w = terms_w = 0
    worker_kills_at = []
    t0 = time.time()
    next_c = t0 + rnd.uniform(3, 8)
    while time.time() - t0 < chaos_s:
        time.sleep(0.25)
        now = time.time()
        # supervisor: restart what died
        if coord.poll() is not None:
            coord = start_coord()
        for k, w in enumerate(workers):
            if w.poll() is not None:
                workers[k] = start_worker(k)
        # chaos
        if now >= next_c:
            coord.send_signal(signal.SIGKILL)
            coord.wait()
            kills_c += 1
            next_c = now + rnd.uniform(3, 8)
        r = rnd.random()
        k = rnd.randrange(n_workers)
        if r < 0.10 and workers[k].poll() is None:
            workers[k].send_signal(signal.SIGKILL)
            workers[k].wait()
            kills_w += 1
            worker_kills_at.append(now)
        elif r < 0.15 and workers[k].poll() is None:
            workers[k].send_signal(signal.SIGTERM)
            terms_w += 1
    # let it finish
    t_end = time.time() + 600
    while time.time() < t_end:
        if coord.poll() is not None:
            coord = start_coord()
        for k, w in enumerate(workers):
            if w.poll() is not None:
                workers[k] = start_worker(k)
        if q(db, "SELECT count(*) FROM jobs WHERE state IN ('pending','leased')")[0][0] == 0:
            break
        time.sleep(0.5)
    wall = time.time() - t0
    for p in [coord, *workers]:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in [coord, *workers]:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for log in logs:
        log.close()
    states = dict(q(db, "SELECT state, count(*) FROM jobs GROUP BY state"))
    lost = q(db, "SELECT count(*) FROM events WHERE kind='lost'")[0][0]
    lost_by_kind = dict(q(db, "SELECT detail, count(*) FROM events WHERE kind='lost' GROUP BY detail"))
    dup = q(db, "SELECT count(*) FROM (SELECT job_id FROM results WHERE is_current=1 GROUP BY job_id "
                "HAVING count(DISTINCT attempt) > 1)")[0][0]
    superseded = q(db, "SELECT count(*) FROM attempts WHERE outcome='superseded'")[0][0]
    refused = q(db, "SELECT count(*) FROM events WHERE kind='refused'")[0][0]
    integrity = q(db, "PRAGMA integrity_check")[0][0]
    print(f"soak: {n_jobs} jobs of 50-300 ms, {n_workers} workers, {chaos_s:.0f} s of chaos, {wall:.0f} s in all")
    print(f"  jobs: {states.get('done', 0)} done / {sum(states.values())} (states {states})")
    print(f"  kills: coordinator kill -9 x{kills_c}, worker kill -9 x{kills_w}, worker SIGTERM x{terms_w}")
    print(f"  lost attempts: {lost} {lost_by_kind} (worker kill -9s: {kills_w})")
    print(f"  duplicated: {dup}   superseded (stored, flagged): {superseded}   quarantined: {states.get('dead', 0)}"
          f"   refused: {refused}")
    print(f"  integrity_check: {integrity}")
    ok = (states.get("done", 0) == n_jobs and dup == 0 and integrity == "ok" and lost <= kills_w
          and states.get("dead", 0) == 0)
    print("  verdict:", "ok" if ok else "NOT OK (see the logs in " + tmp + ")")
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
