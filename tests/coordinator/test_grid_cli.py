"""test_grid_cli.py - black-box tests of `cisweep grid` (build/bin/cisweep): the shipped grids'
counts (311; 417 per model), the composition lines and breakdown, bad grids (exit 2, a message naming the
file, the JSON path and what is allowed), usage errors (exit 2), and canonical text that Python's
json.dumps(sort_keys=True, separators=(",", ":")) reproduces, so keys (sha256 of it) can be
recomputed outside cisweep.

Skips, with the reason, while build/bin/cisweep does not dispatch `grid` to cmd_grid yet (its
main is written separately); tests/coordinator/test_grid.c covers cmd_grid in-process meanwhile."""
import json, os, shutil, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import CISWEEP, ROOT, main, run, skip, test  # noqa: E402

_ready = None


def cli_ready():
    """True when `cisweep grid grids/smoke.json --count` ends with a number."""
    global _ready
    if _ready is None:
        if not os.access(CISWEEP, os.X_OK):
            _ready = f"{CISWEEP} not built"
        else:
            p = run([CISWEEP, "grid", "grids/smoke.json", "--count"], check=False, cwd=ROOT, timeout=60)
            lines = p.stdout.strip().splitlines()
            _ready = True if (p.returncode == 0 and lines and lines[-1].strip().isdigit()) else \
                "build/bin/cisweep does not dispatch `grid` to cmd_grid yet (coordinator/main.c)"
    if _ready is not True:
        skip(_ready)


def grid(*args, check=True):
    return run([CISWEEP, "grid", *args], check=check, cwd=ROOT, timeout=60)


@test
def paper_counts_311():
    cli_ready()
    p = grid("grids/paper.json", "--count")
    lines = p.stdout.strip().splitlines()
    assert lines[-1] == "311", lines[-1]
    comps = [l.split("\t") for l in lines if not l.startswith("#") and "\t" in l]
    assert len(comps) == 311, len(comps)
    pats = {}
    for model, pat, canon in comps:
        assert model == "llama3-8b"
        pats[pat] = pats.get(pat, 0) + 1
        json.loads(canon)  # every line's spec is valid JSON
    want = {"baseline": 1, "edit": 3, "compress": 22, "unlearn": 3, "edit->compress": 66, "compress->edit": 66,
            "unlearn->compress": 66, "compress->unlearn": 66, "edit->unlearn": 9, "unlearn->edit": 9}
    assert pats == want, pats
    assert len({c for _, _, c in comps}) == 311
    p = grid("grids/paper.json", "--jobs", "--quiet")
    assert p.stdout.strip().splitlines()[-1] == "1688"


@test
def paper_417():
    """fidelity.md §1: llama3-8b 311 over 10 edit sets, mistral-7b 65 + 3, yi-1.5-9b 38, once each"""
    cli_ready()
    p = grid("grids/paper-417.json", "--count", "--jobs")
    lines = p.stdout.strip().splitlines()
    assert lines[-2:] == ["417", "1794"], lines[-2:]
    per = {}
    for l in lines:
        if "\t" in l and not l.startswith("#"):
            model = l.split("\t")[0]
            per[model] = per.get(model, 0) + 1
    assert per == {"llama3-8b": 311, "mistral-7b": 68, "yi-1.5-9b": 38}, per
    by_model = [l.split() for l in lines if l.startswith("#   ") and "jobs" in l]
    assert ["#", "mistral-7b", "68", "compositions", "68", "jobs"] in by_model, by_model
    assert ["#", "llama3-8b", "311", "compositions", "1688", "jobs"] in by_model, by_model


@test
def canonical_is_stable_and_python_readable():
    """The canonical text is what Python's json.dumps(sort_keys, compact) gives for it (reals as
    repr(float)), so keys can be recomputed outside cisweep."""
    cli_ready()
    p = grid("grids/paper.json")
    for line in p.stdout.splitlines():
        if line.startswith("#") or "\t" not in line:
            continue
        canon = line.split("\t")[2]
        again = json.dumps(json.loads(canon), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert again == canon, (canon, again)


@test
def bad_grids_exit_2():
    cli_ready()
    d = tempfile.mkdtemp()
    try:
        cases = {
            "syntax.json": ('{"name": "x",\n "models": ["m"]\n "baseline": true}', ["line 3"]),
            "method.json": ('{"name":"x","models":["m"],"categories":{"edit":[{"method":"rome"}]}}',
                            ["$.categories.edit[0].method", "rome", "ft|memit|lora"]),
            "level.json": ('{"name":"x","models":["m"],"categories":{"compress":[{"method":"wanda","levels":'
                           '{"sparsity":[0.25]}},{"method":"gptq","levels":{"bits":[2,3,5]}}]}}',
                           ["$.categories.compress[1].levels.bits[2]: 5 is not allowed for gptq bits (allowed: 2|3|4|8)"]),
            "key.json": ('{"name":"x","models":["m"],"singels":true}', ['unknown key "singels"']),
            "dup.json": ('{"name":"x","models":["m"],"baseline":true,"compositions":[[]]}', ["duplicate composition"]),
            "selftest.json": ('{"name":"x","models":["m"],"selftest":{"count":3}}', ["--allow-selftest"]),
        }
        for name, (body, wants) in cases.items():
            path = os.path.join(d, name)
            with open(path, "w") as f:
                f.write(body)
            p = grid(path, "--count", check=False)
            assert p.returncode == 2, (name, p.returncode, p.stderr)
            assert path in p.stderr, (name, p.stderr)
            for w in wants:
                assert w in p.stderr, (name, w, p.stderr)
        # the selftest generator is accepted with the flag
        p = grid(os.path.join(d, "selftest.json"), "--allow-selftest", "--count")
        assert p.stdout.strip().splitlines()[-1] == "3"
    finally:
        shutil.rmtree(d)


@test
def usage_errors_exit_2():
    cli_ready()
    for args in ([], ["grids/paper.json", "--nope"], ["grids/paper.json", "grids/smoke.json"]):
        p = grid(*args, check=False)
        assert p.returncode == 2, (args, p.returncode)
        assert "usage:" in p.stderr, (args, p.stderr)
    p = grid("does/not/exist.json", check=False)
    assert p.returncode == 2 and "does/not/exist.json" in p.stderr


if __name__ == "__main__":
    main()
