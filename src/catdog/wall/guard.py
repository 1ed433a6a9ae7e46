"""Who may do what on a public Route: the room's code (exchanged once for a signed cookie), the rate
limits, bodies read only up to their limit, and the security headers on every response."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request
from starlette.responses import JSONResponse

from catdog.config import WallSettings

COOKIE = "catdog_room"
# Room-code attempts per address: a whole room behind one NAT joins in the first minute, and guessing a
# 10-character code (~50 bits) at this rate would take longer than the universe has.
JOINS_PER_ADDRESS_PER_MINUTE = 120
FEEDBACK_PER_MINUTE = 30
# Our scripts and styles only, no inline code, pictures from us or the page's own preview (blob:).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                               "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


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
