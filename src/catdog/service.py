"""The classifier service: images topic in, one JSON result per image out, bad messages to the DLQ.

Delivery is at-least-once: a batch's offsets are committed only after every result and dead letter of
that batch has been acknowledged by the broker. After a crash the uncommitted batch is read again, so a
result may be published twice; its key and source offset identify the duplicate.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from catdog.threads import start_tensorflow

# ruff: noqa: E402 - what follows imports TensorFlow, after start_tensorflow() sized its thread pools
start_tensorflow()  # pools sized to this container's CPUs before TensorFlow starts

import keras
import numpy as np
import tensorflow as tf
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import (
    CommitFailedError,
    CorruptRecordError,
    IllegalGenerationError,
    KafkaError,
    MessageSizeTooLargeError,
    RebalanceInProgressError,
    RecordListTooLargeError,
    UnknownMemberIdError,
    UnsupportedCodecError,
)
from kafka.structs import OffsetAndMetadata, TopicPartition

from catdog import threads
from catdog.config import MAX_LEARNER_CHARS, KafkaSettings, Settings
from catdog.identity import Replays, Sender, read_keys
from catdog.images import DecodeBudget
from catdog.kafka.clients import KafkaUnavailable, make_consumer, make_producer
from catdog.kafka.photos import ReceivedImage, RecordError, decode_record
from catdog.kafka.records import LEARNER_HEADER
from catdog.metrics import ServiceMetrics
from catdog.models import ModelFileError, input_size, load_model, model_version
from catdog.predict import Verdict, classify_timed, largest_input, predict_fn

log = logging.getLogger("catdog.service")
# Which replica published a result: the pod name on OpenShift (HOSTNAME), plus the process id.
INSTANCE = f"{socket.gethostname()}-{os.getpid()}"

POLL_TIMEOUT_MS = 1000
# A stop (SIGTERM) waits at most for the batch in hand, its acknowledgements and the two closes: within
# the classifier Deployment's 60 s grace period (terminationGracePeriodSeconds), whatever the broker does.
SEND_TIMEOUT_SECONDS = 20.0  # for all of one batch's acknowledgements together
CLOSE_TIMEOUT_SECONDS = 5.0  # each of the consumer's and the producer's close
# A commit refused because the group moved on (kafka-python raises each of these): not a broken session.
REBALANCED = (CommitFailedError, RebalanceInProgressError, IllegalGenerationError, UnknownMemberIdError)
BACKOFF_FIRST_SECONDS = 1.0
# At most this long between tries to reach a lost broker: a room waits no longer than this after its Kafka
# is back (30 s here left the classifier idle 30 s after a 15 s restart: tests/test_restarts.py).
BACKOFF_MAX_SECONDS = 4.0


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


@dataclass
class Batch:
    """A polled batch on its way: where each record came from, its decode in the pool, and the models
    (with their versions) it was decoded for. A swap between its start and its end serves the next batch:
    this one is classified by the models it was sized for, and its results name them."""

    positions: list[tuple[str, int, int, int]]  # topic, partition, offset, timestamp (ms)
    decoding: list[Future] = field(default_factory=list)
    models: dict[str, keras.Model] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


class ModelWatcher:
    """Hot reload: notices a new file for a model in the models folder (a retrained model written to the
    volume), loads it with safe_mode and checks it on a sample batch, all off the hot path, and offers it
    to the classifier, which swaps it in between batches. A file that fails keeps the old model serving."""

    def __init__(
        self,
        folder: Path,
        versions: dict[str, str],
        metrics: ServiceMetrics,
        interval: float,
        sizes: dict[str, int] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.versions = dict(versions)  # what is being served (or already offered)
        self.sizes = dict(sizes or {})  # each served model's input side: the batch comes at the largest
        self.metrics = metrics
        self.interval = interval
        self.failed: set[tuple[str, str]] = set()
        self.seen = {name: self._stamp(name) for name in versions}
        self.pending: dict[str, tuple[keras.Model, str]] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def _stamp(self, name: str) -> tuple[int, int] | None:
        try:
            status = (self.folder / f"{name}.keras").stat()
        except OSError:
            return None
        return status.st_mtime_ns, status.st_size

    def check(self) -> None:
        """Look once for changed model files; load and check each new version."""
        for name in list(self.versions):
            stamp = self._stamp(name)
            if stamp is None or stamp == self.seen.get(name):
                continue
            self.seen[name] = stamp
            path = self.folder / f"{name}.keras"
            version = "unreadable"
            try:
                version = model_version(path)
                if version == self.versions[name] or (name, version) in self.failed:
                    continue
                model = load_model(path)
                # Checked, and traced, exactly as it will serve: at the batch's size (the largest model's
                # input), so the first batch after the swap pays no tracing on the hot path.
                serving = max([size for other, size in self.sizes.items() if other != name] + [input_size(model)])
                p_dog = predict_fn(model, serving)(tf.zeros((2, serving, serving, 3), tf.uint8)).numpy().reshape(-1)
                if p_dog.shape != (2,) or not np.all((p_dog >= 0) & (p_dog <= 1)):
                    raise ModelFileError(f"{path} does not answer a probability per image")
            except Exception as error:  # noqa: BLE001 - whatever is wrong with the file, keep serving
                self.failed.add((name, version))
                self.metrics.model_reload_failures.labels(name).inc()
                log.error("new %s model not loaded, still serving version %s: %s", name, self.versions[name], error)
                continue
            with self.lock:
                self.pending[name] = (model, version)
            self.versions[name] = version
            self.sizes[name] = input_size(model)
            log.info("new %s model %s loaded and checked; swapping it in after the current batch", name, version)

    def take(self) -> dict[str, tuple[keras.Model, str]]:
        with self.lock:
            pending, self.pending = self.pending, {}
        return pending

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.check()

    def start(self) -> ModelWatcher:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()


class Membership(ConsumerRebalanceListener):
    """Whether this member's group has settled, as kafka-python reports it from ``poll()``: revoked when a
    rebalance starts (or the membership is lost), assigned when it ends.

    While it is unsettled the service sends the coordinator nothing of its own. A broker answers a
    connection's requests in order, so an offset fetch queued behind a JoinGroup returns only when the join
    has; kafka-python 3.0.12 then drops that finished join (it completed outside ``poll()``) and joins
    again, which rebalances the whole group again, for as long as the timing repeats (a member looping
    for minutes was seen in ``test_a_member_paused_past_its_session_timeout…``)."""

    def __init__(self) -> None:
        self.settled = False

    def on_partitions_revoked(self, revoked) -> None:
        self.settled = False

    def on_partitions_assigned(self, assigned) -> None:
        self.settled = True


def batch_offsets(positions: list[tuple[str, int, int, int]]) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets that commit a batch: one past its last record of each partition."""
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for topic, partition_id, offset, _ in positions:
        partition = TopicPartition(topic, partition_id)
        if partition not in offsets or offsets[partition].offset < offset + 1:
            offsets[partition] = OffsetAndMetadata(offset + 1, "", -1)
    return offsets


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


