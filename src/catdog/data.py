"""Lab data: sample cats and dogs from a source (catdog.sources) into the layout the lab trains on.

``data/training/{cat,dog}/`` and ``data/validation/{cat,dog}/`` (the 2019 lab's layout), plus
``manifest.csv`` (one row per kept image) and ``skipped.csv`` (every sampled file that was not usable,
with the reason). Sampling is deterministic for a seed, and every kept image has been fully decoded.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import importlib.resources
import io
import os
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from catdog import CLASS_NAMES
from catdog.config import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS
from catdog.images import ImageError, decode_image
from catdog.sources import DataError, ImageSource, is_candidate, label_for, open_source

if TYPE_CHECKING:
    from catdog.config import Settings


SPLITS = ("training", "validation")
MANIFEST_NAME = "manifest.csv"
SKIPPED_NAME = "skipped.csv"
MANIFEST_FIELDS = ("file", "split", "class", "sha256", "width", "height", "source")
# Thumbnails this small carry no signal at model resolution (Kaggle has a few).
MIN_SIDE = 32
EXCLUDED = "a photo the caller excluded (e.g. one a model trained on)"
# The photos every figure of accuracy is scored on, which no training step reads: 250 cats and 250 dogs of
# ../shared's kaggle-dev, fixed by name (each class's first 250 in the order of their file names' sha256),
# listed with their bytes' sha256 so that the same photo under another name (Microsoft's PetImages numbers
# them differently) stays out too. ``prepare`` skips them as "reserved" unless asked for them alone.
RESERVED_NAME = "reserved.csv"
RESERVED_PER_CLASS = 250
RESERVED = "one of catdog's reserved photos (catdog/reserved.csv): scored on, never trained on"


@dataclass(frozen=True)
class Kept:
    name: str
    label: str
    data: bytes
    sha256: str
    width: int
    height: int


@dataclass
class PrepareReport:
    """What ``prepare`` did: images kept per split and class, and files skipped per reason."""

    out: Path
    source: str
    counts: Counter = field(default_factory=Counter)  # (split, class) -> images
    skipped: Counter = field(default_factory=Counter)  # reason -> files
    unlabelled: int = 0
    short_classes: dict[str, int] = field(default_factory=dict)  # class -> images found, if < per_class

    def summary(self) -> str:
        lines = [f"Prepared {self.out} from {self.source}:"]
        for split in SPLITS:
            per_class = ", ".join(f"{self.counts[split, label]} {label}s" for label in CLASS_NAMES)
            lines.append(f"  {split:<10} {per_class}")
        if self.skipped:
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))
            kept_out = sum(self.skipped[reason] for reason in ("seen", "reserved"))
            unusable = sum(self.skipped.values()) - kept_out
            lines.append(
                f"  skipped    {unusable} unusable and {kept_out} kept-out files ({reasons}); see {SKIPPED_NAME}"
            )
        for label, found in self.short_classes.items():
            lines.append(f"  warning: only {found} usable {label} images in the source")
        return "\n".join(lines)


@functools.cache
def reserved_photos() -> dict[str, str]:
    """sha256 -> ``class/file`` of every reserved photo."""
    text = importlib.resources.files("catdog").joinpath(RESERVED_NAME).read_text()
    return {row["sha256"]: row["file"] for row in csv.DictReader(io.StringIO(text))}


def check_photo(name: str, label: str, data: bytes, limits: dict[str, int]) -> Kept:
    """A photo through the one decoder and the size floor: kept with its sha256 and size, or ImageError."""
    decoded = decode_image(data, **limits)
    if min(decoded.width, decoded.height) < MIN_SIDE:
        raise ImageError("too-small", f"{decoded.width}x{decoded.height} is smaller than {MIN_SIDE} px on a side")
    return Kept(name, label, data, hashlib.sha256(data).hexdigest(), decoded.width, decoded.height)


def _sample_class(
    source: ImageSource,
    names: list[str],
    label: str,
    wanted: int,
    limits: dict[str, int],
    seen: dict[str, str],
    skipped: list[tuple[str, str, str, str]],
    bar: tqdm,
) -> list[Kept]:
    """Walk ``names`` (already shuffled) in order, keeping the first ``wanted`` usable, distinct images."""
    kept: list[Kept] = []
    position = 0
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        while len(kept) < wanted and position < len(names):
            # Read a little more than needed so that a few unusable files rarely cost another pass.
            batch = names[position : position + min(500, (wanted - len(kept)) * 11 // 10 + 8)]
            position += len(batch)
            contents = source.read_many(batch, limits["max_bytes"])

            def check(name: str, contents: dict[str, bytes] = contents) -> Kept | ImageError:
                try:
                    return check_photo(name, label, contents.get(name, b""), limits)
                except ImageError as error:
                    return error

            for name, outcome in zip(batch, pool.map(check, batch), strict=True):
                if len(kept) == wanted:
                    break
                if isinstance(outcome, ImageError):
                    skipped.append((name, label, outcome.reason, str(outcome)))
                elif outcome.sha256 in seen:
                    reason = {EXCLUDED: "seen", RESERVED: "reserved"}.get(seen[outcome.sha256], "duplicate")
                    skipped.append((name, label, reason, f"same bytes as {seen[outcome.sha256]}"))
                else:
                    seen[outcome.sha256] = name
                    kept.append(outcome)
                    bar.update(1)
    return kept


def _unique_file_name(directory: Path, name: str) -> Path:
    base = PurePosixPath(name).name
    target = directory / base
    stem, suffix, n = Path(base).stem, Path(base).suffix, 1
    while target.exists():
        n += 1
        target = directory / f"{stem}-{n}{suffix}"
    return target


def prepare(
    source: str,
    out: Path,
    per_class: int,
    *,
    validation_fraction: float = 0.2,
    seed: int = 1337,
    cache_dir: Path,
    sha256: str | None = None,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    progress: bool = True,
    exclude: Iterable[str] = (),
    reserved: bool = False,
) -> PrepareReport:
    """Sample ``per_class`` usable images of each class from ``source`` and write them under ``out``.

    ``exclude`` holds sha256s of photos that must not be picked (e.g. every photo a model trained on,
    to build an evaluation set of photos it never saw); they are skipped as "seen". The reserved photos
    are never picked ("reserved"), unless ``reserved``: then only they are, by name (to score on).

    The previous ``training/``, ``validation/`` and manifests in ``out`` are replaced only once the new
    set is complete, so a failure leaves the old data as it was.
    """
    if per_class < 2:
        raise DataError(f"--per-class must be at least 2 (one training and one validation image), not {per_class}")
    if not 0.0 < validation_fraction < 1.0:
        raise DataError(f"--validation-fraction must be between 0 and 1, not {validation_fraction}")
    limits = {"max_bytes": max_bytes, "max_pixels": max_pixels}
    report = PrepareReport(out=out, source=source)
    skipped: list[tuple[str, str, str, str]] = []
    seen: dict[str, str] = {} if reserved else dict.fromkeys(reserved_photos(), RESERVED)
    seen.update(dict.fromkeys(exclude, EXCLUDED))
    rows: list[dict[str, object]] = []
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".prepare-", dir=out))
    try:
        with open_source(source, cache_dir, sha256) as images:
            skipped += getattr(images, "skipped", [])  # records a Kafka source could not use, and why
            by_class = _names_by_class(images, report)
            if reserved:
                wanted = set(reserved_photos().values())
                by_class = {label: [n for n in names if f"{label}/{PurePosixPath(n).name}" in wanted]
                            for label, names in by_class.items()}  # fmt: skip
            rng = random.Random(seed)
            with tqdm(total=per_class * len(CLASS_NAMES), desc="images", unit="img", disable=not progress) as bar:
                for label in CLASS_NAMES:
                    names = sorted(by_class[label])
                    rng.shuffle(names)
                    kept = _sample_class(images, names, label, per_class, limits, seen, skipped, bar)
                    _check_enough(kept, label, images.description, skipped)
                    if len(kept) < per_class:
                        report.short_classes[label] = len(kept)
                    rows += _write_class(kept, staging, validation_fraction, report)
        _write_manifests(staging, rows, skipped)
        _replace_prepared(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.skipped.update(reason for _, _, reason, _ in skipped)
    return report


def prepare_with(settings: Settings, source: str, out: Path, per_class: int, **options) -> PrepareReport:
    """:func:`prepare` with the settings every caller shares: the download cache, the archive's expected
    sha256 and the image size limits. ``options`` are prepare's own (seed, exclude, progress, …)."""
    return prepare(
        source,
        out,
        per_class,
        cache_dir=settings.cache_dir,
        sha256=settings.data_sha256,
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        **options,
    )


