"""Kafka I/O: clients built from the settings, sending images, reading images and predictions.

These are the functions the CLI, the classifier service and the notebooks share. An image message is
the raw file bytes (as in the original lab), keyed by the bytes' sha256, with ``filename``,
``content-type`` and ``sent-at`` headers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from catdog import CatdogError
from catdog.config import MAX_LEARNER_CHARS, KafkaSettings
from catdog.identity import SIGNATURE_HEADER, Keys, Sender, sender_as_written, signed_header
from catdog.images import DecodeBudget, DecodedImage, ImageError, decode_image

log = logging.getLogger(__name__)

# Inference on a bounded batch takes seconds; this leaves ample room before the group evicts us.
MAX_POLL_INTERVAL_MS = 300_000
# How long a new client tries to reach a bootstrap server before saying it cannot.
BOOTSTRAP_TIMEOUT_MS = 10_000
# A result is produced after its image, but on another machine's clock: look this far back for it.
CLOCK_SKEW_MS = 60_000
# The header naming who sent a photo (CATDOG_LEARNER); results carry it as "learner".
LEARNER_HEADER = "learner"
# How many of the newest results a learner's "mine first" view looks through.
RECENT_WINDOW = 500


class KafkaUnavailable(CatdogError):
    """No broker answers at the configured bootstrap address."""


class ImageTooLarge(CatdogError):
    """An image is over the pipeline's size limit and was not sent."""


RECONNECT_BACKOFF_MAX_MS = 2_000


