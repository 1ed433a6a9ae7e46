"""A workshop room: one Kafka and one classifier for many learners, each in a namespace of their own.

``catdog room`` writes a folder that ``oc apply -k`` installs. It holds what must be generated rather
than kept in git: the room's Kafka cluster CA (Strimzi uses it instead of its own, so every learner's
namespace can trust it without reading the room's), and for each learner a JupyterLab token, a SCRAM
password (the same Secret in the room's namespace, where the KafkaUser reads it, and in the learner's,
where the notebook reads it), the KafkaUser with exactly the ACLs the notebooks and the challenge need,
and the right to pull the room's one image. The manifests themselves stay in deploy/openshift/room (kustomize bases the
folder points at), so `oc apply -k deploy/openshift` still installs a single learner's lab.

The secrets are kept in the folder's ``secrets.json``: running the command again (to add learners) keeps
every token and password already handed out. The folder carries a ``.gitignore`` of ``*``.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from catdog import CatdogError
from catdog.config import make_room_code
from catdog.identity import new_key

ROOM_NAMESPACE = "catdog-room"  # deploy/openshift/room/shared: one room per cluster
DASHBOARD_NAMESPACE = "redhat-ods-applications"  # OpenShift AI's; Open Data Hub's is `opendatahub`
WORKBENCH = "catdog"  # a learner's workbench (Notebook) name: JupyterLab is at /notebook/<project>/catdog
HOME_DIR = "/opt/app-root/src"  # the image's HOME: the workbench's volume, as the dashboard mounts it
KAFKA_CLUSTER = "catdog"  # the Kafka resource's name (deploy/openshift/base/kafka)
LEARNER_NAMESPACE_PREFIX = "catdog-"
KAFKA_USER_PREFIX = "learner-"
ROOM_LABEL = "catdog.io/room"  # on every learner namespace: the Kafka listener admits these
LEARNER_LABEL = "catdog.io/learner"
MAX_SLUG_CHARS = 40  # catdog-<slug> and learner-<slug>-password stay within Kubernetes' name limits
TOKEN_BYTES = 32
PASSWORD_BYTES = 24
CA_VALID_DAYS = 365  # Strimzi does not renew a CA it did not make: a year covers a season of workshops
CA_KEY_BITS = 4096  # as Strimzi's own cluster CA
# The room's Kafka: one node (its pod's restart keeps everything on its volume) or three (a node's loss too).
KAFKA_NODES = (1, 3)
THREE_NODES = "components/three-nodes"
WALL_SECRET_BYTES = 32  # signs the phones' cookies (CATDOG_WALL_SECRET)
LEARNER_KEYS_SECRET = "catdog-learner-keys"  # mounted by the classifier and the retraining
WALL_SIGNER = "catdog-wall"  # the wall's name in the key table: its Deployment's CATDOG_LEARNER
MODERATOR_KEY_BYTES = 18  # the instructor's key to the wall's moderator page (24 characters)
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
)


class RoomError(CatdogError, ValueError):
    """The room cannot be written as asked (a bad name, a clash, no manifests)."""


@dataclass(frozen=True)
class Learner:
    name: str  # as the instructor wrote it: shown on results (CATDOG_LEARNER)
    slug: str  # the same as a DNS label: namespace, KafkaUser

    @property
    def namespace(self) -> str:
        return LEARNER_NAMESPACE_PREFIX + self.slug

    @property
    def kafka_user(self) -> str:
        return KAFKA_USER_PREFIX + self.slug


def slug(name: str) -> str:
    """A learner's name as a DNS label: lower case, letters and digits, single dashes."""
    text = re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")[:MAX_SLUG_CHARS].rstrip("-")
    if not text:
        raise RoomError(f"learner name {name!r} has no letters or digits to make a namespace from")
    return text


def learners(names: list[str] | None = None, count: int | None = None, prefix: str = "learner") -> list[Learner]:
    """The room's learners: the given names, or ``prefix-01`` … ``prefix-NN`` for a count."""
    if names is None:
        if not count or count < 1:
            raise RoomError("give the learners' names or a count of at least 1")
        width = max(2, len(str(count)))
        names = [f"{prefix}-{index:0{width}d}" for index in range(1, count + 1)]
    result, seen = [], {}
    for name in (n.strip() for n in names):
        if not name:
            continue
        learner = Learner(name, slug(name))
        if learner.slug in seen:
            raise RoomError(f"{name!r} and {seen[learner.slug]!r} make the same namespace {learner.namespace}")
        seen[learner.slug] = name
        result.append(learner)
    if not result:
        raise RoomError("no learner names given")
    return result


