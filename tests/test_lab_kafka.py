"""The notebooks' Kafka cells tell the truth about the learner's own photo, on a topic that already holds
other learners' history, against the real embedded broker and real classifier services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from catdog import monitoring, plots
from catdog.kafka.clients import ensure_topics, make_producer, make_reader
from catdog.kafka.photos import fetch_images, send_image
from catdog.kafka.results import collect_predictions, find_prediction, latest_predictions
from conftest import kafka_env
from processes import start_service
from waiting import wait_until


@pytest.fixture
def shared_topic(kafka, cat_photos, dog_photos):
    """Three partitions (as on OpenShift) already holding six other learners' photos."""
    kafka = replace(kafka, batch_size=4, learner="Ada")
    ensure_topics(kafka, partitions=3)
    producer = make_producer(kafka)
    history = [
        send_image(producer, replace(kafka, learner=f"learner {index}"), photo.read_bytes(), photo.name)
        for index, photo in enumerate(cat_photos[200:203] + dog_photos[200:203])
    ]
    time.sleep(0.01)  # my photo comes later than theirs, on the broker's clock too
    yield kafka, producer, history
    producer.close()


def test_the_next_image_is_the_one_i_sent_then_it_says_nothing_came(shared_topic, dog_photos, models_dir, capsys):
    from catdog.predict import load_models

    kafka, producer, _ = shared_topic
    mine = send_image(producer, kafka, dog_photos[300].read_bytes(), "my-dog.jpg")
    reader = make_reader(kafka, kafka.images_topic, sent=mine)
    # A second kernel (or learner) reading at the same time never waits on the first: no group.
    other_kernel = make_reader(kafka, kafka.images_topic, sent=mine)
    started = time.monotonic()
    [first] = fetch_images(reader, kafka, count=1, timeout=20)
    [also] = fetch_images(other_kernel, kafka, count=1, timeout=20)
    assert time.monotonic() - started < 5
    assert (first.filename, first.offset, first.partition) == ("my-dog.jpg", mine.offset, mine.partition)
    assert also.offset == mine.offset and first.image is not None
    loaded = load_models(models_dir)
    assert plots.show_received([first], loaded, waited=20) is not None
    assert "my-dog.jpg from" in capsys.readouterr().out

    nothing = fetch_images(reader, kafka, count=1, timeout=2)
    assert nothing == [] and plots.show_received(nothing, loaded, waited=2) is None
    assert "No new image arrived within 2 s" in capsys.readouterr().out
    later = send_image(producer, kafka, b"not a photo", "later.jpg")
    [bad] = fetch_images(reader, kafka, count=1, timeout=20)
    assert bad.offset == later.offset and plots.show_received([bad], loaded, waited=20) is None
    assert "not classified, not-an-image" in capsys.readouterr().out
    reader.close()
    other_kernel.close()


def test_the_service_result_shown_is_for_my_photo_then_mine_first(
    shared_topic, cat_photos, models_dir, services, tmp_path
):
    """In a room every learner's results share the topic: each photo carries its sender's name, its result
    repeats it, and a learner's listing shows their own photos first, however many came after."""
    kafka, producer, history = shared_topic
    start_service(services, kafka, models_dir, tmp_path)
    assert len(collect_predictions(kafka, history, timeout=90)) == len(history)  # the others' photos are done
    mine = send_image(producer, kafka, cat_photos[300].read_bytes(), "my-cat.jpg")
    result = find_prediction(kafka, mine, timeout=90)
    assert result is not None and result["filename"] == "my-cat.jpg" and result["learner"] == "Ada"
    assert result["source"] == {"topic": mine.topic, "partition": mine.partition, "offset": mine.offset}
    recent = latest_predictions(kafka, count=3)
    assert len(recent) == 3 and recent[0]["source"] == result["source"]  # newest first: mine was sent last
    stamps = [r["classified_at"] for r in recent]
    assert stamps == sorted(stamps, reverse=True)
    # Others send after me: the newest are theirs, my listing still starts with mine.
    later = [
        send_image(producer, replace(kafka, learner="Bo"), photo.read_bytes(), photo.name)
        for photo in cat_photos[301:304]
    ]
    assert len(collect_predictions(kafka, later, timeout=90)) == 3
    assert [r["learner"] for r in latest_predictions(kafka, count=3)] == ["Bo"] * 3
    assert [r["learner"] for r in latest_predictions(kafka, count=3, learner="Ada")] == ["Ada", "Bo", "Bo"]
    # `catdog results --learner` lists only that learner's.
    listed = subprocess.run(
        [sys.executable, "-m", "catdog.cli", "results", "--learner", "Bo", "--json", "--timeout", "3"],
        env={**os.environ, **kafka_env(kafka)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert sorted(json.loads(line)["filename"] for line in listed.stdout.splitlines()) == sorted(
        sent.filename for sent in later
    )


def test_drift_is_measured_from_every_replicas_results(kafka, lab_data, models_dir, services, tmp_path):
    """With two service replicas sharing the work, the drift still counts every photo sent: it is read
    from the predictions topic, not from one pod's /metrics."""
    kafka = replace(kafka, batch_size=2)
    ensure_topics(kafka, partitions=3)
    first = start_service(services, kafka, models_dir, tmp_path, name="replica-1")
    second = start_service(services, kafka, models_dir, tmp_path, name="replica-2")
    # Send once the group has settled (the first replica reassigned, the second assigned): a photo sent
    # during the rebalance may be classified twice (at-least-once), and this test counts classifications.
    assigned = "Setting newly assigned partitions"
    wait_until(
        lambda: first.output().count(assigned) >= 2 and second.output().count(assigned) >= 1,
        60,
        lambda: "both members assigned their partitions:\n" + first.output()[-2000:] + second.output()[-2000:],
    )
    stream = monitoring.skewed_stream(lab_data, 6)
    assert [len(photos) for photos in stream.values()] == [6, 6]
    sent = monitoring.send_stream(kafka, stream)
    drift = monitoring.measure_drift(kafka, sent, window=3, timeout=120)
    assert drift.missing == 0
    assert drift.phases == ["balanced", "balanced", "only cats", "only cats"]
    assert all(value is not None and 0 <= value <= 1 for values in drift.windows.values() for value in values)
    counted = sum(monitoring.scrape(service.url("/metrics")).total("pretrained") for service in (first, second))
    assert counted == 12
    text = monitoring.describe_drift(drift)
    for model in ("quick", "pretrained"):
        means = drift.phase_means(model)
        assert f"{means['balanced']:.2f} on the balanced stream, {means['only cats']:.2f} on only cats" in text
