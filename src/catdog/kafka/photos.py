"""Photos on Kafka: sent as the raw file bytes (as in the original lab), keyed by the bytes' sha256, with
``filename``, ``content-type`` and ``sent-at`` headers; read back through the one decoder.
"""

from __future__ import annotations

import hashlib
import mimetypes
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

from catdog import CatdogError
from catdog.config import MAX_LEARNER_CHARS, KafkaSettings
from catdog.identity import Keys, Sender
from catdog.images import DecodeBudget, DecodedImage, ImageError, decode_image
from catdog.kafka.records import LEARNER_HEADER, Sent, headers_dict, key_text, record_sender, signed


class ImageTooLarge(CatdogError):
    """An image is over the pipeline's size limit and was not sent."""


def image_key(data: bytes) -> bytes:
    """The message key: the image's sha256, so a resend of the same photo is recognisable."""
    return hashlib.sha256(data).hexdigest().encode()


def content_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def send_image(
    producer: KafkaProducer,
    kafka: KafkaSettings,
    data: bytes,
    filename: str,
    topic: str | None = None,
    timeout: float = 30.0,
    learner: str | None = None,
) -> Sent:
    """Send one image and wait for the broker to store it. Over-size images are refused before sending.
    ``learner``: who sent it, when not the settings' learner (the wall sends for every phone)."""
    if len(data) > kafka.max_image_bytes:
        raise ImageTooLarge(
            f"{filename} is {len(data):,} bytes, more than the {kafka.max_image_bytes:,}-byte limit "
            "(CATDOG_MAX_IMAGE_BYTES); it was not sent"
        )
    headers = [
        ("filename", filename.encode()),
        ("content-type", content_type(filename).encode()),
        ("sent-at", datetime.now(UTC).isoformat().encode()),
    ]
    learner = kafka.learner if learner is None else learner
    if learner:  # who sent it: the results carry it, and each learner's cells show their own first
        headers.append((LEARNER_HEADER, learner.encode()))
    key = image_key(data)
    headers += signed(kafka, learner, key, data)  # in a room: the classifier names us only if we are who we say
    metadata = producer.send(topic or kafka.images_topic, value=data, key=key, headers=headers).get(timeout=timeout)
    timestamp = metadata.timestamp if metadata.timestamp and metadata.timestamp > 0 else int(time.time() * 1000)
    return Sent(filename, metadata.topic, metadata.partition, metadata.offset, key.decode(), timestamp)


def sendable(paths: Iterable[Path], max_bytes: int) -> tuple[list[tuple[str, Path | None]], list[str]]:
    """What ``catdog send`` sends, checked before a connection is made: (name, path) per file, ``None`` for
    standard input (``-``), and one line per file it refuses (not a file, or over the size limit)."""
    items: list[tuple[str, Path | None]] = []
    refused: list[str] = []
    for path in paths:
        if str(path) == "-":
            items.append(("stdin", None))
        elif not path.is_file():
            refused.append(f"{path}: not a file")
        elif path.stat().st_size > max_bytes:
            refused.append(
                f"{path}: {path.stat().st_size:,} bytes is over the {max_bytes:,}-byte limit "
                "(CATDOG_MAX_IMAGE_BYTES); not sent"
            )
        else:
            items.append((path.name, path))
    return items, refused


class RecordError(CatdogError):
    """A record that failed for a reason other than its image bytes: ``reason`` is ``internal-error``."""

    reason = "internal-error"


@dataclass(frozen=True)
class ReceivedImage:
    """An image read from the topic: decoded (or why not), plus where it came from, key and headers as sent."""

    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    data: bytes
    image: DecodedImage | None
    error: ImageError | RecordError | None
    raw_key: bytes | None = None
    raw_headers: tuple[tuple[str, bytes | None], ...] = ()
    sender: Sender | None = None  # who sent it, as their signature shows (catdog.identity)

    @property
    def filename(self) -> str:
        return self.headers.get("filename") or f"{self.topic}-{self.partition}-{self.offset}"


def decode_record(
    record,
    kafka: KafkaSettings,
    target_size: int | None = None,
    budget: DecodeBudget | None = None,
    keep_data: bool = True,
    keys: Keys | None = None,
) -> ReceivedImage:
    """One record through the one decoder, with the pipeline's size limits. Never raises: whatever is
    wrong with the record (its bytes, its key, its headers, a bug) is its ``error``. ``keep_data=False``
    keeps the raw bytes only when a dead letter needs them (the service). ``keys``: the room's key table,
    which names the sender only under their own signature (without one, the name as written)."""
    value = record.value if isinstance(record.value, (bytes, bytearray)) else b""
    image, error = None, None
    try:
        image = decode_image(
            bytes(value),
            max_bytes=kafka.max_image_bytes,
            max_pixels=kafka.max_image_pixels,
            target_size=target_size,
            budget=budget,
        )
    except ImageError as caught:
        error = caught
    except Exception as caught:  # noqa: BLE001 - one record's failure must not stop the others
        error = RecordError(f"decoding failed: {type(caught).__name__}: {caught}")
    raw_headers = tuple((str(name), None if header is None else bytes(header)) for name, header in record.headers or [])
    headers = headers_dict(list(raw_headers))
    learner = headers.get(LEARNER_HEADER, "")[:MAX_LEARNER_CHARS]
    sender = record_sender(keys, learner, headers, record.key, bytes(value))
    return ReceivedImage(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=key_text(record.key),
        headers=headers,
        data=bytes(value) if keep_data or error else b"",
        image=image,
        error=error,
        raw_key=None if record.key is None else bytes(record.key),
        raw_headers=raw_headers,
        sender=sender,
    )


def fetch_images(
    consumer: KafkaConsumer, kafka: KafkaSettings, count: int = 1, timeout: float = 10.0, commit: bool = True
) -> list[ReceivedImage]:
    """Up to ``count`` next images (fewer if ``timeout`` seconds pass first), decoded with the one decoder.

    The original lab's pattern: call it with ``count=1`` in a cell and run the cell again for the next.
    """
    received: list[ReceivedImage] = []
    deadline = time.monotonic() + timeout
    while len(received) < count and time.monotonic() < deadline:
        remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
        batches = consumer.poll(timeout_ms=min(remaining_ms, 1000), max_records=count - len(received))
        for records in batches.values():
            received += [decode_record(record, kafka) for record in records]
    if commit and received and consumer.config.get("group_id"):
        consumer.commit()
    return received
