"""The classifier's results and dead letters as the learners' cells and ``catdog results`` read them: the
results for photos just sent, the newest ones (each learner's first), one per photo.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator

from kafka import KafkaConsumer

from catdog.config import MAX_LEARNER_CHARS, KafkaSettings
from catdog.kafka.clients import make_reader
from catdog.kafka.records import LEARNER_HEADER, Sent, headers_dict, iter_records, key_text

log = logging.getLogger(__name__)


# A result is produced after its image, but on another machine's clock: look this far back for it.
CLOCK_SKEW_MS = 60_000


# How many of the newest results a learner's "mine first" view looks through.
RECENT_WINDOW = 500


def collect_predictions(
    kafka: KafkaSettings, sent: list[Sent], timeout: float = 60.0
) -> dict[tuple[str, int, int], dict]:
    """The classifier service's results for these sent images, matched by their (topic, partition,
    offset), waiting up to ``timeout`` seconds for the last; those that did not come are absent."""
    wanted = {(record.topic, record.partition, record.offset) for record in sent}
    found: dict[tuple[str, int, int], dict] = {}
    if not wanted:
        return found
    reader = make_reader(kafka, kafka.predictions_topic, since_ms=min(r.timestamp for r in sent) - CLOCK_SKEW_MS)
    deadline = time.monotonic() + timeout
    try:
        while len(found) < len(wanted) and time.monotonic() < deadline:
            for result in iter_predictions(reader, timeout=min(1.0, max(0.01, deadline - time.monotonic()))):
                source = result.get("source") or {}
                where = (source.get("topic"), source.get("partition"), source.get("offset"))
                if where in wanted:
                    found[where] = result
    finally:
        reader.close()
    return found


def find_prediction(kafka: KafkaSettings, sent: Sent, timeout: float = 60.0) -> dict | None:
    """The classifier service's result for one sent image, or None if it did not come in ``timeout`` s."""
    return collect_predictions(kafka, [sent], timeout).get((sent.topic, sent.partition, sent.offset))


def latest_predictions(
    kafka: KafkaSettings, count: int = 5, timeout: float = 5.0, learner: str | None = None
) -> list[dict]:
    """The ``count`` most recent results on the predictions topic, newest first. In a room the topic
    holds every learner's: with ``learner``, that learner's own results come first (from the newest
    RECENT_WINDOW), then the others'."""
    reader = make_reader(kafka, kafka.predictions_topic, last=max(count, RECENT_WINDOW) if learner else count)
    try:
        results = list(iter_predictions(reader, timeout=timeout))
    finally:
        reader.close()
    return mine_first(results, learner)[:count]


def once_each(results: Iterable[dict]) -> Iterator[dict]:
    """Each photo's first result only. The classifier publishes at least once: a batch whose publish timed
    out while the broker went away (its results delivered after all) is classified again, uncommitted, so
    a photo can have two results; every reader that shows results shows one per photo."""
    seen: set[tuple] = set()
    for result in results:
        source = result.get("source") or {}
        where = (source.get("topic"), source.get("partition"), source.get("offset"))
        if where not in seen:
            seen.add(where)
            yield result


def mine_first(results: list[dict], learner: str | None) -> list[dict]:
    """Results newest first, one per photo, those sent by ``learner`` (if given) before everyone else's."""
    oldest = sorted(results, key=lambda result: str(result.get("classified_at", "")))
    newest = list(once_each(oldest))[::-1]
    if not learner:
        return newest
    return [r for r in newest if r.get("learner") == learner] + [r for r in newest if r.get("learner") != learner]


def format_prediction(result: dict, width: int = 32) -> str:
    """One result as a table row: file, both verdicts with p(dog), agreement, where it came from, and who
    sent it."""
    filename = result.get("filename", "?")
    filename = filename if len(filename) <= width else "…" + filename[-(width - 1) :]
    cells = " ".join(
        f"{result[name]['label']} ({result[name]['p_dog']:.2f})".ljust(18) for name in ("quick", "pretrained")
    )
    source = result["source"]
    where = f"{source['topic']}[{source['partition']}]@{source['offset']}"
    return (
        f"{filename:<{width}} {cells} {'yes' if result['agree'] else 'NO ':<6} {where:<20} "
        f"{result.get('learner') or '-'}"
    ).rstrip()


PREDICTION_HEADER = f"{'image':<32} {'quick':<18} {'pretrained':<18} agree  {'source':<20} learner"


def prediction_problem(result: object) -> str | None:
    """Why a predictions record is not one of the classifier's results (None if it is one)."""
    if not isinstance(result, dict):
        return f"JSON {type(result).__name__}, not an object"
    source = result.get("source")
    if not isinstance(source, dict) or not {"topic", "partition", "offset"} <= source.keys():
        return "no source topic/partition/offset"
    for model in ("quick", "pretrained"):
        verdict = result.get(model)
        if (
            not isinstance(verdict, dict)
            or verdict.get("label") not in ("cat", "dog")
            or not isinstance(verdict.get("p_dog"), (int, float))
        ):
            return f"no {model} verdict"
    return None


def _log_skipped(record, reason: str) -> None:
    log.warning("skipped %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)


def iter_predictions(
    consumer: KafkaConsumer,
    timeout: float = 10.0,
    count: int | None = None,
    on_skip: Callable[[object, str], None] = _log_skipped,
) -> Iterator[dict]:
    """Predictions as published by the classifier service, until ``count`` records or ``timeout`` s of
    silence. Anything else on the topic (another client's records) is passed to ``on_skip`` with why."""
    for record in iter_records(consumer, timeout, count):
        try:
            result = json.loads(record.value)
        except (TypeError, ValueError):
            on_skip(record, "not JSON" if record.value else "no value")
            continue
        problem = prediction_problem(result)
        if problem:
            on_skip(record, f"not a catdog result ({problem})")
        else:
            yield result


def _int_header(headers: dict[str, str], name: str) -> int:
    try:
        return int(headers.get(name, ""))
    except ValueError:
        return -1


def iter_dead_letters(consumer: KafkaConsumer, timeout: float = 10.0, count: int | None = None) -> Iterator[dict]:
    """Refused messages from the dead-letter topic: why, where from, and how big (the bytes stay there)."""
    for record in iter_records(consumer, timeout, count):
        headers = headers_dict(record.headers)
        yield {
            "key": key_text(record.key),
            "filename": headers.get("filename") or f"{record.topic}-{record.partition}-{record.offset}",
            "learner": headers.get(LEARNER_HEADER, "")[:MAX_LEARNER_CHARS],
            "error-class": headers.get("error-class") or "unknown",
            "error": headers.get("error", ""),
            "source": {
                "topic": headers.get("source-topic"),
                "partition": _int_header(headers, "source-partition"),
                "offset": _int_header(headers, "source-offset"),
            },
            "bytes": len(record.value or b""),
        }
