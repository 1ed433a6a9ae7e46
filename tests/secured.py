"""The room's Kafka as a broker that enforces it: kfake (../shared/tools/kfake, franz-go's fake cluster) with
TLS from a certificate the room's own CA signed, SCRAM-SHA-512 logins for every KafkaUser of the rendered
room (the learners' passwords as `catdog room` wrote them, the services' generated as Strimzi's User
Operator generates them), the rendered KafkaTopics, and exactly the ACL bindings the User Operator would
create from the rendered KafkaUsers (catdog.acls). Read kfake's README for where it differs from Apache
Kafka before reading a failure (a failed login closes the connection; quotas are not enforced)."""

from __future__ import annotations

import base64
import dataclasses
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from catdog import acls
from catdog.room.certificates import server_certificate
from catdog.room.folder import read_room

SHARED = Path(os.environ.get("CATDOG_SHARED") or Path(__file__).resolve().parents[2] / "shared").resolve()
KFAKE = SHARED / "tools" / "kfake" / "kfake-broker"
SUPERUSER = "room-admin"  # stands in for the Topic and User Operators: makes topics and ACLs, nothing else


def secret_value(secret: dict, key: str) -> str:
    if key in secret.get("stringData", {}):
        return secret["stringData"][key]
    return base64.b64decode(secret["data"][key]).decode()


def scram_passwords(objects: list[dict], written: list[dict] = ()) -> dict[str, str]:
    """Each SCRAM KafkaUser's password: from the Secret its spec names (the learners', written by `catdog
    room`), else from ``written`` (the Secret the User Operator writes, named for the user, key password),
    else generated, as the User Operator generates one for a user that names none."""
    secrets_ = {
        (s["metadata"].get("namespace"), s["metadata"]["name"]): s
        for s in [*objects, *written]
        if s["kind"] == "Secret"
    }
    passwords = {}
    for user in (o for o in objects if o["kind"] == "KafkaUser"):
        namespace, name = user["metadata"].get("namespace"), user["metadata"]["name"]
        authentication = user["spec"].get("authentication") or {}
        if authentication.get("type") != "scram-sha-512":
            continue  # the laptop's TLS user: kfake has no client-certificate principals
        ref = (authentication.get("password") or {}).get("valueFrom", {}).get("secretKeyRef")
        if ref:
            passwords[name] = secret_value(secrets_[namespace, ref["name"]], ref["key"])
        elif (namespace, name) in secrets_:
            passwords[name] = secret_value(secrets_[namespace, name], "password")
        else:
            passwords[name] = secrets.token_urlsafe(24)
    return passwords


@dataclass
class SecuredKafka:
    """A running enforcing broker for a rendered room, and how each of its users connects."""

    bootstrap: str
    ca_file: Path
    passwords: dict[str, str]
    superuser_password: str
    process: subprocess.Popen
    bindings: list[acls.Binding] = field(default_factory=list)

    def env(self, user: str) -> dict[str, str]:
        """A `catdog` process's settings as ``user``: the rendered SASL_SSL settings, this broker's address
        and the CA file's path."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": self.passwords[user],
            "KAFKA_SSL_CAFILE": str(self.ca_file),
        }

    def confluent(self, user: str | None = None, **extra) -> dict:
        """librdkafka's settings as ``user`` (default: the superuser)."""
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user or SUPERUSER,
            "sasl.password": self.passwords[user] if user else self.superuser_password,
            "ssl.ca.location": str(self.ca_file),
            "log_level": 4,
            **extra,
        }  # no telemetry chatter

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_kfake(
    ca: dict[str, str],
    hosts: list[str],
    passwords: dict[str, str],
    work: Path,
    connect: str = "localhost",
    command: list[str] | None = None,
    port: int = 0,
) -> SecuredKafka:
    """kfake with TLS from a certificate the room's CA (``ca``, as `catdog room` keeps it) signed for ``hosts``,
    a superuser, and ``passwords``' users. ``command``: how to run the binary (default: here, on a free port on
    127.0.0.1; the played room runs it in a container, see tests/test_image.py); ``connect``: the host clients
    here reach it by."""
    work.mkdir(parents=True, exist_ok=True)
    certificate, key = server_certificate(ca, hosts)
    (work / "broker.crt").write_text(certificate)
    (work / "broker.key").write_text(key)
    ca_file = work / "ca.crt"
    ca_file.write_text(ca["crt"])
    superuser_password = secrets.token_urlsafe(24)
    arguments = [
        "-port",
        str(port),
        "-cert",
        str(work / "broker.crt"),
        "-key",
        str(work / "broker.key"),
        "-superuser",
        f"{SUPERUSER}:{superuser_password}",
        "-users",
        ",".join(f"{name}:{password}" for name, password in passwords.items()),
    ]
    process = subprocess.Popen(
        [*(command or [str(KFAKE)]), *arguments],
        stdout=subprocess.PIPE,
        stderr=open(work / "kfake.log", "wb"),
        text=True,
    )
    address = process.stdout.readline().strip()
    assert address, f"kfake printed no address: {(work / 'kfake.log').read_text()}"
    return SecuredKafka(f"{connect}:{address.rsplit(':', 1)[1]}", ca_file, passwords, superuser_password, process)


