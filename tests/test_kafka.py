"""The Kafka pipeline against the real embedded broker (no mocks): send, classify, dead-letter, results,
and the service's behaviour under SIGKILL, SIGTERM, two instances, and a missing broker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

import samples
from catdog import broker as embedded
from catdog.kafka.clients import ensure_topics, make_consumer, make_producer
from catdog.kafka.photos import ImageTooLarge, fetch_images, image_key, send_image
from conftest import free_port, kafka_env
from processes import SERVICE_START_SECONDS, catdog, catdog_ok, start_service
from waiting import wait_until

CLASSIFIER = Path(__file__).resolve().parent.parent / "deploy" / "openshift" / "base" / "classifier" / "deployment.yaml"


def collect(kafka, topic: str, count: int, timeout: float = 90) -> list:
    """Read records from the start of ``topic`` until ``count`` arrived (no group, nothing committed)."""
    consumer = make_consumer(kafka, topic)
    records: list = []
    try:  # fewer in time: the caller's assertion says how many came
        wait_until(
            lambda: (
                records.extend(r for batch in consumer.poll(timeout_ms=500).values() for r in batch)
                or len(records) >= count
            ),
            timeout,
            "",
            interval=0,
            fail=False,
        )
    finally:
        consumer.close()
    return records


def results_by_offset(kafka, count: int, timeout: float = 90) -> dict[tuple[int, int], dict]:
    records = collect(kafka, kafka.predictions_topic, count, timeout)
    results = [json.loads(record.value) for record in records]
    return {(r["source"]["partition"], r["source"]["offset"]): r for r in results}


@pytest.fixture
def photos(cat_photos, dog_photos) -> list[Path]:
    return cat_photos[100:104] + dog_photos[100:104]


def test_embedded_broker_starts_creates_topics_and_stops(tmp_path):
    state, port = tmp_path / "state", free_port()
    info = embedded.start(state, port)
    try:
        assert embedded.wait_for_port(port, 1)
        with pytest.raises(embedded.BrokerError, match="already running"):
            embedded.start(state, port)
        kafka = replace(load_kafka(), bootstrap_servers=info.bootstrap)
        assert sorted(ensure_topics(kafka)) == [
            "challenge",
            "challenge-submissions",
            "feedback",
            "images",
            "images-dlq",
            "predictions",
            "room-progress",
            "wall-moderation",
        ]
        assert ensure_topics(kafka) == []  # idempotent
    finally:
        stopped = embedded.stop(state)
    assert stopped is not None and stopped.pid == info.pid
    assert not embedded.wait_for_port(port, 0.3)
    assert not Path(f"/proc/{info.pid}").exists()  # reaped: no zombie left by a broker started in-process
    assert embedded.stop(state) is None  # nothing left to stop


def test_broker_stop_keeps_the_record_until_the_process_is_gone(tmp_path, monkeypatch):
    """A broker that ignores SIGTERM is killed; one that cannot be signalled keeps its record."""
    state, port = tmp_path / "state", free_port()
    state.mkdir()
    # Looks like our broker to `stop` (a tansu command line with its address) and ignores SIGTERM.
    stubborn = subprocess.Popen(
        ["bash", "-c", "trap '' TERM; while :; do sleep 0.1; done", "tansu", f"127.0.0.1:{port}"]
    )
    # Until the child has exec'd its command line.
    wait_until(lambda: embedded._is_our_broker(stubborn.pid, port), 10, "the stand-in broker to start", interval=0.05)
    record = {"pid": stubborn.pid, "port": port, "log": str(state / "broker.log")}
    (state / "broker.json").write_text(json.dumps(record))
    monkeypatch.setattr(embedded, "STOP_TIMEOUT_SECONDS", 1.0)
    real_kill = os.kill

    def refused(pid, signum):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(embedded.os, "kill", refused)
    with pytest.raises(embedded.BrokerError, match="cannot stop"):
        embedded.stop(state)
    assert json.loads((state / "broker.json").read_text()) == record  # not forgotten
    monkeypatch.setattr(embedded.os, "kill", real_kill)
    assert embedded.stop(state).pid == stubborn.pid
    assert not Path(f"/proc/{stubborn.pid}").exists() and not (state / "broker.json").exists()


def load_kafka():
    from catdog.config import load_settings

    return load_settings({}).kafka


def test_broker_cli_prints_the_bootstrap_address(tmp_path):
    env = {"CATDOG_BROKER_DIR": str(tmp_path / "state")}
    port = free_port()
    started = catdog("broker", "start", "--port", str(port), env=env)
    try:
        assert started.returncode == 0, started.stderr
        assert f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{port}" in started.stdout
    finally:
        stopped = catdog("broker", "stop", env=env)
    assert "Stopped the broker" in stopped.stdout
    assert not embedded.wait_for_port(port, 0.3)


def test_send_uses_sha256_keys_and_headers_and_refuses_oversize(kafka, photos):
    ensure_topics(kafka)
    producer = make_producer(kafka)
    data = photos[0].read_bytes()
    sent = send_image(producer, kafka, data, photos[0].name)
    with pytest.raises(ImageTooLarge, match="not sent"):
        send_image(producer, replace(kafka, max_image_bytes=len(data) - 1), data, "big.jpg")
    producer.close()
    consumer = make_consumer(kafka, kafka.images_topic, group_id=kafka.group_id)
    [image] = fetch_images(consumer, kafka, count=1, timeout=30)
    consumer.close()
    assert (image.partition, image.offset, image.key) == (sent.partition, sent.offset, image_key(data).decode())
    assert image.headers["filename"] == photos[0].name and image.headers["content-type"] == "image/jpeg"
    assert image.headers["sent-at"].endswith("+00:00")
    assert image.image is not None and image.error is None


def test_send_cli_prints_offsets_and_refuses_big_files(kafka, photos, tmp_path):
    ensure_topics(kafka)
    limit = max(photo.stat().st_size for photo in photos[:2])
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * (limit + 1))
    result = catdog(
        "send", str(photos[0]), str(photos[1]), str(big), env=kafka_env(replace(kafka, max_image_bytes=limit))
    )
    assert result.returncode == 1
    assert f"{photos[0].name} -> {kafka.images_topic}[0]@0" in result.stdout
    assert f"{photos[1].name} -> {kafka.images_topic}[0]@1" in result.stdout
    assert "big.jpg" not in result.stdout and "over the" in result.stderr


def test_send_reads_one_image_from_stdin(kafka, photos):
    ensure_topics(kafka)
    result = subprocess.run(
        [sys.executable, "-m", "catdog.cli", "send", "-"],
        input=photos[0].read_bytes(),
        capture_output=True,
        env={**os.environ, **kafka_env(kafka)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert f"stdin -> {kafka.images_topic}[0]@0" in result.stdout.decode()
    consumer = make_consumer(kafka, kafka.images_topic)
    [image] = fetch_images(consumer, kafka, count=1, timeout=30)
    consumer.close()
    assert image.data == photos[0].read_bytes() and image.key == image_key(image.data).decode()


def test_fetch_images_applies_the_configured_pixel_limit(kafka, photos):
    ensure_topics(kafka)
    producer = make_producer(kafka)
    send_image(producer, kafka, photos[0].read_bytes(), photos[0].name)
    producer.close()
    strict = replace(kafka, max_image_pixels=100)  # as if CATDOG_MAX_IMAGE_PIXELS=100
    consumer = make_consumer(strict, strict.images_topic)
    [image] = fetch_images(consumer, strict, count=1, timeout=30)
    consumer.close()
    assert image.image is None and image.error.reason == "too-many-pixels"


def test_the_original_lab_pattern_one_image_per_cell_run(kafka, photos):
    ensure_topics(kafka)
    producer = make_producer(kafka)
    for photo in photos[:3]:
        send_image(producer, kafka, photo.read_bytes(), photo.name)
    producer.close()
    consumer = make_consumer(kafka, kafka.images_topic, group_id=kafka.group_id)
    names = [fetch_images(consumer, kafka, count=1, timeout=30)[0].filename for _ in range(3)]
    consumer.close()
    assert names == [photo.name for photo in photos[:3]]
    # Committed as it went: a new reader in the same group has nothing left to read.
    again = make_consumer(kafka, kafka.images_topic, group_id=kafka.group_id)
    assert fetch_images(again, kafka, count=1, timeout=8) == []
    again.close()


def test_slow_processing_between_polls_keeps_the_group_membership(kafka, photos):
    """Inference slower than the session timeout must not get the consumer thrown out of its group:
    heartbeats run in the background, and max.poll.interval leaves minutes between polls."""
    ensure_topics(kafka)
    producer = make_producer(kafka)
    for photo in photos[:2]:
        send_image(producer, kafka, photo.read_bytes(), photo.name)
    producer.close()
    consumer = make_consumer(kafka, kafka.images_topic, group_id=kafka.group_id, max_poll_records=1)
    first = fetch_images(consumer, kafka, count=1, timeout=30, commit=False)
    generation = consumer._coordinator._generation
    time.sleep(kafka.session_timeout_ms / 1000 * 1.5)  # "inference" longer than the session timeout
    consumer.commit()  # would raise CommitFailedError had the group moved on without us
    second = fetch_images(consumer, kafka, count=1, timeout=30)
    assert consumer._coordinator._generation == generation  # no rebalance happened
    consumer.close()
    assert [first[0].offset, second[0].offset] == [0, 1]


# Every kind of message a user might send, and what the service must do with it.
MESSAGES = {
    "empty": (lambda photo: b"", "empty"),
    "text": (lambda photo: b"hello, I am a cat", "not-an-image"),
    "html": (lambda photo: samples.html(), "not-an-image"),
    "random bytes": (lambda photo: samples.random_bytes(), "not-an-image"),
    "zip": (lambda photo: samples.zip_bytes(), "not-an-image"),
    "pdf": (lambda photo: samples.pdf(), "unsupported-format"),
    "truncated jpeg": (lambda photo: photo[: len(photo) // 2], "truncated"),
    "decompression bomb": (lambda photo: samples.bomb(), "too-many-pixels"),
    "over-size": (lambda photo: photo + b"\0" * 600_000, "too-large"),
    "palette png with transparency": (samples.transparent_palette_png, None),
    "cmyk jpeg": (samples.cmyk_jpeg, None),
    "16-bit png": (samples.sixteen_bit_png, None),
    "animated gif": (samples.animated_gif, None),
    "exif-rotated jpeg": (samples.exif_rotated, None),
}


def test_round_trip_with_every_kind_of_message(kafka, models_dir, photos, services, tmp_path):
    kafka = replace(kafka, max_image_bytes=600_000)
    ensure_topics(kafka)
    base = photos[0].read_bytes()
    assert len(base) < 600_000
    raw = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, max_request_size=4 << 20)
    expected: dict[int, tuple[str, str | None]] = {}
    payloads: dict[int, bytes] = {}
    for photo in photos:
        offset = (
            raw.send(kafka.images_topic, photo.read_bytes(), headers=[("filename", photo.name.encode())]).get(10).offset
        )
        expected[offset] = (photo.name, None)
    for kind, (make, reason) in MESSAGES.items():
        # Sent raw, as any client might: the service, not the sender, must cope.
        payload = make(base)
        offset = (
            raw.send(kafka.images_topic, payload, key=kind.encode(), headers=[("filename", kind.encode())])
            .get(10)
            .offset
        )
        expected[offset], payloads[offset] = (kind, reason), payload
    raw.close()
    service = start_service(services, kafka, models_dir, tmp_path)

    n_dead = sum(1 for _, reason in expected.values() if reason)
    results = results_by_offset(kafka, len(expected) - n_dead)
    dead = collect(kafka, kafka.dlq_topic, n_dead)
    dead_by_offset = {int(dict(r.headers)["source-offset"]): r for r in dead}
    for offset, (name, reason) in expected.items():
        if reason is None:
            result = results[0, offset]
            assert result["filename"] == name
            for model in ("quick", "pretrained"):
                assert result[model]["label"] in ("cat", "dog") and 0 <= result[model]["p_dog"] <= 1
                assert result[model]["inference_ms"] > 0
            assert result["agree"] == (result["quick"]["label"] == result["pretrained"]["label"])
            assert result["classified_at"].endswith("+00:00")
        else:
            letter = dead_by_offset[offset]
            headers = {k: v.decode() for k, v in letter.headers}
            assert headers["error-class"] == reason, (name, headers)
            assert headers["error"] and headers["filename"] == name
            assert letter.value == payloads[offset]  # the original bytes, kept for inspection
    # The real photos were classified by the pretrained model: the fixture's, trained on 60 photos a class,
    # right on about 98 in 100 unseen ones, so at most one of these eight may be missed.
    verdicts = {r["filename"]: r["pretrained"]["label"] for r in results.values() if "pretrained" in r}
    right = [verdicts[photo.name] in photo.name for photo in photos]
    assert sum(right) >= len(photos) - 1, verdicts
    assert service.process.poll() is None  # still running after all of that

    status, text = service.get("/metrics")
    assert status == 200
    assert 'catdog_images_classified_total{label="dog",model="pretrained"}' in text
    assert 'catdog_dead_letters_total{reason="too-many-pixels"} 1.0' in text
    assert 'catdog_p_dog_bucket{le="0.5",model="quick"}' in text
    assert "catdog_end_to_end_seconds_count" in text and "catdog_batch_size_count" in text
    assert service.get("/healthz")[0] == 200
    assert service.stop() == 0

    # What a user sees: `catdog results`, as a table, as JSON lines, and the dead letters.
    env = kafka_env(kafka)
    table = catdog("results", "--count", "3", "--timeout", "10", env=env)
    assert table.returncode == 0 and "agree" in table.stdout.splitlines()[0]
    assert len(table.stdout.splitlines()) == 4
    # A human's default is the newest results (Kafka keeps the oldest first): --last N.
    newest = sorted(results.values(), key=lambda result: result["classified_at"])[-2:]
    last = catdog("results", "--last", "2", "--timeout", "3", env=env).stdout.splitlines()
    assert len(last) == 3 and [
        f"[{r['source']['partition']}]@{r['source']['offset']}" in line for r, line in zip(newest, last[1:])
    ] == [True, True], last
    lines = catdog("results", "--json", "--timeout", "3", env=env).stdout.splitlines()
    assert sorted(json.loads(line)["source"]["offset"] for line in lines) == sorted(o for (_, o) in results)
    letters = catdog("results", "--dead-letters", "--json", "--timeout", "3", env=env).stdout.splitlines()
    assert {json.loads(line)["error-class"] for line in letters} == {r for _, r in expected.values() if r}


def committed_offsets(kafka) -> dict[int, int | None]:
    """The classifier group's committed offsets on the images topic, read without joining the group."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, group_id=kafka.group_id, enable_auto_commit=False
    )
    try:
        partitions = consumer.partitions_for_topic(kafka.images_topic) or set()
        return {p: consumer.committed(TopicPartition(kafka.images_topic, p)) for p in partitions}
    finally:
        consumer.close(autocommit=False)


