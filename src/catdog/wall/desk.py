"""The instructor's desk: the board's routes. The board itself (every learner's row) is for the moderator's
key alone; a hand marked answered and the projector's progress shown or hidden are decisions written to the
moderation topic, as the moderator's others are, so every replica (and this one after a restart) agrees.
The projector may show the room's progress without a name, when the instructor turns it on."""

from __future__ import annotations

import json
import logging
import time

from kafka.errors import KafkaError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from catdog.config import MAX_LEARNER_CHARS
from catdog.wall.guard import error, from_our_pages, joined, moderator_only, read_body
from catdog.wall.moderation import write
from catdog.wall.parts import Wall, wall_of

log = logging.getLogger("catdog.wall")


def best_scores(wall: Wall) -> dict[str, float]:
    """Each learner's best on the room's challenge (none when no challenge runs)."""
    if wall.state.leaderboard is None:
        return {}
    return {row["learner"]: row["accuracy"] for row in wall.state.leaderboard.board()["rows"]}


@moderator_only
async def board(request: Request):
    """Every learner's row: hands first, then silent labs, then by progress (catdog.wall.board)."""
    wall = wall_of(request)
    return JSONResponse({**wall.state.board.snapshot(best_scores(wall)), "shown": wall.state.board.shown})


@from_our_pages
@moderator_only
async def decide(request: Request):
    """``{"answered": "<learner>"}``: their hand is answered; ``{"shown": true|false}``: the projector shows
    the room's progress, or stops."""
    wall = wall_of(request)
    try:
        given = json.loads(await read_body(request, 1024) or b"")
        if "answered" in given:
            learner = str(given["answered"])[:MAX_LEARNER_CHARS]
            key, value = f"answered:{learner}", {"at": int(time.time() * 1000)}
        else:
            key, value = "progress-shown", {"shown": bool(given["shown"])}
    except (ValueError, TypeError, KeyError):
        return error(400, 'expected JSON with "answered" (a learner) or "shown" (true or false)')
    try:
        await run_in_threadpool(write, wall, key, value)
    except KafkaError as failed:
        log.warning("board decision %s not written: %s", key, failed)
        return error(503, "Kafka did not take the decision: try again", **{"Retry-After": "5"})
    wall.state.board.apply(key, value)  # here at once; the other replicas as their feeds read it
    return JSONResponse({**wall.state.board.snapshot(best_scores(wall)), "shown": wall.state.board.shown})


@joined
async def progress(request: Request):
    """The room's progress without names, for the projector: only while the instructor shows it."""
    shown = wall_of(request).state.board
    if not shown.shown:
        return JSONResponse({"shown": False})
    return JSONResponse({"shown": True, **shown.aggregate()})


ROUTES = [
    Route("/api/board", board),
    Route("/api/board", decide, methods=["POST"]),
    Route("/api/progress", progress),
]
