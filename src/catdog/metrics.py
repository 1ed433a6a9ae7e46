"""Prometheus metrics and health endpoints of the classifier service.

``/metrics`` is for Prometheus; ``/healthz`` (liveness: the loop is turning) and ``/readyz`` (readiness:
models loaded, and the last poll of Kafka read its records) are for OpenShift's probes. Reading them from a notebook is
:mod:`catdog.monitoring`'s job.
"""

from __future__ import annotations

import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
# p(dog) in tenths: a shift of mass between the buckets is the drift signal.
P_DOG_BUCKETS = tuple(round(0.1 * step, 1) for step in range(1, 11))
# Liveness fails when the poll loop has not come round for this long (a hung client or model).
STALL_SECONDS = 120.0


class ServiceMetrics:
    """All of the service's metrics, in their own registry (so tests and notebooks can make several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.classified = Counter(
            "catdog_images_classified", "Images classified, by model and label", ["model", "label"], registry=r
        )
        self.agreements = Counter(
            "catdog_model_agreements", "Images on which both models agree or not", ["agree"], registry=r
        )
        self.dead_letters = Counter(
            "catdog_dead_letters", "Messages sent to the dead-letter topic, by reason", ["reason"], registry=r
        )
        self.inference_seconds = Histogram(
            "catdog_inference_seconds", "Time of one batched model call", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.end_to_end_seconds = Histogram(
            "catdog_end_to_end_seconds",
            "From the image's Kafka timestamp to its result being acknowledged",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "catdog_batch_size", "Messages per processed batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.p_dog = Histogram(
            "catdog_p_dog",
            "Distribution of p(dog) per model (watch it for drift)",
            ["model"],
            buckets=P_DOG_BUCKETS,
            registry=r,
        )
        self.kafka_errors = Counter("catdog_kafka_errors", "Kafka failures that made the service retry", registry=r)
        self.unreadable_batches = Counter(
            "catdog_unreadable_batches",
            "Fetches whose record batch could not be read (unknown codec, corrupt "
            "batch): the partition does not move until it can",
            registry=r,
        )
        self.rebalanced_batches = Counter(
            "catdog_rebalanced_batches",
            "Batches published but not committed because the group rebalanced "
            "meanwhile: their partitions' new owners classify them again (duplicate results)",
            registry=r,
        )
        self.model_version = Gauge(
            "catdog_model_version",
            "1 for each model version being served (version: the first 12 hex digits of the .keras file's sha256)",
            ["model", "version"],
            registry=r,
        )
        self.model_reload_failures = Counter(
            "catdog_model_reload_failures",
            "New model files that could not be loaded or checked (the old model kept serving)",
            ["model"],
            registry=r,
        )
        self.ready = Gauge("catdog_ready", "1 while models are loaded and Kafka is connected", registry=r)
        self.last_loop = Gauge("catdog_last_loop_timestamp_seconds", "When the poll loop last turned", registry=r)
        self._last_loop = time.monotonic()
        self._ready = False

    def loop_turned(self) -> None:
        self._last_loop = time.monotonic()
        self.last_loop.set_to_current_time()

    def set_ready(self, ready: bool) -> None:
        self._ready = ready
        self.ready.set(1 if ready else 0)

    def is_live(self) -> bool:
        return time.monotonic() - self._last_loop < STALL_SECONDS

    def is_ready(self) -> bool:
        return self._ready and self.is_live()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # probes every few seconds would flood the log
        pass


def serve(metrics: ServiceMetrics, port: int, host: str = "0.0.0.0") -> WSGIServer:
    """Serve /metrics, /healthz and /readyz (anything else: 404) in a background thread; returns the server
    (shut it down).

    prometheus_client's threading server: a thread per request, so a slow or idle client (a scrape, an
    open connection) never holds up the probes."""
    prometheus = make_wsgi_app(metrics.registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            ok = metrics.is_live() if path == "/healthz" else metrics.is_ready()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"not ready\n"]
        if path == "/metrics":
            return prometheus(environ, start_response)
        # prometheus_client answers every path with the metrics: a probe with a mistyped path would pass
        # forever (found by breaking the Deployment's readiness path, tests/test_image.py).
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: /metrics, /healthz, /readyz\n"]

    server = make_server(host, port, app, server_class=ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
