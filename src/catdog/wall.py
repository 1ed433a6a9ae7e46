"""The room's wall: phones send photos through a page, the projector shows every verdict as it comes.

One small ASGI service (Starlette under uvicorn). A thread reads three topics with the lab's own Kafka
client: the images topic (each photo becomes a thumbnail the server re-encodes: the sender's bytes are
never served back), the predictions topic (the classifier's results, matched to thumbnails by source
topic/partition/offset) and the feedback topic (the room's right/wrong verdicts, for each model's
accuracy on the room's photos). Browsers get cards and counts as server-sent events: one-way push is all
the wall needs, EventSource reconnects by itself, and it is plain HTTP through the OpenShift router.

A public Route must not become an anonymous upload service: every API call needs the room's code,
exchanged once (``POST /api/join``) for an HttpOnly cookie. Uploads are size-checked before the body is
read, decoded by the one decoder before anything is produced, and rate-limited per phone and per address.
Every text a sender controls (file names, learner names, any client's headers) is put on the page as
text by the browser scripts, never as HTML, under a Content-Security-Policy that allows our scripts only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Callable

import segno
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from catdog.config import MAX_LEARNER_CHARS, KafkaSettings, Settings, WallSettings
from catdog.images import DecodeBudget, ImageError, decode_image
from catdog.kafka_io import (
    KafkaError, decode_record, key_text, make_consumer, make_producer, prediction_problem, send_image,
)
from catdog.labels import LABELS, label_problem, label_value, send_label

log = logging.getLogger("catdog.wall")

STATIC = Path(str(resources.files("catdog") / "wall_static"))
COOKIE = "catdog_room"
THUMBNAIL_SIDE = 320  # pixels, the longer side: a card on a 1080p projector shows it at ~300
THUMBNAIL_QUALITY = 80
# Photos of the images topic kept as thumbnails (per wall, all partitions), and results kept for phones
# asking after their own photo: a few minutes of a busy room, bounded however long the workshop runs.
THUMBNAILS_KEPT = 256
RESULTS_KEPT = 2048
LABELS_KEPT = 100_000  # images with a verdict from the room (a key and two labels each)
VERSIONS_SHOWN = 6  # per model: the versions whose accuracy the wall shows, oldest dropped first
MAX_VERSION_CHARS = 16  # a version is 12 hex digits; anything longer is not ours
DECODE_MEMORY_BYTES = 256 * 1024 * 1024  # full-size decodes in flight: checking uploads and making thumbnails
VIEWER_QUEUE = 64  # events a slow viewer may fall behind before it is sent a fresh snapshot instead
RESULT_WAIT_SECONDS = 20.0  # a phone's one request for its result waits this long, then asks again
# Room-code attempts per address: a whole room behind one NAT joins in the first minute, and guessing a
# 10-character code (~50 bits) at this rate would take longer than the universe has.
JOINS_PER_ADDRESS_PER_MINUTE = 120
FEEDBACK_PER_MINUTE = 30
MAX_FEEDBACK_BYTES = 4096
MAX_FILENAME_CHARS = 200
RETRY_SECONDS = 5.0
MODELS = ("quick", "pretrained")
# Our scripts and styles only, no inline code, pictures from us or the page's own preview (blob:).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                               "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def make_room_code() -> str:
    """Ten characters nobody misreads on a projector (no 0/O, 1/l/I): about 50 bits."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(10))


def upload_url(base: str, code: str) -> str:
    """The phones' page with the room code in the fragment: browsers never send a fragment to a server, so
    the code stays out of the router's and the wall's access logs."""
    return f"{base.rstrip('/')}/upload#code={code}"


def qr_svg(text: str) -> bytes:
    """The QR code of ``text`` as SVG, large modules and a quiet zone, black on white for any projector."""
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="svg", scale=10, border=2, xmldecl=False)
    return buffer.getvalue()


def clean_text(value: str, limit: int) -> str:
    """Printable characters only, at most ``limit``: what a sender may name a photo or themselves."""
    return "".join(ch for ch in value if ch.isprintable())[:limit].strip()


def thumbnail_jpeg(decoded_image) -> bytes:
    """A small JPEG re-encoded from the decoded pixels (no metadata, no sender bytes)."""
    image = decoded_image.copy()
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()


