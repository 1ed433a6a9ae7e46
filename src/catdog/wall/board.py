"""The instructor's board: one row per learner of the room, from what their lab reports and what they did.

Fed by the wall's feed: the progress topic (each lab's signed heartbeats, exercise checks and raised
hands: catdog.progress), the results (photos each learner sent, as their signatures show), the room's
votes, the challenge's best, and the moderation topic (a hand the instructor marked answered). A record
counts only under its signer's own key, once (a copy or a reordering is refused, as a replay), at the
broker's time where the topic is stamped by the broker. Bounded: the room's roster, eight exercises.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from catdog.config import MAX_LEARNER_CHARS
from catdog.identity import Keys, Replays
from catdog.kafka.records import LEARNER_HEADER, headers_dict, record_sender
from catdog.progress import KERNEL_STATES, MAX_NOTE_CHARS, MAX_NOTEBOOKS
from catdog.wall.cards import clean_text

SILENT_SECONDS = 50  # a lab heard from every 20 s is silent once it missed two heartbeats
MAX_LEARNERS = 500  # rows on a board without a roster (a laptop's lab names as written)
MAX_VOTES_PER_LEARNER = 10_000


@dataclass
class Lab:
    """What the board knows of one learner's lab."""

    name: str
    heard_at: int = 0  # ms: the last heartbeat (0: never heard from)
    notebooks: list = field(default_factory=list)
    restarts: int = 0
    checks: dict = field(default_factory=dict)  # exercise -> {"done": bool, "tries": int}
    photos: int = 0
    voted: set = field(default_factory=set)  # image keys this learner labelled
    hand: dict | None = None  # {"raised_at": ms, "note": str} while raised
    active_at: int = 0  # ms: the last thing the learner did

    def status(self, now_ms: int) -> str:
        """``hand``, ``silent`` (heard from before, not lately), ``not started`` or ``working``."""
        if self.hand is not None:
            return "hand"
        if self.heard_at and now_ms - self.heard_at > SILENT_SECONDS * 1000:
            return "silent"
        return "working" if self.heard_at or self.active_at else "not started"

    def row(self, now_ms: int, exercises: list[str], best: float | None) -> dict:
        silent_for = (now_ms - self.heard_at) // 1000 if self.heard_at else None
        return {
            "learner": self.name,
            "status": self.status(now_ms),
            "hand": self.hand and {**self.hand, "waiting_s": max(0, (now_ms - self.hand["raised_at"]) // 1000)},
            "heard_s_ago": silent_for,
            "notebooks": self.notebooks,
            "restarts": self.restarts,
            "exercises": {n: _cell(self.checks.get(n)) for n in exercises},
            "done": sum(1 for n in exercises if (self.checks.get(n) or {}).get("done")),
            "photos": self.photos,
            "votes": len(self.voted),
            "challenge": best,
            "active_s_ago": (now_ms - self.active_at) // 1000 if self.active_at else None,
        }


def _cell(check: dict | None) -> str:
    """An exercise's cell: ``done``, ``tried`` (checked, not yet) or ``untouched``."""
    if not check:
        return "untouched"
    return "done" if check["done"] else "tried"


ORDER = {"hand": 0, "silent": 1, "not started": 2, "working": 3}


class Roster:
    """Every learner's lab, under a lock (the feed writes, the moderator's requests read): the room's, or
    (no key table: a laptop's) the names as written; what each did that the wall sees on other topics."""

    def __init__(self, roster: list[str], keys: Keys | None) -> None:
        self.labs: dict[str, Lab] = {name: Lab(name) for name in roster}
        self.keys = keys
        self.answered: dict[str, int] = {}  # learner -> when the instructor last answered their hand (ms)
        self.lock = threading.Lock()

    def _lab(self, name: str) -> Lab | None:
        """A learner's row: one of the roster's, or (no roster: a laptop's names as written) a new one."""
        if name in self.labs or self.keys is not None:
            return self.labs.get(name)
        if len(self.labs) >= MAX_LEARNERS or not name:
            return None
        self.labs[name] = Lab(name)
        return self.labs[name]

    def add_photo(self, result: dict, at: int) -> None:
        """A result of the classifier: a photo its verified sender sent (a phone's counts for no learner)."""
        name = str(result.get("learner") or "")
        if result.get("learner_verified", self.keys is None) and not name.endswith("(phone)"):
            self._count(name, at, photo=True)

    def add_vote(self, voter: str, image: str, at: int) -> None:
        """A label the room's vote counted (``learner:<name>``; a phone's counts for no learner)."""
        if voter.startswith("learner:"):
            self._count(voter.split(":", 1)[1], at, image=image)

    def _count(self, name: str, at: int, photo: bool = False, image: str | None = None) -> None:
        with self.lock:
            lab = self._lab(name)
            if lab is None:
                return
            lab.photos += photo
            if image is not None and len(lab.voted) < MAX_VOTES_PER_LEARNER:
                lab.voted.add(image)
            lab.active_at = max(lab.active_at, at)

    def answer(self, learner: str, at: int) -> None:
        """The instructor answered ``learner``'s hand (a hand raised later stays up)."""
        with self.lock:
            self.answered[learner] = max(self.answered.get(learner, 0), at)
            lab = self.labs.get(learner)
            if lab is not None and lab.hand is not None and lab.hand["raised_at"] <= at:
                lab.hand = None


class Board(Roster):
    """The board: the roster, and each lab's own reports from the progress topic, signed and counted once."""

    def __init__(self, roster: list[str], exercises: list[str], keys: Keys | None) -> None:
        super().__init__(roster, keys)
        self.exercises = list(exercises)
        self.replays = Replays()
        self.refused = 0
        self.shown = False  # the room's progress, without names, on the projector (the instructor's choice)

    def add_progress(self, record, now_ms: int | None = None) -> str | None:
        """One record of the progress topic; why it does not count, or None."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        headers = headers_dict(record.headers)
        named = headers.get(LEARNER_HEADER, "")[:MAX_LEARNER_CHARS]
        where = (record.topic, record.partition, record.offset)
        with self.lock:
            problem = self._signed(named, headers, record, where, now_ms)
            if problem is None:
                problem = self._apply(named, record.value, _when(record, now_ms))
            self.refused += problem is not None
            return problem

    def _signed(self, named: str, headers: dict, record, where, now_ms: int) -> str | None:
        if self.keys is None:
            return None
        sender = record_sender(self.keys, named, headers, record.key, record.value)
        if not sender.verified or sender.phone or (record.key or b"") != named.encode():
            return f"not signed with {named or 'anyone'}'s own key"
        replayed = self.replays.problem(sender, where, subject=("progress", named), now_ms=now_ms)
        return f"not {named}'s: {replayed}" if replayed else None

    def _apply(self, named: str, value: bytes | None, at: int) -> str | None:
        lab = self._lab(named)
        if lab is None:
            return f"{named!r} is not a learner of this room"
        try:
            given = json.loads(value or b"")
            return apply_progress(lab, given if isinstance(given, dict) else {}, at, self.exercises)
        except (ValueError, TypeError):
            return "not a progress record"

    def apply(self, key: str, value: dict) -> bool:
        """A record of the moderation topic that is the board's (a hand answered, the projector's progress
        shown or not); False for any other."""
        kind, _, learner = key.partition(":")
        if kind == "answered" and learner and isinstance(value.get("at"), int):
            self.answer(learner, value["at"])
            return True
        if key == "progress-shown" and isinstance(value.get("shown"), bool):
            self.shown = value["shown"]
            return True
        return False

    def snapshot(self, best: dict[str, float] | None = None, now_ms: int | None = None) -> dict:
        """The board as the moderator's page and ``catdog room status`` show it: hands first (longest
        waiting first), then silent labs, labs not started, then by progress (least done first)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self.lock:
            rows = [lab.row(now_ms, self.exercises, (best or {}).get(lab.name)) for lab in self.labs.values()]
        rows.sort(key=lambda r: (ORDER[r["status"]], -(r["hand"] or {}).get("waiting_s", 0), r["done"], r["learner"]))
        done = {n: sum(1 for r in rows if r["exercises"][n] == "done") for n in self.exercises}
        return {"learners": len(rows), "exercises": self.exercises, "done": done, "rows": rows, "refused": self.refused}

    def aggregate(self) -> dict:
        """The room's progress without a name: how many are done with each exercise (for the projector)."""
        with self.lock:
            labs = list(self.labs.values())
            done = {n: sum(1 for lab in labs if (lab.checks.get(n) or {}).get("done")) for n in self.exercises}
        return {"learners": len(labs), "done": done, "exercises": self.exercises}


