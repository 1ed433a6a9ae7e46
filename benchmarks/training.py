"""Benchmark: our quick CNN against the 2019 lab's network, and the pretrained heads, in one run.

Every figure is measured here and now on this machine: both CNNs train on the same lab photos, each with
its own augmentation (the original with the 2019 notebook's shear, zoom and flip), over the same seeds,
and are scored on the same Kaggle photos that neither saw. Each training runs in its own process so
that its wall time and peak memory (RSS) are its own. Then the quick CNN's training as a learner sees it:
notebook 01's own cells in a Jupyter kernel (live curves redrawn every epoch) against `catdog train quick`.

    python benchmarks/training.py                 # full run (~6 min on 2 cores)
    python benchmarks/training.py --smoke         # seconds: proves the script works (CI)

Sources default to ../shared (CATDOG_SHARED); CATDOG_WEIGHTS_DIR points at MobileNet's weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
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
    from catdog.data import image_files, load_split

    started = time.perf_counter()
    result = training.train_cnn(args.lab, args.out, arch=args.arch, epochs=args.epochs, seed=args.seed, verbose=0)
    wall = time.perf_counter() - started
    model = models.load_model(args.out)
    images, labels = load_split(args.unseen, "validation", models.input_size(model))
    print(
        json.dumps(
            {
                "arch": args.arch,
                "seed": args.seed,
                "fit_seconds": result.seconds,
                "wall_seconds": wall,
                "epochs": len(result.history["loss"]),
                "validation_accuracy": result.validation_accuracy,
                "validation_accuracy_max": max(result.history["val_accuracy"]),
                "unseen_accuracy": training.accuracy(model, images, labels),
                "unseen_images": len(labels),
                "validation_images": len(image_files(args.lab, "validation")),
            }
        )
    )


def run_worker(arch: str, seed: int, epochs: int | None, lab: Path, unseen: Path, out: Path) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--arch",
        arch,
        "--seed",
        str(seed),
        "--lab",
        str(lab),
        "--unseen",
        str(unseen),
        "--out",
        str(out),
    ]
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
    from catdog import models, training, transfer
    from catdog.data import load_split, read_manifest

    trained = transfer.train_pretrained(
        data, work / "pretrained.keras", weights_dir=WEIGHTS_DIR, verbose=0, progress=False
    )
    zero_shot, _ = transfer.build_zero_shot_model(work / "zero.keras", weights_dir=WEIGHTS_DIR)
    figures = {
        "head_training_images": sum(row["split"] == "training" for row in read_manifest(data)),
        "head_train_seconds": trained.seconds,
    }
    for name, path in (("trained_head", trained.model_path), ("zero_shot", zero_shot)):
        model = models.load_model(path)  # each at its own size: MobileNetV2's 288 px, the zero-shot's 224
        images, labels = load_split(unseen, "validation", models.input_size(model))
        figures[f"{name}_unseen_accuracy"] = training.accuracy(model, images, labels)
    return figures | {"unseen_images": len(labels)}


def notebook_fit_seconds(work: Path, epochs: int | None) -> float:
    """Notebook 01's own cells, up to its quick-CNN cell, run by a Jupyter kernel as JupyterLab runs them
    (inline figures, the live curves redrawn after every epoch); the seconds the notebook reports."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(REPO / "notebooks" / "01-cat-dog-lab.ipynb", as_version=4)
    last = next(i for i, cell in enumerate(notebook.cells) if "training.train_cnn(" in cell.source)
    notebook.cells = notebook.cells[: last + 1]
    env = {
        "CATDOG_DATA_SOURCE": str(LAB_SOURCE),
        "CATDOG_DATA_DIR": str(work / "data"),
        "CATDOG_MODELS_DIR": str(work / "models"),
        "CATDOG_CACHE_DIR": str(work / "cache"),
        **({"CATDOG_LAB_EPOCHS": str(epochs)} if epochs else {}),
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits them, as from `make lab`
    try:
        NotebookClient(
            notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}}
        ).execute()
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    text = "".join(output.get("text", "") for output in notebook.cells[last].outputs)
    return float(re.search(r"trained in ([\d.]+) s", text).group(1))


def cli_fit_seconds(data: Path, out: Path, epochs: int | None) -> float:
    """`catdog train quick` on the same prepared photos; the seconds it reports."""
    command = [str(Path(sys.executable).parent / "catdog"), "train", "quick", "--data", str(data), "--out", str(out)]
    if epochs:
        command += ["--epochs", str(epochs)]
    result = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    )
    return float(re.search(r"Trained the quick CNN in ([\d.]+) s", result.stdout).group(1))


