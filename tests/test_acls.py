"""The room's KafkaUsers become exactly the ACL bindings Strimzi's User Operator would create (each rule of
catdog.acls traced to its source): these bindings are what the secured broker in the tests enforces."""

from __future__ import annotations

import pytest

from catdog.acls import AclError, Binding, bindings, principal
from test_deploy import by_kind, render, write_room


def user(
    name: str, acls: list[dict] | None, authentication: str | None = "scram-sha-512", kind: str = "simple"
) -> dict:
    spec: dict = {"authorization": {"type": kind, "acls": acls}} if acls is not None else {}
    if authentication:
        spec["authentication"] = {"type": authentication}
    return {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser", "metadata": {"name": name}, "spec": spec}


def test_the_principal_is_the_users_name_for_scram_and_its_cn_for_tls():
    assert principal(user("ada", [])) == "User:ada"
    assert principal(user("laptop", [], "tls")) == "User:CN=laptop"
    assert principal(user("external", [], "tls-external")) == "User:CN=external"


def test_each_operation_is_one_binding_with_the_crds_defaults_and_kafkas_names():
    made = bindings(
        user(
            "ada",
            [
                {
                    "resource": {"type": "topic", "name": "images", "patternType": "literal"},
                    "operations": ["Describe", "Write"],
                },
                {
                    "resource": {"type": "group", "name": "ada-", "patternType": "prefix"},
                    "operation": "Read",
                },  # deprecated form
                {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"], "host": "10.0.0.1"},
                {"resource": {"type": "transactionalId", "name": "tx"}, "operations": ["All"], "type": "deny"},
            ],
        )
    )
    assert made == [
        Binding("User:ada", "TOPIC", "images", "LITERAL", "DESCRIBE", "ALLOW", "*"),
        Binding("User:ada", "TOPIC", "images", "LITERAL", "WRITE", "ALLOW", "*"),
        Binding("User:ada", "GROUP", "ada-", "PREFIXED", "READ", "ALLOW", "*"),
        Binding("User:ada", "CLUSTER", "kafka-cluster", "LITERAL", "IDEMPOTENT_WRITE", "ALLOW", "10.0.0.1"),
        Binding("User:ada", "TRANSACTIONAL_ID", "tx", "LITERAL", "ALL", "DENY", "*"),
    ]


def test_no_simple_authorization_means_no_bindings_and_a_rule_with_both_forms_is_refused():
    assert bindings(user("ada", None)) == [] and bindings(user("ada", [], kind="custom")) == []
    with pytest.raises(AclError, match="both `operations` and `operation`"):
        bindings(
            user("ada", [{"resource": {"type": "topic", "name": "x"}, "operations": ["Read"], "operation": "Read"}])
        )


def test_the_rendered_rooms_users_become_their_bindings(tmp_path):
    """Every KafkaUser of a rendered room of two: the learners' exactly their six topics, the services'
    as their YAML says, nothing on the cluster, no group for anyone but the classifier."""
    out = tmp_path / "room"
    write_room(out, "--learners", "Ada,Bob", "--apps-domain", "apps.example.com")
    users = {u["metadata"]["name"]: bindings(u) for u in by_kind(render(out), "KafkaUser")}
    assert {b.resource_type for made in users.values() for b in made} == {"TOPIC", "GROUP"}
    assert {(b.name, b.operation) for b in users["learner-ada"]} == {
        ("images", "READ"),
        ("images", "WRITE"),
        ("predictions", "READ"),
        ("feedback", "READ"),
        ("feedback", "WRITE"),
        ("challenge", "READ"),
        ("challenge-submissions", "WRITE"),
        ("room-progress", "WRITE"),
    }
    assert not [b for made in users.values() for b in made if b.operation == "DESCRIBE"]  # implied by Read, Write
    assert {b.principal for b in users["learner-bob"]} == {"User:learner-bob"}
    assert [(b.name, b.operation) for b in users["catdog-classifier"] if b.resource_type == "GROUP"] == [
        ("catdog-classifier", "READ")
    ]
    assert not [
        b for name, made in users.items() if name != "catdog-classifier" for b in made if b.resource_type == "GROUP"
    ]
