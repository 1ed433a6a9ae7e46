"""One batch through the service: polled, decoded in a pool (the next batch while this one is classified),
classified by the models it was decoded for (a failing image alone goes to the dead letters), published
and observed in the metrics."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import keras
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import (
    CorruptRecordError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnsupportedCodecError,
)
from kafka.structs import OffsetAndMetadata, TopicPartition

from catdog import threads
from catdog.config import KafkaSettings
from catdog.identity import Replays, Sender, read_keys
from catdog.images import DecodeBudget
from catdog.kafka.photos import ReceivedImage, RecordError, decode_record
from catdog.metrics import ServiceMetrics
from catdog.predict import classify_timed, largest_input
from catdog.service.group import batch_offsets
from catdog.service.outputs import dead_letter_headers, result_record
from catdog.service.watcher import ModelWatcher

log = logging.getLogger("catdog.service")


POLL_TIMEOUT_MS = 1000
# A stop (SIGTERM) waits at most for the batch in hand, its acknowledgements and the two closes: within
# the classifier Deployment's 60 s grace period (terminationGracePeriodSeconds), whatever the broker does.
SEND_TIMEOUT_SECONDS = 20.0  # for all of one batch's acknowledgements together


@dataclass
class Batch:
    """A polled batch on its way: where each record came from, its decode in the pool, and the models
    (with their versions) it was decoded for. A swap between its start and its end serves the next batch:
    this one is classified by the models it was sized for, and its results name them."""

    positions: list[tuple[str, int, int, int]]  # topic, partition, offset, timestamp (ms)
    decoding: list[Future] = field(default_factory=list)
    models: dict[str, keras.Model] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


def classify_isolating(models: dict[str, keras.Model], received: list[ReceivedImage]):
    """Both models on the decoded images, batched. If the batch fails, each image alone: one that still
    fails becomes a dead letter (``internal-error``) instead of taking the batch down with it. Returns the
    images (those that failed now carry their error), the verdicts of the good ones, and seconds per model."""
    good = [image for image in received if image.error is None]
    try:
        verdicts, seconds = classify_timed(models, [image.image for image in good])
        return received, verdicts, seconds
    except Exception as error:  # noqa: BLE001 - isolate the record that caused it
        log.warning(
            "classifying a batch of %d failed (%s: %s); classifying one at a time",
            len(good),
            type(error).__name__,
            error,
        )
    outcome: dict[int, tuple] = {}
    for image in good:
        try:
            outcome[id(image)] = classify_timed(models, [image.image])
        except Exception as error:  # noqa: BLE001 - one image alone fails: its own dead letter, not the batch
            outcome[id(image)] = RecordError(f"classifying failed: {type(error).__name__}: {error}")
    checked = [
        replace(image, image=None, error=outcome[id(image)])
        if isinstance(outcome.get(id(image)), RecordError)
        else image
        for image in received
    ]
    kept = [outcome[id(image)] for image in good if not isinstance(outcome[id(image)], RecordError)]
    seconds = {name: sum(spent[name] for _, spent in kept) for name in models} if kept else {}
    return checked, [verdicts[0] for verdicts, _ in kept], seconds


def observe(metrics: ServiceMetrics, received, verdicts, seconds, positions) -> None:
    """A published batch in the metrics: its size, time per model, verdicts, dead letters, latency."""
    metrics.batch_size.observe(len(positions))
    for name, spent in seconds.items():
        metrics.inference_seconds.labels(name).observe(spent)
    for verdict in verdicts:
        for name, v in verdict.items():
            metrics.classified.labels(name, v.label).inc()
            metrics.p_dog.labels(name).observe(v.p_dog)
        metrics.agreements.labels(str(len({v.label for v in verdict.values()}) == 1).lower()).inc()
    for image in received:
        if image.error is not None:
            metrics.dead_letters.labels(image.error.reason).inc()
    now_ms = time.time() * 1000
    for *_, timestamp in positions:
        if timestamp and timestamp > 0:
            metrics.end_to_end_seconds.observe(max(0.0, now_ms - timestamp) / 1000)


class Publisher:
    """Results and dead letters out: every record of a batch ends as one or the other, acknowledged by the
    broker before the batch's offsets may be committed."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.replays = Replays()  # the signed photos this instance has attributed (catdog.identity)

    def publish(
        self, producer: KafkaProducer, received: list[ReceivedImage], verdicts, seconds, versions: dict[str, str]
    ) -> None:
        """Send the batch's results and dead letters; wait (SEND_TIMEOUT_SECONDS in all) for every
        acknowledgement. Raises if one did not come: the batch is then not committed."""
        good = [image for image in received if image.error is None]
        futures = []
        for image, verdict in zip(good, verdicts, strict=True):
            replayed = image.sender and self.replays.problem(image.sender, (image.topic, image.partition, image.offset))
            if replayed:
                image = replace(image, sender=Sender("", False))
            value = json.dumps(result_record(image, verdict, seconds, len(good), versions, replayed or None)).encode()
            futures.append((None, producer.send(self.kafka.predictions_topic, key=image.raw_key, value=value)))
        for image in received:
            if image.error is not None:
                log.info("dead letter %s [%d]@%d: %s", image.filename, image.partition, image.offset, image.error)
                futures.append((image, self.send_dead_letter(producer, image)))
        deadline = time.monotonic() + SEND_TIMEOUT_SECONDS

        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())

        producer.flush(timeout=remaining())
        for image, future in futures:
            try:
                future.get(timeout=remaining())  # raises if the broker did not acknowledge in time
            except (MessageSizeTooLargeError, RecordListTooLargeError):
                if image is None:
                    raise
                self.send_dead_letter(producer, image, keep_value=False).get(timeout=remaining())

    def send_dead_letter(self, producer: KafkaProducer, image: ReceivedImage, keep_value: bool = True):
        """The record's own bytes, key and headers plus why. Bytes too big for the dead-letter topic (the
        images topic took more than ours does) are left out and said so: the record stays where
        ``source-*`` points, and its partition moves on."""
        headers = dead_letter_headers(image)
        if keep_value:
            try:
                return producer.send(self.kafka.dlq_topic, key=image.raw_key, value=image.data, headers=headers)
            except MessageSizeTooLargeError:
                pass
        note = (
            f"{len(image.data)} bytes, more than the dead-letter topic takes; the original is at "
            f"{image.topic}[{image.partition}]@{image.offset}"
        )
        return producer.send(
            self.kafka.dlq_topic, key=image.raw_key, value=b"", headers=headers + [("value-omitted", note.encode())]
        )


