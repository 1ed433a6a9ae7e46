"""A learner's progress, for the instructor's board: what a lab in a room reports on the progress topic.

Three kinds of record, each signed with the learner's own key as photos and votes are (catdog.identity):
a ``heartbeat`` from the notebook's pod every HEARTBEAT_SECONDS (which notebooks are open and their
kernels' states, read from Jupyter itself: catdog.labwatch), a ``check`` for each exercise answered
(done or not yet, and how many tries), and a ``hand`` raised or lowered with a few words. Nothing else:
no notebook contents, no code. Photos, votes and the challenge's best the wall counts from their own
topics. A laptop's bare lab (no room's key, no wall beside it) reports nothing, and a report never fails
its caller: Kafka away, it is dropped with one warning.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time

from catdog.config import MAX_LEARNER_CHARS, KafkaSettings, Settings, load_settings
from catdog.kafka.records import LEARNER_HEADER, signed

log = logging.getLogger(__name__)

KINDS = ("heartbeat", "check", "hand")
HEARTBEAT_SECONDS = 20
MAX_NOTE_CHARS = 80  # "stuck on 1.1": a few words on the board, never a paragraph
MAX_NOTEBOOKS = 8  # open notebooks a heartbeat names
KERNEL_STATES = ("starting", "idle", "busy", "restarting", "dead", "unknown")
SEND_BLOCK_MS = 5_000  # how long the reporting thread waits on Kafka for one record before dropping it
QUEUE_SIZE = 200  # records waiting while Kafka is away: heartbeats of an hour; more are dropped


def progress_value(kind: str, **fields) -> bytes:
    """A progress record's value: its kind and its fields, as JSON."""
    if kind not in KINDS:
        raise ValueError(f"a progress record is one of {', '.join(KINDS)}, not {kind!r}")
    return json.dumps({"kind": kind, **fields}, sort_keys=True).encode()


def reports_here(settings: Settings) -> bool:
    """Whether this lab reports to a board: a room's (the learner's key), or one beside a wall (`make lab`,
    CATDOG_WALL_URL); a laptop's bare lab, with neither, reports nothing."""
    return bool(settings.kafka.learner and (settings.kafka.learner_key or settings.wall.url))


class Reporter:
    """Sends this learner's progress records, signed, from a thread of its own: a report returns at once, so
    a check's cell never waits on Kafka, and a Kafka away costs one warning, never an error."""

    def __init__(self, kafka: KafkaSettings, enabled: bool | None = None) -> None:
        self.kafka = kafka
        # Reporting: as ``enabled`` says (reports_here), else where a learner's key signs (a room's lab).
        self.enabled = bool(kafka.learner and kafka.learner_key) if enabled is None else enabled
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self.tries: dict[str, int] = {}  # exercise -> checks so far, in this process
        self.delivered = 0  # records the broker acknowledged
        self.last_ok = False  # whether the latest record was
        self.warned = False
        self.worker: threading.Thread | None = None

    def send(self, kind: str, **fields) -> bool:
        """Queue one record of ``kind``; False on a laptop (nothing to report to) or when the queue is full."""
        if not self.enabled:
            return False
        learner = self.kafka.learner[:MAX_LEARNER_CHARS]
        key, value = learner.encode(), progress_value(kind, **fields)
        headers = [(LEARNER_HEADER, key), *signed(self.kafka, learner, key, value)]
        if self.worker is None:
            self.worker = threading.Thread(target=self._run, name="catdog-progress", daemon=True)
            self.worker.start()
        try:
            self.queue.put_nowait((key, value, headers))
        except queue.Full:
            return False
        return True

    def _run(self) -> None:
        from catdog.kafka.clients import make_producer

        producer = None
        while True:
            key, value, headers = self.queue.get()
            try:
                producer = producer or make_producer(self.kafka, max_block_ms=SEND_BLOCK_MS, retries=2)
                producer.send(self.kafka.progress_topic, key=key, value=value, headers=headers).get(
                    SEND_BLOCK_MS / 1000
                )
                self.delivered += 1
                self.last_ok = True
            except Exception as error:  # noqa: BLE001 - progress must never fail a learner's cell or the lab
                self.last_ok = False
                if not self.warned:
                    log.warning("progress not reported to the room's board (%s: %s)", type(error).__name__, error)
                    self.warned = True
            finally:
                self.queue.task_done()

    def check(self, exercise: str, done: bool) -> bool:
        """An exercise's check answered: done or not yet, and how many times it was checked here."""
        self.tries[exercise] = self.tries.get(exercise, 0) + 1
        return self.send("check", exercise=exercise, done=bool(done), tries=self.tries[exercise])

    def wait(self, timeout: float = 5.0) -> bool:
        """Until every queued record was sent or given up (at most ``timeout`` s): True if the last was sent."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.queue.unfinished_tasks and self.last_ok


_reporter: Reporter | None = None


def reporter() -> Reporter:
    """This process's reporter, from the environment's settings (made once)."""
    global _reporter
    if _reporter is None:
        settings = load_settings()
        _reporter = Reporter(settings.kafka, reports_here(settings))
    return _reporter


def raise_hand(note: str = "") -> str:
    """Ask the instructor for help from a notebook: your hand goes up on their board, with ``note`` (a few
    words, e.g. "stuck on 1.1"), until you lower it or they mark it answered."""
    note = " ".join(str(note).split())[:MAX_NOTE_CHARS]
    sent = reporter().send("hand", raised=True, note=note, at=int(time.time() * 1000))
    if sent and reporter().wait():
        return "Your hand is up: the instructor sees it on their board."
    return "No room's board here (a lab on a laptop, or Kafka away): ask the person next to you, or wave."


def lower_hand() -> str:
    """Lower your hand (you found the answer)."""
    sent = reporter().send("hand", raised=False, note="", at=int(time.time() * 1000))
    return "Your hand is down." if sent and reporter().wait() else "No room's board here: nothing to lower."


__all__ = ["HEARTBEAT_SECONDS", "KINDS", "Reporter", "lower_hand", "progress_value", "raise_hand", "reporter"]
