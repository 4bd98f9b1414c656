"""test_grid_prefixes.py - `cisweep grid FILE --prefixes`: how many stage applications shared stage
prefixes save in a grid, computed with the same prefix keys the workers and the coordinator use
(common/prefix_key.c), checked against counts derived by hand:

smoke (8 jobs, 11 stages): FT alone is the prefix of FT->Wanda (1), Wanda 0.25 alone of Wanda->FT and
Wanda->GA (2; all edit set 1 or none, i.e. seed 1), GA alone of GA->Wanda (1): 4 restored, 3 prefixes.

paper (1688 jobs): per GPTQ level, the single + 3 editors x 10 edit sets + 3 unlearners share one GPTQ
stage (calibration seed fixed at 0): 34 jobs, 33 restored, x 4 levels = 132; AWQ the same x 6 = 198;
per Wanda/SparseGPT level the seed is the edit set: seed 1 has the single, 3 editors and 3 unlearners
(7 jobs, 6 restored), seeds 2..10 the 3 editors (2 restored each): 24 x 6 levels = 144 each; each
editor alone on edit set s is the prefix of editor->22 compressors and editor->3 unlearners: 25 x 10
= 250 each; each unlearner alone (seed 1) of its 22 compressor pairs and the 3 editor pairs of edit
set 1 (25), and unlearner->editor on edit sets 2..10 share per edit set (2 x 9 = 18): 43 each.
Total 132 + 198 + 2 x 144 + 3 x 250 + 3 x 43 = 1497."""
import os, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import CISWEEP, ROOT, main, run, test  # noqa: E402


def prefixes(grid):
    p = run([CISWEEP, "grid", grid, "--quiet", "--prefixes"], cwd=ROOT, timeout=120)
    return [line for line in p.stdout.splitlines() if line.startswith("# prefixes:")]


def by_method(line):
    body = line.split("by method:")[1].strip()
    return {k: int(v) for k, v in (item.strip().split() for item in body.split(","))}


@test
def smoke_grid_savings_by_hand():
    a, b, c = prefixes("grids/smoke.json")
    assert "8 jobs apply 11 composition stages" in a, a
    assert "3 distinct stage prefixes kept; 4 stage applications (36.4%)" in b, b
    assert by_method(c) == {"ft": 1, "wanda": 2, "ga": 1}, c


@test
def paper_grid_savings_by_hand():
    a, b, c = prefixes("grids/paper.json")
    assert "1688 jobs apply 3319 composition stages" in a, a
    assert "190 distinct stage prefixes kept; 1497 stage applications" in b, b
    assert by_method(c) == {"ft": 250, "memit": 250, "lora": 250, "wanda": 144, "sparsegpt": 144, "gptq": 132,
                            "awq": 198, "rmu": 43, "ga": 43, "gd": 43}, c


@test
def without_the_flag_nothing_is_printed():
    p = run([CISWEEP, "grid", "grids/smoke.json", "--quiet"], cwd=ROOT, timeout=60)
    assert "# prefixes:" not in p.stdout


if __name__ == "__main__":
    main()
