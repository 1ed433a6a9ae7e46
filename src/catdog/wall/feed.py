"""The topics in: the images (thumbnails), the predictions (cards, counts), the feedback (labels), the
moderation, and when the room runs its challenge, the submissions (the leaderboard)."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable

from kafka import TopicPartition
from kafka.errors import KafkaError

from catdog.config import KafkaSettings
from catdog.images import DecodeBudget
from catdog.kafka.clients import assign_every_partition, make_consumer, seek_last
from catdog.kafka.photos import decode_record
from catdog.kafka.records import key_text
from catdog.kafka.results import prediction_problem
from catdog.labels import image_key_of, label_problem, vote
from catdog.wall.board import Board
from catdog.wall.moderation import Moderation, parse
from catdog.wall.state import THUMBNAILS_KEPT, WallState

log = logging.getLogger("catdog.wall")

THUMBNAIL_SIDE = 320  # pixels, the longer side: a card on a 1080p projector shows it at ~300
THUMBNAIL_QUALITY = 80
# Full-size decodes in flight, uploads' checks and thumbnails together; an image whose decode alone needs
# more is refused (no thumbnail, no upload): the wall's memory limit is 768 MiB.
DECODE_MEMORY_BYTES = 256 * 1024 * 1024
RETRY_SECONDS = 5.0


def thumbnail_jpeg(decoded_image) -> bytes:
    """A small JPEG re-encoded from the decoded pixels (no metadata, no sender bytes)."""
    image = decoded_image.copy()
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()


class Feed(threading.Thread):
    """Reads the images, predictions, feedback and moderation topics into the wall's state, in no consumer
    group (each wall replica sees everything and commits nothing): the last photos of each partition
    (thumbnails for the first cards), every result and every label (the room's counts), every moderation
    decision. Reconnects after a broker error."""

    def __init__(
        self,
        kafka: KafkaSettings,
        state: WallState,
        moderation: Moderation,
        emit: Callable[[list], None],
        budget: DecodeBudget,
    ) -> None:
        super().__init__(name="wall-feed", daemon=True)
        self.kafka, self.state, self.moderation, self.emit = kafka, state, moderation, emit
        self.budget = budget  # the wall's one budget: the uploads' checks and the thumbnails share it
        self.ready, self.stopping = threading.Event(), threading.Event()
        self.skipped = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._read()
            except (KafkaError, OSError) as error:
                log.warning("wall feed: %s; retrying in %.0f s", error, RETRY_SECONDS)
                self.stopping.wait(RETRY_SECONDS)
            except Exception:  # noqa: BLE001 - a wall that stops updating must say so and start again
                log.exception("wall feed failed; starting again in %.0f s", RETRY_SECONDS)
                self.stopping.wait(RETRY_SECONDS)

    def _assign(self, consumer) -> dict:
        """Every partition of the three topics (waiting for any not made yet): the images' last
        THUMBNAILS_KEPT records, the others from the beginning. Their end offsets at the start."""
        topics = wall_topics(self.kafka, self.state, consumer)
        while not self.stopping.is_set():
            assigned = assign_every_partition(consumer, *topics)
            if assigned:
                break
            missing = [topic for topic in topics if not consumer.partitions_for_topic(topic)]
            log.warning("wall feed: waiting for topics %s", ", ".join(missing))
            self.stopping.wait(RETRY_SECONDS)
        else:
            return {}
        ends = consumer.end_offsets(assigned)
        images = [partition for partition in assigned if partition.topic == self.kafka.images_topic]
        seek_last(consumer, images, THUMBNAILS_KEPT)  # thumbnails only for what may still be shown
        consumer.seek_to_beginning(*(partition for partition in assigned if partition not in images))
        return ends

    def _read(self) -> None:
        consumer = make_consumer(self.kafka)
        try:
            ends = self._assign(consumer)
            while not self.stopping.is_set():
                for records in consumer.poll(timeout_ms=500, max_records=100).values():
                    for record in records:
                        self._handle(record)
                if not self.ready.is_set() and all(consumer.position(p) >= end for p, end in ends.items()):
                    self.ready.set()  # caught up with what was on the topics when it started
                    log.info("wall feed: caught up (%d results)", len(self.state.seen))
        finally:
            consumer.close()

    def _handle(self, record) -> None:
        """One record of any of the three topics: whatever a client wrote, a skip with a reason at worst."""
        if record.topic == self.kafka.moderation_topic:
            events, problem = moderation_events(record, self.moderation, self.state.board)
        elif record.topic == self.kafka.progress_topic:  # the instructor's board polls; no viewer's event
            events, problem = [], self.state.board.add_progress(record)
        elif record.topic == self.kafka.submissions_topic:  # a refusal is news too: shown under the board
            events, problem = self.state.leaderboard.add(record)
        else:
            events, problem = record_events(record, self.kafka, self.state, self.budget)
        if problem is None or events:
            self.emit(events)
        if problem is not None:
            self.skipped += 1
            log.warning("wall feed: skipped %s[%d]@%d: %s", record.topic, record.partition, record.offset, problem)


def wall_topics(kafka: KafkaSettings, state: WallState, consumer) -> tuple[str, ...]:
    """The topics the wall reads: the challenge's submissions when it runs, the board's progress topic
    where the room has one (a cluster set up before the board has not)."""
    topics = (kafka.images_topic, kafka.predictions_topic, kafka.feedback_topic, kafka.moderation_topic)
    if state.leaderboard is not None:
        topics += (kafka.submissions_topic,)
    if state.board is not None and consumer.partitions_for_topic(kafka.progress_topic):
        topics += (kafka.progress_topic,)
    return topics


def record_events(record, kafka: KafkaSettings, state: WallState, budget: DecodeBudget) -> tuple[list, str | None]:
    """A record of the images, predictions or feedback topic into ``state``: the viewers' events, or why
    it was skipped. An image that does not decode is no problem here (the classifier dead-letters it)."""
    try:
        if record.topic == kafka.images_topic:
            received = decode_record(record, kafka, target_size=THUMBNAIL_SIDE, budget=budget, keep_data=False)
            jpeg = None if received.image is None else thumbnail_jpeg(received.image.image)
            return state.add_thumbnail(record.partition, record.offset, jpeg), None
        value = json.loads(record.value) if record.value else None
        if record.topic == kafka.predictions_topic:
            problem = prediction_problem(value)
            return (state.add_result(value), None) if problem is None else ([], problem)
        key = key_text(record.key)
        problem = label_problem(key, value)
        if problem is None and state.board is not None:  # who voted, as the signature shows: the board's count
            counted = vote(record, state.board.keys)
            if isinstance(counted, tuple):
                state.board.add_vote(counted[1], counted[0], int(time.time() * 1000))
        return (state.add_label(image_key_of(key), value["label"]), None) if problem is None else ([], problem)
    except (ValueError, TypeError, KeyError) as error:
        return [], f"{type(error).__name__}: {error}"


def read_thumbnail(
    kafka: KafkaSettings, partition: int, offset: int, budget: DecodeBudget, timeout: float = 5.0
) -> bytes | None:
    """A photo's thumbnail read again from the images topic (its own was dropped from the cache while a
    backlog passed): one record fetched, decoded and shrunk; None if it is gone or does not decode."""
    consumer = make_consumer(kafka)
    try:
        where = TopicPartition(kafka.images_topic, partition)
        consumer.assign([where])
        consumer.seek(where, offset)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500, max_records=1).get(where, []):
                if record.offset != offset:
                    return None  # retention removed it
                received = decode_record(record, kafka, target_size=THUMBNAIL_SIDE, budget=budget, keep_data=False)
                return None if received.image is None else thumbnail_jpeg(received.image.image)
    finally:
        consumer.close()
    return None


def moderation_events(record, moderation: Moderation, board: Board | None = None) -> tuple[list, str | None]:
    """A record of the moderation topic applied (the board's own to the board): the viewers' events, or why
    it was skipped."""
    try:
        key, value = key_text(record.key) or "", parse(record.value)
        if board is not None and board.apply(key, value):
            return [], None
        return moderation.apply(key, value), None
    except (ValueError, TypeError) as error:
        return [], f"{type(error).__name__}: {error}"
