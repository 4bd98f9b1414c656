"""test_fuzz_short.py - the libFuzzer targets of tests/fuzz/ (built by `make fuzz-build` into
build-fuzz/fuzz/ with clang, AddressSanitizer and UndefinedBehaviorSanitizer): for each target,
(1) replay the regression inputs tests/fuzz/corpus/<target>/regress-* (the exact inputs of the
findings of issue 13: each crashed, hung or leaked before its fix), then (2) fuzz for
FUZZ_SECONDS (default 5; `make fuzz` uses 60) from the seed corpus. New inputs go to a scratch
directory, never into the repository; a crash, a leak, a timeout (10 s per input) or a memory
blow-up (2 GB) fails the test and leaves the reproducer in build-fuzz/fuzz-artifacts/.
Skipped when the targets are not built (no clang)."""
import glob, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, main, skip, ROOT  # noqa: E402

FUZZ_BIN = os.path.join(ROOT, "build-fuzz", "fuzz")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
ARTIFACTS = os.path.join(ROOT, "build-fuzz", "fuzz-artifacts") + os.sep
SECONDS = int(os.environ.get("FUZZ_SECONDS", "5"))
TARGETS = sorted(os.path.basename(p)[:-2] for p in glob.glob(os.path.join(ROOT, "tests", "fuzz", "fuzz_*.c")))
COMMON = ["-timeout=10", "-rss_limit_mb=2048", "-max_len=65536", f"-artifact_prefix={ARTIFACTS}"]


def binary(name):
    b = os.path.join(FUZZ_BIN, name)
    if not os.access(b, os.X_OK):
        skip(f"{b} not built (make fuzz-build needs clang)")
    return b


def replay(name):
    b = binary(name)
    inputs = sorted(glob.glob(os.path.join(CORPUS, name, "*")))
    assert inputs, f"no corpus for {name}"
    os.makedirs(ARTIFACTS, exist_ok=True)
    p = subprocess.run([b, *COMMON, *inputs], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{name} fails on its corpus:\n{p.stderr[-3000:]}"


def fuzz(name):
    b = binary(name)
    scratch = tempfile.mkdtemp(prefix=f"cisweep-{name}-")
    try:
        os.makedirs(ARTIFACTS, exist_ok=True)
        p = subprocess.run([b, *COMMON, f"-max_total_time={SECONDS}", "-print_final_stats=1", scratch,
                            os.path.join(CORPUS, name)], capture_output=True, text=True, timeout=SECONDS + 600)
        assert p.returncode == 0, f"{name} found a bug in {SECONDS} s:\n{p.stderr[-4000:]}"
        runs = [ln for ln in p.stderr.splitlines() if "stat::number_of_executed_units" in ln]
        print(f"# {name}: {runs[0].split(':')[-1].strip() if runs else '?'} executions in {SECONDS} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


for _t in TARGETS:
    def _replay(t=_t):
        replay(t)
    _replay.__name__ = f"corpus_and_regressions_{_t[5:]}"
    test(_replay)

    def _fuzz(t=_t):
        fuzz(t)
    _fuzz.__name__ = f"fuzz_{_t[5:]}_briefly"
    test(_fuzz)

if __name__ == "__main__":
    main()