def apply_progress(lab: Lab, given: dict, at: int, exercises: list[str]) -> str | None:
    """One progress record's fields onto ``lab``; why not, if they are not a progress record."""
    kind = given.get("kind")
    if kind == "heartbeat":
        lab.heard_at = max(lab.heard_at, at)
        lab.notebooks = [_notebook(n) for n in list(given.get("notebooks") or [])[:MAX_NOTEBOOKS]]
        lab.restarts = max(lab.restarts, int(given.get("restarts") or 0))
        return None
    if kind == "check" and str(given.get("exercise")) in exercises:
        check = lab.checks.setdefault(str(given["exercise"]), {"done": False, "tries": 0})
        check["done"] = check["done"] or bool(given.get("done"))  # done once is done
        check["tries"] += 1
    elif kind == "hand":
        note = clean_text(str(given.get("note") or ""), MAX_NOTE_CHARS)
        lab.hand = {"raised_at": at, "note": note} if given.get("raised") is True else None
    else:
        return f"not a progress record ({str(kind)[:20]!r})"
    lab.active_at = max(lab.active_at, at)
    return None


def _notebook(given: object) -> dict:
    given = given if isinstance(given, dict) else {}
    state = str(given.get("kernel") or "unknown")
    return {
        "path": clean_text(str(given.get("path") or ""), 120),
        "kernel": state if state in KERNEL_STATES else "unknown",
        "restarts": int(given.get("restarts") or 0) if str(given.get("restarts") or "0").isdigit() else 0,
    }


