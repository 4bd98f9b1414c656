"""`cisweep COMMAND --help` for every sweep command: exit 0 and a usage line that names the command
and its required options (launch, status, retry, cancel, export and findings take theirs from the
command summary of coordinator/main.c; grid, report, slurm and keygen have their own); an unknown
option still exits 2 naming it."""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import test, main, run, CISWEEP  # noqa: E402

EXPECT = {
    "launch": "--grid FILE", "status": "--db DB", "retry": "--failed", "cancel": "--where SQL",
    "export": "--format csv", "findings": "--sweep NAME", "grid": "cisweep grid FILE", "report": "--out DIR",
    "slurm": "slurm submit", "keygen": "keygen NAME",
}


@test
def every_sweep_command_answers_help():
    for cmd, needle in EXPECT.items():
        for flag in ("--help", "-h"):
            p = run([CISWEEP, cmd, flag], check=False)
            assert p.returncode == 0, (cmd, flag, p.returncode, p.stderr)
            assert p.stdout.startswith("usage: cisweep") and needle in p.stdout, (cmd, p.stdout)


@test
def run_grid_form_answers_help():
    """`cisweep run --grid [FILE] --help` is the launcher's usage (the study's usage points to it),
    not an unknown option; `cisweep run --help` stays the study's."""
    for argv in (["run", "--grid", "--help"], ["run", "--grid", "g.json", "-h"], ["run", "--help", "--grid", "g.json"]):
        p = run([CISWEEP] + argv, check=False)
        assert p.returncode == 0, (argv, p.returncode, p.stderr)
        assert p.stdout.startswith("usage: cisweep run --grid FILE") and "--workers N" in p.stdout, (argv, p.stdout)
    p = run([CISWEEP, "run", "--help"], check=False)
    assert p.returncode == 0 and "cisweep run --grid --help" in p.stdout, p.stdout
    p = run([CISWEEP, "run", "--grid", "g.json", "--bogus"], check=False)
    assert p.returncode == 2 and '"--bogus"' in p.stderr, (p.returncode, p.stderr)


@test
def an_unknown_option_is_still_refused():
    p = run([CISWEEP, "launch", "--bogus"], check=False)
    assert p.returncode == 2 and '"--bogus"' in p.stderr, (p.returncode, p.stderr)
    p = run([CISWEEP, "status", "--help", "--db"], check=False)   # --help among other args: the command's parser
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)


if __name__ == "__main__":
    main()