def start_secured_kafka(room_dir: Path, objects: list[dict], work: Path) -> SecuredKafka:
    """kfake for the room written in ``room_dir`` and rendered as ``objects``, with its topics and ACLs made."""
    kafka = start_kfake(read_room(room_dir)["ca"], ["localhost", "127.0.0.1"], scram_passwords(objects), work)
    secure(kafka, objects)
    return kafka


def secure(kafka: SecuredKafka, objects: list[dict], principal_of: dict[str, str] | None = None) -> None:
    """What Strimzi's operators make on the room's Kafka: the rendered KafkaTopics and every KafkaUser's ACLs
    (``principal_of``: a principal to grant a user's ACLs to instead of its own)."""
    make_topics(kafka, [o for o in objects if o["kind"] == "KafkaTopic"])
    kafka.bindings = [
        dataclasses.replace(binding, principal=(principal_of or {}).get(binding.principal, binding.principal))
        for user in objects
        if user["kind"] == "KafkaUser"
        for binding in acls.bindings(user)
    ]
    create_acls(kafka, kafka.bindings)


def make_topics(kafka: SecuredKafka, topics: list[dict]) -> None:
    """The rendered KafkaTopics, as the Topic Operator makes them (through librdkafka: kafka-python cannot
    read kfake's answer to a CreateTopics with configs)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(kafka.confluent())
    wanted = [
        NewTopic(
            topic["spec"].get("topicName") or topic["metadata"]["name"],
            topic["spec"].get("partitions", 1),
            replication_factor=1,
            config={k: str(v) for k, v in (topic["spec"].get("config") or {}).items()},
        )
        for topic in topics
    ]
    for future in admin.create_topics(wanted, request_timeout=15).values():
        future.result(15)


def acl_binding(binding: acls.Binding):
    """A catdog.acls binding as librdkafka's AclBinding."""
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    return AclBinding(
        ResourceType[binding.resource_type],
        binding.name,
        ResourcePatternType[binding.pattern],
        binding.principal,
        binding.host,
        AclOperation[binding.operation],
        AclPermissionType[binding.permission],
    )


def create_acls(kafka: SecuredKafka, bindings: list[acls.Binding]) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(kafka.confluent())  # held until the answers came: a dropped client cancels them
    for future in admin.create_acls([acl_binding(b) for b in bindings], request_timeout=15).values():
        future.result(15)


def delete_acls(kafka: SecuredKafka, bindings: list[acls.Binding]) -> None:
    from confluent_kafka.admin import AclBindingFilter, AdminClient

    admin = AdminClient(kafka.confluent())
    filters = [
        AclBindingFilter(
            *[
                getattr(acl_binding(b), field)
                for field in (
                    "restype",
                    "name",
                    "resource_pattern_type",
                    "principal",
                    "host",
                    "operation",
                    "permission_type",
                )
            ]
        )
        for b in bindings
    ]
    for future in admin.delete_acls(filters, request_timeout=15).values():
        future.result(15)


def pod_spec(workload: dict) -> dict:
    spec = workload["spec"]
    return (spec.get("jobTemplate", {}).get("spec") or spec)["template"]["spec"]


