"""The checks of the room's Kafka: the operator, the Kafka cluster and its storage, the topics, and what a
learner's KafkaUser may do (the ACLs, probed from inside a learner's notebook)."""

from __future__ import annotations

from collections.abc import Callable

from catdog.config import Settings
from catdog.doctor.cluster import (
    NOTEBOOK,
    NOTEBOOK_CONTAINER,
    OPERATOR_NAMESPACE,
    OPERATOR_SUBSCRIPTION,
    Check,
    Cluster,
    is_ready,
    not_ready_reason,
)
from catdog.doctor.services import probe_photo
from catdog.room.learners import KAFKA_CLUSTER, Learner


def check_operator(cluster: Cluster, namespace: str = OPERATOR_NAMESPACE) -> Check:
    subscription = cluster.get("subscriptions.operators.coreos.com", OPERATOR_SUBSCRIPTION, namespace)
    if subscription is None:
        return Check(
            "operator",
            "FAIL",
            f"no Subscription {OPERATOR_SUBSCRIPTION} in {namespace}: oc apply -k deploy/openshift/operator",
        )
    status = subscription.get("status") or {}
    installed, state = status.get("installedCSV"), status.get("state", "unknown")
    if not installed:
        # installPlanApproval: Manual: the first InstallPlan waits for a person.
        plan = (status.get("installPlanRef") or {}).get("name", "its InstallPlan")
        return Check(
            "operator",
            "FAIL",
            f"AMQ Streams not installed (state {state}): approve {plan} "
            f"(oc patch installplan {plan} -n {namespace} --type merge "
            '-p \'{"spec":{"approved":true}}\')',
        )
    note = "" if state == "AtLatestKnown" else f" (state {state}: an upgrade awaits approval)"
    return Check("operator", "ok", f"{installed} installed{note}")


def check_kafka(cluster: Cluster) -> Check:
    kafka = cluster.get("kafka.kafka.strimzi.io", KAFKA_CLUSTER)
    if kafka is None:
        return Check("kafka", "FAIL", f"no Kafka {KAFKA_CLUSTER} in {cluster.namespace or 'the current project'}")
    if not is_ready(kafka):
        return Check("kafka", "FAIL", f"{KAFKA_CLUSTER} not Ready: {not_ready_reason(kafka)}")
    status = kafka["status"]
    listeners = ", ".join(listener.get("name", "?") for listener in status.get("listeners", []))
    return Check(
        "kafka", "ok", f"{KAFKA_CLUSTER} Ready, Kafka {status.get('kafkaVersion', '?')}, listeners {listeners}"
    )


def check_storage(cluster: Cluster) -> Check:
    """Which Kafka the room runs, and what a failure would lose: the room's memory (photos, votes,
    hidden photos, blocked phones, the challenge and its submissions) is Kafka's."""
    listed = (cluster.get("kafkanodepools.kafka.strimzi.io") or {}).get("items", [])
    pools = [
        pool for pool in listed if (pool["metadata"].get("labels") or {}).get("strimzi.io/cluster") == KAFKA_CLUSTER
    ]
    if not pools:
        return Check("storage", "FAIL", f"no KafkaNodePool for {KAFKA_CLUSTER}: apply the room's folder again")
    nodes = sum(pool["spec"]["replicas"] for pool in pools if "broker" in pool["spec"].get("roles", []))
    volumes = [
        volume for pool in pools for volume in (pool["spec"]["storage"].get("volumes") or [pool["spec"]["storage"]])
    ]
    if any(volume["type"] != "persistent-claim" for volume in volumes):
        return Check(
            "storage",
            "FAIL",
            f"{KAFKA_CLUSTER}: ephemeral storage: a restart of a Kafka pod (a drained node, an "
            "eviction) empties the room: every photo, vote, hidden photo and the challenge. Use the kit's "
            "persistent-claim node pool",
        )
    sizes = ", ".join(sorted({volume["size"] for volume in volumes}))
    kept = "kept" if all(volume.get("deleteClaim") is False for volume in volumes) else "deleted"
    if nodes >= 3:
        return Check(
            "storage",
            "ok",
            f"{nodes} Kafka nodes on {sizes} claims ({kept} with the cluster), topics on "
            "every node: a pod's restart or a node's loss loses nothing",
        )
    return Check(
        "storage",
        "ok",
        f"{nodes} Kafka node on a {sizes} claim ({kept} with the cluster): a pod restart loses "
        "nothing; losing its node stops the room (--kafka-nodes 3 survives it)",
    )