def notebook_vs_cli(work: Path, rounds: int, epochs: int | None) -> dict:
    """Alternating rounds (notebook, then CLI) on the same photos, each in its own process."""
    notebook, cli = [], []
    for round_ in range(rounds):
        folder = work / f"notebook-{round_}"
        notebook.append(notebook_fit_seconds(folder, epochs))
        cli.append(cli_fit_seconds(folder / "data", work / f"cli-{round_}.keras", epochs))
        print(f"  quick CNN fit, round {round_ + 1}: notebook {notebook[-1]:.1f} s, CLI {cli[-1]:.1f} s", flush=True)
    return {
        "notebook_fit_seconds": notebook,
        "cli_fit_seconds": cli,
        "ratio_notebook_over_cli": statistics.mean(notebook) / statistics.mean(cli),
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
    parser.add_argument("--original-seeds", type=int, default=3, help="original CNN runs (~2.5 min each)")
    parser.add_argument("--notebook-rounds", type=int, default=2, help="notebook-vs-CLI training rounds")
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
        prepare(str(LAB_SOURCE), lab, 10 if args.smoke else 50, cache_dir=work / "cache", progress=False)
        exclude = {row["sha256"] for row in read_manifest(lab)}
        # Photos used by the pretrained head are excluded too, so "unseen" means unseen by every model.
        pretrained_data = work / "pretrained-data"
        prepare(
            str(KAGGLE_SOURCE), pretrained_data, pretrained_per_class, seed=2, cache_dir=work / "cache", progress=False
        )
        exclude |= {row["sha256"] for row in read_manifest(pretrained_data)}
        unseen = unseen_set(KAGGLE_SOURCE, unseen_per_class, exclude, work)
        runs = []
        for arch, count in (("original", original_seeds), ("quick", seeds)):
            for seed in range(1, count + 1):
                record = run_worker(arch, seed, epochs, lab, unseen, work / f"{arch}-{seed}.keras")
                runs.append(record)
                print(
                    f"  {arch:<8} seed {seed}: fit {record['fit_seconds']:6.1f} s, peak RSS "
                    f"{record['peak_rss_mib']:5.0f} MiB, unseen accuracy {record['unseen_accuracy']:.3f}",
                    flush=True,
                )
        pretrained = pretrained_figures(pretrained_data, unseen, work)
        learner = notebook_vs_cli(work, 1 if args.smoke else args.notebook_rounds, epochs)

    def values(arch: str, key: str) -> list[float]:
        return [run[key] for run in runs if run["arch"] == arch]

    def mean(arch: str, key: str) -> float:
        return statistics.mean(values(arch, key))

    def spread(arch: str, key: str, digits: int = 3) -> str:
        """Mean, then the standard deviation and range over seeds: how far one run may be from another."""
        seen = values(arch, key)
        deviation = statistics.stdev(seen) if len(seen) > 1 else 0.0
        return (
            f"{statistics.mean(seen):.{digits}f} ± {deviation:.{digits}f} "
            f"({min(seen):.{digits}f}–{max(seen):.{digits}f}, {len(seen)} seeds)"
        )

    summary = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": _versions(),
        "runs": runs,
        "fit_time_ratio_quick_over_original": mean("quick", "fit_seconds") / mean("original", "fit_seconds"),
        "wall_time_ratio_quick_over_original": mean("quick", "wall_seconds") / mean("original", "wall_seconds"),
        "unseen_accuracy": {arch: mean(arch, "unseen_accuracy") for arch in ("original", "quick")},
        "unseen_accuracy_by_seed": {arch: values(arch, "unseen_accuracy") for arch in ("original", "quick")},
        "peak_rss_mib": {arch: mean(arch, "peak_rss_mib") for arch in ("original", "quick")},
        "pretrained": pretrained,
        "notebook_vs_cli": learner,
    }
    print()
    print("| figure | original (2019) | quick (ours) | ratio / target |")
    print("|---|---|---|---|")
    print(
        f"| training time, fit (s) | {spread('original', 'fit_seconds', 1)} | {spread('quick', 'fit_seconds', 1)} | "
        f"{summary['fit_time_ratio_quick_over_original']:.3f} (target <= 0.167) |"
    )
    print(
        f"| training time, whole run incl. decoding (s) | {mean('original', 'wall_seconds'):.1f} | "
        f"{mean('quick', 'wall_seconds'):.1f} | {summary['wall_time_ratio_quick_over_original']:.3f} |"
    )
    print(f"| peak RSS (MiB) | {mean('original', 'peak_rss_mib'):.0f} | {mean('quick', 'peak_rss_mib'):.0f} | |")
    print(
        f"| validation accuracy, best epoch ({runs[0]['validation_images']} lab photos) | "
        f"{spread('original', 'validation_accuracy_max')} | {spread('quick', 'validation_accuracy_max')} | |"
    )
    print(
        f"| accuracy on {runs[0]['unseen_images']} unseen Kaggle photos | {spread('original', 'unseen_accuracy')} | "
        f"{spread('quick', 'unseen_accuracy')} | "
        f"{'quick' if mean('quick', 'unseen_accuracy') >= mean('original', 'unseen_accuracy') else 'original'} higher |"
    )
    print()
    print(
        "| quick CNN training as a learner runs it | notebook 01 (kernel, live curves) | `catdog train quick` | ratio |"
    )
    print("|---|---|---|---|")
    print(
        f"| fit seconds, {len(learner['cli_fit_seconds'])} alternating rounds | "
        f"{', '.join(f'{v:.1f}' for v in learner['notebook_fit_seconds'])} | "
        f"{', '.join(f'{v:.1f}' for v in learner['cli_fit_seconds'])} | {learner['ratio_notebook_over_cli']:.2f} |"
    )
    print()
    print("| pretrained MobileNet 0.75 | accuracy on unseen photos | target |")
    print("|---|---|---|")
    print(
        f"| trained head ({pretrained['head_training_images']} photos, {pretrained['head_train_seconds']:.0f} s) | "
        f"{pretrained['trained_head_unseen_accuracy']:.3f} | >= 0.97 |"
    )
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