def _source(result: dict) -> tuple[str, int, int] | None:
    source = result.get("source") or {}
    topic, partition, offset = source.get("topic"), source.get("partition"), source.get("offset")
    if not isinstance(topic, str) or type(partition) is not int or type(offset) is not int:
        return None
    return topic, partition, offset


def card(result: dict, thumb: str | None) -> dict:
    """What a wall card shows, taken field by field from a result (nothing else a sender wrote passes)."""
    topic, partition, offset = _source(result)
    shown = {
        "id": f"{partition}-{offset}", "partition": partition, "offset": offset, "key": str(result.get("key") or ""),
        "filename": clean_text(str(result.get("filename") or ""), MAX_FILENAME_CHARS),
        "learner": clean_text(str(result.get("learner") or ""), MAX_LEARNER_CHARS),
        "agree": bool(result.get("agree")), "classified_at": str(result.get("classified_at") or ""), "thumb": thumb,
    }
    for model in MODELS:
        verdict = result[model]
        shown[model] = {"label": verdict["label"], "p_dog": float(verdict["p_dog"]),
                        "version": str(verdict.get("version") or "")}
    return shown


def feedback_value(result: dict, label: str, learner: str) -> dict:
    """The label a right/wrong button writes: with the verdicts it judged and the models that gave them."""
    return label_value(label, learner, "wall", result["source"],
                       verdicts={model: result[model]["label"] for model in MODELS},
                       versions={model: result[model].get("version") for model in MODELS})


@dataclass
class WallState:
    """What the wall knows, bounded: recent thumbnails and results, the cards on show, the room's counts.

    Fed by one thread (:class:`Feed`), read by the web handlers; every method takes the lock.
    """

    images_topic: str
    cards_kept: int = 8
    thumbnails: OrderedDict = field(default_factory=OrderedDict)  # (partition, offset) -> JPEG bytes
    results: OrderedDict = field(default_factory=OrderedDict)  # (partition, offset) -> result
    pending: OrderedDict = field(default_factory=OrderedDict)  # results whose photo is not read yet
    cards: deque = field(default_factory=deque)
    seen: set = field(default_factory=set)  # every result's source once (at-least-once delivery repeats some)
    agreed: int = 0
    verdicts: OrderedDict = field(default_factory=OrderedDict)  # image key -> {model: (label, version)}
    labels: OrderedDict = field(default_factory=OrderedDict)  # image key -> the room's latest label
    versions: dict = field(default_factory=dict)  # model -> the version of the latest result
    served: dict = field(default_factory=dict)  # model -> its versions in the order they first classified
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.cards = deque(maxlen=self.cards_kept)

    @staticmethod
    def _put(store: OrderedDict, key, value, limit: int) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > limit:
            store.popitem(last=False)

    def add_thumbnail(self, partition: int, offset: int, jpeg: bytes) -> list[tuple[str, dict]]:
        with self.lock:
            self._put(self.thumbnails, (partition, offset), jpeg, THUMBNAILS_KEPT)
            result = self.pending.pop((partition, offset), None)
            return self._show(result) if result else []

    def add_result(self, result: dict) -> list[tuple[str, dict]]:
        """A result from the predictions topic: counted once, shown once its photo's thumbnail exists."""
        source = _source(result)
        if source is None or source[0] != self.images_topic:
            return []
        with self.lock:
            _, partition, offset = source
            if (partition, offset) in self.seen:
                return []
            self.seen.add((partition, offset))
            self.agreed += bool(result.get("agree"))
            self._put(self.results, (partition, offset), result, RESULTS_KEPT)
            self.versions = {m: clean_text(str(result[m].get("version") or ""), MAX_VERSION_CHARS) for m in MODELS}
            for model, version in self.versions.items():
                order = self.served.setdefault(model, OrderedDict())
                if version not in order:
                    self._put(order, version, True, VERSIONS_SHOWN)
            if result.get("key"):
                self._put(self.verdicts, str(result["key"]),
                          {m: (result[m]["label"], self.versions[m]) for m in MODELS}, LABELS_KEPT)
            if (partition, offset) in self.thumbnails:
                return self._show(result)
            self._put(self.pending, (partition, offset), result, THUMBNAILS_KEPT)
            return [("stats", self._stats())]

    def add_label(self, key: str, label: str) -> list[tuple[str, dict]]:
        with self.lock:
            self._put(self.labels, key, label, LABELS_KEPT)
            return [("stats", self._stats())]

    def _show(self, result: dict) -> list[tuple[str, dict]]:
        _, partition, offset = _source(result)
        shown = card(result, f"/api/thumbs/{partition}/{offset}")
        self.cards.append(shown)
        return [("card", shown), ("stats", self._stats())]

    def _stats(self) -> dict:
        """The room's counts. ``by_version``: each model's accuracy on the room's judged photos, version by
        version in the order they started serving, so a retrained model's effect shows over the workshop."""
        photos = len(self.seen)
        judged = {key: label for key, label in self.labels.items() if key in self.verdicts}
        accuracy = {m: (sum(self.verdicts[key][m][0] == label for key, label in judged.items()) / len(judged)
                        if judged else None) for m in MODELS}
        by_version = {}
        for model in MODELS:
            tally = {version: [0, 0] for version in self.served.get(model, ())}
            for key, label in judged.items():
                said, version = self.verdicts[key][model]
                if version in tally:
                    tally[version][0] += said == label
                    tally[version][1] += 1
            by_version[model] = [{"version": version, "labelled": judged_count,
                                  "accuracy": right / judged_count if judged_count else None}
                                 for version, (right, judged_count) in tally.items()]
        return {"photos": photos, "agreement": self.agreed / photos if photos else None, "labelled": len(judged),
                "accuracy": accuracy, "versions": self.versions, "by_version": by_version}

    def snapshot(self) -> dict:
        with self.lock:
            return {"cards": list(self.cards), "stats": self._stats()}

    def thumbnail(self, partition: int, offset: int) -> bytes | None:
        with self.lock:
            return self.thumbnails.get((partition, offset))

    def result(self, partition: int, offset: int) -> dict | None:
        with self.lock:
            return self.results.get((partition, offset))