def make_ca(common_name: str = "catdog room cluster CA", days: int = CA_VALID_DAYS) -> dict[str, str]:
    """A self-signed CA for the room's Kafka cluster: PEM certificate and key, and the PKCS #12 truststore
    (with its password) that Strimzi keeps beside the certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=CA_KEY_BITS)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "catdog"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    p12_password = secrets.token_urlsafe(PASSWORD_BYTES)
    truststore = pkcs12.serialize_java_truststore(
        [pkcs12.PKCS12Certificate(certificate, b"ca.crt")], serialization.BestAvailableEncryption(p12_password.encode())
    )
    return {
        "crt": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "p12": _b64(truststore),
        "p12_password": p12_password,
    }


def server_certificate(ca: dict[str, str], hosts: list[str], days: int = CA_VALID_DAYS) -> tuple[str, str]:
    """A broker certificate for ``hosts`` (DNS names or IP addresses) signed by the room's CA, as Strimzi
    signs its brokers' with it: (PEM certificate, PEM key). For a secured broker outside Strimzi (the
    tests' and `make lab-secure`'s), which clients then trust exactly as they trust the room's Kafka."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    issuer = x509.load_pem_x509_certificate(ca["crt"].encode())
    ca_key = serialization.load_pem_private_key(ca["key"].encode(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())

    def name(host: str) -> x509.GeneralName:
        try:
            return x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            return x509.DNSName(host)

    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([name(host) for host in hosts]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _secret(
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
        _secret(
            f"{KAFKA_CLUSTER}-cluster-ca-cert",
            labels=labels,
            annotations={"strimzi.io/ca-cert-generation": "0"},
            data={
                "ca.crt": _b64(ca["crt"].encode()),
                "ca.p12": ca["p12"],
                "ca.password": _b64(ca["p12_password"].encode()),
            },
        ),
        _secret(
            f"{KAFKA_CLUSTER}-cluster-ca",
            labels=labels,
            annotations={"strimzi.io/ca-key-generation": "0"},
            data={"ca.key": _b64(ca["key"].encode())},
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


def _notebook_container(manifests: Path) -> dict:
    """The notebook container of deploy/openshift/base/notebook: one place for its size and probes' port."""
    deployment = yaml.safe_load((manifests / "base" / "notebook" / "deployment.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _workbench_container(base_url: str, image: str, manifests: Path) -> dict:
    """The workbench's one container: JupyterLab as the dashboard starts it, the room's settings and Secrets."""
    container = _notebook_container(manifests)
    probe = {
        "httpGet": {"path": f"{base_url}/api", "port": "notebook-port", "scheme": "HTTP"},
        "initialDelaySeconds": 10,
        "periodSeconds": 5,
        "timeoutSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    args = [
        "--ServerApp.port=8888",
        "--ServerApp.token=''",
        "--ServerApp.password=''",
        f"--ServerApp.base_url={base_url}",
        "--ServerApp.quit_button=False",
    ]
    return {
        "name": WORKBENCH,  # the controller finds the notebook container by the Notebook's name
        "image": image,
        "imagePullPolicy": "Always",
        "workingDir": HOME_DIR,
        "env": [
            {"name": "NOTEBOOK_ARGS", "value": "\n".join(args)},
            {"name": "JUPYTER_IMAGE", "value": image},
            {
                "name": "KAFKA_SASL_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "catdog-kafka-user", "key": "password"}},
            },
            {
                "name": "CATDOG_LEARNER_KEY",
                "valueFrom": {"secretKeyRef": {"name": "catdog-kafka-user", "key": "signing-key"}},
            },
        ],
        "envFrom": [{"configMapRef": {"name": "catdog-settings"}}],
        "ports": [{"name": "notebook-port", "containerPort": 8888, "protocol": "TCP"}],
        "resources": container["resources"],
        "livenessProbe": probe,
        "readinessProbe": probe,
        "volumeMounts": [
            {"name": WORKBENCH, "mountPath": HOME_DIR},
            {"name": "kafka-ca", "mountPath": "/etc/catdog/kafka-ca", "readOnly": True},
        ],
    }


def workbench(learner: Learner, dashboard_namespace: str, manifests: Path) -> list[dict]:
    """A learner's workbench as the OpenShift AI dashboard writes one (a kubeflow.org Notebook in the data
    science project, its HOME volume): the dashboard's ImageStream, the dashboard's JupyterLab options
    (base URL /notebook/<project>/<name>, no token: its OAuth proxy guards it), probes on <base URL>/api,
    the room's settings and the learner's Kafka password and CA."""
    base_url = f"/notebook/{learner.namespace}/{WORKBENCH}"
    image = f"image-registry.openshift-image-registry.svc:5000/{dashboard_namespace}/catdog:latest"
    notebook = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "Notebook",
        "metadata": {
            "name": WORKBENCH,
            "labels": {"app": WORKBENCH, "opendatahub.io/dashboard": "true", "opendatahub.io/odh-managed": "true"},
            "annotations": {
                "notebooks.opendatahub.io/inject-oauth": "true",
                "notebooks.opendatahub.io/last-image-selection": "catdog:latest",
                "opendatahub.io/image-display-name": "catdog lab",
                "openshift.io/display-name": f"catdog lab ({learner.name})",
            },
        },
        "spec": {
            "template": {
                "spec": {
                    "enableServiceLinks": False,
                    "containers": [_workbench_container(base_url, image, manifests)],
                    "volumes": [
                        {"name": WORKBENCH, "persistentVolumeClaim": {"claimName": WORKBENCH}},
                        {"name": "kafka-ca", "secret": {"secretName": "catdog-kafka-ca"}},
                    ],
                }
            }
        },
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": WORKBENCH,
            "labels": {"opendatahub.io/dashboard": "true"},
            "annotations": {"openshift.io/display-name": WORKBENCH},
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
    }
    return [claim, notebook]


def _dump(path: Path, documents: list[dict], comment: str = "") -> None:
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    _write_private(path, header + yaml.safe_dump_all(documents, sort_keys=False))


def _write_private(path: Path, text: str) -> None:
    """``text`` into ``path``, readable by its owner only, whatever the file's mode was before: the mode
    is set before a byte is written, so no secret is ever on disk readable by others."""
    path.touch(mode=PRIVATE_FILE)
    path.chmod(PRIVATE_FILE)
    path.write_text(text)


def _private_folder(folder: Path) -> None:
    """``folder`` (made if missing) readable by its owner only, even if it existed with another mode."""
    folder.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    folder.chmod(PRIVATE_FOLDER)


SECRETS_FILE = "secrets.json"


def read_room(folder: Path) -> dict:
    """The secrets of a room folder ``catdog room`` wrote (``catdog doctor --room`` checks them)."""
    state_file = folder / SECRETS_FILE
    if not state_file.is_file():
        raise RoomError(f"{state_file} is missing: --room takes the folder `catdog room --out` wrote")
    return json.loads(state_file.read_text())


def _load_state(out: Path) -> dict:
    return read_room(out) if (out / SECRETS_FILE).exists() else {}


def _save_state(out: Path, state: dict) -> None:
    _write_private(out / SECRETS_FILE, json.dumps(state, indent=1) + "\n")


def wall_url(apps_domain: str | None) -> str | None:
    """The wall's address: its Route's default host on the cluster's apps domain."""
    return f"https://catdog-wall-{ROOM_NAMESPACE}.{apps_domain}" if apps_domain else None


def write_room(
    out: Path,
    room: list[Learner],
    manifests: Path,
    openshift_ai: bool = False,
    dashboard_namespace: str = DASHBOARD_NAMESPACE,
    apps_domain: str | None = None,
    kafka_nodes: int | None = None,
) -> dict:
    """Write (or add to) the room's folder; returns its secrets (``ca``, ``room_code``, and per learner
    slug its ``name``, ``token`` and ``password``). Learners already in the folder keep their token and
    password, the room its code. With ``openshift_ai``, each learner gets a data science project with a
    workbench instead of a plain notebook Deployment, and the image is listed in the dashboard's
    namespace. ``apps_domain`` (kept for later runs) gives the learners' settings the wall's address.
    ``kafka_nodes`` (1 or 3, kept for later runs; 1 the first time): the room's Kafka nodes."""
    manifests = manifests.resolve()
    if kafka_nodes not in (None, *KAFKA_NODES):
        raise RoomError(
            f"--kafka-nodes {kafka_nodes}: a room's Kafka runs on {' or '.join(map(str, KAFKA_NODES))} nodes"
        )
    for base in ("room/shared", "room/learner", "room/workbench", "openshift-ai", THREE_NODES):
        if not (manifests / base / "kustomization.yaml").is_file():
            raise RoomError(f"{manifests / base} has no kustomization.yaml: give --manifests deploy/openshift")
    _private_folder(out)
    _write_private(out / ".gitignore", "# Tokens, passwords and the room's CA key: never in git.\n*\n")
    state = _room_state(out, room, openshift_ai, apps_domain)
    state["kafka_nodes"] = kafka_nodes or state.get("kafka_nodes") or KAFKA_NODES[0]
    _save_state(out, state)
    everyone = [Learner(entry["name"], slug_) for slug_, entry in sorted(state["learners"].items())]
    _write_shared(out / "room", state, everyone, manifests)
    if openshift_ai:
        _write_dashboard(out / "openshift-ai", everyone, manifests, dashboard_namespace)
    for learner in everyone:
        _write_learner(out / "learners" / learner.slug, learner, state, manifests, openshift_ai, dashboard_namespace)
    _dump(
        out / "kustomization.yaml",
        [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [
                    "room",
                    *(["openshift-ai"] if openshift_ai else []),
                    *(f"learners/{learner.slug}" for learner in everyone),
                ],
            }
        ],
        "The whole room: oc apply -k this folder.",
    )
    return state


def _room_state(out: Path, room: list[Learner], openshift_ai: bool, apps_domain: str | None) -> dict:
    """The folder's secrets with ``room`` added (new learners get a token and a password), saved."""
    state = _load_state(out)
    if state and state.get("openshift_ai", False) != openshift_ai:
        raise RoomError(
            f"{out} holds a room {'with' if state.get('openshift_ai') else 'without'} --openshift-ai: "
            "add learners the same way, or write a new folder"
        )
    state["openshift_ai"] = openshift_ai
    state["ca"] = state.get("ca") or make_ca()
    state["room_code"] = state.get("room_code") or make_room_code()
    state["wall_secret"] = state.get("wall_secret") or secrets.token_hex(WALL_SECRET_BYTES)
    state["moderator_key"] = state.get("moderator_key") or secrets.token_urlsafe(MODERATOR_KEY_BYTES)
    state["wall_signing_key"] = state.get("wall_signing_key") or new_key()
    state["apps_domain"] = apps_domain or state.get("apps_domain")
    known = state.setdefault("learners", {})
    for learner in room:
        entry = known.setdefault(
            learner.slug, {"token": secrets.token_hex(TOKEN_BYTES), "password": secrets.token_urlsafe(PASSWORD_BYTES)}
        )
        entry["name"] = learner.name
        entry.setdefault("signing_key", new_key())  # what names them on results and votes (catdog.identity)
    _save_state(out, state)
    return state


def key_table(state: dict) -> dict:
    """The room's key table (catdog.identity): each learner's key under the name they send as, and the
    wall's, which signs for phones."""
    return {
        "learners": {entry["name"]: entry["signing_key"] for entry in state["learners"].values()},
        "relays": {WALL_SIGNER: state["wall_signing_key"]},
    }


def _write_shared(room_dir: Path, state: dict, everyone: list[Learner], manifests: Path) -> None:
    """The room's shared part: deploy/openshift/room/shared, the wall's code, the Kafka CA, the KafkaUsers."""
    _private_folder(room_dir)
    _dump(
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
    _dump(
        room_dir / "wall-code.yaml",
        [
            _secret("catdog-wall-code", {"code": state["room_code"]}),
            _secret("catdog-wall-secret", {"secret": state["wall_secret"], "signing-key": state["wall_signing_key"]}),
            _secret("catdog-wall-moderator", {"key": state["moderator_key"]}),
        ],
        "The room's code, generated by `catdog room`: the wall takes uploads only from browsers that give it;\n"
        "what signs their cookies and the photos and votes it relays for them, which no one outside the wall\n"
        "ever needs; the instructor's moderator key.",
    )
    _dump(
        room_dir / "learner-keys.yaml",
        [_secret(LEARNER_KEYS_SECRET, {"keys.json": json.dumps(key_table(state), indent=1)})],
        "Every learner's signing key and the wall's: the classifier and the retraining believe a name on a\n"
        "photo or a vote only under its own key (catdog.identity). Never mounted in a learner's namespace.",
    )
    _dump(
        room_dir / "cluster-ca.yaml",
        cluster_ca_secrets(state["ca"]),
        "The room's Kafka cluster CA, generated by `catdog room`: Strimzi signs the brokers' certificates with it.",
    )
    documents: list[dict] = []
    for learner in everyone:
        documents.append(
            _secret(
                f"{learner.kafka_user}-password",
                {"password": state["learners"][learner.slug]["password"]},
                labels={LEARNER_LABEL: learner.slug},
            )
        )
        documents.append(kafka_user(learner))
    documents.append(image_pullers(everyone))
    _dump(room_dir / "learners.yaml", documents, "Each learner's KafkaUser and its password; who may pull the image.")


def _write_dashboard(dashboard: Path, everyone: list[Learner], manifests: Path, dashboard_namespace: str) -> None:
    """With --openshift-ai: the lab image listed in the dashboard's namespace, pullable by every learner."""
    _private_folder(dashboard)
    _dump(
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
    _dump(
        dashboard / "pullers.yaml",
        [image_pullers(everyone)],
        "The learners' workbenches pull the image through the dashboard's ImageStream.",
    )


def _write_learner(
    folder: Path, learner: Learner, state: dict, manifests: Path, openshift_ai: bool, dashboard_namespace: str
) -> None:
    """One learner's namespace: deploy/openshift/room/learner (or a workbench), their settings and secrets."""
    _private_folder(folder.parent)
    _private_folder(folder)
    base, extra = ("workbench", ["workbench.yaml"]) if openshift_ai else ("learner", [])
    if openshift_ai:
        _dump(
            folder / "workbench.yaml",
            workbench(learner, dashboard_namespace, manifests),
            f"{learner.name}'s workbench, as the OpenShift AI dashboard writes one.",
        )
    settings = {
        "CATDOG_LEARNER": learner.name,
        "KAFKA_SASL_USERNAME": learner.kafka_user,
        **({"CATDOG_WALL_URL": wall_url(state["apps_domain"])} if state["apps_domain"] else {}),
    }
    _dump(
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
    _dump(folder / "namespace.yaml", [_namespace(learner, openshift_ai)])
    entry = state["learners"][learner.slug]
    secrets_ = [
        _secret("catdog-kafka-user", {"password": entry["password"], "signing-key": entry["signing_key"]}),
        _secret("catdog-kafka-ca", {"ca.crt": state["ca"]["crt"]}),
    ]
    if not openshift_ai:  # a workbench has no token: the dashboard's OAuth proxy lets the learner in
        secrets_.insert(0, _secret("catdog-notebook-token", {"token": entry["token"]}))
    _dump(
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


def workbench_url(learner: Learner, apps_domain: str | None, dashboard_namespace: str = DASHBOARD_NAMESPACE) -> str:
    """Where a learner finds their workbench: the dashboard's page of their project (it opens JupyterLab
    after the learner logs in with their OpenShift account)."""
    if not apps_domain:
        return f"(the dashboard) → Data science projects → {learner.namespace}"
    route = "odh-dashboard" if dashboard_namespace == "opendatahub" else "rhods-dashboard"
    return f"https://{route}-{dashboard_namespace}.{apps_domain}/projects/{learner.namespace}"


def lab_url(learner: Learner, token: str, apps_domain: str | None) -> str:
    """The learner's JupyterLab address with its token: the Route's default host on the cluster's apps
    domain (``oc get ingresses.config cluster -o jsonpath='{.spec.domain}'``)."""
    if not apps_domain:
        return f"(oc get route catdog-notebook -n {learner.namespace})/lab?token={token}"
    return f"https://catdog-notebook-{learner.namespace}.{apps_domain}/lab?token={token}"


__all__ = [
    "Learner",
    "RoomError",
    "LEARNER_ACLS",
    "lab_url",
    "learners",
    "make_ca",
    "make_room_code",
    "read_room",
    "slug",
    "wall_url",
    "write_room",
]
