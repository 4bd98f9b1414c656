"""test_mem_sched.py - scheduling by device memory (issue 15), with real processes on loopback: a
`cisweep launch` with a models map whose slots are model directories holding a config.json (a
Llama-3-8B-shaped "big", a tiny "small"; selftest jobs, so no weights are loaded), a real
coordinator, and real `cisweep-worker` processes that offer a given memory (`--report-free-mb`).

- a big job goes only to the worker whose offer fits it, never to the small one; every job ends
  done, exactly once;
- a job that no connected worker fits stays pending (not failed, not lost): `cisweep status` says so
  and names the job and its need, the coordinator warns, and once a worker that fits connects (here
  a cpu worker without --report-free-mb: unconstrained, as before) it runs, no attempt spent;
- model affinity still holds among the jobs that fit: a worker given interleaved jobs of two small
  models runs one model's jobs, then the other's (one switch), and skips the big ones;
- the estimate is in the database (job_memory) and each worker's offer (worker_memory)."""
import json, os, signal, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import CISWEEP, test, run, wait_for, main  # noqa: E402
from sweeplib import Sweep  # noqa: E402

BIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096,
       "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
       "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 500000.0}
SMALL = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512, "hidden_size": 64,
         "intermediate_size": 176, "num_hidden_layers": 4, "num_attention_heads": 4, "max_position_embeddings": 256,
         "rms_norm_eps": 1e-05, "tie_word_embeddings": True}
BIG_NEED = 68989   # ceil((2.25 * 4 * 8,030,261,248 B + 64 MiB) / MiB): coordinator/mem_need.h
SMALL_NEED = 67


def setup(s, blocks, slots):
    """write model dirs for `slots` (name -> config), a grid of `blocks` (subgrids) and launch it"""
    models = {}
    for name, cfg in slots.items():
        d = os.path.join(s.dir, "models", name)
        os.makedirs(d)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        models[name] = d
    with open(s.grid, "w") as f:
        json.dump({"name": "mem", "max_attempts": 3, "subgrids": blocks}, f)
    mp = os.path.join(s.dir, "models.json")
    with open(mp, "w") as f:
        json.dump(models, f)
    run([CISWEEP, "launch", "--db", s.db, "--grid", s.grid, "--models", mp, "--allow-selftest"])


def block(model, n, id_start, sleep_ms=200):
    return {"models": [model], "selftest": {"count": n, "id_start": id_start, "params": {"sleep_ms": sleep_ms}}}


def jobs_of(s, model):
    return [r[0] for r in s.q("SELECT j.id FROM jobs j JOIN models m ON m.id = j.model_id WHERE m.name = ? "
                              "ORDER BY j.id", (model,))]


@test
def big_jobs_go_only_to_the_big_worker():
    with Sweep(name="mem") as s:
        setup(s, [block("big", 3, 1), block("small", 6, 100)], {"big": BIG, "small": SMALL})
        needs = dict(s.q("SELECT j.id, jm.need_mb FROM jobs j JOIN job_memory jm ON jm.job_id = j.id"))
        big, small = jobs_of(s, "big"), jobs_of(s, "small")
        assert [needs[j] for j in big] == [BIG_NEED] * 3, needs
        assert [needs[j] for j in small] == [SMALL_NEED] * 6, needs
        s.start_coordinator()
        s.start_worker("--id", "smallw", "--report-free-mb", "16000")
        s.start_worker("--id", "bigw", "--report-free-mb", "80000")
        s.wait_finished(60)
        assert s.count("done") == 9
        s.exactly_once()
        by = s.q("SELECT a.job_id, a.worker_id FROM attempts a")
        assert all(w == "bigw" for j, w in by if j in big), by
        assert any(w == "smallw" for j, w in by if j in small), by
        offers = dict(s.q("SELECT worker_id, free_mb FROM worker_memory"))
        assert offers == {"smallw": 16000, "bigw": 80000}, offers
        assert {r[0] for r in s.q("SELECT source FROM worker_memory")} == {"option"}


