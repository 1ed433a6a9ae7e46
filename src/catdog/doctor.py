"""The instructor's pre-flight check (`catdog doctor`): after `oc apply`, is the cluster ready for the room?

Each check asks what a learner's first minutes will ask of the cluster, in the order they would fail:
the operator, the Kafka cluster, its topics, the classifier, a photo's round trip and a refused message's
dead letter, the ACLs, every notebook's Route and token, the wall, the image on every node. It reads the
cluster with `oc get -o json` (or kubectl) and talks to Kafka and the Routes as a learner would, with the
lab's own settings (KAFKA_* as in the README's "Send photos from a laptop"). One line per check, a
verdict, exit status 1 if any check failed.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from catdog import CatdogError
from catdog.config import Settings
from catdog.room import KAFKA_CLUSTER, ROOM_NAMESPACE, Learner

OPERATOR_SUBSCRIPTION = "amq-streams"  # deploy/openshift/operator
OPERATOR_NAMESPACE = "openshift-operators"
CLASSIFIER = "catdog-classifier"
NOTEBOOK = "catdog-notebook"
NOTEBOOK_CONTAINER = "notebook"
TOKEN_SECRET = "catdog-notebook-token"
WALL = "catdog-wall"
CHALLENGE_SECRET = "catdog-challenge"  # `catdog challenge make` writes it; the wall mounts it optionally
PREPULLER = "catdog-image-prepuller"
OC_TIMEOUT_S = 30
HTTP_TIMEOUT_S = 15
ROUND_TRIP_TIMEOUT_S = 60  # a cold classifier's first batch takes a few seconds; a room's queue more
PROBE_PHOTO_PIXELS = 96


class OcError(CatdogError):
    """`oc` failed for another reason than "not found" (not logged in, no such resource kind, no rights)."""


@dataclass
class Check:
    name: str
    status: str  # "ok", "FAIL" or "skip"
    detail: str


@dataclass
class Cluster:
    """`oc get … -o json` in one namespace; None for what is not there."""

    oc: str
    namespace: str | None = None
    calls: list[list[str]] = field(default_factory=list)

    def run(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        command = [self.oc, *args]
        self.calls.append(command)
        return subprocess.run(command, input=input, capture_output=True, timeout=OC_TIMEOUT_S)

    def get(self, kind: str, name: str | None = None, namespace: str | None = None) -> dict | None:
        namespace = namespace or self.namespace
        args = ["get", kind, *([name] if name else []), *(["-n", namespace] if namespace else []), "-o", "json"]
        result = self.run(*args)
        if result.returncode != 0:
            error = result.stderr.decode(errors="replace").strip()
            if "NotFound" in error or "not found" in error:
                return None
            raise OcError(f"oc {' '.join(args)}: {error or f'exit status {result.returncode}'}")
        found = json.loads(result.stdout)
        if name is None and not found.get("items"):
            return None
        return found


def find_oc(given: str | None = None) -> str:
    """`--oc`, else oc, else kubectl (the same `get -o json` output) from PATH."""
    for candidate in [given] if given else ["oc", "kubectl"]:
        found = shutil.which(candidate)
        if found:
            return found
    raise OcError(f"{given or 'oc'} not found on PATH: install the OpenShift CLI and `oc login`, or give --oc")


def condition(obj: dict, kind: str = "Ready") -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c.get("type") == kind), None)


def is_ready(obj: dict) -> bool:
    found = condition(obj)
    return bool(found) and found.get("status") == "True"


def not_ready_reason(obj: dict) -> str:
    found = condition(obj)
    if not found:
        return "no Ready condition yet (the operator has not reconciled it)"
    return f"{found.get('reason', 'NotReady')}: {found.get('message', '')}".strip(": ")


# --- what the cluster says ---------------------------------------------------------------------------


def check_operator(cluster: Cluster, namespace: str = OPERATOR_NAMESPACE) -> Check:
    subscription = cluster.get("subscriptions.operators.coreos.com", OPERATOR_SUBSCRIPTION, namespace)
    if subscription is None:
        return Check(
            "operator",
            "FAIL",
            f"no Subscription {OPERATOR_SUBSCRIPTION} in {namespace}: oc apply -k deploy/openshift/operator",
        )
    status = subscription.get("status") or {}
    installed, state = status.get("installedCSV"), status.get("state", "unknown")
    if not installed:
        # installPlanApproval: Manual: the first InstallPlan waits for a person.
        plan = (status.get("installPlanRef") or {}).get("name", "its InstallPlan")
        return Check(
            "operator",
            "FAIL",
            f"AMQ Streams not installed (state {state}): approve {plan} "
            f"(oc patch installplan {plan} -n {namespace} --type merge "
            '-p \'{"spec":{"approved":true}}\')',
        )
    note = "" if state == "AtLatestKnown" else f" (state {state}: an upgrade awaits approval)"
    return Check("operator", "ok", f"{installed} installed{note}")


def check_kafka(cluster: Cluster) -> Check:
    kafka = cluster.get("kafka.kafka.strimzi.io", KAFKA_CLUSTER)
    if kafka is None:
        return Check("kafka", "FAIL", f"no Kafka {KAFKA_CLUSTER} in {cluster.namespace or 'the current project'}")
    if not is_ready(kafka):
        return Check("kafka", "FAIL", f"{KAFKA_CLUSTER} not Ready: {not_ready_reason(kafka)}")
    status = kafka["status"]
    listeners = ", ".join(listener.get("name", "?") for listener in status.get("listeners", []))
    return Check(
        "kafka", "ok", f"{KAFKA_CLUSTER} Ready, Kafka {status.get('kafkaVersion', '?')}, listeners {listeners}"
    )


def check_storage(cluster: Cluster) -> Check:
    """Which Kafka the room runs, and what a failure would lose: the room's memory (photos, votes,
    hidden photos, blocked phones, the challenge and its submissions) is Kafka's."""
    listed = (cluster.get("kafkanodepools.kafka.strimzi.io") or {}).get("items", [])
    pools = [
        pool for pool in listed if (pool["metadata"].get("labels") or {}).get("strimzi.io/cluster") == KAFKA_CLUSTER
    ]
    if not pools:
        return Check("storage", "FAIL", f"no KafkaNodePool for {KAFKA_CLUSTER}: apply the room's folder again")
    nodes = sum(pool["spec"]["replicas"] for pool in pools if "broker" in pool["spec"].get("roles", []))
    volumes = [
        volume for pool in pools for volume in (pool["spec"]["storage"].get("volumes") or [pool["spec"]["storage"]])
    ]
    if any(volume["type"] != "persistent-claim" for volume in volumes):
        return Check(
            "storage",
            "FAIL",
            f"{KAFKA_CLUSTER}: ephemeral storage: a restart of a Kafka pod (a drained node, an "
            "eviction) empties the room: every photo, vote, hidden photo and the challenge. Use the kit's "
            "persistent-claim node pool",
        )
    sizes = ", ".join(sorted({volume["size"] for volume in volumes}))
    kept = "kept" if all(volume.get("deleteClaim") is False for volume in volumes) else "deleted"
    if nodes >= 3:
        return Check(
            "storage",
            "ok",
            f"{nodes} Kafka nodes on {sizes} claims ({kept} with the cluster), topics on "
            "every node: a pod's restart or a node's loss loses nothing",
        )
    return Check(
        "storage",
        "ok",
        f"{nodes} Kafka node on a {sizes} claim ({kept} with the cluster): a pod restart loses "
        "nothing; losing its node stops the room (--kafka-nodes 3 survives it)",
    )


