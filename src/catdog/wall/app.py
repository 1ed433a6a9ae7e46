"""The wall's routes: module-level handlers that find the wall's parts (:class:`catdog.wall.parts.Wall`)
with ``wall_of(request)``. The moderator's own routes are in :mod:`catdog.wall.moderation`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from importlib import resources
from pathlib import Path

from kafka.errors import KafkaError
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from catdog.challenge import Scoreboard, read_answers
from catdog.config import MAX_LEARNER_CHARS, Settings
from catdog.exercises import NUMBERS
from catdog.identity import read_keys
from catdog.images import DecodeBudget, ImageError, decode_image
from catdog.kafka.clients import make_producer
from catdog.kafka.photos import send_image
from catdog.labels import LABELS, send_label
from catdog.wall.board import Board
from catdog.wall.cards import MAX_FILENAME_CHARS, card, clean_text, feedback_value
from catdog.wall.desk import ROUTES as DESK_ROUTES
from catdog.wall.feed import DECODE_MEMORY_BYTES, THUMBNAIL_SIDE, Feed, read_thumbnail
from catdog.wall.guard import (
    COOKIE,
    Capacity,
    Passes,
    RateLimits,
    Router,
    SecurityHeaders,
    error,
    from_our_pages,
    joined,
    read_body,
    too_many,
)
from catdog.wall.hub import Hub
from catdog.wall.links import public_base, qr_svg, upload_url
from catdog.wall.moderation import ROUTES as MODERATOR_ROUTES
from catdog.wall.moderation import Moderation
from catdog.wall.parts import Wall, wall_of
from catdog.wall.state import Leaderboard, WallState

log = logging.getLogger("catdog.wall")

STATIC = Path(str(resources.files("catdog") / "wall_static"))
RESULT_WAIT_SECONDS = 20.0  # a phone's one request for its result waits this long, then asks again
MAX_FEEDBACK_BYTES = 4096
COOKIE_SECONDS = 7 * 24 * 3600


@from_our_pages
async def join(request: Request):
    """A phone joins with the room's code; the instructor's browser with the moderator's key."""
    wall = wall_of(request)
    if not wall.limits.join(wall.router.client(request)):
        return too_many("too many attempts: wait a minute")
    body = await read_body(request, 1024)
    try:
        given = json.loads(body or b"{}")
        code, key = str(given.get("code", "")), str(given.get("key", ""))
    except (ValueError, AttributeError):
        code = key = ""
    moderator_joins = bool(key) and wall.passes.right_key(key)
    if not moderator_joins and not wall.passes.right_code(code):
        return error(403, "that is not this room's code")
    response = Response(status_code=204)
    response.set_cookie(
        COOKIE,
        wall.passes.cookie(moderator=moderator_joins),
        httponly=True,
        samesite="strict",
        secure=wall.router.through_tls(request),
        max_age=COOKIE_SECONDS,
    )
    return response


@joined
async def qr(request: Request):
    """The upload page's QR code for the room's current code (it follows when the moderator changes it)."""
    code = wall_of(request).moderation.code
    return Response(qr_svg(upload_url(public_base(request), code)), media_type="image/svg+xml")


@joined
async def room(request: Request):
    return JSONResponse({"upload": f"{public_base(request)}/upload", "cards": wall_of(request).settings.wall.cards})


@joined
async def events(request: Request):
    hub, capacity = wall_of(request).hub, wall_of(request).capacity
    refused = capacity.open_stream(request.state.phone)
    if refused:
        return error(503, refused, **{"Retry-After": "60"})
    queue = hub.open()

    async def stream():
        try:
            while True:
                name, data = await queue.get()
                yield {"event": name, "data": json.dumps(data)}
        finally:
            hub.close(queue)
            capacity.close_stream(request.state.phone)

    return EventSourceResponse(stream(), ping=15)


@joined
async def thumbnail(request: Request):
    partition, offset = request.path_params["partition"], request.path_params["offset"]
    wall = wall_of(request)
    state = wall.state
    if wall.moderation.is_hidden(f"{partition}-{offset}"):
        return error(404, "no such photo on the wall")
    jpeg = state.thumbnails.get(partition, offset)
    # A card's photo dropped from the cache by a backlog (its result is kept, its photo was read): read again.
    if jpeg is None and state.result(partition, offset) and state.thumbnails.was_read(partition, offset):
        async with wall.rereading:  # one at a time: a few cards after a backlog, never a flood
            jpeg = state.thumbnails.get(partition, offset) or await run_in_threadpool(
                read_thumbnail, wall.settings.kafka, partition, offset, wall.budget
            )
        if jpeg is not None:
            state.thumbnails.keep(partition, offset, jpeg)
    if jpeg is None:
        return error(404, "no such photo on the wall")
    return Response(jpeg, media_type="image/jpeg")


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


