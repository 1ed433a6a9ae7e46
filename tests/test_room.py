"""A workshop room, rendered as an instructor makes it (`catdog room --count 30`, then kustomize, as
`oc apply -k` would) and checked for what Strimzi and OpenShift will do with it: who may do what on
Kafka, who may reach the listener, where every learner's image comes from, that one learner cannot take
the room's CPUs and memory, and that each learner's secrets match on both sides. The generic checks of
every render (schemas, non-root containers, routes, secrets kept out of ConfigMaps) run on this room too
in tests/test_deploy.py."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from catdog import room as room_module
from catdog.config import load_settings
from test_deploy import DEPLOY, by_kind, mebibytes, render, schema_problem, write_room

LEARNERS = 30
SHARED_IMAGE = "image-registry.openshift-image-registry.svc:5000/catdog-room/catdog:latest"
# What notebooks 01-03 do on Kafka, written out here rather than imported: send photos and read them
# back, read results. Nothing else.
ALLOWED = {("topic", "images", "literal"): {"Describe", "Read", "Write"},
           ("topic", "predictions", "literal"): {"Describe", "Read"}}


def make_room(out: Path, *args: str) -> str:
    return write_room(out, "--apps-domain", "apps.example.com", *args)


@pytest.fixture(scope="module")
def room(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("room") / "room"
    printed = make_room(out, "--count", str(LEARNERS))
    return {"out": out, "printed": printed, "objects": render(out)}


def in_namespace(objects: list[dict], namespace: str) -> list[dict]:
    return [o for o in objects if o["metadata"].get("namespace") == namespace]


def secret_value(secret: dict, key: str) -> str:
    if key in secret.get("stringData", {}):
        return secret["stringData"][key]
    return base64.b64decode(secret["data"][key]).decode()


def learner_namespaces(objects: list[dict]) -> list[str]:
    return sorted(n["metadata"]["name"] for n in by_kind(objects, "Namespace")
                  if room_module.LEARNER_LABEL in n["metadata"].get("labels", {}))


def acl_set(user: dict) -> dict[tuple[str, str, str], set[str]]:
    acls: dict[tuple[str, str, str], set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        assert acl.get("type", "allow") == "allow" and acl.get("host", "*") == "*"
        resource = acl["resource"]
        key = (resource["type"], resource.get("name"), resource.get("patternType", "literal"))
        acls.setdefault(key, set()).update(acl["operations"])
    return acls


def test_the_room_has_every_learner_once_with_a_url_and_token(room):
    namespaces = learner_namespaces(room["objects"])
    assert len(namespaces) == LEARNERS == len(set(namespaces))
    lines = [line for line in room["printed"].splitlines()[1:] if line.strip()]
    assert len(lines) == LEARNERS
    tokens = set()
    for line, namespace in zip(lines, namespaces):
        name, printed_namespace, url = line.split()
        assert printed_namespace == namespace == f"catdog-{name}"
        assert url.startswith(f"https://catdog-notebook-{namespace}.apps.example.com/lab?token=")
        token = url.rpartition("=")[2]
        [secret] = [s for s in in_namespace(by_kind(room["objects"], "Secret"), namespace)
                    if s["metadata"]["name"] == "catdog-notebook-token"]
        assert secret_value(secret, "token") == token and len(token) == 64
        tokens.add(token)
    assert len(tokens) == LEARNERS


def test_every_object_of_a_room_of_30_validates_against_its_schema(room):
    problems = [f"{o['kind']}/{o['metadata'].get('namespace')}/{o['metadata']['name']}: {problem}"
                for o in room["objects"] if (problem := schema_problem(o))]
    assert not problems and len(room["objects"]) > 10 * LEARNERS, problems[:5]


def test_every_learners_acls_are_exactly_what_the_notebooks_need(room):
    users = {u["metadata"]["name"]: u for u in by_kind(room["objects"], "KafkaUser")}
    learners = {name: user for name, user in users.items() if name.startswith(room_module.KAFKA_USER_PREFIX)}
    assert len(learners) == LEARNERS
    for name, user in learners.items():
        assert user["metadata"]["namespace"] == "catdog-room"  # the User Operator watches the Kafka's namespace
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        assert acl_set(user) == ALLOWED, name
    # Only the classifier writes results and dead letters; nobody but Strimzi's operators administers.
    for name, user in users.items():
        for (kind, resource, _), operations in acl_set(user).items():
            assert not operations & {"All", "Delete", "Alter", "AlterConfigs", "Create", "ClusterAction"}, name
            if kind == "topic" and resource in ("predictions", "images-dlq"):
                assert ("Write" in operations) is (name == "catdog-classifier"), name
    assert acl_set(users["catdog-classifier"]) == {
        ("topic", "images", "literal"): {"Describe", "Read"}, ("group", "catdog-classifier", "literal"): {"Read"},
        ("topic", "predictions", "literal"): {"Describe", "Write"}, ("topic", "images-dlq", "literal"): {"Describe", "Write"}}


def test_every_listener_authenticates_and_admits_the_rooms_namespaces_only(room):
    objects = room["objects"]
    [kafka] = by_kind(objects, "Kafka")
    spec = kafka["spec"]["kafka"]
    assert spec["authorization"]["type"] == "simple"
    assert all(listener.get("authentication", {}).get("type") for listener in spec["listeners"])
    [internal] = [listener for listener in spec["listeners"] if listener["type"] == "internal"]
    assert internal["tls"] is True and internal["authentication"]["type"] == "scram-sha-512"
    selector = {room_module.ROOM_LABEL: "catdog-room"}
    assert internal["networkPolicyPeers"] == [{"podSelector": {}}, {"namespaceSelector": {"matchLabels": selector}}]
    labelled = sorted(n["metadata"]["name"] for n in by_kind(objects, "Namespace")
                      if n["metadata"].get("labels", {}).get(room_module.ROOM_LABEL) == "catdog-room")
    assert labelled == sorted(["catdog-room", *learner_namespaces(objects)])
    # Every learner connects to that listener by its cross-namespace name, over TLS, as their own user.
    users = {u["metadata"]["name"] for u in by_kind(objects, "KafkaUser")}
    for namespace in learner_namespaces(objects):
        [settings] = [c for c in in_namespace(by_kind(objects, "ConfigMap"), namespace)]
        data = settings["data"]
        assert data["KAFKA_BOOTSTRAP_SERVERS"] == f"catdog-kafka-bootstrap.catdog-room.svc:{internal['port']}"
        assert data["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and data["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert data["KAFKA_SASL_USERNAME"] in users and data["CATDOG_LEARNER"] == namespace.removeprefix("catdog-")
    # A learner's JupyterLab takes connections from the router only.
    for namespace in learner_namespaces(objects):
        [policy] = in_namespace(by_kind(objects, "NetworkPolicy"), namespace)
        assert policy["spec"]["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {
            "network.openshift.io/policy-group": "ingress"}}}], "ports": [{"protocol": "TCP", "port": 8888}]}]


def test_every_learner_pulls_the_rooms_one_image(room):
    objects = room["objects"]
    namespaces = learner_namespaces(objects)
    for namespace in namespaces:
        kinds = {o["kind"] for o in in_namespace(objects, namespace)}
        assert not kinds & {"BuildConfig", "ImageStream", "Job"}, namespace  # one build, in the room
        [deployment] = in_namespace(by_kind(objects, "Deployment"), namespace)
        assert [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]] == [SHARED_IMAGE]
        assert "image.openshift.io/triggers" not in deployment["metadata"].get("annotations", {})
    [builds] = by_kind(objects, "BuildConfig")
    assert builds["metadata"]["namespace"] == "catdog-room" and builds["spec"]["output"]["to"]["name"] == "catdog:latest"
    [binding] = by_kind(objects, "RoleBinding")
    assert binding["metadata"]["namespace"] == "catdog-room" and binding["roleRef"]["name"] == "system:image-puller"
    assert sorted(s["name"] for s in binding["subjects"]) == sorted(f"system:serviceaccounts:{n}" for n in namespaces)
    # The pre-puller runs the same image on every node, rolled by each build.
    [puller] = by_kind(objects, "DaemonSet")
    [hold] = puller["spec"]["template"]["spec"]["containers"]
    assert hold["image"] == "catdog:latest" and '"name":"catdog:latest"' in puller["metadata"]["annotations"]["image.openshift.io/triggers"]


def test_each_learners_quota_is_exactly_one_notebook(room):
    """The sizing rule: a learner's namespace holds one notebook pod and its volume, no more, so 30
    learners need 30 notebooks' worth of the cluster and one cannot starve the others."""
    objects = room["objects"]
    for namespace in learner_namespaces(objects):
        [quota] = in_namespace(by_kind(objects, "ResourceQuota"), namespace)
        [deployment] = in_namespace(by_kind(objects, "Deployment"), namespace)
        [claim] = in_namespace(by_kind(objects, "PersistentVolumeClaim"), namespace)
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        resources, hard = container["resources"], quota["spec"]["hard"]
        assert hard["pods"] == "1" and hard["persistentvolumeclaims"] == "1"
        assert hard["requests.cpu"] == resources["requests"]["cpu"] and hard["limits.cpu"] == resources["limits"]["cpu"]
        assert mebibytes(hard["requests.memory"]) == mebibytes(resources["requests"]["memory"])
        assert mebibytes(hard["limits.memory"]) == mebibytes(resources["limits"]["memory"])
        assert mebibytes(hard["requests.storage"]) == mebibytes(claim["spec"]["resources"]["requests"]["storage"])
        [limits] = in_namespace(by_kind(objects, "LimitRange"), namespace)
        [rule] = limits["spec"]["limits"]
        assert rule["max"]["cpu"] == resources["limits"]["cpu"]
        assert mebibytes(rule["max"]["memory"]) == mebibytes(resources["limits"]["memory"])


