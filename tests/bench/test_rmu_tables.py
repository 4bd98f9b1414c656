"""test_rmu_tables.py - tests/bench/rmu_tables.py, the tables of docs/unlearning.md "Seeds and
architectures" read from job stores: a store made with schema/schema.sql and filled by hand (two
models, a baseline each, an rmu point over three seeds and a grid of three points over two
seeds; the open answers of a third store, with both frontiers), whose means, standard errors, drop
ratios and frontiers are computed here by hand; only
the current attempt's results count; the effective params (stages.params_json) name the point,
not the composition's label; bad input (a missing file, a file that is not a store, a store
without done jobs, a bad --allow) exits non-zero with a message naming it."""
import json, os, sqlite3, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import test, cleanup, main, ROOT  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rmu_tables.py")
STATE = {}


def tmpdir():
    if "dir" not in STATE:
        STATE["dir"] = tempfile.mkdtemp(prefix="test_rmu_tables.")
    return STATE["dir"]


@cleanup
def remove_tmp():
    if "dir" in STATE:
        for f in os.listdir(STATE["dir"]):
            os.unlink(os.path.join(STATE["dir"], f))
        os.rmdir(STATE["dir"])


def script(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=60)


class Store:
    """A job store from schema/schema.sql with jobs added by hand."""

    def __init__(self, path):
        self.con = sqlite3.connect(path)
        with open(os.path.join(ROOT, "schema", "schema.sql")) as f:
            self.con.executescript(f.read())
        self.con.execute("INSERT INTO sweeps (id, name, created_at) VALUES (1, 's', 0)")
        self.models = {}
        self.comps = {}
        self.job = 0

    def model(self, name):
        if name not in self.models:
            mid = len(self.models) + 1
            self.con.execute("INSERT INTO models (id, sweep_id, name, path) VALUES (?, 1, ?, '/m')", (mid, name))
            self.models[name] = mid
        return self.models[name]

    def comp(self, model, label, pattern):
        key = (model, label)
        if key not in self.comps:
            cid = len(self.comps) + 1
            self.con.execute("INSERT INTO compositions (id, sweep_id, model_id, key, canonical, pattern, label, n_stages) "
                             "VALUES (?, 1, ?, ?, '[]', ?, ?, ?)",
                             (cid, self.model(model), label, pattern, label, 0 if pattern == "baseline" else 1))
            self.comps[key] = cid
        return self.comps[key]

    def add(self, model, label, seed, metrics, params=None, state="done", stale=None, method="rmu"):
        """one job; params: the rmu stage's effective params (None: the baseline); stale: metrics
        of an earlier attempt (attempt 1, not current) under the current attempt 2"""
        self.job += 1
        j = self.job
        pattern = "baseline" if params is None else "unlearn"
        attempt = 2 if stale else 1
        self.con.execute("INSERT INTO jobs (id, sweep_id, composition_id, model_id, edit_set, state, created_at, current_attempt) "
                         "VALUES (?, 1, ?, ?, ?, ?, 0, ?)",
                         (j, self.comp(model, label, pattern), self.model(model), seed, state, attempt))
        for a, ms, cur in ([(1, stale, 0)] if stale else []) + [(attempt, metrics, 1)]:
            self.con.execute("INSERT INTO attempts (job_id, attempt, started_at, outcome) VALUES (?, ?, 0, 'done')", (j, a))
            if params is not None:
                self.con.execute("INSERT INTO stages (job_id, attempt, stage, of_stage, method, category, params_json, seed, created_at) "
                                 "VALUES (?, ?, 1, 1, ?, 'unlearn', ?, ?, 0)", (j, a, method, json.dumps(params), seed))
            for k, v in ms.items():
                self.con.execute("INSERT INTO results (job_id, attempt, metric, value, is_current, created_at) "
                                 "VALUES (?, ?, ?, ?, ?, 0)", (j, a, k, v, cur))

    def close(self):
        self.con.commit()
        self.con.close()