def client_config(kafka: KafkaSettings) -> dict:
    """Connection settings common to producers, consumers and the admin client."""
    config: dict = {
        "bootstrap_servers": kafka.bootstrap_servers.split(","),
        "security_protocol": kafka.security_protocol,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        # kafka-python backs off up to 30 s between tries to reach a broker that went away: after a 15 s
        # restart of the room's Kafka the classifier and the wall waited ~11 s more (tests/test_restarts.py).
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    for option in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if getattr(kafka, option) is not None:
            config[option] = str(getattr(kafka, option))
    if kafka.sasl_mechanism:
        config.update(sasl_mechanism=kafka.sasl_mechanism, sasl_plain_username=kafka.sasl_username,
                      sasl_plain_password=kafka.sasl_password)
    return config


def _unavailable(kafka: KafkaSettings, error: Exception) -> KafkaUnavailable:
    said = diagnose(kafka)
    if said:
        return KafkaUnavailable(f"cannot use Kafka at {kafka.bootstrap_servers}: {said}")
    if is_local(kafka.bootstrap_servers) and not kafka.learner_key:
        return KafkaUnavailable(
            f"cannot reach Kafka at {kafka.bootstrap_servers} ({error}); start the local broker with "
            "`catdog broker start`, or set KAFKA_BOOTSTRAP_SERVERS"
        )
    # A room's Kafka: restarting (a drained node, an update) or away; nothing for the learner to start.
    return KafkaUnavailable(
        f"cannot reach the room's Kafka at {kafka.bootstrap_servers} ({error}): it may be restarting; try again in "
        "a minute, and tell your instructor if it lasts (nothing you sent before was lost)"
    )


def is_local(bootstrap_servers: str) -> bool:
    """Whether every bootstrap address is this machine (the embedded broker's, a laptop's lab)."""
    hosts = [address.rsplit(":", 1)[0].strip("[]") for address in bootstrap_servers.split(",")]
    return all(host in ("localhost", "127.0.0.1", "::1") for host in hosts)


def diagnose(kafka: KafkaSettings, timeout: float = 5.0) -> str | None:
    """Why a broker that listens would not let us in, in one line naming the setting to check; None when
    nothing listens (or nothing better can be said). Kafka clients report a refused TLS handshake or a
    refused login as a connection that keeps failing, so this asks the first bootstrap address directly:
    does it speak TLS, is its certificate signed by our CA, and (with SASL) it must be the login."""
    import socket
    import ssl

    host, _, port = kafka.bootstrap_servers.split(",")[0].strip().rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError):
        return None
    tls = kafka.security_protocol in ("SSL", "SASL_SSL")
    context = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if not tls:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            pass
    except ssl.SSLCertVerificationError as error:
        return (f"its certificate is not one we trust ({error.verify_message}): check KAFKA_SSL_CAFILE "
                f"({kafka.ssl_cafile or 'unset: the system CAs'}), the room's CA certificate")
    except (ssl.SSLError, OSError):
        return ("it does not speak TLS: check KAFKA_SECURITY_PROTOCOL" if tls else None)
    if not tls:
        return f"it speaks TLS: set KAFKA_SECURITY_PROTOCOL=SASL_SSL (now {kafka.security_protocol}) and KAFKA_SSL_CAFILE"
    if kafka.sasl_mechanism:
        return (f"TLS works but it refused the login as {kafka.sasl_username} ({kafka.sasl_mechanism}): check "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (the KafkaUser's Secret)")
    return None


def make_producer(kafka: KafkaSettings, **overrides) -> KafkaProducer:
    """A producer that waits for the broker's acknowledgement (acks=all) and fits the largest image."""
    try:
        return KafkaProducer(**{
            **client_config(kafka),
            "acks": "all",
            "max_request_size": kafka.max_message_bytes,
            "linger_ms": 0,  # one photo is one request: waiting to batch would only add latency
            "retries": 5,
            **overrides,
        })
    except KafkaTimeoutError as error:
        raise _unavailable(kafka, error) from None


def make_consumer(kafka: KafkaSettings, *topics: str, group_id: str | None = None, **overrides) -> KafkaConsumer:
    """A consumer that reads from the earliest offset, never auto-commits, and fetches the largest image.

    With ``group_id=None`` it joins no group (reading, e.g. for ``catdog results``, commits nothing).
    """
    config = {
        **client_config(kafka),
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "fetch_max_bytes": max(52428800, kafka.max_message_bytes),
        "max_partition_fetch_bytes": kafka.max_message_bytes,
        # From the settings: Kafka's defaults, the embedded broker's where it runs. The heartbeat runs in
        # a background thread, so slow inference cannot end the session.
        "session_timeout_ms": kafka.session_timeout_ms,
        "heartbeat_interval_ms": kafka.heartbeat_interval_ms,
        "max_poll_interval_ms": MAX_POLL_INTERVAL_MS,
        "fetch_max_wait_ms": kafka.fetch_wait_ms,
        **overrides,
    }
    try:
        return KafkaConsumer(*topics, **config)
    except KafkaTimeoutError as error:
        raise _unavailable(kafka, error) from None


def ensure_topics(kafka: KafkaSettings, partitions: int = 1) -> list[str]:
    """Create the images, predictions, dead-letter, feedback, moderation and challenge topics if missing;
    returns those created."""
    try:
        admin = KafkaAdminClient(**client_config(kafka))
    except KafkaTimeoutError as error:
        raise _unavailable(kafka, error) from None
    created = []
    sized = {"max.message.bytes": str(kafka.max_message_bytes)}
    wanted = {kafka.images_topic: sized, kafka.predictions_topic: sized, kafka.dlq_topic: sized,
              # the latest verdict per image is what counts: compaction keeps it, drops what it replaced
              kafka.feedback_topic: {"cleanup.policy": "compact"},
              kafka.moderation_topic: {"cleanup.policy": "compact"},
              kafka.challenge_topic: sized, kafka.submissions_topic: {}}
    try:
        existing = set(admin.list_topics())
        for topic, configs in wanted.items():
            if topic in existing:
                continue
            try:  # moderation in one partition: its records apply in the order the instructor made them;
                # the challenge's in one too (a set is read whole, submissions scored in the order sent)
                count = 1 if topic in (kafka.moderation_topic, kafka.challenge_topic, kafka.submissions_topic) \
                    else partitions
                admin.create_topics([NewTopic(topic, count, 1, topic_configs=configs)])
                created.append(topic)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
    return created


def image_key(data: bytes) -> bytes:
    """The message key: the image's sha256, so a resend of the same photo is recognisable."""
    return hashlib.sha256(data).hexdigest().encode()


def content_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


@dataclass(frozen=True)
class Sent:
    filename: str
    topic: str
    partition: int
    offset: int
    key: str
    timestamp: int  # the record's Kafka timestamp (ms): where readers of "what happened since" start


def send_image(producer: KafkaProducer, kafka: KafkaSettings, data: bytes, filename: str,
               topic: str | None = None, timeout: float = 30.0, learner: str | None = None) -> Sent:
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
        ("sent-at", datetime.now(timezone.utc).isoformat().encode()),
    ]
    learner = kafka.learner if learner is None else learner
    if learner:  # who sent it: the results carry it, and each learner's cells show their own first
        headers.append((LEARNER_HEADER, learner.encode()))
    key = image_key(data)
    if kafka.learner_key:  # in a room: signed, so the classifier names us only if we are who we say
        headers.append(signed_header(kafka.learner, kafka.learner_key, learner, key, data))
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
            refused.append(f"{path}: {path.stat().st_size:,} bytes is over the {max_bytes:,}-byte limit "
                           "(CATDOG_MAX_IMAGE_BYTES); not sent")
        else:
            items.append((path.name, path))
    return items, refused


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


def decode_record(record, kafka: KafkaSettings, target_size: int | None = None, budget: DecodeBudget | None = None,
                  keep_data: bool = True, keys: Keys | None = None) -> ReceivedImage:
    """One record through the one decoder, with the pipeline's size limits. Never raises: whatever is
    wrong with the record (its bytes, its key, its headers, a bug) is its ``error``. ``keep_data=False``
    keeps the raw bytes only when a dead letter needs them (the service). ``keys``: the room's key table,
    which names the sender only under their own signature (without one, the name as written)."""
    value = record.value if isinstance(record.value, (bytes, bytearray)) else b""
    image, error = None, None
    try:
        image = decode_image(bytes(value), max_bytes=kafka.max_image_bytes, max_pixels=kafka.max_image_pixels,
                             target_size=target_size, budget=budget)
    except ImageError as caught:
        error = caught
    except Exception as caught:  # noqa: BLE001 - one record's failure must not stop the others
        error = RecordError(f"decoding failed: {type(caught).__name__}: {caught}")
    raw_headers = tuple((str(name), None if header is None else bytes(header)) for name, header in record.headers or [])
    headers = headers_dict(list(raw_headers))
    learner = headers.get(LEARNER_HEADER, "")[:MAX_LEARNER_CHARS]
    sender = (sender_as_written(learner) if keys is None else
              keys.sender(learner, headers.get(SIGNATURE_HEADER), bytes(record.key or b""), bytes(value)))
    return ReceivedImage(
        topic=record.topic, partition=record.partition, offset=record.offset, key=key_text(record.key),
        headers=headers, data=bytes(value) if keep_data or error else b"", image=image, error=error,
        raw_key=None if record.key is None else bytes(record.key), raw_headers=raw_headers, sender=sender,
    )


def fetch_images(consumer: KafkaConsumer, kafka: KafkaSettings, count: int = 1, timeout: float = 10.0,
                 commit: bool = True) -> list[ReceivedImage]:
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


def assign_every_partition(consumer: KafkaConsumer, *topics: str) -> list[TopicPartition] | None:
    """Assign ``consumer`` (which joins no group) every partition of ``topics``, in order; None, and
    nothing assigned, while any of them does not exist yet. The one way our readers take a topic whole."""
    found = {topic: consumer.partitions_for_topic(topic) for topic in topics}
    if not all(found.values()):
        return None
    assigned = [TopicPartition(topic, partition) for topic in topics for partition in sorted(found[topic])]
    consumer.assign(assigned)
    return assigned


def seek_last(consumer: KafkaConsumer, partitions: list[TopicPartition], last: int) -> None:
    """Position each partition ``last`` records before its end (at its beginning if it holds fewer)."""
    beginnings, ends = consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)
    for partition in partitions:
        consumer.seek(partition, max(beginnings[partition], ends[partition] - last))


