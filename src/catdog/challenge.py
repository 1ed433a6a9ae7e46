"""The room's challenge: photos nobody has seen, published without labels; each learner submits their
model's verdicts (never the model: the room runs no learner's code); the wall scores every submission
against labels only it holds and shows the best of each learner on a live leaderboard.

The instructor makes the set once (`catdog challenge make`): the photos under neutral names (the first
12 hex digits of their sha256, so a name gives nothing away) and, apart, ``answers.json`` with the labels
and the models' own scores (the line to beat). `catdog challenge publish` puts the photos on the
challenge topic, which every learner may read; the answers go only to the wall (a Secret in the room's
namespace). A submission is one record on the submissions topic, signed with the learner's key like
everything else they send (catdog.identity): a name is believed only under its own key, and one a minute
per learner is scored, by the record's timestamp (the broker's own where the topic says LogAppendTime).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from catdog import CLASS_NAMES, CatdogError
from catdog.config import MAX_LEARNER_CHARS, KafkaSettings
from catdog.identity import Keys, Replays
from catdog.kafka.clients import assign_every_partition, make_consumer
from catdog.kafka.photos import content_type
from catdog.kafka.records import LEARNER_HEADER, headers_dict, record_sender, signed

SUBMISSION_INTERVAL_SECONDS = 60  # one scored submission a minute per learner
CHALLENGE_HEADER = "challenge"
ID_CHARS = 12  # hex digits of a photo's sha256: its neutral name
MAX_LEARNERS = 1000  # learners on the board: far more than a room, bounded all the same
ANSWERS_FILE = "answers.json"
PHOTOS_FOLDER = "photos"


class ChallengeError(CatdogError, ValueError):
    """A challenge folder or answers file that cannot be used."""


def photo_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:ID_CHARS]


def challenge_id(photo_ids: Iterable[str]) -> str:
    """The set's name: the same photos always make the same challenge, another set another name."""
    return hashlib.sha256(",".join(sorted(photo_ids)).encode()).hexdigest()[:ID_CHARS]


@dataclass(frozen=True)
class Answers:
    """What only the room holds: each photo's label, and the lab's models' scores on the set."""

    challenge: str
    labels: Mapping[str, str]
    baseline: Mapping[str, float] = field(default_factory=dict)