def poll(
    consumer: KafkaConsumer, kafka: KafkaSettings, metrics: ServiceMetrics, timeout_ms: int = POLL_TIMEOUT_MS
) -> dict:
    """One poll. A fetched batch that cannot be read (a codec we lack, a corrupt batch) stops its
    partition: say where, count it, and fail readiness until a retry reads it."""
    try:
        return consumer.poll(timeout_ms=timeout_ms, max_records=kafka.batch_size)
    except (UnsupportedCodecError, CorruptRecordError) as error:
        metrics.unreadable_batches.inc()
        metrics.set_ready(False)
        try:
            where = ", ".join(
                f"{tp.topic}[{tp.partition}]@{consumer.position(tp)}" for tp in sorted(consumer.assignment())
            )
        except KafkaError:
            where = "unknown positions"
        log.error(
            "cannot read a fetched record batch (%s: %s); the partition stays at its position, one of: %s",
            type(error).__name__,
            error,
            where,
        )
        raise


class Pipeline:
    """Records in, results and dead letters out, for one batch at a time: the decode pool (:meth:`start`),
    both models (:func:`classify_isolating`, swapped for new versions between batches), and the
    :class:`Publisher`. Knows nothing of consumer groups: :class:`Classifier` runs it as one's member."""

    def __init__(
        self,
        kafka: KafkaSettings,
        models: dict[str, keras.Model],
        metrics: ServiceMetrics,
        versions: dict[str, str] | None = None,
        watcher: ModelWatcher | None = None,
    ) -> None:
        self.kafka = kafka
        self.models = dict(models)
        self.metrics = metrics
        self.versions = dict(versions or {})
        self.watcher = watcher
        self.target_size = largest_input(models)
        self.publisher = Publisher(kafka)
        # Decoding (PIL releases the GIL) runs in its own threads, one per CPU of the limit, while
        # TensorFlow classifies the batch before; the budget bounds their full-size decodes together.
        self.decode_threads = kafka.decode_threads or threads.cpu_limit().threads
        self.budget = DecodeBudget(kafka.decode_memory_bytes)
        self.keys = read_keys(kafka.learner_keys)  # the room's: results name only senders whose key signed
        self.pool = ThreadPoolExecutor(max_workers=self.decode_threads, thread_name_prefix="decode")
        for name, version in self.versions.items():
            metrics.model_version.labels(name, version).set(1)

    def swap_models(self) -> None:
        """Between batches: serve the new models the watcher has loaded and checked."""
        for name, (model, version) in (self.watcher.take() if self.watcher else {}).items():
            old = self.versions.get(name)
            self.models[name], self.versions[name] = model, version
            if old:
                self.metrics.model_version.remove(name, old)
            self.metrics.model_version.labels(name, version).set(1)
            self.target_size = largest_input(self.models)
            log.info("now serving %s model %s (was %s)", name, version, old)

    def start(self, records: list) -> Batch:
        """Start decoding a polled batch in the pool; :meth:`finish` classifies and publishes it."""
        return Batch(
            positions=[(record.topic, record.partition, record.offset, record.timestamp) for record in records],
            decoding=[
                self.pool.submit(decode_record, record, self.kafka, self.target_size, self.budget, False, self.keys)
                for record in records
            ],
            models=dict(self.models),
            versions=dict(self.versions),
        )

    def process(self, records: list, producer: KafkaProducer) -> dict[TopicPartition, OffsetAndMetadata]:
        """Decode, classify and publish one batch; returns the offsets to commit once all sends are
        acknowledged. Each record ends as one result or one dead letter, whatever is wrong with the others."""
        return self.finish(self.start(records), producer)

    def finish(self, batch: Batch, producer: KafkaProducer) -> dict[TopicPartition, OffsetAndMetadata]:
        """Wait for the batch's decodes, classify, publish, wait for every acknowledgement; the offsets
        to commit. Only the dead letters' raw bytes are still held by now (decode_record drops the rest)."""
        received = [future.result() for future in batch.decoding]
        batch.decoding.clear()
        received, verdicts, seconds = classify_isolating(batch.models, received)
        self.publisher.publish(producer, received, verdicts, seconds, batch.versions)
        observe(self.metrics, received, verdicts, seconds, batch.positions)
        return batch_offsets(batch.positions)
