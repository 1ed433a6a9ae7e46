"""The moderator's routes: the instructor (joined with the moderator's key, never the room's code) hides a
photo from every projector, pauses and resumes uploads, changes the room's code, blocks a phone. Each
decision is written to the moderation topic before it is answered, then applied here at once; every other
replica (and this one after a restart) applies it as its feed reads it back."""

from __future__ import annotations

import json
import logging

from kafka.errors import KafkaError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from catdog.config import make_room_code
from catdog.wall.guard import error, from_our_pages, moderator_only, read_body
from catdog.wall.links import public_base, upload_url
from catdog.wall.moderation import ACTIONS, Moderation, record

log = logging.getLogger("catdog.wall")
MODERATION_WAIT_SECONDS = 10.0


@from_our_pages
@moderator_only
async def moderate(request: Request):
    """One action: ``{"action": "hide"|"show", "id": "<partition>-<offset>"}``, ``"pause"|"resume"``,
    ``"rotate"`` (answers the new code and links), ``"block"|"unblock"`` with the ``id`` of a photo the
    phone sent."""
    moderation: Moderation = request.app.state.moderation
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
        await run_in_threadpool(write, request, key, value)
    except KafkaError as failed:
        log.warning("moderation %s not written: %s", action, failed)
        return error(503, "Kafka did not take the decision: try again", **{"Retry-After": "5"})
    await request.app.state.hub.publish(moderation.apply(key, value))
    log.info("moderator: %s %s", action, photo or "")  # never the new code: the log is not the instructor's alone
    if code:
        base = public_base(request)
        return JSONResponse({"code": code, "wall": f"{base}/#code={code}", "upload": upload_url(base, code)})
    return JSONResponse(moderation.summary())


def write(request: Request, key: str, value: dict) -> None:
    kafka = request.app.state.settings.kafka
    request.app.state.producer.send(kafka.moderation_topic, key=key.encode(), value=json.dumps(value).encode()).get(
        timeout=MODERATION_WAIT_SECONDS
    )


@moderator_only
async def summary(request: Request):
    return JSONResponse(request.app.state.moderation.summary())


ROUTES = [Route("/api/moderate", moderate, methods=["POST"]), Route("/api/moderation", summary)]
