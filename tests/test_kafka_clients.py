"""Records from a Kafka client we did not write (librdkafka, through confluent-kafka) against the real
embedded broker and `catdog classify`: every codec, every kind of key and header, good and bad images
mixed in the same batches. Whatever a client can legally produce, the service must keep going and give
every record exactly one result or one dead letter."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import replace

import confluent_kafka
from PIL import Image

from catdog.kafka.clients import ensure_topics
from catdog.kafka.records import header_text
from conftest import kafka_env
from processes import start_service
from test_kafka import MESSAGES, collect, frozen
from waiting import wait_until

SEED = 20261121  # a failure reproduces with the same records
RECORDS_PER_CODEC = 30
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
# The first cycle warms the service up (TensorFlow's per-shape kernels and allocator pools: measured
# +160 MB, then flat); memory is compared between the peaks of the later cycles.
CYCLES = 3
MAX_IMAGE_BYTES = 600_000
MEMORY_GROWTH_LIMIT_MB = 40


def photo_values(photos, rng: random.Random) -> list[bytes]:
    """Real photos as a sender might encode them: the JPEG as is, or re-encoded as PNG or WebP."""
    values = []
    for path in photos:
        data = path.read_bytes()
        kind = rng.choice(("jpeg", "jpeg", "png", "webp"))
        if kind != "jpeg":
            buffer = io.BytesIO()
            with Image.open(path) as image:
                image.convert("RGB").save(buffer, format=kind.upper())
            data = buffer.getvalue()
        values.append(data)
    return values


def random_key(rng: random.Random) -> bytes | None:
    return rng.choice(
        (
            None,
            f"photo-{rng.randrange(10_000)}".encode(),
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24))),  # binary: Avro ids, hashes
            b"\xff\xfe\x00binary",
        )
    )


def random_headers(rng: random.Random, filename: str) -> list[tuple[str, bytes | None]] | None:
    choice = rng.randrange(5)
    if choice == 0:
        return None
    if choice == 1:
        return [("filename", filename.encode()), ("learner", "Zoë".encode())]
    if choice == 2:
        return [("filename", None), ("content-type", None)]  # null values are legal in Kafka
    if choice == 3:
        return [
            ("filename", b"\xff\xfe\x80 not utf-8"),
            ("trace", bytes(rng.randrange(256) for _ in range(8))),
            ("learner", b"\xff<img src=x onerror=alert(1)>" + b"x" * 80),
        ]
    return [("filename", filename.encode()), ("filename", b"second.jpg"), ("x", b""), ("error", b"spoofed")]


def produce(records: list[dict], bootstrap: str, topic: str, codec: str) -> None:
    """Send ``records`` with one librdkafka producer; fill in each one's partition and offset."""
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "linger.ms": 20,
            "message.max.bytes": 4 << 20,
            "enable.idempotence": False,
        }
    )
    failures = []

    def delivered(error, message, record):
        if error is not None:
            failures.append(error)
        else:
            record["partition"], record["offset"] = message.partition(), message.offset()

    for record in records:
        producer.produce(
            topic,
            value=record["value"],
            key=record["key"],
            headers=record["headers"],
            on_delivery=lambda error, message, record=record: delivered(error, message, record),
        )
        producer.poll(0)
    assert producer.flush(60) == 0 and not failures, failures


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_any_record_a_client_can_produce_ends_as_one_result_or_one_dead_letter(
    kafka, models_dir, cat_photos, dog_photos, services, tmp_path
):
    rng = random.Random(SEED)
    kafka = replace(kafka, max_image_bytes=MAX_IMAGE_BYTES)
    ensure_topics(kafka, partitions=3)
    good = photo_values(rng.sample(cat_photos[200:300], 12) + rng.sample(dog_photos[200:300], 12), rng)
    base = good[0]
    bad_kinds = [(kind, make, reason) for kind, (make, reason) in MESSAGES.items() if reason]
    service = start_service(
        services, kafka, models_dir, tmp_path, extra_env={"CATDOG_MAX_IMAGE_BYTES": str(MAX_IMAGE_BYTES)}
    )

    sent: list[dict] = []
    memory = []
    for codec in CODECS * CYCLES:
        batch = []
        for number in range(RECORDS_PER_CODEC):
            if rng.random() < 0.5:
                value, reason = rng.choice(good), None
            else:
                kind, make, reason = rng.choice(bad_kinds)
                value = make(base)
            filename = f"{codec}-{number}.img"
            batch.append(
                {
                    "codec": codec,
                    "value": value,
                    "reason": reason,
                    "key": random_key(rng),
                    "headers": random_headers(rng, filename),
                }
            )
        produce(batch, kafka.bootstrap_servers, kafka.images_topic, codec)
        sent += batch
        time.sleep(rng.random())  # sometimes the service takes a codec's records in several batches
        assert service.process.poll() is None, f"the service died on {codec} records:\n{service.output()[-4000:]}"
        assert service.get("/healthz")[0] == 200, service.get("/healthz")
        memory.append(rss_mb(service.process.pid))

    expected_results = sum(1 for record in sent if record["reason"] is None)
    results = collect(kafka, kafka.predictions_topic, expected_results, timeout=180)
    dead = collect(kafka, kafka.dlq_topic, len(sent) - expected_results, timeout=60)
    # Nothing more arrives: no record ends twice.
    time.sleep(2)
    assert service.process.poll() is None, service.output()[-4000:]
    memory.append(rss_mb(service.process.pid))

    ends: dict[tuple[int, int], list[str]] = {}
    for record in results:
        source = json.loads(record.value)["source"]
        ends.setdefault((source["partition"], source["offset"]), []).append("result")
    for record in dead:
        headers = dict(record.headers)  # our own headers come last, after the sender's
        ends.setdefault((int(headers["source-partition"]), int(headers["source-offset"])), []).append(
            "dead letter: " + headers["error-class"].decode()
        )
    wrong = []
    for record in sent:
        where = (record["partition"], record["offset"])
        want = "result" if record["reason"] is None else f"dead letter: {record['reason']}"
        if ends.get(where) != [want]:
            wrong.append(
                f"{record['codec']} key={record['key']!r} headers={record['headers']!r} "
                f"value={len(record['value'])} B at {where}: wanted [{want}], got {ends.get(where)}"
            )
    assert not wrong, f"{len(wrong)} of {len(sent)} records (seed {SEED}):\n" + "\n".join(wrong[:20])
    assert len(results) == expected_results and len(dead) == len(sent) - expected_results
    # Who sent it: any client's learner header, as text (bytes that are not UTF-8 replaced), cut to 64.
    by_place = {(record["partition"], record["offset"]): record for record in sent}
    for record in results:
        result = json.loads(record.value)
        headers = dict(by_place[result["source"]["partition"], result["source"]["offset"]]["headers"] or [])
        assert result["learner"] == header_text(headers.get("learner"))[:64], result

    # Dead letters keep the sender's key and headers as bytes, then say why.
    by_source = {(int(dict(r.headers)["source-partition"]), int(dict(r.headers)["source-offset"])): r for r in dead}
    for record in sent:
        if record["reason"] is not None:
            letter = by_source[record["partition"], record["offset"]]
            assert letter.key == record["key"]
            if "value-omitted" in dict(letter.headers):  # bigger than the dead-letter topic takes
                assert not letter.value and len(record["value"]) > kafka.max_message_bytes - 1024
            else:
                assert letter.value == record["value"]
            # The sender's headers first, as sent (null, which our client cannot write, as empty).
            assert letter.headers[: len(record["headers"] or [])] == [
                (name, value or b"") for name, value in record["headers"] or []
            ]
    # Memory stays flat once warm: the last cycle's peak against the one before (a leak raises every
    # cycle's peak; single readings swing by tens of MB as the allocator returns pools).
    cycles = [memory[i * len(CODECS) : (i + 1) * len(CODECS)] for i in range(CYCLES)]
    assert max(cycles[-1]) - max(cycles[-2]) < MEMORY_GROWTH_LIMIT_MB, f"RSS (MB) after each codec's records: {memory}"
    assert service.get("/readyz")[0] == 200
    assert service.stop() == 0


