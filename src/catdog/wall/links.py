"""The room's links: the phones' upload page (and its QR code on the projector), a notebook's link."""

from __future__ import annotations

import io

import segno
from starlette.requests import Request

from catdog.config import Settings
from catdog.wall.parts import wall_of


def public_base(request: Request) -> str:
    """The wall's address as phones reach it: CATDOG_WALL_URL, else as asked (HTTPS if the router was)."""
    wall = wall_of(request)
    if wall.settings.wall.url:
        return wall.settings.wall.url
    scheme = "https" if wall.router.through_tls(request) else request.url.scheme
    return f"{scheme}://{request.headers.get('host') or request.url.netloc}"


def upload_url(base: str, code: str) -> str:
    """The phones' page with the room code in the fragment: browsers never send a fragment to a server, so
    the code stays out of the router's and the wall's access logs."""
    return f"{base.rstrip('/')}/upload#code={code}"


def qr_svg(text: str) -> bytes:
    """The QR code of ``text`` as SVG, large modules and a quiet zone, black on white for any projector."""
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="svg", scale=10, border=2, xmldecl=False)
    return buffer.getvalue()


def wall_link(settings: Settings | None = None):
    """For a notebook: a link to the room's wall (CATDOG_WALL_URL), where this learner's photos appear."""
    from IPython.display import Markdown

    from catdog.config import load_settings

    wall = (settings or load_settings()).wall
    if not wall.url:
        return Markdown("*No wall in this lab (CATDOG_WALL_URL is not set): `make lab` starts one.*")
    # `make lab` gives its kernels the code of its own wall; a room's learners read it off the projector.
    link = f"{wall.url}/#code={wall.room_code}" if wall.room_code else f"{wall.url}/"
    return Markdown(
        f"Your photos appear on **[the room's wall]({link})**, beside everyone else's, with both "
        "verdicts, and phones can send theirs from its QR code."
        + ("" if wall.room_code else " It asks for the room's code once: it is on the projector.")
    )
