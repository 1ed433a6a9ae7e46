"""What Strimzi's User Operator makes of a KafkaUser: its principal and the Kafka ACL bindings it creates.

The room's promises of least privilege are KafkaUser YAML; a broker enforces ACL bindings. This is the
translation between them, rule by rule as the User Operator does it (strimzi/strimzi-kafka-operator,
user-operator/src/main/java/io/strimzi/operator/user/model/):

- the principal is ``User:<name>`` for ``scram-sha-512`` and ``User:CN=<name>`` for ``tls`` (and
  ``tls-external``) authentication, the KafkaUser's metadata.name (KafkaUserModel.getUserName,
  getScramUserName, getTlsUserName);
- ACLs are created only for ``authorization.type: simple`` (KafkaUserModel.fromCrd);
- each rule gives one binding per operation of ``operations``, or the one deprecated ``operation``; both at
  once is invalid (SimpleAclRule.fromCrd);
- ``host`` defaults to ``*`` and ``type`` to ``allow`` (api/.../model/user/acl/AclRule.java);
- topic, group and transactionalId resources keep their name, ``patternType: prefix`` becomes PREFIXED and
  anything else LITERAL; a cluster resource is always the LITERAL ``kafka-cluster``
  (SimpleAclRuleResource.toKafkaResourcePattern);
- operations map one to one onto Kafka's (SimpleAclRule.toKafkaAclOperation).
"""

from __future__ import annotations

from dataclasses import dataclass

from catdog import CatdogError

CLUSTER_RESOURCE = "kafka-cluster"
RESOURCE_TYPES = {"topic": "TOPIC", "group": "GROUP", "cluster": "CLUSTER", "transactionalId": "TRANSACTIONAL_ID"}
OPERATIONS = {
    "Read": "READ",
    "Write": "WRITE",
    "Create": "CREATE",
    "Delete": "DELETE",
    "Alter": "ALTER",
    "Describe": "DESCRIBE",
    "ClusterAction": "CLUSTER_ACTION",
    "AlterConfigs": "ALTER_CONFIGS",
    "DescribeConfigs": "DESCRIBE_CONFIGS",
    "IdempotentWrite": "IDEMPOTENT_WRITE",
    "All": "ALL",
}


class AclError(CatdogError, ValueError):
    """A KafkaUser the User Operator would refuse."""


@dataclass(frozen=True)
class Binding:
    """One Kafka ACL binding, in Kafka's own names (kafka-python's and confluent-kafka's enums)."""

    principal: str
    resource_type: str  # TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID
    name: str
    pattern: str  # LITERAL or PREFIXED
    operation: str  # READ, WRITE, DESCRIBE, ...
    permission: str  # ALLOW or DENY
    host: str


def principal(user: dict) -> str:
    """The principal the broker sees when this KafkaUser logs in."""
    name = user["metadata"]["name"]
    kind = (user.get("spec", {}).get("authentication") or {}).get("type")
    return f"User:CN={name}" if kind in ("tls", "tls-external") else f"User:{name}"


def bindings(user: dict) -> list[Binding]:
    """The ACL bindings the User Operator creates for this KafkaUser."""
    authorization = user.get("spec", {}).get("authorization") or {}
    if authorization.get("type") != "simple":
        return []
    who, made = principal(user), []
    for rule in authorization.get("acls") or []:
        if "operations" in rule and "operation" in rule:
            raise AclError(f"{user['metadata']['name']}: both `operations` and `operation` in one rule")
        operations = rule["operations"] if "operations" in rule else [rule["operation"]]
        resource = rule["resource"]
        kind = RESOURCE_TYPES[resource["type"]]
        if kind == "CLUSTER":
            name, pattern = CLUSTER_RESOURCE, "LITERAL"
        else:
            name, pattern = resource["name"], "PREFIXED" if resource.get("patternType") == "prefix" else "LITERAL"
        made += [
            Binding(
                who,
                kind,
                name,
                pattern,
                OPERATIONS[operation],
                rule.get("type", "allow").upper(),
                rule.get("host", "*"),
            )
            for operation in operations
        ]
    return made


__all__ = ["AclError", "Binding", "CLUSTER_RESOURCE", "bindings", "principal"]
