"""harness.py - the small harness the Python tests (black-box daemon tests, reference checks) use.

A test module defines functions decorated with @test and calls main() at the bottom. Each test
prints "ok - name" / "not ok - name" (the lines tests/run.sh counts); skip(why) inside a test
marks it skipped; functions decorated with @cleanup run once after all tests (pass or fail) and
are not tests. Helpers: the build's binaries, free loopback ports, process start/kill, sqlite
queries on a real file.

A test must check something: the harness counts the plain `assert` statements a test executes
(in any file under tests/, helpers included), check(cond, msg), run(..., check=True) and
wait_for(...). A test that returns without one check, and without skip(), has tested nothing and
fails as "not ok - name (no checks ran)". A module that runs no test at all fails too.
"""
import ast, os, socket, sqlite3, subprocess, sys, time, traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("CISWEEP_BUILD", "build"), "bin")
CISWEEP = os.path.join(BIN, "cisweep")
WORKER = os.path.join(BIN, "cisweep-worker")

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

_tests = []
_cleanups = []
_checks = 0          # checks evaluated by the current test


class Skip(Exception):
    pass


def skip(why):
    raise Skip(why)


def test(fn):
    _tests.append(fn)
    return fn


def cleanup(fn):
    """register fn to run once after every test (whatever their outcome); not a test itself"""
    _cleanups.append(fn)
    return fn


def check(cond, msg=""):
    """a counted check: raises AssertionError(msg) when cond is false"""
    global _checks
    _checks += 1
    if not cond:
        raise AssertionError(msg)


# ---- counting plain asserts: a line trace limited to the lines of tests/ that hold an assert ----
_assert_lines = {}


def _lines_with_assert(filename):
    lines = _assert_lines.get(filename)
    if lines is None:
        lines = set()
        if filename.startswith(TESTS_DIR + os.sep) and filename.endswith(".py"):
            try:
                with open(filename) as f:
                    tree = ast.parse(f.read(), filename)
                lines = {n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)}
            except (OSError, SyntaxError):
                pass
        _assert_lines[filename] = lines
    return lines


_code_lines = {}


def _code_assert_lines(code):
    """the assert lines that belong to this code object itself (cached per code object)"""
    lines = _code_lines.get(code)
    if lines is None:
        in_file = _lines_with_assert(code.co_filename)
        # comprehensions and lambdas on an assert line are part of that assert, not more checks
        if code.co_name.startswith("<") and code.co_name != "<module>":
            in_file = None
        lines = frozenset(ln for _, _, ln in code.co_lines() if ln in in_file) if in_file else frozenset()
        _code_lines[code] = lines
    return lines


def _trace_call(frame, event, arg):
    lines = _code_assert_lines(frame.f_code)
    if not lines:
        return None          # no line events in frames without an assert (stdlib, helpers, ...)

    def trace_line(frame, event, arg):
        global _checks
        if event == "line" and frame.f_lineno in lines:
            _checks += 1
        return trace_line
    return trace_line


def main():
    global _checks
    only = sys.argv[1:]
    npass = nfail = nskip = 0
    try:
        for fn in _tests:
            if only and fn.__name__ not in only:
                continue
            t0 = time.time()
            _checks = 0
            sys.settrace(_trace_call)
            try:
                fn()
                sys.settrace(None)
                if _checks == 0:
                    print(f"not ok - {fn.__name__} (no checks ran)", flush=True)
                    nfail += 1
                else:
                    print(f"ok - {fn.__name__} ({time.time() - t0:.1f}s)", flush=True)
                    npass += 1
            except Skip as e:
                sys.settrace(None)
                print(f"ok - {fn.__name__} # SKIP {e}", flush=True)
                nskip += 1
            except Exception:
                sys.settrace(None)
                traceback.print_exc()
                print(f"not ok - {fn.__name__} ({time.time() - t0:.1f}s)", flush=True)
                nfail += 1
    finally:
        sys.settrace(None)
        for fn in _cleanups:
            try:
                fn()
            except Exception:
                traceback.print_exc()
    if npass + nfail + nskip == 0:
        print("not ok - no test ran" + (f" (none of {only} is a test here)" if only else ""), flush=True)
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
    """poll pred until it is truthy (returned) or raise AssertionError after timeout; a check"""
    global _checks
    _checks += 1
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def run(args, check=True, **kw):
    """run a command (output captured as text); check=True makes exit status 0 a counted check"""
    global _checks
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if check:
        _checks += 1
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}")
    return p


def tiny_world_and_model(d, steps=2):
    """The black-box tests' common set-up: a small `cisweep world` in d/world, tiny-llama3 trained
    `steps` steps on it in d/model (1 thread: the same model every time), and d/models.json mapping
    the slot "default" to it. Returns d."""
    import json
    run([WORKER, "world", "--out", os.path.join(d, "world"), "--scale", "small"], timeout=300)
    run([WORKER, "train", "--world", os.path.join(d, "world"), "--arch", "tiny-llama3", "--out",
         os.path.join(d, "model"), "--steps", str(steps), "--threads", "1"], timeout=300)
    json.dump({"default": os.path.join(d, "model")}, open(os.path.join(d, "models.json"), "w"))
    return d
