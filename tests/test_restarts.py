"""The room's Kafka restarted mid-stream, as a node drain or an update restarts its pod: the enforcing broker
(kfake) keeps its data on disk (`-data-dir`, as the room's persistent claim does), stops for a while and comes
back at the same address while a learner's client sends 10 photos a second. The classifier, the wall, a
learner's cell waiting for its result and `catdog send` all run with the room's rendered settings. Every photo
the broker acknowledged gets its result (readers show each once), the wall counts each once, no vote or
moderation is lost, and each component works again: how soon after the broker's return is printed (and
recorded in benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import datetime

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from catdog.broker import free_port
from catdog.config import load_settings
from catdog.kafka.clients import make_producer
from catdog.kafka.photos import send_image
from catdog.kafka.results import find_prediction, once_each
from catdog.labels import label_image, read_labelled
from processes import Service, catdog, start_wall
from secured import KFAKE, rendered_env, scram_passwords, secure, start_kfake
from test_deploy import render, write_room
from waiting import wait_until

OUTAGE_SECONDS = 15
STREAM_PER_SECOND = 10


def read_results(settings: dict, timeout: float, wanted: set) -> list[dict]:
    """Every result on the predictions topic, read as the learner reads them (no group), until each of
    ``wanted`` has one and nothing more comes (those missing after ``timeout`` s: the caller's assertion)."""
    consumer = Consumer({**settings, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition("predictions", 0, OFFSET_BEGINNING)])
    results: list[dict] = []

    def all_read() -> bool:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            results.append(json.loads(message.value()))
        return message is None and wanted <= {(r["source"]["partition"], r["source"]["offset"]) for r in results}

    try:
        wait_until(all_read, timeout, "", interval=0, fail=False)
    finally:
        consumer.close()
    return results


def wall_stats(client: httpx.Client) -> dict:
    """What a projector opening the wall now is shown: its cards and counts (the stream's snapshot)."""
    with client.stream("GET", "/api/events") as stream:
        return json.loads(next(line for line in stream.iter_lines() if line.startswith("data:"))[5:])


def first_after(at: float, deadline: float, works) -> float | None:
    """Seconds from ``at`` until ``works()`` is first true (tried every half second), None by ``deadline``:
    a component that never came back is the caller's finding, reported with the others'."""
    found = wait_until(works, max(0.0, deadline - time.time()), "", interval=0.5, fail=False)
    return None if found is None else time.time() - at


def test_the_room_comes_back_whole_after_a_restart_of_its_kafka_mid_stream(
    models_dir, cat_photos, dog_photos, tmp_path
):
    room = tmp_path / "room"
    write_room(room, "--learners", "Ada", "--apps-domain", "apps.example.com")
    objects = render(room)
    from catdog.room.folder import read_room

    ca, passwords, port = read_room(room)["ca"], scram_passwords(objects), free_port()
    data = tmp_path / "kafka-data"

    def start():
        return start_kfake(
            ca,
            ["localhost", "127.0.0.1"],
            passwords,
            tmp_path / "broker",
            command=[str(KFAKE), "-data-dir", str(data)],
            port=port,
        )

    kafka = start()
    secure(kafka, objects)
    files = tmp_path / "files"
    env = {
        name: rendered_env(objects, kind, name, kafka, files, namespace=namespace)
        for kind, name, namespace in (
            ("Deployment", "catdog-classifier", "catdog-room"),
            ("Deployment", "catdog-wall", "catdog-room"),
            ("Deployment", "catdog-notebook", "catdog-ada"),
            ("CronJob", "catdog-retrain", "catdog-room"),
        )
    }
    learner = env["catdog-notebook"]
    ada = load_settings(learner).kafka
    service = Service(
        {**env["catdog-classifier"], "CATDOG_MODELS_DIR": str(models_dir)}, models_dir, tmp_path / "classifier.log"
    )
    wall_env = {**env["catdog-wall"], "CATDOG_WALL_HOST": "127.0.0.1", "CATDOG_WALL_FORWARDED_HOPS": "0"}
    as_ada = {
        "bootstrap.servers": kafka.bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": learner["KAFKA_SASL_USERNAME"],
        "sasl.password": learner["KAFKA_SASL_PASSWORD"],
        "ssl.ca.location": learner["KAFKA_SSL_CAFILE"],
        "log_level": 0,
    }
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

    streaming, wall = threading.Thread(target=stream), None
    try:
        service.wait_ready()
        wall, base = start_wall(wall_env, tmp_path / "wall.log", wall_env["CATDOG_ROOM_CODE"])
        projector = httpx.Client(base_url=base, timeout=30)
        moderator = httpx.Client(base_url=base, timeout=30)
        assert projector.post("/api/join", json={"code": wall_env["CATDOG_ROOM_CODE"]}).status_code == 204
        assert moderator.post("/api/join", json={"key": wall_env["CATDOG_WALL_MODERATOR_KEY"]}).status_code == 204

        # Before the outage: a photo Ada voted on, a prank the moderator hid.
        ada_producer = make_producer(ada)
        voted = send_image(ada_producer, ada, cat_photos[720].read_bytes(), cat_photos[720].name)
        label_image(ada_producer, ada, voted, "cat")
        prank = send_image(ada_producer, ada, dog_photos[720].read_bytes(), "prank.jpg")
        assert find_prediction(ada, prank, timeout=60)
        hidden = f"{prank.partition}-{prank.offset}"
        assert moderator.post("/api/moderate", json={"action": "hide", "id": hidden}).status_code == 200
        votes_before = read_labelled(load_settings(env["catdog-retrain"]).kafka)[0]

        streaming.start()
        time.sleep(5)
        # A learner's cell waits for the result of a photo sent just before the broker stops (the classifier
        # held for a moment, so the result can only come after the broker is back).
        service.process.send_signal(signal.SIGSTOP)
        waiting = send_image(ada_producer, ada, cat_photos[721].read_bytes(), cat_photos[721].name)
        ada_producer.close()
        answer: list = []
        cell = threading.Thread(target=lambda: answer.append(find_prediction(ada, waiting, timeout=120)))
        cell.start()
        time.sleep(2)  # the cell's reader is connected and waiting
        kafka.stop()  # the pod ends (SIGTERM); its volume stays
        service.process.send_signal(signal.SIGCONT)
        stopped = time.monotonic()
        refused = catdog("send", cat_photos[722], env=learner, timeout=120)  # a learner tries during the outage
        assert (
            refused.returncode != 0 and "room's Kafka" in refused.stderr and "catdog broker start" not in refused.stderr
        ), refused.stderr
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        kafka = start()
        back, back_at = time.monotonic(), time.time()
        photos_before = wall_stats(projector)["stats"]["photos"]
        recovered: dict = {}
        checks = {
            "wall": lambda: wall_stats(projector)["stats"]["photos"] > photos_before,
            "send": lambda: catdog("send", cat_photos[723], env=learner, timeout=60).returncode == 0,
        }
        watchers = [
            threading.Thread(
                target=lambda name=name, works=works: recovered.update(
                    {name: first_after(back_at, back_at + 90, works)}
                )
            )
            for name, works in checks.items()
        ]
        for watcher in watchers:
            watcher.start()
        time.sleep(5)
        stop.set()
        streaming.join()
        assert producer.flush(120) == 0 and not failed, failed
        cell.join(150)
        for watcher in watchers:
            watcher.join(100)
        wall_again, send_again = recovered["wall"], recovered["send"]
        assert wall_again is not None and send_again is not None, recovered
        assert answer and answer[0] and answer[0]["learner"] == "Ada", answer  # the cell got its result, signed

        wanted = set(acknowledged)
        results = read_results(as_ada, 120, wanted)
        by_photo: dict = {}
        for result in results:
            by_photo.setdefault((result["source"]["partition"], result["source"]["offset"]), []).append(result)
        assert wanted <= set(by_photo), (len(wanted - set(by_photo)), service.output()[-3000:])
        assert len(list(once_each(results))) == len(by_photo)
        repeated = sum(len(copies) - 1 for copies in by_photo.values())

        # The wall counted each photo once, kept the prank hidden; the room's votes are all there.
        assert (
            first_after(
                time.time(), time.time() + 60, lambda: wall_stats(projector)["stats"]["photos"] == len(by_photo)
            )
            is not None
        ), (wall_stats(projector)["stats"], len(by_photo))
        assert hidden not in [card["id"] for card in wall_stats(projector)["cards"]]
        assert projector.get(f"/api/thumbs/{prank.partition}/{prank.offset}").status_code == 404
        assert read_labelled(load_settings(env["catdog-retrain"]).kafka)[0] == votes_before and votes_before

        classified_at = sorted(datetime.fromisoformat(r["classified_at"]).timestamp() for r in results)
        resumed = next(at for at in classified_at if at > back_at) - back_at
        producing = next(at for at in sorted(delivered_at) if at > back_at) - back_at
        print(
            f"restart: {len(wanted)} photos acknowledged, every one classified, {repeated} classified twice "
            f"(shown once); broker down {back - stopped:.1f} s; working again after its return: the learner's "
            f"producer {producing:.1f} s, the classifier {resumed:.1f} s, the wall {wall_again:.1f} s, "
            f"`catdog send` {send_again:.1f} s"
        )
    finally:
        stop.set()
        if streaming.is_alive():
            streaming.join()
        service.stop()
        if wall is not None:
            wall.terminate()
            wall.wait(30)
        kafka.stop()
