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

from catdog.config import load_settings
from catdog.room import learners as room_module
from test_deploy import DEPLOY, by_kind, mebibytes, render, schema_problem, write_room

LEARNERS = 30
SHARED_IMAGE = "image-registry.openshift-image-registry.svc:5000/catdog-room/catdog:latest"
# What notebooks 01-03 do on Kafka, written out here rather than imported: send photos and read them
# back, read results. Nothing else.
ALLOWED = {
    ("topic", "images", "literal"): {"Read", "Write"},
    ("topic", "predictions", "literal"): {"Read"},
    ("topic", "feedback", "literal"): {"Read", "Write"},
    # the challenge: its photos to read, one's own verdicts to write, never the others' verdicts
    ("topic", "challenge", "literal"): {"Read"},
    ("topic", "challenge-submissions", "literal"): {"Write"},
    # the instructor's board: one's own lab reports there, and no one reads another's progress
    ("topic", "room-progress", "literal"): {"Write"},
}


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
    return sorted(
        n["metadata"]["name"]
        for n in by_kind(objects, "Namespace")
        if room_module.LEARNER_LABEL in n["metadata"].get("labels", {})
    )


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
    table, _, wall = room["printed"].partition("\n\n")  # the learners' table, then the wall's link
    lines = table.splitlines()[1:]
    assert len(lines) == LEARNERS and "/#code=" in wall
    tokens = set()
    for line, namespace in zip(lines, namespaces):
        name, printed_namespace, url = line.split()
        assert printed_namespace == namespace == f"catdog-{name}"
        assert url.startswith(f"https://catdog-notebook-{namespace}.apps.example.com/lab?token=")
        token = url.rpartition("=")[2]
        [secret] = [
            s
            for s in in_namespace(by_kind(room["objects"], "Secret"), namespace)
            if s["metadata"]["name"] == "catdog-notebook-token"
        ]
        assert secret_value(secret, "token") == token and len(token) == 64
        tokens.add(token)
    assert len(tokens) == LEARNERS


def test_every_object_of_a_room_of_30_validates_against_its_schema(room):
    problems = [
        f"{o['kind']}/{o['metadata'].get('namespace')}/{o['metadata']['name']}: {problem}"
        for o in room["objects"]
        if (problem := schema_problem(o))
    ]
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
        ("topic", "images", "literal"): {"Read"},
        ("group", "catdog-classifier", "literal"): {"Read"},
        ("topic", "predictions", "literal"): {"Write"},
        ("topic", "images-dlq", "literal"): {"Write"},
    }
    # The retraining reads the labels and the photos they name, and writes nothing to Kafka.
    assert acl_set(users["catdog-retrain"]) == {
        ("topic", "feedback", "literal"): {"Read"},
        ("topic", "images", "literal"): {"Read"},
    }


