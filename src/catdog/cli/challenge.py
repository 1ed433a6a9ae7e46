"""``catdog challenge``: the instructor makes the room's challenge (photos nobody has seen, the answers
kept apart) and publishes its photos, without labels, on the challenge topic."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from catdog import CatdogError
from catdog.cli.options import add_exclude, manifest_hashes
from catdog.config import Settings

SECRET_NAME = "catdog-challenge"  # the wall mounts it (optional: without it there is no challenge)


def register(verbs) -> None:
    challenge = verbs.add_parser(
        "challenge",
        help="make the room's challenge and publish its photos (instructor)",
        description="The room's challenge: photos the room has never seen, published without labels; each "
        "learner submits their model's verdicts (`catdog submit`) and the wall scores them against answers "
        "only it holds, on a live leaderboard.",
    )
    steps = challenge.add_subparsers(dest="step", required=True, metavar="STEP")
    make = steps.add_parser(
        "make",
        help="sample the photos and write them (neutral names) and, apart, the answers",
        description="Sample --per-class photos of each class from --source, leaving out every photo the lab's "
        "models trained on, and write OUT/photos/ (named by their sha256: a name gives nothing away), "
        "OUT/answers.json (private: the labels and the lab's models' scores, the line to beat) and "
        f"OUT/secret.yaml (the Secret {SECRET_NAME} that gives the answers to the room's wall).",
    )
    make.add_argument("--source", help="where to sample from (default: $CATDOG_EVAL_SOURCE)")
    make.add_argument("--per-class", type=int, default=25, metavar="N", help="photos of each class (default 25)")
    make.add_argument("--out", type=Path, default=Path("challenge"), help="the challenge's folder (default challenge/)")
    make.add_argument("--seed", type=int, default=4242, help="which photos are drawn (default 4242)")
    make.add_argument("--no-baseline", action="store_true", help="do not score the lab's models on the set")
    add_exclude(make)
    make.set_defaults(run=run_make)
    publish = steps.add_parser(
        "publish",
        help="put the challenge's photos, without labels, on the challenge topic",
        description="Send every photo of a challenge folder to $CATDOG_CHALLENGE_TOPIC (challenge), keyed by its "
        "neutral name and marked with the challenge's name. The answers are never sent. Publishing another "
        "challenge later replaces it: learners fetch the latest.",
    )
    publish.add_argument("folder", type=Path, nargs="?", default=Path("challenge"), help="the folder `make` wrote")
    publish.set_defaults(run=run_publish)


def run_make(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import challenge
    from catdog.data import prepare_with
    from catdog.predict import load_models

    source = args.source or settings.eval_source
    seen = manifest_hashes(
        [
            folder
            for folder in (settings.data_dir, settings.data_dir / "pretrained")
            if (folder / "manifest.csv").is_file()
        ]
        + list(args.exclude_from or [])
    )
    with tempfile.TemporaryDirectory() as sample:  # labelled folders: never left beside the photos
        report = prepare_with(
            settings, source, Path(sample), args.per_class, seed=args.seed, exclude=seen, progress=False
        )
        print(report.summary())
        loaded = None if args.no_baseline else load_models(settings.models_dir)
        if args.out.exists():
            shutil.rmtree(args.out / challenge.PHOTOS_FOLDER, ignore_errors=True)
        answers = challenge.make(
            Path(sample), args.out, loaded, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
        )
    write_secret(args.out / challenge.ANSWERS_FILE, args.out / "secret.yaml")
    line = ", ".join(f"{name} {value:.3f}" for name, value in answers.baseline.items()) or "not measured"
    print(
        f"challenge {answers.challenge}: {len(answers.labels)} photos in {args.out / challenge.PHOTOS_FOLDER}\n"
        f"answers (the room's alone) in {args.out / challenge.ANSWERS_FILE}; the lab's models on it: {line}\n"
        f"next: catdog challenge publish {args.out}; on OpenShift also oc apply -f {args.out / 'secret.yaml'}"
    )
    return 0


def write_secret(answers: Path, out: Path) -> None:
    """The Secret that mounts the answers into the wall (0600, like every file that holds the room's secrets)."""
    import os

    import yaml

    from catdog.room.learners import ROOM_NAMESPACE
    from catdog.room.manifests import opaque_secret

    secret = opaque_secret(
        SECRET_NAME, string_data={"answers.json": answers.read_text()}, labels={"app.kubernetes.io/part-of": "catdog"}
    )
    secret["metadata"]["namespace"] = ROOM_NAMESPACE  # the wall's: never a learner's namespace
    text = yaml.safe_dump(secret, sort_keys=False)
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(text)


def run_publish(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import challenge
    from catdog.kafka.clients import make_producer

    answers = challenge.read_answers(args.folder / challenge.ANSWERS_FILE)
    photos = args.folder / challenge.PHOTOS_FOLDER
    if not photos.is_dir():
        raise CatdogError(f"{photos}: no photos (run `catdog challenge make --out {args.folder}` first)")
    producer = make_producer(settings.kafka)
    try:
        count = challenge.publish(producer, settings.kafka, photos, answers.challenge)
    finally:
        producer.close()
    print(f"challenge {answers.challenge}: {count} photos on {settings.kafka.challenge_topic}, without labels")
    return 0
