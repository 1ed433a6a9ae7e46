"""Options and helpers several verbs share: how a training verb samples its own photos, seeds, lists."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from catdog.config import Settings


def add_sample(parser: argparse.ArgumentParser, source_help: str, per_class: int, folder: str) -> None:
    """--source, --per-class, --data-out and --exclude-from: a training verb that samples its own photos."""
    parser.add_argument("--source", metavar="SRC", help=source_help)
    parser.add_argument(
        "--per-class",
        type=int,
        default=per_class,
        metavar="N",
        help=f"photos of each class to sample (default {per_class})",
    )
    parser.add_argument("--data-out", type=Path, help=f"where the sample goes (default: data/{folder})")
    add_exclude(parser)


def sample(args: argparse.Namespace, settings: Settings, source: str, data_dir: Path) -> None:
    """Prepare ``args.per_class`` photos of each class from ``source`` into ``data_dir`` and say what was kept."""
    from catdog.data import prepare_with

    report = prepare_with(
        settings,
        source,
        data_dir,
        args.per_class,
        seed=args.seed,
        progress=not args.no_progress,
        exclude=manifest_hashes(args.exclude_from),
    )
    print(report.summary())


def add_exclude(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--exclude-from",
        type=Path,
        action="append",
        metavar="DIR",
        help="never pick photos listed in DIR/manifest.csv (e.g. another split's photos); repeatable",
    )


def manifest_hashes(folders: list[Path] | None) -> set[str]:
    """sha256s of every photo in the manifests of prepared folders (--exclude-from)."""
    from catdog.data import read_manifest

    return {row["sha256"] for folder in folders or () for row in read_manifest(folder)}


def add_seed_and_progress(parser: argparse.ArgumentParser, progress: bool = True) -> None:
    parser.add_argument("--seed", type=int, default=1337, help="the same seed gives the same result (default 1337)")
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")


def numbers(kind: Callable[[str], int | float]) -> Callable[[str], list]:
    """A comma-separated list of numbers, as argparse's ``type``."""

    def parse(text: str) -> list:
        try:
            values = [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
        if not values or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: give one or more positive numbers")
        return values

    return parse


def shorten(text: str, width: int) -> str:
    """The end of ``text`` in ``width`` characters (a path's file name is at its end)."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def log_to_stderr() -> None:
    """A service's log lines, timestamped, on standard error (the pod's log)."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
