"""OpenShift deployment, proven offline: every overlay rendered with kustomize, every object validated
against a real schema, policy and consistency checks, hadolint on the Containerfile, and the container's
start script run for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from browser import NOTEBOOKS
from catdog.config import DEFAULT_MAX_IMAGE_BYTES, load_settings
from conftest import SHARED, free_port
from waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "openshift"
# The guides the commands are read from (README links them; each command there is proven below).
PLATFORM_GUIDE, INSTRUCTORS_GUIDE = REPO / "docs" / "platform-engineers.md", REPO / "docs" / "instructors.md"
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.33.0"
STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
OPENSHIFT_KINDS = {"Route", "ImageStream", "BuildConfig"}
WORKLOAD_KINDS = {"Deployment", "Job", "DaemonSet"}
COMPONENTS = sorted(path.name for path in (DEPLOY / "components").iterdir())


def tool(name: str) -> str:
    path = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        pytest.fail(f"{name} is not installed (it comes from requirements-dev.txt)")
    return path


def render(directory: Path) -> list[dict]:
    result = subprocess.run([tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def with_component(component: str, tmp_path: Path) -> Path:
    """A throwaway overlay: the base plus one component, so every component is rendered and checked."""
    overlay = tmp_path / component
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(DEPLOY / "base", overlay)],
                "components": [os.path.relpath(DEPLOY / "components" / component, overlay)],
            }
        )
    )
    return overlay


def write_room(out: Path, *args: str) -> str:
    """`catdog room` as an instructor runs it (tests/test_room.py checks the room's rules); its output."""
    result = subprocess.run(
        [sys.executable, "-m", "catdog.cli", "room", "--out", str(out), "--manifests", str(DEPLOY), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


RENDERS = {
    "default": lambda tmp: DEPLOY,
    "room": lambda tmp: (write_room(tmp / "room", "--count", "3"), tmp / "room")[1],
    "room-openshift-ai": lambda tmp: (write_room(tmp / "room", "--count", "2", "--openshift-ai"), tmp / "room")[1],
    "room-three-nodes": lambda tmp: (write_room(tmp / "room", "--count", "2", "--kafka-nodes", "3"), tmp / "room")[1],
    "dev": lambda tmp: DEPLOY / "overlays" / "dev",
    "persistent": lambda tmp: DEPLOY / "overlays" / "persistent",
    "v1beta2": lambda tmp: DEPLOY / "overlays" / "v1beta2",
    "operator": lambda tmp: DEPLOY / "operator",
    **{f"base+{name}": (lambda tmp, name=name: with_component(name, tmp)) for name in COMPONENTS},
}


@pytest.fixture(scope="module", params=sorted(RENDERS))
def rendered(request, tmp_path_factory) -> tuple[str, list[dict]]:
    return request.param, render(RENDERS[request.param](tmp_path_factory.mktemp("overlay")))


def schema_for(obj: dict) -> Path | None:
    group, _, version = obj["apiVersion"].rpartition("/")
    kind = obj["kind"].lower()
    if obj["kind"] in OPENSHIFT_KINDS:
        return SHARED / "schemas" / "openshift" / "v4.15-strict" / f"{kind}_{group}_{version}.json"
    if group and "." in group and not group.endswith("k8s.io"):
        return SHARED / "schemas" / group / f"{kind}_{version}.json"
    return None  # a core Kubernetes kind: kubernetes-validate has it


def schema_problem(obj: dict) -> str | None:
    """Why ``obj`` fails its schema (Kubernetes' own, or the CRD's or OpenShift's from ../shared), or None."""
    path = schema_for(obj)
    if path is None:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return f"no schema for {obj['apiVersion']} {obj['kind']}"
        except kubernetes_validate.ValidationError as error:
            return str(error)
        return None
    if not path.is_file():
        return f"no schema at {path}"
    schema = json.loads(path.read_text())
    # No metaschema check: some CRD schemas carry Go regexes (e.g. "^(?i)…") that Python's re rejects;
    # they only matter for fields we do not set.
    validator = jsonschema.validators.validator_for(schema)(schema)
    try:
        validator.validate(obj)
    except jsonschema.ValidationError as error:
        return f"{error.message} at {list(error.absolute_path)}"
    return None


def test_every_object_validates_against_its_schema(rendered):
    name, objects = rendered
    assert objects, f"{name} rendered nothing"
    for obj in objects:
        problem = schema_problem(obj)
        assert problem is None, f"{name}: {obj['kind']}/{obj['metadata']['name']}: {problem}"


def pod_specs(objects: list[dict]) -> list[tuple[str, dict]]:
    return [
        (f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] in WORKLOAD_KINDS
    ]


def test_containers_run_non_root_unprivileged_with_limits_and_probes(rendered):
    _, objects = rendered
    for name, spec in pod_specs(objects):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            where = f"{name}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "runAsUser" not in context and "runAsUser" not in spec["securityContext"], (
                f"{where}: OpenShift assigns the UID"
            )
            assert {"requests", "limits"} <= set(container["resources"]), where
            if name.startswith("Deployment"):
                assert "readinessProbe" in container and "livenessProbe" in container, where


def test_every_route_uses_tls_and_redirects_http(rendered):
    """And tells browsers to stay on HTTPS (HSTS, which the router adds on edge Routes from the annotation)."""
    _, objects = rendered
    for route in [o for o in objects if o["kind"] == "Route"]:
        assert route["spec"]["tls"]["termination"] in ("edge", "reencrypt", "passthrough")
        assert route["spec"]["tls"]["insecureEdgeTerminationPolicy"] == "Redirect"
        hsts = route["metadata"]["annotations"]["haproxy.router.openshift.io/hsts_header"]
        assert re.fullmatch(r"max-age=\d+", hsts) and int(hsts.split("=")[1]) >= 180 * 86400


def test_configmaps_hold_no_secrets(rendered):
    _, objects = rendered
    for config_map in [o for o in objects if o["kind"] == "ConfigMap"]:
        for key, value in config_map.get("data", {}).items():
            assert not any(word in key.upper() for word in ("TOKEN", "PASSWORD", "SECRET", "KEY")), key
            assert "BEGIN" not in value, key  # no certificates or keys either


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


@pytest.fixture(scope="module")
def default_objects() -> list[dict]:
    return render(DEPLOY)


def test_topics_bootstrap_and_size_limits_agree_everywhere(default_objects):
    settings = load_settings({}).kafka
    [config_map] = by_kind(default_objects, "ConfigMap")
    [kafka] = by_kind(default_objects, "Kafka")
    config = config_map["data"]
    topics = {topic["metadata"]["name"]: topic for topic in by_kind(default_objects, "KafkaTopic")}
    # Topic names: ConfigMap = KafkaTopics = the Python defaults.
    named = {
        config["CATDOG_IMAGES_TOPIC"],
        config["CATDOG_PREDICTIONS_TOPIC"],
        config["CATDOG_DLQ_TOPIC"],
        config["CATDOG_FEEDBACK_TOPIC"],
    }
    assert (
        named
        == set(topics)
        == {settings.images_topic, settings.predictions_topic, settings.dlq_topic, settings.feedback_topic}
    )
    assert all(t["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] for t in topics.values())
    # Bootstrap: Strimzi's <cluster>-kafka-bootstrap service on the plain listener's port.
    plain = next(listener for listener in kafka["spec"]["kafka"]["listeners"] if listener["name"] == "plain")
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == f"{kafka['metadata']['name']}-kafka-bootstrap:{plain['port']}"
    assert config["CATDOG_GROUP_ID"] == settings.group_id
    # One size limit: the image limit, and the message limit derived from it, everywhere.
    assert int(config["CATDOG_MAX_IMAGE_BYTES"]) == DEFAULT_MAX_IMAGE_BYTES
    message_limit = load_settings({"CATDOG_MAX_IMAGE_BYTES": config["CATDOG_MAX_IMAGE_BYTES"]}).kafka.max_message_bytes
    assert kafka["spec"]["kafka"]["config"]["message.max.bytes"] == message_limit
    assert kafka["spec"]["kafka"]["config"]["replica.fetch.max.bytes"] == message_limit
    assert all(
        t["spec"]["config"]["max.message.bytes"] == message_limit
        for t in topics.values()
        if t["metadata"]["name"] != settings.feedback_topic
    )  # a verdict is a few hundred bytes
    assert topics[settings.feedback_topic]["spec"]["config"] == {"cleanup.policy": "compact"}
    # Listeners: plain 9092 (this namespace only), tls 9093, route 9094 with TLS.
    ports = {listener["name"]: (listener["port"], listener["tls"]) for listener in kafka["spec"]["kafka"]["listeners"]}
    assert ports == {"plain": (9092, False), "tls": (9093, True), "route": (9094, True)}
    assert plain["networkPolicyPeers"] == [{"podSelector": {}}]


def test_classifier_replicas_never_exceed_partitions(tmp_path):
    objects = render(DEPLOY / "overlays" / "persistent")
    partitions = next(t for t in by_kind(objects, "KafkaTopic") if t["metadata"]["name"] == "images")["spec"][
        "partitions"
    ]
    classifier = next(d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "catdog-classifier")
    assert classifier["spec"].get("replicas", 1) <= partitions  # without replicas: KEDA's min, 1
    [scaler] = by_kind(objects, "ScaledObject")
    assert scaler["spec"]["minReplicaCount"] <= partitions
    assert scaler["spec"]["maxReplicaCount"] <= partitions
    assert scaler["spec"]["triggers"][0]["metadata"]["topic"] == "images"


def test_persistent_overlay_replicates_three_times():
    objects = render(DEPLOY / "overlays" / "persistent")
    [pool] = by_kind(objects, "KafkaNodePool")
    assert pool["spec"]["replicas"] == 3 and pool["spec"]["storage"]["type"] == "jbod"
    assert all(t["spec"]["replicas"] == 3 for t in by_kind(objects, "KafkaTopic"))
    [kafka] = by_kind(objects, "Kafka")
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2


def test_alerts_watch_drift_and_dead_letters(tmp_path):
    objects = render(with_component("monitoring", tmp_path))
    [rule] = by_kind(objects, "PrometheusRule")
    alerts = {r["alert"]: r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]}
    assert "catdog_p_dog_sum" in alerts["CatdogPredictionDrift"]
    assert "catdog_dead_letters_total" in alerts["CatdogDeadLetterRate"]
    [monitor] = by_kind(objects, "ServiceMonitor")
    [service] = [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == "catdog-classifier"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_the_autoscaler_can_resolve_and_reach_the_brokers():
    """KEDA's Kafka scaler runs in KEDA's namespace (openshift-keda): a short Service name would resolve
    there, and Strimzi's NetworkPolicy for the plain listener admits only the lab's own pods."""
    objects = render(DEPLOY / "overlays" / "persistent")
    [scaled] = by_kind(objects, "ScaledObject")
    [kafka] = by_kind(objects, "Kafka")
    namespace = kafka["metadata"]["namespace"]
    address = scaled["spec"]["triggers"][0]["metadata"]["bootstrapServers"]
    assert address == f"catdog-kafka-bootstrap.{namespace}.svc:9092"
    assert scaled["metadata"]["namespace"] == namespace
    [plain] = [listener for listener in kafka["spec"]["kafka"]["listeners"] if listener["port"] == 9092]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "openshift-keda"}}} in plain[
        "networkPolicyPeers"
    ]
    assert {"podSelector": {}} in plain["networkPolicyPeers"]  # the lab's own pods still


def gibibytes(size: str) -> float:
    number, unit = re.fullmatch(r"(\d+)([MG]i)", size).groups()
    return int(number) / (1024 if unit == "Mi" else 1)


def test_kafka_keeps_the_rooms_data_on_volumes_and_replicates_to_every_node(rendered):
    """What the operators make of it: each node's data on a claim Strimzi keeps when the Kafka is deleted
    (a restart of a pod loses nothing), big enough for twice what the bounded topics may hold; every topic
    (and the internal ones) replicated to every node, writes acknowledged by all but one of them (a node's
    loss loses no acknowledged record and stops no writer), and never more replicas than brokers (the topic
    operator refuses those)."""
    _, objects = rendered
    pools = by_kind(objects, "KafkaNodePool")
    if not pools:
        return  # the operator's Subscription alone
    nodes = sum(pool["spec"]["replicas"] for pool in pools if "broker" in pool["spec"]["roles"])
    bounded = sum(
        topic["spec"]["partitions"]
        * (int(topic["spec"]["config"]["retention.bytes"]) + int(topic["spec"]["config"].get("segment.bytes", 1 << 30)))
        for topic in by_kind(objects, "KafkaTopic")
        if "retention.bytes" in topic["spec"]["config"]
    ) / (1 << 30)
    for pool in pools:
        [volume] = pool["spec"]["storage"]["volumes"]
        assert volume["type"] == "persistent-claim" and volume["deleteClaim"] is False
        assert volume["kraftMetadata"] == "shared"
        assert gibibytes(volume["size"]) >= 2 * bounded, (volume["size"], bounded)
    assert nodes in (1, 3)
    [kafka] = by_kind(objects, "Kafka")
    config = kafka["spec"]["kafka"]["config"]
    in_sync = 1 if nodes == 1 else nodes - 1
    assert config["default.replication.factor"] == config["offsets.topic.replication.factor"] == nodes
    assert config["min.insync.replicas"] == config["transaction.state.log.min.isr"] == in_sync
    for topic in by_kind(objects, "KafkaTopic"):
        assert topic["spec"]["replicas"] == nodes, topic["metadata"]["name"]
        assert int(topic["spec"]["config"].get("min.insync.replicas", config["min.insync.replicas"])) == in_sync


def test_kafka_pods_have_requests_and_memory_limits(rendered):
    """Strimzi's pods are BestEffort without resources: the first evicted when a node runs short."""
    _, objects = rendered
    for pool in by_kind(objects, "KafkaNodePool"):
        assert pool["spec"]["resources"]["requests"] and pool["spec"]["resources"]["limits"]["memory"]
    for kafka in by_kind(objects, "Kafka"):
        for operator in ("topicOperator", "userOperator"):
            resources = kafka["spec"]["entityOperator"][operator]["resources"]
            assert resources["requests"] and resources["limits"]["memory"], operator


MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9, "": 1}


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([KMG]i?)?", str(quantity)).groups()
    return float(number) * MEMORY_UNITS[unit or ""] / 2**20