class Committer:
    """Offsets in, across rebalances: a batch's offsets are committed once it is published; what the group
    refused while it rebalanced is committed later, for the partitions this member still owns.

    If the group moved its partitions meanwhile (a member joined, or this one was paused past its session
    timeout), the commit is refused: those records go to their new owner, which classifies them again
    (at-least-once), and this member carries on in the new group generation with the same connections
    (tearing them down would rebalance everyone again). A partition this member keeps across the
    rebalance keeps its position (kafka-python), past the refused records: nobody would read them again,
    and the group's offset would lag behind for good (consumer lag that never clears, for KEDA too)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self.refused: dict[TopicPartition, OffsetAndMetadata] = {}
        self.membership = Membership()

    def listener(self) -> Membership:
        """A fresh listener for a new subscription (a new session starts unsettled)."""
        self.membership = Membership()
        return self.membership

    def commit(self, consumer: KafkaConsumer, offsets: dict, count: int) -> None:
        """Commit a published batch of ``count`` records (``{}`` and 0: only retry what was refused)."""
        owned = consumer.assignment() if self.membership.settled else set()  # mid-rebalance: retries wait
        retry = self._retry(consumer, owned, offsets)
        if retry is None:
            return
        if not offsets and not retry:
            if owned:
                self.refused.clear()
            return
        try:
            consumer.commit({**retry, **offsets})
        except REBALANCED as error:
            self._refused(offsets, count, error)
            return
        if count:
            log.info("batch of %d committed", count)
        if retry:
            log.info(
                "committed what the rebalance refused: %s",
                ", ".join(f"{tp.topic}[{tp.partition}]@{offset.offset}" for tp, offset in retry.items()),
            )
        if owned:  # a settled group: what it gave to others is theirs
            self.refused.clear()

    def _retry(self, consumer: KafkaConsumer, owned: set, offsets: dict) -> dict | None:
        """Refused offsets to commit now: partitions still owned, never behind what the group has committed
        meanwhile. None while the group is not settled enough to ask (the next turn tries again)."""
        retry = {tp: offset for tp, offset in self.refused.items() if tp in owned and tp not in offsets}
        if not retry:
            return retry
        try:
            return {tp: offset for tp, offset in retry.items() if (consumer.committed(tp) or -1) < offset.offset}
        except REBALANCED:
            return None

    def _refused(self, offsets: dict, count: int, error: Exception) -> None:
        if count:
            self.metrics.rebalanced_batches.inc()
        for tp, offset in offsets.items():
            if tp not in self.refused or self.refused[tp].offset < offset.offset:
                self.refused[tp] = offset
        if count:
            log.warning(
                "batch of %d not committed: the group rebalanced while it was classified (%s); its "
                "partitions' new owners classify those records again",
                count,
                error,
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


class Classifier(Pipeline):
    """One consumer-group member running the :class:`Pipeline`: poll a bounded batch (the next one decodes
    while this one is classified), publish, then commit through the :class:`Committer`; a lost broker is
    retried with backoff."""

    def __init__(
        self,
        kafka: KafkaSettings,
        models: dict[str, keras.Model],
        metrics: ServiceMetrics,
        versions: dict[str, str] | None = None,
        watcher: ModelWatcher | None = None,
    ) -> None:
        super().__init__(kafka, models, metrics, versions, watcher)
        self.stop_event = threading.Event()
        self.committer = Committer(metrics)

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and close (safe to call from a signal handler)."""
        self.stop_event.set()

    def run_session(self) -> None:
        """Connect, then poll/process/commit until stopped; Kafka errors propagate to :meth:`run`."""
        consumer: KafkaConsumer | None = None
        producer: KafkaProducer | None = None
        try:
            producer = make_producer(self.kafka)
            consumer = make_consumer(self.kafka, group_id=self.kafka.group_id, max_poll_records=self.kafka.batch_size)
            consumer.subscribe([self.kafka.images_topic], listener=self.committer.listener())
            kafka = self.kafka
            log.info("classifying %s from %s as group %s", kafka.images_topic, kafka.bootstrap_servers, kafka.group_id)
            self._loop(consumer, producer)
        finally:
            self.metrics.set_ready(False)
            if consumer is not None:
                consumer.close(autocommit=False, timeout_ms=int(CLOSE_TIMEOUT_SECONDS * 1000))
            if producer is not None:
                producer.close(timeout=CLOSE_TIMEOUT_SECONDS)

    def _loop(self, consumer: KafkaConsumer, producer: KafkaProducer) -> None:
        """Poll the next batch (it decodes in the pool) while the one before is classified and committed."""
        pending: Batch | None = None
        while not self.stop_event.is_set() or pending:
            self.metrics.loop_turned()
            self.swap_models()
            upcoming = None
            if not self.stop_event.is_set():  # stopping: finish the batch in hand, fetch no more
                batches = poll(consumer, self.kafka, self.metrics, timeout_ms=0 if pending else POLL_TIMEOUT_MS)
                self.metrics.set_ready(True)  # connected, and what was fetched could be read
                records = [record for partition in batches.values() for record in partition]
                upcoming = self.start(records) if records else None
                del records, batches  # the pool's tasks hold each record until it is decoded
            if pending:
                self.committer.commit(consumer, self.finish(pending, producer), len(pending.positions))
            elif self.committer.refused:
                self.committer.commit(consumer, {}, 0)
            pending = upcoming

    def run(self) -> None:
        """Run until stopped; a missing or lost broker is retried with backoff, never a crash."""
        delay = BACKOFF_FIRST_SECONDS
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                self.run_session()
            except (KafkaError, KafkaUnavailable) as error:
                self.metrics.kafka_errors.inc()
                if time.monotonic() - started > 2 * BACKOFF_MAX_SECONDS:
                    delay = BACKOFF_FIRST_SECONDS  # it had been working: start the backoff over
                why = f"{type(error).__name__}: {error}"
                log.warning("Kafka problem at %s (%s); retrying in %.0f s", self.kafka.bootstrap_servers, why, delay)
                self.metrics.loop_turned()
                self.stop_event.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX_SECONDS)
        self.pool.shutdown(wait=False, cancel_futures=True)
        log.info("stopped")