def _when(record, now_ms: int) -> int:
    """The record's time: the broker's where it stamps the topic (LogAppendTime), else the record's, capped
    at this reader's clock (a sender's future stamp cannot keep a lab looking alive)."""
    return record.timestamp if record.timestamp_type == 1 else min(record.timestamp, now_ms)


def read_board(wall_url: str, moderator_key: str, timeout: float = 10.0) -> dict:
    """The board as the wall serves it to the moderator (``catdog room status``): joined with the moderator's
    key, as the moderator's page does, then ``/api/board``. Raises OSError (or ValueError) when it cannot."""
    import http.cookiejar
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    join = urllib.request.Request(
        f"{wall_url.rstrip('/')}/api/join",
        data=json.dumps({"key": moderator_key}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    opener.open(join, timeout=timeout).close()
    with opener.open(f"{wall_url.rstrip('/')}/api/board", timeout=timeout) as answer:
        return json.loads(answer.read())


def status_of(row: dict) -> str:
    """A row's status in words, as the moderator's page shows it."""
    if row["hand"]:
        waiting = row["hand"]["waiting_s"]
        said = f": {row['hand']['note']}" if row["hand"]["note"] else ""
        return f"HAND {waiting // 60} min{said}" if waiting >= 60 else f"HAND {waiting} s{said}"
    if row["status"] == "silent":
        return f"silent: no heartbeat for {row['heard_s_ago']} s"
    if row["restarts"]:
        return f"kernel restarted {row['restarts']}x"
    return row["status"]


def board_table(board: dict, width: int = 24) -> str:
    """The board as a terminal table: a row per learner, a column per exercise (done, tried, untouched)."""
    marks = {"done": "✓", "tried": "…", "untouched": "·"}
    head = f"{'learner':<{width}} {'status':<30} " + " ".join(f"{n:>4}" for n in board["exercises"])
    lines = [head + "  photos votes challenge", "-" * (len(head) + 24)]
    for row in board["rows"]:
        cells = " ".join(f"{marks[row['exercises'][n]]:>4}" for n in board["exercises"])
        best = "–" if row["challenge"] is None else f"{row['challenge']:.0%}"
        name = row["learner"] if len(row["learner"]) <= width else row["learner"][: width - 1] + "…"
        lines.append(
            f"{name:<{width}} {status_of(row)[:30]:<30} {cells}  {row['photos']:>6} {row['votes']:>5} {best:>9}"
        )
    done = " · ".join(f"{n}: {board['done'][n]} of {board['learners']}" for n in board["exercises"])
    return "\n".join(lines + ["", done])
