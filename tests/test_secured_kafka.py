"""The room's Kafka security, exercised against a broker that enforces it (tests/secured.py: kfake with TLS
from the room's own CA, SCRAM logins and the ACLs Strimzi's User Operator would make from the rendered
KafkaUsers): each component does its work with its rendered SASL_SSL settings, a learner is refused
everything the notebooks do not need, with the error their client gets, and a wrong password, no TLS or an
untrusted CA is one line that names the setting to check."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ACL, ACLOperation, ACLPermissionType, NewTopic, ResourcePattern, ResourceType
from kafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
)

from catdog.config import load_settings
from catdog.kafka.clients import client_config, make_producer
from catdog.room.certificates import make_ca
from processes import Service, catdog, catdog_ok
from secured import rendered_env, start_secured_kafka
from test_deploy import render, write_room
from waiting import wait_until


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A room of two learners, rendered, and its Kafka enforcing what the room says."""
    work = tmp_path_factory.mktemp("secured")
    write_room(work / "room", "--learners", "Ada,Bob", "--apps-domain", "apps.example.com")
    objects = render(work / "room")
    kafka = start_secured_kafka(work / "room", objects, work / "broker")
    yield {"kafka": kafka, "objects": objects, "work": work}
    kafka.stop()


def learner_settings(secured: dict, slug: str = "ada"):
    env = rendered_env(
        secured["objects"],
        "Deployment",
        "catdog-notebook",
        secured["kafka"],
        secured["work"] / "files",
        namespace=f"catdog-{slug}",
    )
    return env, load_settings(env).kafka


def refused(action) -> str:
    """The error class a client gets for ``action`` (a call), or "allowed"."""
    try:
        answer = action()
    except Exception as error:  # noqa: BLE001 - what the client raises is the finding
        return type(error).__name__
    failed = answer.get("failed") if isinstance(answer, dict) else None
    return failed[0].__name__ if failed else "allowed"


