"""The instructor's hand on the wall: a photo hidden from every projector, uploads paused, the room's code
changed, a phone blocked. Each decision is a record on the compacted moderation topic, keyed by what it
decides (``hide:<partition>-<offset>``, ``paused``, ``code``, ``block:<phone>``), so it outlives a wall
restart, reaches every replica, and the latest decision on each thing is the one that stands. Only the
wall's KafkaUser may read or write the topic: the room's code on it is no one else's to read."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from catdog.wall.state import put_bounded

HIDDEN_KEPT = 10_000  # photos hidden (a key each): far more than a workshop hides, bounded all the same
BLOCKED_KEPT = 10_000
PHONES_KEPT = 2048  # which phone sent each recent photo (for "block the phone that sent this")
ACTIONS = ("hide", "show", "pause", "resume", "rotate", "block", "unblock")


def record(
    action: str, *, photo: str | None = None, phone: str | None = None, code: str | None = None
) -> tuple[str, dict]:
    """The moderation topic's (key, value) for one of the instructor's actions."""
    if action in ("hide", "show"):
        return f"hide:{photo}", {"hidden": action == "hide"}
    if action in ("pause", "resume"):
        return "paused", {"paused": action == "pause"}
    if action in ("block", "unblock"):
        return f"block:{phone}", {"blocked": action == "block"}
    if action == "rotate":
        return "code", {"code": code}
    raise ValueError(f"no such moderation action: {action!r}")


@dataclass
class Moderation:
    """What the instructor decided, as read from the topic (and applied at once where it was decided).
    ``apply`` returns the events the viewers need: a card to take down, the code that changed, a pause."""

    code: str
    paused: bool = False
    hidden: OrderedDict = field(default_factory=OrderedDict)  # "<partition>-<offset>" -> True
    blocked: OrderedDict = field(default_factory=OrderedDict)  # phone -> True
    phones: OrderedDict = field(default_factory=OrderedDict)  # "<partition>-<offset>" -> the phone that sent it
    lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, key: str, value: dict) -> list[tuple[str, dict]]:
        """One record of the topic; anything that is not one of ours is refused with ValueError."""
        kind, _, subject = key.partition(":")
        with self.lock:
            if kind == "hide" and subject and isinstance(value.get("hidden"), bool):
                return self._hide(subject, value["hidden"])
            if kind == "paused" and isinstance(value.get("paused"), bool):
                self.paused = value["paused"]
                return [("paused", {"paused": self.paused})]
            if kind == "block" and subject and isinstance(value.get("blocked"), bool):
                if value["blocked"]:
                    put_bounded(self.blocked, subject, True, BLOCKED_KEPT)
                else:
                    self.blocked.pop(subject, None)
                return []
            if kind == "code" and isinstance(value.get("code"), str) and len(value["code"]) >= 8:
                changed, self.code = value["code"] != self.code, value["code"]
                return [("code", {})] if changed else []  # never the code itself: viewers include phones
        raise ValueError(f"not a moderation record: {key!r}")

    def _hide(self, photo: str, hidden: bool) -> list[tuple[str, dict]]:
        if hidden:
            put_bounded(self.hidden, photo, True, HIDDEN_KEPT)
            return [("hide", {"id": photo})]
        self.hidden.pop(photo, None)
        return [("show", {"id": photo})]

    def is_hidden(self, photo: str) -> bool:
        return photo in self.hidden

    def is_blocked(self, phone: str) -> bool:
        return phone in self.blocked

    def sent_by(self, photo: str, phone: str) -> None:
        with self.lock:
            put_bounded(self.phones, photo, phone, PHONES_KEPT)

    def summary(self) -> dict:
        """For the moderator's page: what stands now (never the code: it is the page's own answer)."""
        with self.lock:
            return {
                "paused": self.paused,
                "hidden": list(self.hidden)[-100:],
                "blocked": len(self.blocked),
                "phones": dict(self.phones),
            }


def parse(value: bytes | None) -> dict:
    decoded = json.loads(value) if value else None
    if not isinstance(decoded, dict):
        raise ValueError("not a JSON object")
    return decoded
