"""The rendered manifests as pods: `podman kube play` reads the Deployments, ConfigMaps and PVCs that
`kubectl kustomize` renders, and the CI image stands in for the build. What a cluster would add around
them (its DNS, the restricted SCC's UID, a volume's fsGroup, the Secret the token Job writes through the
API server) is added here, each change named; what podman cannot honour is listed in UNHONOURED, with why
skipping it is safe."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
from pathlib import Path

import yaml

PLAYED_KINDS = {"Deployment", "ConfigMap", "PersistentVolumeClaim"}
# What the manifests say that podman 4.3 does not do, and why the test may go without it.
UNHONOURED = {
    "Route, Service": "not podman kinds: each container port is published on the host (kube play does), and "
                      "Service names resolve through hostAliases to the pod that serves them (cluster DNS)",
    "liveness/readiness/startup probes": "podman runs liveness probes as systemd timers (none here) and has no "
                                         "readiness or startup probes: the test GETs every httpGet probe's path "
                                         "and port from outside, as the kubelet would",
    "Secret (kind)": "podman 4.3 stores a played Secret as YAML but reads secretKeyRef as JSON (podman#16623): "
                     "each is created with `podman secret create` from the Secret's data, as JSON",
    "Job catdog-notebook-token, its ServiceAccount, Role, RoleBinding": "the Job writes the token Secret through "
                                                                        "the API server: the test writes that "
                                                                        "Secret (its name and key) instead",
    "Kafka, KafkaNodePool, KafkaTopic, KafkaUser": "Strimzi's: the embedded broker stands in at the bootstrap "
                                                  "Service's name and port, each KafkaTopic created on it with "
                                                  "its partitions (its config: the broker keeps none)",
    "BuildConfig, ImageStream": "the CI-built image is tagged as the ImageStream's catdog:latest",
    "runAsUser from the namespace's range, fsGroup": "set here: a random UID in group 0 (restricted SCC) and "
                                                     "the PVCs owned by it (the fsGroup's effect)",
    "resources": "the CPU and memory limits are passed to podman as written",
}


def render(kubectl: str, directory: Path) -> list[dict]:
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120,
                            check=True)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def bootstrap_address(objects: list[dict]) -> tuple[str, int]:
    """Where Strimzi serves the Kafka cluster inside the namespace (host, port): its bootstrap Service,
    `<cluster>-kafka-bootstrap`, on the plain internal listener's port. From the Kafka resource, not from
    the settings: a ConfigMap naming anything else finds no broker, as on the cluster."""
    [kafka] = [o for o in objects if o["kind"] == "Kafka"]
    [plain] = [listener for listener in kafka["spec"]["kafka"]["listeners"]
               if listener["type"] == "internal" and not listener.get("tls")]
    return f"{kafka['metadata']['name']}-kafka-bootstrap", int(plain["port"])


def playable(objects: list[dict], uid: int, addresses: dict[str, str]) -> list[dict]:
    """The workload objects as podman plays them: every Deployment as a random UID in group 0 with the
    cluster's names (``addresses``: name -> IP) in its hosts file, every PVC owned by that UID."""
    played = []
    for original in objects:
        if original["kind"] not in PLAYED_KINDS:
            continue
        obj = copy.deepcopy(original)
        if obj["kind"] == "PersistentVolumeClaim":
            obj["metadata"].setdefault("annotations", {}).update(
                {"volume.podman.io/uid": str(uid), "volume.podman.io/gid": "0"})
        if obj["kind"] == "Deployment":
            pod = obj["spec"]["template"]["spec"]
            pod.setdefault("securityContext", {}).update({"runAsUser": uid, "runAsGroup": 0})
            by_ip: dict[str, list[str]] = {}
            for name, ip in addresses.items():
                by_ip.setdefault(ip, []).append(name)
            pod["hostAliases"] = [{"ip": ip, "hostnames": names} for ip, names in by_ip.items()]
        played.append(obj)
    return played


def secret_data(secret: dict) -> str:
    """A Secret's data as podman's secretKeyRef reads it: JSON of base64 values."""
    data = dict(secret.get("data") or {})
    for key, value in (secret.get("stringData") or {}).items():
        data[key] = base64.b64encode(value.encode()).decode()
    return json.dumps(data)


def http_probes(deployment: dict) -> list[tuple[str, int]]:
    """Every httpGet probe of a Deployment's containers as (path, container port number)."""
    found = []
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        ports = {port.get("name"): port["containerPort"] for port in container.get("ports", [])}
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container.get(kind, {}).get("httpGet")
            if probe:
                port = probe["port"]
                found.append((probe["path"], ports[port] if isinstance(port, str) else int(port)))
    return found
