"""The loop closed, as a room closes it, against the real broker and the real classifier service: the
serving model gets the room's photos wrong (it was trained on flipped labels), the room corrects them
through the paths a user takes (`catdog send --label`, the wall's right/wrong over its HTTP API),
`catdog retrain` promotes a model that gets more of them right and is no worse on the check set, and the
classifier's next results carry its version. A candidate trained on flipped labels is refused with the
reason and never served; `catdog models rollback` returns the previous version to service."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest

from catdog import registry
from catdog.kafka_io import Sent, collect_predictions, ensure_topics
from conftest import kafka_env
from processes import catdog, catdog_ok, start_service, start_wall
from test_wall import CODE, collect

PER_CLASS = 15  # each training run: seconds, not minutes (MobileNet features on 30-40 photos)
EPOCHS = "10"


def classified(env: dict, kafka, folder: Path) -> dict[str, dict]:
    """Send a folder with `catdog send` and wait for the classifier's result for each photo, by name."""
    printed = catdog_ok("send", folder, env=env)
    now = int(time.time() * 1000)
    sent = [Sent(name, topic, int(partition), int(offset), "", now)
            for name, topic, partition, offset in re.findall(r"^(.+) -> (\S+)\[(\d+)\]@(\d+)$", printed, re.M)]
    found = collect_predictions(kafka, sent, timeout=120)
    assert len(found) == len(sent) == len(list(folder.iterdir())), printed
    return {record.filename: found[record.topic, record.partition, record.offset] for record in sent}


def results_for(kafka, count: int) -> dict[tuple[int, int], dict]:
    return {(r["source"]["partition"], r["source"]["offset"]): r
            for r in map(lambda record: json.loads(record.value), collect(kafka, kafka.predictions_topic, count, 120))}


