"""`catdog doctor`, the instructor's pre-flight check, where no API server can run: its reading of the
cluster is fed by tests/oc/oc from a recorded cluster (the rendered manifests plus the statuses the
operators write, tests/oc/statuses.yaml), which is first proven to be what `oc get -o json` prints for
these manifests (the CRDs' and OpenShift's schemas, kubernetes-validate, kubectl's List). The doctor's
whole pass against running pods and a real router is in tests/test_image.py (the played manifests)."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys

import pytest

from catdog.config import load_settings
from catdog.doctor.cluster import CHALLENGE_SECRET, CLASSIFIER, OPERATOR_NAMESPACE, TOKEN_SECRET, WALL, Cluster, Http
from catdog.doctor.services import (
    check_challenge,
    check_classifier,
    check_notebooks,
    check_prepull,
    check_wall,
    wall_secret_problem,
)
from catdog.doctor.streams import check_kafka, check_operator, check_storage, check_topics
from conftest import kafka_env
from kubeplay import OC_FIXTURES, cluster_as_oc_sees_it
from test_deploy import DEPLOY, render, schema_problem, write_room

NAMESPACE = "catdog-lab"
TOKEN = "0123456789abcdef" * 4


def token_secret(namespace: str | None = None) -> dict:
    metadata = {"name": TOKEN_SECRET, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
    }


@pytest.fixture(scope="module")
def lab_cluster() -> list[dict]:
    """The default overlay as oc shows it in catdog-lab once applied and reconciled."""
    return cluster_as_oc_sees_it(render(DEPLOY), NAMESPACE, [token_secret()])


@pytest.fixture(scope="module")
def room_cluster(tmp_path_factory) -> list[dict]:
    """A room of two as oc shows it: the shared namespace (with the wall and the pre-puller) and the learners'."""
    out = tmp_path_factory.mktemp("room") / "room"
    write_room(out, "--count", "2", "--apps-domain", "apps.example.com")
    return cluster_as_oc_sees_it(render(out), "catdog-room")


def oc_for(cluster: list[dict], tmp_path, namespace: str = NAMESPACE) -> Cluster:
    (tmp_path / "cluster.json").write_text(json.dumps(cluster))
    os.environ["CATDOG_TEST_CLUSTER"] = str(tmp_path / "cluster.json")
    os.environ["CATDOG_TEST_NAMESPACE"] = namespace
    return Cluster(str(OC_FIXTURES / "oc"))