class Hub:
    """Fans events out to every open stream. A viewer too slow to keep up is not left behind: its queue is
    emptied and it is sent a fresh snapshot instead (so no viewer ever shows a stale wall)."""

    def __init__(self, state: WallState) -> None:
        self.state = state
        self.viewers: set[asyncio.Queue] = set()
        self.changed = asyncio.Condition()

    async def publish(self, events: list[tuple[str, dict]]) -> None:
        for queue in list(self.viewers):
            for event in events:
                if queue.full():
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(("snapshot", self.state.snapshot()))
                    break
                queue.put_nowait(event)
        async with self.changed:
            self.changed.notify_all()


class Feed(threading.Thread):
    """Reads the images, predictions and feedback topics into the wall's state, in no consumer group (each
    wall replica sees everything and commits nothing): the last photos of each partition (thumbnails for
    the first cards), every result and every label (the room's counts). Reconnects after a broker error."""

    def __init__(self, kafka: KafkaSettings, state: WallState, emit: Callable[[list], None]) -> None:
        super().__init__(name="wall-feed", daemon=True)
        self.kafka, self.state, self.emit = kafka, state, emit
        self.budget = DecodeBudget(DECODE_MEMORY_BYTES)
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.skipped = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._read()
            except (KafkaError, OSError) as error:
                log.warning("wall feed: %s; retrying in %.0f s", error, RETRY_SECONDS)
                self.stopping.wait(RETRY_SECONDS)
            except Exception:  # noqa: BLE001 - a wall that stops updating must say so and start again
                log.exception("wall feed failed; starting again in %.0f s", RETRY_SECONDS)
                self.stopping.wait(RETRY_SECONDS)

    def _assign(self, consumer) -> dict:
        from kafka import TopicPartition

        topics = (self.kafka.images_topic, self.kafka.predictions_topic, self.kafka.feedback_topic)
        while not self.stopping.is_set():
            found = {topic: consumer.partitions_for_topic(topic) for topic in topics}
            missing = [topic for topic, partitions in found.items() if not partitions]
            if not missing:
                break
            log.warning("wall feed: waiting for topics %s", ", ".join(missing))
            self.stopping.wait(RETRY_SECONDS)
        else:
            return {}
        assigned = [TopicPartition(topic, p) for topic, partitions in found.items() for p in sorted(partitions)]
        consumer.assign(assigned)
        ends = consumer.end_offsets(assigned)
        beginnings = consumer.beginning_offsets(assigned)
        for partition in assigned:
            if partition.topic == self.kafka.images_topic:  # thumbnails only for what may still be shown
                consumer.seek(partition, max(beginnings[partition], ends[partition] - THUMBNAILS_KEPT))
            else:
                consumer.seek_to_beginning(partition)
        return ends

    def _read(self) -> None:
        consumer = make_consumer(self.kafka)
        try:
            ends = self._assign(consumer)
            while not self.stopping.is_set():
                for partition, records in consumer.poll(timeout_ms=500, max_records=100).items():
                    for record in records:
                        self._handle(record)
                if not self.ready.is_set() and all(consumer.position(p) >= end for p, end in ends.items()):
                    self.ready.set()  # caught up with what was on the topics when it started
                    log.info("wall feed: caught up (%d results)", len(self.state.seen))
        finally:
            consumer.close()

    def _handle(self, record) -> None:
        """One record of any of the three topics: whatever a client wrote, a skip with a reason at worst."""
        try:
            if record.topic == self.kafka.images_topic:
                received = decode_record(record, self.kafka, target_size=THUMBNAIL_SIDE, budget=self.budget,
                                         keep_data=False)
                if received.image is not None:
                    self.emit(self.state.add_thumbnail(record.partition, record.offset,
                                                       thumbnail_jpeg(received.image.image)))
                return
            value = json.loads(record.value) if record.value else None
            if record.topic == self.kafka.predictions_topic:
                problem = prediction_problem(value)
                if problem is None:
                    self.emit(self.state.add_result(value))
                    return
            else:
                key = key_text(record.key)
                problem = label_problem(key, value)
                if problem is None:
                    self.emit(self.state.add_label(key, value["label"]))
                    return
        except (ValueError, TypeError, KeyError) as error:
            problem = f"{type(error).__name__}: {error}"
        self.skipped += 1
        log.warning("wall feed: skipped %s[%d]@%d: %s", record.topic, record.partition, record.offset, problem)