def check_topics(cluster: Cluster, settings: Settings, partitions_on_broker: Callable[[str], int | None]) -> Check:
    """Each topic the lab uses is a Ready KafkaTopic, the broker has its partitions, and an image as large
    as the settings allow fits in it."""
    kafka = settings.kafka
    listed = (cluster.get("kafkatopics.kafka.strimzi.io") or {}).get("items", [])
    by_name = {t["spec"].get("topicName") or t["metadata"]["name"]: t for t in listed}
    problems, fine = [], []
    for name in (kafka.images_topic, kafka.predictions_topic, kafka.dlq_topic, kafka.feedback_topic):
        topic = by_name.get(name)
        if topic is None:
            problems.append(f"{name}: no KafkaTopic")
            continue
        if not is_ready(topic):
            problems.append(f"{name}: not Ready ({not_ready_reason(topic)})")
            continue
        wanted = int(topic["spec"].get("partitions", 1))
        on_broker = partitions_on_broker(name)
        if on_broker != wanted:
            problems.append(f"{name}: {on_broker or 'no'} partition(s) on the broker, the KafkaTopic says {wanted}")
            continue
        limit = int((topic["spec"].get("config") or {}).get("max.message.bytes", 0)) or None
        if name in (kafka.images_topic, kafka.dlq_topic) and limit is not None and limit < kafka.max_message_bytes:
            problems.append(
                f"{name}: max.message.bytes {limit:,} is under the {kafka.max_message_bytes:,} an image "
                "of CATDOG_MAX_IMAGE_BYTES needs"
            )
            continue
        fine.append(f"{name} {wanted}")
    if problems:
        return Check("topics", "FAIL", "; ".join(problems))
    return Check(
        "topics", "ok", f"partitions: {', '.join(fine)}; images up to {kafka.max_image_bytes // 2**20} MiB fit"
    )