def copied(photos: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    return folder


def serve_a_model_trained_on_flipped_labels(env: dict, tmp_path: Path, ocp_lab, cat_photos, dog_photos) -> Path:
    """A quick model and, serving, a pretrained model trained on flipped labels: the room's photos will come
    out wrong. Returns the flipped photos' folder."""
    flipped = tmp_path / "flipped"
    copied(cat_photos[200:200 + PER_CLASS], flipped / "dog")
    copied(dog_photos[200:200 + PER_CLASS], flipped / "cat")
    catdog_ok("train", "pretrained", "--source", flipped, "--per-class", PER_CLASS, "--epochs", EPOCHS, "--no-progress",
              env=env)
    catdog_ok("train", "quick", "--source", ocp_lab, "--per-class", 10, "--seconds", 2, "--no-progress", env=env)
    return flipped


def correct_through_send_and_the_wall(env: dict, tmp_path: Path, room: dict[str, list[Path]],
                                      on_the_wall: dict[str, Path]) -> None:
    """The room's corrections: each class's photos with `catdog send --label`, and one of each through the
    wall as a phone sends and judges it."""
    for label, photos in room.items():
        catdog_ok("send", "--label", label, copied(photos, tmp_path / "room" / label), env=env)
    wall, base = start_wall(env, tmp_path / "wall.log", CODE)
    try:
        phone = httpx.Client(base_url=base, timeout=60)
        assert phone.post("/api/join", json={"code": CODE}).status_code == 204
        for label, photo in on_the_wall.items():
            sent = phone.post("/api/photos", params={"filename": photo.name, "learner": "Bo"}, content=photo.read_bytes()).json()
            assert phone.get(f"/api/photos/{sent['partition']}/{sent['offset']}").status_code == 200  # both verdicts shown
            answer = phone.post("/api/feedback", json={"partition": sent["partition"], "offset": sent["offset"],
                                                       "label": label, "learner": "Bo"})
            assert answer.status_code == 201
    finally:
        wall.send_signal(signal.SIGTERM)
        wall.wait(30)


def assert_promoted_with_its_card(env: dict, kafka, models: Path, kaggle_dev: Path, first: str) -> str:
    """Retraining on the base photos and the room's: promoted. The first retraining makes the check set, as
    the cluster's does on a new models volume; the later ones reuse it. Returns the new serving version."""
    printed = catdog_ok("retrain", "--source", kaggle_dev, "--per-class", PER_CLASS, "--epochs", EPOCHS,
                        "--check-from", kaggle_dev, "--check-per-class", PER_CLASS, env=env)
    assert "PROMOTED" in printed and f"check set made from {kaggle_dev}" in printed, printed
    second = registry.serving(models, "pretrained")
    assert second != first
    card = json.loads((models / "pretrained.json").read_text())
    assert card["gate"]["promoted"] and card["gate"]["candidate"]["check"] >= card["gate"]["serving"]["check"]
    [(images_topic, runs)] = card["kafka_records"].items()  # the room's photos it trained on, by offset
    assert images_topic == kafka.images_topic and runs
    assert card["parent"] == first and card["gate"]["check_set"]["photos"] == 2 * PER_CLASS
    return second


def results_once_served(env: dict, kafka, folder: Path, version: str, service) -> dict[str, dict]:
    """The classifier's results for ``folder`` once they carry ``version`` (it reloads within a second or so)."""
    deadline = time.monotonic() + 120
    while True:
        after = classified(env, kafka, folder)
        if all(r["pretrained"].get("version") == version for r in after.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert all(r["pretrained"]["version"] == version for r in after.values()), service.output()[-3000:]
    return after


def test_the_rooms_corrections_retrain_a_model_that_serves_only_through_the_gate(
        kafka, services, tmp_path, kaggle_dev, ocp_lab, weights_dir, cat_photos, dog_photos):
    ensure_topics(kafka)
    models, data = tmp_path / "models", tmp_path / "data"
    env = {**kafka_env(kafka), "CATDOG_MODELS_DIR": str(models), "CATDOG_DATA_DIR": str(data),
           "CATDOG_WEIGHTS_DIR": str(weights_dir), "CATDOG_LEARNER": "Ada", "TF_CPP_MIN_LOG_LEVEL": "3"}
    flipped = serve_a_model_trained_on_flipped_labels(env, tmp_path, ocp_lab, cat_photos, dog_photos)
    first = registry.serving(models, "pretrained")
    service = start_service(services, kafka, models, tmp_path, extra_env={"CATDOG_MODEL_RELOAD_SECONDS": "1"})

    room, on_the_wall = {"cat": cat_photos[300:306], "dog": dog_photos[300:306]}, {"cat": cat_photos[306], "dog": dog_photos[306]}
    correct_through_send_and_the_wall(env, tmp_path, room, on_the_wall)
    before = results_for(kafka, 14)
    truth = {photo.name: label for label, photos in room.items() for photo in photos}
    truth |= {photo.name: label for label, photo in on_the_wall.items()}
    right_before = sum(r["pretrained"]["label"] == truth[r["filename"]] for r in before.values())

    second = assert_promoted_with_its_card(env, kafka, models, kaggle_dev, first)
    resend = copied([next(p for p in cat_photos + dog_photos if p.name == name) for name in truth], tmp_path / "resend")
    after = results_once_served(env, kafka, resend, second, service)
    right_after = sum(r["pretrained"]["label"] == truth[name] for name, r in after.items())
    assert right_after > right_before, (right_before, right_after)

    # A candidate trained on flipped labels: refused, with the reason, and never served.
    check = (data / "check" / "manifest.csv").read_bytes()
    printed = catdog_ok("retrain", "--source", flipped, "--per-class", PER_CLASS, "--epochs", EPOCHS,
                        "--check-from", kaggle_dev, "--check-per-class", 2 * PER_CLASS, env=env)
    assert "KEPT, not served (worse on the check set" in printed and "check set made" not in printed, printed
    assert (data / "check" / "manifest.csv").read_bytes() == check  # the same check set gated both
    assert registry.serving(models, "pretrained") == second
    listed = catdog_ok("models", "list", env=env)
    assert "refused: worse on the check set" in listed and f"{second}" in listed and "serving" in listed

    # Rollback: the version served before this one serves again.
    printed = catdog_ok("models", "rollback", env=env)
    assert registry.serving(models, "pretrained") == first and f"serving {first}" in printed


def test_the_gate_serves_nothing_worse_on_the_check_set_or_on_the_rooms_held_out_photos():
    assert registry.gate({"check": 0.7, "room": None}, None)[0]  # nothing serving yet
    assert registry.gate({"check": 0.95, "room": 0.6}, {"check": 0.9, "room": 0.5})[0]
    assert registry.gate({"check": 0.9, "room": 0.5}, {"check": 0.9, "room": 0.5})[0]  # no worse is enough
    assert registry.gate({"check": 0.9, "room": None}, {"check": 0.9, "room": 0.5})[0]  # no held-out photos
    refused, reason = registry.gate({"check": 0.85, "room": 1.0}, {"check": 0.9, "room": 0.5})
    assert not refused and reason.startswith("worse on the check set: 0.850 < 0.900")
    refused, reason = registry.gate({"check": 0.95, "room": 0.4}, {"check": 0.9, "room": 0.5})
    assert not refused and reason.startswith("worse on the room's corrected photos: 0.400 < 0.500")


def test_a_check_set_that_changed_stops_the_gate_before_any_training_and_names_the_file(ocp_lab, tmp_path):
    """The check set is sealed when first used (its manifest's sha256 beside it, its photos read-only); a
    photo swapped for another, a photo slipped in, a manifest rewritten: `catdog retrain` refuses to run,
    in seconds (no training, no Kafka), and says which file."""
    from catdog.retrain import seal_check_set, seal_path

    models = tmp_path / "models"
    check = models / "check"
    catdog_ok("data", "prepare", "--source", ocp_lab, "--per-class", 6, "--out", check, "--no-progress")
    seal_check_set(check)
    assert seal_path(check).read_text().strip() and all(
        (path.stat().st_mode & 0o222) == 0 for path in check.rglob("*") if path.is_file())
    env = {"CATDOG_MODELS_DIR": str(models), "CATDOG_DATA_DIR": str(tmp_path / "data"),
           "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}  # nothing listens there: Kafka is never reached
    cats = sorted((check / "training" / "cat").iterdir())
    swapped, original = cats[0], cats[0].read_bytes()
    swapped.chmod(0o644)
    swapped.write_bytes(cats[1].read_bytes())
    refused = catdog("retrain", "--source", ocp_lab, "--check", check, "--per-class", 5, env=env, timeout=120)
    assert refused.returncode == 2 and f"check-set photo {swapped} is not the photo its manifest names" in refused.stderr
    assert not (models / "versions").exists()  # nothing was trained, kept or served
    swapped.write_bytes(original)
    slipped = check / "validation" / "dog" / "prank.jpg"
    slipped.write_bytes(original)
    refused = catdog("retrain", "--source", ocp_lab, "--check", check, env=env, timeout=120)
    assert refused.returncode == 2 and f"{slipped} is in the check set but not in its manifest" in refused.stderr
    slipped.unlink()
    manifest = check / "manifest.csv"
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text().replace(cats[0].name, cats[1].name, 1))
    refused = catdog("retrain", "--source", ocp_lab, "--check", check, env=env, timeout=120)
    assert refused.returncode == 2 and f"{manifest} has changed since the check set was made" in refused.stderr


def test_promotions_on_one_models_volume_take_turns(tmp_path):
    """The Job and the CronJob at their gates at once: the second waits for the first's promotion (and then
    gates against what the first left serving); one that waits too long is told so, never let through."""
    import threading

    holding, release = threading.Event(), threading.Event()

    def first():
        with registry.promotion_lock(tmp_path, "pretrained"):
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=first)
    thread.start()
    assert holding.wait(10)
    with pytest.raises(registry.RegistryError, match="another retraining has held"):
        with registry.promotion_lock(tmp_path, "pretrained", timeout=1.5):
            pass
    release.set()
    thread.join(10)
    with registry.promotion_lock(tmp_path, "pretrained", timeout=5):
        pass