def test_a_batch_that_cannot_be_read_is_logged_counted_and_fails_readiness(
    kafka, models_dir, dog_photos, monkeypatch, caplog
):
    """A codec the service lacks (here zstd, as without the zstandard package): the partition cannot move,
    and the service says so where people look (log line with the position, a metric, readiness), then
    reads it as soon as it can."""
    import kafka.codec as kafka_codec

    from catdog.metrics import ServiceMetrics
    from catdog.predict import load_models
    from catdog.service.classifier import Classifier

    ensure_topics(kafka)
    photo = dog_photos[400].read_bytes()
    records = [{"value": photo, "key": None, "headers": None} for _ in range(2)]
    produce(records, kafka.bootstrap_servers, kafka.images_topic, "zstd")
    monkeypatch.setattr(kafka_codec, "has_zstd", lambda: False)
    metrics = ServiceMetrics()
    classifier = Classifier(kafka, load_models(models_dir), metrics)
    thread = threading.Thread(target=classifier.run, daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: metrics.registry.get_sample_value("catdog_unreadable_batches_total"),
            60,
            lambda: f"an unreadable batch counted:\n{caplog.text[-3000:]}",
        )
        assert not metrics.is_ready() and metrics.is_live()
        assert f"{kafka.images_topic}[0]@0" in caplog.text and "UnsupportedCodecError" in caplog.text
        monkeypatch.undo()  # the codec is back (e.g. after an image upgrade): the records are read
        results = collect(kafka, kafka.predictions_topic, 2, timeout=60)
        assert len(results) == 2 and metrics.is_ready()
    finally:
        classifier.stop()
        thread.join(60)


