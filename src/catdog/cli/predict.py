"""``catdog predict``: photos on disk through both models, one line each."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from catdog.cli.options import shorten
from catdog.config import Settings


def register(verbs) -> None:
    predict = verbs.add_parser(
        "predict",
        help="classify photos with both models",
        description="Classify image files (or every image in the folders given) with the quick and the "
        "pretrained model. Files that are not usable images are reported with the reason; the rest are "
        "still classified. Exit status 1 if any file could not be classified.",
    )
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    predict.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    predict.add_argument(
        "--models",
        type=Path,
        metavar="DIR",
        help="folder with quick.keras and pretrained.keras (default: $CATDOG_MODELS_DIR or models)",
    )
    predict.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace, settings: Settings) -> int:
    from catdog.predict import MODEL_NAMES, classify_paths, load_models

    loaded = load_models(args.models or settings.models_dir)
    failures = 0
    if not args.json:
        header = f"{'image':<40} " + " ".join(f"{name:<18}" for name in MODEL_NAMES) + " agree"
        print(header)
        print("-" * len(header))
    results = classify_paths(
        args.paths, loaded, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
    )
    for result in results:
        failures += result.error is not None
        print(as_json(result) if args.json else as_row(result), flush=True)
    if failures:
        print(f"{failures} file(s) could not be classified", file=sys.stderr)
    return 1 if failures else 0


def as_json(result) -> str:
    record: dict = {"path": str(result.path)}
    if result.error:
        record["error"] = result.error
    else:
        record.update({name: {"label": v.label, "p_dog": round(v.p_dog, 4)} for name, v in result.verdicts.items()})
    return json.dumps(record)


def as_row(result) -> str:
    if result.error:
        return f"{shorten(str(result.path), 40):<40} not classified: {result.error}"
    cells = " ".join(f"{v.label} (p_dog {v.p_dog:.2f})".ljust(18) for v in result.verdicts.values())
    agree = len({v.label for v in result.verdicts.values()}) == 1
    return f"{shorten(str(result.path), 40):<40} {cells} {'yes' if agree else 'NO'}"
