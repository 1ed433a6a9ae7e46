"""Labelled photos on Kafka as a training source (`--source kafka:<topic>`), against the real broker:
photos labelled with `catdog send --label`, the latest label of an image wins, the same bytes twice are
one photo, and whatever a foreign client (librdkafka) writes on the labels topic is skipped with a reason,
never a crash. The records a model trained on are named in its card."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from confluent_kafka import Producer

from catdog.kafka.clients import ensure_topics
from catdog.kafka.photos import image_key
from catdog.labels import record_ranges
from conftest import kafka_env

CATDOG = Path(sys.prefix) / "bin" / "catdog"


def test_labelled_photos_on_kafka_are_a_training_source_and_foreign_records_are_skipped(
    kafka, tmp_path, cat_photos, dog_photos
):
    from catdog.data import reserved_photos

    reserved = set(reserved_photos().values())  # photos a training source never yields, whatever its kind
    cat_photos = [p for p in cat_photos if f"cat/{p.name}" not in reserved]
    dog_photos = [p for p in dog_photos if f"dog/{p.name}" not in reserved]
    ensure_topics(kafka)
    env = {**os.environ, **kafka_env(kafka), "CATDOG_LEARNER": "Ada"}
    folders = {}
    for label, photos in (("cat", cat_photos[10:14]), ("dog", dog_photos[10:14])):
        folders[label] = tmp_path / label
        folders[label].mkdir()
        for photo in photos:
            (folders[label] / photo.name).write_bytes(photo.read_bytes())
    (folders["cat"] / "again.jpg").write_bytes(cat_photos[10].read_bytes())  # sent twice: one key, one label
    for label, folder in folders.items():
        sent = subprocess.run([CATDOG, "send", "--label", label, str(folder)], env=env, capture_output=True, text=True)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.count(f"labelled {label} on {kafka.feedback_topic}") == len(list(folder.iterdir()))

    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    # A photo first called a cat, then corrected to a dog (the latest label wins), sent with no source.
    corrected = dog_photos[20].read_bytes()
    producer.produce(kafka.images_topic, corrected, key=image_key(corrected))
    for label in ("cat", "dog"):
        producer.produce(kafka.feedback_topic, json.dumps({"label": label}).encode(), key=image_key(corrected))
    # The same bytes as a photo already labelled, under a key of the sender's own: one photo, not two.
    producer.produce(kafka.images_topic, cat_photos[11].read_bytes(), key=b"phone-upload-7")
    producer.produce(kafka.feedback_topic, json.dumps({"label": "cat"}).encode(), key=b"phone-upload-7")
    # Foreign records: no key, no label, an unknown label, a binary key, not JSON, a label for no image.
    producer.produce(kafka.feedback_topic, json.dumps({"label": "cat"}).encode())
    producer.produce(kafka.feedback_topic, json.dumps({"note": "hi"}).encode(), key=b"k1")
    producer.produce(kafka.feedback_topic, json.dumps({"label": "horse"}).encode(), key=b"k2")
    producer.produce(kafka.feedback_topic, json.dumps({"label": "dog"}).encode(), key=b"\x00\xff\xfe")
    producer.produce(kafka.feedback_topic, b"\xff not json", key=b"k3")
    producer.produce(kafka.feedback_topic, json.dumps({"label": "dog"}).encode(), key=b"f" * 64)
    producer.flush(10)

    out = tmp_path / "prepared"
    prepared = subprocess.run(
        [
            CATDOG,
            "data",
            "prepare",
            "--source",
            f"kafka:{kafka.feedback_topic}",
            "--per-class",
            "10",
            "--out",
            str(out),
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert prepared.returncode == 0, prepared.stderr
    with open(out / "manifest.csv") as stream:
        rows = list(csv.DictReader(stream))
    by_class = {label: sorted(row["source"] for row in rows if row["class"] == label) for label in ("cat", "dog")}
    assert len(by_class["cat"]) == 4 and len(by_class["dog"]) == 5, prepared.stdout  # 4 + 4, the correction a dog
    assert all(
        name.startswith(f"{row}/kafka-{kafka.images_topic}-p0-o") for row, names in by_class.items() for name in names
    )
    with open(out / "skipped.csv") as stream:
        skipped = {(row["reason"], row["detail"]) for row in csv.DictReader(stream)}
    reasons = sorted(reason for reason, _ in skipped)
    assert reasons.count("not-a-label") == 5 and reasons.count("no-image") == 1 and reasons.count("duplicate") == 1
    assert {detail for reason, detail in skipped if reason == "not-a-label"} >= {
        "no key (the image's key)",
        "label 'horse' is neither cat nor dog",
        "a binary key, not an image's key",
    }

    # A model's card names exactly the records its photos came from, as offset runs.
    ranges = record_ranges([row["source"] for row in rows])
    offsets = {int(name.rsplit("-o", 1)[1].split(".")[0]) for names in by_class.values() for name in names}
    [(topic, partitions)] = ranges.items()
    runs = partitions["0"]
    assert topic == kafka.images_topic and list(partitions) == ["0"]
    assert {offset for first, last in runs for offset in range(first, last + 1)} == offsets
    assert all(a[1] + 1 < b[0] for a, b in zip(runs, runs[1:]))  # runs sorted, apart, each as long as it can be


def test_a_vote_sent_again_after_its_voter_corrected_it_counts_for_no_one(kafka, tmp_path, dog_photos):
    """Learners can read the feedback topic: a copy of Ada's first vote, sent again by anyone (librdkafka
    here) after she corrected it, does not flip her vote back; it is skipped as a replay. Against the real
    broker, counted as `catdog retrain` counts (read_labelled with the room's key table)."""
    from dataclasses import replace

    from catdog.identity import new_key
    from catdog.kafka.clients import make_consumer, make_producer
    from catdog.kafka.photos import send_image
    from catdog.labels import label_image, read_labelled

    ensure_topics(kafka)
    table = tmp_path / "keys.json"
    ada = new_key()
    table.write_text(json.dumps({"learners": {"Ada": ada}, "relays": {}}))
    as_ada = replace(kafka, learner="Ada", learner_key=ada)
    producer = make_producer(as_ada)
    sent = send_image(producer, as_ada, dog_photos[30].read_bytes(), dog_photos[30].name)
    label_image(producer, as_ada, sent, "cat")  # a slip
    label_image(producer, as_ada, sent, "dog")  # corrected
    producer.close()
    reader = make_consumer(kafka, kafka.feedback_topic)
    slip, records = None, []
    while len(records) < 2:
        records += [record for batch in reader.poll(timeout_ms=500).values() for record in batch]
    reader.close()
    slip = next(record for record in records if json.loads(record.value)["label"] == "cat")
    replayer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    replayer.produce(kafka.feedback_topic, slip.value, key=slip.key, headers=slip.headers)
    assert replayer.flush(10) == 0

    labelled, skipped = read_labelled(replace(kafka, learner_keys=table))
    [photo] = labelled
    assert photo.votes == {"learner:Ada": "dog"}
    [(where, _, reason, detail)] = skipped
    assert reason == "replay" and detail.startswith(
        f"replay: a copy of a record Ada signed, first read at {kafka.feedback_topic}[0]@{slip.offset}"
    ), detail
