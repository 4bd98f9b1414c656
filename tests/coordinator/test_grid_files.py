"""test_grid_files.py - every grid kept in grids/ still expands with this build's `cisweep grid`
(a registry or format change that breaks a tuning grid named in the docs fails here, naming the
file), and the job counts of issue 11's session-8 grids (docs/unlearning.md "Seeds and
architectures"), which rest on the `seeds` key repeating RMU/GD compositions: baselines once,
every unlearning composition once per seed."""
import glob, json, os, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import CISWEEP, ROOT, main, run, skip, test  # noqa: E402


def grid_jobs(path):
    """The job count `cisweep grid PATH --jobs` prints last (selftest grids allowed)."""
    p = run([CISWEEP, "grid", path, "--jobs", "--allow-selftest"], check=False, cwd=ROOT, timeout=60)
    assert p.returncode == 0, f"{path}: cisweep grid exit {p.returncode}: {p.stderr.strip()}"
    last = p.stdout.strip().splitlines()[-1].strip()
    assert last.isdigit(), f"{path}: expected a job count, got {last!r}"
    return int(last)


def grid_files():
    """grids/*.json except the model maps (*.models.json), which are not grids."""
    return sorted(f for f in glob.glob(os.path.join(ROOT, "grids", "*.json")) if not f.endswith(".models.json"))


@test
def every_grid_expands():
    if not os.access(CISWEEP, os.X_OK):
        skip(f"{CISWEEP} not built")
    files = grid_files()
    assert len(files) >= 20, files
    for f in files:
        with open(f) as fh:
            spec = json.load(fh)
        assert grid_jobs(f) > 0, f
        assert spec.get("name"), f"{f}: no name"


@test
def session8_grid_counts():
    if not os.access(CISWEEP, os.X_OK):
        skip(f"{CISWEEP} not built")
    # (file, models, unlearning compositions per model, seeds): jobs = models * (1 + comps * seeds)
    expect = [("rmu-seed-spread.json", 2, 1, 5), ("rmu-arch-compare.json", 2, 12, 2),
              ("rmu-arch-ablate.json", 6, 12, 2), ("rmu-mistral-explore.json", 2, 18 + 15, 1),
              ("rmu-candidate-seeds.json", 2, 2, 5), ("gd-arch-compare.json", 2, 4, 2),
              ("gd-arch-ablate.json", 6, 4, 2)]
    for name, models, comps, seeds in expect:
        path = os.path.join("grids", name)
        assert grid_jobs(path) == models * (1 + comps * seeds), f"{name}: {grid_jobs(path)} jobs"
        with open(os.path.join(ROOT, path)) as fh:
            desc = json.load(fh)["description"]
        assert "cisweep run --grid grids/" + name in desc, f"{name}: the description does not say how it ran"


main()
