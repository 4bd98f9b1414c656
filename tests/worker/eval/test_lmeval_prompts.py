"""test_lmeval_prompts.py - the MMLU / WMDP contexts our evaluator scores are byte for byte the ones
the real lm-eval-harness 0.4.2 (the version the authors pinned, fidelity.md §4) renders.

The wheel lm_eval==0.4.2 comes from PyPI (`pip download --no-deps`, its sha256 checked; cached in
build/third_party/, or CISWEEP_LMEVAL_WHEEL=path). We do not pip-install it (that would pull torch
and datasets); we load its own `lm_eval/utils.py` (apply_template: a Jinja Environment without
keep_trailing_newline) and its task yamls straight from the wheel, check in its `api/task.py` that
a 0-shot context is `apply_template(description, doc) + doc_to_text(doc)`, and render:
  - every question of a `cisweep world` (MMLU CSVs and WMDP JSON), and
  - a hand-made directory with awkward questions (surrounding whitespace, U+00A0 / U+3000,
    embedded newlines and commas in CSV fields, quotes, Jinja-looking text, non-ASCII),
then compare with `cisweep-worker eval --world DIR --print-prompts` (the C mc_prompt). The 0.4.4
form (`--mc-prompt 0.4.4`) is compared with the same templates rendered with
keep_trailing_newline=True, which is what 0.4.4 changed. The training items of the world
(corpus/sft.jsonl) must be the 0.4.2 contexts too. Skips visibly when the wheel cannot be had."""
import csv, glob, hashlib, importlib.util, json, os, shutil, subprocess, sys, tempfile, zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from harness import test, skip, main, check, cleanup, WORKER, ROOT  # noqa: E402

WHEEL_NAME = "lm_eval-0.4.2-py3-none-any.whl"
WHEEL_SHA256 = "8f3fe50ec92bc98ea62ad96236facc78d7e371db85dbc980627299e5750c8db4"  # PyPI's file
TMP = tempfile.mkdtemp(prefix="cisweep_lmeval_")
_cache = {}


def wheel():
    """the extracted wheel directory, or skip (no network / no pip)"""
    if "dir" in _cache:
        return _cache["dir"]
    if "no_wheel" in _cache:  # tried once already: no second download attempt per test
        skip(_cache["no_wheel"])
    try:
        return _wheel()
    except Exception as e:
        if type(e).__name__ == "Skip":
            _cache["no_wheel"] = str(e)
        raise


def _wheel():
    path = os.environ.get("CISWEEP_LMEVAL_WHEEL")
    if not path:
        d = os.path.join(ROOT, os.environ.get("CISWEEP_BUILD", "build"), "third_party")
        path = os.path.join(d, WHEEL_NAME)
        if not os.path.exists(path):
            os.makedirs(d, exist_ok=True)
            try:
                r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "lm_eval==0.4.2", "-d", d],
                                   capture_output=True, text=True, timeout=180)
            except (OSError, subprocess.TimeoutExpired) as e:
                skip("lm_eval==0.4.2 could not be downloaded (%s)" % e)
            if r.returncode != 0 or not os.path.exists(path):
                skip("lm_eval==0.4.2 could not be downloaded from PyPI: %s" % (r.stderr.strip().splitlines() or ["?"])[-1])
    data = open(path, "rb").read()
    assert hashlib.sha256(data).hexdigest() == WHEEL_SHA256, "%s is not PyPI's lm_eval 0.4.2 wheel" % path
    out = os.path.join(TMP, "wheel")
    with zipfile.ZipFile(path) as z:
        z.extractall(out)
    _cache["dir"] = out
    return out