def test_the_rooms_retraining_reads_kafka_as_its_own_user_and_writes_what_the_classifier_serves(room):
    """Both retraining workloads in the room's namespace connect as catdog-retrain (its password from the
    User Operator's Secret, the room's CA mounted where the settings say), on the classifier's models volume."""
    objects = in_namespace(room["objects"], "catdog-room")
    [settings] = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "catdog-settings"]
    [classifier] = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "catdog-classifier"]
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in classifier["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    pods = [j["spec"]["template"]["spec"] for j in by_kind(objects, "Job")]
    pods += [c["spec"]["jobTemplate"]["spec"]["template"]["spec"] for c in by_kind(objects, "CronJob")]
    assert len(pods) == 2
    for pod in pods:
        [container] = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["KAFKA_SASL_USERNAME"]["value"] == "catdog-retrain"
        assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "catdog-retrain", "key": "password"}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        ca = next(name for name, path in mounts.items() if settings["data"]["KAFKA_SSL_CAFILE"].startswith(path + "/"))
        assert volumes[ca]["secret"]["secretName"] == "catdog-cluster-ca-cert"
        assert {
            v["persistentVolumeClaim"]["claimName"] for v in volumes.values() if "persistentVolumeClaim" in v
        } == claims


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
    labelled = sorted(
        n["metadata"]["name"]
        for n in by_kind(objects, "Namespace")
        if n["metadata"].get("labels", {}).get(room_module.ROOM_LABEL) == "catdog-room"
    )
    assert labelled == sorted(["catdog-room", *learner_namespaces(objects)])
    # Every learner connects to that listener by its cross-namespace name, over TLS, as their own user.
    users = {u["metadata"]["name"] for u in by_kind(objects, "KafkaUser")}
    for namespace in learner_namespaces(objects):
        [settings] = [c for c in in_namespace(by_kind(objects, "ConfigMap"), namespace)]
        data = settings["data"]
        assert data["KAFKA_BOOTSTRAP_SERVERS"] == f"catdog-kafka-bootstrap.catdog-room.svc:{internal['port']}"
        assert data["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and data["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert data["KAFKA_SASL_USERNAME"] in users and data["CATDOG_LEARNER"] == namespace.removeprefix("catdog-")
    # A learner's JupyterLab takes connections from the router only (and nothing else in the namespace any).
    for namespace in learner_namespaces(objects):
        [policy] = [p for p in in_namespace(by_kind(objects, "NetworkPolicy"), namespace) if p["spec"]["podSelector"]]
        assert policy["spec"]["ingress"] == [
            {
                "from": [{"namespaceSelector": {"matchLabels": {"network.openshift.io/policy-group": "ingress"}}}],
                "ports": [{"protocol": "TCP", "port": 8888}],
            }
        ]


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
    assert (
        builds["metadata"]["namespace"] == "catdog-room" and builds["spec"]["output"]["to"]["name"] == "catdog:latest"
    )
    [binding] = by_kind(objects, "RoleBinding")
    assert binding["metadata"]["namespace"] == "catdog-room" and binding["roleRef"]["name"] == "system:image-puller"
    assert sorted(s["name"] for s in binding["subjects"]) == sorted(f"system:serviceaccounts:{n}" for n in namespaces)
    # The pre-puller runs the same image on every node, rolled by each build.
    [puller] = by_kind(objects, "DaemonSet")
    [hold] = puller["spec"]["template"]["spec"]["containers"]
    assert (
        hold["image"] == "catdog:latest"
        and '"name":"catdog:latest"' in puller["metadata"]["annotations"]["image.openshift.io/triggers"]
    )


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
        assert (kafka.security_protocol, kafka.sasl_username, kafka.learner) == (
            "SASL_SSL",
            user["metadata"]["name"],
            settings["data"]["CATDOG_LEARNER"],
        )
    assert len(passwords) == LEARNERS and all(len(p) >= 32 for p in passwords)
    # Strimzi takes the room's CA only as two labelled Secrets at generation 0, and only when told to.
    [kafka] = by_kind(objects, "Kafka")
    assert kafka["spec"]["clusterCa"]["generateCertificateAuthority"] is False
    cert_secret, key_secret = (
        secrets["catdog-room", "catdog-cluster-ca-cert"],
        secrets["catdog-room", "catdog-cluster-ca"],
    )
    for secret in (cert_secret, key_secret):
        assert (
            secret["metadata"]["labels"].items() >= {"strimzi.io/kind": "Kafka", "strimzi.io/cluster": "catdog"}.items()
        )
    assert cert_secret["metadata"]["annotations"]["strimzi.io/ca-cert-generation"] == "0"
    assert key_secret["metadata"]["annotations"]["strimzi.io/ca-key-generation"] == "0"
    certificate = x509.load_pem_x509_certificate(ca_cert.encode())
    key = serialization.load_pem_private_key(secret_value(key_secret, "ca.key").encode(), password=None)
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certificate.public_key().public_numbers() == key.public_key().public_numbers()
    # Nothing of it in the learners' namespaces but the certificate.
    assert not [
        s
        for s in by_kind(objects, "Secret")
        if "ca.key" in str(s.get("data", {})) + str(s.get("stringData", {}))
        and s["metadata"]["namespace"] != "catdog-room"
    ]


def env_of(container: dict) -> dict[str, dict]:
    return {variable["name"]: variable for variable in container.get("env", [])}


def test_each_learner_signs_with_a_key_only_they_and_the_rooms_services_hold(room, tmp_path):
    """Results and votes name a learner only under their own key (catdog.identity): each notebook gets its
    learner's key from their namespace's Secret, the classifier and the retraining mount the room's table
    with exactly those keys under the names the notebooks send as, the wall signs as the table's one relay,
    and no learner's namespace holds anyone else's key or the table."""
    from catdog.identity import read_keys

    objects = room["objects"]
    secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in by_kind(objects, "Secret")}
    table_file = tmp_path / "keys.json"
    table_file.write_text(secret_value(secrets["catdog-room", room_module.LEARNER_KEYS_SECRET], "keys.json"))
    table = read_keys(table_file)
    signed = {}
    for namespace in learner_namespaces(objects):
        [settings] = in_namespace(by_kind(objects, "ConfigMap"), namespace)
        [notebook] = [d for d in in_namespace(by_kind(objects, "Deployment"), namespace)]
        ref = env_of(notebook["spec"]["template"]["spec"]["containers"][0])["CATDOG_LEARNER_KEY"]["valueFrom"][
            "secretKeyRef"
        ]
        key = secret_value(secrets[namespace, ref["name"]], ref["key"])
        signed[settings["data"]["CATDOG_LEARNER"]] = key
        assert (
            load_settings(
                {"CATDOG_LEARNER": settings["data"]["CATDOG_LEARNER"], "CATDOG_LEARNER_KEY": key}
            ).kafka.learner_key
            == key
        )
        mine = [s for (where, _), s in secrets.items() if where == namespace]
        assert not [s for s in mine if "keys.json" in str(s.get("stringData", {})) + str(s.get("data", {}))]
    assert dict(table.learners) == signed and len(set(signed.values())) == LEARNERS
    [wall] = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "catdog-wall"]
    wall_env = env_of(wall["spec"]["template"]["spec"]["containers"][0])
    ref = wall_env["CATDOG_LEARNER_KEY"]["valueFrom"]["secretKeyRef"]
    assert dict(table.relays) == {
        wall_env["CATDOG_LEARNER"]["value"]: secret_value(secrets["catdog-room", ref["name"]], ref["key"])
    }
    readers = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "catdog-classifier"]
    readers += [j for j in by_kind(objects, "Job")] + [c["spec"]["jobTemplate"] for c in by_kind(objects, "CronJob")]
    for reader in readers:
        pod = reader["spec"]["template"]["spec"]
        [container] = pod["containers"]
        path = Path(env_of(container)["CATDOG_LEARNER_KEYS"]["value"])
        [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
        [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert volume["secret"]["secretName"] == room_module.LEARNER_KEYS_SECRET and path.name == "keys.json"


def test_running_it_again_adds_learners_and_keeps_what_was_handed_out(tmp_path):
    out = tmp_path / "room"
    make_room(out, "--learners", "Ada Lovelace,Grace")
    first = json.loads((out / "secrets.json").read_text())
    printed = make_room(out, "--learners", "Linus")
    second = json.loads((out / "secrets.json").read_text())
    assert second["ca"] == first["ca"] and second["room_code"] == first["room_code"]
    assert {k: second["learners"][k] for k in first["learners"]} == first["learners"]
    assert set(second["learners"]) == {"ada-lovelace", "grace", "linus"}
    assert "catdog-linus" in printed and "catdog-grace" not in printed  # each token printed when asked for
    assert sorted(learner_namespaces(render(out))) == ["catdog-ada-lovelace", "catdog-grace", "catdog-linus"]
    assert (out / "secrets.json").stat().st_mode & 0o077 == 0
    # Git never sees the folder, wherever the instructor put it.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert status == ""


def test_names_that_clash_or_are_not_names_are_refused(tmp_path):
    for learners, message in ((["Ana", "ana"], "same namespace"), (["!!!"], "no letters or digits")):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "catdog.cli",
                "room",
                "--out",
                str(tmp_path / "x"),
                "--manifests",
                str(DEPLOY),
                "--learners",
                ",".join(learners),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2 and message in result.stderr and not (tmp_path / "x").exists()


def test_one_learners_kustomization_renders_alone(room):
    """An instructor can apply one learner's folder (a late arrival) without the rest."""
    objects = render(room["out"] / "learners" / "learner-07")
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"catdog-learner-07"}


def cpu_cores(quantity: str | int | float) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def room_sizing(objects: list[dict]) -> dict[str, dict[str, float]]:
    """Requests and limits (CPU cores, memory GiB) of one learner's namespace, of the room's shared part
    (Kafka's node and operators, the classifier; the pre-puller's per-node crumbs left out), of a build and
    of a retraining (the CronJob's pod, while it runs)."""

    def add(total: dict, resources: dict, times: int = 1) -> None:
        for kind in ("requests", "limits"):
            for name, value in resources.get(kind, {}).items():
                amount = cpu_cores(value) if name == "cpu" else mebibytes(value) / 1024
                total[f"{kind}.{name}"] = total.get(f"{kind}.{name}", 0) + amount * times

    learner, shared, build, retraining = {}, {}, {}, {}
    one = learner_namespaces(objects)[0]
    for deployment in by_kind(objects, "Deployment"):
        namespace = deployment["metadata"]["namespace"]
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if namespace == one:
                add(learner, container["resources"])
            elif namespace == "catdog-room":
                add(shared, container["resources"], deployment["spec"].get("replicas", 1))
    for pool in by_kind(objects, "KafkaNodePool"):
        add(shared, pool["spec"]["resources"], pool["spec"]["replicas"])
    for kafka in by_kind(objects, "Kafka"):
        for operator in kafka["spec"]["entityOperator"].values():
            add(shared, operator["resources"])
    for config in by_kind(objects, "BuildConfig"):
        add(build, config["spec"]["resources"])
    for cron in by_kind(objects, "CronJob"):
        for container in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]:
            add(retraining, container["resources"])
    return {"learner": learner, "shared": shared, "build": build, "retraining": retraining}