def make_reader(kafka: KafkaSettings, topic: str, *, since_ms: int | None = None, sent: Sent | None = None,
                last: int | None = None) -> KafkaConsumer:
    """A consumer in no group, on every partition of ``topic``, positioned for one learner's question.

    ``sent``: from that record on (its own partition at its offset, the others from its timestamp);
    ``since_ms``: from the first record at or after that Kafka timestamp; ``last``: the last ``last``
    records of each partition; none of them: from the beginning. Joining no group, it never waits on
    (or becomes) a stale group member, and commits nothing.
    """
    consumer = make_consumer(kafka)
    try:
        assigned = assign_every_partition(consumer, topic)
        if not assigned:
            raise CatdogError(f"topic {topic!r} does not exist on {kafka.bootstrap_servers}")
        if sent is not None:
            since_ms = sent.timestamp
        if since_ms is not None:
            # The ends are read *before* the time lookup, and a partition with nothing that recent yet is
            # positioned there: a record written between the lookup and the first fetch is then read.
            # `seek_to_end` resolves the end only at the first poll, past such a record, and the learner
            # waited the whole timeout for a result that had come (the "stalled" classifier of issue 40).
            ends = consumer.end_offsets(assigned)
            found = consumer.offsets_for_times({partition: since_ms for partition in assigned})
            for partition in assigned:
                match = found.get(partition)
                # The embedded broker answers "none" as offset 0 with timestamp -1, Kafka as None.
                if match is None or match.timestamp < 0:
                    consumer.seek(partition, ends[partition])  # nothing that recent yet: wait for what comes
                else:
                    consumer.seek(partition, match.offset)
        elif last is not None:
            seek_last(consumer, assigned, last)
        else:
            consumer.seek_to_beginning(*assigned)
        if sent is not None:
            consumer.seek(TopicPartition(sent.topic, sent.partition), sent.offset)
    except BaseException:
        consumer.close()
        raise
    return consumer