def test_the_notebooks_memory_is_sized_from_the_measured_full_size_lab(rendered):
    """benchmarks/lab_memory.py walks every notebook full-size in the image, kernels kept alive as a
    learner leaves them: the request must hold that working set, the limit twice its peak (a learner
    re-runs cells, holds more figures; the kubelet OOM-kills at the limit)."""
    measured = json.loads((REPO / "benchmarks" / "lab-memory.json").read_text())
    walked = {Path(path).stem for path in NOTEBOOKS}
    assert walked <= set(measured["by_phase_mib"]), "a notebook was added: re-run benchmarks/lab_memory.py"
    name, objects = rendered
    notebooks = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "catdog-notebook"] + by_kind(
        objects, "Notebook"
    )  # OpenShift AI workbenches
    if name == "operator":
        assert not notebooks
        return
    assert notebooks
    for notebook in notebooks:  # one, or one per learner of a room
        resources = notebook["spec"]["template"]["spec"]["containers"][0]["resources"]
        request, limit = mebibytes(resources["requests"]["memory"]), mebibytes(resources["limits"]["memory"])
        assert request >= measured["by_phase_mib"]["kernels idle"]["working_set"], resources
        assert limit >= 2 * measured["peak_working_set_mib"], resources
        assert limit <= 4 * measured["peak_working_set_mib"], "far above what the lab uses: a node fits fewer learners"


