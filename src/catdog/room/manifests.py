"""The room's manifests, rendered: the KafkaUsers with exactly the learners' ACLs and quotas, the Secrets,
the workbenches, each learner's namespace, and the kustomizations that tie them to deploy/openshift/room.
Every file is written readable by its owner only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from catdog.room.certificates import b64
from catdog.room.learners import (
    KAFKA_CLUSTER,
    LEARNER_KEYS_SECRET,
    LEARNER_LABEL,
    ROOM_LABEL,
    ROOM_NAMESPACE,
    THREE_NODES,
    WALL_SIGNER,
    Learner,
    wall_url,
)
from catdog.room.workbenches import workbench

# Each learner's Kafka byte rates (Strimzi's KafkaUser quotas, per broker). 30 learners sending at once add
# up to 30 x 128 KiB/s = 3.75 MiB/s: ~25 phone photos (~150 KB) a second, under the ~44 photos a second one
# classifier on 2 CPUs measured end to end (benchmarks/RESULTS.md), so a room flooding it cannot make the
# wait for anyone's photo grow without end. Reading (their photos back, results) is cheap and bursty: 1 MiB/s.
LEARNER_PRODUCE_BYTES_PER_SECOND = 128 * 1024
LEARNER_FETCH_BYTES_PER_SECOND = 1024 * 1024
PRIVATE_FILE, PRIVATE_FOLDER = 0o600, 0o700  # every file `catdog room` writes holds or sits beside secrets
# What the notebooks do on Kafka: send photos (and read one back), read results, say what a photo really
# is and retrain on the room's labels (notebook 04). Readers join no consumer group, so no group ACL;
# nothing may write results, delete topics or change configs.
# No Describe: Kafka implies it from Read or Write (and Delete, Alter), so it would be an ACL nothing needs.
LEARNER_ACLS = (
    ("topic", "images", ("Read", "Write")),
    ("topic", "predictions", ("Read",)),
    ("topic", "feedback", ("Read", "Write")),
    ("topic", "challenge", ("Read",)),  # the room's challenge photos; never the submissions (others' verdicts)
    ("topic", "challenge-submissions", ("Write",)),
    ("topic", "room-progress", ("Write",)),  # the lab reports to the instructor's board; never reads others'
)


def opaque_secret(
    name: str,
    string_data: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict:
    metadata: dict = {"name": name}
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    secret: dict = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque"}
    if data:
        secret["data"] = data
    if string_data:
        secret["stringData"] = string_data
    return secret


def cluster_ca_secrets(ca: dict[str, str]) -> list[dict]:
    """The two Secrets Strimzi reads a user-provided cluster CA from (``clusterCa.generateCertificateAuthority:
    false``): the certificate (and truststore), and the key, labelled and at generation 0."""
    labels = {"strimzi.io/kind": "Kafka", "strimzi.io/cluster": KAFKA_CLUSTER}
    return [
        opaque_secret(
            f"{KAFKA_CLUSTER}-cluster-ca-cert",
            labels=labels,
            annotations={"strimzi.io/ca-cert-generation": "0"},
            data={
                "ca.crt": b64(ca["crt"].encode()),
                "ca.p12": ca["p12"],
                "ca.password": b64(ca["p12_password"].encode()),
            },
        ),
        opaque_secret(
            f"{KAFKA_CLUSTER}-cluster-ca",
            labels=labels,
            annotations={"strimzi.io/ca-key-generation": "0"},
            data={"ca.key": b64(ca["key"].encode())},
        ),
    ]


def kafka_user(learner: Learner) -> dict:
    """The learner's KafkaUser (in the room's namespace): SCRAM-SHA-512 with the password from a Secret
    beside it, and exactly :data:`LEARNER_ACLS`."""
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": {
            "name": learner.kafka_user,
            "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, LEARNER_LABEL: learner.slug},
        },
        "spec": {
            "authentication": {
                "type": "scram-sha-512",
                "password": {
                    "valueFrom": {"secretKeyRef": {"name": f"{learner.kafka_user}-password", "key": "password"}}
                },
            },
            "authorization": {
                "type": "simple",
                "acls": [
                    {"resource": {"type": kind, "name": name, "patternType": "literal"}, "operations": list(operations)}
                    for kind, name, operations in LEARNER_ACLS
                ],
            },
            "quotas": {
                "producerByteRate": LEARNER_PRODUCE_BYTES_PER_SECOND,
                "consumerByteRate": LEARNER_FETCH_BYTES_PER_SECOND,
            },
        },
    }


def image_pullers(room: list[Learner]) -> dict:
    """Every learner namespace's service accounts may pull the room's image (and nothing else of it)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "catdog-image-pullers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:image-puller"},
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Group",
                "name": f"system:serviceaccounts:{learner.namespace}",
            }
            for learner in room
        ],
    }


