"""bench_dispatch.py - dispatch throughput and per-job overhead of the orchestration.

Zero-work selftest jobs, a real coordinator with durable commits (WAL, synchronous=FULL: every
state change is fsync'd before the reply that depends on it), real worker processes on loopback
TCP, for 1, 8 and 64 workers. Throughput = jobs / (last finish - first lease) from the DB's own
timestamps; per-job overhead = workers x wall / jobs (the time one worker spends per zero-work
job: round trips, the worker's spool write and the coordinator's commits).
Usage: python3 tests/bench/bench_dispatch.py [JOBS_PER_RUN] [WORKERS...]
"""
import json, os, shutil, socket, sqlite3, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CISWEEP = os.path.join(ROOT, "build", "bin", "cisweep")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def one(n_workers, n_jobs, tmp):
    grid = os.path.join(tmp, f"g{n_workers}.json")
    db = os.path.join(tmp, f"b{n_workers}.db")
    json.dump({"name": f"bench{n_workers}", "models": ["m"], "selftest": {"count": n_jobs, "params": {}}},
              open(grid, "w"))
    t0 = time.time()
    p = subprocess.run([CISWEEP, "run", "--grid", grid, "--workers", str(n_workers), "--db", db,
                        "--allow-selftest", "--bind", f"tcp://127.0.0.1:{free_port()}", "--cache",
                        os.path.join(tmp, f"c{n_workers}")], capture_output=True, text=True)
    wall_total = time.time() - t0
    if p.returncode != 0:
        print(p.stdout, p.stderr[-3000:])
        raise SystemExit(f"run with {n_workers} workers failed")
    con = sqlite3.connect(db)
    first, last = con.execute("SELECT min(started_at) FROM attempts").fetchone()[0], \
        con.execute("SELECT max(finished_at) FROM jobs").fetchone()[0]
    done = con.execute("SELECT count(*) FROM jobs WHERE state='done'").fetchone()[0]
    sync = con.execute("PRAGMA journal_mode").fetchone()[0]
    con.close()
    wall = (last - first) / 1000.0
    return done, wall, wall_total, sync


def main():
    n_jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    workers = [int(x) for x in sys.argv[2:]] or [1, 8, 64]
    tmp = tempfile.mkdtemp(prefix="cisweep-bench-")
    print(f"# dispatch benchmark: {n_jobs} zero-work selftest jobs per run, loopback TCP, WAL + synchronous=FULL")
    print(f"# {os.cpu_count()} CPU cores on this machine")
    print("| workers | jobs | wall (s) | jobs/s | per-job overhead per worker (ms) |")
    print("|---|---|---|---|---|")
    try:
        for w in workers:
            done, wall, total, mode = one(w, n_jobs, tmp)
            assert done == n_jobs, (done, n_jobs)
            print(f"| {w} | {done} | {wall:.2f} | {done / wall:.0f} | {1000.0 * wall * w / done:.3f} |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
