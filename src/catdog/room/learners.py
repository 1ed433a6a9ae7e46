"""A room's learners and the names everything of theirs is made from: namespaces, KafkaUsers, the
room's own names on the cluster, and where each learner finds their lab."""

from __future__ import annotations

import re
from dataclasses import dataclass

from catdog import CatdogError

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
# The room's Kafka: one node (its pod's restart keeps everything on its volume) or three (a node's loss too).
KAFKA_NODES = (1, 3)
THREE_NODES = "components/three-nodes"
LEARNER_KEYS_SECRET = "catdog-learner-keys"  # mounted by the classifier and the retraining
WALL_SIGNER = "catdog-wall"  # the wall's name in the key table: its Deployment's CATDOG_LEARNER


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


def learners_named(names: list[str] | None = None, count: int | None = None, prefix: str = "learner") -> list[Learner]:
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


def wall_url(apps_domain: str | None) -> str | None:
    """The wall's address: its Route's default host on the cluster's apps domain."""
    return f"https://catdog-wall-{ROOM_NAMESPACE}.{apps_domain}" if apps_domain else None


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