def lm_utils():
    """lm_eval/utils.py of the wheel, imported on its own (its imports: numpy, yaml, jinja2)"""
    if "utils" not in _cache:
        for m in ("jinja2", "yaml", "numpy"):
            if importlib.util.find_spec(m) is None:
                skip("python module %s is missing (deploy/install-deps.sh installs it)" % m)
        spec = importlib.util.spec_from_file_location("lm_eval_042_utils", os.path.join(wheel(), "lm_eval", "utils.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _cache["utils"] = mod
    return _cache["utils"]


def load_yaml(rel):
    """a task yaml of the wheel with its `include` merged (as lm-eval's load_yaml_config does)"""
    import yaml
    base = os.path.join(wheel(), "lm_eval", "tasks")
    cfg = yaml.safe_load(open(os.path.join(base, rel)))
    inc = cfg.pop("include", None)
    if inc:
        parent = yaml.safe_load(open(os.path.join(base, os.path.dirname(rel), inc)))
        parent.update(cfg)
        cfg = parent
    return cfg


def mmlu_description(subject):
    """the description lm-eval 0.4.2 gives an MMLU subject: its yaml when the subject is one of
    MMLU's 57, else the formula of its _generate_configs.py (checked against all 57 below)"""
    p = os.path.join(wheel(), "lm_eval", "tasks", "mmlu", "default", "mmlu_%s.yaml" % subject)
    if os.path.exists(p):
        return load_yaml("mmlu/default/mmlu_%s.yaml" % subject)["description"]
    return "The following are multiple choice questions (with answers) about %s.\n\n" % " ".join(subject.split("_"))


def render(cfg_description, cfg_text, doc, keep_trailing_newline=False):
    """ConfigurableTask.fewshot_context at num_fewshot 0 (0.4.2): description + doc_to_text, each
    through utils.apply_template; keep_trailing_newline=True stands for lm-eval >= 0.4.4"""
    u = lm_utils()
    if not keep_trailing_newline:
        return u.apply_template(cfg_description, doc) + u.apply_template(cfg_text, doc)
    import jinja2
    env = jinja2.Environment(loader=jinja2.BaseLoader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(cfg_description).render(**doc) + env.from_string(cfg_text).render(**doc)


def reference_prompts(world_dir, keep_trailing_newline=False):
    """{(task, index): context} rendered by lm-eval's templates on the directory's files (memoized)"""
    key = ("ref", world_dir, keep_trailing_newline)
    if key not in _cache:
        _cache[key] = _reference_prompts(world_dir, keep_trailing_newline)
    return _cache[key]


def _reference_prompts(world_dir, keep_trailing_newline):
    out = {}
    mm = load_yaml("mmlu/default/_default_template_yaml")
    for f in sorted(glob.glob(os.path.join(world_dir, "mmlu", "data", "test", "*_test.csv"))):
        subject = os.path.basename(f)[:-len("_test.csv")]
        with open(f, newline="", encoding="utf-8-sig") as fh:
            for i, row in enumerate(csv.reader(fh)):
                doc = {"question": row[0], "subject": subject, "choices": row[1:5], "answer": "ABCD".index(row[5])}
                out[("mmlu_" + subject, i)] = render(mmlu_description(subject), mm["doc_to_text"], doc, keep_trailing_newline)
    for name, yml in (("wmdp_bio", "wmdp/wmdp_bio.yaml"), ("wmdp_cyber", "wmdp/wmdp_cyber.yaml")):
        p = os.path.join(world_dir, "wmdp", name.replace("_", "-") + ".json")
        if not os.path.exists(p):
            continue
        cfg = load_yaml(yml)
        for i, doc in enumerate(json.load(open(p, encoding="utf-8"))):
            out[(name, i)] = render(cfg["description"], cfg["doc_to_text"], doc, keep_trailing_newline)
    return out


def ours(world_dir, *extra):
    r = subprocess.run([WORKER, "eval", "--world", world_dir, "--print-prompts", *extra], capture_output=True)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    got = {}
    for line in r.stdout.decode("utf-8").splitlines():
        o = json.loads(line)
        got[(o["task"], o["index"])] = o["prompt"]
    return got


def compare(want, got, what):
    check(len(want) > 0, "%s: lm-eval rendered no prompt" % what)
    check(set(want) == set(got), "%s: questions differ: only lm-eval %s, only ours %s"
          % (what, sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5]))
    bad = [k for k in want if want[k].encode("utf-8") != got[k].encode("utf-8")]
    check(not bad, "%s: %d of %d contexts differ, first %s:\n  lm-eval %r\n  ours    %r"
          % (what, len(bad), len(want), bad[:1], want[bad[0]] if bad else "", got[bad[0]] if bad else ""))


def world():
    if "world" not in _cache:
        d = os.path.join(TMP, "w")
        r = subprocess.run([WORKER, "world", "--out", d, "--scale", "small", "--seed", "5"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        _cache["world"] = d
    return _cache["world"]


def awkward():
    """a directory in the real layout with questions that exercise strip() and the template"""
    d = os.path.join(TMP, "awkward")
    if os.path.exists(d):
        return d
    os.makedirs(os.path.join(d, "mmlu", "data", "test"))
    os.makedirs(os.path.join(d, "wmdp"))
    rows = [["  Which value?\n", "1", "2", "3", "4", "B"],
            ["\u00a0Non-breaking around\u3000", "a, b", "\"quoted\"", "x\ny", "{{ not a template }}", "D"],
            ["\tTabs and\nnewlines inside\n\n", "é", "日本", "-", "Answer:", "A"],
            ["Trailing spaces in choices?", "one ", " two", "three\n", "", "C"]]
    for subject in ("astronomy", "high_school_world_history", "culinary_arts"):
        with open(os.path.join(d, "mmlu", "data", "test", subject + "_test.csv"), "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows)
    bio = [{"question": "\n What binds?  ", "choices": ["a", "b", "c", "d"], "answer": 2},
           {"question": "Line one\nline two", "choices": ["{% raw %}", "%}", "\\n", "x"], "answer": 0}]
    cyber = [{"question": "\u2003Which port?\u2003", "choices": ["22", "80", "443", "8080"], "answer": 3}]
    json.dump(bio, open(os.path.join(d, "wmdp", "wmdp-bio.json"), "w", encoding="utf-8"), ensure_ascii=False)
    json.dump(cyber, open(os.path.join(d, "wmdp", "wmdp-cyber.json"), "w", encoding="utf-8"), ensure_ascii=False)
    return d


@test
def wheel_renders_description_with_one_newline():
    # what fidelity.md §4 says about 0.4.2, checked on the package itself
    u = lm_utils()
    d = load_yaml("mmlu/default/mmlu_anatomy.yaml")["description"]
    assert d == "The following are multiple choice questions (with answers) about anatomy.\n\n", repr(d)
    assert u.apply_template(d, {}) == "The following are multiple choice questions (with answers) about anatomy.\n"
    for name, subject in (("wmdp_bio", "biology"), ("wmdp_cyber", "cybersecurity")):
        cfg = load_yaml("wmdp/%s.yaml" % name)
        assert cfg["description"] == "The following are multiple choice questions (with answers) about %s.\n\n" % subject
        assert cfg["doc_to_text"] == load_yaml("mmlu/default/_default_template_yaml")["doc_to_text"]
        assert cfg["doc_to_choice"] == ["A", "B", "C", "D"] and cfg.get("num_fewshot", 0) == 0
    # the 0-shot context is apply_template(description) + doc_to_text in 0.4.2's ConfigurableTask
    src = open(os.path.join(wheel(), "lm_eval", "api", "task.py"), encoding="utf-8").read()
    assert "description = utils.apply_template(self.config.description, doc)" in src
    assert "labeled_examples = description\n" in src and "return labeled_examples + example" in src
    assert "keep_trailing_newline" not in open(os.path.join(wheel(), "lm_eval", "utils.py")).read()


@test
def mmlu_description_formula_matches_all_57_yamls():
    ys = glob.glob(os.path.join(wheel(), "lm_eval", "tasks", "mmlu", "default", "mmlu_*.yaml"))
    assert len(ys) == 57, len(ys)
    for y in ys:
        subject = os.path.basename(y)[len("mmlu_"):-len(".yaml")]
        cfg = load_yaml(os.path.relpath(y, os.path.join(wheel(), "lm_eval", "tasks")))
        want = "The following are multiple choice questions (with answers) about %s.\n\n" % " ".join(subject.split("_"))
        assert cfg["description"] == want, (subject, cfg["description"])


@test
def world_prompts_match_lmeval_042():
    w = world()
    compare(reference_prompts(w), ours(w), "world, lm-eval 0.4.2")
    compare(reference_prompts(w), ours(w, "--mc-prompt", "0.4.2"), "world, --mc-prompt 0.4.2")


@test
def world_prompts_044_switch():
    w = world()
    want = reference_prompts(w, keep_trailing_newline=True)
    compare(want, ours(w, "--mc-prompt", "0.4.4"), "world, lm-eval 0.4.4 form")
    assert all(".\n\n" in p for p in want.values())
    assert ours(w, "--mc-prompt", "0.4.4") != ours(w)


@test
def awkward_prompts_match_lmeval():
    d = awkward()
    compare(reference_prompts(d), ours(d), "awkward, 0.4.2")
    compare(reference_prompts(d, keep_trailing_newline=True), ours(d, "--mc-prompt", "0.4.4"), "awkward, 0.4.4 form")


@test
def world_training_items_are_the_042_contexts():
    # corpus/sft.jsonl teaches the model the format it is evaluated in (worker/data/world_mc.c)
    w = world()
    ref = set(reference_prompts(w).values())
    items = [json.loads(l) for l in open(os.path.join(w, "corpus", "sft.jsonl"), encoding="utf-8") if l.strip()]
    assert len(items) > 100, len(items)
    missing = [it["prompt"] for it in items if it["prompt"] not in ref]
    assert not missing, "training items not rendered as lm-eval 0.4.2 renders them, first: %r" % missing[:1]


@test
def print_prompts_bad_input():
    r = subprocess.run([WORKER, "eval", "--world", os.path.join(TMP, "nothing"), "--print-prompts"], capture_output=True, text=True)
    assert r.returncode == 1 and "holds no multiple-choice task" in r.stderr, r.stderr
    r = subprocess.run([WORKER, "eval", "--world", world(), "--print-prompts", "--mc-prompt", "0.4.3"], capture_output=True, text=True)
    assert r.returncode == 2 and "--mc-prompt expects 0.4.2 or 0.4.4" in r.stderr, r.stderr
    bad = os.path.join(TMP, "badwmdp")
    os.makedirs(os.path.join(bad, "wmdp"), exist_ok=True)
    open(os.path.join(bad, "wmdp", "wmdp-bio.json"), "w").write('[{"question": "q", "choices": ["a"], "answer": 0}]')
    r = subprocess.run([WORKER, "eval", "--world", bad, "--print-prompts"], capture_output=True, text=True)
    assert r.returncode == 1 and "wmdp-bio.json" in r.stderr, r.stderr


@cleanup
def remove_tmp():
    shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
