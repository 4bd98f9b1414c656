"""Black-box: the multiple-choice evaluation's shared header (worker/eval/eval_mc.c: the task's
description computed once, the questions run as suffixes over its cached keys/values) changes how
MMLU and WMDP are computed, not what they score. On a small `cisweep world` and tiny-llama3 trained
on it, `cisweep-worker eval --profile sweep` gives the same metric rows with the shared header and
with the old whole-prompt path (CISWEEP_MC_NO_SHARED_PREFIX=1), for the default prompt, --mc-bos and
--mc-prompt 0.4.4; the debug log shows that the new path really ran over the header (and the old
one did not). The log-likelihoods themselves differ in the last bits (docs/eval.md): bounded in
tests/worker/eval/test_eval_mc.c, test_shared_prefix_same_results."""
import os, re, shutil, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, cleanup, main, run, WORKER, tiny_world_and_model  # noqa: E402

STATE = {}


def setup():
    if "dir" not in STATE:
        d = tempfile.mkdtemp(prefix="cisweep-evalpfx-")
        tiny_world_and_model(d, steps=30)
        STATE["dir"] = d
    return STATE["dir"]


def evaluate(shared, *extra):
    """metric rows (timings dropped) and the per-task counts of questions run over the header"""
    d = setup()
    env = dict(os.environ, CISWEEP_LOG="debug")
    env.pop("CISWEEP_MC_NO_SHARED_PREFIX", None)
    if not shared:
        env["CISWEEP_MC_NO_SHARED_PREFIX"] = "1"
    p = run([WORKER, "eval", os.path.join(d, "model"), "--world", os.path.join(d, "world"), "--profile", "sweep",
             "--threads", "1", "--skip", "ppl,zsre,qa", *extra], env=env, timeout=600)
    rows = {}
    for line in p.stdout.splitlines():
        k, v = line.split()
        if not re.search(r"time|cpu|per_s", k):
            rows[k] = float(v)
    counts = {m.group(1): (int(m.group(2)), int(m.group(3)))
              for m in re.finditer(r"mc (\S+): (\d+) questions, (\d+) over the shared header", p.stderr)}
    return rows, counts


@test
def same_metric_rows_with_and_without_the_shared_header():
    for extra in ((), ("--mc-bos",), ("--mc-prompt", "0.4.4")):
        new, cn = evaluate(True, *extra)
        old, co = evaluate(False, *extra)
        assert "mmlu" in new and "wmdp_bio" in new and "wmdp_cyber" in new, sorted(new)
        assert new == old, (extra, {k: (new.get(k), old.get(k)) for k in set(new) | set(old) if new.get(k) != old.get(k)})
        # the new path ran over the header for (nearly) every question, the old one for none
        assert len(cn) >= 3 and all(s > 0 for n, s in cn.values()), (extra, cn)
        assert sum(s for n, s in cn.values()) >= 0.9 * sum(n for n, s in cn.values()), (extra, cn)
        assert co and all(s == 0 for n, s in co.values()), (extra, co)


@cleanup
def remove_tmp():
    if "dir" in STATE:
        shutil.rmtree(STATE["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
