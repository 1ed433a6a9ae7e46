"""Who may do what on a public Route: the room's code, exchanged once for a signed cookie (``Passes``); the
client as the router saw it (``Router``); the rate limits (``RateLimits``); how much the wall takes on at
once (``Capacity``); bodies read only up to their limit, and the security headers on every response."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request
from starlette.responses import JSONResponse

from catdog.config import WallSettings
from catdog.wall.parts import wall_of

if TYPE_CHECKING:
    from catdog.wall.moderation import Moderation

COOKIE = "catdog_room"
MODERATOR = "moderator"  # the instructor's browser, in place of a phone's id
# Room-code attempts per address: a whole room behind one NAT joins in the first minute, and guessing a
# 10-character code (~50 bits) at this rate would take longer than the universe has.
JOINS_PER_ADDRESS_PER_MINUTE = 120
FEEDBACK_PER_MINUTE = 30
UPLOAD_WAIT_SECONDS = 5.0  # a photo waits this long for a free upload slot before it is told to come back
# Our scripts and styles only, no inline code, pictures from us or the page's own preview (blob:).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Passes:
    """Who the browser is: a phone the server issued a pass to (a cookie signed with the wall's secret and the
    room's code: made nowhere else, void once the code changes), or the moderator (the instructor's key)."""

    def __init__(self, wall: WallSettings, moderation: Moderation) -> None:
        if not (wall.secret and wall.moderator_key):
            raise ValueError("the wall needs its secret and the moderator's key (catdog wall makes both on a laptop)")
        self.moderation = moderation  # holds the room's code: the instructor may change it
        self.secret, self.moderator_key = wall.secret.encode(), wall.moderator_key

    def _sign(self, phone: str) -> str:
        """A phone's cookie is good for the code it joined with; the moderator's for the key, whatever the code."""
        bound = f"moderator\n{self.moderator_key}" if phone == MODERATOR else f"{self.moderation.code}\n{phone}"
        return hmac.new(self.secret, bound.encode(), hashlib.sha256).hexdigest()

    def cookie(self, moderator: bool = False) -> str:
        phone = MODERATOR if moderator else secrets.token_hex(8)
        return f"{phone}.{self._sign(phone)}"

    def phone(self, request: Request) -> str | None:
        """The joined browser's id (MODERATOR for the instructor), if its cookie was signed here for the
        room's current code (or for the moderator's key)."""
        phone, _, signature = request.cookies.get(COOKIE, "").partition(".")
        return phone if phone and hmac.compare_digest(signature, self._sign(phone)) else None

    def right_code(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.moderation.code.encode())

    def right_key(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.moderator_key.encode())


class Router:
    """What the OpenShift router saw, read from the entries the nearest ``hops`` proxies added (never from
    what a client wrote): the client's address and whether the browser spoke HTTPS."""

    def __init__(self, wall: WallSettings) -> None:
        self.hops = max(0, wall.forwarded_hops)

    def client(self, request: Request) -> str:
        """The client's address as the router saw it: the X-Forwarded-For entry the nearest of ``hops``
        proxies added, counted from the right over every header line (a client's own entries stand to the
        left of it, whatever it wrote); the peer's address without proxies or without the header."""
        entries = forwarded(request, "x-forwarded-for")
        if self.hops and len(entries) >= self.hops:
            return entries[-self.hops]
        return request.client.host if request.client else "unknown"

    def through_tls(self, request: Request) -> bool:
        """Whether the browser spoke HTTPS: to the router (its X-Forwarded-Proto, the last one), or to us."""
        if self.hops:
            protos = forwarded(request, "x-forwarded-proto")
            return bool(protos) and protos[-1].lower() == "https"
        return request.url.scheme == "https"


class RateLimits:
    """How often each may act, per minute in a moving window: uploads per phone and per address, room-code
    attempts per address, labels per phone."""

    def __init__(self, wall: WallSettings) -> None:
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_phone = RateLimitItemPerMinute(wall.uploads_per_minute)
        self.per_address = RateLimitItemPerMinute(wall.uploads_per_address_per_minute)
        self.joins = RateLimitItemPerMinute(JOINS_PER_ADDRESS_PER_MINUTE)
        self.feedback = RateLimitItemPerMinute(FEEDBACK_PER_MINUTE)

    def upload(self, address: str, phone: str) -> bool:
        """One more upload from ``phone`` at ``address``: False when either is over its limit."""
        return self.limiter.hit(self.per_address, "upload", address) and self.limiter.hit(
            self.per_phone, "upload", phone
        )

    def join(self, address: str) -> bool:
        return self.limiter.hit(self.joins, "join", address)

    def label(self, phone: str) -> bool:
        return self.limiter.hit(self.feedback, "feedback", phone)


