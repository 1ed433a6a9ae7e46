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

One module per part: :mod:`~catdog.wall.cards` (what a card shows), :mod:`~catdog.wall.state` (what the
wall knows, bounded), :mod:`~catdog.wall.feed` (the topics in), :mod:`~catdog.wall.hub` (the viewers'
streams), :mod:`~catdog.wall.guard` (the room's code, cookies, limits, headers),
:mod:`~catdog.wall.moderation` (the instructor's decisions and the moderator's routes),
:mod:`~catdog.wall.board` (every learner's progress), :mod:`~catdog.wall.desk` (the board's routes),
:mod:`~catdog.wall.parts` (the parts as one typed object), :mod:`~catdog.wall.app` (the routes, the app),
:mod:`~catdog.wall.phones` (the phones' uploads, results and labels), :mod:`~catdog.wall.links` (the
upload link, its QR code, a notebook's link).
"""

from catdog.wall.app import create_app, serve
from catdog.wall.cards import MAX_VERSION_CHARS, MODELS, VERSIONS_SHOWN, card, clean_text
from catdog.wall.links import qr_svg, upload_url, wall_link
from catdog.wall.state import WallState

__all__ = [
    "MAX_VERSION_CHARS",
    "MODELS",
    "VERSIONS_SHOWN",
    "WallState",
    "card",
    "clean_text",
    "create_app",
    "qr_svg",
    "serve",
    "upload_url",
    "wall_link",
]