PAGES = {"upload": "upload.html", "moderate": "moderate.html"}


async def page(request: Request):
    name = PAGES.get(request.url.path.strip("/"), "wall.html")
    return FileResponse(STATIC / name, media_type="text/html")


async def healthz(request: Request):
    return Response("ok\n", media_type="text/plain")


async def readyz(request: Request):
    feed = wall_of(request).feed
    ready = feed is None or feed.ready.is_set()
    return Response("ready\n" if ready else "catching up\n", status_code=200 if ready else 503, media_type="text/plain")


async def no_icon(request: Request):
    return Response(status_code=204)


ROUTES = [
    Route("/", page),
    Route("/upload", page),
    Route("/moderate", page),
    Route("/favicon.ico", no_icon),
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/api/join", join, methods=["POST"]),
    Route("/api/room", room),
    Route("/api/qr.svg", qr),
    Route("/api/events", events),
    Route("/api/thumbs/{partition:int}/{offset:int}", thumbnail),
    Route("/api/photos", upload, methods=["POST"]),
    Route("/api/photos/{partition:int}/{offset:int}", result),
    Route("/api/feedback", feedback, methods=["POST"]),
    *MODERATOR_ROUTES,
    *DESK_ROUTES,
    Mount("/static", StaticFiles(directory=STATIC)),
]


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    """The hub and the producer for the handlers; the feed's thread, which hands events to this loop."""
    loop, wall = asyncio.get_running_loop(), app.state.wall
    wall.hub = hub = Hub(wall.state, wall.moderation)
    wall.producer = await run_in_threadpool(make_producer, wall.settings.kafka)
    if wall.read_topics:
        emit = lambda events: events and asyncio.run_coroutine_threadsafe(hub.publish(events), loop)  # noqa: E731 - one line
        wall.feed = Feed(wall.settings.kafka, wall.state, wall.moderation, emit, wall.budget)
        wall.feed.start()
    try:
        yield
    finally:
        if wall.feed is not None:
            wall.feed.stopping.set()
        await run_in_threadpool(wall.producer.close, 5)


def challenge_leaderboard(settings: Settings) -> Leaderboard | None:
    """The room's challenge where its answers are mounted (an optional Secret: absent, the challenge is off)."""
    path = settings.wall.challenge_answers
    if path is None or not path.is_file():
        return None
    answers = read_answers(path)
    log.info("challenge %s: %d photos; the leaderboard is on", answers.challenge, len(answers.labels))
    return Leaderboard(Scoreboard(answers, read_keys(settings.kafka.learner_keys)))


def create_app(settings: Settings, feed: bool = True) -> Starlette:
    """The wall's web application, for the room's code, secret and moderator's key in ``settings.wall``
    (``catdog wall`` makes those a laptop's wall lacks). ``feed=False`` (the HTTP rules alone) reads no topic."""
    config = settings.wall
    if not config.room_code:
        raise ValueError("the wall needs the room's code (CATDOG_ROOM_CODE; catdog wall makes one on a laptop)")
    app = Starlette(routes=ROUTES, middleware=[Middleware(SecurityHeaders)], lifespan=lifespan)
    moderation = Moderation(config.room_code)
    keys = read_keys(settings.kafka.learner_keys)  # the room's learners: the board's roster
    leaderboard, board = challenge_leaderboard(settings), Board(sorted(keys.learners) if keys else [], NUMBERS, keys)
    app.state.wall = Wall(
        settings=settings,
        state=WallState(settings.kafka.images_topic, cards_kept=config.cards, leaderboard=leaderboard, board=board),
        moderation=moderation,
        passes=Passes(config, moderation),
        router=Router(config),
        limits=RateLimits(config),
        capacity=Capacity(config),
        budget=DecodeBudget(DECODE_MEMORY_BYTES, refuse_larger=True),
        read_topics=feed,
    )
    return app


def serve(settings: Settings) -> None:
    """Run the wall under uvicorn until SIGTERM/SIGINT (uvicorn's own handlers; open streams are closed)."""
    import uvicorn

    wall = settings.wall
    # The client's address and scheme are read by the guard from the entries the router added
    # (CATDOG_WALL_FORWARDED_HOPS), never from what a client wrote: uvicorn's own reading takes the first.
    # No access log: a line per request is the wall's biggest cost under a flood of requests (measured:
    # /healthz answered later by a third with it), and the wall logs what matters (photos, moderation).
    uvicorn.run(
        create_app(settings),
        host=wall.host,
        port=wall.port,
        proxy_headers=False,
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=5,
    )
