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

PLAYED_KINDS = {"Deployment", "Pod", "ConfigMap", "PersistentVolumeClaim"}
# What the manifests say that podman 4.3 does not do, and why the test may go without it.
UNHONOURED = {
    "Route, Service": "not podman kinds: each Route's host is served by haproxy (OpenShift's router) to the pod "
    "behind its Service, and each Service's names (short in its namespace, <name>.<namespace>"
    ".svc from any) resolve through hostAliases to that pod (cluster DNS)",
    "container ports": "podman 4.3 publishes each on the host (two notebooks would both want 8888): each gets a "
    "free hostPort, and the test reaches pods at their own addresses, as a Service does",
    "Namespace, ResourceQuota, LimitRange, NetworkPolicy": "podman has no namespaces: every played object's name is "
    "<namespace>-<name>, with every reference to it renamed "
    "alike; the quotas and network policies are test_room's "
    "and test_deploy's (rendered-object rules)",
    "liveness/readiness/startup probes": "podman runs liveness probes as systemd timers (none here) and has no "
    "readiness or startup probes: the test GETs every httpGet probe's path "
    "and port from outside, as the kubelet would",
    "Secret (kind)": "podman 4.3 stores a played Secret as YAML but reads secretKeyRef as JSON of base64 values "
    "(podman#16623) and a secret volume's Secret with its values written out undecoded: each is "
    "created with `podman secret create` in the form its one use reads; a secret volume gets "
    "`optional: false`, Kubernetes' default, written out (unset, podman 4.3 crashes: podman#16636)",
    "Secret volume, optional": "a Secret the manifests mount as optional and the render lacks (catdog-challenge: "
    "the room's challenge off) is played as an empty folder, as the kubelet mounts it",
    "Job catdog-notebook-token, its ServiceAccount, Role, RoleBinding": "the Job writes the token Secret through "
    "the API server: the test writes that "
    "Secret (its name and key) instead",
    "Job catdog-train-pretrained": "podman 4.3 plays no Job: its pod template is played as a Pod (job_as_pod), "
    "once, as `oc patch … suspend: false` starts it, at CI size (its --per-class) "
    "and from a mirror of the photos (its CATDOG_DATA_SOURCE, as the manifest says "
    "to set when disconnected); its podAffinity (beside the classifier, for the "
    "ReadWriteOnce volume) holds on one node",
    "CronJob catdog-retrain": "the same pod as the Job, on a schedule: podman has no schedules",
    "Kafka, KafkaNodePool, KafkaTopic, KafkaUser": "Strimzi's: a broker stands in at the bootstrap Service's "
    "names and port, each KafkaTopic made on it with its partitions; "
    "the Secret the User Operator writes for a KafkaUser (key "
    "password) is written by the test. For a room (TLS and SCRAM on "
    "every listener, simple authorization) the broker enforces them: "
    "kfake in a container, its certificate signed by the room's CA, "
    "every SCRAM user with its Secret's password, the ACLs the User "
    "Operator makes from each KafkaUser (tests/secured.py); it "
    "advertises its address rather than per-broker Service names, "
    "and the laptop's TLS user logs in with SCRAM (kfake has no "
    "client-certificate principals). Where the Kafka asks no login "
    "(one learner's lab) the embedded broker stands in, with no TLS "
    "or SASL to offer",
    "DaemonSet catdog-image-prepuller": "one node, the image already on it: the doctor reads its recorded status",
    "BuildConfig, ImageStream, RoleBinding catdog-image-pullers": "the CI-built image is tagged as the "
    "ImageStream's catdog:latest and the room's "
    "registry name for it",
    "runAsUser from the namespace's range, fsGroup": "set here: a random UID in group 0 (restricted SCC) and "
    "the PVCs owned by it (the fsGroup's effect)",
    "resources": "the CPU and memory limits are passed to podman as written",
}
SASL_SETTINGS = ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")


def render(kubectl: str, directory: Path) -> list[dict]:
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=True
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def bootstrap_address(objects: list[dict]) -> tuple[str, int, str | None]:
    """Where Strimzi serves the Kafka cluster (host, port, namespace): its bootstrap Service,
    `<cluster>-kafka-bootstrap`, on the plain internal listener's port, or the TLS one where every listener
    is TLS (a room's). From the Kafka resource, not from the settings: a ConfigMap naming anything else
    finds no broker, as on the cluster."""
    [kafka] = [o for o in objects if o["kind"] == "Kafka"]
    internal = sorted(
        (listener for listener in kafka["spec"]["kafka"]["listeners"] if listener["type"] == "internal"),
        key=lambda listener: bool(listener.get("tls")),
    )
    return f"{kafka['metadata']['name']}-kafka-bootstrap", int(internal[0]["port"]), kafka["metadata"].get("namespace")