def test_with_autoscaling_the_deployment_leaves_replicas_to_keda(tmp_path):
    """Every `oc apply` of a fixed replica count would undo what KEDA's HPA scaled to."""
    for objects, scaled in (
        (render(with_component("autoscaling", tmp_path)), True),
        (render(DEPLOY / "overlays" / "dev"), False),
    ):
        [classifier] = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "catdog-classifier"]
        assert ("replicas" in classifier["spec"]) is not scaled


def test_no_manifest_offers_a_gpu_that_the_cpu_only_image_cannot_use():
    """requirements.txt pins tensorflow-cpu: a GPU request, or advice to add one, would waste the GPU."""
    assert "tensorflow-cpu" in (REPO / "requirements.txt").read_text()
    for path in DEPLOY.rglob("*.yaml"):
        text = path.read_text()
        assert "nvidia.com/gpu" not in text and "GPU node" not in text, path


def test_a_disconnected_build_takes_its_mirrors_from_the_buildconfig(tmp_path):
    """`oc start-build --from-repo/--from-dir` is a binary build: oc drops --build-arg (with a warning),
    so the mirrors must be in the BuildConfig, under names the Containerfile declares."""
    objects = render(with_component("mirrors", tmp_path))
    [build] = by_kind(objects, "BuildConfig")
    docker = build["spec"]["strategy"]["dockerStrategy"]
    assert docker["dockerfilePath"] == "Containerfile"  # the patch adds to the strategy, keeps the rest
    declared = set(re.findall(r"^ARG (\w+)", (REPO / "Containerfile").read_text(), re.MULTILINE))
    names = {arg["name"] for arg in docker["buildArgs"]}
    assert {"DATA_SOURCE", "DATA_SHA256", "WEIGHTS_URL", "WEIGHTS_SHA256"} <= names <= declared
    for doc in DOCS:
        text = doc.read_text()
        assert not re.search(r"oc start-build \w+[^\n]*(\\\n[^\n]*)*--build-arg", text), (
            f"{doc.name} passes --build-arg"
        )