def test_a_learner_may_do_what_the_notebooks_do_and_is_refused_everything_else(secured):
    """The refusal matrix, from kafka-python as the notebooks use it (and librdkafka for AlterConfigs)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    _, kafka = learner_settings(secured)
    producer, admin = make_producer(kafka), KafkaAdminClient(**client_config(kafka))

    def write(topic: str):
        return lambda: producer.send(topic, b"x", key=b"k").get(timeout=10)

    def read(topic: str):
        def position():
            consumer = KafkaConsumer(**client_config(kafka))
            try:
                consumer.assign([TopicPartition(topic, 0)])
                return consumer.position(TopicPartition(topic, 0))
            finally:
                consumer.close()

        return position

    def fetch(topic: str):  # Read itself: a position needs only Describe, which Write implies
        def fetched():
            consumer = KafkaConsumer(**client_config(kafka))
            try:
                consumer.assign([TopicPartition(topic, 0)])
                consumer.seek_to_beginning()
                return consumer.poll(2000)
            finally:
                consumer.close()

        return fetched

    def join(group: str):
        def joined():
            consumer = KafkaConsumer("images", group_id=group, consumer_timeout_ms=3000, **client_config(kafka))
            try:
                return list(consumer)
            finally:
                consumer.close()

        return joined

    def alter_configs():
        librdkafka = AdminClient(secured["kafka"].confluent("learner-ada"))
        change = ConfigResource(
            "topic",
            "images",
            incremental_configs=[ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)],
        )
        try:
            return [future.result(10) for future in librdkafka.incremental_alter_configs([change]).values()]
        except KafkaException as error:
            raise TopicAuthorizationFailedError() if error.args[0].code() == 29 else error from None

    grant = ACL(
        "User:learner-ada",
        "*",
        ACLOperation.ALL,
        ACLPermissionType.ALLOW,
        ResourcePattern(ResourceType.TOPIC, "predictions"),
    )
    # The board's paths first: kafka-python's producer, once refused a topic ("write challenge" below), fails
    # its metadata requests for a topic new to it too (seen: room-progress refused only after that refusal).
    # A lab's reporter has a producer of its own, for that one topic.
    matrix = {
        "write room-progress": write("room-progress"),
        "read room-progress": fetch("room-progress"),
        "write images": write("images"),
        "read images": read("images"),
        "read predictions": read("predictions"),
        "write feedback": write("feedback"),
        "read challenge": read("challenge"),
        "write challenge-submissions": write("challenge-submissions"),
        "write challenge": write("challenge"),
        "read challenge-submissions": fetch("challenge-submissions"),
        "write predictions": write("predictions"),
        "write images-dlq": write("images-dlq"),
        "write wall-moderation": write("wall-moderation"),
        "read wall-moderation": read("wall-moderation"),
        "join the classifier's group": join("catdog-classifier"),
        "join a group of one's own": join("learner-ada"),
        "delete a topic": lambda: admin.delete_topics(["images"]),
        "create a topic": lambda: admin.create_topics([NewTopic("adas-own", 1, 1)]),
        "alter a topic's configs": alter_configs,
        "grant oneself an ACL": lambda: admin.create_acls([grant]),
    }
    found = {action: refused(call) for action, call in matrix.items()}
    producer.close()
    admin.close()
    assert found == {
        "write images": "allowed",
        "read images": "allowed",
        "read predictions": "allowed",
        "write feedback": "allowed",
        "read challenge": "allowed",
        "write challenge-submissions": "allowed",
        # the challenge's photos are the instructor's to publish; the others' verdicts are not to be copied
        "write challenge": "TopicAuthorizationFailedError",
        "read challenge-submissions": "TopicAuthorizationFailedError",
        # one's own lab reports to the board; nobody reads another's progress
        "write room-progress": "allowed",
        "read room-progress": "TopicAuthorizationFailedError",
        "write predictions": "TopicAuthorizationFailedError",
        "write images-dlq": "TopicAuthorizationFailedError",
        "write wall-moderation": "TopicAuthorizationFailedError",
        "read wall-moderation": "TopicAuthorizationFailedError",
        "join the classifier's group": "GroupAuthorizationFailedError",
        "join a group of one's own": "GroupAuthorizationFailedError",
        "delete a topic": "TopicAuthorizationFailedError",
        "create a topic": "TopicAuthorizationFailedError",
        "alter a topic's configs": "TopicAuthorizationFailedError",
        "grant oneself an ACL": ClusterAuthorizationFailedError.__name__,
    }, found
    assert GroupAuthorizationFailedError  # (named in the table above)


@pytest.mark.parametrize(
    "change, setting",
    [
        ({"KAFKA_SASL_PASSWORD": "not-the-password"}, "KAFKA_SASL_PASSWORD"),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "",
                "KAFKA_SASL_USERNAME": "",
                "KAFKA_SASL_PASSWORD": "",
            },
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        ),
        ({"KAFKA_SSL_CAFILE": "another CA"}, "KAFKA_SSL_CAFILE"),
    ],
)
def test_a_wrong_password_no_tls_or_an_untrusted_ca_is_one_line_naming_the_setting(
    secured, tmp_path, change, setting, cat_photos
):
    env, _ = learner_settings(secured)
    if change.get("KAFKA_SSL_CAFILE"):
        (tmp_path / "other-ca.crt").write_text(make_ca("not the room's CA")["crt"])
        change = {"KAFKA_SSL_CAFILE": str(tmp_path / "other-ca.crt")}
    started = time.monotonic()
    sent = catdog("send", cat_photos[0], env={**env, **change}, timeout=120)
    said = sent.stderr.strip().splitlines()
    assert sent.returncode != 0 and len(said) == 1 and setting in said[0], sent.stderr
    assert time.monotonic() - started < 60, said


def test_the_rooms_components_work_with_their_rendered_settings(
    secured, models_dir, weights_dir, kaggle_dev, tmp_path, cat_photos, dog_photos
):
    """Each with the environment its rendered workload gives it (only the bootstrap address, file paths and
    listening ports differ): the classifier serves; a learner's `catdog send` and `catdog results --learner`
    (their result names them: signed with their key, checked against the room's table); the learner labels
    it as notebook 04 does; a phone sends a photo through the wall and votes; the CronJob's `catdog retrain`
    reads both votes as signed."""
    import shutil

    import httpx

    from catdog.kafka.records import Sent
    from catdog.labels import label_image
    from processes import start_wall

    kafka, files = secured["kafka"], secured["work"] / "files"
    rendered = {
        name: rendered_env(secured["objects"], kind, name, kafka, files, namespace="catdog-room")
        for kind, name in (
            ("Deployment", "catdog-classifier"),
            ("Deployment", "catdog-wall"),
            ("CronJob", "catdog-retrain"),
        )
    }
    service = Service(
        {**rendered["catdog-classifier"], "CATDOG_MODELS_DIR": str(models_dir)}, models_dir, tmp_path / "classifier.log"
    )
    wall = None
    try:
        service.wait_ready()
        env, learner = learner_settings(secured)
        printed = catdog_ok("send", cat_photos[1], env=env)
        name, topic, partition, offset = re.search(r"^(.+) -> (\S+)\[(\d+)\]@(\d+)", printed, re.M).groups()
        results = wait_until(
            lambda: [
                result
                for line in catdog_ok("results", "--learner", learner.learner, "--json", env=env).splitlines()
                if line.strip() and (result := json.loads(line)).get("filename") == cat_photos[1].name
            ],
            60,
            lambda: f"the photo's result in `catdog results`:\n{service.output()[-3000:]}",
            interval=1,
        )
        assert results[0]["learner"] == "Ada" and results[0]["learner_verified"], service.output()[-3000:]
        producer = make_producer(learner)
        label_image(producer, learner, Sent(name, topic, int(partition), int(offset), results[0]["key"], 0), "cat")
        producer.close()

        walls = {**rendered["catdog-wall"], "CATDOG_WALL_HOST": "127.0.0.1", "CATDOG_WALL_FORWARDED_HOPS": "0"}
        wall, base = start_wall(walls, tmp_path / "wall.log", walls["CATDOG_ROOM_CODE"])
        phone = httpx.Client(base_url=base, timeout=60)
        assert phone.post("/api/join", json={"code": walls["CATDOG_ROOM_CODE"]}).status_code == 204
        sent = phone.post(
            "/api/photos", params={"filename": dog_photos[1].name, "learner": "Bo"}, content=dog_photos[1].read_bytes()
        ).json()
        assert phone.get(f"/api/photos/{sent['partition']}/{sent['offset']}").status_code == 200  # both verdicts
        assert (
            phone.post(
                "/api/feedback",
                json={"partition": sent["partition"], "offset": sent["offset"], "label": "dog", "learner": "Bo"},
            ).status_code
            == 201
        )

        models = tmp_path / "models"
        shutil.copytree(models_dir, models)
        retrain = {
            **rendered["catdog-retrain"],
            "CATDOG_MODELS_DIR": str(models),
            "CATDOG_DATA_DIR": str(tmp_path / "data"),
            "CATDOG_WEIGHTS_DIR": str(weights_dir),
        }
        printed = catdog_ok(
            "retrain",
            "--source",
            kaggle_dev,
            "--per-class",
            10,
            "--epochs",
            2,
            "--check",
            tmp_path / "check",
            "--check-from",
            kaggle_dev,
            "--check-per-class",
            10,
            env=retrain,
        )
        assert "room's votes: 2 photos voted on, 2 accepted" in printed, printed
    finally:
        service.stop()
        if wall:
            wall.terminate()
            wall.wait(30)


def produce(topic: str):
    def path(kafka):
        producer = make_producer(kafka)
        try:
            producer.send(topic, b"a path's record", key=b"k").get(timeout=10)
        finally:
            producer.close()

    return path


def read(topic: str):
    """Fetch partition 0's first record (each topic has one: the test writes it as the superuser)."""

    def path(kafka):
        consumer = KafkaConsumer(**client_config(kafka))
        try:
            consumer.assign([TopicPartition(topic, 0)])
            consumer.seek_to_beginning()
            wait_until(lambda: consumer.poll(500), 10, f"a record fetched from {topic}", interval=0)
        finally:
            consumer.close()

    return path


def consume_as_group(topic: str, group: str):
    """The classifier's way in: join the group, be given partitions, read, commit."""

    def path(kafka):
        from catdog.kafka.clients import make_consumer

        consumer = make_consumer(kafka, topic, group_id=group)
        try:
            wait_until(lambda: consumer.poll(500) is not None and consumer.assignment(), 20, "partitions assigned")
            for partition in consumer.assignment():
                consumer.position(partition)
            consumer.commit()
        finally:
            consumer.close()

    return path


# What each service does on Kafka (src/catdog/service.py, wall/, labels.py and retrain.py), one path each.
SERVICE_PATHS = {
    ("Deployment", "catdog-classifier"): {
        "read images as its group": consume_as_group("images", "catdog-classifier"),
        "write a result": produce("predictions"),
        "write a dead letter": produce("images-dlq"),
    },
    ("Deployment", "catdog-wall"): {
        "send a phone's photo": produce("images"),
        "read photos for thumbnails": read("images"),
        "read results": read("predictions"),
        "write a vote": produce("feedback"),
        "read votes": read("feedback"),
        "write a moderation": produce("wall-moderation"),
        "read moderation": read("wall-moderation"),
        "read the challenge's submissions": read("challenge-submissions"),
        "read the labs' progress": read("room-progress"),
    },
    ("CronJob", "catdog-retrain"): {"read the votes": read("feedback"), "read the voted photos": read("images")},
}


def test_every_acl_each_service_holds_is_one_it_needs(secured):
    """Least privilege shown, not claimed: with all its ACLs every path of each service works; with any one
    of its ACLs removed, one of its paths is refused."""
    from confluent_kafka import Producer

    from secured import create_acls, delete_acls

    kafka = secured["kafka"]
    seed = Producer(kafka.confluent())
    for topic in (
        "images",
        "predictions",
        "images-dlq",
        "feedback",
        "wall-moderation",
        "challenge-submissions",
        "room-progress",
    ):
        seed.produce(topic, b"one record to fetch", key=b"seed", partition=0)
    assert seed.flush(15) == 0
    for (kind, name), paths in SERVICE_PATHS.items():
        env = rendered_env(secured["objects"], kind, name, kafka, secured["work"] / "files", namespace="catdog-room")
        settings = load_settings(env).kafka
        mine = [b for b in kafka.bindings if b.principal == f"User:{settings.sasl_username}"]
        assert mine and {
            name: refused(lambda path=path, settings=settings: path(settings)) for name, path in paths.items()
        } == dict.fromkeys(paths, "allowed")
        for binding in mine:
            delete_acls(kafka, [binding])
            try:
                broken = {
                    path_name: refused(lambda path=path, settings=settings: path(settings))
                    for path_name, path in paths.items()
                }
            finally:
                create_acls(kafka, [binding])
            # (A group member whose topic it may not read is simply given no partitions: kafka-python's way.)
            assert set(broken.values()) - {"allowed"}, (binding, broken)


def test_the_doctors_learner_acl_check_passes_against_a_broker_that_enforces_the_room(secured, tmp_path):
    """The doctor's probe, run as it runs in a learner's notebook (their rendered settings, a photo on
    standard input to the results topic), is refused by the room's ACLs, and the doctor says ok; against
    the embedded broker the same probe is let through and the doctor says FAIL (tests/test_doctor.py)."""
    import os
    import subprocess
    import sys

    from catdog.doctor.services import probe_photo
    from catdog.doctor.streams import learner_acl_probe, learner_acl_verdict
    from catdog.room.learners import learners_named

    env, _ = learner_settings(secured)
    [probe, *args] = learner_acl_probe("predictions")
    ran = subprocess.run(
        [str(Path(sys.prefix) / "bin" / probe), *args],
        input=probe_photo(),
        capture_output=True,
        env={**os.environ, **env},
        timeout=120,
    )
    [ada] = learners_named(["Ada"])
    verdict = learner_acl_verdict(
        ada, "predictions", ran.returncode, (ran.stdout + ran.stderr).decode(errors="replace")
    )
    assert verdict.status == "ok", verdict


def test_make_lab_secure_runs_the_lab_as_one_learner_of_a_room_on_the_enforcing_broker(
    models_dir, cat_photos, tmp_path
):
    """`make lab-secure` as a developer runs it: a one-learner room written once, the enforcing broker, the
    classifier and the wall as the room's users, and JupyterLab (so its kernels and terminals) as the learner,
    whose photo comes back classified and signed as theirs, and whose write to the results topic is refused."""
    import os
    import signal
    import subprocess
    import sys

    from conftest import REPO, SHARED, free_port

    venv, log, room = Path(sys.prefix), tmp_path / "make.log", tmp_path / "room"
    ports = {
        "LAB_PORT": free_port(),
        "CATDOG_LAB_KAFKA_PORT": free_port(),
        "CATDOG_METRICS_PORT": free_port(),
        "CATDOG_WALL_PORT": free_port(),
    }
    env = {
        **os.environ,
        **{name: str(port) for name, port in ports.items()},
        "CATDOG_MODELS_DIR": str(models_dir),
        "JUPYTER_TOKEN": "lab-secure-test",
    }
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "CATDOG_WALL_URL", "CATDOG_METRICS_URL"):
        env.pop(name, None)
    with open(log, "wb") as stream:
        process = subprocess.Popen(
            [
                "make",
                "-o",
                f"{venv}/bin/catdog",
                "-o",
                "models",
                "lab-secure",
                f"VENV={venv}",
                f"LAB_ROOM={room}",
                "LAB_LEARNER=Ada",
                f"SHARED={SHARED}",
            ],
            cwd=REPO,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # The last line before JupyterLab starts: the broker, the classifier and the wall are up.
        wait_until(
            lambda: process.poll() is None and "Moderator: http" in log.read_text(errors="replace"),
            240,
            lambda: "make lab-secure's links:\n" + log.read_text(errors="replace")[-4000:],
            interval=1,
        )
        printed = log.read_text(errors="replace")
        assert "secured Kafka at" in printed, printed[-4000:]
        assert (room / "secrets.json").exists()
        env_dir = Path(re.search(r"env files in (\S+)", printed).group(1))
        jupyter = wait_until(
            lambda: subprocess.run(
                ["pgrep", "-g", str(process.pid), "-f", "bin/jupyter-lab"], capture_output=True, text=True
            ).stdout.split(),
            60,
            lambda: (
                "JupyterLab among make lab-secure's processes:\n"
                + subprocess.run(
                    ["ps", "-o", "pid,args", "-g", str(process.pid)], capture_output=True, text=True
                ).stdout
            ),
            interval=0.5,
        )
        seen = dict(
            line.split("=", 1) for line in Path(f"/proc/{jupyter[0]}/environ").read_text().split("\0") if "=" in line
        )
        assert (seen["KAFKA_SASL_USERNAME"], seen["KAFKA_SECURITY_PROTOCOL"], seen["CATDOG_LEARNER"]) == (
            "learner-ada",
            "SASL_SSL",
            "Ada",
        )

        learner = {k: v for k, v in seen.items() if k.startswith(("KAFKA_", "CATDOG_"))}
        assert learner["KAFKA_SSL_CAFILE"].startswith(str(env_dir))
        catdog_ok("send", cat_photos[3], env=learner)
        mine = wait_until(
            lambda: [
                result
                for line in catdog_ok("results", "--learner", "Ada", "--json", env=learner).splitlines()
                if line.strip() and (result := json.loads(line)).get("filename") == cat_photos[3].name
            ],
            90,
            lambda: "Ada's result:\n" + log.read_text(errors="replace")[-3000:],
            interval=1,
        )
        assert mine[0]["learner"] == "Ada" and mine[0]["learner_verified"], log.read_text(errors="replace")[-3000:]
        forged = catdog("send", "--topic", "predictions", cat_photos[3], env=learner)
        assert forged.returncode != 0 and "TopicAuthorizationFailed" in forged.stderr, forged.stderr
        # The instructor's board, through the enforcing broker: Ada's lab (its Jupyter server's heartbeat, signed
        # with her key, written as her KafkaUser) on the wall's board (read as the wall's), no one refused.
        from catdog.wall.board import read_board

        wall, key = re.search(r"Moderator: (http://\S+)/moderate#key=(\S+)", printed).groups()
        board = wait_until(
            lambda: (lambda b: b if b["rows"] and b["rows"][0]["heard_s_ago"] is not None else None)(
                read_board(wall, key)
            ),
            60,
            lambda: "Ada's heartbeat on the board:\n" + log.read_text(errors="replace")[-3000:],
            interval=1,
        )
        assert [row["learner"] for row in board["rows"]] == ["Ada"] and board["refused"] == 0, board
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    assert "secured Kafka" in log.read_text()
