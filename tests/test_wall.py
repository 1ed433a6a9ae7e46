"""`catdog wall` as a phone or a hostile client meets it over HTTP: the room code, the size limit before the
body is read, the one decoder before anything is produced, rate limits, security headers; and the stream
of cards and counts built from the topics, fed by clients we did not write (librdkafka). The real embedded
broker and the real server (`catdog wall`, under uvicorn); the pages in Chromium are in test_lab_browser."""

from __future__ import annotations

import io
import json
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer
from PIL import Image

import samples
from catdog.kafka.clients import ensure_topics, make_consumer
from catdog.kafka.photos import image_key
from conftest import kafka_env
from processes import start_wall
from test_kafka import collect
from waiting import wait_until

CODE = "test-room-code"


def end_offset(kafka, topic: str) -> int:
    from kafka import TopicPartition

    consumer = make_consumer(kafka)
    try:
        return sum(
            consumer.end_offsets([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]).values()
        )
    finally:
        consumer.close()


@pytest.fixture
def wall(kafka, tmp_path):
    """`catdog wall` on a free port, pointed at this test's topics, two uploads a minute per phone."""
    ensure_topics(kafka)
    env = {**kafka_env(kafka), "CATDOG_WALL_UPLOADS_PER_MINUTE": "3", "CATDOG_WALL_CARDS": "2"}
    log = tmp_path / "wall.log"
    process, base = start_wall(env, log, CODE)
    yield {"base": base, "port": int(base.rsplit(":", 1)[1]), "log": log, "kafka": kafka, "process": process}
    process.send_signal(signal.SIGTERM)  # as the pod's stop: open streams closed, then uvicorn re-raises it
    assert process.wait(30) in (0, -signal.SIGTERM) and "Application shutdown complete" in log.read_text(), (
        log.read_text()[-3000:]
    )