def m(mmlu, bio, cyber, ppl=30.0, f1=0.8):
    return {"mmlu": mmlu, "wmdp_bio": bio, "wmdp_cyber": cyber, "wmdp_avg": (bio + cyber) / 2,
            "ppl_wikitext": ppl, "src_true_f1": f1}


def rmu(layer, c, alpha):
    return {"act_layer": layer, "steering_coeff": c, "alpha": alpha, "module": "down_proj", "layer": 99}


def seeds_store():
    path = os.path.join(tmpdir(), "seeds.db")
    if os.path.exists(path):
        os.unlink(path)
    s = Store(path)
    s.add("a", "baseline", 0, m(0.90, 0.80, 0.80, 20.0, 0.9))
    # three seeds: mmlu 0.80, 0.82, 0.84 (mean 0.82, sd 0.02, se 0.0115); bio 0.5/0.6/0.7 (se 0.0577)
    s.add("a", "rmu", 1, m(0.80, 0.50, 0.60, 10.0), rmu(7, 300.0, 10.0))
    s.add("a", "rmu", 2, m(0.82, 0.60, 0.60, 100.0), rmu(7, 300.0, 10.0),
          stale=m(0.10, 0.10, 0.10))          # an earlier attempt's numbers must not count
    s.add("a", "rmu", 3, m(0.84, 0.70, 0.60, 1000.0), rmu(7, 300.0, 10.0))
    s.add("a", "rmu", 4, m(0.00, 0.00, 0.00), rmu(7, 300.0, 10.0), state="failed")   # not done: left out
    s.close()
    return path


@test
def seeds_mean_se_ratio():
    p = script("seeds", seeds_store())
    assert p.returncode == 0, p.stderr
    base = [l for l in p.stdout.splitlines() if l.startswith("| a | baseline |")]
    assert base == ["| a | baseline | - | 0.900 | 0.800 | 0.800 | 0.800 | 20.0 | 0.90 | | |"], p.stdout
    row = [l for l in p.stdout.splitlines() if l.startswith("| a | rmu (act layer, c, α: 7, 300, 10) |")]
    assert len(row) == 1, p.stdout
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert cells[2] == "3", cells                       # the failed job is not a seed
    assert cells[3] == "0.820 ± 0.012", cells           # MMLU
    assert cells[4] == "0.600 ± 0.058", cells           # bio
    assert cells[5] == "0.600 ± 0.000", cells           # cyber 0.60 on every seed
    assert cells[6] == "0.600 ± 0.029", cells           # WMDP mean 0.55/0.60/0.65
    assert cells[7] == "100.0 (×/÷ 3.78)", cells        # geometric mean of 10, 100, 1000; SE 10^(1/sqrt(3))
    # drop ratio of the means: WMDP 0.80 -> 0.60 (0.20) over MMLU 0.90 -> 0.82 (0.08) = 2.5
    assert cells[9] == "2.5", cells
    assert cells[10] == "1: 0.800 / 0.550; 2: 0.820 / 0.600; 3: 0.840 / 0.650", cells


def grid_store():
    path = os.path.join(tmpdir(), "grid.db")
    if os.path.exists(path):
        os.unlink(path)
    s = Store(path)
    s.add("a", "baseline", 0, m(0.90, 0.80, 0.80))
    s.add("b", "baseline", 0, m(0.95, 0.90, 0.90))
    # a: point P1 keeps MMLU, forgets little; P2 forgets much within -0.10 on seed 1 only; P3 too costly
    for seed, (p1, p2, p3) in {1: ((0.88, 0.70), (0.81, 0.40), (0.50, 0.30)),
                               2: ((0.86, 0.60), (0.78, 0.50), (0.55, 0.30))}.items():
        for i, (key, (mm, w)) in enumerate(zip([(3, 300.0, 10.0), (5, 300.0, 30.0), (7, 1000.0, 10.0)], (p1, p2, p3))):
            # the label says nothing about the point; the effective params do
            s.add("a", f"rmu#{i}", seed, m(mm, w, w), rmu(*key))
    # b: nothing within -0.10 on either seed
    for seed in (1, 2):
        s.add("b", "rmu", seed, m(0.80, 0.50, 0.50), rmu(7, 300.0, 10.0))
    # a GD point (its own table, named by lr and retain weight)
    s.add("a", "gd", 1, m(0.85, 0.70, 0.60), {"lr": 0.001, "retain_weight": 5.0, "train_size": 2000}, method="gd")
    s.close()
    return path


