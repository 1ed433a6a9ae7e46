"""``catdog results``: the classifier's results (or its dead letters), as a table or JSON lines."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterable, Iterator

from catdog.cli.options import shorten
from catdog.config import Settings

DEFAULT_LAST = 20  # `catdog results` without --count: the newest results, as a human wants them
DEAD_LETTER_HEADER = f"{'message':<32} {'reason':<20} detail"


def register(verbs) -> None:
    results = verbs.add_parser(
        "results",
        help="show the classifier's results",
        description="Read the predictions topic from the beginning and print a table (or JSON lines, one per "
        "result as published). Stops after --count results or --timeout seconds without a new one. "
        "--dead-letters shows the refused messages instead.",
    )
    results.add_argument(
        "--last",
        type=int,
        metavar="N",
        help=f"the newest N, once the topic is read to the end "
        f"(the default for the table: {DEFAULT_LAST}; --json alone gives every one)",
    )
    results.add_argument(
        "--count",
        type=int,
        metavar="N",
        help="the first N from the beginning, shown as they are read (for scripts; overrides --last)",
    )
    results.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the next result (default 10)")
    results.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    results.add_argument(
        "--learner",
        metavar="NAME",
        help="only the results of photos NAME sent (the learner "
        'header, from CATDOG_LEARNER; `--learner "$CATDOG_LEARNER"` for your own)',
    )
    results.add_argument(
        "--dead-letters",
        action="store_true",
        help="show the dead-letter topic instead: messages refused, with the reason",
    )
    results.set_defaults(run=run_results)


def run_results(args: argparse.Namespace, settings: Settings) -> int:
    from catdog.kafka.clients import make_consumer
    from catdog.kafka.results import PREDICTION_HEADER

    kafka = settings.kafka
    topic = kafka.dlq_topic if args.dead_letters else kafka.predictions_topic
    consumer = make_consumer(kafka, topic)
    shown = 0
    try:
        if not args.json:
            print(DEAD_LETTER_HEADER if args.dead_letters else PREDICTION_HEADER)
        for record in chosen(args, read(args, consumer)):
            shown += 1
            print(json.dumps(record) if args.json else as_row(record, args.dead_letters), flush=True)
    finally:
        consumer.close()
    if shown == 0:
        print(f"nothing on {topic} within {args.timeout:g} s", file=sys.stderr)
    return 0


def read(args: argparse.Namespace, consumer) -> Iterator[dict]:
    """The topic's records as dicts. A learner's filter applies before --count: the first N of *theirs*."""
    from catdog.kafka.results import iter_dead_letters, iter_predictions, once_each

    count = None if args.learner else args.count
    if args.dead_letters:
        return iter_dead_letters(consumer, timeout=args.timeout, count=count)

    def skipped(record, reason: str) -> None:
        print(f"skipped {record.topic}[{record.partition}]@{record.offset}: {reason}", file=sys.stderr)

    return once_each(iter_predictions(consumer, timeout=args.timeout, count=count, on_skip=skipped))


def chosen(args: argparse.Namespace, records: Iterable[dict]) -> Iterable[dict]:
    """--learner, then --count or (a human's default) the newest --last once the topic is read."""
    if args.learner:
        records = itertools.islice((r for r in records if r.get("learner") == args.learner), args.count)
    if args.count is None and (args.last or not args.json):
        records = newest(records, args.last or DEFAULT_LAST, dead_letters=args.dead_letters)
    return records


def newest(records: Iterable[dict], count: int, dead_letters: bool) -> list[dict]:
    """The ``count`` newest of ``records``, oldest first. Results are ordered by when they were classified
    (partitions interleave in any order); dead letters as read."""
    kept = list(records)
    if not dead_letters:
        kept.sort(key=lambda result: str(result.get("classified_at", "")))
    return kept[-count:]


def as_row(record: dict, dead_letter: bool) -> str:
    from catdog.kafka.results import format_prediction

    if dead_letter:
        return f"{shorten(record['filename'], 32):<32} {record['error-class']:<20} {record['error']}"
    return format_prediction(record)
