"""test_slurm.py - cisweep on a real Slurm (issue 15): a private single-node cluster (munged,
slurmctld, slurmd started by deploy/slurm/local-cluster.sh, which installs slurm-wlm and munge with
apt-get where missing), `cisweep slurm submit` filling deploy/slurm/*.sbatch, a worker array with
the CPU backend, preemption by the signal Slurm sends, and the coordinator as a Slurm job.

Where this machine cannot run slurmd (not root, no apt-get, the daemons do not start) the Slurm
tests are skipped with the reason; the template tests below run anyway. Everything the module
starts is stopped by its pid files (local-cluster.sh stop), never by name.
"""
import os, re, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import CISWEEP, ROOT, test, cleanup, check, skip, wait_for, run, free_port, main  # noqa: E402
from sweeplib import Sweep  # noqa: E402

LOCAL = os.path.join(ROOT, "deploy", "slurm", "local-cluster.sh")
_cluster = {"dir": None, "why": None, "env": None}


def cluster():
    """start the private cluster once (or skip with the reason); returns the environment to use it"""
    if _cluster["env"]:
        return _cluster["env"]
    if _cluster["why"]:
        skip(_cluster["why"])
    d = tempfile.mkdtemp(prefix="cisweep-slurm-")
    _cluster["dir"] = d
    p = subprocess.run(["bash", LOCAL, "start", d], capture_output=True, text=True, timeout=600)
    if p.returncode == 3:
        _cluster["why"] = p.stderr.strip().splitlines()[-1]
        skip(_cluster["why"])
    check(p.returncode == 0, f"local-cluster.sh start failed ({p.returncode}): {p.stderr}")
    env = dict(os.environ, SLURM_CONF=os.path.join(d, "slurm.conf"))
    _cluster["env"] = env
    return env


@cleanup
def stop_cluster():
    if _cluster["dir"]:
        subprocess.run(["bash", LOCAL, "stop", _cluster["dir"]], capture_output=True, timeout=120)
        if os.environ.get("KEEP_SLURM_DIR") is None:
            shutil.rmtree(_cluster["dir"], ignore_errors=True)


def squeue(env, job):
    p = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%i %T"], capture_output=True, text=True, env=env)
    return [ln.split() for ln in p.stdout.splitlines() if ln.strip()]


def slurm_logs(shared):
    out = []
    d = os.path.join(shared, "logs")
    for fn in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        with open(os.path.join(d, fn)) as f:
            out.append(f"==== {fn}\n" + "".join(f.readlines()[-20:]))
    return "\n".join(out)


FASTW = ["--worker-arg", "--selftest", "--worker-arg", "--heartbeat-ms", "--worker-arg", "100",
         "--worker-arg", "--max-backoff-ms", "--worker-arg", "500", "--worker-arg", "--preempt-grace-ms",
         "--worker-arg", "5000"]