@test
def grid_frontier():
    p = script("grid", grid_store())
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    row = [l for l in out if l.startswith("| a | 5 | 300 | 30 |")]
    # seed mean: MMLU 0.795, WMDP 0.45; drop ratio (0.80-0.45)/(0.90-0.795) = 3.33
    assert row == ["| a | 5 | 300 | 30 | 0.810 / 0.400 | 0.780 / 0.500 | 0.795 | 0.450 | 3.3 |"], out
    fr = {tuple(c.strip() for c in l.strip("|").split("|")[:3]): l for l in out if l.startswith("| a |") or l.startswith("| b |")}
    # seed 1: P2 (MMLU 0.81 >= 0.80) beats P1; seed 2: P2's 0.78 is out, P1 (0.86, 0.60) is best
    assert "| 0.810 (-0.090) | 0.400 (-0.400) | 4.4 |" in fr[("a", "seed 1", "5, 300, 30")], fr
    assert ("a", "seed 2", "3, 300, 10") in fr, fr
    # seed mean: P2's mean MMLU 0.795 is out (< 0.80), P1's 0.87 in
    assert ("a", "seed mean", "3, 300, 10") in fr, fr
    assert ("b", "seed 1", "none within the allowance") in fr, fr
    # the GD table: its point is (lr, retain weight); its frontier is its own (MMLU 0.85 within -0.10)
    assert "| model | lr | retain weight | seed 1: MMLU / WMDP | mean: MMLU | WMDP mean | drop ratio |" in out, out
    assert "| a | 0.001 | 5 | 0.850 / 0.650 | 0.850 | 0.650 | 3.0 |" in out, out
    assert "| a | seed 1 | 0.001, 5 | 0.850 (-0.050) | 0.650 (-0.150) | 3.0 |" in out, out
    # a wider allowance takes P2's mean in
    p = script("grid", grid_store(), "--allow", "0.2")
    assert p.returncode == 0, p.stderr
    assert any(l.startswith("| a | seed mean | 5, 300, 30 | 0.795 (-0.105) | 0.450 (-0.350) | 3.3 |") for l in p.stdout.splitlines()), p.stdout


@test
def wide_models_side_by_side():
    # two stores that both hold a model "a": refused, naming the store and the model
    p = script("wide", grid_store(), seeds_store())
    assert p.returncode == 1 and "seeds.db: model a is in two of the stores given" in p.stderr, p.stderr
    p = script("wide", grid_store())
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0] == "| act layer | c | α | a | b |", out
    assert out[2] == "| baseline | | | 0.900 / 0.800 | 0.950 / 0.900 |", out
    # point (5, 300, 30) on a: seeds 1 and 2 -> 0.795 / 0.450; b never ran it; (7, 300, 10) only on b
    assert "| 5 | 300 | 30 | 0.795 / 0.450 | - |" in out, out
    assert "| 7 | 300 | 10 | - | 0.800 / 0.500 |" in out, out
    p = script("wide", grid_store(), "--method", "gd")
    assert p.returncode == 0 and "| 0.001 | 5 | 0.850 / 0.650 | - |" in p.stdout, p.stdout + p.stderr
    p = script("wide", grid_store(), "--method", "xx")
    assert p.returncode == 2 and "--method: expected one of" in p.stderr, p.stderr


