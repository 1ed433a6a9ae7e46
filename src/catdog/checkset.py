"""The gate's check set: photos no model trains on, made once, sealed (its manifest's sha256 recorded, its
photos read-only) and verified before every use; a model's answers on it, photo by photo."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from catdog.config import Settings
from catdog.data import (
    MANIFEST_NAME,
    SPLITS,
    prepare_with,
    read_manifest,
)
from catdog.download import sha256_file
from catdog.sources import DataError


def ensure_check_set(settings: Settings, check_dir: Path, source: str | None, per_class: int, seed: int = 7) -> bool:
    """Make the check set once, from ``source``, where there is none yet (a new models volume on the
    cluster); an existing one is never touched, so every retraining is gated on the same photos. Written
    beside and renamed into place: two retrainings starting at once never see half a check set.
    Returns whether it was made now."""
    if (check_dir / MANIFEST_NAME).is_file():
        return False
    if not source:
        raise DataError(
            f"no check set at {check_dir} (no {MANIFEST_NAME}): make one with `catdog data prepare "
            f"--out {check_dir}` from photos no model trains on, or pass --check-from SRC"
        )
    check_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{check_dir.name}-", dir=check_dir.parent))
    try:
        prepare_with(settings, source, staging, per_class, seed=seed, progress=False)
        try:
            os.rename(staging, check_dir)
        except OSError:  # another retraining made it first (or an empty folder is in the way): theirs stays
            if not (check_dir / MANIFEST_NAME).is_file():
                raise
            return False
        seal_check_set(check_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def correct(model_path: Path, folder: Path, splits: tuple[str, ...]) -> list[bool]:
    """Whether the model gets each photo of ``splits`` right, in the folder's order: the gate compares two
    models photo by photo."""
    from catdog.models import load_model
    from catdog.predict import evaluate_folder

    evaluation = evaluate_folder({"model": load_model(model_path)}, folder, splits)
    return [bool(right) for right in evaluation.predicted("model") == evaluation.labels]


def accuracy(model_path: Path, folder: Path, splits: tuple[str, ...]) -> float:
    right = correct(model_path, folder, splits)
    return sum(right) / len(right) if right else 0.0


def seal_path(check_dir: Path) -> Path:
    """Beside the check set: its manifest's sha256 as it was when the set was made (or first used)."""
    return check_dir.parent / f".{check_dir.name}.manifest.sha256"


def seal_check_set(check_dir: Path) -> str:
    """Record the manifest's sha256 beside the check set if nothing is recorded yet (a set made by
    `ensure_check_set`, or prepared by hand and used for the first time), and make its photos read-only;
    returns the recorded sha256."""
    seal = seal_path(check_dir)
    if not seal.is_file():
        seal.write_text(sha256_file(check_dir / MANIFEST_NAME) + "\n")
        for path in check_dir.rglob("*"):
            if path.is_file():
                path.chmod(0o444)
    return seal.read_text().strip()


def verify_check_set(check_dir: Path) -> list[dict]:
    """The check set's rows, if the set is exactly what it was made as: its manifest as sealed, each photo
    there with the sha256 the manifest names, no photo the manifest does not name. Otherwise DataError
    naming the file: the gate refuses to run on photos nobody can vouch for."""
    manifest = check_dir / MANIFEST_NAME
    rows = read_manifest(check_dir)
    if sha256_file(manifest) != seal_check_set(check_dir):
        raise DataError(
            f"{manifest} has changed since the check set was made (its sha256 is recorded in "
            f"{seal_path(check_dir)}): the gate refuses to run"
        )
    listed = set()
    for row in rows:
        path = check_dir / row["file"]
        listed.add(path)
        if not path.is_file():
            raise DataError(f"check-set photo {path} is missing: the gate refuses to run")
        if sha256_file(path) != row["sha256"]:
            raise DataError(
                f"check-set photo {path} is not the photo its manifest names (its sha256 differs): "
                "the gate refuses to run"
            )
    extra = sorted(
        path for split in SPLITS for path in (check_dir / split).rglob("*") if path.is_file() and path not in listed
    )
    if extra:
        raise DataError(f"{extra[0]} is in the check set but not in its manifest: the gate refuses to run")
    return rows