def oc_json(cluster: Cluster, *args: str) -> dict:
    result = cluster.run(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("which", ["lab", "room"])
def test_the_recorded_cluster_is_what_oc_prints_for_these_manifests(which, lab_cluster, room_cluster, tmp_path):
    """Every object the stand-in oc serves validates, status included, against its kind's schema (so the
    statuses are in the operators' formats), lists come wrapped as kubectl prints them, and every kind the
    doctor asks for is there."""
    cluster = oc_for(
        lab_cluster if which == "lab" else room_cluster, tmp_path, NAMESPACE if which == "lab" else "catdog-room"
    )
    for kind in (
        "subscriptions.operators.coreos.com",
        "kafka.kafka.strimzi.io",
        "kafkanodepools.kafka.strimzi.io",
        "kafkatopics.kafka.strimzi.io",
        "deployment",
        "daemonset",
        "route",
        "secret",
    ):
        namespace = (
            OPERATOR_NAMESPACE
            if kind.startswith("subscriptions")
            else cluster.namespace or (NAMESPACE if which == "lab" else "catdog-room")
        )
        listed = oc_json(cluster, "get", kind, "-n", namespace, "-o", "json")
        assert {key: listed[key] for key in ("apiVersion", "kind", "metadata")} == {
            "apiVersion": "v1",
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        }
        if kind == "daemonset" and which == "lab":
            assert listed["items"] == []  # the pre-puller is a room's
            continue
        assert listed["items"], kind
        for obj in listed["items"]:
            assert schema_problem(obj) is None, f"{obj['kind']}/{obj['metadata']['name']}: {schema_problem(obj)}"
            assert obj["kind"] == "Secret" or obj.get("status"), f"{obj['kind']} without a status"
    missing = cluster.run("get", "route", "catdog-nothing", "-n", NAMESPACE, "-o", "json")
    assert missing.returncode == 1 and missing.stderr.decode().startswith("Error from server (NotFound): ")


def test_a_reconciled_lab_passes_every_check_that_reads_the_cluster(lab_cluster, room_cluster, tmp_path):
    cluster = oc_for(lab_cluster, tmp_path)
    settings = load_settings({})
    partitions = {
        t["spec"].get("topicName", t["metadata"]["name"]): t["spec"]["partitions"]
        for t in lab_cluster
        if t["kind"] == "KafkaTopic"
    }
    assert check_operator(cluster).status == "ok"
    assert check_kafka(cluster).detail.startswith("catdog Ready, Kafka 4.1.0")
    assert check_topics(cluster, settings, partitions.get).status == "ok"
    assert check_classifier(cluster).detail == "1/1 replicas ready"
    assert check_prepull(cluster).status == "skip"  # a room's
    room = oc_for(room_cluster, tmp_path, "catdog-room")
    assert check_prepull(room).detail == "the image is on 3/3 nodes"


def test_each_check_of_the_cluster_says_what_is_wrong_and_what_to_do(lab_cluster, tmp_path):
    settings = load_settings({})
    partitions = {"images": 3, "predictions": 1, "images-dlq": 1, "feedback": 1}

    def broken(change) -> Cluster:
        cluster = copy.deepcopy(lab_cluster)
        change(cluster)
        return oc_for(cluster, tmp_path)

    def find(cluster, kind, name=None):
        return next(o for o in cluster if o["kind"] == kind and name in (None, o["metadata"]["name"]))

    def unapproved(cluster):
        status = find(cluster, "Subscription")["status"]
        del status["installedCSV"]
        status["state"] = "UpgradePending"

    check = check_operator(broken(unapproved))
    assert check.status == "FAIL" and "approve install-7x2kq" in check.detail and "oc patch installplan" in check.detail

    def not_ready(cluster):
        find(cluster, "Kafka")["status"]["conditions"] = [
            {"type": "NotReady", "status": "True", "reason": "InvalidResourceException", "message": "listeners clash"}
        ]

    assert (
        check_kafka(broken(not_ready)).detail
        == "catdog not Ready: no Ready condition yet (the operator has not reconciled it)"
    )

    def topic_gone(cluster):
        cluster.remove(find(cluster, "KafkaTopic", "feedback"))

    assert check_topics(broken(topic_gone), settings, partitions.get).detail == "feedback: no KafkaTopic"
    ok = broken(lambda cluster: None)
    check = check_topics(ok, settings, {**partitions, "images": 1}.get)
    assert check.status == "FAIL" and check.detail == "images: 1 partition(s) on the broker, the KafkaTopic says 3"

    def small(cluster):
        find(cluster, "KafkaTopic", "images")["spec"]["config"]["max.message.bytes"] = 1048588

    check = check_topics(broken(small), settings, partitions.get)
    assert check.status == "FAIL" and check.detail.startswith("images: max.message.bytes 1,048,588 is under")

    def scaled_down(cluster):
        find(cluster, "Deployment", CLASSIFIER)["status"]["readyReplicas"] = 0

    assert check_classifier(broken(scaled_down)).status == "FAIL"

    def no_token(cluster):
        cluster.remove(find(cluster, "Secret", TOKEN_SECRET))

    check = check_notebooks(broken(no_token), Http(), {NAMESPACE: None})
    assert check.status == "FAIL" and "its Job has not run" in check.detail


def test_a_cluster_without_a_classifier_fails_with_exit_status_1_and_says_why_in_json(
    broker, kafka, lab_cluster, tmp_path
):
    """The whole command, against the real broker with the lab's topics but no classifier reading them."""
    from catdog.kafka.clients import ensure_topics

    ensure_topics(kafka)  # one partition each, as the embedded broker makes them
    cluster = copy.deepcopy(lab_cluster)
    for topic in (o for o in cluster if o["kind"] == "KafkaTopic"):
        topic["spec"]["topicName"] = {
            "images": kafka.images_topic,
            "predictions": kafka.predictions_topic,
            "images-dlq": kafka.dlq_topic,
            "feedback": kafka.feedback_topic,
        }[topic["metadata"]["name"]]
    (tmp_path / "cluster.json").write_text(json.dumps(cluster))
    result = subprocess.run(
        [sys.executable, "-m", "catdog.cli", "doctor", "--json", "--timeout", "3", "--oc", str(OC_FIXTURES / "oc")],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            **kafka_env(kafka),
            "CATDOG_TEST_CLUSTER": str(tmp_path / "cluster.json"),
            "CATDOG_TEST_NAMESPACE": NAMESPACE,
        },
    )
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    by_name = {check["name"]: check for check in report["checks"]}
    assert report["ready"] is False and report["verdict"].startswith("NOT READY")
    assert by_name["topics"]["detail"] == f"{kafka.images_topic}: 1 partition(s) on the broker, the KafkaTopic says 3"
    assert by_name["round trip"]["status"] == "FAIL" and "within 3 s" in by_name["round trip"]["detail"]
    assert by_name["dead letter"]["status"] == "FAIL"
    assert by_name["kafka"]["status"] == by_name["operator"]["status"] == by_name["classifier"]["status"] == "ok"
    assert by_name["notebooks"]["status"] == "FAIL"  # no router answers for catdog-notebook-catdog-lab.apps.example.com


