"""``catdog data prepare``: sample the photos the lab trains on."""

from __future__ import annotations

import argparse
from pathlib import Path

from catdog.cli.options import add_exclude, add_seed_and_progress, manifest_hashes
from catdog.config import Settings

DEFAULT_LAB_PER_CLASS = 50  # the 2019 lab's size: 40 + 10 photos of each class


def register(verbs) -> None:
    data = verbs.add_parser("data", help="prepare the photos the models train on")
    actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    prep = actions.add_parser(
        "prepare",
        help="sample cats and dogs into data/training and data/validation",
        description="Sample N photos of each class from SRC, check that every one decodes, and write "
        "data/training/{cat,dog}/, data/validation/{cat,dog}/ and manifest.csv. Unusable and duplicate "
        "files are skipped and listed in skipped.csv.",
    )
    prep.add_argument(
        "--source",
        metavar="SRC",
        help="folder (cat/ dog/, Cat/ Dog/ or cat.1.jpg names), "
        "zip/tar archive, or http(s) URL to one (default: $CATDOG_DATA_SOURCE, else Microsoft's PetImages)",
    )
    prep.add_argument(
        "--per-class",
        type=int,
        default=DEFAULT_LAB_PER_CLASS,
        metavar="N",
        help=f"photos of each class (default {DEFAULT_LAB_PER_CLASS}, the original lab's size)",
    )
    prep.add_argument(
        "--validation-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="share of each class kept for validation (default 0.2)",
    )
    prep.add_argument("--out", type=Path, help="output folder (default: $CATDOG_DATA_DIR or data)")
    add_exclude(prep)
    prep.add_argument(
        "--reserved",
        action="store_true",
        help="only the reserved photos (catdog/reserved.csv: 250 cats and 250 dogs of the Kaggle set, which "
        "no training step reads), to score a model on; without it they are never picked",
    )
    add_seed_and_progress(prep)
    prep.set_defaults(run=prepare)


def prepare(args: argparse.Namespace, settings: Settings) -> int:
    from catdog.data import prepare_with

    report = prepare_with(
        settings,
        args.source or settings.data_source,
        args.out or settings.data_dir,
        args.per_class,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
        progress=not args.no_progress,
        exclude=manifest_hashes(args.exclude_from),
        reserved=args.reserved,
    )
    print(report.summary())
    return 0
