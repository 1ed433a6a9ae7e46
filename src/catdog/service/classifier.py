"""The classifier's loop: one consumer-group member running the pipeline until stopped, retrying a lost
broker with backoff, and ``catdog classify`` (``serve``): the models, the metrics and the probes."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import keras
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import (
    KafkaError,
)

from catdog.config import KafkaSettings, Settings
from catdog.kafka.clients import KafkaUnavailable, make_consumer, make_producer
from catdog.metrics import ServiceMetrics
from catdog.models import input_size, model_version
from catdog.service.group import Committer
from catdog.service.pipeline import POLL_TIMEOUT_MS, Batch, Pipeline, poll
from catdog.service.watcher import ModelWatcher

log = logging.getLogger("catdog.service")


CLOSE_TIMEOUT_SECONDS = 5.0  # each of the consumer's and the producer's close
BACKOFF_FIRST_SECONDS = 1.0
# At most this long between tries to reach a lost broker: a room waits no longer than this after its Kafka
# is back (30 s here left the classifier idle 30 s after a 15 s restart: tests/test_restarts.py).
BACKOFF_MAX_SECONDS = 4.0


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