def test_the_readmes_sizing_table_is_what_the_manifests_ask_for(room):
    """The instructors' guide's table for 20, 30 and 50 learners: the shared part plus N learners' namespaces (each
    exactly one notebook, its quota), from the rendered room, so it cannot drift from the manifests."""
    sizing = room_sizing(room["objects"])
    guide = (DEPLOY.parent.parent / "docs" / "instructors.md").read_text()
    table = guide.split("### Sizing a room")[1].split("\n\n")[1]
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]] for line in table.splitlines()[2:]
    }

    def cells(total: dict) -> list[str]:
        return [
            f"{total.get('requests.cpu', 0):g}",
            f"{total.get('limits.cpu', 0):g}",
            f"{total.get('requests.memory', 0):g} GiB",
            f"{total.get('limits.memory', 0):g} GiB",
        ]

    assert rows["one learner (a notebook)"] == cells(sizing["learner"])
    assert rows["the room's shared part"] == cells(sizing["shared"])
    assert rows["an image build, while it runs"] == cells(sizing["build"])
    assert rows["a retraining (the CronJob), while it runs"] == cells(sizing["retraining"])
    for learners in (20, 30, 50):
        total = {
            key: sizing["shared"].get(key, 0) + learners * sizing["learner"].get(key, 0)
            for key in set(sizing["shared"]) | set(sizing["learner"])
        }
        assert rows[f"a room of {learners}"] == cells(total), learners