def serve(settings: Settings, folder: Path, metrics_port: int) -> None:
    """``catdog classify``: load the models in ``folder`` (safe_mode), serve metrics and probes on
    ``metrics_port``, hot-reload new model files when CATDOG_MODEL_RELOAD_SECONDS is set, and classify
    until SIGTERM or Ctrl-C (the batch in hand is finished and committed first)."""
    import signal

    from catdog import metrics as service_metrics
    from catdog.predict import load_models, model_paths

    loaded = load_models(folder)
    versions = {name: model_version(path) for name, path in model_paths(folder).items()}
    metrics = service_metrics.ServiceMetrics()
    server = service_metrics.serve(metrics, metrics_port)
    watcher = None
    if settings.model_reload_seconds:  # a retrained model written to the folder is served without a restart
        watcher = ModelWatcher(
            folder,
            versions,
            metrics,
            interval=settings.model_reload_seconds,
            sizes={name: input_size(model) for name, model in loaded.items()},
        ).start()
    classifier = Classifier(settings.kafka, loaded, metrics, versions=versions, watcher=watcher)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: classifier.stop())
    print(
        f"Serving metrics on :{server.server_port}/metrics (health: /healthz, /readyz); models "
        + ", ".join(f"{name} {version}" for name, version in versions.items()),
        flush=True,
    )
    try:
        classifier.run()
    finally:
        if watcher is not None:
            watcher.stop()
        server.shutdown()
