"""bench_dispatch.py - dispatch throughput and per-job overhead of the orchestration.

A real coordinator with durable commits (WAL, synchronous=FULL: every state change is fsync'd
before the reply that depends on it) and real worker processes on loopback TCP (`cisweep run
--bind tcp://127.0.0.1:PORT`), default settings unless a row says otherwise.
 1. Throughput: zero-work selftest jobs with 1, 8 and 64 workers; jobs / (last finish - first
    lease), from the DB's own timestamps.
 2. Added latency per job: one worker runs jobs that each sleep 10 ms; added latency =
    (wall - sum of the jobs' own run times) / jobs: what the orchestration adds to every job
    (dispatch, result recording, the gap between one job and the next).
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


def one(n_workers, n_jobs, tmp, params=None, extra=()):
    tag = f"{n_workers}-{len(os.listdir(tmp))}"
    grid = os.path.join(tmp, f"g{tag}.json")
    db = os.path.join(tmp, f"b{tag}.db")
    json.dump({"name": f"bench{tag}", "models": ["m"], "selftest": {"count": n_jobs, "params": params or {}}},
              open(grid, "w"))
    t0 = time.time()
    p = subprocess.run([CISWEEP, "run", "--grid", grid, "--workers", str(n_workers), "--db", db,
                        "--allow-selftest", "--bind", f"tcp://127.0.0.1:{free_port()}", "--cache",
                        os.path.join(tmp, f"c{tag}"), *extra], capture_output=True, text=True)
    wall_total = time.time() - t0
    if p.returncode != 0:
        print(p.stdout, p.stderr[-3000:])
        raise SystemExit(f"run with {n_workers} workers failed")
    con = sqlite3.connect(db)
    first, last = con.execute("SELECT min(started_at) FROM attempts").fetchone()[0], \
        con.execute("SELECT max(finished_at) FROM jobs").fetchone()[0]
    done = con.execute("SELECT count(*) FROM jobs WHERE state='done'").fetchone()[0]
    run_ms = con.execute("SELECT sum(run_ms) FROM attempts WHERE outcome='done'").fetchone()[0] or 0
    con.close()
    wall = (last - first) / 1000.0
    return done, wall, wall_total, run_ms / 1000.0


def main():
    n_jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    workers = [int(x) for x in sys.argv[2:]] or [1, 8, 64]
    tmp = tempfile.mkdtemp(prefix="cisweep-bench-")
    print(f"# dispatch benchmark: {n_jobs} zero-work selftest jobs per run, loopback TCP, WAL + synchronous=FULL")
    print(f"# {os.cpu_count()} CPU cores on this machine")
    print("| run | workers | jobs | wall (s) | jobs/s | added latency per job (ms) |")
    print("|---|---|---|---|---|---|")
    try:
        for w in workers:
            done, wall, total, busy = one(w, n_jobs, tmp)
            assert done == n_jobs, (done, n_jobs)
            print(f"| zero-work jobs | {w} | {done} | {wall:.2f} | {done / wall:.0f} | - |", flush=True)
        n_lat = max(100, n_jobs // 20)
        done, wall, total, busy = one(1, n_lat, tmp, {"sleep_ms": 10})
        print(f"| 10 ms jobs | 1 | {done} | {wall:.2f} | {done / wall:.0f} | {1000.0 * (wall - busy) / done:.3f} |",
              flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
