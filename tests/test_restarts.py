"""The room's Kafka restarted mid-stream, as a node drain or an update restarts its pod: the enforcing broker
(kfake) keeps its data on disk (`-data-dir`, as the room's persistent claim does), stops for a while and comes
back at the same address while a learner's client sends 10 photos a second to the classifier, both with the
room's rendered settings. Every photo the broker acknowledged gets its result; readers show each once."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from catdog.broker import free_port
from catdog.kafka_io import once_each
from processes import Service, catdog_ok
from secured import KFAKE, rendered_env, scram_passwords, secure, start_kfake
from test_deploy import render, write_room

OUTAGE_SECONDS = 15
STREAM_PER_SECOND = 10


def read_results(settings: dict, deadline: float, wanted: set) -> list[dict]:
    """Every result on the predictions topic, read as the learner reads them (no group), until each of
    ``wanted`` has one."""
    consumer = Consumer({**settings, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition("predictions", 0, OFFSET_BEGINNING)])
    results = []
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                results.append(json.loads(message.value()))
            have = {(r["source"]["partition"], r["source"]["offset"]) for r in results}
            if wanted <= have and message is None:
                break
    finally:
        consumer.close()
    return results


def test_the_classifier_and_a_learner_come_back_after_a_restart_of_the_rooms_kafka(models_dir, cat_photos, dog_photos,
                                                                                  tmp_path):
    room = tmp_path / "room"
    write_room(room, "--learners", "Ada", "--apps-domain", "apps.example.com")
    objects = render(room)
    from catdog.room import read_room

    ca, passwords, port = read_room(room)["ca"], scram_passwords(objects), free_port()
    data = tmp_path / "kafka-data"

    def start():
        return start_kfake(ca, ["localhost", "127.0.0.1"], passwords, tmp_path / "broker",
                           command=[str(KFAKE), "-data-dir", str(data)], port=port)

    kafka = start()
    secure(kafka, objects)
    files = tmp_path / "files"
    classifier = rendered_env(objects, "Deployment", "catdog-classifier", kafka, files, namespace="catdog-room")
    learner = rendered_env(objects, "Deployment", "catdog-notebook", kafka, files, namespace="catdog-ada")
    service = Service({**classifier, "CATDOG_MODELS_DIR": str(models_dir)}, models_dir, tmp_path / "classifier.log")
    as_ada = {"bootstrap.servers": kafka.bootstrap, "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
              "sasl.username": learner["KAFKA_SASL_USERNAME"], "sasl.password": learner["KAFKA_SASL_PASSWORD"],
              "ssl.ca.location": learner["KAFKA_SSL_CAFILE"], "log_level": 0}
    producer = Producer({**as_ada, "message.timeout.ms": 120_000})
    acknowledged, failed, delivered_at, stop = [], [], [], threading.Event()

    def delivered(error, message) -> None:
        (failed if error else acknowledged).append(error or (message.partition(), message.offset()))
        if not error:
            delivered_at.append(time.time())

    def stream() -> None:
        photos = cat_photos[700:710] + dog_photos[700:710]
        sent = 0
        while not stop.is_set():
            photo = photos[sent % len(photos)]
            producer.produce("images", photo.read_bytes(), key=photo.name.encode(), on_delivery=delivered)
            producer.poll(0)
            sent += 1
            stop.wait(1 / STREAM_PER_SECOND)

    streaming = threading.Thread(target=stream)
    try:
        service.wait_ready()
        streaming.start()
        time.sleep(5)
        kafka.stop()  # the pod ends (SIGTERM); its volume stays
        stopped = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        kafka = start()
        back, back_at = time.monotonic(), time.time()
        time.sleep(5)
        stop.set()
        streaming.join()
        assert producer.flush(120) == 0 and not failed, failed
        flushed = time.monotonic() - back
        wanted = set(acknowledged)
        results = read_results(as_ada, time.monotonic() + 120, wanted)
        by_photo = {}
        for result in results:
            by_photo.setdefault((result["source"]["partition"], result["source"]["offset"]), []).append(result)
        assert wanted <= set(by_photo), (len(wanted - set(by_photo)), service.output()[-3000:])
        shown = list(once_each(results))
        assert len(shown) == len(by_photo) and len(shown) >= len(wanted)
        repeated = sum(len(copies) - 1 for copies in by_photo.values())
        # Whether the learner's own command reads the room again: `catdog results` as Ada.
        printed = catdog_ok("results", "--count", "5", env=learner)
        assert printed.strip(), printed
        classified_at = sorted(datetime.fromisoformat(r["classified_at"]).timestamp() for r in results)
        resumed = next(at for at in classified_at if at > back_at) - back_at
        producing = next(at for at in sorted(delivered_at) if at > back_at) - back_at
        print(f"restart: {len(wanted)} photos acknowledged, every one classified, {repeated} classified twice "
              f"(shown once); broker down {back - stopped:.1f} s; after its return the learner's producer delivered "
              f"again in {producing:.1f} s, the classifier published again in {resumed:.1f} s; all flushed in {flushed:.1f} s")
    finally:
        stop.set()
        service.stop()
        kafka.stop()
