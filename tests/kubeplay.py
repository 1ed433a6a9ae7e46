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
    "Job catdog-train-pretrained, CronJob catdog-retrain": "podman 4.3 plays no Job or CronJob (suspended here "
                                                          "anyway); the retraining they run is played by "
                                                          "tests/test_retrain.py against the real broker",
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
            if obj["spec"]["template"]["spec"].get("initContainers"):
                # podman 4.3 removes a "once" init container (its default) after it ran and races that
                # removal ("cannot remove container … as it is running": one play in four); "always" keeps
                # it, which for a pod started once is the same. Podman reads it from the Deployment's own
                # annotations, not its pod template's.
                obj["metadata"].setdefault("annotations", {})["io.podman.annotations.init.container.type"] = "always"
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


OC_FIXTURES = Path(__file__).resolve().parent / "oc"  # the stand-in `oc` and the statuses it serves


def cluster_as_oc_sees_it(objects: list[dict], namespace: str, secrets: list[dict] = ()) -> list[dict]:
    """The rendered objects as `oc get -o json` shows them once applied in ``namespace`` and reconciled:
    tests/oc/statuses.yaml's status per kind (filled in from each object's own spec), the Routes' hosts as
    the router assigns them, the extra objects (the operator's Subscription) and ``secrets`` (what Jobs
    write at run time). Served by tests/oc/oc for `catdog doctor`."""
    recorded = yaml.safe_load((OC_FIXTURES / "statuses.yaml").read_text())
    cluster = [copy.deepcopy(o) for o in recorded["extras"]]
    for original in [*objects, *secrets]:
        obj = copy.deepcopy(original)
        obj["metadata"].setdefault("namespace", namespace)
        name, kind = obj["metadata"]["name"], obj["kind"]
        status = copy.deepcopy(recorded["statuses"].get(kind))
        if kind == "Kafka":
            status["listeners"] = [{"name": listener["name"], "bootstrapServers": f"{name}-kafka-bootstrap.{namespace}.svc:{listener['port']}",
                                    "addresses": [{"host": f"{name}-kafka-bootstrap.{namespace}.svc", "port": listener["port"]}]}
                                   for listener in obj["spec"]["kafka"]["listeners"] if listener["type"] == "internal"]
        elif kind == "KafkaTopic":
            status["topicName"] = obj["spec"].get("topicName", name)
        elif kind == "Deployment":
            replicas = obj["spec"].get("replicas", 1)
            status.update(replicas=replicas, readyReplicas=replicas, availableReplicas=replicas, updatedReplicas=replicas)
        elif kind == "DaemonSet":
            nodes = recorded["nodes"]
            status.update(desiredNumberScheduled=nodes, currentNumberScheduled=nodes, numberReady=nodes,
                          updatedNumberScheduled=nodes, numberAvailable=nodes)
        elif kind == "Route":
            host = f"{name}-{namespace}.{recorded['apps_domain']}"
            obj["spec"]["host"] = host
            status = {"ingress": [{"host": host, "routerName": "default", "wildcardPolicy": "None",
                                   "routerCanonicalHostname": f"router-default.{recorded['apps_domain']}",
                                   "conditions": [{"type": "Admitted", "status": "True",
                                                   "lastTransitionTime": "2026-11-27T08:00:00Z"}]}]}
        if status is not None:
            obj["status"] = status
        cluster.append(obj)
    return cluster


def route_backends(objects: list[dict], host_of: dict[str, str]) -> dict[str, tuple[str, int]]:
    """Each Route's host (``host_of``: route name -> host) -> the Service it names and the container port
    that Service's port leads to, resolved as the router and kube-proxy do (port names to numbers)."""
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    backends = {}
    for route in (o for o in objects if o["kind"] == "Route"):
        service = services[route["spec"]["to"]["name"]]
        wanted = route["spec"].get("port", {}).get("targetPort")
        [port] = [p for p in service["spec"]["ports"] if wanted in (None, p.get("name"), p.get("targetPort"), p["port"])][:1]
        target = port.get("targetPort", port["port"])
        if isinstance(target, str):
            selector = service["spec"]["selector"].items()
            [pod] = [d["spec"]["template"]["spec"] for d in deployments
                     if selector <= d["spec"]["template"]["metadata"]["labels"].items()]
            [target] = [p["containerPort"] for c in pod["containers"] for p in c.get("ports", []) if p.get("name") == target]
        backends[host_of[route["metadata"]["name"]]] = (service["metadata"]["name"], int(target))
    return backends


def router_certificate(domain: str, out: Path) -> tuple[Path, Path]:
    """A CA and the router's wildcard certificate for ``*.domain`` signed by it, as an ingress operator
    makes one: (haproxy's PEM with the key, the CA's PEM for clients to trust)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ingress-operator test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{domain}")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"*.{domain}")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    pem, ca_pem = out / "router.pem", out / "router-ca.pem"
    pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return pem, ca_pem


def router_config(backends: dict[str, tuple[str, int]], addresses: dict[str, str], port: int, pem: Path) -> str:
    """haproxy (what OpenShift's router runs) terminating TLS at the edge for every Route's host, as
    `tls.termination: edge` asks, and passing plain HTTP to the pod behind the Route's Service."""
    lines = ["global", "  maxconn 256", "defaults", "  mode http", "  timeout connect 5s", "  timeout client 60s",
             "  timeout server 60s", "frontend router", f"  bind 127.0.0.1:{port} ssl crt {pem}"]
    for number, host in enumerate(sorted(backends)):
        lines += [f"  acl route_{number} hdr(host),field(1,:) -i {host}", f"  use_backend route_{number} if route_{number}"]
    for number, host in enumerate(sorted(backends)):
        service, target = backends[host]
        lines += [f"backend route_{number}", f"  server pod {addresses[service]}:{target}"]
    return "\n".join(lines) + "\n"