def wait_committed(kafka, sent: list, timeout: float = 60) -> bool:
    """True once the group has committed past the last of ``sent`` on each partition."""
    expected = {}
    for record in sent:
        expected[record.partition] = max(expected.get(record.partition, 0), record.offset + 1)
    done = lambda: all(committed_offsets(kafka).get(p) == offset for p, offset in expected.items())  # noqa: E731 - one line
    return bool(wait_until(done, timeout, "", fail=False))


def results_for(kafka, sent: list, timeout: float = 90, settle: float = 0.0) -> dict[tuple[int, int], list[dict]]:
    """Read results from the start until every record of ``sent`` has one, then ``settle`` seconds more
    (for duplicates still on their way); every result, keyed by its source partition and offset."""
    wanted = {(s.partition, s.offset) for s in sent}
    consumer = make_consumer(kafka, kafka.predictions_topic)
    results: dict[tuple[int, int], list[dict]] = {}
    try:  # a photo with no result in time: the caller's assertion says which
        wait_until(lambda: read(consumer, results) >= 0 and wanted <= set(results), timeout, "", interval=0, fail=False)
        quiet_until = time.monotonic() + settle
        while time.monotonic() < quiet_until:
            if read(consumer, results):
                quiet_until = time.monotonic() + settle
    finally:
        consumer.close()
    return results


