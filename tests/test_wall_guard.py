"""The wall against a room that is not all friends, over HTTP as a stranger with the room's code and a
laptop would meet it: through haproxy configured as OpenShift's router (both of its X-Forwarded-For modes),
with cookies made anywhere but the wall, from a page on another Route of the same apps domain, and with
more uploads and event streams at once than it serves. The real `catdog wall` on the real embedded broker."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import signal
import socket
import ssl
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from catdog.broker import wait_for_port
from catdog.kafka.clients import ensure_topics
from conftest import REPO, free_port, kafka_env
from processes import start_wall
from waiting import wait_until

CODE = "guarded-room-code"
SECRET = "s" * 16 + secrets.token_hex(16)
HOST = "catdog-wall-catdog-room.apps.example.com"
ROUTE = REPO / "deploy" / "openshift" / "room" / "shared" / "wall" / "route.yaml"
JOINS_PER_MINUTE = 120  # catdog.wall.guard.JOINS_PER_ADDRESS_PER_MINUTE, the limit a flood must meet


@contextmanager
def running_wall(kafka, tmp_path: Path, name: str = "wall", **settings: str):
    """`catdog wall` with the room's code and secret and ``settings`` (CATDOG_WALL_* without the prefix)."""
    ensure_topics(kafka)
    env = {
        **kafka_env(kafka),
        "CATDOG_WALL_SECRET": SECRET,
        **{f"CATDOG_WALL_{key.upper()}": value for key, value in settings.items()},
    }
    log = tmp_path / f"{name}.log"
    process, base = start_wall(env, log, CODE)
    try:
        yield base, log
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@contextmanager
def openshift_router(tmp_path: Path, wall_port: int, annotations: dict[str, str]):
    """haproxy as the router writes a Route's backend (tests/kubeplay.router_config), TLS at the edge.
    Yields its port and the CA its certificate is signed by."""
    from kubeplay import router_certificate, router_config
    from test_image import system_program

    pem, router_ca = router_certificate("apps.example.com", tmp_path)
    port = free_port()
    config = tmp_path / "router.cfg"
    config.write_text(router_config({HOST: ("127.0.0.1", wall_port)}, port, pem, {HOST: annotations}))
    process = subprocess.Popen(
        [system_program("haproxy"), "-db", "-f", str(config)],
        stdout=open(tmp_path / "router.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_for_port(port, 15), (tmp_path / "router.log").read_text()
        yield port, router_ca
    finally:
        process.terminate()
        process.wait(30)


def join(
    router: tuple[int, Path], code: str, forged_address: str, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str]]:
    """POST /api/join through the router, from the loopback address ``source`` (each a client of its own,
    as phones on the venue's Wi-Fi are), claiming to be ``forged_address`` and to have come by plain HTTP."""
    port, ca = router
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    sock = ssl.create_default_context(cafile=str(ca)).wrap_socket(sock, server_hostname=HOST)
    connection = http.client.HTTPSConnection(HOST, port, timeout=30)
    connection.sock = sock
    try:
        connection.request(
            "POST",
            "/api/join",
            json.dumps({"code": code}).encode(),
            {"Content-Type": "application/json", "X-Forwarded-For": forged_address, "X-Forwarded-Proto": "http"},
        )
        response = connection.getresponse()
        response.read()
        return response.status, {name.lower(): value for name, value in response.getheaders()}
    finally:
        connection.close()


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_a_client_rotating_x_forwarded_for_is_counted_by_the_address_the_router_saw(kafka, tmp_path, mode):
    """150 wrong room codes, each with a new X-Forwarded-For: the limit counts the router's entry, so the
    flood meets it (the room's Route has the router replace the header; a router left to append is held
    too, since only its own entry, the last, is read), while a phone at another address joins as if no
    flood were on (the wall does not count every client as the router either). The join through TLS gets
    a Secure cookie even when the client claims plain HTTP, and the Route's HSTS reaches the browser."""
    route = yaml.safe_load(ROUTE.read_text())
    annotations = {**route["metadata"]["annotations"], "haproxy.router.openshift.io/set-forwarded-headers": mode}
    with (
        running_wall(kafka, tmp_path, forwarded_hops="1") as (base, log),
        openshift_router(tmp_path, int(base.rsplit(":", 1)[1]), annotations) as router,
    ):
        status, headers = join(router, CODE, "203.0.113.7")
        assert status == 204, status
        cookie = headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert (
            headers["strict-transport-security"]
            == route["metadata"]["annotations"]["haproxy.router.openshift.io/hsts_header"]
        )
        answers = [join(router, "not-the-code", f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")[0] for n in range(149)]
        assert join(router, CODE, "10.9.9.9", source="127.0.0.2")[0] == 204  # another phone: not held back
    assert answers.count(403) == JOINS_PER_MINUTE - 1 and answers.count(429) == 150 - JOINS_PER_MINUTE, answers
    assert answers.index(429) == JOINS_PER_MINUTE - 1  # refused from the 121st on, not before
    assert "10.0." not in log.read_text() and "203.0.113.7" not in log.read_text()


def forged_cookie(key: bytes, message: str, phone: str = "0123456789abcdef") -> str:
    return f"{phone}.{hmac.new(key, message.encode(), hashlib.sha256).hexdigest()}"


def test_only_phones_the_wall_issued_may_upload_and_a_new_code_voids_every_join(kafka, tmp_path, cat_photos):
    """A cookie made on a laptop from the room's code (the old signature, or the new message with the code
    as key) is refused; one the wall issued works until the room's code changes, then is refused too."""
    photo = cat_photos[0].read_bytes()
    with running_wall(kafka, tmp_path) as (base, _):
        for minted in (
            forged_cookie(CODE.encode(), "0123456789abcdef"),
            forged_cookie(CODE.encode(), f"{CODE}\n0123456789abcdef"),
        ):
            refused = httpx.post(f"{base}/api/photos", content=photo, cookies={"catdog_room": minted})
            assert refused.status_code == 401, minted
        issued = httpx.post(f"{base}/api/join", json={"code": CODE})
        assert issued.status_code == 204 and "secure" not in issued.headers["set-cookie"].lower()  # plain HTTP here
        assert httpx.post(f"{base}/api/photos", content=photo, cookies=issued.cookies).status_code == 201
    rotated = {"code": CODE + "-rotated"}
    env = {**kafka_env(kafka), "CATDOG_WALL_SECRET": SECRET}
    process, base = start_wall(env, tmp_path / "rotated.log", rotated["code"])
    try:
        assert httpx.get(f"{base}/api/room", cookies=issued.cookies).status_code == 401
        again = httpx.post(f"{base}/api/join", json=rotated)
        assert httpx.get(f"{base}/api/room", cookies=again.cookies).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_a_page_on_another_route_of_the_apps_domain_cannot_post_for_a_phone(kafka, tmp_path):
    """SameSite lets a sibling Route's page (same site) send the cookie; the Origin check does not let it
    post. The wall's own pages, and clients that are no browser, still can."""
    with running_wall(kafka, tmp_path) as (base, _):
        phone = httpx.Client(base_url=base)
        assert phone.post("/api/join", json={"code": CODE}, headers={"Origin": base}).status_code == 204
        for path, body in (
            ("/api/join", {"code": CODE}),
            ("/api/feedback", {"partition": 0, "offset": 0, "label": "cat"}),
            ("/api/photos", None),
        ):
            answer = phone.post(path, json=body, headers={"Origin": "https://prank.apps.example.com"})
            assert answer.status_code == 403, path
        assert (
            phone.post(
                "/api/feedback", json={"partition": 0, "offset": 0, "label": "cat"}, headers={"Origin": base}
            ).status_code
            == 404
        )  # let through: no such photo yet


def open_stream(base: str, cookies) -> tuple[int, socket.socket]:
    """An event stream held open, as a projector's page holds one: its status, and the socket to close."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    sock.sendall(
        f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), sock


def test_event_streams_are_capped_per_phone_and_in_all_and_a_closed_one_frees_its_place(kafka, tmp_path):
    with running_wall(kafka, tmp_path, streams="3", streams_per_phone="2") as (base, _):
        one, two = (httpx.post(f"{base}/api/join", json={"code": CODE}).cookies for _ in range(2))
        held = [open_stream(base, one), open_stream(base, one)]
        assert [status for status, _ in held] == [200, 200]
        assert open_stream(base, one)[0] == 503  # a third page for one phone
        held.append(open_stream(base, two))
        assert held[-1][0] == 200 and open_stream(base, two)[0] == 503  # the wall's total
        held.pop(0)[1].close()
        wait_until(lambda: open_stream(base, two)[0] == 200, 10, "a stream once one was closed")
        for _, sock in held:
            sock.close()


def test_uploads_beyond_those_in_flight_are_told_to_come_back_before_their_body_is_read(kafka, tmp_path, cat_photos):
    """One upload slot: a second phone's photo, while a slow one streams in, waits its turn (5 s, its body
    unread), then gets 503 with Retry-After; the slow one then finishes and is sent."""
    photo = cat_photos[1].read_bytes()
    with running_wall(kafka, tmp_path, uploads_in_flight="1") as (base, _):
        slow_cookie, fast = (httpx.post(f"{base}/api/join", json={"code": CODE}).cookies for _ in range(2))
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as slow:
            cookie = "; ".join(f"{name}={value}" for name, value in slow_cookie.items())
            slow.sendall(
                f"POST /api/photos?filename=slow.jpg HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
                f"Content-Type: image/jpeg\r\nContent-Length: {len(photo)}\r\n\r\n".encode()
                + photo[:1000]
            )
            time.sleep(3.0)  # the wall has taken the slot (even on a loaded machine) and waits for the rest
            asked = time.monotonic()
            busy = httpx.post(f"{base}/api/photos", content=photo, cookies=fast, timeout=30)
            assert time.monotonic() - asked >= 4.5  # it waited for a slot before being told to come back
            assert busy.status_code == 503 and busy.headers["retry-after"] == "2", busy.text
            slow.sendall(photo[1000:])
            answer = slow.recv(4096).decode(errors="replace")
        assert answer.startswith("HTTP/1.1 201"), answer[:300]
        assert httpx.post(f"{base}/api/photos", content=photo, cookies=fast).status_code == 201  # the slot is free


def test_the_wall_prints_no_room_code_it_was_given(kafka, tmp_path):
    """The pod's log is read by whoever may read the namespace's logs: the code never goes there."""
    with running_wall(kafka, tmp_path) as (_, log):
        pass
    assert CODE not in log.read_text() and SECRET not in log.read_text()


def test_a_giant_of_a_few_kilobytes_is_refused_before_it_is_decoded_and_never_shown(kafka, tmp_path):
    """A 40-megapixel WebP or PNG of flat colour is kilobytes on the wire and hundreds of MiB once decoded:
    through the upload page it is refused with the decoder's reason (422); sent straight to the topic by a
    client we did not write, the wall makes no thumbnail of it and carries on."""
    import confluent_kafka

    import samples

    giants = samples.giants()
    with running_wall(kafka, tmp_path) as (base, log):
        phone = httpx.Client(base_url=base, timeout=60)
        assert phone.post("/api/join", json={"code": CODE}).status_code == 204
        for name in ("giant-rgb.webp", "giant-rgb.png"):
            refused = phone.post("/api/photos", params={"filename": name}, content=giants[name])
            assert refused.status_code == 422 and "MiB this service decodes at once" in refused.json()["error"], name
        producer = confluent_kafka.Producer(
            {"bootstrap.servers": kafka.bootstrap_servers, "message.max.bytes": 11 * 2**20}
        )
        for name, data in giants.items():
            producer.produce(kafka.images_topic, data, key=name.encode(), headers=[("filename", name.encode())])
        producer.flush(30)
        time.sleep(3)
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        assert phone.get("/api/thumbs/0/0").status_code == 404
    assert "wall feed failed" not in log.read_text()