def mo(mmlu, wmdp, omm, obio, ocyber):
    r = m(mmlu, wmdp, wmdp)
    r.update({"open_mmlu_f1": omm, "open_wmdp_bio_f1": obio, "open_wmdp_cyber_f1": ocyber,
              "open_wmdp_f1": (obio + ocyber) / 2})
    return r


def open_store():
    path = os.path.join(tmpdir(), "open.db")
    if os.path.exists(path):
        os.unlink(path)
    s = Store(path)
    s.add("a", "baseline", 0, mo(0.90, 0.90, 0.70, 0.80, 0.80))
    # rmu: P1 within -0.10, MC WMDP 0.60, open 0.10; P2 within, MC 0.50, open 0.30 (lowest MC, not open);
    # P3 outside (-0.20) with the lowest of both; P1 over two seeds (means by hand)
    s.add("a", "rmu", 1, mo(0.84, 0.60, 0.60, 0.10, 0.10), rmu(3, 300.0, 30.0))
    s.add("a", "rmu", 2, mo(0.82, 0.60, 0.60, 0.12, 0.08), rmu(3, 300.0, 30.0))
    s.add("a", "rmu#2", 1, mo(0.81, 0.50, 0.60, 0.40, 0.20), rmu(5, 300.0, 10.0))
    s.add("a", "rmu#3", 1, mo(0.70, 0.30, 0.40, 0.00, 0.00), rmu(7, 300.0, 10.0))
    # gd: within -0.15 (0.76 >= 0.75); without the allowance's 0.15 it is out at --allow 0.10
    s.add("a", "gd", 1, mo(0.76, 0.70, 0.50, 0.00, 0.10), {"lr": 0.001, "retain_weight": 5.0}, method="gd")
    # a job without open rows is left out of the table
    s.add("a", "rmu#4", 1, m(0.10, 0.10, 0.10), rmu(9, 1.0, 1.0))
    s.close()
    return path


@test
def open_answers_and_both_frontiers():
    p = script("open", open_store())
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert "| a | baseline | - | 0.900 | 0.900 | 0.700 | 0.800 (0.800 / 0.800) | 30.0 |" in out, out
    # P1's seed means: MMLU 0.83, open bio 0.11, cyber 0.09 -> open WMDP 0.10
    assert "| a | rmu (act layer, c, α: 3, 300, 30) | 2 | 0.830 | 0.600 | 0.600 | 0.100 (0.110 / 0.090) | 30.0 (×/÷ 1.00) |" in out, out
    assert not any("9, 1, 1" in l for l in out), out
    fr = [l for l in out if l.startswith("| a | rmu | 0.1 |") or l.startswith("| a | gd |")]
    assert fr == ["| a | gd | 0.15 | 0.001, 5: 0.760 (-0.140), 0.700 (0.050) | 0.001, 5: 0.760 (-0.140), 0.050 (0.700) |",
                  "| a | rmu | 0.1 | 5, 300, 10: 0.810 (-0.090), 0.500 (0.300) | 3, 300, 30: 0.830 (-0.070), 0.100 (0.600) |"], out
    p = script("open", open_store(), "--allow", "0.1")
    assert p.returncode == 0 and "| a | gd | 0.1 | none within the allowance | none within the allowance |" in p.stdout, p.stdout
    # a store without open rows is named
    p = script("open", grid_store())
    assert p.returncode == 1 and "no unlearning job with open-answer rows" in p.stderr, p.stderr


def mc_(mmlu, wmdp, cmm, cbio, ccyber):
    r = m(mmlu, wmdp, wmdp)
    r.update({"cloze_mmlu": cmm, "cloze_wmdp_bio": cbio, "cloze_wmdp_cyber": ccyber,
              "cloze_wmdp_avg": (cbio + ccyber) / 2})
    return r


