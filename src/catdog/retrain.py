"""The loop closed: retrain on the baked photos plus the room's labelled photos, and serve the result only
if it passes the gate.

1. The room's photos: the latest label of each image on the feedback topic (catdog.labels), each through
   the one decoder. One in four (chosen by its sha256, so the same photo always falls the same way) is
   kept out of training: the room's photos the candidate has not trained on.
2. A candidate trained on the base source's photos (never a check-set photo, never a held-out one) and
   the rest of the room's.
3. The gate (catdog.registry.gate): the candidate and the serving model on the fixed check set (a
   prepared folder held out from every training source, recorded by sha256) and on the held-out room
   photos. Promoted, it replaces the file the classifier hot-reloads; refused, it is kept with the reason."""

from __future__ import annotations

import csv
import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from catdog import registry
from catdog.checkset import correct, verify_check_set
from catdog.config import Settings
from catdog.data import (
    MANIFEST_FIELDS,
    MANIFEST_NAME,
    Kept,
    check_photo,
    prepare_with,
    read_manifest,
)
from catdog.download import sha256_file
from catdog.images import ImageError, decode_image
from catdog.kafka.photos import send_image
from catdog.kafka.results import find_prediction
from catdog.labels import Count, count_votes, read_labelled
from catdog.registry import card_path

ROOM_HOLDOUT = 4  # one room photo in this many is kept out of training, for the gate
VERDICT_BATCH = 32  # photos a batch when the serving model judges the room's photos
MODEL = "pretrained"  # the model the room retrains (the one the training Job trains)


def held_out(sha256: str) -> bool:
    return int(sha256[:8], 16) % ROOM_HOLDOUT == 0


@dataclass
class RoomPhotos:
    train: list[Kept] = field(default_factory=list)
    held: list[Kept] = field(default_factory=list)
    skipped: list[tuple[str, str, str, str]] = field(default_factory=list)
    count: Count | None = None  # what the room's votes decided (labels.count_votes)
    voted: int = 0  # photos anyone voted on


def room_photos(settings: Settings, topic: str | None = None, served_model: Path | None = None) -> RoomPhotos:
    """The room's voted photos, decoded and checked, counted (labels.count_votes, against ``served_model``'s
    verdicts where one serves) and split into training and held out. The same bytes under two keys are
    one photo with both keys' voters."""
    found, skipped = read_labelled(settings.kafka, topic)
    room = RoomPhotos(skipped=list(skipped))
    limits = {"max_bytes": settings.max_image_bytes, "max_pixels": settings.max_image_pixels}
    photos: dict[str, Kept] = {}
    votes: dict[str, dict[str, str]] = {}
    for image in found:
        try:
            kept = check_photo(image.source, "", image.data, limits)
        except ImageError as error:
            room.skipped.append((image.source, ",".join(sorted(set(image.votes.values()))), error.reason, str(error)))
            continue
        photos.setdefault(kept.sha256, kept)
        votes.setdefault(kept.sha256, {}).update(image.votes)
    served = served_verdicts(served_model, photos, limits) if served_model and photos else {}
    room.count, room.voted = count_votes(votes, served), len(votes)
    room.skipped += [(photos[sha].name, "", "set-aside", why) for sha, why in room.count.set_aside.items()]
    for sha, label in room.count.accepted.items():
        kept = replace(photos[sha], label=label, name=f"{label}/{photos[sha].name}")
        (room.held if held_out(sha) else room.train).append(kept)
    return room


def served_verdicts(model_path: Path, photos: dict[str, Kept], limits: dict) -> dict[str, tuple[str, float]]:
    """The serving model's verdict on each photo and its probability: what a lone voter may not overrule."""
    from catdog.models import input_size, load_model
    from catdog.predict import classify

    model = load_model(model_path)
    size, verdicts = input_size(model), {}
    shas = list(photos)
    for start in range(0, len(shas), VERDICT_BATCH):
        batch = shas[start : start + VERDICT_BATCH]
        decoded = [decode_image(photos[sha].data, target_size=size, **limits) for sha in batch]
        for sha, verdict in zip(batch, classify({"served": model}, decoded)):
            p_dog = verdict["served"].p_dog
            verdicts[sha] = (verdict["served"].label, max(p_dog, 1 - p_dog))
    return verdicts