class Uploads:
    """Who may send what: the room code (as a per-browser cookie) and the rate limits."""

    def __init__(self, wall: WallSettings, code: str) -> None:
        self.code = code
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_phone = RateLimitItemPerMinute(wall.uploads_per_minute)
        self.per_address = RateLimitItemPerMinute(wall.uploads_per_address_per_minute)
        self.joins = RateLimitItemPerMinute(JOINS_PER_ADDRESS_PER_MINUTE)
        self.feedback = RateLimitItemPerMinute(FEEDBACK_PER_MINUTE)

    def _sign(self, phone: str) -> str:
        return hmac.new(self.code.encode(), phone.encode(), hashlib.sha256).hexdigest()

    def cookie(self) -> str:
        phone = secrets.token_hex(8)
        return f"{phone}.{self._sign(phone)}"

    def phone(self, request: Request) -> str | None:
        """The joined browser's id, if its cookie was signed with this room's code."""
        phone, _, signature = request.cookies.get(COOKIE, "").partition(".")
        return phone if phone and hmac.compare_digest(signature, self._sign(phone)) else None

    def right_code(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.code.encode())


def address(request: Request) -> str:
    """The client's address (uvicorn takes it from X-Forwarded-For behind the router, see FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


class SecurityHeaders:
    """Pure ASGI middleware (not BaseHTTPMiddleware, which would buffer the event stream): our headers on
    every response."""

    def __init__(self, app) -> None:
        self.app = app
        self.headers = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in self.headers if h[0] not in names]
            await send(message)

        await self.app(scope, receive, with_headers)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to be over ``limit`` bytes: by its Content-Length before
    reading anything, else while it streams in (nothing past the limit is kept)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def create_app(settings: Settings, code: str, feed: bool = True) -> Starlette:
    """The wall's web application. ``feed=False`` (tests of the HTTP rules alone) reads no topic."""
    kafka, wall = settings.kafka, settings.wall
    state = WallState(kafka.images_topic, cards_kept=wall.cards)
    uploads = Uploads(wall, code)
    budget = DecodeBudget(DECODE_MEMORY_BYTES)
    holder: dict = {}

    def joined(handler):
        async def checked(request: Request):
            phone = uploads.phone(request)
            if phone is None:
                return error(401, "join the room first: open the link from the room's QR code")
            request.state.phone = phone
            return await handler(request)
        return checked

    async def join(request: Request):
        if not uploads.limiter.hit(uploads.joins, "join", address(request)):
            return error(429, "too many attempts: wait a minute", **{"Retry-After": "60"})
        body = await read_body(request, 1024)
        try:
            given = str(json.loads(body or b"{}").get("code", ""))
        except (ValueError, AttributeError):
            given = ""
        if not uploads.right_code(given):
            return error(403, "that is not this room's code")
        response = Response(status_code=204)
        response.set_cookie(COOKIE, uploads.cookie(), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", max_age=7 * 24 * 3600)
        return response

    def public_base(request: Request) -> str:
        return wall.url or str(request.base_url).rstrip("/")

    @joined
    async def qr(request: Request):
        return Response(qr_svg(upload_url(public_base(request), code)), media_type="image/svg+xml")

    @joined
    async def room(request: Request):
        return JSONResponse({"upload": f"{public_base(request)}/upload", "cards": wall.cards})

    @joined
    async def events(request: Request):
        queue: asyncio.Queue = asyncio.Queue(VIEWER_QUEUE)
        queue.put_nowait(("snapshot", state.snapshot()))
        hub: Hub = holder["hub"]
        hub.viewers.add(queue)

        async def stream():
            try:
                while True:
                    name, data = await queue.get()
                    yield {"event": name, "data": json.dumps(data)}
            finally:
                hub.viewers.discard(queue)

        return EventSourceResponse(stream(), ping=15)

    @joined
    async def thumbnail(request: Request):
        jpeg = state.thumbnail(request.path_params["partition"], request.path_params["offset"])
        if jpeg is None:
            return error(404, "no such photo on the wall")
        return Response(jpeg, media_type="image/jpeg")

    @joined
    async def upload(request: Request):
        where = address(request)
        if not (uploads.limiter.hit(uploads.per_address, "upload", where)
                and uploads.limiter.hit(uploads.per_phone, "upload", request.state.phone)):
            return error(429, "too many photos at once: wait a minute", **{"Retry-After": "60"})
        data = await read_body(request, kafka.max_image_bytes)
        if data is None:
            return error(413, f"the photo is larger than {kafka.max_image_bytes:,} bytes; nothing was sent")
        filename = clean_text(request.query_params.get("filename", ""), MAX_FILENAME_CHARS) or "photo.jpg"
        learner = clean_text(request.query_params.get("learner", ""), MAX_LEARNER_CHARS)
        try:
            await run_in_threadpool(decode_image, data, max_bytes=kafka.max_image_bytes,
                                    max_pixels=kafka.max_image_pixels, target_size=THUMBNAIL_SIDE, budget=budget)
        except ImageError as refused:
            return error(422, f"{refused} — nothing was sent")
        try:
            sent = await run_in_threadpool(send_image, holder["producer"], kafka, data, filename, learner=learner)
        except KafkaError as failed:
            log.warning("photo %s not sent: %s", filename, failed)
            return error(503, "Kafka did not take the photo: try again in a moment", **{"Retry-After": "5"})
        log.info("photo %s from %s (%s) -> %s[%d]@%d", filename, learner or "-", where, sent.topic, sent.partition,
                 sent.offset)
        return JSONResponse({"topic": sent.topic, "partition": sent.partition, "offset": sent.offset,
                             "key": sent.key}, status_code=201)

    @joined
    async def result(request: Request):
        """This photo's result when there is one, waiting up to ``?wait=`` seconds (at most, and by default,
        RESULT_WAIT_SECONDS) for it; 204: not yet, ask again."""
        partition, offset = request.path_params["partition"], request.path_params["offset"]
        hub: Hub = holder["hub"]
        try:
            wait = min(RESULT_WAIT_SECONDS, max(0.0, float(request.query_params.get("wait", RESULT_WAIT_SECONDS))))
        except ValueError:
            return error(400, "wait must be a number of seconds")
        deadline = time.monotonic() + wait
        while (found := state.result(partition, offset)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Response(status_code=204)
            async with hub.changed:
                try:
                    await asyncio.wait_for(hub.changed.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
        return JSONResponse(card(found, None))

    @joined
    async def feedback(request: Request):
        if not uploads.limiter.hit(uploads.feedback, "feedback", request.state.phone):
            return error(429, "too many answers at once: wait a minute", **{"Retry-After": "60"})
        body = await read_body(request, MAX_FEEDBACK_BYTES)
        try:
            given = json.loads(body or b"")
            partition, offset, label = given["partition"], given["offset"], given["label"]
        except (ValueError, TypeError, KeyError):
            return error(400, "expected JSON with partition, offset and label")
        if label not in LABELS or type(partition) is not int or type(offset) is not int:
            return error(400, "label must be cat or dog, partition and offset whole numbers")
        found = state.result(partition, offset)
        if found is None:
            return error(404, "no result for that photo on this wall")
        learner = clean_text(str(given.get("learner") or ""), MAX_LEARNER_CHARS)
        key = str(found["key"])
        try:
            await run_in_threadpool(send_label, holder["producer"], kafka, key, feedback_value(found, label, learner))
        except KafkaError as failed:
            log.warning("feedback for %s not written: %s", key, failed)
            return error(503, "Kafka did not take the answer: try again in a moment", **{"Retry-After": "5"})
        return JSONResponse({"key": key, "label": label}, status_code=201)

    async def page(request: Request):
        name = "upload.html" if request.url.path.rstrip("/").endswith("upload") else "wall.html"
        return FileResponse(STATIC / name, media_type="text/html")

    async def healthz(request: Request):
        return Response("ok\n", media_type="text/plain")

    async def readyz(request: Request):
        ready = holder.get("feed") is None or holder["feed"].ready.is_set()
        return Response("ready\n" if ready else "catching up\n", status_code=200 if ready else 503,
                        media_type="text/plain")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()
        holder["hub"] = hub = Hub(state)
        holder["producer"] = await run_in_threadpool(make_producer, kafka)
        if feed:
            holder["feed"] = Feed(kafka, state, lambda events: events and asyncio.run_coroutine_threadsafe(
                hub.publish(events), loop))
            holder["feed"].start()
        try:
            yield
        finally:
            if feed:
                holder["feed"].stopping.set()
            await run_in_threadpool(holder["producer"].close, 5)

    routes = [
        Route("/", page), Route("/upload", page), Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/healthz", healthz), Route("/readyz", readyz),
        Route("/api/join", join, methods=["POST"]),
        Route("/api/room", room), Route("/api/qr.svg", qr), Route("/api/events", events),
        Route("/api/thumbs/{partition:int}/{offset:int}", thumbnail),
        Route("/api/photos", upload, methods=["POST"]),
        Route("/api/photos/{partition:int}/{offset:int}", result),
        Route("/api/feedback", feedback, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)], lifespan=lifespan)
    app.state.wall = state
    app.state.holder = holder
    return app


def serve(settings: Settings, code: str) -> None:
    """Run the wall under uvicorn until SIGTERM/SIGINT (uvicorn's own handlers; open streams are closed)."""
    import uvicorn

    wall = settings.wall
    uvicorn.run(create_app(settings, code), host=wall.host, port=wall.port, proxy_headers=True,
                log_level="info", timeout_graceful_shutdown=5)


def wall_link(settings: Settings | None = None):
    """For a notebook: a link to the room's wall (CATDOG_WALL_URL), where this learner's photos appear."""
    from IPython.display import Markdown

    from catdog.config import load_settings

    wall = (settings or load_settings()).wall
    if not wall.url:
        return Markdown("*No wall in this lab (CATDOG_WALL_URL is not set): `make lab` starts one.*")
    # `make lab` gives its kernels the code of its own wall; a room's learners read it off the projector.
    link = f"{wall.url}/#code={wall.room_code}" if wall.room_code else f"{wall.url}/"
    return Markdown(f"Your photos appear on **[the room's wall]({link})**, beside everyone else's, with both "
                    "verdicts, and phones can send theirs from its QR code."
                    + ("" if wall.room_code else " It asks for the room's code once: it is on the projector."))