def cloze_store():
    path = os.path.join(tmpdir(), "cloze.db")
    if os.path.exists(path):
        os.unlink(path)
    s = Store(path)
    s.add("a", "baseline", 0, mc_(0.90, 0.90, 0.80, 0.90, 0.80))
    # rmu: P1 over two seeds, cloze MMLU 0.73 (-0.07), cloze WMDP 0.33 (met); P2 within, 0.36;
    # P3 outside the allowance (-0.20) with the lowest cloze WMDP
    s.add("a", "rmu", 1, mc_(0.84, 0.60, 0.74, 0.40, 0.20), rmu(3, 300.0, 30.0))
    s.add("a", "rmu", 2, mc_(0.82, 0.60, 0.72, 0.40, 0.32), rmu(3, 300.0, 30.0))
    s.add("a", "rmu#2", 1, mc_(0.81, 0.50, 0.71, 0.36, 0.36), rmu(5, 300.0, 10.0))
    s.add("a", "rmu#3", 1, mc_(0.70, 0.30, 0.60, 0.20, 0.20), rmu(7, 300.0, 10.0))
    # gd: within -0.15 of the cloze baseline, not at 0.35
    s.add("a", "gd", 1, mc_(0.76, 0.70, 0.66, 0.40, 0.40), {"lr": 0.001, "retain_weight": 5.0}, method="gd")
    # a job without cloze rows is left out
    s.add("a", "rmu#4", 1, m(0.10, 0.10, 0.10), rmu(9, 1.0, 1.0))
    s.close()
    return path


@test
def cloze_rows_and_their_frontier():
    p = script("cloze", cloze_store())
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert "| a | baseline | - | 0.900 | 0.900 | 0.800 | 0.850 (0.900 / 0.800) | 30.0 |" in out, out
    assert ("| a | rmu (act layer, c, α: 3, 300, 30) | 2 | 0.830 ± 0.010 | 0.600 ± 0.000 | 0.730 ± 0.010 | "
            "0.330 ± 0.030 (0.400 / 0.260) | 30.0 (×/÷ 1.00) |") in out, out
    assert not any("9, 1, 1" in l for l in out), out
    fr = [l for l in out if l.startswith("| a | rmu | 0.1 |") or l.startswith("| a | gd |")]
    assert fr == ["| a | gd | 0.15 | 0.001, 5 | 1 | 0.660 (-0.140) | 0.400 | not met | 0.760 (-0.140), 0.700 |",
                  "| a | rmu | 0.1 | 3, 300, 30 | 2 | 0.730 (-0.070) | 0.330 | met | 0.830 (-0.070), 0.600 |"], out
    p = script("cloze", cloze_store(), "--allow", "0.05")
    assert p.returncode == 0 and "| a | rmu | 0.05 | none within the allowance | | | | not met | |" in p.stdout, p.stdout
    # a store without cloze rows is named
    p = script("cloze", open_store())
    assert p.returncode == 1 and "no unlearning job with cloze rows" in p.stderr, p.stderr


@test
def bad_input_named():
    d = tmpdir()
    p = script("seeds", os.path.join(d, "nope.db"))
    assert p.returncode == 1 and "nope.db: no such file" in p.stderr, p.stderr
    junk = os.path.join(d, "junk.db")
    with open(junk, "w") as f:
        f.write("not a database\n" * 100)
    p = script("grid", junk)
    assert p.returncode == 1 and "junk.db: not a cisweep job store" in p.stderr, p.stderr
    empty = os.path.join(d, "empty.db")
    Store(empty).close()
    p = script("seeds", empty)
    assert p.returncode == 1 and "empty.db: no done job" in p.stderr, p.stderr
    p = script("grid", grid_store(), "--allow", "x")
    assert p.returncode == 2 and "--allow: expected a number" in p.stderr, p.stderr
    p = script("frontier")
    assert p.returncode == 2 and "usage:" in p.stderr, p.stderr


main()