@test
def a_job_no_worker_fits_is_reported_and_not_lost():
    with Sweep(name="mem") as s:
        setup(s, [block("big", 2, 1), block("small", 3, 100)], {"big": BIG, "small": SMALL})
        big = jobs_of(s, "big")
        s.start_coordinator()
        s.start_worker("--id", "smallw", "--report-free-mb", "16000")
        wait_for(lambda: s.count("done") == 3, 30, 0.05, what="the small jobs done")
        assert s.count("pending") == 2 and s.count("leased") == 0
        st = run([CISWEEP, "status", "--db", s.db]).stdout
        assert "2 need more device memory than any connected worker offers (the largest offer is 16000 MiB)" in st, st
        assert f"job {big[0]} needs {BIG_NEED} MiB (model big, inference)" in st, st
        assert f"job {big[1]} needs {BIG_NEED} MiB" in st, st
        assert "offers 16000 MiB" in st, st
        wait_for(lambda: "need more device memory than any connected worker offers" in
                 open(os.path.join(s.dir, "coordinator-0.log")).read(), 10, 0.1, what="the coordinator's warning")
        # a cpu worker without --report-free-mb is unconstrained (as before issue 15): it runs them
        s.start_worker("--id", "cpuw")
        s.wait_finished(30)
        assert s.count("done") == 5
        s.exactly_once()
        runs = s.q(f"SELECT job_id, worker_id, outcome FROM attempts WHERE job_id IN ({big[0]}, {big[1]})")
        assert sorted(runs) == [(big[0], "cpuw", "done"), (big[1], "cpuw", "done")], runs
        assert s.q(f"SELECT sum(spent) FROM jobs WHERE id IN ({big[0]}, {big[1]})") == [(0,)]
        assert s.q("SELECT count(*) FROM worker_memory WHERE worker_id = 'cpuw'") == [(0,)]
        st = run([CISWEEP, "status", "--db", s.db]).stdout
        assert "need more device memory" not in st, st


@test
def model_affinity_holds_among_the_jobs_that_fit():
    with Sweep(name="mem") as s:
        # ids interleave a, big, b, a, big, b, ...: by id alone the worker would switch model each job
        blocks = []
        for i in range(4):
            blocks += [block("a", 1, 10 + i, 50), block("big", 1, 20 + i, 50), block("b", 1, 30 + i, 50)]
        setup(s, blocks, {"a": SMALL, "b": dict(SMALL, hidden_size=128), "big": BIG})
        s.start_coordinator()
        s.start_worker("--id", "w", "--report-free-mb", "16000", "--slots", "1")
        wait_for(lambda: s.count("done") == 8, 40, 0.05, what="the eight small jobs done")
        order = [r[0] for r in s.q("SELECT m.name FROM events e JOIN jobs j ON j.id = e.job_id "
                                   "JOIN models m ON m.id = j.model_id WHERE e.kind = 'leased' ORDER BY e.id")]
        assert order == ["a"] * 4 + ["b"] * 4, order
        assert s.count("pending") == 4 and s.count("leased") == 0
        st = run([CISWEEP, "status", "--db", s.db]).stdout
        assert "4 need more device memory than any connected worker offers" in st, st



@test
def a_memory_bound_worker_that_ran_nothing_leaves_no_rows():
    """like any peer that never held a lease (orchestration.md): its workers row goes with it, and
    so does its worker_memory row (which references it)"""
    with Sweep(name="mem") as s:
        setup(s, [block("big", 1, 1)], {"big": BIG})
        s.start_coordinator()
        w = s.start_worker("--id", "tiny-gpu", "--report-free-mb", "10")
        wait_for(lambda: s.q("SELECT free_mb FROM worker_memory WHERE worker_id = 'tiny-gpu'") == [(10,)], 10, 0.05,
                 what="its offer recorded")
        time.sleep(0.5)
        assert s.count("pending") == 1
        w.send_signal(signal.SIGTERM)
        assert w.wait(timeout=10) == 0
        wait_for(lambda: s.q("SELECT count(*) FROM workers")[0][0] == 0, 10, 0.05, what="its workers row gone")
        assert s.q("SELECT count(*) FROM worker_memory") == [(0,)]
        assert s.count("pending") == 1

if __name__ == "__main__":
    main()
