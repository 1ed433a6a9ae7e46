"""What every record of ours carries, read one way: headers and keys as text, who sent it (the learner
header) and who signed it (the one place that reads the signature header), records in arrival order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kafka import KafkaConsumer

from catdog.config import KafkaSettings
from catdog.identity import SIGNATURE_HEADER, Keys, Sender, sender_as_written, signed_header

# The header naming who sent a photo (CATDOG_LEARNER); results carry it as "learner".
LEARNER_HEADER = "learner"


@dataclass(frozen=True)
class Sent:
    filename: str
    topic: str
    partition: int
    offset: int
    key: str
    timestamp: int  # the record's Kafka timestamp (ms): where readers of "what happened since" start


def header_text(value: bytes | None) -> str:
    """A header value as text: null (legal in Kafka) is empty, bytes that are not UTF-8 are replaced."""
    return "" if value is None else bytes(value).decode("utf-8", "replace")


def headers_dict(headers: list[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Headers as text, for display: of a repeated name the last value wins (ours come last)."""
    return {str(name): header_text(value) for name, value in headers or []}


def key_text(key: bytes | None) -> str | None:
    """A record key as text: UTF-8 as is, any other bytes (Avro ids, hashes) as ``0x`` and hex."""
    if not key:
        return None
    try:
        return bytes(key).decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + bytes(key).hex()


def iter_records(consumer: KafkaConsumer, timeout: float, count: int | None) -> Iterator:
    """Records in arrival order until ``count`` or ``timeout`` seconds with nothing new."""
    seen = 0
    while count is None or seen < count:
        batches = consumer.poll(timeout_ms=int(timeout * 1000), max_records=count - seen if count else 500)
        if not batches:
            return
        for records in batches.values():
            for record in records:
                yield record
                seen += 1
                if count is not None and seen >= count:
                    return


def record_sender(
    keys: Keys | None, learner: str, headers: dict[str, str], key: bytes | None, value: bytes | None
) -> Sender:
    """Who sent a record, as far as its signature shows: the one place that reads the signature header.
    ``learner``: the name the record gives (a header or a field of its value); ``headers`` as text
    (:func:`headers_dict`). Without the room's key table (a laptop): the name as written, unverified."""
    if keys is None:
        return sender_as_written(learner)
    return keys.sender(learner, headers.get(SIGNATURE_HEADER), bytes(key or b""), bytes(value or b""))


def signed(kafka: KafkaSettings, learner: str, key: bytes, value: bytes) -> list[tuple[str, bytes]]:
    """The signature header a record of ours carries in a room (signed with the settings' learner key, for
    ``learner``: the learner themself, or the phone the wall relays); none on a laptop."""
    if not kafka.learner_key:
        return []
    return [signed_header(kafka.learner, kafka.learner_key, learner, key, value)]