def test_the_readme_names_what_the_persistent_overlay_needs_on_the_cluster():
    """Its ScaledObject needs KEDA (a KedaController) and its alerts user-workload monitoring."""
    kinds = {obj["kind"] for obj in render(DEPLOY / "overlays" / "persistent")}
    assert {"ScaledObject", "ServiceMonitor", "PrometheusRule"} <= kinds
    steps = PLATFORM_GUIDE.read_text().split("## Step by step")[1].split("```")[1]
    assert "KedaController" in steps and "openshift-keda" in steps and "enableUserWorkload: true" in steps


def test_the_retrained_model_reaches_the_classifier_only_through_the_gate(tmp_path):
    """The training Job and the retraining CronJob run `catdog retrain` (a candidate, gated, promoted by a
    rename) on the volume the classifier serves from and hot-reloads, with the check set kept on that volume
    and made from the image's evaluation photos (which no model trains on); a first start seeds the volume
    with the image's baked models; both wait for the image (suspended); every catdog:latest is resolved."""
    objects = render(with_component("training", tmp_path))
    [job] = [j for j in by_kind(objects, "Job") if j["metadata"]["name"] == "catdog-train-pretrained"]
    [cron] = [c for c in by_kind(objects, "CronJob") if c["metadata"]["name"] == "catdog-retrain"]
    [classifier] = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "catdog-classifier"]
    pod = classifier["spec"]["template"]["spec"]

    def mount(spec: dict, container: dict, claim: str) -> str:
        [volume] = [v["name"] for v in spec["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == claim]
        return next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume)

    [serve] = pod["containers"]
    models_dir = next(e["value"] for e in serve["env"] if e["name"] == "CATDOG_MODELS_DIR")
    assert mount(pod, serve, "catdog-models") == models_dir
    containerfile = (REPO / "Containerfile").read_text()
    baked = re.search(r"CATDOG_LAB_DIR=(\S+)", containerfile).group(1)
    evaluation_photos = re.search(r"CATDOG_DATA_SOURCE=(\S+)", containerfile).group(1)
    from catdog.cli import build_parser

    for job_pod in (job["spec"]["template"]["spec"], cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]):
        [train] = job_pod["containers"]
        env = {e["name"]: e["value"] for e in train["env"] if "value" in e}
        assert env["CATDOG_MODELS_DIR"] == mount(job_pod, train, "catdog-models") == models_dir  # what it watches
        assert train["command"][0] == "catdog"
        args = build_parser().parse_args(train["command"][1:])
        assert args.verb == "retrain" and str(args.check).startswith(f"{models_dir}/")  # kept on the volume
        assert args.check_from == evaluation_photos
        assert job_pod["affinity"]["podAffinity"]  # the volume is ReadWriteOnce: beside the classifier
    # The Job: 2000 photos a class of the full archive, fine-tuned (the model that measured best, RESULTS.md);
    # the CronJob: the photos the baked model trained on, plus the room's.
    job_args = build_parser().parse_args(job["spec"]["template"]["spec"]["containers"][0]["command"][1:])
    assert (job_args.per_class, job_args.fine_tune, job_args.source) == (2000, True, None)  # $CATDOG_DATA_SOURCE
    cron_args = build_parser().parse_args(
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][1:]
    )
    assert cron_args.source == f"{baked}/data/pretrained"  # where the build bakes them:
    assert (
        "pretrained_data=${CATDOG_DATA_DIR:-${CATDOG_LAB_DIR:-.}/data}/pretrained"
        in (REPO / "scripts/bake-image.sh").read_text()
    )
    assert job["spec"]["suspend"] is True and cron["spec"]["suspend"] is True  # started by hand (README)
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"  # one retraining at a time on the volume
    [seed] = pod["initContainers"]
    assert f"{baked}/models/$name.keras" in seed["command"][-1] and mount(pod, seed, "catdog-models") == models_dir
    [stream] = by_kind(objects, "ImageStream")
    assert stream["spec"]["lookupPolicy"]["local"] is True  # catdog:latest in a Job resolves to the build
    triggers = json.loads(classifier["metadata"]["annotations"]["image.openshift.io/triggers"])
    paths = {trigger["fieldPath"] for trigger in triggers}
    assert {f'spec.template.spec.containers[?(@.name=="{c["name"]}")].image' for c in pod["containers"]} | {
        f'spec.template.spec.initContainers[?(@.name=="{c["name"]}")].image' for c in pod["initContainers"]
    } == paths
    guide = INSTRUCTORS_GUIDE.read_text()
    for command in (
        "oc patch job catdog-train-pretrained",
        "oc patch cronjob catdog-retrain",
        "oc create job --from=cronjob/catdog-retrain",
        "now serving pretrained model",
    ):
        assert command in guide, command