def check_topics(cluster: Cluster, settings: Settings, partitions_on_broker: Callable[[str], int | None]) -> Check:
    """Each topic the lab uses is a Ready KafkaTopic, the broker has its partitions, and an image as large
    as the settings allow fits in it."""
    kafka = settings.kafka
    listed = (cluster.get("kafkatopics.kafka.strimzi.io") or {}).get("items", [])
    by_name = {t["spec"].get("topicName") or t["metadata"]["name"]: t for t in listed}
    problems, fine = [], []
    for name in (kafka.images_topic, kafka.predictions_topic, kafka.dlq_topic, kafka.feedback_topic):
        topic = by_name.get(name)
        if topic is None:
            problems.append(f"{name}: no KafkaTopic")
            continue
        if not is_ready(topic):
            problems.append(f"{name}: not Ready ({not_ready_reason(topic)})")
            continue
        wanted = int(topic["spec"].get("partitions", 1))
        on_broker = partitions_on_broker(name)
        if on_broker != wanted:
            problems.append(f"{name}: {on_broker or 'no'} partition(s) on the broker, the KafkaTopic says {wanted}")
            continue
        limit = int((topic["spec"].get("config") or {}).get("max.message.bytes", 0)) or None
        if name in (kafka.images_topic, kafka.dlq_topic) and limit is not None and limit < kafka.max_message_bytes:
            problems.append(
                f"{name}: max.message.bytes {limit:,} is under the {kafka.max_message_bytes:,} an image "
                "of CATDOG_MAX_IMAGE_BYTES needs"
            )
            continue
        fine.append(f"{name} {wanted}")
    if problems:
        return Check("topics", "FAIL", "; ".join(problems))
    return Check(
        "topics", "ok", f"partitions: {', '.join(fine)}; images up to {kafka.max_image_bytes // 2**20} MiB fit"
    )


def check_learner_acls(cluster: Cluster, learner: Learner | None, predictions_topic: str) -> Check:
    """In a learner's own notebook pod, with their own settings and KafkaUser: writing results must be
    refused (only the classifier writes predictions), or any learner could forge the wall's verdicts."""
    if learner is None:
        return Check("learner ACLs", "skip", "no room (--room DIR): the single-learner lab has no ACLs")
    result = cluster.run(
        "exec",
        "-i",
        "-n",
        learner.namespace,
        f"deployment/{NOTEBOOK}",
        "-c",
        NOTEBOOK_CONTAINER,
        "--",
        *learner_acl_probe(predictions_topic),
        input=probe_photo(),
    )
    return learner_acl_verdict(
        learner, predictions_topic, result.returncode, (result.stdout + result.stderr).decode(errors="replace")
    )


def learner_acl_probe(predictions_topic: str) -> list[str]:
    """What the learner-ACL check runs as the learner: a photo to the results topic, from standard input."""
    return ["catdog", "send", "--topic", predictions_topic, "-"]


def learner_acl_verdict(learner: Learner, predictions_topic: str, returncode: int, output: str) -> Check:
    """The learner-ACL check's verdict on what the probe did (tests/test_secured_kafka.py runs the probe
    against a broker that enforces the room's ACLs)."""
    if returncode == 0:
        return Check(
            "learner ACLs",
            "FAIL",
            f"{learner.name} wrote to {predictions_topic} from their notebook: "
            "the broker enforces no ACLs (the Kafka's authorization, the KafkaUsers)",
        )
    if "authoriz" not in output.lower():
        return Check("learner ACLs", "FAIL", f"could not try as {learner.name}: {output.strip()[-200:]}")
    return Check(
        "learner ACLs", "ok", f"{learner.name}'s write to {predictions_topic} was refused (TopicAuthorizationFailed)"
    )


def broker_partitions(settings: Settings) -> Callable[[str], int | None]:
    from catdog.kafka.clients import make_consumer

    consumer = make_consumer(settings.kafka)

    def count(topic: str) -> int | None:
        found = consumer.partitions_for_topic(topic)
        return len(found) if found else None

    count.close = consumer.close  # type: ignore[attr-defined]
    return count
