"""``catdog submit``: a learner's verdicts on the room's challenge, as they are (their credentials)."""

from __future__ import annotations

import argparse
from pathlib import Path

from catdog.config import Settings


def register(verbs) -> None:
    submit = verbs.add_parser(
        "submit",
        help="classify the room's challenge photos with your model and submit the verdicts",
        description="Fetch the latest challenge from $CATDOG_CHALLENGE_TOPIC, classify its photos with a model "
        "of yours (default: models/quick.keras, loaded in Keras' safe mode) and send the verdicts, never the "
        "model, to $CATDOG_SUBMISSIONS_TOPIC as you ($CATDOG_LEARNER, signed with your key in a room). The "
        "wall scores them against answers only it holds: one submission a minute counts.",
    )
    submit.add_argument("--model", type=Path, help="the model whose verdicts to submit (default: models/quick.keras)")
    submit.add_argument("--photos", type=Path, help="where the challenge's photos go (default: data/challenge)")
    submit.set_defaults(run=run_submit)


def run_submit(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import challenge
    from catdog.kafka.clients import make_producer
    from catdog.models import load_model

    model_path = args.model or settings.models_dir / "quick.keras"
    published = challenge.fetch(settings.kafka, args.photos or settings.data_dir / "challenge")
    if published.challenge is None:
        print(f"no challenge on {settings.kafka.challenge_topic} yet: ask your instructor", flush=True)
        return 1
    given = challenge.verdicts(
        {model_path.stem: load_model(model_path)},
        published.paths,
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
    )
    producer = make_producer(settings.kafka)
    try:
        sent = challenge.submit(producer, settings.kafka, published.challenge, given, model_path.stem)
    finally:
        producer.close()
    where = settings.wall.url
    print(
        f"submitted {len(given)} verdicts on challenge {published.challenge} as {settings.kafka.learner} "
        f"({sent.topic}[{sent.partition}]@{sent.offset}); your place: {where or 'the wall'}"
    )
    return 0