def test_the_challenge_check_is_skipped_when_off_and_compares_the_walls_answers_with_the_topic(kafka, tmp_path):
    """No Secret: off. The Secret's set on the topic: ok. Another set on the topic (a publish forgotten
    after a new `make`): FAIL, saying what to run. The real broker; the Secret as oc prints it (base64)."""
    from catdog import challenge
    from catdog.kafka.clients import ensure_topics, make_producer

    ensure_topics(kafka)
    settings = load_settings({**os.environ, **kafka_env(kafka)})
    assert check_challenge(oc_for([], tmp_path), settings).status == "skip"
    photos = tmp_path / "photos"
    photos.mkdir()
    for number in range(3):
        data = f"photo {number}".encode()
        (photos / f"{challenge.photo_id(data)}.jpg").write_bytes(data)
    labels = {path.stem: "cat" for path in photos.iterdir()}

    def with_answers(name: str) -> Cluster:
        answers = json.dumps({"challenge": name, "labels": labels, "baseline": {}})
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": CHALLENGE_SECRET, "namespace": NAMESPACE},
            "data": {"answers.json": base64.b64encode(answers.encode()).decode()},
        }
        return oc_for([secret], tmp_path)

    producer = make_producer(kafka)
    try:
        challenge.publish(producer, kafka, photos, "aaaaaaaaaaaa")
    finally:
        producer.close()
    published = check_challenge(with_answers("aaaaaaaaaaaa"), settings)
    assert published.status == "ok" and published.detail.startswith("challenge aaaaaaaaaaaa: 3 photos on"), published
    stale = check_challenge(with_answers("bbbbbbbbbbbb"), settings)
    assert stale.status == "FAIL" and "holds aaaaaaaaaaaa: run `catdog challenge publish`" in stale.detail, stale


def test_the_wall_check_fails_when_its_replicas_would_not_share_the_secret_that_signs_joins(room_cluster, tmp_path):
    """The wall refuses a room code without CATDOG_WALL_SECRET (each replica would sign phones' joins with a
    key of its own): the doctor names the missing setting or Secret before the room starts."""

    def wall(cluster):
        return next(o for o in cluster if o["kind"] == "Deployment" and o["metadata"]["name"] == WALL)

    assert wall_secret_problem(oc_for(room_cluster, tmp_path, "catdog-room")) is None
    unset = copy.deepcopy(room_cluster)
    container = wall(unset)["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [entry for entry in container["env"] if entry["name"] != "CATDOG_WALL_SECRET"]
    assert "sets no CATDOG_WALL_SECRET" in wall_secret_problem(oc_for(unset, tmp_path, "catdog-room"))
    gone = [o for o in room_cluster if not (o["kind"] == "Secret" and o["metadata"]["name"] == "catdog-wall-secret")]
    assert wall_secret_problem(oc_for(gone, tmp_path, "catdog-room")).startswith(
        "no Secret catdog-wall-secret with key secret"
    )
    check = check_wall(oc_for(gone, tmp_path, "catdog-room"), Http())
    assert check.status == "FAIL" and "catdog-wall-secret" in check.detail


def test_the_storage_check_says_which_kafka_the_room_runs_and_what_a_failure_loses(lab_cluster, tmp_path):
    three = tmp_path / "three"
    write_room(three, "--count", "2", "--kafka-nodes", "3")
    check = check_storage(oc_for(cluster_as_oc_sees_it(render(three), "catdog-room"), tmp_path, "catdog-room"))
    assert check.status == "ok" and check.detail.startswith("3 Kafka nodes on 10Gi claims (kept with the cluster)")
    check = check_storage(oc_for(lab_cluster, tmp_path))
    assert check.status == "ok" and check.detail.startswith("1 Kafka node on a 10Gi claim (kept with the cluster)")
    assert "losing its node stops the room" in check.detail
    ephemeral = copy.deepcopy(lab_cluster)
    for pool in (o for o in ephemeral if o["kind"] == "KafkaNodePool"):
        pool["spec"]["storage"] = {"type": "ephemeral"}
    check = check_storage(oc_for(ephemeral, tmp_path))
    assert check.status == "FAIL" and "empties the room" in check.detail