def test_the_v1beta2_overlay_states_the_operator_range_it_really_runs_on():
    """Strimzi before 0.40 needs ZooKeeper (KRaft is behind a feature gate); 0.40-0.45 need both
    annotations for KRaft and node pools; from 0.49 the v1 API is served (CHANGELOG)."""
    [kafka] = by_kind(render(DEPLOY / "overlays" / "v1beta2"), "Kafka")
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1beta2" and "zookeeper" not in kafka["spec"]
    assert kafka["metadata"]["annotations"] == {"strimzi.io/kraft": "enabled", "strimzi.io/node-pools": "enabled"}
    for text in (
        (DEPLOY / "overlays" / "v1beta2" / "kustomization.yaml").read_text(),
        PLATFORM_GUIDE.read_text(),
    ):
        assert "Strimzi 0.40 to 0.48" in text


def test_the_operator_install_adds_no_second_operator_group_to_openshift_operators():
    """openshift-operators comes with OpenShift's `global-operators` OperatorGroup; OLM fails every CSV
    in a namespace with two (TooManyOperatorGroups), other teams' operators included."""
    objects = render(DEPLOY / "operator")
    assert not by_kind(objects, "OperatorGroup")
    [subscription] = by_kind(objects, "Subscription")
    assert subscription["metadata"]["namespace"] == "openshift-operators"