def read(consumer, results: dict) -> int:
    count = 0
    for batch in consumer.poll(timeout_ms=200).values():
        for record in batch:
            result = json.loads(record.value)
            results.setdefault((result["source"]["partition"], result["source"]["offset"]), []).append(result)
            count += 1
    return count


def test_sigkill_loses_nothing_and_repeats_nothing_committed(kafka, models_dir, cat_photos, services, tmp_path):
    """SIGKILL (the OOM killer, a lost node) gives no chance to clean up: what was committed is never
    classified again, and what was sent while the pod was gone is classified by the next one."""
    ensure_topics(kafka)
    producer = make_producer(kafka)
    done = [send_image(producer, kafka, p.read_bytes(), p.name) for p in cat_photos[200:224]]
    first = start_service(services, kafka, models_dir, tmp_path, "first")
    assert wait_committed(kafka, done), committed_offsets(kafka)
    first.process.send_signal(signal.SIGSTOP)  # frozen, so it reads none of what follows; then killed
    pending = [send_image(producer, kafka, p.read_bytes(), p.name) for p in cat_photos[224:248]]
    producer.close()
    first.stop(signal.SIGKILL)
    before = results_for(kafka, done, settle=2.0)
    assert set(before) == {(s.partition, s.offset) for s in done}  # nothing of what followed was read
    assert all(len(copies) == 1 for copies in before.values())
    second = start_service(services, kafka, models_dir, tmp_path, "second")
    assert wait_committed(kafka, pending), committed_offsets(kafka)
    results = results_for(kafka, done + pending, settle=2.0)
    assert set(results) == {(s.partition, s.offset) for s in done + pending}  # every image has a result
    assert all(len(copies) == 1 for copies in results.values()), "a committed image was classified again"
    assert {copies[0]["instance"] for (_, offset), copies in results.items() if offset >= pending[0].offset} == {
        f"{socket.gethostname()}-{second.process.pid}"
    }
    second.stop()