def _names_by_class(images: ImageSource, report: PrepareReport) -> dict[str, list[str]]:
    """The source's files by the class their path says; those it says none of are counted in ``report``."""
    by_class: dict[str, list[str]] = {label: [] for label in CLASS_NAMES}
    for name in images.names():
        label = label_for(name)
        if label is None:
            report.unlabelled += 1
        else:
            by_class[label].append(name)
    if not any(by_class.values()):
        raise DataError(
            f"found no cat or dog images in {images.description}: expected cat/ and dog/ folders "
            "(any case) or files named like cat.123.jpg"
        )
    return by_class


def _check_enough(kept: list[Kept], label: str, description: str, skipped: list[tuple[str, str, str, str]]) -> None:
    """Two photos of a class at least (one to train on, one to validate); else say why there are fewer."""
    if len(kept) >= 2:
        return
    excluded = sum(1 for _, _, reason, _ in skipped if reason == "seen")
    hint = (
        f" once {excluded} photos already used elsewhere are left out: choose a larger source"
        " (for notebook 02, CATDOG_EVAL_SOURCE)"
        if excluded
        else ""
    )
    raise DataError(f"{description} has {len(kept)} usable {label} images{hint}; at least 2 are needed")


def _write_class(
    kept: list[Kept], staging: Path, validation_fraction: float, report: PrepareReport
) -> list[dict[str, object]]:
    """One class's photos into ``staging``'s splits (the first share to validation); their manifest rows."""
    rows = []
    n_validation = min(len(kept) - 1, max(1, round(len(kept) * validation_fraction)))
    for index, image in enumerate(kept):
        split = "validation" if index < n_validation else "training"
        directory = staging / split / image.label
        directory.mkdir(parents=True, exist_ok=True)
        target = _unique_file_name(directory, image.name)
        target.write_bytes(image.data)
        report.counts[split, image.label] += 1
        rows.append(
            {
                "file": target.relative_to(staging).as_posix(),
                "split": split,
                "class": image.label,
                "sha256": image.sha256,
                "width": image.width,
                "height": image.height,
                "source": image.name,
            }
        )
    return rows


