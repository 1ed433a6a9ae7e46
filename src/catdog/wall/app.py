"""The wall's routes: module-level handlers that find the wall's parts (:class:`catdog.wall.parts.Wall`)
with ``wall_of(request)``. The phones' own routes are in :mod:`catdog.wall.phones`, the moderator's in
:mod:`catdog.wall.moderation`, the board's in :mod:`catdog.wall.desk`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from importlib import resources
from pathlib import Path

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from catdog.challenge import Scoreboard, read_answers
from catdog.config import Settings
from catdog.exercises import NUMBERS
from catdog.identity import read_keys
from catdog.images import DecodeBudget
from catdog.kafka.clients import make_producer
from catdog.wall.board import Board
from catdog.wall.desk import ROUTES as DESK_ROUTES
from catdog.wall.feed import DECODE_MEMORY_BYTES, Feed, read_thumbnail
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
from catdog.wall.phones import feedback, result, upload
from catdog.wall.state import Leaderboard, WallState

log = logging.getLogger("catdog.wall")


STATIC = Path(str(resources.files("catdog") / "wall_static"))
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
