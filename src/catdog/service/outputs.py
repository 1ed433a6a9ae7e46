"""What the classifier writes: one JSON result per image (both verdicts, who sent it as the signature shows,
which model versions), and the headers of a dead letter (why, and where the record came from)."""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime

from catdog.config import MAX_LEARNER_CHARS
from catdog.kafka.photos import ReceivedImage
from catdog.kafka.records import LEARNER_HEADER
from catdog.predict import Verdict

log = logging.getLogger("catdog.service")


# Which replica published a result: the pod name on OpenShift (HOSTNAME), plus the process id.
INSTANCE = f"{socket.gethostname()}-{os.getpid()}"


def result_record(
    image: ReceivedImage,
    verdicts: dict[str, Verdict],
    seconds: dict[str, float],
    batch: int,
    versions: dict[str, str] | None = None,
    replayed: str | None = None,
) -> dict:
    """The published result: where the image came from, each model's verdict (and the version of the
    model file that gave it), and whether they agree."""
    record: dict = {
        "key": image.key,
        "source": {"topic": image.topic, "partition": image.partition, "offset": image.offset},
        "filename": image.filename,
        # Who sent it: in a room, only a name the sender's own key signed (catdog.identity); a claim no key
        # vouches for is kept apart, never shown as the learner.
        "learner": image.sender.name if image.sender else "",
        "learner_verified": bool(image.sender and image.sender.verified),
    }
    claimed = image.headers.get(LEARNER_HEADER, "")[:MAX_LEARNER_CHARS]
    if image.sender and claimed and not image.sender.verified and image.sender.name != claimed:
        record["learner_claimed"] = claimed
    if replayed:  # a copy of a photo someone signed, sent again by anyone: classified, shown as no one's
        record["replay"] = replayed
    for name, verdict in verdicts.items():
        record[name] = {
            "label": verdict.label,
            "p_dog": round(verdict.p_dog, 4),
            # The batched call's time shared out over its images.
            "inference_ms": round(seconds[name] / batch * 1000, 2),
        }
        if versions and name in versions:
            record[name]["version"] = versions[name]
    record["agree"] = len({verdict.label for verdict in verdicts.values()}) == 1
    record["classified_at"] = datetime.now(UTC).isoformat()
    record["instance"] = INSTANCE
    return record


def dead_letter_headers(image: ReceivedImage) -> list[tuple[str, bytes]]:
    """The sender's headers as sent (a null value becomes empty: our client cannot write null), then why
    the message was refused and where it came from. Readers take the last value of a name: ours."""
    assert image.error is not None
    kept = [(name, value or b"") for name, value in image.raw_headers]
    extra = {
        "error": str(image.error),
        "error-class": image.error.reason,
        "source-topic": image.topic,
        "source-partition": str(image.partition),
        "source-offset": str(image.offset),
        LEARNER_HEADER: image.sender.name if image.sender else "",  # who sent it, as the signature shows
    }
    return kept + [(name, value.encode()) for name, value in extra.items()]
