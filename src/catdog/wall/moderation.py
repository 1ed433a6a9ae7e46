"""The instructor's hand on the wall: a photo hidden from every projector, uploads paused, the room's code
changed, a phone blocked. Each decision is a record on the compacted moderation topic, keyed by what it
decides (``hide:<partition>-<offset>``, ``paused``, ``code``, ``block:<phone>``), so it outlives a wall
restart, reaches every replica, and the latest decision on each thing is the one that stands. Only the
wall's KafkaUser may read or write the topic: the room's code on it is no one else's to read.

The moderator's routes (below): the instructor (joined with the moderator's key, never the room's code) hides a
photo from every projector, pauses and resumes uploads, changes the room's code, blocks a phone. Each
decision is written to the moderation topic before it is answered, then applied here at once; every other
replica (and this one after a restart) applies it as its feed reads it back.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from kafka.errors import KafkaError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from catdog.config import make_room_code
from catdog.wall.guard import error, from_our_pages, moderator_only, read_body
from catdog.wall.links import public_base, upload_url
from catdog.wall.parts import Wall, wall_of
from catdog.wall.state import put_bounded

log = logging.getLogger("catdog.wall")
MODERATION_WAIT_SECONDS = 10.0

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


@from_our_pages
@moderator_only
async def moderate(request: Request):
    """One action: ``{"action": "hide"|"show", "id": "<partition>-<offset>"}``, ``"pause"|"resume"``,
    ``"rotate"`` (answers the new code and links), ``"block"|"unblock"`` with the ``id`` of a photo the
    phone sent."""
    wall = wall_of(request)
    moderation = wall.moderation
    try:
        given = json.loads(await read_body(request, 1024) or b"")
        action, photo = given["action"], str(given.get("id", ""))
    except (ValueError, TypeError, KeyError):
        return error(400, "expected JSON with an action")
    if action not in ACTIONS:
        return error(400, f"action must be one of {', '.join(ACTIONS)}")
    phone = moderation.phones.get(photo) if action in ("block", "unblock") else None
    if action in ("block", "unblock") and phone is None:
        return error(404, "no phone on record for that photo (only photos sent through this wall have one)")
    code = make_room_code() if action == "rotate" else None
    key, value = record(action, photo=photo, phone=phone, code=code)
    try:
        await run_in_threadpool(write, wall, key, value)
    except KafkaError as failed:
        log.warning("moderation %s not written: %s", action, failed)
        return error(503, "Kafka did not take the decision: try again", **{"Retry-After": "5"})
    await wall.hub.publish(moderation.apply(key, value))
    log.info("moderator: %s %s", action, photo or "")  # never the new code: the log is not the instructor's alone
    if code:
        base = public_base(request)
        return JSONResponse({"code": code, "wall": f"{base}/#code={code}", "upload": upload_url(base, code)})
    return JSONResponse(moderation.summary())


def write(wall: Wall, key: str, value: dict) -> None:
    """One decision onto the moderation topic, acknowledged before the moderator is answered."""
    topic = wall.settings.kafka.moderation_topic
    wall.producer.send(topic, key=key.encode(), value=json.dumps(value).encode()).get(timeout=MODERATION_WAIT_SECONDS)


@moderator_only
async def summary(request: Request):
    return JSONResponse(wall_of(request).moderation.summary())


ROUTES = [Route("/api/moderate", moderate, methods=["POST"]), Route("/api/moderation", summary)]
