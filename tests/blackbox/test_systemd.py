"""test_systemd.py - deploy/systemd/: install.sh into a temporary root, then `systemd-analyze verify`
on the installed units (their paths pointed at the installed programs) for the coordinator, a GPU
worker instance (cisweep-worker@0) and the CPU worker. A deliberately broken copy must fail the
same verification, so the check is known to bite. Skipped, with the reason, without systemd-analyze."""
import os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import ROOT, test, skip, run, main  # noqa: E402

UNITS = ["cisweep-coordinator.service", "cisweep-worker@0.service", "cisweep-worker@3.service",
         "cisweep-worker-cpu.service"]


def installed(tmp):
    r = os.path.join(tmp, "root")
    run(["bash", os.path.join(ROOT, "deploy", "systemd", "install.sh"), "--root", r])
    v = os.path.join(tmp, "units")
    os.makedirs(v)
    sysd = os.path.join(r, "etc", "systemd", "system")
    for fn in os.listdir(sysd):
        with open(os.path.join(sysd, fn)) as f:
            text = f.read().replace("/usr/local/", r + "/usr/local/")
        with open(os.path.join(v, fn), "w") as f:
            f.write(text)
    return r, v


def verify(v, unit):
    return subprocess.run(["systemd-analyze", "verify", "--man=no", os.path.join(v, unit)], capture_output=True, text=True)


@test
def units_install_and_pass_systemd_analyze_verify():
    if not shutil.which("systemd-analyze"):
        skip("systemd-analyze is not installed on this machine")
    tmp = tempfile.mkdtemp(prefix="cisweep-systemd-")
    try:
        r, v = installed(tmp)
        for b in ("cisweep", "cisweep-worker"):
            assert os.access(os.path.join(r, "usr/local/bin", b), os.X_OK), b
        for e in ("coordinator.env", "worker.env"):
            assert os.path.exists(os.path.join(r, "etc/cisweep", e)), e
        for u in UNITS:
            p = verify(v, u)
            assert p.returncode == 0 and "cisweep" not in p.stderr, f"{u}: rc {p.returncode}: {p.stderr}"
        with open(os.path.join(v, "cisweep-worker@.service")) as f:
            w = f.read()
        assert "--device cuda:%i" in w and "KillSignal=SIGTERM" in w and "Restart=on-failure" in w
        # a second install keeps the settings a user edited
        with open(os.path.join(r, "etc/cisweep/worker.env"), "a") as f:
            f.write("CISWEEP_WORKER_ARGS=--data /shared/world\n")
        run(["bash", os.path.join(ROOT, "deploy", "systemd", "install.sh"), "--root", r])
        with open(os.path.join(r, "etc/cisweep/worker.env")) as f:
            assert "--data /shared/world" in f.read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def verify_rejects_a_broken_unit():
    if not shutil.which("systemd-analyze"):
        skip("systemd-analyze is not installed on this machine")
    tmp = tempfile.mkdtemp(prefix="cisweep-systemd-")
    try:
        r, v = installed(tmp)
        p = os.path.join(v, "cisweep-coordinator.service")
        with open(p) as f:
            text = f.read()
        with open(p, "w") as f:
            f.write(text.replace(r + "/usr/local/bin/cisweep ", "/nonexistent/cisweep "))
        out = verify(v, "cisweep-coordinator.service")
        assert out.returncode != 0 and "/nonexistent/cisweep" in out.stderr, (out.returncode, out.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
