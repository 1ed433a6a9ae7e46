"""The phones' routes: a photo uploaded (bounded before its body is read, checked by the one decoder before
anything is produced), its result awaited, a right/wrong label; each refused with why, never a stack trace."""

from __future__ import annotations

import json
import logging
import time

from kafka.errors import KafkaError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from catdog.config import MAX_LEARNER_CHARS
from catdog.images import ImageError, decode_image
from catdog.kafka.photos import send_image
from catdog.labels import LABELS, send_label
from catdog.wall.cards import MAX_FILENAME_CHARS, card, clean_text, feedback_value
from catdog.wall.feed import THUMBNAIL_SIDE
from catdog.wall.guard import (
    error,
    from_our_pages,
    joined,
    read_body,
    too_many,
)
from catdog.wall.parts import wall_of

log = logging.getLogger("catdog.wall")


RESULT_WAIT_SECONDS = 20.0  # a phone's one request for its result waits this long, then asks again
MAX_FEEDBACK_BYTES = 4096


def refused_sender(request: Request) -> JSONResponse | None:
    """Why this phone may not send now (the instructor paused uploads, or blocked it), if it may not."""
    moderation = wall_of(request).moderation
    if moderation.is_blocked(request.state.phone):
        return error(403, "the room's moderator has stopped this phone from sending")
    if moderation.paused:
        return error(503, "the instructor has paused uploads for a moment", **{"Retry-After": "60"})
    return None


@from_our_pages
@joined
async def upload(request: Request):
    wall = wall_of(request)
    capacity = wall.capacity
    refused = refused_sender(request)
    where = wall.router.client(request)
    if refused is None and not wall.limits.upload(where, request.state.phone):
        refused = too_many("too many photos at once: wait a minute")
    if refused is None and not await capacity.upload_slot():  # bounded before a byte of the body is read
        refused = error(503, "the wall is busy with other photos: try again in a moment", **{"Retry-After": "2"})
    if refused is not None:
        # Closed after the answer: a refused photo's megabytes are not read only to be thrown away.
        refused.headers["Connection"] = "close"
        return refused
    try:
        return await checked_and_sent(request, where)
    finally:
        capacity.upload_done()


async def checked_and_sent(request: Request, where: str):
    """The photo's bytes (up to the size limit), through the one decoder, then to Kafka."""
    wall = wall_of(request)
    kafka = wall.settings.kafka
    data = await read_body(request, kafka.max_image_bytes)
    if data is None:
        return error(413, f"the photo is larger than {kafka.max_image_bytes:,} bytes; nothing was sent")
    filename = clean_text(request.query_params.get("filename", ""), MAX_FILENAME_CHARS) or "photo.jpg"
    learner = clean_text(request.query_params.get("learner", ""), MAX_LEARNER_CHARS)
    try:
        await run_in_threadpool(
            decode_image,
            data,
            max_bytes=kafka.max_image_bytes,
            max_pixels=kafka.max_image_pixels,
            target_size=THUMBNAIL_SIDE,
            budget=wall.budget,
        )
    except ImageError as refused:
        return error(422, f"{refused} — nothing was sent")
    try:
        sent = await run_in_threadpool(send_image, wall.producer, kafka, data, filename, learner=learner)
    except KafkaError as failed:
        log.warning("photo %s not sent: %s", filename, failed)
        return error(503, "Kafka did not take the photo: try again in a moment", **{"Retry-After": "5"})
    wall.moderation.sent_by(f"{sent.partition}-{sent.offset}", request.state.phone)
    log.info(
        "photo %s from %s (%s) -> %s[%d]@%d", filename, learner or "-", where, sent.topic, sent.partition, sent.offset
    )
    return JSONResponse(
        {"topic": sent.topic, "partition": sent.partition, "offset": sent.offset, "key": sent.key}, status_code=201
    )


@joined
async def result(request: Request):
    """This photo's result when there is one, waiting up to ``?wait=`` seconds (at most, and by default,
    RESULT_WAIT_SECONDS) for it; 204: not yet, ask again."""
    partition, offset = request.path_params["partition"], request.path_params["offset"]
    try:
        wait = min(RESULT_WAIT_SECONDS, max(0.0, float(request.query_params.get("wait", RESULT_WAIT_SECONDS))))
    except ValueError:
        return error(400, "wait must be a number of seconds")
    deadline = time.monotonic() + wait
    wall = wall_of(request)
    while (found := wall.state.result(partition, offset)) is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Response(status_code=204)
        await wall.hub.wait(remaining)
    if wall.moderation.is_hidden(f"{partition}-{offset}"):
        return error(404, "no such photo on the wall")
    return JSONResponse(card(found, None))


@from_our_pages
@joined
async def feedback(request: Request):
    wall = wall_of(request)
    kafka = wall.settings.kafka
    if wall.moderation.is_blocked(request.state.phone):
        return error(403, "the room's moderator has stopped this phone from sending")
    if not wall.limits.label(request.state.phone):
        return too_many("too many answers at once: wait a minute")
    body = await read_body(request, MAX_FEEDBACK_BYTES)
    try:
        given = json.loads(body or b"")
        partition, offset, label = given["partition"], given["offset"], given["label"]
    except (ValueError, TypeError, KeyError):
        return error(400, "expected JSON with partition, offset and label")
    if label not in LABELS or type(partition) is not int or type(offset) is not int:
        return error(400, "label must be cat or dog, partition and offset whole numbers")
    found = wall.state.result(partition, offset)
    if found is None:
        return error(404, "no result for that photo on this wall")
    learner = clean_text(str(given.get("learner") or ""), MAX_LEARNER_CHARS)
    key = str(found["key"])
    try:
        await run_in_threadpool(
            send_label,
            wall.producer,
            kafka,
            key,
            feedback_value(found, label, learner, request.state.phone),
        )
    except KafkaError as failed:
        log.warning("feedback for %s not written: %s", key, failed)
        return error(503, "Kafka did not take the answer: try again in a moment", **{"Retry-After": "5"})
    return JSONResponse({"key": key, "label": label}, status_code=201)
