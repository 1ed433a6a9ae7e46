"""``catdog experiment``: the quick CNN over a grid of photos, input sizes and time budgets."""

from __future__ import annotations

import argparse
from pathlib import Path

from catdog.cli.options import add_exclude, manifest_hashes, numbers
from catdog.config import Settings


def grid_default(name: str) -> str:
    """A grid default from catdog.experiments, as the comma-separated text the option takes."""
    from catdog import experiments

    value = getattr(experiments, name)
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else str(value)


def register(verbs) -> None:
    experiment = verbs.add_parser(
        "experiment",
        help="train the quick CNN over a grid of photos, input sizes and time budgets",
        description="Sample a test set from SRC, then train the quick CNN on every combination of photos per "
        "class, input size, time budget and seed (each seed its own photos), never on a test photo (sha256). "
        "Prints the mean unseen accuracy and spread per combination; writes every run to results.csv and "
        "the learning and cost curves to results.png.",
    )
    experiment.add_argument(
        "--source",
        metavar="SRC",
        help="photos to sample from, as for `data prepare` (default: $CATDOG_EVAL_SOURCE, else the data source)",
    )
    experiment.add_argument(
        "--per-class",
        type=numbers(int),
        default=grid_default("GRID_PER_CLASS"),
        metavar="N,N",
        help="training photos of each class, comma-separated (default %(default)s)",
    )
    experiment.add_argument(
        "--image-sizes",
        type=numbers(int),
        default=grid_default("GRID_IMAGE_SIZES"),
        metavar="PX,PX",
        help="input sizes in pixels (default %(default)s)",
    )
    experiment.add_argument(
        "--seconds",
        type=numbers(float),
        default=grid_default("GRID_SECONDS"),
        metavar="S,S",
        help="training time budgets (default %(default)s)",
    )
    experiment.add_argument(
        "--seeds",
        type=numbers(int),
        default=grid_default("GRID_SEEDS"),
        metavar="K,K",
        help="seeds: each draws its own photos and weights (default %(default)s)",
    )
    experiment.add_argument(
        "--test-per-class",
        type=int,
        default=grid_default("TEST_PER_CLASS"),
        metavar="N",
        help="unseen test photos of each class (default %(default)s)",
    )
    experiment.add_argument(
        "--out", type=Path, help="working folder for samples, results.csv and results.png (default: data/experiments)"
    )
    add_exclude(experiment)
    experiment.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    experiment.set_defaults(run=run_experiment)


def run_experiment(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import experiments, plots

    work = args.out or settings.data_dir / "experiments"
    csv_path, done = work / "results.csv", []

    def save(row: dict) -> None:  # as the grid goes: a long grid stopped early keeps the rows it made
        done.append(row)
        experiments.save_rows(done, csv_path)

    rows = experiments.run_grid(
        args.source or settings.eval_source,
        work,
        per_class=args.per_class,
        image_sizes=args.image_sizes,
        seconds=args.seconds,
        seeds=args.seeds,
        test_per_class=args.test_per_class,
        exclude=manifest_hashes(args.exclude_from),
        cache_dir=settings.cache_dir,
        progress=not args.no_progress,
        on_row=save,
    )
    summary = experiments.summarize(rows)
    chart = plots.save_figure(plots.plot_experiments(summary), work / "results.png")
    print(experiments.markdown_table(summary))
    print(f"  rows    {experiments.save_rows(rows, csv_path)}\n  curves  {chart}")
    return 0
