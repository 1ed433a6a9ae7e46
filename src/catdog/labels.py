"""Labelled photos on Kafka: the 2019 lab's dare ("use a Kafka topic to store the images"), taken.

A label is a record on the feedback topic (CATDOG_FEEDBACK_TOPIC, compacted), keyed by the image's key,
whose JSON value says ``label`` (cat or dog), who gave it and, when known, where the image is (its
topic/partition/offset). The wall's right/wrong buttons, ``catdog send --label`` and a notebook's
:func:`label_image` write them; :func:`read_labelled` reads them back joined with the images they name,
as a training source (``--source kafka:feedback``). Records from any client are checked, never trusted:
what is not a label is skipped with the reason.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from kafka import KafkaProducer

from catdog.config import KafkaSettings
from catdog.kafka_io import (
    LEARNER_HEADER, Sent, assign_every_partition, key_text, make_consumer, make_producer, send_image,
)

LABELS = ("cat", "dog")
END_WAIT_SECONDS = 30.0  # reading a topic to the end it had when we started: at most this long
# A training photo's name in a prepared folder: where on Kafka it came from, so the card can say.
RECORD_NAME = re.compile(r"kafka-(?P<topic>[A-Za-z0-9._-]+)-p(?P<partition>\d+)-o(?P<offset>\d+)\.\w+$")
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
              "image/bmp": ".bmp", "image/tiff": ".tif"}


def label_problem(key: str | None, value: object) -> str | None:
    """Why a feedback record is not a label (None if it is one)."""
    if not key:
        return "no key (the image's key)"
    if key.startswith("0x"):
        return "a binary key, not an image's key"
    if not isinstance(value, dict):
        return "not a JSON object"
    if value.get("label") not in LABELS:
        return f"label {value.get('label')!r} is neither cat nor dog"
    return None


def label_value(label: str, learner: str, via: str, source: dict | None = None, **extra) -> dict:
    """A label's JSON value: the label, who gave it, through what, and where the image is if known."""
    return {"label": label, "learner": learner, "source": source, "via": via,
            "at": datetime.now(timezone.utc).isoformat(), **extra}


def send_label(producer: KafkaProducer, kafka: KafkaSettings, key: str, value: dict, timeout: float = 30.0):
    """Write one label, keyed by the image's key, and wait for the broker to store it."""
    if value.get("label") not in LABELS:
        raise ValueError(f"label must be cat or dog, not {value.get('label')!r}")
    headers = [(LEARNER_HEADER, str(value.get("learner") or "").encode())]
    return producer.send(kafka.feedback_topic, key=key.encode(), value=json.dumps(value).encode(),
                         headers=headers).get(timeout=timeout)


def label_image(producer: KafkaProducer, kafka: KafkaSettings, sent: Sent, label: str, via: str = "notebook"):
    """Say what a photo you sent really is: the next retraining learns from it."""
    source = {"topic": sent.topic, "partition": sent.partition, "offset": sent.offset}
    return send_label(producer, kafka, sent.key, label_value(label, kafka.learner, via, source))


def send_photos(kafka: KafkaSettings, items: Iterable[tuple[str, Path | None]], topic: str | None = None,
                label: str | None = None, via: str = "catdog send") -> Iterator[Sent]:
    """Send each photo (``None``: standard input's bytes) and, with ``label``, say what it is: a training
    example for the next retraining. Yields each as the broker stores it; one producer for them all."""
    producer = make_producer(kafka)
    try:
        for name, path in items:
            data = sys.stdin.buffer.read() if path is None else path.read_bytes()
            sent = send_image(producer, kafka, data, name, topic=topic)
            if label:
                label_image(producer, kafka, sent, label, via=via)
            yield sent
    finally:
        producer.close()


@dataclass(frozen=True)
class LabelledImage:
    name: str  # cat/kafka-<topic>-p<partition>-o<offset>.<ext>: the label's folder, where the image was
    label: str
    data: bytes


