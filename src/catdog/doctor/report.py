"""The doctor's run: every check in the order a learner's first minutes would fail, one line each, a
verdict, and the same as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict

from catdog.config import Settings
from catdog.doctor.cluster import OPERATOR_NAMESPACE, Check, Cluster, Http
from catdog.doctor.services import (
    ROUND_TRIP_TIMEOUT_S,
    check_challenge,
    check_classifier,
    check_dead_letter,
    check_notebooks,
    check_prepull,
    check_round_trip,
    check_wall,
)
from catdog.doctor.streams import (
    broker_partitions,
    check_kafka,
    check_learner_acls,
    check_operator,
    check_storage,
    check_topics,
)
from catdog.room.learners import ROOM_NAMESPACE, Learner


def run_checks(
    settings: Settings,
    cluster: Cluster,
    http: Http,
    room: dict | None = None,
    operator_namespace: str = OPERATOR_NAMESPACE,
    timeout: float = ROUND_TRIP_TIMEOUT_S,
    report: Callable[[Check], None] = lambda check: None,
) -> list[Check]:
    """Every check, in order, each reported as it ends; an exception in one is its failure, not the end.
    ``room``: the secrets `catdog room` wrote (its learners' namespaces and tokens)."""
    learners = [Learner(entry["name"], slug) for slug, entry in sorted((room or {}).get("learners", {}).items())]
    tokens = (
        {learner.namespace: room["learners"][learner.slug]["token"] for learner in learners}
        if room
        else {cluster.namespace or "": None}
    )
    checks: list[Check] = []

    def run(name: str, check: Callable[[], Check]) -> None:
        try:
            result = check()
        except Exception as error:  # noqa: BLE001 - one broken check must not hide the others
            result = Check(name, "FAIL", f"{type(error).__name__}: {error}")
        checks.append(result)
        report(result)

    def topics() -> Check:
        count = broker_partitions(settings)
        try:
            return check_topics(cluster, settings, count)
        finally:
            count.close()  # type: ignore[attr-defined]

    run("operator", lambda: check_operator(cluster, operator_namespace))
    run("kafka", lambda: check_kafka(cluster))
    run("storage", lambda: check_storage(cluster))
    run("topics", topics)
    run("classifier", lambda: check_classifier(cluster))
    run("round trip", lambda: check_round_trip(settings, timeout))
    run("dead letter", lambda: check_dead_letter(settings, timeout))
    run(
        "learner ACLs",
        lambda: check_learner_acls(cluster, learners[0] if learners else None, settings.kafka.predictions_topic),
    )
    run("notebooks", lambda: check_notebooks(cluster, http, tokens))
    run("wall", lambda: check_wall(cluster, http))
    run("challenge", lambda: check_challenge(cluster, settings))
    run("image pre-pull", lambda: check_prepull(cluster))
    return checks


def format_check(check: Check) -> str:
    return f"{check.status:>4}  {check.name:<15} {check.detail}"


def verdict(checks: list[Check]) -> str:
    failed = [c.name for c in checks if c.status == "FAIL"]
    ok, skipped = (sum(c.status == status for c in checks) for status in ("ok", "skip"))
    counts = f"{ok} ok, {len(failed)} failed, {skipped} skipped"
    return f"NOT READY ({counts}): {', '.join(failed)}" if failed else f"ready for the room ({counts})"


def as_json(checks: list[Check]) -> str:
    return json.dumps(
        {
            "ready": not any(c.status == "FAIL" for c in checks),
            "verdict": verdict(checks),
            "checks": [asdict(c) for c in checks],
        },
        indent=1,
    )


def room_namespace(room: dict | None, given: str | None) -> str | None:
    return given or (ROOM_NAMESPACE if room else None)