def check_classifier(cluster: Cluster) -> Check:
    deployment = cluster.get("deployment", CLASSIFIER)
    if deployment is None:
        return Check("classifier", "FAIL", f"no Deployment {CLASSIFIER}")
    wanted = int(deployment["spec"].get("replicas", 1))
    ready = int((deployment.get("status") or {}).get("readyReplicas", 0))
    if wanted < 1 or ready < wanted:
        return Check("classifier", "FAIL", f"{ready}/{wanted} replicas ready (oc describe deployment {CLASSIFIER})")
    return Check("classifier", "ok", f"{ready}/{wanted} replicas ready")


def check_prepull(cluster: Cluster) -> Check:
    daemonset = cluster.get("daemonset", PREPULLER)
    if daemonset is None:
        return Check("image pre-pull", "skip", f"no DaemonSet {PREPULLER} (a room's: deploy/openshift/room/shared)")
    status = daemonset.get("status") or {}
    desired, ready = status.get("desiredNumberScheduled", 0), status.get("numberReady", 0)
    updated = status.get("updatedNumberScheduled", ready)
    if desired == 0 or ready < desired or updated < desired:
        return Check("image pre-pull", "FAIL", f"the image is on {ready}/{desired} nodes ({updated} with the newest)")
    return Check("image pre-pull", "ok", f"the image is on {ready}/{desired} nodes")


# --- what a learner does -----------------------------------------------------------------------------


def probe_photo() -> bytes:
    """A JPEG no one has sent before (random pixels): a unique key, and a photo any decoder accepts."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng().integers(0, 256, (PROBE_PHOTO_PIXELS, PROBE_PHOTO_PIXELS, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def check_round_trip(settings: Settings, timeout: float = ROUND_TRIP_TIMEOUT_S) -> Check:
    from catdog.kafka.clients import make_producer
    from catdog.kafka.photos import send_image
    from catdog.kafka.results import collect_predictions

    kafka = settings.kafka
    producer = make_producer(kafka)
    try:
        started = time.monotonic()
        sent = send_image(
            producer, kafka, probe_photo(), f"catdog-doctor-{uuid.uuid4().hex[:8]}.jpg", learner="catdog doctor"
        )
    finally:
        producer.close()
    found = collect_predictions(kafka, [sent], timeout=timeout)
    if not found:
        return Check(
            "round trip",
            "FAIL",
            f"no result on {kafka.predictions_topic} for {sent.topic}[{sent.partition}]"
            f"@{sent.offset} within {timeout:.0f} s (oc logs deployment/{CLASSIFIER})",
        )
    [result] = found.values()
    verdicts = [
        f"{name} {result[name]['label']} ({result[name].get('version', '?')})"
        for name in ("quick", "pretrained")
        if isinstance(result.get(name), dict)
    ]
    if len(verdicts) < 2:
        return Check("round trip", "FAIL", f"the result has {len(verdicts)} of the two verdicts: {result}")
    return Check("round trip", "ok", f"a photo classified in {time.monotonic() - started:.1f} s: {', '.join(verdicts)}")


def check_dead_letter(settings: Settings, timeout: float = ROUND_TRIP_TIMEOUT_S) -> Check:
    from catdog.kafka.clients import make_producer, make_reader
    from catdog.kafka.photos import send_image
    from catdog.kafka.results import iter_dead_letters

    kafka = settings.kafka
    junk = f"catdog doctor {uuid.uuid4().hex}: not an image".encode()
    producer = make_producer(kafka)
    try:
        sent = send_image(producer, kafka, junk, "catdog-doctor.txt", learner="catdog doctor")
    finally:
        producer.close()
    reader = make_reader(kafka, kafka.dlq_topic, since_ms=sent.timestamp - 60_000)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for letter in iter_dead_letters(reader, timeout=1.0):
                if letter["key"] == sent.key:
                    return Check(
                        "dead letter",
                        "ok",
                        f"a non-image went to {kafka.dlq_topic}: {letter['error-class']}: {letter['error'][:80]}",
                    )
    finally:
        reader.close()
    return Check("dead letter", "FAIL", f"no dead letter on {kafka.dlq_topic} for a non-image within {timeout:.0f} s")


def check_learner_acls(cluster: Cluster, learner: Learner | None, predictions_topic: str) -> Check:
    """In a learner's own notebook pod, with their own settings and KafkaUser: writing results must be
    refused (only the classifier writes predictions), or any learner could forge the wall's verdicts."""
    if learner is None:
        return Check("learner ACLs", "skip", "no room (--room DIR): the single-learner lab has no ACLs")
    result = cluster.run(
        "exec",
        "-i",
        "-n",
        learner.namespace,
        f"deployment/{NOTEBOOK}",
        "-c",
        NOTEBOOK_CONTAINER,
        "--",
        *learner_acl_probe(predictions_topic),
        input=probe_photo(),
    )
    return learner_acl_verdict(
        learner, predictions_topic, result.returncode, (result.stdout + result.stderr).decode(errors="replace")
    )