def _read_to_end(consumer, topic: str):
    """Every record of ``topic`` up to (at least) the end it had when this started. Records fetched past
    that end are kept too: the embedded broker reports a batch's base offset + 1 as the end, so the end
    can fall inside the last batch (DEVELOPERS.md)."""
    partitions = assign_every_partition(consumer, topic)
    if not partitions:
        return
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    deadline = time.monotonic() + END_WAIT_SECONDS
    while any(consumer.position(p) < ends[p] for p in partitions) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500, max_records=500).values():
            yield from records


def read_labelled(kafka: KafkaSettings, labels_topic: str | None = None,
                  ) -> tuple[list[LabelledImage], list[tuple[str, str, str, str]]]:
    """The latest label of each image on ``labels_topic`` (default: the feedback topic), joined with its
    bytes on the images topic (by the label's source topic/partition/offset, else by the image's key).
    Returns the labelled images and the skipped records as (name, label, reason, detail)."""
    topic = labels_topic or kafka.feedback_topic
    consumer = make_consumer(kafka)
    skipped: list[tuple[str, str, str, str]] = []
    latest: dict[str, tuple[str, tuple | None, str]] = {}
    try:
        for record in _read_to_end(consumer, topic):
            where = f"{record.topic}[{record.partition}]@{record.offset}"
            key = key_text(record.key)
            try:
                value = json.loads(record.value) if record.value else None
            except ValueError:
                value = None
            problem = label_problem(key, value)
            if problem:
                skipped.append((where, "", "not-a-label", problem))
                continue
            source = value.get("source") if isinstance(value.get("source"), dict) else {}
            spot = (source.get("topic"), source.get("partition"), source.get("offset"))
            latest[key] = (value["label"], spot if all(v is not None for v in spot) else None, where)
        by_spot = {spot: key for key, (_, spot, _) in latest.items() if spot}
        found: dict[str, LabelledImage] = {}
        for record in _read_to_end(consumer, kafka.images_topic):
            spot = (record.topic, record.partition, record.offset)
            key = by_spot.get(spot)
            if key is None:
                candidate = key_text(record.key)
                key = candidate if candidate in latest and latest[candidate][1] is None else None
            if key is None or key in found:
                continue
            content = dict((name, value) for name, value in record.headers or []).get("content-type", b"")
            extension = EXTENSIONS.get(bytes(content or b"").decode("latin-1"), ".jpg")
            label = latest[key][0]
            name = f"{label}/kafka-{record.topic}-p{record.partition}-o{record.offset}{extension}"
            found[key] = LabelledImage(name, label, bytes(record.value or b""))
    finally:
        consumer.close()
    for key, (label, spot, where) in latest.items():
        if key not in found:
            skipped.append((where, label, "no-image", f"no image {key} on {kafka.images_topic}"
                            + (f" at {spot[0]}[{spot[1]}]@{spot[2]}" if spot else "")))
    return list(found.values()), skipped


def record_ranges(names: list[str]) -> dict[str, dict[str, list[list[int]]]]:
    """The Kafka records a model trained on, from its photos' names: topic -> partition -> offset runs
    ([first, last] each), for its card."""
    offsets: dict[tuple[str, str], list[int]] = defaultdict(list)
    for name in names:
        match = RECORD_NAME.search(name)
        if match:
            offsets[match["topic"], match["partition"]].append(int(match["offset"]))
    ranges: dict[str, dict[str, list[list[int]]]] = defaultdict(dict)
    for (topic, partition), found in sorted(offsets.items()):
        runs: list[list[int]] = []
        for offset in sorted(set(found)):
            if runs and offset == runs[-1][1] + 1:
                runs[-1][1] = offset
            else:
                runs.append([offset, offset])
        ranges[topic][partition] = runs
    return dict(ranges)


__all__ = ["LABELS", "LabelledImage", "label_image", "label_problem", "label_value", "read_labelled",
           "record_ranges", "send_label"]
