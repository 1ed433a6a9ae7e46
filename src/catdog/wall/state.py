"""What the wall knows, bounded however long the workshop runs: recent thumbnails and results, the cards
on show, and what the room's counts are made of (every result once, each photo's verdicts and label)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from catdog.challenge import Scoreboard
from catdog.config import MAX_LEARNER_CHARS
from catdog.wall.board import Board
from catdog.wall.cards import MAX_VERSION_CHARS, MODELS, VERSIONS_SHOWN, card, clean_text, source_of

# Photos of the images topic kept as thumbnails (per partition: a wall that restarts re-reads each partition's
# last ones, and keeps them all), and results kept for phones asking after their own photo: a few minutes of a
# busy room. A card whose thumbnail is no longer kept is still shown: its thumbnail is read again from Kafka.
THUMBNAILS_KEPT = 256
RESULTS_KEPT = 2048
LABELS_KEPT = 100_000  # images with a verdict from the room (a key and two labels each)
REFUSALS_SHOWN = 5  # the challenge's latest refused submissions, with why, under the leaderboard

Events = list[tuple[str, dict]]  # what changed, for the viewers: ("card", card) and ("stats", counts)


def put_bounded(store: OrderedDict, key, value, limit: int) -> None:
    """``store[key] = value`` as the newest entry, the oldest dropped past ``limit``."""
    store[key] = value
    store.move_to_end(key)
    while len(store) > limit:
        store.popitem(last=False)


def room_stats(photos: int, agreed: int, verdicts: dict, labels: dict, versions: dict, served: dict) -> dict:
    """The room's counts. ``by_version``: each model's accuracy on the room's judged photos, version by
    version in the order they started serving, so a retrained model's effect shows over the workshop."""
    judged = {key: label for key, label in labels.items() if key in verdicts}
    accuracy = {
        m: (sum(verdicts[key][m][0] == label for key, label in judged.items()) / len(judged) if judged else None)
        for m in MODELS
    }
    by_version = {}
    for model in MODELS:
        tally = {version: [0, 0] for version in served.get(model, ())}
        for key, label in judged.items():
            said, version = verdicts[key][model]
            if version in tally:
                tally[version][0] += said == label
                tally[version][1] += 1
        by_version[model] = [
            {"version": version, "labelled": judged_count, "accuracy": right / judged_count if judged_count else None}
            for version, (right, judged_count) in tally.items()
        ]
    return {
        "photos": photos,
        "agreement": agreed / photos if photos else None,
        "labelled": len(judged),
        "accuracy": accuracy,
        "versions": versions,
        "by_version": by_version,
    }


@dataclass
class Thumbnails:
    """The photos' thumbnails, per partition, and how far each partition's photos were read: a photo read
    but not kept (dropped by a backlog, or it did not decode here) is read again from Kafka when asked for."""

    kept: dict = field(default_factory=dict)  # partition -> OrderedDict offset -> JPEG bytes
    read: dict = field(default_factory=dict)  # partition -> one past the last offset read
    lock: threading.Lock = field(default_factory=threading.Lock)  # taken inside WallState's, never around it

    def add(self, partition: int, offset: int, jpeg: bytes | None) -> None:
        with self.lock:
            self.read[partition] = max(self.read.get(partition, 0), offset + 1)
        if jpeg is not None:
            self.keep(partition, offset, jpeg)

    def keep(self, partition: int, offset: int, jpeg: bytes) -> None:
        with self.lock:
            put_bounded(self.kept.setdefault(partition, OrderedDict()), offset, jpeg, THUMBNAILS_KEPT)

    def get(self, partition: int, offset: int) -> bytes | None:
        with self.lock:
            return self.kept.get(partition, {}).get(offset)

    def was_read(self, partition: int, offset: int) -> bool:
        with self.lock:
            return offset < self.read.get(partition, 0)