# The ODH notebook controller's OAuth proxy sidecar, requested and limit (its notebook_webhook.go).
PROXY = {"cpu": 0.1, "memory": 64 / 1024}


@pytest.fixture(scope="module")
def workbench_room(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("room-ai") / "room"
    printed = make_room(out, "--openshift-ai", "--learners", "Ada Lovelace,Bo,Chen")
    return {"out": out, "printed": printed, "objects": render(out)}


def test_on_openshift_ai_each_learner_gets_a_workbench_as_the_dashboard_writes_one(workbench_room):
    objects = workbench_room["objects"]
    assert not [p for o in objects if (p := schema_problem(o))]
    [image_stream] = [
        s for s in by_kind(objects, "ImageStream") if s["metadata"]["namespace"] == "redhat-ods-applications"
    ]
    [tag] = image_stream["spec"]["tags"]
    assert image_stream["metadata"]["labels"]["opendatahub.io/notebook-image"] == "true"
    assert tag["from"] == {"kind": "ImageStreamTag", "namespace": "catdog-room", "name": "catdog:latest"}
    namespaces = learner_namespaces(objects)
    assert namespaces == ["catdog-ada-lovelace", "catdog-bo", "catdog-chen"]
    for namespace in namespaces:
        [project] = [n for n in by_kind(objects, "Namespace") if n["metadata"]["name"] == namespace]
        assert project["metadata"]["labels"]["opendatahub.io/dashboard"] == "true"
        [notebook] = in_namespace(by_kind(objects, "Notebook"), namespace)
        name = notebook["metadata"]["name"]
        spec = notebook["spec"]["template"]["spec"]
        [container] = spec["containers"]
        assert container["name"] == name  # how the controller finds the notebook container
        args = dict(
            line.split("=", 1)
            for line in next(e["value"] for e in container["env"] if e["name"] == "NOTEBOOK_ARGS").splitlines()
        )
        base_url = f"/notebook/{namespace}/{name}"
        assert args["--ServerApp.base_url"] == base_url and args["--ServerApp.token"] == "''"
        port = next(p for p in container["ports"] if p["name"] == "notebook-port")["containerPort"]
        assert args["--ServerApp.port"] == str(port) == "8888"
        for probe in (container["livenessProbe"], container["readinessProbe"]):
            assert probe["httpGet"] == {"path": f"{base_url}/api", "port": "notebook-port", "scheme": "HTTP"}
        # The image the dashboard's annotation names, from the dashboard's ImageStream.
        selection = notebook["metadata"]["annotations"]["notebooks.opendatahub.io/last-image-selection"]
        assert selection == f"{image_stream['metadata']['name']}:{tag['name']}"
        assert (
            container["image"]
            == f"image-registry.openshift-image-registry.svc:5000/redhat-ods-applications/{selection}"
        )
        # Everything it refers to is in the project: settings, password, CA, HOME's volume.
        here = in_namespace(objects, namespace)
        names = {(o["kind"], o["metadata"]["name"]) for o in here}
        [settings] = by_kind(here, "ConfigMap")
        assert settings["metadata"]["labels"]["opendatahub.io/dashboard"] == "true"
        assert container["envFrom"] == [{"configMapRef": {"name": settings["metadata"]["name"]}}]
        assert settings["data"]["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        refs = [("Secret", e["valueFrom"]["secretKeyRef"]["name"]) for e in container["env"] if "valueFrom" in e]
        volumes = [
            ("Secret", v["secret"]["secretName"])
            if "secret" in v
            else ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])
            for v in spec["volumes"]
        ]
        assert set(refs + volumes) <= names
        assert {m["mountPath"] for m in container["volumeMounts"]} == {"/opt/app-root/src", "/etc/catdog/kafka-ca"}
        assert ("Secret", "catdog-notebook-token") not in names  # the dashboard's OAuth proxy lets the learner in
        # The quota holds exactly this workbench: the notebook container and the injected proxy.
        [quota] = by_kind(here, "ResourceQuota")
        hard, resources = quota["spec"]["hard"], container["resources"]
        assert cpu_cores(hard["requests.cpu"]) == pytest.approx(cpu_cores(resources["requests"]["cpu"]) + PROXY["cpu"])
        assert cpu_cores(hard["limits.cpu"]) == pytest.approx(cpu_cores(resources["limits"]["cpu"]) + PROXY["cpu"])
        assert mebibytes(hard["requests.memory"]) / 1024 == pytest.approx(
            mebibytes(resources["requests"]["memory"]) / 1024 + PROXY["memory"]
        )
        assert mebibytes(hard["limits.memory"]) / 1024 == pytest.approx(
            mebibytes(resources["limits"]["memory"]) / 1024 + PROXY["memory"]
        )
    # They pull through the dashboard's ImageStream.
    [pullers] = [b for b in by_kind(objects, "RoleBinding") if b["metadata"]["namespace"] == "redhat-ods-applications"]
    assert sorted(s["name"] for s in pullers["subjects"]) == sorted(f"system:serviceaccounts:{n}" for n in namespaces)
    assert "rhods-dashboard-redhat-ods-applications.apps.example.com/projects/catdog-bo" in workbench_room["printed"]