def joined(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    assert client.post("/api/join", json={"code": CODE}).status_code == 204
    return client


def jpeg(photo: Path) -> bytes:
    return photo.read_bytes()


def classifier_result(kafka, sent: dict, filename: str, learner: str, quick: str, pretrained: str) -> dict:
    """A result as the classifier publishes it (the predictions topic's contract), for the photo ``sent``."""
    return {
        "key": sent["key"],
        "source": {"topic": kafka.images_topic, "partition": sent["partition"], "offset": sent["offset"]},
        "filename": filename,
        "learner": learner,
        "quick": {"label": quick, "p_dog": 0.9 if quick == "dog" else 0.1, "inference_ms": 3.0, "version": "q-1"},
        "pretrained": {
            "label": pretrained,
            "p_dog": 0.8 if pretrained == "dog" else 0.2,
            "inference_ms": 9.0,
            "version": "p-1",
        },
        "agree": quick == pretrained,
        "classified_at": "2026-11-27T10:00:00+00:00",
        "instance": "test",
    }


def test_nothing_but_the_pages_answers_without_the_room_code(wall):
    base = wall["base"]
    for path in ("/", "/upload", "/static/wall.js"):
        page = httpx.get(base + path)
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
    for method, path in (
        ("GET", "/api/events"),
        ("GET", "/api/qr.svg"),
        ("GET", "/api/room"),
        ("POST", "/api/photos"),
        ("POST", "/api/feedback"),
        ("GET", "/api/photos/0/0"),
        ("GET", "/api/thumbs/0/0"),
    ):
        assert httpx.request(method, base + path).status_code == 401, path
    assert httpx.post(f"{base}/api/join", json={"code": "not-the-code"}).status_code == 403
    assert httpx.get(f"{base}/api/room", cookies={"catdog_room": "abc.0123"}).status_code == 401  # forged
    right = httpx.post(f"{base}/api/join", json={"code": CODE})
    assert right.status_code == 204
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    room = httpx.get(f"{base}/api/room", cookies=right.cookies).json()
    assert room == {"upload": f"{base}/upload", "cards": 2}
    qr = httpx.get(f"{base}/api/qr.svg", cookies=right.cookies)
    assert qr.headers["content-type"] == "image/svg+xml" and b"<svg" in qr.content


def test_an_oversize_photo_is_refused_by_its_length_before_a_byte_is_read(wall):
    client = joined(wall["base"])
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    limit = wall["kafka"].max_image_bytes
    before = end_offset(wall["kafka"], wall["kafka"].images_topic)
    with socket.create_connection(("127.0.0.1", wall["port"]), timeout=10) as sock:
        # A gigabyte announced, not one byte of it sent: the answer comes anyway.
        sock.sendall(
            f"POST /api/photos HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {1 << 30}\r\n\r\n".encode()
        )
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413"), answer
    # Without a length (chunked), the stream is cut at the limit.
    streamed = client.post(
        "/api/photos", content=iter([b"\xff\xd8\xff" + b"\0" * (1 << 20)] * (limit // (1 << 20) + 2))
    )
    assert streamed.status_code == 413 and "nothing was sent" in streamed.json()["error"]
    assert end_offset(wall["kafka"], wall["kafka"].images_topic) == before


def test_what_is_not_an_image_gets_the_decoders_reason_and_nothing_is_produced(wall):
    before = end_offset(wall["kafka"], wall["kafka"].images_topic)
    for body, reason in (
        (samples.pdf(), "PDF"),
        (samples.html(), "not an image"),
        (b"", "empty"),
        (samples.bomb(), "pixels"),
    ):
        refused = joined(wall["base"]).post("/api/photos", params={"filename": "x.jpg"}, content=body)
        assert refused.status_code == 422, refused.text
        assert reason in refused.json()["error"] and "nothing was sent" in refused.json()["error"]
    assert end_offset(wall["kafka"], wall["kafka"].images_topic) == before


def test_a_phone_sending_too_fast_is_told_to_wait_and_the_others_are_not(wall, cat_photos):
    phone, other = joined(wall["base"]), joined(wall["base"])
    codes = [phone.post("/api/photos", content=jpeg(cat_photos[i])).status_code for i in range(4)]
    assert codes == [201, 201, 201, 429]
    assert phone.post("/api/photos", content=jpeg(cat_photos[5])).headers["retry-after"] == "60"
    assert other.post("/api/photos", content=jpeg(cat_photos[6])).status_code == 201


def sse_events(base: str, cookies, seen: list, stop: threading.Event) -> None:
    """Read the wall's event stream as a browser's EventSource does, into ``seen``, until ``stop`` (the
    wall ending the stream after that is no error)."""
    try:
        with (
            httpx.Client(base_url=base, cookies=cookies, timeout=None) as client,
            client.stream("GET", "/api/events") as stream,
        ):
            name = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    seen.append((name, json.loads(line.split(":", 1)[1])))
                if stop.is_set():
                    return
    except httpx.HTTPError:
        if not stop.is_set():
            raise


def test_photos_become_cards_with_server_made_thumbnails_and_feedback_counts(wall, cat_photos, dog_photos):
    """A phone's photo and a foreign client's photo (hostile filename and learner headers) become cards once
    their results arrive, with thumbnails the server re-encoded; the feedback button writes one labelled event
    keyed by the image; foreign junk on the three topics is skipped and the wall keeps going."""
    kafka = wall["kafka"]
    phone = joined(wall["base"])
    seen: list = []
    stop = threading.Event()
    reader = threading.Thread(target=sse_events, args=(wall["base"], phone.cookies, seen, stop), daemon=True)
    reader.start()

    # A photo with EXIF and GPS-like metadata, sent by the phone page's API.
    image = Image.open(cat_photos[0])
    exif = Image.Exif()
    exif[0x010F] = "SecretPhoneMaker"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    mine = phone.post("/api/photos", params={"filename": "my cat.jpg", "learner": "Ada"}, content=buffer.getvalue())
    assert mine.status_code == 201, mine.text
    mine = mine.json()
    assert mine["key"] == image_key(buffer.getvalue()).decode()
    sent_records = [r for r in collect(kafka, kafka.images_topic, 1) if r.offset == mine["offset"]]
    assert dict(sent_records[0].headers)["learner"] == b"Ada"

    # A foreign client's photo with hostile headers, and junk on every topic the wall reads.
    hostile_name = "<img src=x onerror=alert(1)>.jpg"
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    dog = dog_photos[0].read_bytes()
    delivered = []
    producer.produce(
        kafka.images_topic,
        dog,
        key=image_key(dog),
        headers=[("filename", hostile_name.encode()), ("learner", b"<b>Eve</b>\x00\xff")],
        on_delivery=lambda err, msg: delivered.append(msg),
    )
    producer.produce(kafka.images_topic, b"not an image", key=b"junk")
    producer.produce(kafka.predictions_topic, b"\xff\xfe not json")
    producer.produce(
        kafka.predictions_topic,
        json.dumps({"source": {"topic": kafka.images_topic, "partition": "0", "offset": "x"}}).encode(),
    )
    producer.produce(kafka.feedback_topic, json.dumps({"label": "dog"}).encode())  # no key
    producer.produce(kafka.feedback_topic, json.dumps({"label": "horse"}).encode(), key=b"abc")
    producer.produce(kafka.feedback_topic, b"\x00\x01", key=b"\x00\xff")
    producer.flush(10)
    foreign = {"partition": delivered[0].partition(), "offset": delivered[0].offset(), "key": image_key(dog).decode()}

    # The phone asks for its result before it exists: 204, ask again.
    assert phone.get(f"/api/photos/{mine['partition']}/{mine['offset']}", params={"wait": 0}).status_code == 204
    results = [
        classifier_result(kafka, mine, "my cat.jpg", "Ada", "dog", "cat"),
        classifier_result(kafka, foreign, hostile_name, "<b>Eve</b>\ufffd", "dog", "dog"),
    ]
    for result in results:
        producer.produce(kafka.predictions_topic, json.dumps(result).encode(), key=result["key"].encode())
    producer.produce(kafka.predictions_topic, json.dumps(results[0]).encode())  # at-least-once: a repeat
    producer.flush(10)
    mine_result = phone.get(f"/api/photos/{mine['partition']}/{mine['offset']}").json()
    assert (mine_result["quick"]["label"], mine_result["pretrained"]["label"], mine_result["agree"]) == (
        "dog",
        "cat",
        False,
    )

    # "Wrong" (the pretrained model said cat): one labelled event keyed by the image.
    answer = phone.post(
        "/api/feedback",
        json={"partition": mine["partition"], "offset": mine["offset"], "label": "dog", "learner": "Ada"},
    )
    assert answer.status_code == 201, answer.text
    assert phone.post("/api/feedback", json={"partition": 9, "offset": 999, "label": "dog"}).status_code == 404
    assert phone.post("/api/feedback", json={"partition": 0, "offset": 0, "label": "horse"}).status_code == 400
    assert phone.post("/api/feedback", content=b"{" * 10_000).status_code == 400

    labelled = lambda: [data["labelled"] for event, data in seen if event == "stats"][-1:] == [1]  # noqa: E731 - one line
    wait_until(labelled, 30, "the label counted in the wall's stats", fail=False)  # the assertions below say what
    stop.set()
    cards = [data for event, data in seen if event == "card"]
    assert [card["id"] for card in cards] == [
        f"{mine['partition']}-{mine['offset']}",
        f"{foreign['partition']}-{foreign['offset']}",
    ]
    assert (
        cards[1]["filename"] == hostile_name and cards[1]["learner"] == "<b>Eve</b>\ufffd"
    )  # as text: the page escapes
    final = [data for event, data in seen if event == "stats"][-1]
    assert final["photos"] == 2 and final["agreement"] == 0.5  # the repeated result counted once
    assert final["accuracy"] == {"quick": 1.0, "pretrained": 0.0} and final["labelled"] == 1
    assert final["versions"] == {"quick": "q-1", "pretrained": "p-1"}

    [event] = [
        r
        for r in collect(kafka, kafka.feedback_topic, 4)
        if (r.key or b"").startswith(mine["key"].encode() + b"/phone:")
    ]
    value = json.loads(event.value)  # keyed by the photo and the phone that voted: one vote a phone
    assert (value["label"], value["learner"], value["verdicts"], value["via"]) == (
        "dog",
        "Ada",
        {"quick": "dog", "pretrained": "cat"},
        "wall",
    )
    assert event.key.decode() == f"{mine['key']}/phone:{value['phone']}" and len(value["phone"]) == 16

    for card in cards:
        thumb = phone.get(card["thumb"])
        assert thumb.headers["content-type"] == "image/jpeg"
        picture = Image.open(io.BytesIO(thumb.content))
        assert picture.format == "JPEG" and max(picture.size) <= 320
        assert b"SecretPhoneMaker" not in thumb.content and thumb.content not in (buffer.getvalue(), dog)
    # A new viewer gets a snapshot bounded by the wall's card count, newest last.
    with (
        httpx.Client(base_url=wall["base"], cookies=phone.cookies, timeout=10) as client,
        client.stream("GET", "/api/events") as stream,
    ):
        snapshot = json.loads(next(line for line in stream.iter_lines() if line.startswith("data:"))[5:])
    assert [card["id"] for card in snapshot["cards"]] == [card["id"] for card in cards]
    assert wall["process"].poll() is None
    log = wall["log"].read_text()
    assert log.count("wall feed: skipped") == 5, log  # two results, three feedback records (the image: no card)


def test_the_wall_shows_each_models_accuracy_version_by_version_as_retraining_changes_it():
    """The room's judged photos scored against the version that classified each, in the order the versions
    started serving: a promoted model's effect shows on the projector. A label that names no result yet
    counts once its result arrives; a version name longer than ours is cut, never shown whole."""
    from catdog.wall import MAX_VERSION_CHARS, VERSIONS_SHOWN, WallState

    state = WallState(images_topic="images")

    def result(offset: int, pretrained: str, version: str) -> dict:
        return {
            "key": f"k{offset}",
            "source": {"topic": "images", "partition": 0, "offset": offset},
            "agree": pretrained == "cat",
            "quick": {"label": "cat", "p_dog": 0.1, "version": "q-1"},
            "pretrained": {"label": pretrained, "p_dog": 0.9 if pretrained == "dog" else 0.1, "version": version},
        }

    state.add_label("k2", "cat")  # judged before its result is read
    for offset, said in enumerate(("dog", "dog", "cat")):
        state.add_result(result(offset, said, "old-version"))
    for offset in range(3):
        state.add_label(f"k{offset}", "cat")
    for offset, said in enumerate(("cat", "cat"), start=3):
        state.add_result(result(offset, said, "retrained"))
    state.add_label("k3", "cat")
    stats = state.snapshot()["stats"]
    assert stats["by_version"]["pretrained"] == [
        {"version": "old-version", "labelled": 3, "accuracy": 1 / 3},
        {"version": "retrained", "labelled": 1, "accuracy": 1.0},
    ]
    assert stats["by_version"]["quick"] == [{"version": "q-1", "labelled": 4, "accuracy": 1.0}]
    assert stats["versions"] == {"quick": "q-1", "pretrained": "retrained"} and stats["accuracy"]["pretrained"] == 0.5
    for offset in range(5, 5 + VERSIONS_SHOWN + 2):  # bounded however many retrainings the workshop has
        state.add_result(result(offset, "cat", f"v{offset}-" + "x" * 40))
    shown = state.snapshot()["stats"]["by_version"]["pretrained"]
    assert len(shown) == VERSIONS_SHOWN and all(len(item["version"]) <= MAX_VERSION_CHARS for item in shown)
    assert shown[-1]["version"].startswith(f"v{4 + VERSIONS_SHOWN + 2}-")


def test_a_wall_given_the_rooms_code_without_its_secret_refuses_to_start_naming_both(kafka):
    """A replica that invented its own secret would refuse (401) every phone that joined on another, or
    before a restart: the wall says which setting is missing and which Secret holds it, and stops."""
    from processes import catdog

    refused = catdog("wall", env={**kafka_env(kafka), "CATDOG_ROOM_CODE": CODE, "CATDOG_WALL_SECRET": ""}, timeout=60)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    [line] = refused.stderr.splitlines()
    assert line.startswith("catdog: error: CATDOG_WALL_SECRET is not set") and "catdog-wall-secret" in line


def test_a_backlog_larger_than_the_thumbnail_cache_still_gets_one_card_per_photo_with_its_thumbnail(wall):
    """After a broker outage the classifier's results come long after their photos: more photos than the wall
    keeps thumbnails of. Each result still becomes exactly one card (none waits for a thumbnail that will
    never come), and a card whose thumbnail was dropped gets it read again from the images topic."""
    from catdog.wall.state import THUMBNAILS_KEPT

    kafka = wall["kafka"]
    phone = joined(wall["base"])
    seen: list = []
    stop = threading.Event()
    threading.Thread(target=sse_events, args=(wall["base"], phone.cookies, seen, stop), daemon=True).start()
    photos = THUMBNAILS_KEPT + 44
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    delivered = []
    for number in range(photos):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), (number % 256, 80, 160)).save(buffer, format="JPEG")
        producer.produce(
            kafka.images_topic,
            buffer.getvalue(),
            key=image_key(buffer.getvalue()),
            partition=0,
            on_delivery=lambda error, message: delivered.append(message),
        )
    assert producer.flush(30) == 0
    time.sleep(2)  # the wall reads the backlog of photos; the results come later, as after an outage
    for number, message in enumerate(delivered):
        sent = {"partition": message.partition(), "offset": message.offset(), "key": message.key().decode()}
        result = classifier_result(kafka, sent, f"{message.offset()}.jpg", "", "cat", "cat")
        producer.produce(kafka.predictions_topic, json.dumps(result).encode(), key=result["key"].encode())
        if number % 20 == 19:  # as a catching-up classifier publishes them: batch by batch (a viewer keeps up)
            assert producer.flush(30) == 0
            time.sleep(0.2)
    assert producer.flush(30) == 0
    # One card per photo: the assertion below says which are missing.
    wait_until(lambda: len([1 for event, _ in seen if event == "card"]) >= photos, 60, "", fail=False)
    stop.set()
    cards = [data["id"] for event, data in seen if event == "card"]
    assert sorted(cards) == sorted(f"0-{message.offset()}" for message in delivered)  # one each, none missing
    first = min(delivered, key=lambda message: message.offset())  # long dropped from the cache
    thumb = phone.get(f"/api/thumbs/0/{first.offset()}")
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).format == "JPEG"
    assert phone.get(f"/api/thumbs/0/{first.offset() + photos + 5}").status_code == 404  # no card, no read
