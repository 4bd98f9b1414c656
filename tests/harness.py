"""harness.py - the small harness the Python tests (black-box daemon tests, reference checks) use.

A test module defines functions decorated with @test and calls main() at the bottom. Each test
prints "ok - name" / "not ok - name" (the lines tests/run.sh counts); skip(why) inside a test
marks it skipped. Helpers: the build's binaries, free loopback ports, process start/kill, sqlite
queries on a real file.
"""
import os, socket, sqlite3, subprocess, sys, time, traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("CISWEEP_BUILD", "build"), "bin")
CISWEEP = os.path.join(BIN, "cisweep")
WORKER = os.path.join(BIN, "cisweep-worker")

_tests = []


class Skip(Exception):
    pass


def skip(why):
    raise Skip(why)


def test(fn):
    _tests.append(fn)
    return fn


def main():
    only = sys.argv[1:]
    npass = nfail = nskip = 0
    for fn in _tests:
        if only and fn.__name__ not in only:
            continue
        t0 = time.time()
        try:
            fn()
            print(f"ok - {fn.__name__} ({time.time() - t0:.1f}s)", flush=True)
            npass += 1
        except Skip as e:
            print(f"ok - {fn.__name__} # SKIP {e}", flush=True)
            nskip += 1
        except Exception:
            traceback.print_exc()
            print(f"not ok - {fn.__name__} ({time.time() - t0:.1f}s)", flush=True)
            nfail += 1
    print(f"# {npass} passed, {nfail} failed, {nskip} skipped", flush=True)
    sys.exit(1 if nfail else 0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def query(db, sql, args=()):
    """Run one read query on a real SQLite file (read-only, WAL-aware) and return all rows."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def wait_for(pred, timeout=30.0, step=0.05, what="condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def run(args, check=True, **kw):
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}")
    return p
