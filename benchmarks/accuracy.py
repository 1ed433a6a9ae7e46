"""Accuracy on unseen Kaggle photos for what a user runs: the lab's 80-photo quick CNN, the quick CNN in one
command within its time budget (`catdog train quick --source`), the pretrained model with a frozen backbone
and fine-tuned (`catdog train pretrained [--fine-tune]`), and each backbone over seeds.

Every model is trained by the CLI command a user types, in a subprocess, and scored on the same test photos:
catdog's 500 reserved photos (`catdog data prepare --reserved`: fixed by name, never picked by a training
sample). Each quick run is scored twice: on photos decoded at its own input size (as it trained) and as the
service and `catdog predict` prepare them.

    python benchmarks/accuracy.py --json benchmarks/accuracy.json   # RESULTS.md's "Quick model", "Fine-tuning"
    python benchmarks/accuracy.py --smoke         # a minute: tiny sizes, checks the script, measures nothing
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CATDOG_SHARED") or REPO.parent / "shared").resolve()
CATDOG = [sys.executable, "-m", "catdog.cli"]


def run(*args: str, env: dict[str, str]) -> tuple[str, float]:
    """A catdog command as a user runs it; its output and wall-clock seconds."""
    started = time.perf_counter()
    done = subprocess.run([*CATDOG, *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"catdog {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout, seconds


def fit_seconds(output: str) -> float:
    return float(re.search(r"in ([\d.]+) s:", output).group(1))


def scores(model_path: Path, test_dir: Path) -> dict[str, float]:
    """Accuracy as trained (decoded at the model's size) and as served (prepared like the service)."""
    from catdog import experiments, models, predict

    model = models.load_model(model_path)
    served = predict.evaluate_folder({"model": model}, test_dir, splits=("training", "validation"))
    correct = served.predicted("model") == served.labels
    return {"as_trained": round(experiments.score(model, test_dir), 4), "as_served": round(float(correct.mean()), 4)}


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.mean(values), 4),
        "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def table(report: dict) -> str:
    """The figures as RESULTS.md shows them."""
    lines = [
        f"unseen Kaggle photos: {report['test_photos']} (catdog's reserved); training photos per class: "
        f"{report['per_class']}",
        "| model | command | training s | unseen accuracy (as served) |",
        "|---|---|---:|---|",
    ]
    if "lab" in report:
        lab = report["lab"]
        lines.append(
            f"| quick CNN, the lab's 80 photos | `{lab['command']}` | {lab['fit_seconds']:.1f} | "
            f"{lab['as_served']:.3f} |"
        )
    if "quick" in report:
        quick, served = report["quick"], report["quick"]["as_served"]
        lines.append(
            f"| quick CNN within its budget, {len(quick['runs'])} seeds | `{quick['command']}` | "
            f"≤ {quick['fit_seconds_max']:.1f} | **{served['mean']:.3f}** ± {served['sd']:.3f} "
            f"(min {served['min']:.3f}, max {served['max']:.3f}) |"
        )
    for name, label in (
        ("pretrained", "MobileNetV2 at 288 px, frozen + head"),
        ("fine-tune", "MobileNetV2 at 288 px, last block fine-tuned"),
    ):
        if name in report:
            run_ = report[name]
            lines.append(
                f"| {label} | `{run_['command'].strip()}` | {run_['fit_seconds']:.1f} "
                f"(command {run_['command_seconds']:.0f}) | **{run_['as_served']:.3f}** |"
            )
    for backbone, found in report.get("backbones", {}).items():
        served = found["as_served"]
        every = ", ".join(f"{r['as_served']:.3f}" for r in found["runs"])
        lines.append(
            f"| {backbone}, frozen + head, {len(found['runs'])} seeds "
            f"| `catdog train pretrained --backbone {backbone}` "
            f"| ≤ {max(r['fit_seconds'] for r in found['runs']):.1f} | **{served['mean']:.3f}** ± {served['sd']:.3f} "
            f"({every}) |"
        )
    if report.get("backbones"):
        lines += [
            "",
            "| backbone | input | ms a photo, batches of 16 | ms, one photo alone | file (MiB) | memory (MiB) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for backbone, found in report["backbones"].items():
            paid = found["cost"]
            lines.append(
                f"| {backbone} | {paid['input_px']} px | {paid['ms_per_photo_batched']:.1f} "
                f"| {paid['ms_one_photo']:.1f} | {paid['file_mib']:.1f} | {paid['memory_mib']:.0f} |"
            )
    return "\n".join(lines)


# A model's cost as the classifier pays it, in a fresh process: its compiled graph (catdog.predict.predict_fn)
# on batches of 16 and on single photos at its own size, its file, and what loading and running it adds to
# the process's resident memory (TensorFlow itself already loaded).
COST_SCRIPT = """
import json, sys, time
import numpy as np
from catdog import models, predict
def rss_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024
rounds = int(sys.argv[2])
before = rss_mib()
model = models.load_model(sys.argv[1])
run = predict.predict_fn(model)
size = models.input_size(model)
batch = np.random.default_rng(0).integers(0, 256, (16, size, size, 3), dtype=np.uint8)
timed = {}
for name, pixels in (("batched", batch), ("one", batch[:1])):
    run(pixels)
    started = time.perf_counter()
    for _ in range(rounds):
        run(pixels)
    timed[name] = (time.perf_counter() - started) * 1000 / (rounds * len(pixels))
print(json.dumps({"input_px": size, "ms_per_photo_batched": round(timed["batched"], 2),
                  "ms_one_photo": round(timed["one"], 2), "memory_mib": round(rss_mib() - before, 1)}))
"""


def cost(model_path: Path, env: dict, rounds: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", COST_SCRIPT, str(model_path), str(rounds)], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        sys.exit(f"measuring {model_path} failed:\n{done.stderr}")
    return {**json.loads(done.stdout.splitlines()[-1]), "file_mib": round(model_path.stat().st_size / 2**20, 1)}


def compare_backbones(args, kaggle: Path, work: Path, test_dir: Path, quiet: list[str], env: dict) -> dict:
    """Each backbone's frozen features with a trained head, over --backbone-seeds seeds (each its own
    sample of training photos), on the same unseen photos: the mean, the spread, every seed (issue 43)."""
    found = {}
    for backbone in ("mobilenet", "mobilenet_v2"):  # 2019's v1 0.75 at 224 px; V2 1.0 at 288 px, the default
        runs = []
        for seed in range(1, args.backbone_seeds + 1):
            out = work / f"{backbone}-{seed}.keras"
            output, wall = run(
                "train", "pretrained", "--source", str(kaggle), "--per-class", str(args.per_class),
                "--seed", str(seed), "--backbone", backbone, "--out", str(out),
                "--data-out", str(work / f"{backbone}-{seed}"),
                *(["--epochs", "2"] if args.smoke else []), *quiet, env=env,
            )  # fmt: skip
            runs.append({"seed": seed, "fit_seconds": fit_seconds(output), "command_seconds": round(wall, 1),
                         **scores(out, test_dir)})  # fmt: skip
            print(f"{backbone} (seed {seed}):", runs[-1], flush=True)
        found[backbone] = {
            "runs": runs,
            "as_served": spread([r["as_served"] for r in runs]),
            "cost": cost(work / f"{backbone}-1.keras", env, 2 if args.smoke else 20),
        }
        print(f"{backbone}'s cost:", found[backbone]["cost"], flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--per-class",
        type=int,
        default=750,
        help="training photos of each class (default 750: ../shared's Kaggle set has 1000 cats and 997 dogs, "
        "250 of each reserved: all the others)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="quick runs, each its own seed and photos")
    parser.add_argument("--backbone-seeds", type=int, default=3, help="pretrained runs of each backbone")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=("lab", "quick", "pretrained", "fine-tune", "backbones")
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, not the figures")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.smoke:
        args.per_class, args.seeds, args.backbone_seeds = 12, 2, 1
    kaggle, lab = SHARED / "datasets" / "kaggle-dev", SHARED / "datasets" / "ocp-lab"
    work = Path(tempfile.mkdtemp(prefix="catdog-accuracy-"))
    env = {
        **os.environ,
        "CATDOG_CACHE_DIR": str(work / "cache"),
        "CATDOG_DATA_DIR": str(work / "data"),
        "CATDOG_WEIGHTS_DIR": os.environ.get("CATDOG_WEIGHTS_DIR", str(SHARED / "models" / "imagenet")),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    import catdog

    catdog.quiet_tensorflow()
    from catdog.data import read_manifest

    test_dir = work / "reserved"
    run("data", "prepare", "--source", str(kaggle), "--reserved", "--per-class", str(6 if args.smoke else 250),
        "--out", str(test_dir), "--no-progress", env=env)  # fmt: skip
    quiet = ["--no-progress"]  # every training sample leaves the reserved photos out by itself
    report: dict = {
        "cpus": os.cpu_count(),
        "per_class": args.per_class,
        "test_photos": len(read_manifest(test_dir)),
        "smoke": args.smoke,
    }

    if "lab" not in args.skip:  # notebook 01's run: the lab's 80 photos, 128 px, 20 epochs
        run("data", "prepare", "--source", str(lab), "--out", str(work / "lab"), "--no-progress", env=env)
        output, _ = run(
            "train",
            "quick",
            "--data",
            str(work / "lab"),
            "--out",
            str(work / "lab.keras"),
            *(["--epochs", "1"] if args.smoke else []),
            env=env,
        )
        report["lab"] = {
            "command": "catdog train quick  (after catdog data prepare: the lab's 80 photos)",
            "fit_seconds": fit_seconds(output),
            **scores(work / "lab.keras", test_dir),
        }
        print("lab quick CNN:", report["lab"], flush=True)

    if "quick" not in args.skip:
        runs = []
        for seed in range(1, args.seeds + 1):
            out = work / f"quick-{seed}.keras"
            output, wall = run(
                "train",
                "quick",
                "--source",
                str(kaggle),
                "--per-class",
                str(args.per_class),
                "--seed",
                str(seed),
                "--out",
                str(out),
                "--data-out",
                str(work / f"quick-{seed}"),
                *(["--seconds", "3"] if args.smoke else []),
                *quiet,
                env=env,
            )
            epochs = len(json.loads(out.with_suffix(".history.json").read_text())["loss"])
            runs.append(
                {
                    "seed": seed,
                    "fit_seconds": fit_seconds(output),
                    "command_seconds": round(wall, 1),
                    "epochs": epochs,
                    **scores(out, test_dir),
                }
            )
            print("quick CNN within its budget:", runs[-1], flush=True)
        report["quick"] = {
            "command": f"catdog train quick --source SRC --per-class {args.per_class} --seed K",
            "runs": runs,
            "as_trained": spread([r["as_trained"] for r in runs]),
            "as_served": spread([r["as_served"] for r in runs]),
            "fit_seconds_max": max(r["fit_seconds"] for r in runs),
        }

    for name, extra in (("pretrained", []), ("fine-tune", ["--fine-tune"])):
        if name in args.skip:
            continue
        out = work / f"{name}.keras"
        output, wall = run(
            "train",
            "pretrained",
            "--source",
            str(kaggle),
            "--per-class",
            str(args.per_class),
            "--out",
            str(out),
            "--data-out",
            str(work / "pretrained"),
            *extra,
            *(["--epochs", "2"] if args.smoke else []),
            *quiet,
            env=env,
        )
        report[name] = {
            "command": f"catdog train pretrained --source SRC --per-class {args.per_class} {' '.join(extra)}",
            "command_seconds": round(wall, 1),
            "fit_seconds": fit_seconds(output),
            **scores(out, test_dir),
        }
        print(f"{name}:", report[name], flush=True)

    if "backbones" not in args.skip:
        report["backbones"] = compare_backbones(args, kaggle, work, test_dir, quiet, env)

    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(table(report))


if __name__ == "__main__":
    main()
