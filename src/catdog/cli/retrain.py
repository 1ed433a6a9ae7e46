"""``catdog retrain``: the room's labels make a candidate; the gate decides whether it serves."""

from __future__ import annotations

import argparse
from pathlib import Path

from catdog.config import Settings


def register(verbs) -> None:
    retrain = verbs.add_parser(
        "retrain",
        help="retrain the pretrained model on the room's labelled photos; serve it only if it is better",
        description="Train a candidate pretrained model on photos of SRC plus the room's labelled photos on Kafka, "
        "then gate it. The room's labels are votes: each voter's latest label of a photo (in a room, only labels "
        "signed by a learner's key or the wall's count: CATDOG_LEARNER_KEYS), the majority of distinct voters "
        "decides, a label against the serving model's confident verdict needs a second voter, and a voter who "
        "keeps going alone against confident verdicts is set aside whole; if the room voted and nothing survived, "
        "no candidate is trained. One photo in four, by sha256, is held out. The candidate is served (replacing "
        "models/pretrained.keras, which the classifier hot-reloads) unless the photos it and the serving model "
        "disagree on show it worse on the check set (a prepared folder no training photo comes from) or on the "
        "held-out room photos: an exact one-sided McNemar test, refused below p = 0.2. Either way it is kept as a "
        "version with its card (data, Kafka records, votes, scores, the decision).",
    )
    retrain.add_argument(
        "--source",
        metavar="SRC",
        help="the base photos (default: $CATDOG_DATA_SOURCE): a folder, "
        "archive, URL, s3:// or kafka: source, as for `data prepare`",
    )
    retrain.add_argument(
        "--check",
        type=Path,
        metavar="DIR",
        help="the check set: a prepared folder (`catdog data "
        "prepare --out DIR`), never trained on (default: $CATDOG_DATA_DIR/check)",
    )
    retrain.add_argument(
        "--check-from",
        metavar="SRC",
        help="where there is no check set yet, make it from SRC "
        "(photos no model trains on), once: later retrainings find it and use it unchanged",
    )
    retrain.add_argument(
        "--check-per-class",
        type=int,
        default=100,
        metavar="N",
        help="photos of each class in a check set made by --check-from (default 100)",
    )
    retrain.add_argument(
        "--per-class", type=int, default=200, metavar="N", help="base photos of each class (default 200)"
    )
    retrain.add_argument("--labels-topic", metavar="TOPIC", help="the room's labels (default: $CATDOG_FEEDBACK_TOPIC)")
    retrain.add_argument("--epochs", type=int, help="head training epochs (default: train pretrained's)")
    retrain.add_argument("--fine-tune", action="store_true", help="also train the backbone's last blocks")
    retrain.add_argument("--seed", type=int, default=1337, help="the same seed gives the same result (default 1337)")
    retrain.set_defaults(run=run_retrain)


def run_retrain(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import checkset, retrain

    check = args.check or settings.data_dir / "check"
    if checkset.ensure_check_set(settings, check, args.check_from, args.check_per_class):
        print(
            f"check set made from {args.check_from}: {2 * args.check_per_class} photos in {check}, "
            "kept for every later retraining"
        )
    outcome = retrain.retrain(
        settings,
        args.source or settings.data_source,
        check,
        args.per_class,
        labels_topic=args.labels_topic,
        epochs=args.epochs,
        fine_tune=args.fine_tune,
        seed=args.seed,
    )
    print(retrain.report(outcome))
    return 0