def learner_acl_probe(predictions_topic: str) -> list[str]:
    """What the learner-ACL check runs as the learner: a photo to the results topic, from standard input."""
    return ["catdog", "send", "--topic", predictions_topic, "-"]


def learner_acl_verdict(learner: Learner, predictions_topic: str, returncode: int, output: str) -> Check:
    """The learner-ACL check's verdict on what the probe did (tests/test_secured_kafka.py runs the probe
    against a broker that enforces the room's ACLs)."""
    if returncode == 0:
        return Check(
            "learner ACLs",
            "FAIL",
            f"{learner.name} wrote to {predictions_topic} from their notebook: "
            "the broker enforces no ACLs (the Kafka's authorization, the KafkaUsers)",
        )
    if "authoriz" not in output.lower():
        return Check("learner ACLs", "FAIL", f"could not try as {learner.name}: {output.strip()[-200:]}")
    return Check(
        "learner ACLs", "ok", f"{learner.name}'s write to {predictions_topic} was refused (TopicAuthorizationFailed)"
    )


@dataclass
class Http:
    """GETs as a browser on the venue's network makes them, with ``connect_to`` as curl's --connect-to
    (host, port) -> (address, port): the router's address before the apps domain's DNS answers."""

    ca_file: Path | None = None
    connect_to: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)

    def status(self, url: str) -> int:
        return self.request("GET", url)[0]

    def request(
        self, method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request, through ``connect_to``, TLS checked against ``ca_file``."""
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        host, port = parts.hostname or "", parts.port or (443 if secure else 80)
        address = next(
            (self.connect_to[key] for key in ((host, port), (host, 0), ("", port), ("", 0)) if key in self.connect_to),
            (host, port),
        )
        sock = socket.create_connection(address, timeout=HTTP_TIMEOUT_S)
        if secure:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            sock = context.wrap_socket(sock, server_hostname=host)
        connection = (http.client.HTTPSConnection if secure else http.client.HTTPConnection)(
            host, port, timeout=HTTP_TIMEOUT_S
        )
        connection.sock = sock
        try:
            connection.request(
                method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers or {}
            )
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


def check_challenge(cluster: Cluster, settings: Settings) -> Check:
    """Whether the room runs its challenge: the answers the wall mounts, and the same set on the topic."""
    import tempfile

    from catdog import challenge

    secret = cluster.get("secret", CHALLENGE_SECRET)
    if secret is None:
        return Check("challenge", "skip", f"off (no Secret {CHALLENGE_SECRET}: `catdog challenge make` writes it)")
    text = (secret.get("stringData") or {}).get("answers.json") or base64.b64decode(
        (secret.get("data") or {}).get("answers.json", "")
    ).decode()
    answers = json.loads(text)
    with tempfile.TemporaryDirectory() as folder:
        published = challenge.fetch(settings.kafka, Path(folder))
        names = {path.stem for path in published.paths}
    topic = settings.kafka.challenge_topic
    if published.challenge != answers["challenge"]:
        return Check(
            "challenge",
            "FAIL",
            f"the wall holds the answers of challenge {answers['challenge']}, {topic} "
            f"holds {published.challenge or 'no challenge'}: run `catdog challenge publish` on its folder",
        )
    missing = len(set(answers["labels"]) - names)
    if missing:
        return Check(
            "challenge", "FAIL", f"{missing} of its {len(answers['labels'])} photos are not on {topic}: publish again"
        )
    return Check(
        "challenge",
        "ok",
        f"challenge {published.challenge}: {len(names)} photos on {topic}, their answers "
        f"in the Secret (restart {WALL} after applying it)",
    )


def route_url(route: dict) -> str:
    scheme = "https" if (route.get("spec") or {}).get("tls") else "http"
    return f"{scheme}://{route['spec']['host']}"


def check_notebooks(cluster: Cluster, http: Http, tokens: dict[str, str | None]) -> Check:
    """Each notebook's Route answers with its token and refuses without. ``tokens``: namespace -> token
    (None: read the token Secret the single-learner lab's Job wrote)."""
    problems, fine = [], 0
    for namespace, token in tokens.items():
        route = cluster.get("route", NOTEBOOK, namespace)
        if route is None or not route["spec"].get("host"):
            problems.append(f"{namespace}: no Route {NOTEBOOK} with a host")
            continue
        if token is None:
            secret = cluster.get("secret", TOKEN_SECRET, namespace)
            if secret is None or "token" not in (secret.get("data") or {}):
                problems.append(
                    f"{namespace}: no Secret {TOKEN_SECRET} (its Job has not run: oc get job {TOKEN_SECRET})"
                )
                continue
            token = base64.b64decode(secret["data"]["token"]).decode()
        url = route_url(route)
        try:
            with_token, without = http.status(f"{url}/api/status?token={token}"), http.status(f"{url}/api/status")
        except OSError as error:
            problems.append(f"{namespace}: {url} does not answer ({error})")
            continue
        if with_token != 200 or without != 403:
            problems.append(
                f"{namespace}: {url} answered {with_token} with its token, {without} without (want 200, 403)"
            )
            continue
        fine += 1
    if problems:
        return Check("notebooks", "FAIL", f"{fine}/{len(tokens)} answer; " + "; ".join(problems))
    return Check("notebooks", "ok", f"{fine}/{len(tokens)} answer on their Routes with their tokens only")


def wall_secret_problem(cluster: Cluster) -> str | None:
    """Why the wall's replicas would not sign the phones' joins alike, or None: its Deployment must take
    CATDOG_WALL_SECRET from a Secret that holds the key (the wall refuses to start without it)."""
    deployment = cluster.get("deployment", WALL)
    if deployment is None:
        return f"no Deployment {WALL}"
    containers = deployment["spec"]["template"]["spec"].get("containers", [])
    found = [
        entry for container in containers for entry in container.get("env", []) if entry["name"] == "CATDOG_WALL_SECRET"
    ]
    reference = ((found[0].get("valueFrom") or {}).get("secretKeyRef") or {}) if found else {}
    if not reference:
        return f"Deployment {WALL} sets no CATDOG_WALL_SECRET from a Secret: the wall refuses to start without it"
    secret = cluster.get("secret", reference["name"])
    if secret is None or reference["key"] not in {**(secret.get("data") or {}), **(secret.get("stringData") or {})}:
        return (
            f"no Secret {reference['name']} with key {reference['key']} (CATDOG_WALL_SECRET of {WALL}): "
            "apply the room's folder from `catdog room` again"
        )
    return None


def check_wall(cluster: Cluster, http: Http) -> Check:
    route = cluster.get("route", WALL)
    if route is None:
        return Check("wall", "skip", f"no Route {WALL} (a room's: deploy/openshift/room/shared/wall)")
    problem = wall_secret_problem(cluster)
    if problem:
        return Check("wall", "FAIL", problem)
    url = route_url(route)
    try:
        answered = http.status(f"{url}/healthz")
    except OSError as error:
        return Check("wall", "FAIL", f"{url} does not answer ({error})")
    if answered != 200:
        return Check("wall", "FAIL", f"{url}/healthz answered {answered}")
    return Check("wall", "ok", f"{url} answers")


# --- the whole check ---------------------------------------------------------------------------------


def broker_partitions(settings: Settings) -> Callable[[str], int | None]:
    from catdog.kafka.clients import make_consumer

    consumer = make_consumer(settings.kafka)

    def count(topic: str) -> int | None:
        found = consumer.partitions_for_topic(topic)
        return len(found) if found else None

    count.close = consumer.close  # type: ignore[attr-defined]
    return count


def run_checks(
    settings: Settings,
    cluster: Cluster,
    http: Http,
    room: dict | None = None,
    operator_namespace: str = OPERATOR_NAMESPACE,
    timeout: float = ROUND_TRIP_TIMEOUT_S,
    report: Callable[[Check], None] = lambda check: None,
) -> list[Check]:
    """Every check, in order, each reported as it ends; an exception in one is its failure, not the end.
    ``room``: the secrets `catdog room` wrote (its learners' namespaces and tokens)."""
    learners = [Learner(entry["name"], slug) for slug, entry in sorted((room or {}).get("learners", {}).items())]
    tokens = (
        {learner.namespace: room["learners"][learner.slug]["token"] for learner in learners}
        if room
        else {cluster.namespace or "": None}
    )
    checks: list[Check] = []

    def run(name: str, check: Callable[[], Check]) -> None:
        try:
            result = check()
        except Exception as error:  # noqa: BLE001 - one broken check must not hide the others
            result = Check(name, "FAIL", f"{type(error).__name__}: {error}")
        checks.append(result)
        report(result)

    def topics() -> Check:
        count = broker_partitions(settings)
        try:
            return check_topics(cluster, settings, count)
        finally:
            count.close()  # type: ignore[attr-defined]

    run("operator", lambda: check_operator(cluster, operator_namespace))
    run("kafka", lambda: check_kafka(cluster))
    run("storage", lambda: check_storage(cluster))
    run("topics", topics)
    run("classifier", lambda: check_classifier(cluster))
    run("round trip", lambda: check_round_trip(settings, timeout))
    run("dead letter", lambda: check_dead_letter(settings, timeout))
    run(
        "learner ACLs",
        lambda: check_learner_acls(cluster, learners[0] if learners else None, settings.kafka.predictions_topic),
    )
    run("notebooks", lambda: check_notebooks(cluster, http, tokens))
    run("wall", lambda: check_wall(cluster, http))
    run("challenge", lambda: check_challenge(cluster, settings))
    run("image pre-pull", lambda: check_prepull(cluster))
    return checks


def format_check(check: Check) -> str:
    return f"{check.status:>4}  {check.name:<15} {check.detail}"


def verdict(checks: list[Check]) -> str:
    failed = [c.name for c in checks if c.status == "FAIL"]
    ok, skipped = (sum(c.status == status for c in checks) for status in ("ok", "skip"))
    counts = f"{ok} ok, {len(failed)} failed, {skipped} skipped"
    return f"NOT READY ({counts}): {', '.join(failed)}" if failed else f"ready for the room ({counts})"


def as_json(checks: list[Check]) -> str:
    return json.dumps(
        {
            "ready": not any(c.status == "FAIL" for c in checks),
            "verdict": verdict(checks),
            "checks": [asdict(c) for c in checks],
        },
        indent=1,
    )


def parse_connect_to(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """curl's --connect-to HOST1:PORT1:HOST2:PORT2 (HOST1 or PORT1 empty: any)."""
    parts = text.split(":")
    if len(parts) != 4 or not parts[2] or not parts[3].isdigit() or (parts[1] and not parts[1].isdigit()):
        raise ValueError(f"--connect-to {text!r}: want HOST1:PORT1:HOST2:PORT2, e.g. ::10.0.0.5:443")
    return (parts[0], int(parts[1] or 0)), (parts[2], int(parts[3]))


def room_namespace(room: dict | None, given: str | None) -> str | None:
    return given or (ROOM_NAMESPACE if room else None)


__all__ = [
    "Check",
    "Cluster",
    "Http",
    "OcError",
    "as_json",
    "find_oc",
    "format_check",
    "parse_connect_to",
    "room_namespace",
    "run_checks",
    "verdict",
]