def test_each_learners_password_and_ca_are_the_same_on_both_sides(room, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    objects = room["objects"]
    secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in by_kind(objects, "Secret")}
    users = {u["metadata"]["name"]: u for u in by_kind(objects, "KafkaUser")}
    ca_cert = secret_value(secrets["catdog-room", "catdog-cluster-ca-cert"], "ca.crt")
    passwords = set()
    for namespace in learner_namespaces(objects):
        [settings] = in_namespace(by_kind(objects, "ConfigMap"), namespace)
        user = users[settings["data"]["KAFKA_SASL_USERNAME"]]
        ref = user["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"]
        password = secret_value(secrets["catdog-room", ref["name"]], ref["key"])
        assert secret_value(secrets[namespace, "catdog-kafka-user"], "password") == password
        passwords.add(password)
        assert secret_value(secrets[namespace, "catdog-kafka-ca"], "ca.crt") == ca_cert
        # The notebook's settings, as the pod gets them, load: SASL_SSL with the mounted CA file.
        ca_file = tmp_path / "ca.crt"
        ca_file.write_text(ca_cert)
        env = {**settings["data"], "KAFKA_SSL_CAFILE": str(ca_file), "KAFKA_SASL_PASSWORD": password}
        kafka = load_settings(env).kafka
        assert (kafka.security_protocol, kafka.sasl_username, kafka.learner) == \
            ("SASL_SSL", user["metadata"]["name"], settings["data"]["CATDOG_LEARNER"])
    assert len(passwords) == LEARNERS and all(len(p) >= 32 for p in passwords)
    # Strimzi takes the room's CA only as two labelled Secrets at generation 0, and only when told to.
    [kafka] = by_kind(objects, "Kafka")
    assert kafka["spec"]["clusterCa"]["generateCertificateAuthority"] is False
    cert_secret, key_secret = secrets["catdog-room", "catdog-cluster-ca-cert"], secrets["catdog-room", "catdog-cluster-ca"]
    for secret in (cert_secret, key_secret):
        assert secret["metadata"]["labels"].items() >= {"strimzi.io/kind": "Kafka", "strimzi.io/cluster": "catdog"}.items()
    assert cert_secret["metadata"]["annotations"]["strimzi.io/ca-cert-generation"] == "0"
    assert key_secret["metadata"]["annotations"]["strimzi.io/ca-key-generation"] == "0"
    certificate = x509.load_pem_x509_certificate(ca_cert.encode())
    key = serialization.load_pem_private_key(secret_value(key_secret, "ca.key").encode(), password=None)
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certificate.public_key().public_numbers() == key.public_key().public_numbers()
    # Nothing of it in the learners' namespaces but the certificate.
    assert not [s for s in by_kind(objects, "Secret") if "ca.key" in str(s.get("data", {})) + str(s.get("stringData", {}))
                and s["metadata"]["namespace"] != "catdog-room"]