def played_name(obj: dict) -> str:
    """An object's name in podman, which has no namespaces: <namespace>-<name> where it has one."""
    namespace = obj["metadata"].get("namespace")
    return f"{namespace}-{obj['metadata']['name']}" if namespace else obj["metadata"]["name"]


def _in(namespace: str | None, name: str) -> str:
    return f"{namespace}-{name}" if namespace else name


def service_names(name: str, namespace: str | None) -> list[str]:
    """What cluster DNS answers for a Service, from its own namespace (the short name) and from any."""
    return [name] + (
        [f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"] if namespace else []
    )


def cluster_dns(objects: list[dict], pod_ip: dict[str, str], broker_ip: str) -> dict[str | None, dict[str, str]]:
    """Each namespace's view of cluster DNS (host -> IP): every Service to the pod it selects (``pod_ip``:
    played Deployment name -> IP), the Kafka bootstrap Service to the broker; short names only within
    their own namespace."""
    named: list[tuple[str | None, str, str]] = []  # (namespace, service, ip)
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    for service in (o for o in objects if o["kind"] == "Service"):
        namespace, selector = service["metadata"].get("namespace"), service["spec"]["selector"].items()
        [target] = [
            d
            for d in deployments
            if d["metadata"].get("namespace") == namespace
            and selector <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        named.append((namespace, service["metadata"]["name"], pod_ip[played_name(target)]))
    host, _, namespace = bootstrap_address(objects)
    named.append((namespace, host, broker_ip))
    views: dict[str | None, dict[str, str]] = {}
    for viewer in {o["metadata"].get("namespace") for o in deployments}:
        view = views.setdefault(viewer, {})
        for namespace, name, ip in named:
            for index, alias in enumerate(service_names(name, namespace)):
                if index or namespace == viewer:
                    view[alias] = ip
    return views


def _rename_references(pod: dict, namespace: str | None) -> None:
    """Every ConfigMap, Secret and PVC a pod spec names, renamed as played_name renames them."""
    for container in pod.get("initContainers", []) + pod["containers"]:
        for source in container.get("envFrom", []):
            for kind in ("configMapRef", "secretRef"):
                if kind in source:
                    source[kind]["name"] = _in(namespace, source[kind]["name"])
        for variable in container.get("env", []):
            for kind in ("secretKeyRef", "configMapKeyRef"):
                if kind in variable.get("valueFrom", {}):
                    variable["valueFrom"][kind]["name"] = _in(namespace, variable["valueFrom"][kind]["name"])
    for volume in pod.get("volumes", []):
        if "persistentVolumeClaim" in volume:
            volume["persistentVolumeClaim"]["claimName"] = _in(namespace, volume["persistentVolumeClaim"]["claimName"])
        if "secret" in volume:
            volume["secret"]["secretName"] = _in(namespace, volume["secret"]["secretName"])
            volume["secret"].setdefault("optional", False)  # podman#16636: unset, podman 4.3 crashes
        if "configMap" in volume:
            volume["configMap"]["name"] = _in(namespace, volume["configMap"]["name"])


def job_as_pod(job: dict) -> dict:
    """A Job's pod template as the one Pod its first run makes (named for the Job)."""
    template = job["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": job["metadata"]["name"],
            "labels": dict(template.get("metadata", {}).get("labels", {})),
            **({"namespace": job["metadata"]["namespace"]} if "namespace" in job["metadata"] else {}),
        },
        "spec": copy.deepcopy(template["spec"]),
    }


def sasl_password_references(objects: list[dict]) -> list[tuple[str | None, str, str]]:
    """(namespace, Secret, key) of every KAFKA_SASL_PASSWORD a Deployment reads."""
    found = []
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if variable["name"] == "KAFKA_SASL_PASSWORD" and ref:
                    found.append((deployment["metadata"].get("namespace"), ref["name"], ref["key"]))
    return found


def playable(
    objects: list[dict], uid: int, dns: dict[str | None, dict[str, str]], host_ports, secured: bool = False
) -> list[dict]:
    """The workload objects as podman plays them: named <namespace>-<name>, every Deployment as a random UID
    in group 0 with its namespace's view of cluster DNS (``dns``, from cluster_dns) in its hosts file and each
    container port on a free host port (``host_ports``: an iterator), every PVC owned by that UID. Not
    ``secured`` (the embedded broker stands in, which has no usable TLS or SASL): SASL_SSL settings become
    PLAINTEXT and the KAFKA_SASL_* settings go."""
    played = []
    config_maps = {
        (o["metadata"].get("namespace"), o["metadata"]["name"]): _played_settings(o.get("data") or {}, secured)
        for o in objects
        if o["kind"] == "ConfigMap"
    }
    for original in objects:
        if original["kind"] not in PLAYED_KINDS:
            continue
        obj = copy.deepcopy(original)
        namespace = obj["metadata"].pop("namespace", None)
        obj["metadata"]["name"] = played_name(original)
        if obj["kind"] == "ConfigMap":
            obj["data"] = config_maps[namespace, original["metadata"]["name"]]
        if obj["kind"] == "PersistentVolumeClaim":
            obj["metadata"].setdefault("annotations", {}).update(
                {"volume.podman.io/uid": str(uid), "volume.podman.io/gid": "0"}
            )
        if obj["kind"] in ("Deployment", "Pod"):
            if obj["kind"] == "Deployment" and obj["spec"]["template"]["spec"].get("initContainers"):
                # podman 4.3 removes a "once" init container (its default) after it ran and races that
                # removal ("cannot remove container … as it is running": one play in four); "always" keeps
                # it, which for a pod started once is the same. Podman reads it from the Deployment's own
                # annotations, not its pod template's.
                obj["metadata"].setdefault("annotations", {})["io.podman.annotations.init.container.type"] = "always"
            pod = obj["spec"]["template"]["spec"] if obj["kind"] == "Deployment" else obj["spec"]
            for container in pod.get("initContainers", []) + pod["containers"]:
                _env_wins_over_env_from(container, config_maps, namespace)
            pod["volumes"] = [
                {"name": v["name"], "emptyDir": {}} if _absent_optional_secret(v, objects, namespace) else v
                for v in pod.get("volumes", [])
            ]
            _rename_references(pod, namespace)
            for container in pod["containers"]:
                if not secured:
                    container["env"] = [v for v in container.get("env", []) if v["name"] not in SASL_SETTINGS]
                for port in container.get("ports", []):
                    port["hostPort"] = next(host_ports)
            pod.setdefault("securityContext", {}).update({"runAsUser": uid, "runAsGroup": 0})
            by_ip: dict[str, list[str]] = {}
            for name, ip in dns[namespace].items():
                by_ip.setdefault(ip, []).append(name)
            pod["hostAliases"] = [{"ip": ip, "hostnames": names} for ip, names in by_ip.items()]
        played.append(obj)
    return played


def _absent_optional_secret(volume: dict, objects: list[dict], namespace: str | None) -> bool:
    """A secret volume marked optional whose Secret the render does not hold (the kubelet mounts it empty)."""
    secret = volume.get("secret")
    return bool(secret and secret.get("optional")) and not any(
        o["kind"] == "Secret"
        and o["metadata"]["name"] == secret["secretName"]
        and o["metadata"].get("namespace") == namespace
        for o in objects
    )


def podman_secrets(objects: list[dict], secrets: list[dict] = (), secured: bool = False) -> dict[str, str]:
    """Each Secret the played Deployments read (from the render, or ``secrets``: what the cluster's Jobs and
    operators write) as `podman secret create` must be given it (played name -> content): JSON of base64
    values for secretKeyRef (podman#16623), a Secret with its values decoded for a secret volume."""
    by_name = {played_name(s): s for s in [*objects, *secrets] if s["kind"] == "Secret"}
    as_env, as_volume = set(), {}  # as_volume: name -> the keys its items select (None: every key)
    for workload in (o for o in objects if o["kind"] in ("Deployment", "Pod")):
        namespace = workload["metadata"].get("namespace")
        pod = workload["spec"]["template"]["spec"] if workload["kind"] == "Deployment" else workload["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref and (secured or variable["name"] not in SASL_SETTINGS):
                    as_env.add(_in(namespace, ref["name"]))
        for volume in (
            v["secret"]
            for v in pod.get("volumes", [])
            if "secret" in v and not _absent_optional_secret(v, objects, namespace)
        ):
            as_volume[_in(namespace, volume["secretName"])] = (
                [item["key"] for item in volume["items"]] if "items" in volume else None
            )
    assert not as_env & set(as_volume), f"read both ways, which podman 4.3 cannot: {as_env & as_volume}"
    missing = (as_env | set(as_volume)) - set(by_name)
    assert not missing, f"no such Secret (podman would refuse the play): {sorted(missing)}"
    created = {name: secret_data(by_name[name]) for name in as_env}
    for name, keys in as_volume.items():  # as text: podman writes each value as it stands (a CA's PEM here)
        values = {
            key: base64.b64decode(value).decode()
            for key, value in json.loads(secret_data(by_name[name])).items()
            if keys is None or key in keys
        }
        created[name] = json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": values})
    return created


def _played_settings(data: dict, secured: bool) -> dict:
    """A ConfigMap's data as played: not ``secured``, SASL_SSL settings become PLAINTEXT (the embedded broker)."""
    data = dict(data)
    if not secured and data.get("KAFKA_SECURITY_PROTOCOL", "").startswith("SASL_"):
        data["KAFKA_SECURITY_PROTOCOL"] = "PLAINTEXT"
        for name in SASL_SETTINGS:
            data.pop(name, None)
    return data


def _env_wins_over_env_from(container: dict, config_maps: dict, namespace: str | None) -> None:
    """A ConfigMap's envFrom keys as env entries where the container's own env does not set them: Kubernetes
    lets env win over envFrom, podman 4.3 lets envFrom win (the wall's KAFKA_SASL_USERNAME came out as the
    room ConfigMap's catdog-classifier). Secret envFrom is left to podman (none in the manifests)."""
    own = {variable["name"] for variable in container.get("env", [])}
    kept = []
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref is None or (namespace, ref["name"]) not in config_maps:
            kept.append(source)
            continue
        prefix = source.get("prefix", "")
        container.setdefault("env", []).extend(
            {"name": prefix + key, "value": value}
            for key, value in config_maps[namespace, ref["name"]].items()
            if prefix + key not in own
        )
    if "envFrom" in container:
        container["envFrom"] = kept
        if not kept:
            del container["envFrom"]


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
        name, kind, where = obj["metadata"]["name"], obj["kind"], obj["metadata"]["namespace"]
        status = copy.deepcopy(recorded["statuses"].get(kind))
        if kind == "Kafka":
            status["listeners"] = [
                {
                    "name": listener["name"],
                    "bootstrapServers": f"{name}-kafka-bootstrap.{where}.svc:{listener['port']}",
                    "addresses": [{"host": f"{name}-kafka-bootstrap.{where}.svc", "port": listener["port"]}],
                }
                for listener in obj["spec"]["kafka"]["listeners"]
                if listener["type"] == "internal"
            ]
        elif kind == "KafkaNodePool":
            replicas = obj["spec"]["replicas"]
            status.update(
                replicas=replicas,
                nodeIds=list(range(replicas)),
                roles=obj["spec"]["roles"],
                labelSelector=f"strimzi.io/cluster={obj['metadata']['labels']['strimzi.io/cluster']},"
                f"strimzi.io/pool-name={name},strimzi.io/kind=Kafka",
            )
        elif kind == "KafkaTopic":
            status["topicName"] = obj["spec"].get("topicName", name)
        elif kind == "Deployment":
            replicas = obj["spec"].get("replicas", 1)
            status.update(
                replicas=replicas, readyReplicas=replicas, availableReplicas=replicas, updatedReplicas=replicas
            )
        elif kind == "DaemonSet":
            nodes = recorded["nodes"]
            status.update(
                desiredNumberScheduled=nodes,
                currentNumberScheduled=nodes,
                numberReady=nodes,
                updatedNumberScheduled=nodes,
                numberAvailable=nodes,
            )
        elif kind == "Route":
            host = f"{name}-{where}.{recorded['apps_domain']}"
            obj["spec"]["host"] = host
            status = {
                "ingress": [
                    {
                        "host": host,
                        "routerName": "default",
                        "wildcardPolicy": "None",
                        "routerCanonicalHostname": f"router-default.{recorded['apps_domain']}",
                        "conditions": [
                            {"type": "Admitted", "status": "True", "lastTransitionTime": "2026-11-27T08:00:00Z"}
                        ],
                    }
                ]
            }
        if status is not None:
            obj["status"] = status
        cluster.append(obj)
    return cluster


def route_backends(
    objects: list[dict], host_of: dict[tuple[str | None, str], str], pod_ip: dict[str, str]
) -> dict[str, tuple[str, int]]:
    """Each Route's host (``host_of``: (namespace, route name) -> host) -> the address and container port of
    the pod behind the Service it names (``pod_ip``: played Deployment name -> IP), resolved as the router
    and kube-proxy do (port names to numbers)."""
    backends = {}
    for route in (o for o in objects if o["kind"] == "Route"):
        namespace = route["metadata"].get("namespace")
        [service] = [
            o
            for o in objects
            if o["kind"] == "Service"
            and o["metadata"].get("namespace") == namespace
            and o["metadata"]["name"] == route["spec"]["to"]["name"]
        ]
        selector = service["spec"]["selector"].items()
        [deployment] = [
            d
            for d in objects
            if d["kind"] == "Deployment"
            and d["metadata"].get("namespace") == namespace
            and selector <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        wanted = route["spec"].get("port", {}).get("targetPort")
        [port] = [
            p for p in service["spec"]["ports"] if wanted in (None, p.get("name"), p.get("targetPort"), p["port"])
        ][:1]
        target = port.get("targetPort", port["port"])
        if isinstance(target, str):
            [target] = [
                p["containerPort"]
                for c in deployment["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])
                if p.get("name") == target
            ]
        backends[host_of[(namespace, route["metadata"]["name"])]] = (pod_ip[played_name(deployment)], int(target))
    return backends


def router_certificate(domain: str, out: Path) -> tuple[Path, Path]:
    """A CA and the router's wildcard certificate for ``*.domain`` signed by it, as an ingress operator
    makes one: (haproxy's PEM with the key, the CA's PEM for clients to trust)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ingress-operator test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{domain}")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"*.{domain}")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem, ca_pem = out / "router.pem", out / "router-ca.pem"
    pem.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return pem, ca_pem


def route_annotations(objects: list[dict], host_of: dict[tuple[str | None, str], str]) -> dict[str, dict[str, str]]:
    """Each Route's host and its annotations (what the router reads from a Route besides its spec)."""
    return {
        host_of[(route["metadata"].get("namespace"), route["metadata"]["name"])]: route["metadata"].get(
            "annotations", {}
        )
        for route in objects
        if route["kind"] == "Route"
    }


def router_config(
    backends: dict[str, tuple[str, int]], port: int, pem: Path, annotations: dict[str, dict[str, str]] | None = None
) -> str:
    """haproxy (what OpenShift's router runs) terminating TLS at the edge for every Route's host, as
    `tls.termination: edge` asks, and passing plain HTTP to the pod behind the Route's Service. Per Route,
    as openshift/router's haproxy-config.template writes a backend: `set-forwarded-headers` append (the
    default: `option forwardfor`, a new X-Forwarded-For line after the client's) or replace (`set-header`,
    the client's gone), X-Forwarded-Proto likewise; `hsts_header` as Strict-Transport-Security."""
    lines = [
        "global",
        "  maxconn 4096",
        "defaults",
        "  mode http",
        "  timeout connect 5s",
        "  timeout client 60s",
        "  timeout server 60s",
        "frontend router",
        f"  bind 127.0.0.1:{port} ssl crt {pem}",
    ]
    for number, host in enumerate(sorted(backends)):
        lines += [
            f"  acl route_{number} hdr(host),field(1,:) -i {host}",
            f"  use_backend route_{number} if route_{number}",
        ]
    for number, host in enumerate(sorted(backends)):
        address, target = backends[host]
        given = (annotations or {}).get(host, {})
        lines += [f"backend route_{number}"]
        if given.get("haproxy.router.openshift.io/set-forwarded-headers", "append") == "replace":
            lines += [
                "  http-request set-header X-Forwarded-For %[src]",
                "  http-request set-header X-Forwarded-Proto https",
            ]
        else:
            lines += ["  option forwardfor", "  http-request add-header X-Forwarded-Proto https"]
        if "haproxy.router.openshift.io/hsts_header" in given:
            hsts = given["haproxy.router.openshift.io/hsts_header"]
            lines += [f"  http-response set-header Strict-Transport-Security '{hsts}'"]
        lines += [f"  server pod {address}:{target}"]
    return "\n".join(lines) + "\n"