class Capacity:
    """How much the wall takes on at once, each bounded so no flood holds its memory: uploads being read and
    checked (each up to the size limit; a few more wait their turn, unread, for a moment), event streams in
    all and per phone."""

    def __init__(self, wall: WallSettings) -> None:
        self.uploads_in_flight = wall.uploads_in_flight
        self.slots: asyncio.Semaphore | None = None  # made on first use, in the server's event loop
        self.streams_total, self.streams_per_phone = wall.streams, wall.streams_per_phone
        self.streams: dict[str, int] = {}  # phone -> open streams (a phone with none has no entry)

    async def upload_slot(self, wait: float = UPLOAD_WAIT_SECONDS) -> bool:
        """Take one of the concurrent upload slots, waiting up to ``wait`` seconds for one (the body is not
        read meanwhile); False if none came free (give a slot back with :meth:`upload_done`)."""
        if self.slots is None:
            self.slots = asyncio.Semaphore(self.uploads_in_flight)
        try:
            await asyncio.wait_for(self.slots.acquire(), wait)
        except TimeoutError:
            return False
        return True

    def upload_done(self) -> None:
        self.slots.release()

    def open_stream(self, phone: str) -> str | None:
        """Count a new event stream for ``phone``; why not, when it would go over a cap."""
        if sum(self.streams.values()) >= self.streams_total:
            return "the wall has as many viewers as it serves: try again in a minute"
        if self.streams.get(phone, 0) >= self.streams_per_phone:
            return f"at most {self.streams_per_phone} open pages per phone: close one"
        self.streams[phone] = self.streams.get(phone, 0) + 1
        return None

    def close_stream(self, phone: str) -> None:
        left = self.streams.get(phone, 0) - 1
        if left > 0:
            self.streams[phone] = left
        else:
            self.streams.pop(phone, None)


def forwarded(request: Request, name: str) -> list[str]:
    """A forwarding header's entries in order, over every line of it (a proxy that appends may add a
    second line rather than extend the first: ASGI keeps both, and the first alone is the client's)."""
    return [entry.strip() for line in request.headers.getlist(name) for entry in line.split(",") if entry.strip()]


def same_origin(request: Request, public_url: str | None, tls: bool) -> bool:
    """A POST from our own pages: its Origin, when the browser sends one (every browser does on a POST), is
    the wall's address. Pages of another Route on the same apps domain are the same *site*, which SameSite
    cookies let through; they are not the same *origin*."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser: nothing a page elsewhere could make it send
    if public_url:
        return origin == "/".join(public_url.split("/")[:3])
    return origin == f"{'https' if tls else request.url.scheme}://{request.headers.get('host', '')}"


def from_our_pages(handler):
    """A POST only from the wall's own pages (or a client that is no browser): 403 otherwise."""

    async def checked(request: Request):
        wall = wall_of(request)
        if not same_origin(request, wall.settings.wall.url, wall.router.through_tls(request)):
            return error(403, "this page may not post to the wall")
        return await handler(request)

    return checked


def joined(handler):
    """Only for a browser that joined the room (its cookie is signed): 401 otherwise. A blocked phone is
    told so on what it may no longer do (it still sees the wall)."""

    async def checked(request: Request):
        phone = wall_of(request).passes.phone(request)
        if phone is None:
            return error(401, "join the room first: open the link from the room's QR code")
        request.state.phone = phone
        return await handler(request)

    return checked


def moderator_only(handler):
    """Only for the instructor's browser (joined with the moderator's key): 403 for any phone."""

    async def checked(request: Request):
        if request.state.phone != MODERATOR:
            return error(403, "only the room's moderator may do that")
        return await handler(request)

    return joined(checked)


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def too_many(message: str) -> JSONResponse:
    """429 with when to come back: the limits are per minute."""
    return error(429, message, **{"Retry-After": "60"})


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
