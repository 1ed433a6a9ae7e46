"""Watching the classifier service from a notebook: its metrics, and drift in what it predicts.

The service's own metrics live in :mod:`catdog.metrics`; this is the client side. Drift is computed
from the predictions topic, which every replica of the service writes to: scraping ``/metrics``
through a Service reaches one random pod, so on OpenShift it would see only part of the stream.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from catdog.config import KafkaSettings
from catdog.data import image_files
from catdog.kafka.clients import make_producer
from catdog.kafka.photos import send_image
from catdog.kafka.records import Sent
from catdog.kafka.results import collect_predictions

MODELS = ("quick", "pretrained")
# A change of mean p(dog) larger than this between two phases of the stream is called drift.
DRIFT_THRESHOLD = 0.2


@dataclass
class Snapshot:
    """What one service process's /metrics said at one moment: counts and the p(dog) histogram."""

    at: float
    classified: dict[tuple[str, str], float] = field(default_factory=dict)  # (model, label) -> images
    dead_letters: dict[str, float] = field(default_factory=dict)  # reason -> messages
    p_dog_count: dict[str, float] = field(default_factory=dict)  # model -> observations
    p_dog_sum: dict[str, float] = field(default_factory=dict)
    p_dog_buckets: dict[str, dict[float, float]] = field(default_factory=dict)  # model -> le -> cumulative

    def total(self, model: str) -> float:
        return self.p_dog_count.get(model, 0.0)


def scrape(url: str, timeout: float = 5.0) -> Snapshot:
    """Read and parse a service's Prometheus metrics (the same text Prometheus scrapes)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    snapshot = Snapshot(at=time.time())
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "catdog_images_classified_total":
                snapshot.classified[labels["model"], labels["label"]] = sample.value
            elif sample.name == "catdog_dead_letters_total":
                snapshot.dead_letters[labels["reason"]] = sample.value
            elif sample.name == "catdog_p_dog_count":
                snapshot.p_dog_count[labels["model"]] = sample.value
            elif sample.name == "catdog_p_dog_sum":
                snapshot.p_dog_sum[labels["model"]] = sample.value
            elif sample.name == "catdog_p_dog_bucket":
                snapshot.p_dog_buckets.setdefault(labels["model"], {})[float(labels["le"])] = sample.value
    return snapshot


def window_mean_p_dog(before: Snapshot, after: Snapshot, model: str) -> float | None:
    """Mean p(dog) of the images classified between two snapshots: the drift signal, as PromQL computes
    it from rate(catdog_p_dog_sum) / rate(catdog_p_dog_count)."""
    count = after.p_dog_count.get(model, 0.0) - before.p_dog_count.get(model, 0.0)
    if count <= 0:
        return None
    return (after.p_dog_sum.get(model, 0.0) - before.p_dog_sum.get(model, 0.0)) / count


def skewed_stream(folder: Path, photos_per_phase: int) -> dict[str, list[Path]]:
    """A balanced phase (cats and dogs in turn, from the validation split) then an "only cats" phase
    (from the training split): a world that changes half way."""

    def of_class(split: str, label: int) -> list[Path]:
        return [path for path, found in image_files(folder, split) if found == label]

    balanced = [photo for pair in zip(of_class("validation", 0), of_class("validation", 1)) for photo in pair]
    return {"balanced": balanced[:photos_per_phase], "only cats": of_class("training", 0)[:photos_per_phase]}


def send_stream(kafka: KafkaSettings, stream: dict[str, Sequence[Path]]) -> list[tuple[str, Sent]]:
    """Send every photo of every phase, in order; returns (phase, where it was stored) per photo."""
    producer = make_producer(kafka)
    try:
        return [
            (phase, send_image(producer, kafka, photo.read_bytes(), photo.name))
            for phase, photos in stream.items()
            for photo in photos
        ]
    finally:
        producer.close()


@dataclass
class Drift:
    """Mean p(dog) per window of consecutive photos, for each model, and the phase each window is in."""

    phases: list[str]
    windows: dict[str, list[float | None]]
    missing: int  # photos whose result did not arrive in time

    def phase_means(self, model: str) -> dict[str, float]:
        means: dict[str, list[float]] = {}
        for phase, value in zip(self.phases, self.windows[model]):
            if value is not None:
                means.setdefault(phase, []).append(value)
        return {phase: sum(values) / len(values) for phase, values in means.items()}


def measure_drift(kafka: KafkaSettings, sent: Sequence[tuple[str, Sent]], window: int, timeout: float = 120.0) -> Drift:
    """Wait for the service's result for each sent photo, then average p(dog) over windows of
    ``window`` photos (a window never spans two phases)."""
    results = collect_predictions(kafka, [record for _, record in sent], timeout=timeout)
    phases: list[str] = []
    windows: dict[str, list[float | None]] = {model: [] for model in MODELS}
    start = 0
    while start < len(sent):
        phase = sent[start][0]
        end = start
        while end < len(sent) and end - start < window and sent[end][0] == phase:
            end += 1
        found = [
            results[record.topic, record.partition, record.offset]
            for _, record in sent[start:end]
            if (record.topic, record.partition, record.offset) in results
        ]
        phases.append(phase)
        for model in MODELS:
            values = [result[model]["p_dog"] for result in found]
            windows[model].append(sum(values) / len(values) if values else None)
        start = end
    return Drift(phases, windows, missing=len(sent) - len(results))


def describe_drift(drift: Drift) -> str:
    """What this run showed, in words (Markdown), for the notebook's closing prose."""
    lines = []
    for model in MODELS:
        means = drift.phase_means(model)
        if len(means) < 2:
            lines.append(f"- **{model}**: too few results to compare phases.")
            continue
        (first, before), (last, after) = list(means.items())[0], list(means.items())[-1]
        change = after - before
        verdict = "a clear drift signal" if abs(change) > DRIFT_THRESHOLD else "too small a change to alert on"
        lines.append(
            f"- **{model}**: mean p(dog) {before:.2f} on the {first} stream, {after:.2f} on "
            f"{last} ({change:+.2f}): {verdict}."
        )
    if drift.missing:
        lines.append(f"- {drift.missing} photo(s) got no result in time and are left out.")
    return "In this run:\n\n" + "\n".join(lines)