def test_readers_skip_or_show_foreign_records_with_a_reason(kafka, tmp_path):
    """`catdog results` (both topics) and the notebook's readers, on topics other clients wrote to."""
    from catdog.kafka.clients import make_consumer
    from catdog.kafka.results import iter_dead_letters, iter_predictions

    ensure_topics(kafka)
    ours = {
        "key": "abc",
        "source": {"topic": kafka.images_topic, "partition": 0, "offset": 7},
        "filename": "cat.jpg",
        "quick": {"label": "cat", "p_dog": 0.1, "inference_ms": 1.0},
        "pretrained": {"label": "cat", "p_dog": 0.02, "inference_ms": 9.0},
        "agree": True,
    }
    produce(
        [
            {"value": value, "key": key, "headers": None}
            for value, key in (
                (b"\x00\x01 not json", b"\xff\xfe"),
                (b"[1, 2, 3]", None),
                (b'{"hello": "world"}', b"k"),
                (None, None),
                (json.dumps(ours).encode(), b"\xff\x00binary"),
            )
        ],
        kafka.bootstrap_servers,
        kafka.predictions_topic,
        "lz4",
    )
    produce(
        [
            {
                "value": b"x",
                "key": b"\xff\xfe",
                "headers": [("error-class", None), ("source-partition", b"\xff"), ("filename", b"\xff\xfe")],
            },
            {"value": None, "key": None, "headers": None},
        ],
        kafka.bootstrap_servers,
        kafka.dlq_topic,
        "snappy",
    )
    env = {**os.environ, **kafka_env(kafka)}

    table = subprocess.run(
        [sys.executable, "-m", "catdog.cli", "results", "--timeout", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    assert "cat.jpg" in table.stdout and len(table.stdout.splitlines()) == 2  # header + our one result
    skipped = [line for line in table.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 4, table.stderr
    assert "not JSON" in skipped[0] and "not an object" in skipped[1] and "no source" in skipped[2]
    assert "no value" in skipped[3]

    letters = subprocess.run(
        [sys.executable, "-m", "catdog.cli", "results", "--dead-letters", "--json", "--timeout", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert letters.returncode == 0 and "Traceback" not in letters.stderr, letters.stderr
    rows = [json.loads(line) for line in letters.stdout.splitlines()]
    assert [row["error-class"] for row in rows] == ["unknown", "unknown"]
    assert rows[0]["key"] == "0xfffe" and rows[0]["source"]["partition"] == -1 and rows[1]["bytes"] == 0

    consumer = make_consumer(kafka, kafka.predictions_topic)
    reasons = []
    found = list(iter_predictions(consumer, timeout=3, on_skip=lambda record, reason: reasons.append(reason)))
    consumer.close()
    assert [result["filename"] for result in found] == ["cat.jpg"] and len(reasons) == 4
    consumer = make_consumer(kafka, kafka.dlq_topic)
    assert len(list(iter_dead_letters(consumer, timeout=3))) == 2
    consumer.close()


def test_a_broker_that_stops_answering_is_one_line_and_a_non_zero_exit(kafka, broker, cat_photos):
    ensure_topics(kafka)
    env = {**os.environ, **kafka_env(kafka)}
    with frozen(broker):
        for verb in (["results", "--timeout", "3"], ["send", str(cat_photos[0])]):
            done = subprocess.run(
                [sys.executable, "-m", "catdog.cli", *verb], env=env, capture_output=True, text=True, timeout=120
            )
            assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
            assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("catdog: error:"), done.stderr