def test_the_operator_follows_a_version_channel_and_upgrades_only_when_approved():
    [subscription] = by_kind(render(DEPLOY / "operator"), "Subscription")
    assert re.fullmatch(r"amq-streams-3\.\d+\.x", subscription["spec"]["channel"]), subscription["spec"]
    assert subscription["spec"]["installPlanApproval"] == "Manual"
    assert "oc patch installplan" in PLATFORM_GUIDE.read_text()  # and the guide says how to approve


def test_alerts_fire_on_the_series_they_are_for_and_not_otherwise(tmp_path):
    """`promtool test rules` on the rendered PrometheusRule: only garbage arriving (no classified series
    at all) must still raise the dead-letter alert; a balanced stream must not raise drift."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (Debian's prometheus package; `make test` installs it as root)")
    (tmp_path / "kustomize").mkdir()
    [rule] = by_kind(render(with_component("monitoring", tmp_path / "kustomize")), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    shutil.copy(REPO / "tests" / "prometheus" / "catdog-rules.test.yaml", tmp_path)
    checked = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "catdog-rules.test.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_containerfile_passes_hadolint():
    result = subprocess.run([tool("hadolint"), str(REPO / "Containerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_containerfile_runs_as_numeric_non_root_user_with_group_zero():
    lines = (REPO / "Containerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users[-1] == "1001:0"
    text = "\n".join(lines)
    for label in ("io.k8s.description", "io.k8s.display-name", "io.openshift.expose-services", "io.openshift.tags"):
        assert label in text
    # The UBI base's fix-permissions: group 0 owns and can write the app root (site-packages for %pip).
    assert "fix-permissions /opt/app-root -P" in text and "EXPOSE 8888" in text
    assert "ARG BASE_IMAGE=registry.access.redhat.com/ubi9/python-311" in text and "FROM ${BASE_IMAGE}" in text


def test_containerfile_needs_no_pipefail_because_oci_builds_ignore_shell():
    """podman builds OCI images by default and OCI has no SHELL: a pipe in a RUN would hide a failure."""
    text = (REPO / "Containerfile").read_text().replace("\\\n", " ")
    runs = [line for line in text.splitlines() if line.startswith("RUN ")]
    assert runs and all("|" not in run.replace("||", "") for run in runs), runs


def get_status(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=3).status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


@pytest.mark.parametrize("given_token", [True, False], ids=["token from the Secret", "generated token"])
def test_start_script_serves_jupyterlab_only_with_the_token(given_token, tmp_path):
    home = tmp_path / "home"
    (home / "notebooks").mkdir(parents=True)
    port, prefix = free_port(), "/notebook/catdog/lab/"
    env = {
        **os.environ,
        "HOME": str(home),
        "JUPYTER_PORT": str(port),
        "NB_PREFIX": prefix.rstrip("/"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "JUPYTER_TOKEN": "s3cret-token" if given_token else "",
    }
    command = ["bash", str(REPO / "scripts" / "start-notebook.sh")]
    as_openshift = ["setpriv", "--reuid=1000670000", "--regid=0", "--clear-groups"]  # a random UID, group 0
    if (
        os.getuid() == 0
        and shutil.which("setpriv")
        and subprocess.run(
            [*as_openshift, "bash", "-c", "python -c pass && jupyter --version"], capture_output=True, env=env
        ).returncode
        == 0
    ):  # only where that user can run this environment's Python and Jupyter
        os.chmod(tmp_path, 0o777)
        os.chmod(home, 0o777)
        command = [*as_openshift, *command]
    elif os.getuid() == 0:
        command.append("--allow-root")  # Jupyter refuses root otherwise, as it should in the image
    log = tmp_path / "jupyter.log"
    with open(log, "wb") as stream:
        process = subprocess.Popen(command, env=env, stdout=stream, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}{prefix}"
        wait_until(
            lambda: (process.poll() is None or pytest.fail(log.read_text())) and get_status(base + "api/status") != 0,
            90,
            lambda: f"JupyterLab to answer:\n{log.read_text()}",
            interval=0.3,
        )
        token = "s3cret-token"
        if not given_token:
            line = next(line for line in log.read_text().splitlines() if "JupyterLab token (generated" in line)
            token = line.rsplit(" ", 1)[1]
            assert len(token) >= 32
        assert get_status(base + "api/status") == 403  # no token, no entry
        assert get_status(base + "api/status?token=wrong") == 403
        assert get_status(f"{base}api/status?token={token}") == 200
        assert "s3cret-token" not in " ".join(open(f"/proc/{process.pid}/cmdline").read().split("\0"))
    finally:
        process.terminate()
        process.wait(30)


def test_image_bake_step_refuses_a_source_too_small_before_training(ocp_lab, tmp_path):
    """The Containerfile's build step with a photo source too small for the sizes asked: it fails before
    any training, naming the build arg to lower. (The step itself runs in every image build: tests/test_image.py
    checks what it baked.)"""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "CATDOG_DATA_SOURCE": str(tmp_path / "photos"),
        "CATDOG_DATA_DIR": str(tmp_path / "data"),
        "CATDOG_MODELS_DIR": str(tmp_path / "models"),
        "CATDOG_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("CATDOG_LAB_DIR", None)
    (tmp_path / "cache").mkdir()
    too_many = subprocess.run(
        ["bash", str(REPO / "scripts" / "bake-image.sh"), str(ocp_lab), "6", "12", "40"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert too_many.returncode != 0 and "EVAL_PER_CLASS" in too_many.stderr, too_many.stderr[-2000:]
    assert not (tmp_path / "models").exists() and not (tmp_path / "data" / "training").exists()


def test_start_script_as_a_workbench_seeds_an_empty_home_and_takes_the_dashboards_options(tmp_path):
    """OpenShift AI mounts a fresh volume on HOME and passes NB_PREFIX plus NOTEBOOK_ARGS (port, base URL,
    an empty token behind its OAuth proxy): the baked lab must appear, and Jupyter must not refuse an
    option given twice."""
    baked, home = tmp_path / "baked", tmp_path / "home"
    for name in ("notebooks/01-cat-dog-lab.ipynb", "models/quick.keras", "data/manifest.csv"):
        (baked / name).parent.mkdir(parents=True, exist_ok=True)
        (baked / name).write_text("{}" if name.endswith(".ipynb") else "baked")
    (home / "models").mkdir(parents=True)
    (home / "models" / "quick.keras").write_text("the learner's own")  # survives a restart
    port, prefix = free_port(), "/notebook/lab-ns/catdog"
    env = {
        **os.environ,
        "HOME": str(home),
        "CATDOG_BAKED_LAB": str(baked),
        "NB_PREFIX": prefix,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "JUPYTER_TOKEN": "",
        # one option per line, as the dashboard writes them
        "NOTEBOOK_ARGS": f"--ServerApp.port={port}\n--ServerApp.token=''\n--ServerApp.password=''\n"
        f"--ServerApp.base_url={prefix}\n--ServerApp.quit_button=False",
    }
    command = ["bash", str(REPO / "scripts" / "start-notebook.sh"), *(["--allow-root"] if os.getuid() == 0 else [])]
    log = tmp_path / "jupyter.log"
    with open(log, "wb") as stream:
        process = subprocess.Popen(command, env=env, stdout=stream, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}{prefix}/api/contents/notebooks"
        wait_until(
            lambda: (process.poll() is None or pytest.fail(log.read_text())) and get_status(url) != 0,
            90,
            lambda: f"JupyterLab to answer:\n{log.read_text()}",
            interval=0.3,
        )
        assert get_status(url) == 200, log.read_text()  # the dashboard's OAuth proxy guards it, not a token
        assert (home / "notebooks" / "01-cat-dog-lab.ipynb").is_file() and (home / "data" / "manifest.csv").is_file()
        assert (home / "models" / "quick.keras").read_text() == "the learner's own"
        assert "token (generated" not in log.read_text()
    finally:
        process.terminate()
        process.wait(30)


def read_write_once_claims(objects: list[dict]) -> set[str]:
    return {
        o["metadata"]["name"]
        for o in by_kind(objects, "PersistentVolumeClaim")
        if o["spec"]["accessModes"] == ["ReadWriteOnce"]
    }


def test_a_readwriteonce_volume_is_never_mounted_by_a_rolling_or_scaled_deployment(rendered):
    """A second pod of a Deployment on another node hangs on Multi-Attach for an RWO volume: such a
    Deployment runs one replica, replaced with Recreate, and no autoscaler adds replicas to it."""
    name, objects = rendered
    claims = read_write_once_claims(objects)
    scaled = {o["spec"]["scaleTargetRef"]["name"] for o in by_kind(objects, "ScaledObject")}
    for deployment in by_kind(objects, "Deployment"):
        spec = deployment["spec"]
        mounted = {
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["template"]["spec"].get("volumes", [])
            if "persistentVolumeClaim" in v
        }
        if mounted & claims:
            where = f"{name}: {deployment['metadata']['name']} mounts {sorted(mounted & claims)}"
            assert spec.get("strategy", {}).get("type") == "Recreate", where
            assert spec.get("replicas", 1) == 1 and deployment["metadata"]["name"] not in scaled, where


def test_the_learners_home_is_the_volume_and_its_token_a_secret_generated_on_the_cluster(default_objects):
    """HOME (where the start script seeds the lab, and where notebooks save and train) is the PVC; the
    token comes from a Secret that no manifest holds, created once by a Job allowed only that; a rebuild
    does not restart the session (paused trigger), a rollout picks the new image up (README)."""
    [notebook] = [d for d in by_kind(default_objects, "Deployment") if d["metadata"]["name"] == "catdog-notebook"]
    pod = notebook["spec"]["template"]["spec"]
    [container] = pod["containers"]
    [volume] = pod["volumes"]
    [mount] = container["volumeMounts"]
    assert mount["name"] == volume["name"] and mount["mountPath"] == "/opt/app-root/src"  # the image's HOME
    assert volume["persistentVolumeClaim"]["claimName"] in read_write_once_claims(default_objects)
    [token] = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] == "JUPYTER_TOKEN"]
    assert not token.get("optional") and token["key"] == "token"
    assert not by_kind(default_objects, "Secret")  # never in git
    [job] = [j for j in by_kind(default_objects, "Job") if j["metadata"]["name"] == "catdog-notebook-token"]
    job_pod = job["spec"]["template"]["spec"]
    script = job_pod["containers"][0]["command"][-1]
    assert f"oc create secret generic {token['name']} --from-literal={token['key']}=" in script
    assert f"oc get secret {token['name']}" in script and "exit 0" in script  # generated once, then kept
    [binding] = [
        b for b in by_kind(default_objects, "RoleBinding") if b["subjects"][0]["name"] == job_pod["serviceAccountName"]
    ]
    [role] = [r for r in by_kind(default_objects, "Role") if r["metadata"]["name"] == binding["roleRef"]["name"]]
    assert {
        (tuple(rule["resources"]), tuple(rule.get("resourceNames", [])), tuple(rule["verbs"])) for rule in role["rules"]
    } == {(("secrets",), (token["name"],), ("get",)), (("secrets",), (), ("create",))}
    [trigger] = json.loads(notebook["metadata"]["annotations"]["image.openshift.io/triggers"])
    assert trigger["paused"] is True
    assert "oc rollout restart deploy/catdog-notebook" in PLATFORM_GUIDE.read_text()


def test_only_the_token_job_gets_a_kubernetes_api_token(rendered):
    name, objects = rendered
    for workload, spec in pod_specs(objects):
        if workload == "Job/catdog-notebook-token":
            assert spec.get("automountServiceAccountToken", True), workload
        else:
            assert spec.get("automountServiceAccountToken") is False, f"{name}: {workload}"


def test_the_classifier_has_minutes_to_load_its_models_before_liveness_counts(default_objects):
    [classifier] = [d for d in by_kind(default_objects, "Deployment") if d["metadata"]["name"] == "catdog-classifier"]
    [container] = classifier["spec"]["template"]["spec"]["containers"]
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 180
    assert "initialDelaySeconds" not in container["livenessProbe"]


def test_real_kafka_gets_kafkas_group_timings_and_only_the_embedded_broker_its_own(default_objects):
    """The 6 s session the embedded broker needs would mean rebalances on throttled pods: the ConfigMap
    leaves Kafka's defaults (45 s / 3 s), which are what the code uses unless told."""
    from catdog.broker import CLIENT_ENV

    [config_map] = by_kind(default_objects, "ConfigMap")
    assert not set(CLIENT_ENV) & set(config_map["data"])
    cluster = load_settings(config_map["data"]).kafka
    assert (cluster.session_timeout_ms, cluster.heartbeat_interval_ms) == (45_000, 3_000)
    embedded = load_settings(CLIENT_ENV).kafka
    assert (embedded.session_timeout_ms, embedded.heartbeat_interval_ms) == (6_000, 2_000)


