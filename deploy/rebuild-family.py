#!/usr/bin/env python3
"""rebuild-family.py - rebuild the trained default family shipped in models/family from a fresh
world and compare it, file by file, with models/family/manifest.json (docs/training.md, "The
shipped family"). `make family` runs it.

    deploy/rebuild-family.py                   # full rebuild (3 members x 3,600 steps, ~15-30 min on 2 cores)
    deploy/rebuild-family.py --prefix          # only the first `prefix.stop_after` steps of each member (seconds)
    deploy/rebuild-family.py --shipped         # only hash the shipped files against the manifest (no training)
    deploy/rebuild-family.py --members tiny-llama3 [--prefix]   # some members only
    deploy/rebuild-family.py --write [--from DIR --world DIR]   # (maintainers) make models/family and its manifest

The world is generated with the manifest's world command and its trainer inputs are hashed first;
the family is trained with the manifest's train command (the exact argv, WORLD and OUT filled in)
and, for --prefix, that command with --stop-after N. Every hashed file is compared with the
manifest; train_info.json holds wall times and the corpus path, so the rebuild compares its
deterministic fields (steps, tokens, losses, SFT counts) with the shipped one instead of its bytes.

Exit status: 0 everything matches; 1 a file differs (each one named, with both sha256); 2 bad
usage, a missing or malformed manifest, or a command that failed.
"""
import argparse, ctypes, hashlib, json, os, platform, shlex, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMAT = "cisweep-family/1"
# what `cisweep run` trains for grids/paper-417.json (grids/paper-417.models.json) and how
MEMBERS = ["tiny-llama3", "tiny-mistral", "tiny-yi"]
WORLD_CMD = "cisweep-worker world --out WORLD --seed 1234 --scale default"
TRAIN_CMD = ("cisweep-worker train --family --archs tiny-llama3,tiny-mistral,tiny-yi --world WORLD --out OUT "
             "--steps 3600 --seed 1 --threads 1 --jobs 3 --log-every 100")
WORLD_FILES = ["corpus/pretrain.jsonl", "corpus/sft.jsonl"]   # what the trainer reads
PREFIX_STEPS = 20
# train_info.json fields that do not depend on the machine or the paths
INFO_FIELDS = ["arch", "params", "vocab_size", "corpus_docs", "corpus_tokens", "steps", "tokens", "epochs", "seq_len", "batch",
               "lr", "first_loss", "final_loss", "seed", "threads", "budget_steps", "replicas", "lm_steps", "sft_items",
               "sft_steps", "sft_seen", "sft_first_loss", "sft_final_loss"]


class Fail(Exception):
    """usage or environment error: exit 2"""


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def blas_core():
    """the OpenBLAS build and the kernel it picked on this CPU (bit-for-bit needs the same kernel)"""
    for name in ("libopenblas.so.0", "libopenblas.so"):
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return "%s; core %s" % (lib.openblas_get_config().decode(), lib.openblas_get_corename().decode())
        except (OSError, AttributeError):
            continue
    return "unknown (no libopenblas.so.0)"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_manifest(path):
    try:
        with open(path) as f:
            m = json.load(f)
    except (OSError, ValueError) as e:
        raise Fail(f"{path}: {e}")
    for key, want in (("format", str), ("world", dict), ("train", dict), ("prefix", dict), ("members", dict)):
        if not isinstance(m.get(key), want):
            raise Fail(f"{path}: field \"{key}\": expected a {want.__name__}")
    if m["format"] != FORMAT:
        raise Fail(f"{path}: format \"{m['format']}\", expected \"{FORMAT}\"")
    for key in ("command", "files"):
        if key not in m["world"]:
            raise Fail(f"{path}: world.{key} is missing")
    if not isinstance(m["train"].get("command"), str) or not isinstance(m["prefix"].get("stop_after"), int):
        raise Fail(f"{path}: train.command (a string) and prefix.stop_after (an integer) are required")
    for name, mem in m["members"].items():
        if not isinstance(mem.get("files"), dict) or "model.safetensors" not in mem["files"] or "prefix_sha256" not in mem:
            raise Fail(f"{path}: members.{name}: expected files (with model.safetensors) and prefix_sha256")
    return m


def argv_of(command, worker, **subst):
    """the manifest's command as an argv: cisweep-worker -> this build's binary, placeholders filled in"""
    av = shlex.split(command)
    if av[0] != "cisweep-worker":
        raise Fail(f"manifest command must start with cisweep-worker: {command}")
    return [worker] + [subst.get(a, a) for a in av[1:]]