def collect_predictions(kafka: KafkaSettings, sent: list[Sent], timeout: float = 60.0) -> dict[tuple[str, int, int], dict]:
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


def latest_predictions(kafka: KafkaSettings, count: int = 5, timeout: float = 5.0,
                       learner: str | None = None) -> list[dict]:
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
    filename = filename if len(filename) <= width else "…" + filename[-(width - 1):]
    cells = " ".join(f"{result[name]['label']} ({result[name]['p_dog']:.2f})".ljust(18) for name in ("quick", "pretrained"))
    source = result["source"]
    where = f"{source['topic']}[{source['partition']}]@{source['offset']}"
    return (f"{filename:<{width}} {cells} {'yes' if result['agree'] else 'NO ':<6} {where:<20} "
            f"{result.get('learner') or '-'}").rstrip()


PREDICTION_HEADER = f"{'image':<32} {'quick':<18} {'pretrained':<18} agree  {'source':<20} learner"


def _iter_records(consumer: KafkaConsumer, timeout: float, count: int | None) -> Iterator:
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


def prediction_problem(result: object) -> str | None:
    """Why a predictions record is not one of the classifier's results (None if it is one)."""
    if not isinstance(result, dict):
        return f"JSON {type(result).__name__}, not an object"
    source = result.get("source")
    if not isinstance(source, dict) or not {"topic", "partition", "offset"} <= source.keys():
        return "no source topic/partition/offset"
    for model in ("quick", "pretrained"):
        verdict = result.get(model)
        if not isinstance(verdict, dict) or verdict.get("label") not in ("cat", "dog") \
                or not isinstance(verdict.get("p_dog"), (int, float)):
            return f"no {model} verdict"
    return None


def _log_skipped(record, reason: str) -> None:
    log.warning("skipped %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)


def iter_predictions(consumer: KafkaConsumer, timeout: float = 10.0, count: int | None = None,
                     on_skip: Callable[[object, str], None] = _log_skipped) -> Iterator[dict]:
    """Predictions as published by the classifier service, until ``count`` records or ``timeout`` s of
    silence. Anything else on the topic (another client's records) is passed to ``on_skip`` with why."""
    for record in _iter_records(consumer, timeout, count):
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
    for record in _iter_records(consumer, timeout, count):
        headers = headers_dict(record.headers)
        yield {
            "key": key_text(record.key),
            "filename": headers.get("filename") or f"{record.topic}-{record.partition}-{record.offset}",
            "learner": headers.get(LEARNER_HEADER, "")[:MAX_LEARNER_CHARS],
            "error-class": headers.get("error-class") or "unknown",
            "error": headers.get("error", ""),
            "source": {"topic": headers.get("source-topic"), "partition": _int_header(headers, "source-partition"),
                       "offset": _int_header(headers, "source-offset")},
            "bytes": len(record.value or b""),
        }


__all__ = [
    "KafkaError", "KafkaUnavailable", "ImageTooLarge", "ReceivedImage", "RecordError", "Sent", "client_config", "decode_record",
    "header_text", "headers_dict", "key_text", "prediction_problem",
    "collect_predictions", "ensure_topics", "mine_first", "fetch_images", "find_prediction", "format_prediction", "image_key", "iter_dead_letters",
    "iter_predictions", "latest_predictions", "once_each", "make_consumer", "make_producer", "make_reader", "send_image",
]