def test_running_it_again_adds_learners_and_keeps_what_was_handed_out(tmp_path):
    out = tmp_path / "room"
    make_room(out, "--learners", "Ada Lovelace,Grace")
    first = json.loads((out / "secrets.json").read_text())
    printed = make_room(out, "--learners", "Linus")
    second = json.loads((out / "secrets.json").read_text())
    assert second["ca"] == first["ca"]
    assert {k: second["learners"][k] for k in first["learners"]} == first["learners"]
    assert set(second["learners"]) == {"ada-lovelace", "grace", "linus"}
    assert "catdog-linus" in printed and "catdog-grace" not in printed  # each token printed when asked for
    assert sorted(learner_namespaces(render(out))) == ["catdog-ada-lovelace", "catdog-grace", "catdog-linus"]
    assert (out / "secrets.json").stat().st_mode & 0o077 == 0
    # Git never sees the folder, wherever the instructor put it.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout
    assert status == ""


def test_names_that_clash_or_are_not_names_are_refused(tmp_path):
    for learners, message in ((["Ana", "ana"], "same namespace"), (["!!!"], "no letters or digits")):
        result = subprocess.run([sys.executable, "-m", "catdog.cli", "room", "--out", str(tmp_path / "x"), "--manifests", str(DEPLOY),
                                 "--learners", ",".join(learners)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and message in result.stderr and not (tmp_path / "x").exists()


def test_one_learners_kustomization_renders_alone(room):
    """An instructor can apply one learner's folder (a late arrival) without the rest."""
    objects = render(room["out"] / "learners" / "learner-07")
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"catdog-learner-07"}