def _write(folder: Path, split: str, photos: list[Kept]) -> list[dict]:
    rows = []
    for photo in photos:
        target = folder / split / photo.label / Path(photo.name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(photo.data)
        rows.append(
            {
                "file": target.relative_to(folder).as_posix(),
                "split": split,
                "class": photo.label,
                "sha256": photo.sha256,
                "width": photo.width,
                "height": photo.height,
                "source": photo.name,
            }
        )
    return rows


def training_set(
    settings: Settings,
    base_source: str,
    out: Path,
    per_class: int,
    room: RoomPhotos,
    check_hashes: set[str],
    seed: int = 1337,
) -> None:
    """``per_class`` photos of each class from ``base_source`` (none from the check set or the room) plus
    the room's training photos, in one prepared folder with one manifest."""
    excluded = check_hashes | {photo.sha256 for photo in room.train + room.held}
    prepare_with(settings, base_source, out, per_class, seed=seed, progress=False, exclude=excluded)
    rows = read_manifest(out) + _write(out, "training", room.train)
    with open(out / MANIFEST_NAME, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda row: str(row["file"])))


@dataclass(frozen=True)
class Outcome:
    version: str | None  # None: no candidate was trained
    promoted: bool
    reason: str
    scores: dict  # accuracies: candidate and serving, on the check set and the room's held-out photos
    room_photos: dict  # trained on, held out, skipped
    serving: str | None  # the version serving afterwards
    votes: dict = field(default_factory=dict)  # photos voted on, accepted, set aside; voters set aside


def retrain(
    settings: Settings,
    base_source: str,
    check_dir: Path,
    per_class: int,
    *,
    labels_topic: str | None = None,
    epochs: int | None = None,
    fine_tune: bool = False,
    seed: int = 1337,
) -> Outcome:
    """Train a candidate on the base photos and the room's, gate it, and serve it or keep it out. The check
    set is verified against its sealed manifest first (a changed one stops the run before any training) and
    again at the gate; the gate runs under the models volume's promotion lock, against the model serving
    then (another retraining may have promoted one meanwhile). Where the room voted and none of its votes
    survived the count, no candidate is trained: nothing the room said is fit to learn from."""
    models_dir = settings.models_dir
    check_rows = verify_check_set(check_dir)
    check_hashes = {row["sha256"] for row in check_rows}
    registry.adopt(models_dir, MODEL)  # the model serving before the first retrain: rollback can return to it
    serving_path = models_dir / f"{MODEL}.keras"
    room = room_photos(settings, labels_topic, serving_path if serving_path.is_file() else None)
    # A room photo that is also a check-set photo would be trained on and then scored: it is left out.
    room.skipped += [
        (photo.name, photo.label, "in-check-set", "the same bytes as a check-set photo")
        for photo in room.train + room.held
        if photo.sha256 in check_hashes
    ]
    room.train = [photo for photo in room.train if photo.sha256 not in check_hashes]
    room.held = [photo for photo in room.held if photo.sha256 not in check_hashes]
    counts = {"trained_on": len(room.train), "held_out": len(room.held), "skipped": len(room.skipped)}
    votes = {
        "photos": room.voted,
        "accepted": len(room.count.accepted),
        "set_aside": len(room.count.set_aside),
        "voters_set_aside": room.count.doubted,
        "set_aside_examples": [f"{name}: {why}" for name, _, reason, why in room.skipped if reason == "set-aside"][:5],
    }
    if room.voted and not room.train + room.held:
        reason = f"none of the {room.voted} photos the room voted on survived the count"
        return Outcome(None, False, reason, {}, counts, registry.serving(models_dir, MODEL), votes)
    with tempfile.TemporaryDirectory(prefix="catdog-retrain-") as work:
        work = Path(work)
        candidate = _train_candidate(
            settings, base_source, work, per_class, room, check_hashes, seed, epochs, fine_tune
        )
        held = work / "room-held-out"
        _write(held, "validation", room.held)
        splits = tuple(split for split in ("training", "validation") if (check_dir / split).is_dir())

        def score(path: Path) -> dict:
            return {
                "check": correct(path, check_dir, splits),
                "room": correct(path, held, ("validation",)) if room.held else None,
            }

        with registry.promotion_lock(models_dir, MODEL):
            verify_check_set(check_dir)
            version, promoted, reason, scores = _gate(
                models_dir, candidate, score, check_dir, len(check_rows), room, votes
            )
    return Outcome(version, promoted, reason, scores, counts, registry.serving(models_dir, MODEL), votes)