def test_the_dashboards_lists_say_what_requirements_txt_pins():
    """The workbench form shows the image's software and packages: they must be the ones it has."""
    stream = yaml.safe_load((DEPLOY / "openshift-ai" / "imagestream.yaml").read_text())
    [tag] = stream["spec"]["tags"]
    listed = {
        item["name"].lower(): item["version"]
        for key in ("opendatahub.io/notebook-software", "opendatahub.io/notebook-python-dependencies")
        for item in json.loads(tag["annotations"][key])
    }
    pins = dict(
        line.split("==")
        for line in (DEPLOY.parent.parent / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    pins = {name.lower(): version.split()[0] for name, version in pins.items()}
    assert listed.pop("python") == "v3.11" and "python-311" in (DEPLOY.parent.parent / "Containerfile").read_text()
    for name, version in listed.items():
        pinned = pins["tensorflow-cpu" if name == "tensorflow" else name]
        assert ".".join(pinned.split(".")[:2]) == version, name


def test_a_room_keeps_its_kind(tmp_path):
    out = tmp_path / "room"
    make_room(out, "--learners", "Ada")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "catdog.cli",
            "room",
            "--out",
            str(out),
            "--manifests",
            str(DEPLOY),
            "--openshift-ai",
            "--learners",
            "Bo",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "without --openshift-ai" in result.stderr


def test_the_wall_is_reached_by_https_from_the_router_only_with_a_generated_code_and_its_own_user(room):
    """The wall's Route is edge TLS (http redirected), only the router may reach its pods, its room code is
    the generated Secret (printed once for the projector, never in git), its KafkaUser may write photos and
    verdicts and read results (and the challenge's submissions, scored against answers mounted from an
    optional Secret), nothing else, and learners' settings link to it."""
    objects = in_namespace(room["objects"], "catdog-room")
    [route] = [r for r in by_kind(objects, "Route") if r["metadata"]["name"] == "catdog-wall"]
    assert route["spec"]["tls"] == {"termination": "edge", "insecureEdgeTerminationPolicy": "Redirect"}
    [service] = [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == route["spec"]["to"]["name"]]
    [deployment] = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "catdog-wall"]
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    [container] = pod["spec"]["containers"]
    assert container["command"] == ["catdog", "wall"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CATDOG_WALL_PORT"]["value"] == str(port) and env["CATDOG_WALL_HOST"]["value"] == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}

    [policy] = [p for p in by_kind(objects, "NetworkPolicy") if p["metadata"]["name"] == "catdog-wall-from-router"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert policy["spec"]["ingress"] == [
        {
            "from": [{"namespaceSelector": {"matchLabels": {"network.openshift.io/policy-group": "ingress"}}}],
            "ports": [{"protocol": "TCP", "port": port}],
        }
    ]

    code = env["CATDOG_ROOM_CODE"]["valueFrom"]["secretKeyRef"]
    [secret] = [s for s in by_kind(objects, "Secret") if s["metadata"]["name"] == code["name"]]
    generated = json.loads((room["out"] / "secrets.json").read_text())["room_code"]
    assert secret_value(secret, code["key"]) == generated and len(generated) >= 10
    assert f"https://catdog-wall-catdog-room.apps.example.com/#code={generated}" in room["printed"]
    # Phones are counted by the address the router saw (it replaces what a client wrote; the wall reads the
    # one entry it added), and their cookies are signed with a generated secret no one else needs.
    assert route["metadata"]["annotations"]["haproxy.router.openshift.io/set-forwarded-headers"] == "replace"
    assert env["CATDOG_WALL_FORWARDED_HOPS"]["value"] == "1" and "FORWARDED_ALLOW_IPS" not in env
    signing = env["CATDOG_WALL_SECRET"]["valueFrom"]["secretKeyRef"]
    [secret] = [s for s in by_kind(objects, "Secret") if s["metadata"]["name"] == signing["name"]]
    kept = json.loads((room["out"] / "secrets.json").read_text())["wall_secret"]
    assert secret_value(secret, signing["key"]) == kept and len(kept) >= 64 and kept not in room["printed"]

    assert env["KAFKA_SASL_USERNAME"]["value"] == "catdog-wall"
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "catdog-wall", "key": "password"}
    [user] = [u for u in by_kind(objects, "KafkaUser") if u["metadata"]["name"] == "catdog-wall"]
    assert acl_set(user) == {
        ("topic", "images", "literal"): {"Read", "Write"},
        ("topic", "predictions", "literal"): {"Read"},
        ("topic", "feedback", "literal"): {"Read", "Write"},
        ("topic", "wall-moderation", "literal"): {"Read", "Write"},
        ("topic", "challenge-submissions", "literal"): {"Read"},
        ("topic", "room-progress", "literal"): {"Read"},
    }
    # The challenge's submissions (every learner's verdicts) are read by the wall alone.
    assert [
        u["metadata"]["name"]
        for u in by_kind(objects, "KafkaUser")
        if acl_set(u).get(("topic", "challenge-submissions", "literal"), set()) & {"Read"}
    ] == ["catdog-wall"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["challenge"]["secret"] == {"secretName": "catdog-challenge", "optional": True}
    assert env["CATDOG_CHALLENGE_ANSWERS"]["value"].startswith(mounts["challenge"]["mountPath"] + "/")
    # The moderation topic (the room's code is on it) is the wall's alone: no other user may touch it.
    others = [u for u in by_kind(objects, "KafkaUser") if u["metadata"]["name"] != "catdog-wall"]
    assert not any(name == "wall-moderation" for u in others for (_, name, _) in acl_set(u))
    [moderation] = [t for t in by_kind(objects, "KafkaTopic") if t["metadata"]["name"] == "wall-moderation"]
    assert moderation["spec"]["config"]["cleanup.policy"] == "compact" and moderation["spec"]["partitions"] == 1
    [topic] = [t for t in by_kind(objects, "KafkaTopic") if t["metadata"]["name"] == "feedback"]
    assert topic["spec"]["config"]["cleanup.policy"] == "compact"

    for namespace in learner_namespaces(room["objects"]):
        [settings] = [
            c
            for c in by_kind(in_namespace(room["objects"], namespace), "ConfigMap")
            if c["metadata"]["name"] == "catdog-settings"
        ]
        assert settings["data"]["CATDOG_WALL_URL"] == "https://catdog-wall-catdog-room.apps.example.com"


ROUTER = {"namespaceSelector": {"matchLabels": {"network.openshift.io/policy-group": "ingress"}}}
MONITORING = {"namespaceSelector": {"matchLabels": {"network.openshift.io/policy-group": "monitoring"}}}
THE_ROOMS = {"namespaceSelector": {"matchLabels": {room_module.ROOM_LABEL: "catdog-room"}}}


def ingress_allowed(objects: list[dict]) -> set[tuple]:
    """Every ingress a NetworkPolicy of ``objects`` allows: (namespace, the pods' app name, from, port)."""
    allowed = set()
    for policy in by_kind(objects, "NetworkPolicy"):
        app = policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name", "every pod")
        for rule in policy["spec"].get("ingress", []):
            for peer in rule["from"]:
                for port in rule["ports"]:
                    allowed.add((policy["metadata"]["namespace"], app, json.dumps(peer, sort_keys=True), port["port"]))
    return allowed


def test_every_namespace_of_the_room_lets_in_exactly_what_the_room_needs(room, workbench_room):
    """Default-deny ingress in the room's namespace and every learner's, then the allows the room needs and
    no other: the router to each notebook and to the wall, monitoring and the learners' notebooks (notebook
    02) to the classifier's metrics. Kafka's TLS listener admits the room's pods and the learners' through
    the policy Strimzi writes from its networkPolicyPeers (test above); the metrics port is open to no
    other namespace."""
    for objects in (room["objects"], workbench_room["objects"]):
        namespaces = ["catdog-room", *learner_namespaces(objects)]
        for namespace in namespaces:
            denying = [
                p
                for p in in_namespace(by_kind(objects, "NetworkPolicy"), namespace)
                if p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"]
            ]
            assert len(denying) == 1 and "ingress" not in denying[0]["spec"], namespace
    expected = {
        ("catdog-room", "catdog-wall", json.dumps(ROUTER, sort_keys=True), 8080),
        ("catdog-room", "catdog-classifier", json.dumps(MONITORING, sort_keys=True), 8000),
        ("catdog-room", "catdog-classifier", json.dumps(THE_ROOMS, sort_keys=True), 8000),
    }
    expected |= {
        (namespace, "catdog-notebook", json.dumps(ROUTER, sort_keys=True), 8888)
        for namespace in learner_namespaces(room["objects"])
    }
    assert ingress_allowed(room["objects"]) == expected
    [classifier] = [
        d
        for d in in_namespace(by_kind(room["objects"], "Deployment"), "catdog-room")
        if d["metadata"]["name"] == "catdog-classifier"
    ]
    assert classifier["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "catdog-classifier"


def test_every_file_the_room_writes_is_its_owners_alone_even_in_a_folder_that_was_open(tmp_path):
    """Tokens, passwords, the CA key, the wall's code and secret: 0600 files in 0700 folders, whatever
    modes the folder and an earlier file had."""
    out = tmp_path / "room"
    (out / "room").mkdir(parents=True)
    out.chmod(0o755)
    (out / "room" / "wall-code.yaml").write_text("stale\n")
    (out / "room" / "wall-code.yaml").chmod(0o644)
    make_room(out, "--learners", "Ada,Bob")
    files = [path for path in out.rglob("*") if path.is_file()]
    folders = [out, *(path for path in out.rglob("*") if path.is_dir())]
    assert len(files) >= 12
    assert {oct(path.stat().st_mode & 0o777) for path in files} == {"0o600"}, files
    assert {oct(path.stat().st_mode & 0o777) for path in folders} == {"0o700"}, folders


def test_each_learner_may_send_at_a_rate_the_room_can_classify_and_the_photos_kept_are_bounded(room):
    """A learner's KafkaUser quotas (Strimzi's producerByteRate and consumerByteRate, per broker): 30
    learners sending at once stay under one classifier's measured rate (~44 photos of ~150 KB a second on 2
    CPUs, benchmarks/RESULTS.md): 30 x 128 KiB/s = 3.75 MiB/s. The images topic is bounded in bytes as well
    as in time, in segments small enough for retention to act near the bound."""
    measured_bytes_per_second = 44 * 150_000
    users = [u for u in by_kind(room["objects"], "KafkaUser") if u["metadata"]["name"].startswith("learner-")]
    assert len(users) == LEARNERS
    for user in users:
        assert user["spec"]["quotas"] == {"producerByteRate": 128 * 1024, "consumerByteRate": 1024 * 1024}
    assert LEARNERS * users[0]["spec"]["quotas"]["producerByteRate"] < measured_bytes_per_second
    others = {u["metadata"]["name"] for u in by_kind(room["objects"], "KafkaUser")} - {
        u["metadata"]["name"] for u in users
    }
    assert all(
        "quotas" not in u["spec"] for u in by_kind(room["objects"], "KafkaUser") if u["metadata"]["name"] in others
    )
    topics = {t["metadata"]["name"]: t for t in by_kind(room["objects"], "KafkaTopic")}
    images = topics["images"]["spec"]
    assert images["partitions"] * int(images["config"]["retention.bytes"]) <= 3 * 2**30
    assert int(images["config"]["segment.bytes"]) <= int(images["config"]["retention.bytes"]) // 10
    assert int(topics["images-dlq"]["spec"]["config"]["retention.bytes"]) <= 2**30
