"""Benchmark: our quick CNN against the 2019 lab's network, and the pretrained heads, in one run.

Every figure is measured here and now on this machine: both CNNs train on the same lab photos and are
scored on the same Kaggle photos that neither saw. Each training runs in its own process so that its
wall time and peak memory (RSS) are its own.

    python benchmarks/training.py                 # full run (~6 min on 2 cores)
    python benchmarks/training.py --smoke         # seconds: proves the script works (CI)

Sources default to ../shared (CATDOG_SHARED); CATDOG_WEIGHTS_DIR points at MobileNet's weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CATDOG_SHARED") or REPO.parent / "shared")
LAB_SOURCE = SHARED / "datasets" / "ocp-lab"
KAGGLE_SOURCE = SHARED / "datasets" / "kaggle-dev"
WEIGHTS_DIR = Path(os.environ.get("CATDOG_WEIGHTS_DIR") or SHARED / "models" / "imagenet")


def worker(args: argparse.Namespace) -> None:
    """In a child process: train one network, score it on the unseen photos, print one JSON line."""
    from catdog import models, training
    from catdog.data import load_split

    started = time.perf_counter()
    result = training.train_cnn(args.lab, args.out, arch=args.arch, epochs=args.epochs, seed=args.seed, verbose=0)
    wall = time.perf_counter() - started
    model = models.load_model(args.out)
    images, labels = load_split(args.unseen, "validation", models.input_size(model))
    print(json.dumps({
        "arch": args.arch, "seed": args.seed, "fit_seconds": result.seconds, "wall_seconds": wall,
        "epochs": len(result.history["loss"]), "validation_accuracy": result.validation_accuracy,
        "unseen_accuracy": training.accuracy(model, images, labels), "unseen_images": len(labels),
    }))


def run_worker(arch: str, seed: int, epochs: int | None, lab: Path, unseen: Path, out: Path) -> dict:
    command = [sys.executable, __file__, "--worker", "--arch", arch, "--seed", str(seed),
               "--lab", str(lab), "--unseen", str(unseen), "--out", str(out)]
    if epochs:
        command += ["--epochs", str(epochs)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{arch} seed {seed} failed (status {status})")
    record = json.loads(stdout.strip().splitlines()[-1])
    record["peak_rss_mib"] = usage.ru_maxrss / 1024
    return record


def pretrained_figures(data: Path, unseen: Path, work: Path) -> dict:
    from catdog import models, training
    from catdog.data import load_split, read_manifest

    trained = training.train_pretrained(data, work / "pretrained.keras", weights_dir=WEIGHTS_DIR, verbose=0, progress=False)
    zero_shot, _ = training.build_zero_shot_model(work / "zero.keras", weights_dir=WEIGHTS_DIR)
    images, labels = load_split(unseen, "validation", models.PRETRAINED_IMAGE_SIZE)
    return {
        "head_training_images": sum(row["split"] == "training" for row in read_manifest(data)),
        "head_train_seconds": trained.seconds,
        "trained_head_unseen_accuracy": training.accuracy(models.load_model(trained.model_path), images, labels),
        "zero_shot_unseen_accuracy": training.accuracy(models.load_model(zero_shot), images, labels),
        "unseen_images": len(labels),
    }


def unseen_set(kaggle: Path, per_class: int, exclude: set[str], work: Path) -> Path:
    """Kaggle photos none of the trained models saw: disjoint by content from every training set."""
    import hashlib
    import random

    out = work / "unseen" / "validation"
    for label in ("cat", "dog"):
        (out / label).mkdir(parents=True)
        photos = sorted((kaggle / label).glob("*.jpg"))
        random.Random(99).shuffle(photos)
        fresh = [p for p in photos if hashlib.sha256(p.read_bytes()).hexdigest() not in exclude]
        for photo in fresh[:per_class]:
            (out / label / photo.name).symlink_to(photo.resolve())
    return out.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    parser.add_argument("--seeds", type=int, default=3, help="quick CNN runs (different seeds)")
    parser.add_argument("--original-seeds", type=int, default=1, help="original CNN runs (~4 min each)")
    parser.add_argument("--unseen-per-class", type=int, default=250)
    parser.add_argument("--pretrained-per-class", type=int, default=300)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--arch", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lab", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--unseen", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from catdog.data import prepare, read_manifest

    epochs = 1 if args.smoke else None
    seeds, original_seeds = (1, 1) if args.smoke else (args.seeds, args.original_seeds)
    unseen_per_class = 10 if args.smoke else args.unseen_per_class
    pretrained_per_class = 10 if args.smoke else args.pretrained_per_class
    with tempfile.TemporaryDirectory(prefix="catdog-bench-") as tmp:
        work = Path(tmp)
        lab = work / "lab"
        prepare(str(LAB_SOURCE), lab, 50, cache_dir=work / "cache", progress=False)
        exclude = {row["sha256"] for row in read_manifest(lab)}
        # Photos used by the pretrained head are excluded too, so "unseen" means unseen by every model.
        pretrained_data = work / "pretrained-data"
        prepare(str(KAGGLE_SOURCE), pretrained_data, pretrained_per_class, seed=2, cache_dir=work / "cache", progress=False)
        exclude |= {row["sha256"] for row in read_manifest(pretrained_data)}
        unseen = unseen_set(KAGGLE_SOURCE, unseen_per_class, exclude, work)
        runs = []
        for arch, count in (("original", original_seeds), ("quick", seeds)):
            for seed in range(1, count + 1):
                record = run_worker(arch, seed, epochs, lab, unseen, work / f"{arch}-{seed}.keras")
                runs.append(record)
                print(f"  {arch:<8} seed {seed}: fit {record['fit_seconds']:6.1f} s, peak RSS "
                      f"{record['peak_rss_mib']:5.0f} MiB, unseen accuracy {record['unseen_accuracy']:.3f}", flush=True)
        pretrained = pretrained_figures(pretrained_data, unseen, work)

    def mean(arch: str, key: str) -> float:
        values = [run[key] for run in runs if run["arch"] == arch]
        return sum(values) / len(values)

    summary = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": _versions(),
        "runs": runs,
        "fit_time_ratio_quick_over_original": mean("quick", "fit_seconds") / mean("original", "fit_seconds"),
        "wall_time_ratio_quick_over_original": mean("quick", "wall_seconds") / mean("original", "wall_seconds"),
        "unseen_accuracy": {arch: mean(arch, "unseen_accuracy") for arch in ("original", "quick")},
        "peak_rss_mib": {arch: mean(arch, "peak_rss_mib") for arch in ("original", "quick")},
        "pretrained": pretrained,
    }
    print()
    print("| figure | original (2019) | quick (ours) | ratio / target |")
    print("|---|---|---|---|")
    print(f"| training time, fit (s) | {mean('original', 'fit_seconds'):.1f} | {mean('quick', 'fit_seconds'):.1f} | "
          f"{summary['fit_time_ratio_quick_over_original']:.3f} (target <= 0.167) |")
    print(f"| training time, whole run incl. decoding (s) | {mean('original', 'wall_seconds'):.1f} | "
          f"{mean('quick', 'wall_seconds'):.1f} | {summary['wall_time_ratio_quick_over_original']:.3f} |")
    print(f"| peak RSS (MiB) | {mean('original', 'peak_rss_mib'):.0f} | {mean('quick', 'peak_rss_mib'):.0f} | |")
    print(f"| accuracy on {runs[0]['unseen_images']} unseen Kaggle photos | {mean('original', 'unseen_accuracy'):.3f} | "
          f"{mean('quick', 'unseen_accuracy'):.3f} | quick >= original |")
    print()
    print("| pretrained MobileNet 0.75 | accuracy on unseen photos | target |")
    print("|---|---|---|")
    print(f"| trained head ({pretrained['head_training_images']} photos, {pretrained['head_train_seconds']:.0f} s) | "
          f"{pretrained['trained_head_unseen_accuracy']:.3f} | >= 0.97 |")
    print(f"| zero-shot ImageNet head | {pretrained['zero_shot_unseen_accuracy']:.3f} | |")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    import catdog

    return {"catdog": catdog.__version__, "tensorflow": tf.__version__, "keras": keras.__version__}


if __name__ == "__main__":
    main()