def test_sigterm_finishes_the_batch_and_commits(kafka, models_dir, dog_photos, services, tmp_path):
    ensure_topics(kafka)
    producer = make_producer(kafka)
    sent = [send_image(producer, kafka, p.read_bytes(), p.name) for p in dog_photos[200:216]]
    producer.close()
    service = start_service(services, kafka, models_dir, tmp_path)
    results_by_offset(kafka, len(sent))
    assert service.stop(signal.SIGTERM) == 0
    assert "stopped" in service.output()
    consumer = make_consumer(kafka, group_id=kafka.group_id)
    committed = consumer.committed(TopicPartition(kafka.images_topic, 0))
    consumer.close()
    assert committed == len(sent)


@contextmanager
def frozen(broker):
    """The broker stops answering (SIGSTOP), as a hung or partitioned node does, until the block ends."""
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(broker.pid, signal.SIGCONT)


def test_sigterm_mid_batch_with_a_broker_that_stopped_answering_ends_within_the_grace_period(
    kafka, models_dir, broker, dog_photos, services, tmp_path
):
    """The batch's results cannot be acknowledged and the group cannot be left: the pod must still be gone
    before OpenShift's SIGKILL (the uncommitted batch is read again by the next pod)."""
    grace = yaml.safe_load(CLASSIFIER.read_text())["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    ensure_topics(kafka)
    producer = make_producer(kafka)
    producer.send(kafka.images_topic, b"not an image").get(10)  # logged as the batch is processed
    for photo in dog_photos[300:315]:
        send_image(producer, kafka, photo.read_bytes(), photo.name)
    producer.close()
    service = start_service(services, kafka, models_dir, tmp_path, ready=False)
    service.wait_logged("dead letter", SERVICE_START_SECONDS)
    with frozen(broker):  # mid-batch: its sends will not be acknowledged
        started = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        code = service.process.wait(grace + 90)
        seconds = time.monotonic() - started
    assert seconds < grace - 10, f"{seconds:.1f} s of a {grace} s grace period:\n{service.output()[-3000:]}"
    assert code == 0, service.output()[-3000:]


def test_a_dead_letter_the_broker_does_not_acknowledge_leaves_its_offset_uncommitted(
    kafka, models_dir, broker, monkeypatch
):
    """Offsets are committed only after every dead letter of the batch is acknowledged."""
    from catdog.metrics import ServiceMetrics
    from catdog.predict import load_models
    from catdog.service import classifier as service_module
    from catdog.service import pipeline

    ensure_topics(kafka)
    raw = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    for payload in (b"", b"not an image", samples.random_bytes()):
        raw.send(kafka.images_topic, payload).get(10)
    raw.close()
    classifier = service_module.Classifier(kafka, load_models(models_dir), ServiceMetrics())
    consumer = make_consumer(kafka, kafka.images_topic, group_id=kafka.group_id)
    records: list = []
    wait_until(
        lambda: (
            records.extend(r for batch in consumer.poll(timeout_ms=500).values() for r in batch) or len(records) >= 3
        ),
        30,
        "the three records fetched",
        interval=0,
    )
    producer = make_producer(kafka)
    producer.send(kafka.dlq_topic, b"warm-up").get(10)  # connected, the topic known: only the ack fails
    monkeypatch.setattr(pipeline, "SEND_TIMEOUT_SECONDS", 2.0)
    with frozen(broker), pytest.raises(KafkaError):
        classifier.process(records, producer)  # what run_session commits comes only from its return
    producer.close(timeout=5)
    assert consumer.committed(TopicPartition(kafka.images_topic, 0)) is None
    consumer.close(autocommit=False)


def test_the_next_batch_decodes_in_the_pool_while_the_current_one_is_classified(kafka, models_dir, photos):
    """Decoding (70 % of the service's time when it ran in the loop's thread) runs in a pool of one thread
    per CPU of the limit: `start` hands a polled batch to it and returns at once, so the loop classifies
    and publishes the batch before while this one decodes."""
    import threading
    from types import SimpleNamespace

    from catdog.metrics import ServiceMetrics
    from catdog.predict import load_models
    from catdog.service import classifier as service_module
    from catdog.service import pipeline

    ensure_topics(kafka)
    classifier = service_module.Classifier(replace(kafka, decode_threads=2), load_models(models_dir), ServiceMetrics())
    giant = samples.encode(samples.gradient(6000, 4000), "PNG")  # ~0.5 s to decode here
    records = [
        SimpleNamespace(
            topic=kafka.images_topic,
            partition=0,
            offset=offset,
            timestamp=0,
            key=None,
            headers=[],
            value=giant if offset < 4 else photos[offset % len(photos)].read_bytes(),
        )
        for offset in range(6)
    ]
    names: set[str] = set()
    original = pipeline.decode_record

    def decode(*args, **kwargs):
        names.add(threading.current_thread().name)
        return original(*args, **kwargs)

    pipeline.decode_record = decode
    try:
        batch = classifier.start(records)
        # Handed over, not decoded: four giant PNGs (~0.5 s each) are still decoding when start returns.
        # (Not timed: beside the image build in CI the hand-over itself once took 0.35 s.)
        assert not all(future.done() for future in batch.decoding)
        producer = make_producer(kafka)
        offsets = classifier.finish(batch, producer)
        producer.close()
    finally:
        pipeline.decode_record = original
        classifier.pool.shutdown()
    assert offsets[TopicPartition(kafka.images_topic, 0)].offset == 6
    assert names and all(name.startswith("decode") for name in names) and len(names) == 2
    assert len(collect(kafka, kafka.predictions_topic, 6, timeout=30)) == 6


def test_two_instances_share_a_three_partition_topic(kafka, models_dir, cat_photos, dog_photos, services, tmp_path):
    ensure_topics(kafka, partitions=3)
    producer = make_producer(kafka)
    photos = cat_photos[300:330] + dog_photos[300:330]
    sent = [send_image(producer, kafka, p.read_bytes(), p.name) for p in photos]
    producer.close()
    assert len({s.partition for s in sent}) == 3
    one = start_service(services, kafka, models_dir, tmp_path, "one", ready=False)
    two = start_service(services, kafka, models_dir, tmp_path, "two", ready=False)
    one.wait_ready()
    two.wait_ready()
    results = results_for(kafka, sent, timeout=60)
    assert set(results) == {(s.partition, s.offset) for s in sent}
    instances = {copy["instance"] for copies in results.values() for copy in copies}
    assert len(instances) == 2, instances
    one.stop()
    two.stop()


def test_a_member_paused_past_its_session_timeout_loses_nothing_and_keeps_its_connections(
    kafka, models_dir, cat_photos, dog_photos, services, tmp_path
):
    """A rebalance mid-batch, as throttled CPUs or a long GC cause on a cluster: one service is paused
    (SIGSTOP) past its session timeout while a second joins; the group gives its partitions to the second.
    Resumed, the first publishes the batches it held and finds its commit refused: it carries on in the new
    generation (no reconnect, no backoff) and every image still has a result. Repeats stay within the
    at-least-once window: the batches each member held when the group moved (two each, decoding and
    classifying)."""
    ensure_topics(kafka, partitions=3)
    producer = make_producer(kafka)
    sent = [send_image(producer, kafka, p.read_bytes(), p.name) for p in cat_photos[400:445] + dog_photos[400:445]]
    producer.close()
    one = start_service(services, kafka, models_dir, tmp_path, "one")
    one.wait_logged("committed", 60)
    one.process.send_signal(signal.SIGSTOP)  # mid-stream: it holds a batch it has not committed
    try:
        two = start_service(services, kafka, models_dir, tmp_path, "two")
        two.wait_logged("committed", kafka.session_timeout_ms / 1000 * 4)
    finally:
        one.process.send_signal(signal.SIGCONT)
    assert wait_committed(kafka, sent, timeout=120), (
        f"{committed_offsets(kafka)}\none:\n{one.output()[-2500:]}\ntwo:\n{two.output()[-2500:]}"
    )
    results = results_for(kafka, sent, settle=3.0)
    assert set(results) == {(s.partition, s.offset) for s in sent}, "an image has no result"
    repeated = [where for where, copies in results.items() if len(copies) > 1]
    assert len(repeated) <= 4 * kafka.batch_size, f"{len(repeated)} results repeated"
    one.wait_logged("group rebalanced", 60)
    assert "retrying in" not in one.output(), one.output()[-3000:]
    # The group settled in a few joins (8-9 in all, a member-id round each time included), not a member
    # joining again every few seconds: kafka-python drops a join that completes outside poll(), as one did
    # behind the service's offset fetch before it waited for the group to settle (DEVELOPERS.md).
    joins = [service.output().count("(Re-)joining group") for service in (one, two)]
    assert sum(joins) <= 16, f"{joins} joins:\n{two.output()[-3000:]}"
    assert one.process.poll() is None and two.process.poll() is None
    one.stop()
    two.stop()


def test_no_broker_at_start_is_retried_then_connects(models_dir, services, tmp_path, kafka):
    port = free_port()
    kafka = replace(kafka, bootstrap_servers=f"127.0.0.1:{port}")
    service = start_service(services, kafka, models_dir, tmp_path, ready=False)
    service.wait_logged("retrying in", SERVICE_START_SECONDS)
    assert f"Kafka problem at 127.0.0.1:{port}" in service.output()
    assert service.get("/readyz")[0] == 503 and service.get("/healthz")[0] == 200
    state = tmp_path / "late-broker"
    embedded.start(state, port)  # the broker comes up late: the service must connect on its own
    try:
        ensure_topics(kafka)
        service.wait_ready()
        producer = make_producer(kafka)
        send_image(producer, kafka, samples.cmyk_jpeg(samples.encode(samples.gradient(), "JPEG")), "late.jpg")
        producer.close()
        assert len(results_by_offset(kafka, 1)) == 1
        assert service.stop() == 0
    finally:
        embedded.stop(state)


def test_a_new_model_file_is_served_without_a_restart_and_a_broken_one_is_not(
    kafka, models_dir, cat_photos, services, tmp_path
):
    """Hot reload: results name the model version that made them; a retrained file written to the
    models folder is served from the next batch on; a damaged one leaves the last good model serving."""
    import shutil

    from catdog.models import model_version

    folder = tmp_path / "models"
    shutil.copytree(models_dir, folder)
    ensure_topics(kafka)
    first = model_version(folder / "pretrained.keras")
    service = start_service(services, kafka, folder, tmp_path, extra_env={"CATDOG_MODEL_RELOAD_SECONDS": "1"})
    producer = make_producer(kafka)
    sent = 0

    def classify_four() -> list[dict]:
        nonlocal sent
        for photo in cat_photos[500 + sent : 504 + sent]:
            send_image(producer, kafka, photo.read_bytes(), photo.name)
        sent += 4
        return sorted(results_by_offset(kafka, sent).items())[-4:]

    def replace_model(data: bytes) -> None:  # as a trainer writes it: beside, then renamed
        (folder / ".pretrained.partial.keras").write_bytes(data)
        (folder / ".pretrained.partial.keras").replace(folder / "pretrained.keras")

    assert {result["pretrained"]["version"] for _, result in classify_four()} == {first}
    replace_model((models_dir / "quick.keras").read_bytes())  # another valid catdog model
    second = model_version(folder / "pretrained.keras")
    service.wait_logged(f"now serving pretrained model {second} (was {first})", 60)
    assert {result["pretrained"]["version"] for _, result in classify_four()} == {second}
    assert {result["quick"]["version"] for _, result in classify_four()} == {model_version(folder / "quick.keras")}

    replace_model(b"PK\x03\x04 not a model at all")
    service.wait_logged("new pretrained model not loaded, still serving version " + second, 60)
    assert {result["pretrained"]["version"] for _, result in classify_four()} == {second}
    producer.close()
    status, text = service.get("/metrics")
    assert f'catdog_model_version{{model="pretrained",version="{second}"}} 1.0' in text
    assert f'version="{first}"' not in text
    assert 'catdog_model_reload_failures_total{model="pretrained"} 1.0' in text
    assert service.stop() == 0


def test_a_result_written_between_a_readers_time_lookup_and_its_first_fetch_is_read(kafka):
    """The learner's wait for a result (and every test's) reads the results from the sent photo's time on.
    When nothing that recent is there yet, the reader starts at the end as it was *before* the lookup: a
    result written in between is read. Positioned at the end resolved on the first fetch (`seek_to_end`),
    it was skipped and the learner waited the whole timeout for a result that had come: this was the
    classifier "stalled after a hot swap" in `.ci/run` (issue 40), a reader that missed its result."""
    from catdog.kafka.clients import make_reader

    ensure_topics(kafka)
    producer = make_producer(kafka)
    producer.send(kafka.predictions_topic, b"older").get(10)
    time.sleep(0.05)
    reader = make_reader(kafka, kafka.predictions_topic, since_ms=int(time.time() * 1000))
    producer.send(kafka.predictions_topic, b"the result").get(10)  # after the lookup, before any fetch
    producer.close()
    values: list = []
    try:
        wait_until(
            lambda: (
                values.extend(r.value for batch in reader.poll(timeout_ms=200).values() for r in batch)
                or b"the result" in values
            ),
            10,
            "the result written between the lookup and the first fetch",
            interval=0,
        )
    finally:
        reader.close()


SWAPS = 6  # promotions and rollbacks, alternating
STREAM_PER_SECOND = 10


def test_promotions_and_rollbacks_while_photos_stream_give_each_photo_one_result_from_the_named_version(
    kafka, models_dir, cat_photos, dog_photos, services, tmp_path
):
    """The room's retraining promotes a model and the instructor rolls it back, several times, while
    photos stream at 10 a second: every photo gets exactly one result, and the version a result names is
    the one that produced it (its p(dog) is that version's, computed here the way the service computes it)."""
    import shutil
    import threading

    from catdog import registry
    from catdog.models import load_model
    from catdog.predict import classify_paths

    folder = tmp_path / "models"
    shutil.copytree(models_dir, folder)
    first = registry.adopt(folder, "pretrained")
    # Another valid catdog model as the candidate (the quick CNN's file): its verdicts differ, and so does
    # its input size, so the batch's size changes with every swap too.
    candidate = registry.register(folder, "pretrained", models_dir / "quick.keras", {"why": "the swap test"})
    env = {"CATDOG_MODEL_RELOAD_SECONDS": "1", "CATDOG_MODELS_DIR": str(folder)}
    ensure_topics(kafka)
    service = start_service(services, kafka, folder, tmp_path, extra_env=env)
    photos = cat_photos[600:606] + dog_photos[600:606]
    sent, stop = [], threading.Event()

    def stream() -> None:
        producer = make_producer(kafka)
        while not stop.is_set():
            photo = photos[len(sent) % len(photos)]
            sent.append((photo, send_image(producer, kafka, photo.read_bytes(), photo.name)))
            stop.wait(1 / STREAM_PER_SECOND)
        producer.close()

    streaming = threading.Thread(target=stream)
    streaming.start()
    try:
        serving = first
        for swap in range(SWAPS):
            before = serving
            if swap % 2 == 0:  # the gate's promotion
                registry.serve(folder, "pretrained", candidate)
                serving = candidate
            else:  # the instructor's way back
                catdog_ok("models", "rollback", env={**kafka_env(kafka), **env})
                serving = first
            swapped = f"now serving pretrained model {serving} (was {before})"
            service.wait_logged("now serving pretrained model", 60, times=swap + 1)
            assert service.output().rstrip().rsplit("now serving", 1)[-1].startswith(swapped[len("now serving") :])
            time.sleep(1.0)  # photos classified by this version
    finally:
        stop.set()
        streaming.join()
    results = results_for(kafka, [record for _, record in sent], timeout=120, settle=2.0)
    assert set(results) == {(record.partition, record.offset) for _, record in sent}, service.output()[-3000:]
    assert all(len(copies) == 1 for copies in results.values()), "a photo got two results"
    assert service.output().count("now serving pretrained model") == SWAPS

    quick = load_model(folder / "quick.keras")
    expected = {}
    for version in (first, candidate):
        pair = {"quick": quick, "pretrained": load_model(folder / "versions" / "pretrained" / f"{version}.keras")}
        for outcome in classify_paths(photos, pair, max_bytes=kafka.max_image_bytes, max_pixels=kafka.max_image_pixels):
            expected[version, outcome.path] = outcome.verdicts["pretrained"].p_dog
    named = {first: 0, candidate: 0}
    for photo, record in sent:
        [result] = results[record.partition, record.offset]
        version = result["pretrained"]["version"]
        named[version] += 1
        assert result["pretrained"]["p_dog"] == pytest.approx(expected[version, photo], abs=0.01), (photo, version)
    assert min(named.values()) > 0, named
    assert service.stop() == 0


def test_a_copy_of_a_learners_signed_photo_is_classified_but_shown_as_no_ones(
    kafka, models_dir, cat_photos, services, tmp_path
):
    """Anyone who reads the images topic can send Ada's signed photo again: it gets its verdicts, but the
    result names no one and says it is a replay (her results would list it twice otherwise)."""
    from confluent_kafka import Producer

    from catdog.identity import new_key

    ensure_topics(kafka)
    ada, table = new_key(), tmp_path / "keys.json"
    table.write_text(json.dumps({"learners": {"Ada": ada}, "relays": {}}))
    service = start_service(services, kafka, models_dir, tmp_path, extra_env={"CATDOG_LEARNER_KEYS": str(table)})
    as_ada = replace(kafka, learner="Ada", learner_key=ada)
    producer = make_producer(as_ada)
    original = send_image(producer, as_ada, cat_photos[40].read_bytes(), cat_photos[40].name)
    producer.close()
    [record] = collect(kafka, kafka.images_topic, 1)
    copier = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    copier.produce(kafka.images_topic, record.value, key=record.key, headers=record.headers, partition=record.partition)
    assert copier.flush(10) == 0
    results = results_by_offset(kafka, 2)
    first, copy = results[original.partition, original.offset], results[original.partition, original.offset + 1]
    assert first["learner"] == "Ada" and first["learner_verified"] and "replay" not in first
    assert copy["learner"] == "" and not copy["learner_verified"], copy
    assert copy["replay"] == (
        f"replay: a copy of a record Ada signed, first read at "
        f"{kafka.images_topic}[{original.partition}]@{original.offset}"
    )
    assert copy["pretrained"]["label"] == first["pretrained"]["label"]
    assert service.stop() == 0


def test_a_learner_whose_rooms_kafka_is_away_is_told_so_not_to_start_a_local_broker(kafka):
    """During a restart of the room's Kafka the learner has nothing to start: the error names the room's
    broker and says what to do; on a laptop it still says how to start the embedded one."""
    from catdog.kafka.clients import KafkaUnavailable

    for bootstrap, learner_key, said in (
        ("127.0.0.2:1", None, "cannot reach the room's Kafka at 127.0.0.2:1"),  # not this machine: a room's
        (f"127.0.0.1:{free_port()}", "0" * 64, "cannot reach the room's Kafka at 127.0.0.1"),  # signing: a room
        (f"127.0.0.1:{free_port()}", None, "start the local broker with `catdog broker start`"),
    ):
        with pytest.raises(KafkaUnavailable) as raised:  # after 1 s, not the 10 s a learner waits: the same words
            make_producer(
                replace(kafka, bootstrap_servers=bootstrap, learner_key=learner_key), bootstrap_timeout_ms=1000
            )
        assert said in str(raised.value), raised.value
        assert ("catdog broker start" in str(raised.value)) == (
            learner_key is None and bootstrap.startswith("127.0.0.1")
        )


def test_readers_show_each_photo_once_when_the_classifier_published_it_twice():
    """At least once: a batch whose publish timed out while the broker went away can be classified again.
    The notebooks' list (mine_first) and `catdog results` (once_each) show each photo's first result only."""
    from catdog.kafka.results import mine_first, once_each

    def result(offset: int, at: str, learner: str = "Ada") -> dict:
        return {
            "source": {"topic": "images", "partition": 0, "offset": offset},
            "classified_at": at,
            "learner": learner,
        }

    results = [
        result(1, "2026-12-07T10:00:01"),
        result(2, "2026-12-07T10:00:02"),
        result(1, "2026-12-07T10:00:09"),
        result(3, "2026-12-07T10:00:03", "Bob"),
    ]
    assert [r["source"]["offset"] for r in once_each(results)] == [1, 2, 3]
    shown = mine_first(results, "Ada")
    assert [(r["source"]["offset"], r["classified_at"][-2:]) for r in shown] == [(2, "02"), (1, "01"), (3, "03")]