@test
def worker_array_runs_sweep_and_slurm_signal_preempts_without_spending_an_attempt():
    env = cluster()
    with Sweep(8, {"sleep_ms": 1500}, name="slurm-array") as s:
        shared = os.path.join(s.dir, "shared")
        try:
            s.launch()
            s.start_coordinator()
            p = run([CISWEEP, "slurm", "submit", "--db", s.db, "--cpu-workers", "2", "--cpus", "1",
                     "--coordinator", s.ep, "--shared", shared, "--signal-s", "30", *FASTW], env=env)
            m = re.search(r"worker array job (\d+)", p.stdout)
            assert m, f"no worker array job id in: {p.stdout}"
            job = m.group(1)
            assert f"{job}_0..{job}_1" in p.stdout, p.stdout
            # both tasks register with the coordinator under ids that name their Slurm job
            wait_for(lambda: len(s.q("SELECT id FROM workers WHERE id LIKE ? AND state != 'gone'",
                                     (f"%/slurm-{job}_%",))) == 2, 60, 0.2, what="two Slurm workers registered")
            st = run([CISWEEP, "status", "--db", s.db]).stdout
            assert f"slurm job {job}_0" in st and f"slurm job {job}_1" in st, st
            # task 0 is running a job: the signal Slurm sends before a kill (here by scancel)
            w0 = wait_for(lambda: s.q("SELECT id, job_id FROM (SELECT w.id, j.id AS job_id FROM workers w JOIN jobs j "
                                      "ON j.worker_id = w.id AND j.state='leased' AND j.started_at IS NOT NULL "
                                      "WHERE w.id LIKE ?)", (f"%/slurm-{job}_0.%",)), 30, 0.05,
                          what="task 0 running a job")
            time.sleep(0.3)
            run(["scancel", "--batch", "--signal=TERM", f"{job}_0"], env=env)
            pre = wait_for(lambda: s.q("SELECT job_id, attempt FROM attempts WHERE outcome='preempted' AND worker_id LIKE ?",
                                       (f"%/slurm-{job}_0.%",)), 30, 0.1, what="a preempted attempt from task 0")
            pjob = pre[0][0]
            assert s.q("SELECT spent FROM jobs WHERE id=?", (pjob,))[0][0] == 0, "a preemption spent an attempt"
            # task 0 leaves the queue (its worker exited 0); task 1 finishes the sweep, the preempted job too
            wait_for(lambda: not any(r[0] == f"{job}_0" for r in squeue(env, job)), 30, 0.2, what="task 0 gone from squeue")
            s.wait_finished(120)
            assert s.count("done") == 8, s.q("SELECT id, state FROM jobs")
            row = s.q("SELECT state, spent, current_attempt FROM jobs WHERE id=?", (pjob,))[0]
            assert row[0] == "done" and row[1] == 0 and row[2] > pre[0][1], row
            done_by = s.q("SELECT worker_id FROM attempts WHERE job_id=? AND outcome='done'", (pjob,))[0][0]
            assert f"slurm-{job}_1." in done_by, done_by
            s.integrity_ok()
            s.exactly_once()
            with open(os.path.join(shared, "logs", f"worker_{job}_0.out")) as f:
                log0 = f.read()
            assert "preempting the worker" in log0 and "worker exited with 0" in log0, log0
            # the sweep is over: withdrawing the endpoint stops the remaining task
            os.unlink(os.path.join(shared, "coordinator.endpoint"))
            wait_for(lambda: not squeue(env, job), 60, 0.2, what="the worker array to leave the queue")
        except BaseException:
            print(slurm_logs(shared))
            subprocess.run(["scancel", "--full", "--signal=KILL", "--partition=debug"], env=env, capture_output=True)
            raise


@test
def coordinator_and_workers_as_slurm_jobs_finish_a_sweep():
    env = cluster()
    with Sweep(6, {"sleep_ms": 200}, name="slurm-coord") as s:
        shared = os.path.join(s.dir, "shared")
        try:
            s.launch()
            port = free_port()
            # authenticated: CURVE keys laid out by deploy/curve-keys.sh, the coordinator on every interface
            keys = os.path.join(s.dir, "keys")
            run(["bash", os.path.join(ROOT, "deploy", "curve-keys.sh"), keys, "slurm"], env={**os.environ, "CISWEEP": CISWEEP})
            p = run([CISWEEP, "slurm", "submit", "--db", s.db, "--cpu-workers", "1", "--cpus", "1", "--port", str(port),
                     "--shared", shared, "--keys", keys, "--worker-arg", "--selftest"], env=env)
            cj = re.search(r"coordinator job (\d+)", p.stdout)
            wj = re.search(r"worker array job (\d+)", p.stdout)
            assert cj and wj, p.stdout
            s.wait_finished(120)
            assert s.count("done") == 6
            s.exactly_once()
            # the coordinator exits when done (--exit-when-done), withdraws its endpoint, the workers stop
            wait_for(lambda: not squeue(env, cj.group(1)) and not squeue(env, wj.group(1)), 60, 0.2,
                     what="coordinator and worker jobs to leave the queue")
            assert not os.path.exists(os.path.join(shared, "coordinator.endpoint"))
            with open(os.path.join(shared, "logs", f"coordinator_{cj.group(1)}.out")) as f:
                clog = f.read()
            assert f"published tcp://" in clog and f":{port} in" in clog and "coordinator exited with 0" in clog, clog
            s.integrity_ok()
        except BaseException:
            print(slurm_logs(shared))
            subprocess.run(["scancel", "--full", "--signal=KILL", "--partition=debug"], env=env, capture_output=True)
            raise


