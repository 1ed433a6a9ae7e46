"""Accuracy on unseen Kaggle photos for what a user runs: the lab's 80-photo quick CNN, the quick CNN in one
command within its time budget (`catdog train quick --source`), and the pretrained MobileNet with a frozen
backbone and fine-tuned (`catdog train pretrained [--fine-tune]`).

Every model is trained by the CLI command a user types, in a subprocess, and scored on the same test photos,
sampled first and excluded from every training sample (--exclude-from). Each quick run is scored twice: on
photos decoded at its own input size (as it trained) and as the service and `catdog predict` prepare them.

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
        f"unseen Kaggle photos: {report['test_photos']}; training photos per class: {report['per_class']}",
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
        ("pretrained", "MobileNet, frozen + head"),
        ("fine-tune", "MobileNet, last two blocks fine-tuned"),
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
    return "\n".join(lines)


def compare_backbones(args, kaggle: Path, work: Path, test_dir: Path, exclude: list[str], env: dict) -> dict:
    """Each backbone's frozen features with a trained head, over --backbone-seeds seeds (each its own
    sample of training photos), on the same unseen photos: the mean, the spread, every seed (issue 43)."""
    found = {}
    for backbone in ("mobilenet", "mobilenet_v2"):
        runs = []
        for seed in range(1, args.backbone_seeds + 1):
            out = work / f"{backbone}-{seed}.keras"
            output, wall = run(
                "train", "pretrained", "--source", str(kaggle), "--per-class", str(args.per_class),
                "--seed", str(seed), "--backbone", backbone, "--out", str(out),
                "--data-out", str(work / f"{backbone}-{seed}"),
                *(["--epochs", "2"] if args.smoke else []), *exclude, env=env,
            )  # fmt: skip
            runs.append({"seed": seed, "fit_seconds": fit_seconds(output), "command_seconds": round(wall, 1),
                         **scores(out, test_dir)})  # fmt: skip
            print(f"{backbone} (seed {seed}):", runs[-1], flush=True)
        found[backbone] = {"runs": runs, "as_served": spread([r["as_served"] for r in runs])}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--per-class",
        type=int,
        default=750,
        help="training photos of each class (default 750: "
        "../shared's Kaggle set has 1000 cats and 997 dogs, so 250 of each stay unseen)",
    )
    parser.add_argument("--test-per-class", type=int, default=250)
    parser.add_argument("--seeds", type=int, default=5, help="quick runs, each its own seed and photos")
    parser.add_argument("--backbone-seeds", type=int, default=3, help="pretrained runs of each backbone")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=("lab", "quick", "pretrained", "fine-tune", "backbones")
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, not the figures")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.smoke:
        args.per_class, args.test_per_class, args.seeds, args.backbone_seeds = 12, 6, 2, 1
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
    from catdog import experiments

    test_dir = experiments.prepare_test_set(str(kaggle), work, args.test_per_class, cache_dir=work / "cache")
    exclude = ["--exclude-from", str(test_dir), "--no-progress"]
    report: dict = {
        "cpus": os.cpu_count(),
        "per_class": args.per_class,
        "test_photos": 2 * args.test_per_class,
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
                *exclude,
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
            *exclude,
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
        report["backbones"] = compare_backbones(args, kaggle, work, test_dir, exclude, env)

    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(table(report))


if __name__ == "__main__":
    main()
