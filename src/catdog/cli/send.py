"""``catdog send``: photos to the images topic, as any learner sends them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from catdog.config import Settings


def register(verbs) -> None:
    send = verbs.add_parser(
        "send",
        help="send photos to the images topic",
        description="Send image files (folders are walked; - reads one image from standard input) to Kafka, "
        "as raw bytes keyed by their sha256, with filename, content-type and sent-at headers. Files over "
        "CATDOG_MAX_IMAGE_BYTES are refused before sending. Prints topic[partition]@offset per image.",
    )
    send.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files, folders, or -")
    send.add_argument("--topic", help="topic (default: $CATDOG_IMAGES_TOPIC or images)")
    send.add_argument(
        "--label",
        choices=("cat", "dog"),
        help="also say what the photos are: a label for each on "
        "the feedback topic ($CATDOG_FEEDBACK_TOPIC), which `--source kafka:feedback` trains on",
    )
    send.set_defaults(run=run_send)


def run_send(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from catdog.data import expand_paths
    from catdog.kafka.photos import sendable
    from catdog.labels import send_photos

    kafka = settings.kafka
    items, refused = sendable(expand_paths(args.paths), kafka.max_image_bytes)
    for line in refused:
        print(line, file=sys.stderr)
    labelled = f", labelled {args.label} on {kafka.feedback_topic}" if args.label else ""
    # A bar for many files, and only on a terminal (disable=None); each image's offset is printed anyway.
    bar = tqdm(total=len(items), desc="sending", unit="img", disable=True if len(items) < 10 else None, file=sys.stderr)
    with bar:
        for sent in send_photos(kafka, items, topic=args.topic, label=args.label):
            tqdm.write(f"{sent.filename} -> {sent.topic}[{sent.partition}]@{sent.offset}{labelled}")
            bar.update(1)
    if refused:
        print(f"{len(refused)} file(s) not sent", file=sys.stderr)
    return 1 if refused else 0
