"""The service's metrics as Prometheus (and the monitoring notebook) read them over HTTP."""

from __future__ import annotations

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


def status(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=5).status
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