def rendered_env(
    objects: list[dict], kind: str, name: str, kafka: SecuredKafka, files: Path, namespace: str | None = None
) -> dict[str, str]:
    """A rendered workload's first container's environment, as the kubelet would give it: its ConfigMaps,
    its values, its Secrets' values (those the User Operator writes from this broker's passwords), and
    its mounted Secrets as files under ``files``. Only the bootstrap address and file paths differ."""
    [workload] = [
        o
        for o in objects
        if o["kind"] == kind and o["metadata"]["name"] == name and namespace in (None, o["metadata"].get("namespace"))
    ]
    namespace, spec = workload["metadata"].get("namespace"), pod_spec(workload)
    container = spec["containers"][0]
    mine = {(o["kind"], o["metadata"]["name"]): o for o in objects if o["metadata"].get("namespace") == namespace}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(mine["ConfigMap", source["configMapRef"]["name"]]["data"])
    mounts = {}
    for mount in container.get("volumeMounts", []):
        [volume] = [v for v in spec.get("volumes", []) if v["name"] == mount["name"]]
        if "secret" in volume:
            folder = files / (namespace or "") / name / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            mounts[mount["mountPath"]] = folder
            if volume["secret"].get("optional") and ("Secret", volume["secret"]["secretName"]) not in mine:
                continue  # the kubelet mounts an optional Secret that is not there as an empty folder
            secret = mine["Secret", volume["secret"]["secretName"]]
            items = volume["secret"].get("items") or [
                {"key": key, "path": key} for key in {**secret.get("data", {}), **secret.get("stringData", {})}
            ]
            for item in items:
                (folder / item["path"]).write_text(secret_value(secret, item["key"]))
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            secret = mine.get(("Secret", ref["name"]))
            env[variable["name"]] = secret_value(secret, ref["key"]) if secret else kafka.passwords[ref["name"]]
    for key, value in env.items():
        for path, folder in mounts.items():
            if value.startswith(path + "/"):
                env[key] = str(folder / value[len(path) + 1 :])
    return {**env, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap}


# What a process of the room needs of a workload's rendered settings outside the cluster (`make lab-secure`):
# how to reach and log in to Kafka, its topics and group, and who it signs as; not its pod's ports, folders
# and in-cluster addresses.
LAB_SETTINGS = (
    "KAFKA_",
    "CATDOG_LEARNER",
    "CATDOG_GROUP_ID",
    "CATDOG_IMAGES_TOPIC",
    "CATDOG_PREDICTIONS_TOPIC",
    "CATDOG_DLQ_TOPIC",
    "CATDOG_FEEDBACK_TOPIC",
    "CATDOG_MODERATION_TOPIC",
)
LAB_WORKLOADS = {
    "classifier": ("Deployment", "catdog-classifier"),
    "wall": ("Deployment", "catdog-wall"),
    "learner": ("Deployment", "catdog-notebook"),
}


def lab_env_files(objects: list[dict], kafka: SecuredKafka, out: Path) -> list[Path]:
    """One file of `export` lines per process of `make lab-secure` (the classifier, the wall, the first
    learner's notebook): each workload's rendered settings that matter outside the cluster, at this broker."""
    import shlex

    written = []
    for who, (kind, name) in LAB_WORKLOADS.items():
        env = rendered_env(objects, kind, name, kafka, out / "files")
        lines = [
            f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items()) if key.startswith(LAB_SETTINGS)
        ]
        (out / f"{who}.env").write_text("\n".join(lines) + "\n")
        written.append(out / f"{who}.env")
    return written


def main() -> None:
    """`make lab-secure`'s Kafka: the enforcing broker for a room folder (`catdog room` wrote it), on a port
    here, with an env file per process; runs until SIGTERM or SIGINT."""
    import argparse
    import shutil
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--room", type=Path, required=True, help="the folder `catdog room` wrote")
    parser.add_argument("--out", type=Path, required=True, help="where the env files, certificate and log go")
    parser.add_argument("--port", type=int, default=9093)
    args = parser.parse_args()
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise SystemExit("kubectl is not installed (it comes from requirements-dev.txt: make venv)")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(args.room)], capture_output=True, text=True, timeout=120, check=True
    )
    import yaml

    objects = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    learners = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "catdog-notebook"]
    objects = [o for o in objects if o not in learners[1:]]  # the first learner's lab
    kafka = start_kfake(
        read_room(args.room)["ca"],
        ["localhost", "127.0.0.1"],
        scram_passwords(objects),
        args.out,
        connect="127.0.0.1",
        port=args.port,
    )
    secure(kafka, objects)
    lab_env_files(objects, kafka, args.out)
    print(
        f"secured Kafka at {kafka.bootstrap} (TLS from the room's CA, SCRAM, the room's ACLs); env files in {args.out}",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: kafka.stop())
    try:
        kafka.process.wait()
    except KeyboardInterrupt:
        kafka.stop()


if __name__ == "__main__":
    main()
