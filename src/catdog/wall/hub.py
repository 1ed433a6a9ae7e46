"""The viewers' streams: every open projector (and phone) page gets each change as it happens."""

from __future__ import annotations

import asyncio

from catdog.wall.moderation import Moderation
from catdog.wall.state import WallState

VIEWER_QUEUE = 64  # events a slow viewer may fall behind before it is sent a fresh snapshot instead


class Hub:
    """Fans events out to every open stream. A viewer too slow to keep up is not left behind: its queue is
    emptied and it is sent a fresh snapshot instead (so no viewer ever shows a stale wall)."""

    def __init__(self, state: WallState, moderation: Moderation) -> None:
        self.state, self.moderation = state, moderation
        self.viewers: set[asyncio.Queue] = set()
        self.changed = asyncio.Condition()

    def snapshot(self) -> dict:
        """What the wall shows now: its cards but those the moderator hid."""
        shown = self.state.snapshot()
        shown["cards"] = [card for card in shown["cards"] if not self.moderation.is_hidden(card["id"])]
        shown["paused"] = self.moderation.paused
        return shown

    def open(self) -> asyncio.Queue:
        """A new viewer's queue, starting with what the wall shows now."""
        queue: asyncio.Queue = asyncio.Queue(VIEWER_QUEUE)
        queue.put_nowait(("snapshot", self.snapshot()))
        self.viewers.add(queue)
        return queue

    def close(self, queue: asyncio.Queue) -> None:
        self.viewers.discard(queue)

    async def publish(self, events: list[tuple[str, dict]]) -> None:
        events = [
            (name, data) for name, data in events if not (name == "card" and self.moderation.is_hidden(data["id"]))
        ]  # hidden before it was read
        for queue in list(self.viewers):
            for event in events:
                if queue.full():
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(("snapshot", self.snapshot()))
                    break
                queue.put_nowait(event)
        async with self.changed:
            self.changed.notify_all()

    async def wait(self, seconds: float) -> None:
        """Until the next change, or ``seconds``, whichever comes first."""
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait(), seconds)
            except TimeoutError:
                pass
