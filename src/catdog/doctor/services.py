"""The checks of what runs beside Kafka, as a learner meets it: the classifier and a photo's round trip (and
a refused message's dead letter), the image on every node, every notebook's Route and token, the wall and
its secret, the challenge."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from pathlib import Path

from catdog.config import Settings
from catdog.doctor.cluster import (
    CHALLENGE_SECRET,
    CLASSIFIER,
    NOTEBOOK,
    PREPULLER,
    TOKEN_SECRET,
    WALL,
    Check,
    Cluster,
    Http,
    route_url,
)

ROUND_TRIP_TIMEOUT_S = 60  # a cold classifier's first batch takes a few seconds; a room's queue more
PROBE_PHOTO_PIXELS = 96


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