# ---- the templates and the command's input checks: no Slurm needed ----

@test
def submit_dry_run_fills_templates_into_valid_shell():
    with Sweep(3, {}, name="dry") as s:
        s.launch()
        shared = os.path.join(s.dir, "sh")
        p = run([CISWEEP, "slurm", "submit", "--db", s.db, "--gpus", "8", "--partition", "gpu", "--time", "2:00:00",
                 "--shared", shared, "--max-parallel", "2", "--worker-arg", "--data", "--worker-arg", "/shared/it's world",
                 "--dry-run"])
        assert "(3 tasks)" in p.stdout, p.stdout      # 8 GPUs asked, 3 jobs: 3 tasks
        assert "submitting 3" in p.stderr, p.stderr
        w = open(os.path.join(shared, "worker.sbatch")).read()
        c = open(os.path.join(shared, "coordinator.sbatch")).read()
        assert "{{" not in w and "{{" not in c
        for line in ["#SBATCH --array=0-2%2", "#SBATCH --partition=gpu", "#SBATCH --time=2:00:00", "#SBATCH --gres=gpu:1",
                     "#SBATCH --requeue", "#SBATCH --signal=B:TERM@120", "--device cuda:0", "'/shared/it'\\''s world'"]:
            assert line in w, f"{line!r} not in the worker script:\n{w}"
        assert f"resume --db {s.db} --bind tcp://0.0.0.0:5555 --exit-when-done --insecure-bind-any" in c, c
        assert "WARNING: no --keys" in p.stderr, p.stderr  # unauthenticated, and said so
        for f in ("worker.sbatch", "coordinator.sbatch"):
            run(["bash", "-n", os.path.join(shared, f)])


@test
def submit_refuses_bad_input_with_clear_errors():
    with Sweep(2, {}, name="bad") as s:
        s.launch()
        sh = os.path.join(s.dir, "sh")
        cases = [
            (["--db", os.path.join(s.dir, "none.db")], "no sweep database at"),
            (["--db", s.db, "--gpus", "0"], "--gpus expects an integer >= 1"),
            (["--db", s.db, "--gpus", "2", "--cpu-workers", "2"], "exclude each other"),
            (["--db", s.db, "--partition", "a b"], "--partition \"a b\": character ' ' is not allowed"),
            (["--db", s.db, "--sweep", "nope"], "no sweep named \"nope\""),
            (["--db", s.db, "--sbatch-arg", "qos=low"], "expected one sbatch option"),
        ]
        for args, msg in cases:
            p = run([CISWEEP, "slurm", "submit", "--shared", sh, *args, "--dry-run"], check=False)
            assert p.returncode == 2, (args, p.returncode, p.stderr)
            assert msg in p.stderr, (args, p.stderr)
        tdir = os.path.join(s.dir, "tpl")
        os.makedirs(tdir)
        with open(os.path.join(tdir, "worker.sbatch"), "w") as f:
            f.write("#!/bin/bash\necho {{NOT_A_NAME}}\n")
        with open(os.path.join(tdir, "coordinator.sbatch"), "w") as f:
            f.write("#!/bin/bash\n")
        p = run([CISWEEP, "slurm", "submit", "--db", s.db, "--shared", sh, "--templates", tdir, "--dry-run"], check=False)
        assert p.returncode == 2 and "template worker.sbatch: unknown placeholder {{NOT_A_NAME}}" in p.stderr, p.stderr
        p = run([CISWEEP, "slurm", "frobnicate"], check=False)
        assert p.returncode == 2 and "expected the subcommand \"submit\"" in p.stderr, p.stderr


if __name__ == "__main__":
    main()
