"""The instructor's hand on the wall, over HTTP against two `catdog wall` replicas on the real broker: a
photo hidden from every projector (and from the thumbnails) at once and after a restart, uploads paused
and resumed, a phone blocked, the room's code changed (every join made with the old one void, the QR code
following). Only the moderator's key moderates; the key is never the room's code, nor in any log."""

from __future__ import annotations

import json
import signal
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from catdog.kafka_io import ensure_topics, make_producer
from conftest import kafka_env
from processes import start_wall
from test_wall import classifier_result, sse_events

CODE = "moderated-room-code"
KEY = "the-instructors-own-key"
SECRET = "m" * 40


@contextmanager
def a_wall(kafka, tmp_path: Path, name: str):
    """One replica of the room's wall (the same topics, code, key and secret as the others)."""
    env = {**kafka_env(kafka), "CATDOG_WALL_SECRET": SECRET, "CATDOG_WALL_MODERATOR_KEY": KEY}
    process, base = start_wall(env, tmp_path / f"{name}.log", CODE)
    try:
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def joined(base: str, **credentials: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    answer = client.post("/api/join", json=credentials or {"code": CODE})
    assert answer.status_code == 204, answer.text
    return client


def card_ids(client: httpx.Client) -> list[str]:
    """The cards a viewer opening the wall now is shown (its stream's first event, the snapshot)."""
    with client.stream("GET", "/api/events") as stream:
        line = next(line for line in stream.iter_lines() if line.startswith("data:"))
    return [card["id"] for card in json.loads(line[5:])["cards"]]


def wait_until(check, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def classified_photo(kafka, phone: httpx.Client, photo: Path) -> str:
    """A photo a phone sent through the wall, and the classifier's result for it: its card's id."""
    sent = phone.post("/api/photos", params={"filename": photo.name, "learner": "Eve"}, content=photo.read_bytes())
    assert sent.status_code == 201, sent.text
    sent = sent.json()
    producer = make_producer(kafka)
    result = classifier_result(kafka, sent, photo.name, "Eve", "cat", "cat")
    producer.send(kafka.predictions_topic, json.dumps(result).encode(), key=result["key"].encode()).get(10)
    producer.close()
    return f"{sent['partition']}-{sent['offset']}"


def test_a_hidden_photo_leaves_every_projector_at_once_and_stays_hidden_after_a_restart(kafka, tmp_path, cat_photos):
    ensure_topics(kafka)
    with ExitStack() as walls:
        first, second = (walls.enter_context(a_wall(kafka, tmp_path, name)) for name in ("first", "second"))
        prankster, viewer = joined(first), joined(second)
        photo = classified_photo(kafka, prankster, cat_photos[0])
        assert wait_until(lambda: photo in card_ids(viewer)), card_ids(viewer)
        seen: list = []
        stop = threading.Event()
        threading.Thread(target=sse_events, args=(second, viewer.cookies, seen, stop), daemon=True).start()
        assert wait_until(lambda: any(name == "snapshot" for name, _ in seen))

        assert prankster.post("/api/moderate", json={"action": "hide", "id": photo}).status_code == 403  # a phone
        assert httpx.post(f"{first}/api/join", json={"key": "not-the-key"}).status_code == 403
        assert httpx.post(f"{first}/api/join", json={"key": CODE}).status_code == 403  # the code is no key
        moderator = joined(first, key=KEY)
        hidden_at = time.monotonic()
        assert moderator.post("/api/moderate", json={"action": "hide", "id": photo}).status_code == 200
        # The other replica's projector is told within a second; neither replica shows or serves it again.
        assert wait_until(lambda: ("hide", {"id": photo}) in seen, 1.0), seen
        assert time.monotonic() - hidden_at < 1.0
        stop.set()
        for client in (viewer, prankster):
            assert photo not in card_ids(client)
            assert client.get(f"/api/thumbs/{photo.replace('-', '/')}").status_code == 404
        assert moderator.get("/api/moderation").json()["hidden"] == [photo]
    with a_wall(kafka, tmp_path, "restarted") as again:  # read back from the moderation topic
        assert photo not in card_ids(joined(again))
        assert joined(again).get(f"/api/thumbs/{photo.replace('-', '/')}").status_code == 404
    logs = "".join(path.read_text() for path in tmp_path.glob("*.log"))
    assert KEY not in logs and CODE not in logs


def test_the_moderator_pauses_uploads_blocks_a_phone_and_changes_the_rooms_code(kafka, tmp_path, cat_photos, dog_photos):
    ensure_topics(kafka)
    with a_wall(kafka, tmp_path, "wall") as base:
        prankster, friend, moderator = joined(base), joined(base), joined(base, key=KEY)
        photo = classified_photo(kafka, prankster, cat_photos[1])

        assert moderator.post("/api/moderate", json={"action": "pause"}).json()["paused"] is True
        paused = friend.post("/api/photos", content=dog_photos[0].read_bytes())
        assert paused.status_code == 503 and "paused" in paused.json()["error"]
        assert moderator.post("/api/moderate", json={"action": "resume"}).json()["paused"] is False
        assert friend.post("/api/photos", content=dog_photos[0].read_bytes()).status_code == 201

        assert moderator.post("/api/moderate", json={"action": "block", "id": photo}).status_code == 200
        blocked = prankster.post("/api/photos", content=cat_photos[2].read_bytes())
        assert blocked.status_code == 403 and "stopped this phone" in blocked.json()["error"]
        assert prankster.post("/api/feedback", json={"partition": 0, "offset": 0, "label": "dog"}).status_code == 403
        assert friend.post("/api/photos", content=dog_photos[1].read_bytes()).status_code == 201

        rotated = moderator.post("/api/moderate", json={"action": "rotate"}).json()
        new_code = rotated["code"]
        assert new_code != CODE and rotated["wall"].endswith(f"/#code={new_code}")
        assert friend.get("/api/room").status_code == 401  # every join made with the old code is void
        assert httpx.post(f"{base}/api/join", json={"code": CODE}).status_code == 403
        assert moderator.get("/api/room").status_code == 200  # the moderator's page (and projector) stays
        qr = moderator.get("/api/qr.svg")
        assert qr.status_code == 200 and b"<svg" in qr.content
        assert joined(base, code=new_code).get("/api/room").status_code == 200
    with a_wall(kafka, tmp_path, "restarted") as again:  # the new code outlives the wall; the old one too is gone
        assert httpx.post(f"{again}/api/join", json={"code": CODE}).status_code == 403
        assert httpx.post(f"{again}/api/join", json={"code": new_code}).status_code == 204
    logs = "".join(path.read_text() for path in tmp_path.glob("*.log"))
    assert new_code not in logs and KEY not in logs
