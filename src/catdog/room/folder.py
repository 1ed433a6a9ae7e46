"""The room's folder as ``catdog room`` writes it, and its saved secrets (``secrets.json``): running the
command again to add learners keeps every token, password and key already handed out."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from catdog.config import make_room_code, new_moderator_key, new_wall_secret
from catdog.identity import new_key
from catdog.room.certificates import PASSWORD_BYTES, make_ca
from catdog.room.learners import DASHBOARD_NAMESPACE, KAFKA_NODES, THREE_NODES, Learner, RoomError
from catdog.room.manifests import (
    private_folder,
    write_dashboard,
    write_learner,
    write_private,
    write_shared,
    write_yaml,
)

TOKEN_BYTES = 32
SECRETS_FILE = "secrets.json"


def read_room(folder: Path) -> dict:
    """The secrets of a room folder ``catdog room`` wrote (``catdog doctor --room`` checks them)."""
    state_file = folder / SECRETS_FILE
    if not state_file.is_file():
        raise RoomError(f"{state_file} is missing: --room takes the folder `catdog room --out` wrote")
    return json.loads(state_file.read_text())


def _load_state(out: Path) -> dict:
    return read_room(out) if (out / SECRETS_FILE).exists() else {}


def _save_state(out: Path, state: dict) -> None:
    write_private(out / SECRETS_FILE, json.dumps(state, indent=1) + "\n")


def write_room(
    out: Path,
    room: list[Learner],
    manifests: Path,
    openshift_ai: bool = False,
    dashboard_namespace: str = DASHBOARD_NAMESPACE,
    apps_domain: str | None = None,
    kafka_nodes: int | None = None,
) -> dict:
    """Write (or add to) the room's folder; returns its secrets (``ca``, ``room_code``, and per learner
    slug its ``name``, ``token`` and ``password``). Learners already in the folder keep their token and
    password, the room its code. With ``openshift_ai``, each learner gets a data science project with a
    workbench instead of a plain notebook Deployment, and the image is listed in the dashboard's
    namespace. ``apps_domain`` (kept for later runs) gives the learners' settings the wall's address.
    ``kafka_nodes`` (1 or 3, kept for later runs; 1 the first time): the room's Kafka nodes."""
    manifests = manifests.resolve()
    if kafka_nodes not in (None, *KAFKA_NODES):
        raise RoomError(
            f"--kafka-nodes {kafka_nodes}: a room's Kafka runs on {' or '.join(map(str, KAFKA_NODES))} nodes"
        )
    for base in ("room/shared", "room/learner", "room/workbench", "openshift-ai", THREE_NODES):
        if not (manifests / base / "kustomization.yaml").is_file():
            raise RoomError(f"{manifests / base} has no kustomization.yaml: give --manifests deploy/openshift")
    private_folder(out)
    write_private(out / ".gitignore", "# Tokens, passwords and the room's CA key: never in git.\n*\n")
    state = _room_state(out, room, openshift_ai, apps_domain)
    state["kafka_nodes"] = kafka_nodes or state.get("kafka_nodes") or KAFKA_NODES[0]
    _save_state(out, state)
    everyone = [Learner(entry["name"], slug_) for slug_, entry in sorted(state["learners"].items())]
    write_shared(out / "room", state, everyone, manifests)
    if openshift_ai:
        write_dashboard(out / "openshift-ai", everyone, manifests, dashboard_namespace)
    for learner in everyone:
        write_learner(out / "learners" / learner.slug, learner, state, manifests, openshift_ai, dashboard_namespace)
    write_yaml(
        out / "kustomization.yaml",
        [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [
                    "room",
                    *(["openshift-ai"] if openshift_ai else []),
                    *(f"learners/{learner.slug}" for learner in everyone),
                ],
            }
        ],
        "The whole room: oc apply -k this folder.",
    )
    return state


def _room_state(out: Path, room: list[Learner], openshift_ai: bool, apps_domain: str | None) -> dict:
    """The folder's secrets with ``room`` added (new learners get a token and a password), saved."""
    state = _load_state(out)
    if state and state.get("openshift_ai", False) != openshift_ai:
        raise RoomError(
            f"{out} holds a room {'with' if state.get('openshift_ai') else 'without'} --openshift-ai: "
            "add learners the same way, or write a new folder"
        )
    state["openshift_ai"] = openshift_ai
    state["ca"] = state.get("ca") or make_ca()
    state["room_code"] = state.get("room_code") or make_room_code()
    state["wall_secret"] = state.get("wall_secret") or new_wall_secret()
    state["moderator_key"] = state.get("moderator_key") or new_moderator_key()
    state["wall_signing_key"] = state.get("wall_signing_key") or new_key()
    state["apps_domain"] = apps_domain or state.get("apps_domain")
    known = state.setdefault("learners", {})
    for learner in room:
        entry = known.setdefault(
            learner.slug, {"token": secrets.token_hex(TOKEN_BYTES), "password": secrets.token_urlsafe(PASSWORD_BYTES)}
        )
        entry["name"] = learner.name
        entry.setdefault("signing_key", new_key())  # what names them on results and votes (catdog.identity)
    _save_state(out, state)
    return state