def _write_manifests(staging: Path, rows: list[dict[str, object]], skipped: list[tuple[str, str, str, str]]) -> None:
    rows.sort(key=lambda row: str(row["file"]))
    with open(staging / MANIFEST_NAME, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    with open(staging / SKIPPED_NAME, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(("source", "class", "reason", "detail"))
        writer.writerows(skipped)


def _replace_prepared(staging: Path, out: Path) -> None:
    """The new splits and manifests take the old ones' places, only now that all of them are written."""
    for name in (*SPLITS, MANIFEST_NAME, SKIPPED_NAME):
        old = out / name
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
        (staging / name).replace(old)


def hashes_in(*folders: Path) -> set[str]:
    """The sha256 of every photo these folders' manifests list (a folder not prepared yet lists none): the
    photos a model trained on, which an evaluation must leave out."""
    return {row["sha256"] for folder in folders if (folder / MANIFEST_NAME).exists() for row in read_manifest(folder)}


def read_manifest(data_dir: Path) -> list[dict[str, str]]:
    path = data_dir / MANIFEST_NAME
    if not path.exists():
        raise DataError(f"{path} does not exist: run `catdog data prepare` first")
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def expand_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Files as given; folders walked for image files, in sorted order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and is_candidate(p.name))
        else:
            yield path


def image_files(data_dir: Path, split: str) -> list[tuple[Path, int]]:
    """(path, class index) for every image of a split, in a stable order."""
    files = []
    for index, label in enumerate(CLASS_NAMES):
        folder = data_dir / split / label
        if folder.is_dir():
            files += [(path, index) for path in sorted(folder.iterdir()) if is_candidate(path.name)]
    if not files:
        raise DataError(f"no images in {data_dir / split}/{{cat,dog}}: run `catdog data prepare` first")
    return files


def load_arrays(paths: list[Path], size: int, *, progress: bool = False, desc: str = "decoding") -> np.ndarray:
    """Decode image files (with the one decoder) into a uint8 batch of shape (n, size, size, 3)."""

    def load(path: Path) -> np.ndarray:
        return decode_image(path.read_bytes(), target_size=size).to_array(size)

    batch = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for index, array in enumerate(tqdm(pool.map(load, paths), total=len(paths), desc=desc, disable=not progress)):
            batch[index] = array
    return batch


def load_split(data_dir: Path, split: str, size: int, *, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels (0 = cat, 1 = dog) of one split of a prepared data folder."""
    files = image_files(data_dir, split)
    images = load_arrays([path for path, _ in files], size, progress=progress, desc=split)
    labels = np.array([label for _, label in files], dtype=np.float32)
    return images, labels
