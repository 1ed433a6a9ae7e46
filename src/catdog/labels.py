"""Labelled photos on Kafka: the 2019 lab's dare ("use a Kafka topic to store the images"), taken.

A label is a record on the feedback topic (CATDOG_FEEDBACK_TOPIC, compacted), keyed by the image's key
and its voter (``<image key>/learner:<name>`` or ``/phone:<id>``, so compaction keeps each voter's latest),
whose JSON value says ``label`` (cat or dog), who gave it and, when known, where the image is (its
topic/partition/offset). The wall's right/wrong buttons, ``catdog send --label`` and a notebook's
:func:`label_image` write them; :func:`read_labelled` reads them back joined with the images they name,
as a training source (``--source kafka:feedback``). Records from any client are checked, never trusted:
what is not a label is skipped with the reason, and in a room a label counts only as the voter its
signature shows (catdog.identity).

Labels are evidence, not truth (:func:`count_votes`): one vote per voter per photo, the majority of distinct
voters decides, a lone voter cannot overrule the serving model where it is confident, and a voter who
keeps trying is set aside whole.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer

from catdog.config import KafkaSettings
from catdog.identity import Keys, Replays, read_keys
from catdog.kafka.clients import assign_every_partition, make_consumer, make_producer
from catdog.kafka.photos import send_image
from catdog.kafka.records import LEARNER_HEADER, Sent, headers_dict, key_text, record_sender, signed

LABELS = ("cat", "dog")
END_WAIT_SECONDS = 30.0  # reading a topic to the end it had when we started: at most this long
# How the room's votes count (count_votes). The serving model's verdict is "confident" at this probability:
# 181 of the pretrained model's 200 check-set verdicts are this sure, and 179 of those are right
# (benchmarks/retrain.py, RESULTS.md): a lone label against one is far more often wrong than the model.
CONFIDENT = 0.9
CORROBORATION = 2  # distinct voters it takes to overrule a confident verdict
# A voter whose labels went against confident verdicts alone this often (this share, at least this many
# times) is set aside whole: their other labels too, until the instructor looks (catdog retrain's report).
DOUBTED_SHARE, DOUBTED_MIN = 0.5, 5
# A training photo's name in a prepared folder: where on Kafka it came from, so the card can say.
RECORD_NAME = re.compile(r"kafka-(?P<topic>[A-Za-z0-9._-]+)-p(?P<partition>\d+)-o(?P<offset>\d+)\.\w+$")
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
}


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
    return {
        "label": label,
        "learner": learner,
        "source": source,
        "via": via,
        "at": datetime.now(UTC).isoformat(),
        **extra,
    }


def voter_as_written(value: dict) -> str:
    """The voter a label names: the phone the wall issued a cookie to, else the learner."""
    phone = str(value.get("phone") or "")
    return f"phone:{phone}" if phone else f"learner:{value.get('learner') or ''}"


def image_key_of(record_key: str) -> str:
    """The image's key in a label's record key (``<image key>/<voter>``, or the image's key alone)."""
    return record_key.split("/", 1)[0]


def send_label(producer: KafkaProducer, kafka: KafkaSettings, key: str, value: dict, timeout: float = 30.0):
    """Write one label for the image with key ``key`` and wait for the broker to store it. Signed with the
    settings' key in a room, so it counts as its voter's and no one else's."""
    if value.get("label") not in LABELS:
        raise ValueError(f"label must be cat or dog, not {value.get('label')!r}")
    learner = str(value.get("learner") or "")
    record_key, data = f"{key}/{voter_as_written(value)}".encode(), json.dumps(value).encode()
    headers = [(LEARNER_HEADER, learner.encode()), *signed(kafka, learner, record_key, data)]
    return producer.send(kafka.feedback_topic, key=record_key, value=data, headers=headers).get(timeout=timeout)


def label_image(producer: KafkaProducer, kafka: KafkaSettings, sent: Sent, label: str, via: str = "notebook"):
    """Say what a photo you sent really is: the next retraining learns from it."""
    source = {"topic": sent.topic, "partition": sent.partition, "offset": sent.offset}
    return send_label(producer, kafka, sent.key, label_value(label, kafka.learner, via, source))


def send_photos(
    kafka: KafkaSettings,
    items: Iterable[tuple[str, Path | None]],
    topic: str | None = None,
    label: str | None = None,
    via: str = "catdog send",
) -> Iterator[Sent]:
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
    source: str  # kafka-<topic>-p<partition>-o<offset>.<ext>: where the image was
    votes: dict[str, str]  # each voter's latest label
    data: bytes

    @property
    def majority(self) -> str | None:
        """The label most distinct voters gave; None when they are split evenly."""
        (label, count), *rest = Counter(self.votes.values()).most_common()
        return None if rest and rest[0][1] == count else label

    @property
    def name(self) -> str:
        """``<label>/<source>``, by the majority, as a prepared folder files it."""
        return f"{self.majority}/{self.source}"


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


def vote(record, keys: Keys | None, replays: Replays | None = None) -> tuple[str, str, dict] | str:
    """A feedback record as (image key, voter, label value), or why it does not count. With the room's
    key table the voter is who the signature shows: a phone the wall vouches for, or a learner under their
    own key; a label no key signed counts for no one. With ``replays`` (what this count has read so far), a
    copy of a counted label, or one older than the voter's latest for that photo, counts for no one either."""
    key = key_text(record.key)
    try:
        value = json.loads(record.value) if record.value else None
    except ValueError:
        value = None
    problem = label_problem(key, value)
    if problem:
        return problem
    if keys is None:
        return image_key_of(key), voter_as_written(value), value
    learner = str(value.get("learner") or "")
    sender = record_sender(keys, learner, headers_dict(record.headers), record.key, record.value)
    if not sender.verified:
        return f"unsigned: no key of the room signed it as {learner or 'anyone'}"
    voter = f"phone:{value.get('phone') or sender.name}" if sender.phone else f"learner:{sender.name}"
    replayed = replays and replays.problem(
        sender, (record.topic, record.partition, record.offset), subject=(image_key_of(key), voter)
    )
    if replayed:
        return f"{replayed} (counted as {voter}'s earlier label)"
    return image_key_of(key), voter, value


def skip_reason(problem: str) -> str:
    """The short reason a label was skipped, from :func:`vote`'s sentence."""
    if problem.startswith(("replay", "from the future")):
        return "replay"
    return "unsigned" if problem.startswith("unsigned") else "not-a-label"


@dataclass
class _Ballot:
    votes: dict[str, str] = field(default_factory=dict)
    spot: tuple | None = None
    where: str = ""


def read_labelled(
    kafka: KafkaSettings,
    labels_topic: str | None = None,
) -> tuple[list[LabelledImage], list[tuple[str, str, str, str]]]:
    """Each image's votes on ``labels_topic`` (default: the feedback topic): each voter's latest label,
    joined with its bytes on the images topic (by a label's source topic/partition/offset, else by the
    image's key). In a room (CATDOG_LEARNER_KEYS) only signed labels count. Returns the labelled images and
    the skipped records as (name, label, reason, detail)."""
    topic, keys = labels_topic or kafka.feedback_topic, read_keys(kafka.learner_keys)
    consumer = make_consumer(kafka)
    skipped: list[tuple[str, str, str, str]] = []
    ballots: dict[str, _Ballot] = defaultdict(_Ballot)
    replays = Replays()
    try:
        for record in _read_to_end(consumer, topic):
            where = f"{record.topic}[{record.partition}]@{record.offset}"
            counted = vote(record, keys, replays)
            if isinstance(counted, str):
                skipped.append((where, "", skip_reason(counted), counted))
                continue
            key, voter, value = counted
            source = value.get("source") if isinstance(value.get("source"), dict) else {}
            spot = (source.get("topic"), source.get("partition"), source.get("offset"))
            ballot = ballots[key]
            ballot.votes[voter], ballot.where = value["label"], where
            ballot.spot = ballot.spot or (spot if all(v is not None for v in spot) else None)
        found = _join_images(consumer, kafka, ballots)
    finally:
        consumer.close()
    for key, ballot in ballots.items():
        if key not in found:
            spot = ballot.spot
            skipped.append(
                (
                    ballot.where,
                    ",".join(sorted(set(ballot.votes.values()))),
                    "no-image",
                    f"no image {key} on {kafka.images_topic}" + (f" at {spot[0]}[{spot[1]}]@{spot[2]}" if spot else ""),
                )
            )
    return list(found.values()), skipped


def _join_images(consumer, kafka: KafkaSettings, ballots: dict[str, _Ballot]) -> dict[str, LabelledImage]:
    """The images the ballots name, read from the images topic: image key -> LabelledImage."""
    by_spot = {ballot.spot: key for key, ballot in ballots.items() if ballot.spot}
    found: dict[str, LabelledImage] = {}
    for record in _read_to_end(consumer, kafka.images_topic):
        key = by_spot.get((record.topic, record.partition, record.offset))
        if key is None:
            candidate = key_text(record.key)
            key = candidate if candidate in ballots and ballots[candidate].spot is None else None
        if key is None or key in found:
            continue
        content = dict((name, value) for name, value in record.headers or []).get("content-type", b"")
        extension = EXTENSIONS.get(bytes(content or b"").decode("latin-1"), ".jpg")
        source = f"kafka-{record.topic}-p{record.partition}-o{record.offset}{extension}"
        found[key] = LabelledImage(source, dict(ballots[key].votes), bytes(record.value or b""))
    return found


@dataclass(frozen=True)
class Count:
    """What the room's votes decided: each accepted photo's label, each photo set aside and why, and the
    voters set aside whole and why."""

    accepted: dict[str, str]
    set_aside: dict[str, str]
    doubted: dict[str, str]


def _count_once(votes: dict[str, dict[str, str]], served: dict[str, tuple[str, float]]):
    accepted, aside, strikes = {}, {}, Counter()
    for photo, ballot in votes.items():
        (label, count), *rest = Counter(ballot.values()).most_common()
        if rest and rest[0][1] == count:
            aside[photo] = f"the voters disagree ({count} {label}, {rest[0][1]} {rest[0][0]})"
            continue
        verdict, confidence = served.get(photo, (None, 0.0))
        if verdict and verdict != label and confidence >= CONFIDENT and count < CORROBORATION:
            aside[photo] = (
                f"{count} voter against the serving model's {verdict} ({confidence:.2f}): a second voter must agree"
            )
            strikes.update(voter for voter, given in ballot.items() if given == label)
            continue
        accepted[photo] = label
    return accepted, aside, strikes


def count_votes(votes: dict[str, dict[str, str]], served: dict[str, tuple[str, float]]) -> Count:
    """The room's labels as evidence. ``votes``: photo -> {voter: label}, one vote per voter; ``served``:
    photo -> (the serving model's verdict, its probability). A photo's label is its distinct voters'
    majority (a tie counts for nothing); a label against a confident verdict (CONFIDENT) needs
    CORROBORATION voters; a voter who went against confident verdicts alone DOUBTED_MIN times and for more
    than DOUBTED_SHARE of their labels is set aside whole, and the votes are counted again without them."""
    accepted, aside, strikes = _count_once(votes, served)
    cast = Counter(voter for ballot in votes.values() for voter in ballot)
    doubted = {
        voter: f"{strikes[voter]} of their {cast[voter]} labels went alone against confident verdicts"
        for voter in strikes
        if strikes[voter] >= DOUBTED_MIN and strikes[voter] > DOUBTED_SHARE * cast[voter]
    }
    if doubted:
        trimmed = {
            photo: {v: label for v, label in ballot.items() if v not in doubted} for photo, ballot in votes.items()
        }
        accepted, again, _ = _count_once({photo: ballot for photo, ballot in trimmed.items() if ballot}, served)
        aside = {
            photo: "its only voters are set aside: " + ", ".join(sorted(set(votes[photo]) & set(doubted)))
            for photo, ballot in trimmed.items()
            if not ballot
        } | again
    return Count(accepted, aside, doubted)


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


__all__ = [
    "LABELS",
    "Count",
    "LabelledImage",
    "count_votes",
    "image_key_of",
    "label_image",
    "label_problem",
    "label_value",
    "read_labelled",
    "record_ranges",
    "send_label",
    "vote",
    "voter_as_written",
]
