"""Model versions: every trained model kept with its card, one version serving per model, and a way back.

In the models folder (CATDOG_MODELS_DIR), next to what the classifier serves and hot-reloads:

    <name>.keras, <name>.json          the serving version and its card (the classifier watches the file)
    versions/<name>/<version>.keras    every version registered (the version: the file's sha256, 12 hex
    versions/<name>/<version>.json     digits, as results and metrics show it) and its card: data,
                                       check-set scores, parent version, the gate's decision
    versions/<name>/history.jsonl      what happened when: served, refused (why), rolled back

Serving a version replaces ``<name>.keras`` in one rename, so the classifier never reads half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from catdog import CatdogError
from catdog.download import sha256_file

VERSIONS = "versions"
HISTORY = "history.jsonl"
PROMOTION_WAIT_SECONDS = 1800.0  # another retraining at its gate: its scoring takes minutes, not hours


class RegistryError(CatdogError):
    """A version that does not exist, or nothing to roll back to."""


def model_version(path: Path) -> str:
    """A model file's version as results and metrics show it: the first 12 hex digits of its sha256."""
    return sha256_file(path)[:12]


def card_path(model_path: Path) -> Path:
    """A model's card: the JSON file beside it."""
    return model_path.with_suffix(".json")


def card(models_dir: Path, name: str, version: str) -> dict:
    """A kept version's card: its data, the Kafka records it trained on, scores, parent, the gate's decision."""
    path = _folder(models_dir, name) / f"{version}.json"
    if not path.is_file():
        raise RegistryError(f"no version {version} of {name} in {_folder(models_dir, name)}")
    return json.loads(path.read_text())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _folder(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / VERSIONS / name


def serving(models_dir: Path, name: str) -> str | None:
    """The version the classifier serves (None when there is no model file yet)."""
    path = Path(models_dir) / f"{name}.keras"
    return model_version(path) if path.is_file() else None


def _copy_atomically(source: Path, target: Path) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def register(models_dir: Path, name: str, model_path: Path, card: dict) -> str:
    """Keep ``model_path`` as a version of ``name`` with its card (its parent: the version serving now)."""
    folder = _folder(models_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    version = model_version(model_path)
    _copy_atomically(model_path, folder / f"{version}.keras")
    parent = serving(models_dir, name)
    record = {
        **card,
        "version": version,
        "parent": parent if parent != version else card.get("parent"),
        "registered_at": _now(),
    }
    (folder / f"{version}.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return version


def _log(models_dir: Path, name: str, event: str, version: str, **details) -> None:
    folder = _folder(models_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / HISTORY, "a") as stream:
        stream.write(json.dumps({"at": _now(), "event": event, "version": version, **details}) + "\n")


def history(models_dir: Path, name: str) -> list[dict]:
    path = _folder(models_dir, name) / HISTORY
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def serve(models_dir: Path, name: str, version: str, event: str = "served", **details) -> None:
    """Make ``version`` the one the classifier serves (it follows within its reload period)."""
    source = _folder(models_dir, name) / f"{version}.keras"
    if not source.is_file():
        raise RegistryError(f"no version {version} of {name} in {source.parent}")
    target = Path(models_dir) / f"{name}.keras"
    shutil.copyfile(source.with_suffix(".json"), card_path(target))
    _copy_atomically(source, target)
    _log(models_dir, name, event, version, **details)


@contextlib.contextmanager
def promotion_lock(models_dir: Path, name: str, timeout: float = PROMOTION_WAIT_SECONDS):
    """One gate and promotion at a time on the models volume: the one-off Job and the CronJob may reach
    their gates together, and each must compare its candidate with the model that serves when it promotes,
    not one the other has just replaced. An exclusive flock (both run on the volume's node)."""
    lock = Path(models_dir) / f".{name}.promotion.lock"
    Path(models_dir).mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"another retraining has held {lock} for {timeout:.0f} s: try again later"
                    ) from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def adopt(models_dir: Path, name: str) -> str | None:
    """Register the model serving now if it is not a version yet (a model trained before versions were
    kept, or baked into the image), as served: rollback can return to it."""
    version = serving(models_dir, name)
    if version is None or (_folder(models_dir, name) / f"{version}.keras").is_file():
        return version
    path = Path(models_dir) / f"{name}.keras"
    card = json.loads(card_path(path).read_text()) if card_path(path).is_file() else {}
    register(models_dir, name, path, {**card, "adopted": "serving before versions were kept"})
    _log(models_dir, name, "served", version, reason="serving before the first retrain")
    return version


def refuse(models_dir: Path, name: str, version: str, reason: str) -> None:
    """Record that the gate kept ``version`` out of service, and why (it stays listed, never served)."""
    _log(models_dir, name, "refused", version, reason=reason)


def rollback(models_dir: Path, name: str, version: str | None = None) -> str:
    """Serve ``version``, or the one served before the current one; returns the version now serving."""
    current = serving(models_dir, name)
    if version is None:
        served = [
            entry["version"] for entry in history(models_dir, name) if entry["event"] in ("served", "rolled-back")
        ]
        earlier = [v for v in reversed(served) if v != current]
        if not earlier:
            raise RegistryError(f"{name}: no earlier version was ever served; `catdog models list` shows them")
        version = earlier[0]
    serve(models_dir, name, version, event="rolled-back", previous=current)
    return version


@dataclass(frozen=True)
class Listed:
    version: str
    registered_at: str
    parent: str | None
    check_accuracy: float | None
    room_accuracy: float | None
    status: str  # serving, refused: <reason>, served before, registered


def versions(models_dir: Path, name: str) -> list[Listed]:
    """Every registered version of ``name``, oldest first, with its scores and what became of it."""
    folder = _folder(models_dir, name)
    now = serving(models_dir, name)
    last = {entry["version"]: entry for entry in history(models_dir, name)}
    listed = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = json.loads(path.read_text())
        scores = (record.get("gate") or {}).get("candidate") or {}
        event = last.get(record["version"], {})
        if record["version"] == now:
            status = "serving"
        elif event.get("event") == "refused":
            status = f"refused: {event['reason']}"
        else:
            status = "served before" if event else "registered"
        listed.append(
            Listed(
                record["version"],
                record.get("registered_at", ""),
                record.get("parent"),
                scores.get("check"),
                scores.get("room"),
                status,
            )
        )
    return sorted(listed, key=lambda item: item.registered_at)


def versions_table(listed: list[Listed]) -> str:
    """The kept versions as a table (``catdog models list``, notebook 04): scores, parent, what became of each."""
    lines = [f"{'version':<13} {'registered':<26} {'parent':<13} {'check':>6} {'room':>6}  status"]
    for item in listed:
        check = "-" if item.check_accuracy is None else f"{item.check_accuracy:.3f}"
        room = "-" if item.room_accuracy is None else f"{item.room_accuracy:.3f}"
        lines.append(
            f"{item.version:<13} {item.registered_at[:26]:<26} {item.parent or '-':<13} {check:>6} {room:>6}  "
            f"{item.status}"
        )
    return "\n".join(lines)


# The gate refuses a candidate when the photos the two models disagree on say it is worse with less than
# this chance of being a coincidence. 0.2, not the usual 0.05: refusing a good candidate costs one more
# retraining (the room's labels stay), serving a worse one costs every learner's results.
GATE_ALPHA = 0.2


def worse_by_chance(candidate: list[bool], serving: list[bool]) -> tuple[int, int, float]:
    """An exact one-sided McNemar test on the same photos: of those exactly one model gets right, how many
    the candidate alone gets (``wins``), how many the serving model alone (``losses``), and the chance of at
    least that many losses if each disagreement were a coin toss (a candidate as good as the serving one)."""
    if len(candidate) != len(serving):
        raise ValueError("the two models were scored on different photos")
    wins = sum(c and not s for c, s in zip(candidate, serving))
    losses = sum(s and not c for c, s in zip(candidate, serving))
    disagreements = wins + losses
    p = sum(math.comb(disagreements, k) for k in range(losses, disagreements + 1)) / 2**disagreements
    return wins, losses, p


def _verdict(where: str, candidate: list[bool], serving: list[bool]) -> tuple[bool, str]:
    wins, losses, p = worse_by_chance(candidate, serving)
    worse = losses > wins and p < GATE_ALPHA
    said = (
        f"{where} {sum(candidate) / len(candidate):.3f} vs {sum(serving) / len(serving):.3f} serving: right alone on "
        f"{wins}, wrong alone on {losses} of {len(candidate)} (p = {p:.2f})"
    )
    return worse, said


def gate(candidate: dict, current: dict | None) -> tuple[bool, str]:
    """Whether a candidate may serve: not shown worse than the serving model, photo by photo, on the fixed
    check set, nor on the room's voted photos it did not train on (when there are any): refused when it
    loses more of the photos they disagree on than it wins, by more than chance explains (GATE_ALPHA).
    Scores are per-photo rightness (``check``, and ``room`` or None) in the same order for both models;
    ``current`` is None when nothing serves yet."""
    if current is None:
        return True, f"nothing was serving; check set {sum(candidate['check']) / len(candidate['check']):.3f}"
    worse, said = _verdict("check set", candidate["check"], current["check"])
    if worse:
        return False, f"worse on the check set: {said}"
    if candidate.get("room") and current.get("room"):
        room_worse, room_said = _verdict("room's held-out photos", candidate["room"], current["room"])
        if room_worse:
            return False, f"worse on the room's held-out photos: {room_said}"
        said += f"; {room_said}"
    return True, said


__all__ = [
    "Listed",
    "RegistryError",
    "adopt",
    "card",
    "card_path",
    "gate",
    "GATE_ALPHA",
    "worse_by_chance",
    "model_version",
    "history",
    "refuse",
    "register",
    "rollback",
    "serve",
    "serving",
    "versions",
    "versions_table",
]
