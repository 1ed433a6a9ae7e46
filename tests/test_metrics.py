"""The service's metrics as Prometheus (and the monitoring notebook) read them over HTTP."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from catdog import metrics, monitoring
from catdog.predict import scores
from conftest import free_port


@pytest.fixture
def served():
    service_metrics = metrics.ServiceMetrics()
    port = free_port()
    server = metrics.serve(service_metrics, port, host="127.0.0.1")
    yield service_metrics, f"http://127.0.0.1:{port}"
    server.shutdown()


def status(url: str, timeout: float = 5) -> int:
    try:
        return urllib.request.urlopen(url, timeout=timeout).status
    except urllib.error.HTTPError as error:
        return error.code


def test_health_endpoints_follow_readiness_and_the_loop(served):
    service_metrics, base = served
    assert status(base + "/healthz") == 200
    assert status(base + "/readyz") == 503  # not connected yet
    service_metrics.set_ready(True)
    assert status(base + "/readyz") == 200
    service_metrics._last_loop -= metrics.STALL_SECONDS + 1  # the poll loop has hung
    assert status(base + "/healthz") == 503 and status(base + "/readyz") == 503
    # A probe on a mistyped path fails, instead of getting the metrics page and passing forever.
    assert status(base + "/ready") == status(base + "/") == 404 and status(base + "/metrics") == 200


def test_probes_answer_while_other_clients_hold_connections_open(served):
    """A kubelet probe must not queue behind a slow scraper or an idle keep-alive connection."""
    service_metrics, base = served
    service_metrics.set_ready(True)
    port = int(base.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    idle[0].sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # a request that never ends
    try:
        started = time.monotonic()
        assert status(base + "/healthz", timeout=2) == 200 and status(base + "/readyz", timeout=2) == 200
        assert time.monotonic() - started < 2
    finally:
        for connection in idle:
            connection.close()


def test_scrape_reads_counts_and_the_drift_signal(served):
    service_metrics, base = served
    before = monitoring.scrape(base + "/metrics")
    for p in (0.9, 0.8, 0.1):
        service_metrics.p_dog.labels("quick").observe(p)
        service_metrics.classified.labels("quick", "dog" if p >= 0.5 else "cat").inc()
    service_metrics.dead_letters.labels("truncated").inc()
    after = monitoring.scrape(base + "/metrics")
    assert after.classified[("quick", "dog")] == 2 and after.dead_letters == {"truncated": 1}
    assert after.total("quick") == 3
    assert monitoring.window_mean_p_dog(before, after, "quick") == pytest.approx(0.6)
    assert monitoring.window_mean_p_dog(after, after, "quick") is None
    assert after.p_dog_buckets["quick"][0.5] == 1  # one p(dog) at or below 0.5


def test_scores_treat_dog_as_the_positive_class():
    labels = np.array([1, 1, 1, 0, 0])
    predicted = np.array([1, 1, 0, 1, 0])
    result = scores(labels, predicted)
    assert result["accuracy"] == pytest.approx(0.6)
    assert result["precision"] == pytest.approx(2 / 3) and result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3)