def write_yaml(path: Path, documents: list[dict], comment: str = "") -> None:
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    write_private(path, header + yaml.safe_dump_all(documents, sort_keys=False))


def write_private(path: Path, text: str) -> None:
    """``text`` into ``path``, readable by its owner only, whatever the file's mode was before: the mode
    is set before a byte is written, so no secret is ever on disk readable by others."""
    path.touch(mode=PRIVATE_FILE)
    path.chmod(PRIVATE_FILE)
    path.write_text(text)


def private_folder(folder: Path) -> None:
    """``folder`` (made if missing) readable by its owner only, even if it existed with another mode."""
    folder.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    folder.chmod(PRIVATE_FOLDER)


def key_table(state: dict) -> dict:
    """The room's key table (catdog.identity): each learner's key under the name they send as, and the
    wall's, which signs for phones."""
    return {
        "learners": {entry["name"]: entry["signing_key"] for entry in state["learners"].values()},
        "relays": {WALL_SIGNER: state["wall_signing_key"]},
    }


def write_shared(room_dir: Path, state: dict, everyone: list[Learner], manifests: Path) -> None:
    """The room's shared part: deploy/openshift/room/shared, the wall's code, the Kafka CA, the KafkaUsers."""
    private_folder(room_dir)
    write_yaml(
        room_dir / "kustomization.yaml",
        [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": ROOM_NAMESPACE,
                "resources": [
                    os.path.relpath(manifests / "room" / "shared", room_dir),
                    "cluster-ca.yaml",
                    "wall-code.yaml",
                    "learners.yaml",
                    "learner-keys.yaml",
                ],
                **(
                    {"components": [os.path.relpath(manifests / THREE_NODES, room_dir)]}
                    if state["kafka_nodes"] == 3
                    else {}
                ),
            }
        ],
        "The room's shared part (deploy/openshift/room/shared) with what `catdog room` generated"
        + (", on three Kafka nodes." if state["kafka_nodes"] == 3 else "."),
    )
    write_yaml(
        room_dir / "wall-code.yaml",
        [
            opaque_secret("catdog-wall-code", {"code": state["room_code"]}),
            opaque_secret(
                "catdog-wall-secret", {"secret": state["wall_secret"], "signing-key": state["wall_signing_key"]}
            ),
            opaque_secret("catdog-wall-moderator", {"key": state["moderator_key"]}),
        ],
        "The room's code, generated by `catdog room`: the wall takes uploads only from browsers that give it;\n"
        "what signs their cookies and the photos and votes it relays for them, which no one outside the wall\n"
        "ever needs; the instructor's moderator key.",
    )
    write_yaml(
        room_dir / "learner-keys.yaml",
        [opaque_secret(LEARNER_KEYS_SECRET, {"keys.json": json.dumps(key_table(state), indent=1)})],
        "Every learner's signing key and the wall's: the classifier and the retraining believe a name on a\n"
        "photo or a vote only under its own key (catdog.identity). Never mounted in a learner's namespace.",
    )
    write_yaml(
        room_dir / "cluster-ca.yaml",
        cluster_ca_secrets(state["ca"]),
        "The room's Kafka cluster CA, generated by `catdog room`: Strimzi signs the brokers' certificates with it.",
    )
    documents: list[dict] = []
    for learner in everyone:
        documents.append(
            opaque_secret(
                f"{learner.kafka_user}-password",
                {"password": state["learners"][learner.slug]["password"]},
                labels={LEARNER_LABEL: learner.slug},
            )
        )
        documents.append(kafka_user(learner))
    documents.append(image_pullers(everyone))
    write_yaml(
        room_dir / "learners.yaml", documents, "Each learner's KafkaUser and its password; who may pull the image."
    )


