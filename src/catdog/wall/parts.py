"""The wall's parts, one typed object on ``app.state.wall``: what every handler may use, in one place.

Made by :func:`catdog.wall.app.create_app`; the hub, the producer and the feed once the server starts
(:func:`catdog.wall.app.lifespan`). Handlers reach it through :func:`wall_of`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the parts' own modules import this one (guard's decorators read the passes)
    from kafka import KafkaProducer
    from starlette.requests import Request

    from catdog.config import Settings
    from catdog.images import DecodeBudget
    from catdog.wall.feed import Feed
    from catdog.wall.guard import Capacity, Passes, RateLimits, Router
    from catdog.wall.hub import Hub
    from catdog.wall.moderation import Moderation
    from catdog.wall.state import WallState


@dataclass
class Wall:
    """Everything one wall replica holds: its settings (the room's code among them, carried once), what it
    knows (``state``), the moderator's decisions, who may do what, what it takes on at once, and its links to
    Kafka and to the viewers."""

    settings: Settings
    state: WallState
    moderation: Moderation
    passes: Passes
    router: Router
    limits: RateLimits
    capacity: Capacity
    budget: DecodeBudget  # the one decode budget: the uploads' checks and the thumbnails share it
    read_topics: bool = True  # False: the HTTP rules alone (tests), no feed
    rereading: asyncio.Lock = field(default_factory=asyncio.Lock)  # one re-read of a thumbnail at a time
    hub: Hub | None = None
    producer: KafkaProducer | None = None
    feed: Feed | None = None


def wall_of(request: Request) -> Wall:
    """The wall behind ``request``."""
    return request.app.state.wall