def read_answers(path: Path) -> Answers:
    try:
        table = json.loads(Path(path).read_text())
        labels = {str(key): str(label) for key, label in table["labels"].items()}
        if not labels or set(labels.values()) - set(CLASS_NAMES):
            raise ValueError("labels must be cat or dog, at least one")
        return Answers(
            str(table["challenge"]), labels, {str(k): float(v) for k, v in table.get("baseline", {}).items()}
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ChallengeError(f"{path}: not a challenge's answers ({error})") from error


def make(
    source_dir: Path, out: Path, loaded: Mapping[str, object] | None = None, *, max_bytes: int, max_pixels: int
) -> Answers:
    """The challenge from a prepared folder (``catdog data prepare``'s split/class layout): ``out/photos``
    under neutral names, ``out/answers.json`` (private) with the labels and, given ``loaded`` models, their
    scores on the set."""
    from catdog.data import image_files

    photos_dir = out / PHOTOS_FOLDER
    photos_dir.mkdir(parents=True, exist_ok=True)
    labels = {}
    for path, label in image_files(source_dir, "training") + image_files(source_dir, "validation"):
        data = path.read_bytes()
        name = photo_id(data)
        (photos_dir / f"{name}{path.suffix.lower()}").write_bytes(data)
        labels[name] = CLASS_NAMES[label]
    answers = Answers(challenge_id(labels), labels)
    if loaded:
        paths = sorted(photos_dir.iterdir())
        answers = Answers(
            answers.challenge,
            labels,
            {
                name: score(answers, verdicts({name: model}, paths, max_bytes=max_bytes, max_pixels=max_pixels))
                for name, model in loaded.items()
            },
        )
    write_answers(answers, out / ANSWERS_FILE)
    return answers


def write_answers(answers: Answers, path: Path) -> None:
    text = json.dumps(
        {"challenge": answers.challenge, "labels": dict(answers.labels), "baseline": dict(answers.baseline)}, indent=1
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the room's secret
    with os.fdopen(descriptor, "w") as stream:
        stream.write(text)


def score(answers: Answers, given: Mapping[str, str]) -> float:
    """The share of the set's photos given their right label (a photo left out counts as wrong)."""
    return sum(given.get(name) == label for name, label in answers.labels.items()) / len(answers.labels)


def verdicts(loaded: Mapping[str, object], paths: Iterable[Path], *, max_bytes: int, max_pixels: int) -> dict[str, str]:
    """One model's verdict on each photo, by the photo's name (its stem): what a learner submits."""
    from catdog.predict import classify_paths

    (name,) = loaded
    return {
        result.path.stem: result.verdicts[name].label
        for result in classify_paths(paths, dict(loaded), max_bytes=max_bytes, max_pixels=max_pixels)
        if result.verdicts is not None
    }


def publish(producer, kafka: KafkaSettings, photos_dir: Path, challenge: str, timeout: float = 30.0) -> int:
    """Every photo of the set on the challenge topic, keyed by its name, marked with the set's name."""
    paths = sorted(path for path in Path(photos_dir).iterdir() if path.is_file())
    futures = [
        producer.send(
            kafka.challenge_topic,
            value=path.read_bytes(),
            key=path.stem.encode(),
            headers=[(CHALLENGE_HEADER, challenge.encode()), ("content-type", content_type(path.name).encode())],
        )
        for path in paths
    ]
    for future in futures:
        future.get(timeout=timeout)
    return len(futures)


@dataclass(frozen=True)
class Published:
    """The set a learner fetched: its name (None where no challenge is published) and the photos' files."""

    challenge: str | None
    paths: list[Path]


def fetch(kafka: KafkaSettings, folder: Path, timeout: float = 15.0) -> Published:
    """The latest published set, read from the challenge topic into ``folder`` (one file per photo)."""
    consumer = make_consumer(kafka)
    records, deadline = [], time.monotonic() + timeout
    try:
        partitions = assign_every_partition(consumer, kafka.challenge_topic)
        if not partitions:
            return Published(None, [])
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(p) < end for p, end in ends.items()) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    latest = max(records, key=lambda record: record.timestamp, default=None)
    if latest is None:
        return Published(None, [])
    challenge = headers_dict(latest.headers).get(CHALLENGE_HEADER)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for record in records:
        headers = headers_dict(record.headers)
        name = (record.key or b"").decode("latin-1")
        if headers.get(CHALLENGE_HEADER) == challenge and len(name) == ID_CHARS and name.isalnum():
            extension = {"image/png": ".png", "image/webp": ".webp"}.get(headers.get("content-type", ""), ".jpg")
            paths[name] = folder / f"{name}{extension}"
            paths[name].write_bytes(record.value or b"")
    return Published(challenge, sorted(paths.values()))


def submission(challenge: str, given: Mapping[str, str], model: str) -> bytes:
    return json.dumps({"challenge": challenge, "verdicts": dict(given), "model": model}, sort_keys=True).encode()


def submit(
    producer,
    kafka: KafkaSettings,
    challenge: str,
    given: Mapping[str, str],
    model: str = "quick",
    timeout: float = 30.0,
):
    """Send the verdicts as this learner (signed with their key in a room). Returns the broker's metadata."""
    if not kafka.learner:
        raise ChallengeError("a submission needs a name: set CATDOG_LEARNER (a room's notebook has it set)")
    key, value = kafka.learner.encode(), submission(challenge, given, model)
    headers = [(LEARNER_HEADER, key), *signed(kafka, kafka.learner, key, value)]
    return producer.send(kafka.submissions_topic, value=value, key=key, headers=headers).get(timeout=timeout)


@dataclass
class Entry:
    """A learner's best scored submission, and how many of theirs were scored."""

    learner: str
    accuracy: float
    submitted_at: int  # ms since the epoch: the record's timestamp
    model: str
    submissions: int = 1

    def row(self) -> dict:
        """The entry as the board's JSON shows it."""
        submitted_at = datetime.fromtimestamp(self.submitted_at / 1000, UTC).isoformat(timespec="seconds")
        return {
            "learner": self.learner,
            "accuracy": round(self.accuracy, 4),
            "model": self.model,
            "submitted_at": submitted_at,
            "submissions": self.submissions,
        }


def submitted_verdicts(answers: Answers, value: bytes | None) -> tuple[dict, str, str | None]:
    """A submission's verdicts and model name, or why it is not one for the challenge running."""
    try:
        submitted = json.loads(value or b"")
        given, model = submitted["verdicts"], str(submitted.get("model", ""))[:40]
        if submitted["challenge"] != answers.challenge:
            return {}, model, "for another challenge than the one running"
        if (
            not isinstance(given, dict)
            or len(given) > len(answers.labels)
            or any(not isinstance(label, str) for label in given.values())
        ):
            return {}, model, "verdicts must be one label per photo of the set"
        return given, model, None
    except (ValueError, KeyError, TypeError) as error:
        return {}, "", f"not a submission ({type(error).__name__})"


class Scoreboard:
    """The room's side: each submission from the topic checked (who signed it, which set, one a minute) and
    scored against the answers; the best of each learner kept. Not thread-safe: one reader feeds it."""

    def __init__(self, answers: Answers, keys: Keys | None, interval: float = SUBMISSION_INTERVAL_SECONDS) -> None:
        self.answers, self.keys, self.interval_ms = answers, keys, int(interval * 1000)
        self.best: dict[str, Entry] = {}
        self.scored_at: dict[str, int] = {}
        self.replays = Replays()
        self.refused = 0

    def add(
        self,
        key: bytes | None,
        value: bytes | None,
        headers,
        timestamp_ms: int,
        *,
        where: object = None,
        timestamp_type: int = 0,
        now_ms: int | None = None,
    ) -> tuple[bool, str]:
        """One record of the submissions topic (read at ``where``): (scored, what happened), never an
        exception. One a minute per learner, by a time no sender chose: the broker's where it stamps the
        topic (``timestamp_type`` 1, LogAppendTime), else the record's capped at this reader's clock
        (``now_ms``), and never earlier than the learner's last scored one."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        learner, problem = self._sender(key, value, headers, where, now_ms)
        if problem is None:
            given, model, problem = submitted_verdicts(self.answers, value)
        at = timestamp_ms if timestamp_type == 1 else min(timestamp_ms, now_ms)
        if problem is None and at - self.scored_at.get(learner, -self.interval_ms) < self.interval_ms:
            problem = f"{learner} submitted less than {self.interval_ms // 1000} s after their last scored submission"
        timestamp_ms = at
        if problem is None and learner not in self.best and len(self.best) >= MAX_LEARNERS:
            problem = f"the board is full ({MAX_LEARNERS} learners)"
        if problem is not None:
            self.refused += 1
            return False, problem
        self.scored_at[learner] = timestamp_ms
        accuracy = score(self.answers, given)
        best = self.best.get(learner)
        count = best.submissions + 1 if best else 1
        if best is None or accuracy > best.accuracy:
            self.best[learner] = Entry(learner, accuracy, timestamp_ms, model, count)
        else:
            best.submissions = count
        return True, f"{learner}: {accuracy:.3f}"

    def _sender(
        self, key: bytes | None, value: bytes | None, headers, where: object, now_ms: int
    ) -> tuple[str, str | None]:
        named = headers_dict(headers).get(LEARNER_HEADER, "").strip()
        if not named.isprintable() or len(named) > MAX_LEARNER_CHARS:
            return named[:MAX_LEARNER_CHARS].encode("ascii", "replace").decode(), "not a learner's name"
        if not named or (key or b"") != named.encode():
            return named, "a submission is keyed by the learner who sends it"
        if self.keys is None:  # one learner on a laptop: names as written
            return named, None
        sender = record_sender(self.keys, named, headers_dict(headers), key, value)
        if not sender.verified or sender.phone:
            return named, f"not signed with {named}'s own key"
        replayed = self.replays.problem(sender, where, subject=named, now_ms=now_ms)
        if replayed:  # someone else sent it: the refusal must not read as the learner's own mistake
            return named, f"not {named}'s: {replayed}"
        return named, None

    def board(self) -> dict:
        """What the wall shows: the best of each learner, best first (the earlier first on a tie)."""
        rows = sorted(self.best.values(), key=lambda entry: (-entry.accuracy, entry.submitted_at))
        return {
            "challenge": self.answers.challenge,
            "photos": len(self.answers.labels),
            "refused": self.refused,
            "baseline": dict(self.answers.baseline),
            "rows": [entry.row() for entry in rows],
        }