def write_dashboard(dashboard: Path, everyone: list[Learner], manifests: Path, dashboard_namespace: str) -> None:
    """With --openshift-ai: the lab image listed in the dashboard's namespace, pullable by every learner."""
    private_folder(dashboard)
    write_yaml(
        dashboard / "kustomization.yaml",
        [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": dashboard_namespace,
                "resources": [os.path.relpath(manifests / "openshift-ai", dashboard), "pullers.yaml"],
            }
        ],
        "The lab image in the dashboard's namespace (deploy/openshift/openshift-ai).",
    )
    write_yaml(
        dashboard / "pullers.yaml",
        [image_pullers(everyone)],
        "The learners' workbenches pull the image through the dashboard's ImageStream.",
    )


def write_learner(
    folder: Path, learner: Learner, state: dict, manifests: Path, openshift_ai: bool, dashboard_namespace: str
) -> None:
    """One learner's namespace: deploy/openshift/room/learner (or a workbench), their settings and secrets."""
    private_folder(folder.parent)
    private_folder(folder)
    base, extra = ("workbench", ["workbench.yaml"]) if openshift_ai else ("learner", [])
    if openshift_ai:
        write_yaml(
            folder / "workbench.yaml",
            workbench(learner, dashboard_namespace, manifests),
            f"{learner.name}'s workbench, as the OpenShift AI dashboard writes one.",
        )
    settings = {
        "CATDOG_LEARNER": learner.name,
        "KAFKA_SASL_USERNAME": learner.kafka_user,
        **({"CATDOG_WALL_URL": wall_url(state["apps_domain"])} if state["apps_domain"] else {}),
    }
    write_yaml(
        folder / "kustomization.yaml",
        [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": learner.namespace,
                "resources": [
                    os.path.relpath(manifests / "room" / base, folder),
                    "namespace.yaml",
                    "secrets.yaml",
                    *extra,
                ],
                "patches": [
                    {
                        "patch": yaml.safe_dump(
                            {
                                "apiVersion": "v1",
                                "kind": "ConfigMap",
                                "metadata": {"name": "catdog-settings"},
                                "data": settings,
                            },
                            sort_keys=False,
                        )
                    }
                ],
            }
        ],
        f"{learner.name}'s lab: deploy/openshift/room/learner in {learner.namespace}.",
    )
    write_yaml(folder / "namespace.yaml", [_namespace(learner, openshift_ai)])
    entry = state["learners"][learner.slug]
    secrets_ = [
        opaque_secret("catdog-kafka-user", {"password": entry["password"], "signing-key": entry["signing_key"]}),
        opaque_secret("catdog-kafka-ca", {"ca.crt": state["ca"]["crt"]}),
    ]
    if not openshift_ai:  # a workbench has no token: the dashboard's OAuth proxy lets the learner in
        secrets_.insert(0, opaque_secret("catdog-notebook-token", {"token": entry["token"]}))
    write_yaml(
        folder / "secrets.yaml",
        secrets_,
        "Generated by `catdog room`: the JupyterLab token, the KafkaUser's password and the learner's signing key,\n"
        "the room's CA certificate.",
    )


def _namespace(learner: Learner, openshift_ai: bool) -> dict:
    labels = {ROOM_LABEL: ROOM_NAMESPACE, LEARNER_LABEL: learner.slug}
    namespace: dict = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": learner.namespace, "labels": labels},
    }
    if openshift_ai:  # a data science project, listed by the dashboard
        labels["opendatahub.io/dashboard"] = "true"
        namespace["metadata"]["annotations"] = {"openshift.io/display-name": f"catdog: {learner.name}"}
    return namespace