def test_lab_env_fails_with_the_classifiers_log_when_it_never_becomes_ready(tmp_path):
    """`make lab` / `make demo` must not open JupyterLab beside a classifier that never came up."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    fake = bin_dir / "catdog"  # a broker that starts, a classifier that hangs while loading its models
    fake.write_text(
        '#!/usr/bin/env bash\ncase "$1" in\n'
        '  broker) [ "$2" = start ] && echo "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1" ;;\n'
        '  classify) echo "loading models, stuck"; sleep 600 ;;\nesac\n'
    )
    fake.chmod(0o755)
    env = {
        **os.environ,
        "BIN": str(bin_dir),
        "CATDOG_SERVICE_WAIT_SECONDS": "2",
        "CATDOG_METRICS_PORT": str(free_port()),
    }
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "lab-env.sh"), "echo", "JupyterLab would start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "JupyterLab would start" not in result.stdout
    assert "did not become ready" in result.stderr and "loading models, stuck" in result.stderr
    assert time.monotonic() - started < 30


def test_ci_stops_at_once_when_shared_is_not_beside_the_checkout(tmp_path):
    """`export X=$(cd ../shared && pwd)` would hide the failed cd and run 30 minutes of tests to fail."""
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", checkout / ".ci" / "run")
    (checkout / "Makefile").write_text("test:\n\t@echo the suite ran\n")
    result = subprocess.run(["bash", str(checkout / ".ci" / "run")], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "the suite ran" not in result.stdout
    assert "../shared" in result.stderr and "missing" in result.stderr