def _train_candidate(
    settings: Settings,
    base_source: str,
    work: Path,
    per_class: int,
    room: RoomPhotos,
    check_hashes: set[str],
    seed: int,
    epochs: int | None,
    fine_tune: bool,
) -> Path:
    from catdog import transfer

    data = work / "data"
    training_set(settings, base_source, data, per_class, room, check_hashes, seed)
    candidate = work / f"{MODEL}.keras"
    extra = {"epochs": epochs} if epochs else {}
    transfer.train_pretrained(
        data,
        candidate,
        weights_dir=settings.weights_source,
        seed=seed,
        progress=False,
        verbose=0,
        fine_tune=fine_tune,
        **extra,
    )
    return candidate


def _accuracies(right: dict | None) -> dict | None:
    """{"check": [...], "room": [...] or None} as accuracies (a card and the report show these)."""
    if right is None:
        return None
    return {name: None if not found else sum(found) / len(found) for name, found in right.items()}


def _gate(models_dir: Path, candidate: Path, score, check_dir: Path, check_photos: int, room: RoomPhotos, votes: dict):
    """Under the promotion lock: the candidate against the model serving now, photo by photo; kept as a
    version either way, served only if the gate says so. Returns (version, promoted, reason, accuracies)."""
    serving_path = models_dir / f"{MODEL}.keras"
    right = {"candidate": score(candidate), "serving": score(serving_path) if serving_path.is_file() else None}
    promoted, reason = registry.gate(right["candidate"], right["serving"])
    scores = {who: _accuracies(found) for who, found in right.items()}
    card = json.loads(card_path(candidate).read_text())
    card["gate"] = {
        **scores,
        "promoted": promoted,
        "reason": reason,
        "votes": votes,
        "check_set": {"photos": check_photos, "manifest_sha256": sha256_file(check_dir / MANIFEST_NAME)},
        "room_held_out_sha256": sorted(photo.sha256 for photo in room.held),
    }
    version = registry.register(models_dir, MODEL, candidate, card)
    if promoted:
        registry.serve(models_dir, MODEL, version, reason=reason)
    else:
        registry.refuse(models_dir, MODEL, version, reason)
    return version, promoted, reason, scores


def report(outcome: Outcome) -> str:
    """What a retraining did, as `catdog retrain` prints it: how the room's votes counted, both models'
    scores, the gate's decision and the version serving afterwards."""
    room, votes = outcome.room_photos, outcome.votes
    lines = [
        f"room's votes: {votes.get('photos', 0)} photos voted on, {votes.get('accepted', 0)} accepted, "
        f"{votes.get('set_aside', 0)} set aside"
    ]
    lines += [f"  set aside: {why}" for why in votes.get("set_aside_examples", [])]
    lines += [f"  voter set aside: {voter}: {why}" for voter, why in sorted(votes.get("voters_set_aside", {}).items())]
    lines.append(
        f"room photos: {room['trained_on']} trained on, {room['held_out']} held out for the gate, "
        f"{room['skipped']} skipped"
    )
    if outcome.version is None:
        lines.append(f"REFUSED: no candidate trained ({outcome.reason}); serving {outcome.serving}")
        return "\n".join(lines)
    lines.append(f"{'accuracy':<10} {'check set':>10} {'room (held out)':>16}")
    for who, scores in outcome.scores.items():
        if scores:
            room_score = "-" if scores["room"] is None else f"{scores['room']:.3f}"
            lines.append(f"{who:<10} {scores['check']:>10.3f} {room_score:>16}")
    verdict = "PROMOTED: now serving" if outcome.promoted else "KEPT, not served"
    lines.append(f"candidate {outcome.version}: {verdict} ({outcome.reason}); serving {outcome.serving}")
    return "\n".join(lines)


def version_in_service(producer, kafka, photo: Path, expected: str | None, timeout: float) -> str | None:
    """The pretrained version in the classifier's result for ``photo``, sent again until that version is
    ``expected`` (a promoted model, which the classifier picks up within its reload period) or ``timeout``
    seconds have passed. None when no result came at all."""
    deadline = time.monotonic() + timeout
    seen = None
    while True:
        sent = send_image(producer, kafka, photo.read_bytes(), photo.name)
        result = find_prediction(kafka, sent, timeout=max(1.0, deadline - time.monotonic()))
        seen = result["pretrained"].get("version") if result else seen
        if seen == expected or time.monotonic() >= deadline:
            return seen
        time.sleep(1.0)
