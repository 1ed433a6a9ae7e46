"""Experiments: a grid of quick-CNN trainings, each scored on the same photos none of them saw.

One trial = one sample of photos, one input size, one training time budget, one seed. The grid runs
every combination and returns plain rows (dicts): save them as CSV, plot them, or run a larger grid as a
cluster Job (`catdog experiment`). Each seed draws its own photos and its own initial weights, so the
spread over seeds is what a learner would see when running the lab again.
"""

from __future__ import annotations

import csv
import itertools
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from catdog.data import load_split, prepare, read_manifest

# The notebook's default grid (about 6 minutes on 2 cores): 80, 400 and 1600 training photos, the input
# size the time budget trains at and the lab's own (RESULTS.md, "Quick model"), two budgets for the cost curve.
GRID_PER_CLASS = (40, 200, 800)
GRID_IMAGE_SIZES = (40, 128)
GRID_SECONDS = (5.0, 20.0)
GRID_SEEDS = (1, 2)
TEST_PER_CLASS = 150
TEST_SEED = 2026
# The sample's own validation split is trained on too: the test photos do the scoring.
SPLITS = ("training", "validation")
ROW_FIELDS = (
    "per_class",
    "photos",
    "image_size",
    "seconds",
    "seed",
    "epochs",
    "fit_seconds",
    "test_photos",
    "test_accuracy",
)
KNOBS = ("per_class", "image_size", "seconds")


def _hashes(folder: Path) -> set[str]:
    return {row["sha256"] for row in read_manifest(folder)}


def _load(folder: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    parts = [load_split(folder, split, size) for split in SPLITS]
    return np.concatenate([images for images, _ in parts]), np.concatenate([labels for _, labels in parts])


def prepare_test_set(
    source: str, work_dir: Path, per_class: int = TEST_PER_CLASS, *, exclude: Iterable[str] = (), cache_dir: Path
) -> Path:
    """The grid's unseen photos: ``per_class`` of each class from ``source``, none of ``exclude``.

    Always the same photos for the same source and exclusions (a fixed seed), so a trial run later, or
    the lab's own model, is scored on exactly the photos the grid was.
    """
    test_dir = Path(work_dir) / "test"
    prepare(source, test_dir, per_class, seed=TEST_SEED, cache_dir=cache_dir, exclude=exclude, progress=False)
    return test_dir


def score(model, test_dir: Path) -> float:
    """A model's accuracy on the test photos, decoded at the model's own input size."""
    from catdog import models, training

    images, labels = _load(test_dir, models.input_size(model))
    return training.accuracy(model, images, labels)  # in batches of 8: at 256, MobileNet took 2.3 GB more


def describe(row: dict) -> str:
    """One trial in one line, as the notebook prints them while the grid runs."""
    return (
        f"{row['photos']:>5} photos  {row['image_size']:>3} px  {row['seconds']:>4g} s  seed {row['seed']}:  "
        f"{row['epochs']:>3} epochs in {row['fit_seconds']:5.1f} s, unseen accuracy {row['test_accuracy']:.3f}"
    )


def run_grid(
    source: str,
    work_dir: Path,
    *,
    per_class: Iterable[int] = GRID_PER_CLASS,
    image_sizes: Iterable[int] = GRID_IMAGE_SIZES,
    seconds: Iterable[float] = GRID_SECONDS,
    seeds: Iterable[int] = GRID_SEEDS,
    test_per_class: int = TEST_PER_CLASS,
    exclude: Iterable[str] = (),
    cache_dir: Path,
    progress: bool = True,
    on_row: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train the quick CNN on every combination and score each on one shared set of unseen photos.

    The test photos are sampled first from ``source``, none of ``exclude`` (e.g. the photos the lab's own
    models trained on, so they can be scored on it too); every training sample then leaves the test photos
    out by sha256, so no trial ever trains on a photo it is scored on. ``on_row`` sees each row as it is
    made (e.g. to save a CSV as the grid goes).
    """
    import keras  # TensorFlow loads only when a grid runs, not for `catdog --help`

    from catdog import training

    work_dir = Path(work_dir)
    test_dir = prepare_test_set(source, work_dir, test_per_class, exclude=exclude, cache_dir=cache_dir)
    test_photos = _hashes(test_dir)
    per_class, image_sizes, seconds, seeds = list(per_class), list(image_sizes), list(seconds), list(seeds)
    tests = {size: _load(test_dir, size) for size in image_sizes}
    rows: list[dict] = []
    bar = tqdm(
        total=len(per_class) * len(seeds) * len(image_sizes) * len(seconds),
        desc="experiments",
        unit="trial",
        disable=not progress,
    )
    for n, seed in itertools.product(per_class, seeds):
        sample = work_dir / f"sample-{n}-seed{seed}"  # each seed draws its own photos
        prepare(source, sample, n, seed=seed, cache_dir=cache_dir, exclude=test_photos, progress=False)
        for size in image_sizes:
            images, labels = _load(sample, size)
            for budget in seconds:
                bar.set_postfix_str(f"{len(images)} photos, {size} px, {budget:g} s, seed {seed}")
                model, history, fit_seconds = training.fit_cnn(images, labels, seconds=budget, seed=seed)
                test_images, test_labels = tests[size]
                row = {
                    "per_class": n,
                    "photos": len(images),
                    "image_size": size,
                    "seconds": budget,
                    "seed": seed,
                    "epochs": len(history["loss"]),
                    "fit_seconds": round(fit_seconds, 2),
                    "test_photos": len(test_images),
                    "test_accuracy": round(training.accuracy(model, test_images, test_labels), 4),
                }
                del model
                keras.backend.clear_session()  # each trial's model and traced functions would pile up otherwise
                rows.append(row)
                bar.update()
                if on_row is not None:
                    on_row(row)
    bar.close()
    return rows


def summarize(rows: list[dict], knobs: Iterable[str] = KNOBS) -> list[dict]:
    """One row per combination of ``knobs``: mean and spread (sample standard deviation) over seeds."""
    knobs = tuple(knobs)
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in knobs), []).append(row)
    summary = []
    for key, group in sorted(groups.items()):
        accuracies = [float(r["test_accuracy"]) for r in group]
        summary.append(
            {
                **dict(zip(knobs, key)),
                "photos": round(statistics.mean(int(r["photos"]) for r in group)),
                "runs": len(group),
                "accuracy": round(statistics.mean(accuracies), 4),
                "spread": round(statistics.stdev(accuracies), 4) if len(group) > 1 else 0.0,
                "fit_seconds": round(statistics.mean(float(r["fit_seconds"]) for r in group), 1),
                "epochs": round(statistics.mean(int(r["epochs"]) for r in group)),
            }
        )
    return summary


def markdown_table(summary: list[dict]) -> str:
    """The summary as a Markdown table, best accuracy first: what the notebook shows."""
    lines = ["| photos | input | budget | epochs | unseen accuracy |", "|---:|---:|---:|---:|---|"]
    for row in sorted(summary, key=lambda r: -r["accuracy"]):
        lines.append(
            f"| {row['photos']} | {row['image_size']} px | {row['seconds']:g} s | {row['epochs']} | "
            f"**{row['accuracy']:.3f}** ± {row['spread']:.3f} ({row['runs']} seeds) |"
        )
    return "\n".join(lines)


def save_rows(rows: list[dict], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_rows(path: Path) -> list[dict]:
    """Rows saved by :func:`save_rows`, with their numbers back as numbers."""
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    types = {"seconds": float, "fit_seconds": float, "test_accuracy": float}
    return [{key: types.get(key, int)(value) for key, value in row.items()} for row in rows]