def run(av, log):
    print("+ " + " ".join(shlex.quote(a) for a in av), flush=True)
    with open(log, "w") as lf:
        p = subprocess.run(av, stdout=lf, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        with open(log) as lf:
            tail = lf.read()[-3000:]
        raise Fail(f"the command failed (exit {p.returncode}); the end of {log}:\n{tail}")


def make_world(worker, manifest_world, work, world=None):
    """a fresh world (or the given one), its trainer inputs checked against the manifest's"""
    if world is None:
        world = os.path.join(work, "world")
        run(argv_of(manifest_world["command"], worker, WORLD=world), os.path.join(work, "world.log"))
    bad = []
    for rel, want in manifest_world["files"].items():
        got = sha256(os.path.join(world, rel))
        if got != want:
            bad.append(f"MISMATCH world {os.path.join(world, rel)}: sha256 {got}, the manifest says {want}")
    return world, bad


def compare_info(shipped, rebuilt, label):
    try:
        a, b = json.load(open(shipped)), json.load(open(rebuilt))
    except (OSError, ValueError) as e:
        return [f"MISMATCH {label}: {e}"]
    return [f"MISMATCH {label}: field {k}: shipped {a.get(k)!r}, rebuilt {b.get(k)!r}" for k in INFO_FIELDS if a.get(k) != b.get(k)]


def compare_member(manifest, fam_dir, name, out_dir, prefix):
    """the rebuilt member's files against the manifest: [] when all match, else one line per file"""
    mem = manifest["members"][name]
    bad = []
    for fname, want in sorted(mem["files"].items()):
        rebuilt = os.path.join(out_dir, name, fname)
        label = f"{name}/{fname}"
        if fname == "train_info.json":
            if not prefix:
                bad += compare_info(os.path.join(fam_dir, name, fname), rebuilt, label)
            continue
        if fname == "model.safetensors" and prefix:
            want, label = mem["prefix_sha256"], f"{name}/model.safetensors after --stop-after {manifest['prefix']['stop_after']}"
        if not os.path.exists(rebuilt):
            bad.append(f"MISMATCH {label}: not written by the rebuild ({rebuilt})")
            continue
        got = sha256(rebuilt)
        if got != want:
            bad.append(f"MISMATCH {label}: rebuilt sha256 {got}, the manifest says {want}")
        else:
            print(f"  same  {label}  {got}")
    return bad


def check_shipped(manifest, fam_dir, members):
    bad = []
    for name in members:
        for fname, want in sorted(manifest["members"][name]["files"].items()):
            p = os.path.join(fam_dir, name, fname)
            got = sha256(p) if os.path.exists(p) else "(missing)"
            if got != want:
                bad.append(f"MISMATCH shipped {p}: sha256 {got}, the manifest says {want}")
    extra = sorted(set(os.listdir(fam_dir)) - set(manifest["members"]) - {"manifest.json"})
    bad += [f"MISMATCH shipped {os.path.join(fam_dir, e)}: not in the manifest" for e in extra]
    return bad


def train(worker, manifest, world, out, members, stop_after, work):
    av = argv_of(manifest["train"]["command"], worker, WORLD=world, OUT=out)
    if members != list(manifest["members"]):
        i = av.index("--archs")
        av[i + 1] = ",".join(members)
    if stop_after:
        av += ["--stop-after", str(stop_after)]
    run(av, os.path.join(work, "train-prefix.log" if stop_after else "train.log"))


def write_family(args, worker, fam_dir, work):
    """(maintainers) models/family from a full build (--from DIR, or trained here) and its manifest"""
    world, bad = (args.world, []) if args.world else make_world(worker, {"command": WORLD_CMD, "files": {}}, work)
    src = args.from_dir
    if not src:
        src = os.path.join(work, "family")
        train(worker, {"train": {"command": TRAIN_CMD}, "members": {m: 0 for m in MEMBERS}}, world, src, MEMBERS, 0, work)
    pre = os.path.join(work, "prefix")
    train(worker, {"train": {"command": TRAIN_CMD}, "members": {m: 0 for m in MEMBERS}}, world, pre, MEMBERS, PREFIX_STEPS, work)
    manifest = {
        "format": FORMAT,
        "what": "the trained default family of `cisweep run` (grids/paper-417.models.json: llama3-8b -> tiny-llama3, "
                "mistral-7b -> tiny-mistral, yi-1.5-9b -> tiny-yi), trained by train.command on the world of world.command. "
                "deploy/rebuild-family.py (make family) rebuilds it and compares every sha256 below; docs/training.md.",
        "world": {"seed": 1234, "scale": "default", "command": WORLD_CMD,
                  "files": {rel: sha256(os.path.join(world, rel)) for rel in WORLD_FILES}},
        "train": {"command": TRAIN_CMD, "steps": 3600, "seed": 1, "threads": 1, "jobs": 3,
                  "note": "one thread per member (no data-parallel replicas): the bits depend on the thread count; "
                          "--jobs only sets how many members train at once"},
        "prefix": {"stop_after": PREFIX_STEPS, "command": TRAIN_CMD + f" --stop-after {PREFIX_STEPS}",
                   "note": "the first stop_after steps of the same 3,600-step schedule: prefix_sha256 is model.safetensors then"},
        "not_compared": {"train_info.json": "its bytes hold wall times and the corpus path; a rebuild compares its "
                                            "deterministic fields (steps, tokens, losses, SFT counts) instead"},
        "built_on": {"cpu": cpu_model(), "blas": blas_core()},
        "members": {},
    }
    if os.path.isdir(fam_dir):
        shutil.rmtree(fam_dir)
    os.makedirs(fam_dir)
    for m in MEMBERS:
        os.makedirs(os.path.join(fam_dir, m))
        files = {}
        for fname in sorted(os.listdir(os.path.join(src, m))):
            shutil.copyfile(os.path.join(src, m, fname), os.path.join(fam_dir, m, fname))
            files[fname] = sha256(os.path.join(fam_dir, m, fname))
        info = json.load(open(os.path.join(src, m, "train_info.json")))
        manifest["members"][m] = {"files": files, "prefix_sha256": sha256(os.path.join(pre, m, "model.safetensors")),
                                  "params": info["params"], "final_loss": info["final_loss"],
                                  "sft_final_loss": info["sft_final_loss"]}
    with open(os.path.join(fam_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"wrote {fam_dir} and its manifest.json")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family-dir", default=os.path.join(ROOT, "models", "family"), help="the shipped family (default models/family)")
    ap.add_argument("--worker", default=os.path.join(ROOT, os.environ.get("CISWEEP_BUILD", "build"), "bin", "cisweep-worker"))
    ap.add_argument("--members", help="comma-separated members to rebuild (default: all of the manifest)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--prefix", action="store_true", help="only the manifest's --stop-after prefix of each member")
    mode.add_argument("--shipped", action="store_true", help="only hash the shipped files against the manifest")
    mode.add_argument("--write", action="store_true", help="(maintainers) make the family directory and its manifest")
    ap.add_argument("--work", help="keep the world and the rebuilt models here (default: a temporary directory, removed)")
    ap.add_argument("--world", help="with --write: use this world instead of generating one")
    ap.add_argument("--from", dest="from_dir", help="with --write: copy the family trained in DIR instead of training it")
    args = ap.parse_args()
    fam_dir = os.path.abspath(args.family_dir)
    work = os.path.abspath(args.work) if args.work else tempfile.mkdtemp(prefix="cisweep-family-")
    os.makedirs(work, exist_ok=True)
    try:
        if not args.shipped and not os.access(args.worker, os.X_OK):
            raise Fail(f"{args.worker}: no cisweep-worker binary (run make first, or give --worker)")
        if args.write:
            bad = write_family(args, args.worker, fam_dir, work)
        else:
            manifest = load_manifest(os.path.join(fam_dir, "manifest.json"))
            members = args.members.split(",") if args.members else list(manifest["members"])
            for m in members:
                if m not in manifest["members"]:
                    raise Fail(f"--members: {m} is not a member of {fam_dir} ({', '.join(manifest['members'])})")
            here, there = blas_core(), manifest.get("built_on", {}).get("blas")
            if there and here != there:
                print(f"note: this machine's BLAS is \"{here}\", the family was built with \"{there}\": "
                      "a different kernel may change the bits (docs/training.md)")
            bad = check_shipped(manifest, fam_dir, members)
            if not args.shipped:
                world, wbad = make_world(args.worker, manifest["world"], work)
                bad += wbad
                if not wbad:
                    out = os.path.join(work, "prefix" if args.prefix else "family")
                    stop = manifest["prefix"]["stop_after"] if args.prefix else 0
                    train(args.worker, manifest, world, out, members, stop, work)
                    for m in members:
                        bad += compare_member(manifest, fam_dir, m, out, args.prefix)
    except Fail as e:
        print(f"rebuild-family: {e}", file=sys.stderr)
        return 2
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    for line in bad:
        print(line, file=sys.stderr)
    what = "shipped files" if args.shipped else "prefix" if args.prefix else "written" if args.write else "rebuild"
    print(f"rebuild-family: {what}: {'every file matches' if not bad else f'{len(bad)} mismatch(es)'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
