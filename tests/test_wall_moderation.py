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

from catdog.kafka.clients import ensure_topics, make_producer
from conftest import free_port, kafka_env
from processes import start_wall
from test_wall import classifier_result, sse_events
from waiting import wait_until

CODE = "moderated-room-code"
KEY = "the-instructors-own-key"
SECRET = "m" * 40


@contextmanager
def a_wall(kafka, tmp_path: Path, name: str, port: int | None = None):
    """One replica of the room's wall (the same topics, code, key and secret as the others); ``port``: the
    one a restarted pod answers on again (its Service's)."""
    env = {**kafka_env(kafka), "CATDOG_WALL_SECRET": SECRET, "CATDOG_WALL_MODERATOR_KEY": KEY}
    process, base = start_wall(env, tmp_path / f"{name}.log", CODE, port=port)
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
        wait_until(lambda: photo in card_ids(viewer), 15, lambda: f"{photo} on the wall: {card_ids(viewer)}")
        seen: list = []
        stop = threading.Event()
        threading.Thread(target=sse_events, args=(second, viewer.cookies, seen, stop), daemon=True).start()
        wait_until(lambda: any(name == "snapshot" for name, _ in seen), 15, "the projector's first snapshot")

        assert prankster.post("/api/moderate", json={"action": "hide", "id": photo}).status_code == 403  # a phone
        assert httpx.post(f"{first}/api/join", json={"key": "not-the-key"}).status_code == 403
        assert httpx.post(f"{first}/api/join", json={"key": CODE}).status_code == 403  # the code is no key
        moderator = joined(first, key=KEY)
        hidden_at = time.monotonic()
        assert moderator.post("/api/moderate", json={"action": "hide", "id": photo}).status_code == 200
        # The other replica's projector is told within a second; neither replica shows or serves it again.
        wait_until(
            lambda: ("hide", {"id": photo}) in seen, 1.0, lambda: f"the hide event within 1 s: {seen}", interval=0.05
        )
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


def test_the_moderator_pauses_uploads_blocks_a_phone_and_changes_the_rooms_code(
    kafka, tmp_path, cat_photos, dog_photos
):
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


def test_a_restarted_wall_comes_back_with_the_rooms_state_and_every_phone_keeps_its_join(
    kafka, tmp_path, cat_photos, dog_photos
):
    """A wall pod restarted mid-workshop (an update, an eviction): what it shows comes back from Kafka (the
    cards, the counts, a blocked phone still blocked) and each phone's join still holds, since every replica
    and restart signs joins with the room's secret."""
    ensure_topics(kafka)
    port = free_port()
    with a_wall(kafka, tmp_path, "before", port) as base:
        friend, prankster, moderator = joined(base), joined(base), joined(base, key=KEY)
        photo = classified_photo(kafka, friend, cat_photos[3])
        pranked = classified_photo(kafka, prankster, cat_photos[4])
        assert moderator.post("/api/moderate", json={"action": "block", "id": pranked}).status_code == 200
        [partition, offset] = map(int, photo.split("-"))
        assert (
            friend.post("/api/feedback", json={"partition": partition, "offset": offset, "label": "cat"}).status_code
            == 201
        )
        wait_until(lambda: snapshot(friend)["stats"]["labelled"] == 1, 15, "the label counted on the wall")
        before = snapshot(friend)
    with a_wall(kafka, tmp_path, "after", port) as again:
        assert again == base
        after = snapshot(friend)  # the phone's cookie from before the restart
        assert [card["id"] for card in after["cards"]] == [card["id"] for card in before["cards"]]
        assert after["stats"] == before["stats"]
        assert friend.post("/api/photos", content=dog_photos[3].read_bytes()).status_code == 201
        refused = prankster.post("/api/photos", content=dog_photos[4].read_bytes())
        assert refused.status_code == 403 and "stopped this phone" in refused.json()["error"]


def snapshot(client: httpx.Client) -> dict:
    with client.stream("GET", "/api/events") as stream:
        return json.loads(next(line for line in stream.iter_lines() if line.startswith("data:"))[5:])


def test_a_photo_sent_while_the_wall_restarts_is_sent_again_by_the_phones_page(kafka, tmp_path, cat_photos):
    """In Chromium: the phone's page picks a photo while the wall is down; it says it is sending again, and once
    the wall is back the photo goes, and its verdicts come, with the join made before the restart."""
    from selenium.webdriver.common.by import By

    from browser import browser_session, wall_problems
    from catdog.kafka.clients import make_consumer

    ensure_topics(kafka)
    port = free_port()
    with browser_session(phone=True) as phone:
        with a_wall(kafka, tmp_path, "before", port) as base:
            phone.get(f"{base}/upload#code={CODE}")
            wait_until(lambda: phone.find_element(By.ID, "send").is_displayed(), 30, "the phone's page", interval=1)
        phone.find_element(By.ID, "photo").send_keys(str(cat_photos[5]))  # the wall is down
        status = lambda: phone.find_element(By.ID, "status").text  # noqa: E731 - read again at each try
        wait_until(lambda: "sending again" in status(), 10, lambda: f"'sending again' on the phone: {status()}")
        with a_wall(kafka, tmp_path, "after", port):
            reader = make_consumer(kafka, kafka.images_topic)
            records = wait_until(
                lambda: [r for batch in reader.poll(timeout_ms=500).values() for r in batch],
                30,
                "the page to send the photo again",
                interval=0.1,
            )
            reader.close()
            [record] = records
            sent = {"partition": record.partition, "offset": record.offset, "key": record.key.decode()}
            producer = make_producer(kafka)
            result = classifier_result(kafka, sent, cat_photos[5].name, "", "cat", "dog")
            producer.send(kafka.predictions_topic, json.dumps(result).encode(), key=result["key"].encode()).get(10)
            producer.close()
            wait_until(
                lambda: phone.find_element(By.ID, "result").is_displayed(),
                30,
                lambda: "the verdicts on the phone; it says: " + phone.find_element(By.ID, "error").text,
            )
            assert not phone.find_element(By.ID, "error").text
            # The browser logs the tries the restart refused, and nothing else.
            assert all("ERR_CONNECTION_REFUSED" in problem for problem in wall_problems(phone)), wall_problems(phone)