@dataclass
class WallState:
    """Fed by the Feed thread, read by the handlers, under the lock; each ``add_*`` returns the viewers' events."""

    images_topic: str
    cards_kept: int = 8
    thumbnails: Thumbnails = field(default_factory=Thumbnails)
    results: OrderedDict = field(default_factory=OrderedDict)  # (partition, offset) -> result
    pending: OrderedDict = field(default_factory=OrderedDict)  # results whose photo is not read yet
    cards: deque = field(default_factory=deque)
    seen: set = field(default_factory=set)  # every result's source once (at-least-once delivery repeats some)
    agreed: int = 0
    verdicts: OrderedDict = field(default_factory=OrderedDict)  # image key -> {model: (label, version)}
    labels: OrderedDict = field(default_factory=OrderedDict)  # image key -> the room's latest label
    versions: dict = field(default_factory=dict)  # model -> the version of the latest result
    served: dict = field(default_factory=dict)  # model -> its versions in the order they first classified
    leaderboard: Leaderboard | None = None  # the room's challenge, where its answers are here
    board: Board | None = None  # the instructor's board: every learner's progress
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.cards = deque(maxlen=self.cards_kept)

    def add_thumbnail(self, partition: int, offset: int, jpeg: bytes | None) -> Events:
        """A photo of the images topic read (``jpeg`` None: it did not decode here): its card, if its result
        came first."""
        with self.lock:
            self.thumbnails.add(partition, offset, jpeg)
            result = self.pending.pop((partition, offset), None)
            return self._show(result) if result else []

    def add_result(self, result: dict) -> Events:
        """A result from the predictions topic: counted once, shown once its photo's thumbnail exists."""
        source = source_of(result)
        if source is None or source[0] != self.images_topic:
            return []
        with self.lock:
            _, partition, offset = source
            if (partition, offset) in self.seen or self.seen.add((partition, offset)):
                return []
            self.board and self.board.add_photo(result, int(time.time() * 1000))
            self.agreed += bool(result.get("agree"))
            put_bounded(self.results, (partition, offset), result, RESULTS_KEPT)
            self._count_versions(result)
            # Photo read (kept, or dropped by a backlog): shown now, else once read; one card per photo.
            if self.thumbnails.was_read(partition, offset):
                return self._show(result)
            put_bounded(self.pending, (partition, offset), result, RESULTS_KEPT)
            return [("stats", self._stats())]

    def _count_versions(self, result: dict) -> None:
        """The versions that gave this result, in serving order; its verdicts, for the room's labels."""
        self.versions = {m: clean_text(str(result[m].get("version") or ""), MAX_VERSION_CHARS) for m in MODELS}
        for model, version in self.versions.items():
            order = self.served.setdefault(model, OrderedDict())
            if version not in order:
                put_bounded(order, version, True, VERSIONS_SHOWN)
        if result.get("key"):
            verdicts = {m: (result[m]["label"], self.versions[m]) for m in MODELS}
            put_bounded(self.verdicts, str(result["key"]), verdicts, LABELS_KEPT)

    def add_label(self, key: str, label: str) -> Events:
        with self.lock:
            put_bounded(self.labels, key, label, LABELS_KEPT)
            return [("stats", self._stats())]

    def _show(self, result: dict) -> Events:
        self.cards.append(shown := card(result, "/api/thumbs/{1}/{2}".format(*source_of(result))))
        return [("card", shown), ("stats", self._stats())]

    def _stats(self) -> dict:
        return room_stats(len(self.seen), self.agreed, self.verdicts, self.labels, self.versions, self.served)

    def snapshot(self) -> dict:
        with self.lock:  # the challenge's board has its own lock, never taken the other way round
            board = self.leaderboard and self.leaderboard.board()
            return {"cards": list(self.cards), "stats": self._stats(), "leaderboard": board}

    def result(self, partition: int, offset: int) -> dict | None:
        with self.lock:
            return self.results.get((partition, offset))


@dataclass
class Leaderboard:
    """The room's challenge on the wall: the scoreboard fed from the submissions topic, and the latest
    refusals with why (shown under the board, so a learner sees what became of theirs)."""

    scoreboard: Scoreboard
    refusals: deque = field(default_factory=lambda: deque(maxlen=REFUSALS_SHOWN))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record) -> tuple[Events, str | None]:
        """A record of the submissions topic, scored: the new board, and why it was refused if it was."""
        with self.lock:
            scored, said = self.scoreboard.add(
                record.key,
                record.value,
                record.headers,
                record.timestamp,
                where=(record.topic, record.partition, record.offset),
                timestamp_type=record.timestamp_type,
            )
            if not scored:
                self.refusals.appendleft(clean_text(said, 2 * MAX_LEARNER_CHARS + 80))
            return [("leaderboard", self._board())], None if scored else said

    def board(self) -> dict:
        with self.lock:
            return self._board()

    def _board(self) -> dict:
        return {**self.scoreboard.board(), "refusals": list(self.refusals)}
