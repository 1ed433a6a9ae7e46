"""The instructor's board (issue 42): each lab in a room reports its progress, signed, on Kafka; the wall
shows every learner's row to the moderator alone, hands first, within seconds; a forged or copied report
counts for no one; a lab whose JupyterLab stopped goes silent, a kernel killed and restarted is counted;
`catdog room status` prints the same table; 50 learners' three hours fit the wall and a 1080p screen."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import yaml
from kafka import KafkaProducer

from catdog.identity import signed_header
from catdog.kafka.clients import ensure_topics, make_consumer, make_producer
from catdog.kafka.records import LEARNER_HEADER
from catdog.progress import Reporter, progress_value
from catdog.room.folder import read_room
from catdog.room.manifests import key_table
from catdog.wall.board import SILENT_SECONDS, Board
from conftest import REPO, free_port
from processes import catdog_ok, kafka_env, start_wall
from test_deploy import write_room
from waiting import wait_until

ARTIFACTS = Path(os.environ.get("CATDOG_ARTIFACTS") or REPO / "test-artifacts") / "board"
CODE = "board-room-code"
SHOWN_WITHIN_SECONDS = 5  # the bound: an event is on the board within 5 s


@pytest.fixture
def room(tmp_path):
    """A room folder as `catdog room` writes it for three learners: its keys and the moderator's key."""
    folder = tmp_path / "room"
    write_room(folder, "--learners", "Ada,Bob,Cy", "--apps-domain", "apps.example.com")
    state = read_room(folder)
    table = tmp_path / "keys.json"
    table.write_text(json.dumps(key_table(state)))
    keys = {entry["name"]: entry["signing_key"] for entry in state["learners"].values()}
    return {"folder": folder, "state": state, "table": table, "keys": keys}


@contextmanager
def the_wall(kafka, tmp_path: Path, table: Path, moderator_key: str, port: int | None = None):
    env = {**kafka_env(kafka), "CATDOG_LEARNER_KEYS": str(table), "CATDOG_WALL_MODERATOR_KEY": moderator_key}
    process, base = start_wall(env, tmp_path / "wall.log", CODE, port=port)
    try:
        yield base, process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def joined(base: str, **credentials: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    assert client.post("/api/join", json=credentials).status_code == 204
    return client


def rows(moderator: httpx.Client) -> dict[str, dict]:
    answer = moderator.get("/api/board")
    assert answer.status_code == 200, answer.text
    return {row["learner"]: row for row in answer.json()["rows"]}


def as_learner(kafka, name: str, keys: dict) -> Reporter:
    """The reporter a learner's lab runs (their name and key, as their notebook pod's settings have them)."""
    return Reporter(replace(kafka, learner=name, learner_key=keys[name]))


def test_the_board_shows_each_learners_checks_hand_and_lab_within_seconds_to_the_moderator_alone(kafka, tmp_path, room):
    ensure_topics(kafka)
    with the_wall(kafka, tmp_path, room["table"], room["state"]["moderator_key"]) as (base, _):
        moderator, phone = joined(base, key=room["state"]["moderator_key"]), joined(base, code=CODE)
        assert phone.get("/api/board").status_code == 403  # a phone (a learner) never sees the board
        assert phone.get("/api/progress").json() == {"shown": False}
        assert {name: row["status"] for name, row in rows(moderator).items()} == dict.fromkeys(
            ("Ada", "Bob", "Cy"), "not started"
        )
        ada, bob = as_learner(kafka, "Ada", room["keys"]), as_learner(kafka, "Bob", room["keys"])
        sent = time.monotonic()
        ada.send("heartbeat", notebooks=[{"path": "notebooks/01-cat-dog-lab.ipynb", "kernel": "busy"}], restarts=0)
        for exercise, done in (("1.1", False), ("1.1", True), ("1.2", False)):
            ada.check(exercise, done)
        ada.send("hand", raised=True, note="stuck on 1.2")
        bob.send("heartbeat", notebooks=[], restarts=0)
        board = wait_until(
            lambda: (lambda r: r if r["Ada"]["hand"] and r["Bob"]["status"] == "working" else None)(rows(moderator)),
            SHOWN_WITHIN_SECONDS,
            "Ada's hand and Bob's heartbeat on the board",
        )
        shown_after = time.monotonic() - sent
        order = [row["learner"] for row in moderator.get("/api/board").json()["rows"]]
        assert order == ["Ada", "Cy", "Bob"]  # a raised hand first, then who has not started, then by progress
        assert board["Ada"]["hand"]["note"] == "stuck on 1.2"
        assert board["Ada"]["exercises"] == {
            "1.1": "done", "1.2": "tried", **dict.fromkeys(("2.1", "2.2", "3.1", "3.2", "4.1", "4.2"), "untouched")
        }  # fmt: skip
        assert board["Ada"]["notebooks"] == [
            {"path": "notebooks/01-cat-dog-lab.ipynb", "kernel": "busy", "restarts": 0}
        ]
        assert moderator.get("/api/board").json()["done"]["1.1"] == 1

        answered = moderator.post("/api/board", json={"answered": "Ada"})
        assert answered.status_code == 200 and rows(moderator)["Ada"]["hand"] is None
        assert phone.post("/api/board", json={"shown": True}).status_code == 403
        assert moderator.post("/api/board", json={"shown": True}).json()["shown"] is True
        aggregate = phone.get("/api/progress").json()
        assert aggregate["shown"] and aggregate["done"]["1.1"] == 1 and aggregate["learners"] == 3
        assert "Ada" not in json.dumps(aggregate)  # the projector's view names no one

        printed = catdog_ok("room", "status", "--room", room["folder"], "--wall", base)
        lines = {line.split()[0]: line for line in printed.splitlines() if line.split()[:1] in (["Ada"], ["Cy"])}
        assert re.search(r"^Ada\s+working\s+✓\s+…\s+·", lines["Ada"]) and "not started" in lines["Cy"], printed
        assert "1.1: 1 of 3" in printed
    (ARTIFACTS).mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "shown-after.json").write_text(json.dumps({"seconds": round(shown_after, 2)}))


def progress_record(name: str, key_of: str, keys: dict, kind: str, **fields) -> tuple[bytes, bytes, list]:
    """A progress record as a lab writes it, signed with ``key_of``'s key (a forger uses their own)."""
    key, value = name.encode(), progress_value(kind, **fields)
    return key, value, [(LEARNER_HEADER, key), signed_header(key_of, keys[key_of], name, key, value)]


def test_forged_copied_or_unsigned_progress_counts_for_no_one(kafka, room):
    """Eve cannot tick Ada's exercises: a report under Ada's name signed with Bob's key, a copy of Ada's
    own report sent again, an unsigned one, each read back from the broker and refused by the board."""
    ensure_topics(kafka)
    keys = room["keys"]
    producer = make_producer(kafka)
    genuine = progress_record("Ada", "Ada", keys, "check", exercise="1.1", done=False, tries=1)
    for key, value, headers in (
        genuine,
        progress_record("Ada", "Bob", keys, "check", exercise="1.2", done=True, tries=1),  # Bob signs as Ada
        genuine,  # the very record, copied
        (b"Ada", progress_value("hand", raised=True, note="help"), [(LEARNER_HEADER, b"Ada")]),
    ):
        producer.send(kafka.progress_topic, key=key, value=value, headers=headers).get(10)
    producer.close()
    consumer = make_consumer(kafka, kafka.progress_topic)
    records = wait_until(
        lambda: [r for batch in consumer.poll(timeout_ms=500).values() for r in batch], 10, "the four records"
    )
    consumer.close()
    board = Board(["Ada", "Bob", "Cy"], ["1.1", "1.2"], read_keys_of(room))
    said = [board.add_progress(record) for record in records]
    assert said[0] is None
    assert said[1] == "not signed with Ada's own key"
    assert said[2].startswith("not Ada's: replay")
    assert said[3] == "not signed with Ada's own key"
    [ada] = [row for row in board.snapshot()["rows"] if row["learner"] == "Ada"]
    assert ada["exercises"] == {"1.1": "tried", "1.2": "untouched"} and ada["hand"] is None
    assert board.snapshot()["refused"] == 3


def read_keys_of(room):
    from catdog.identity import read_keys

    return read_keys(room["table"])


def test_a_check_never_waits_on_a_kafka_that_is_away_and_a_laptop_reports_nothing(kafka, room, monkeypatch):
    from catdog import exercises, progress

    away = replace(kafka, bootstrap_servers=f"127.0.0.1:{free_port()}", learner="Ada", learner_key=room["keys"]["Ada"])
    monkeypatch.setattr(progress, "_reporter", Reporter(away))
    started = time.monotonic()
    answer = exercises.gate_decision("promoted", "serving")  # a learner's check, with its report to the board
    assert answer.done and time.monotonic() - started < 0.5  # the report is queued, never awaited
    assert progress.reporter().wait(timeout=15) is False  # and dropped with a warning once Kafka does not answer
    laptop = Reporter(replace(kafka, learner="Ada", learner_key=None))  # a laptop's own lab: no room's key
    assert laptop.send("heartbeat", notebooks=[], restarts=0) is False and laptop.worker is None
    monkeypatch.setattr(progress, "_reporter", laptop)
    assert progress.raise_hand("stuck").startswith("No room's board here")  # said, not raised: nothing fails


def test_a_labs_heartbeat_names_its_notebook_counts_a_killed_kernel_and_goes_silent_when_it_stops(
    kafka, tmp_path, room
):
    """A real JupyterLab server with the heartbeat extension, as the room's notebook pod runs it: a session
    on notebook 01, its kernel killed (as the kernel's memory limit would) and restarted by Jupyter, the
    count on the board; then the server stopped, and the board says the lab is silent within a minute."""
    ensure_topics(kafka)
    port, token = free_port(), "board-test-token"
    env = {
        **os.environ,
        **kafka_env(kafka),
        "CATDOG_LEARNER": "Ada",
        "CATDOG_LEARNER_KEY": room["keys"]["Ada"],
        "JUPYTER_TOKEN": token,
        "HOME": str(tmp_path),
    }
    log = open(tmp_path / "jupyter.log", "wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("jupyter")), "server", "--no-browser", f"--port={port}",
         f"--ServerApp.root_dir={REPO}", "--ServerApp.jpserver_extensions=catdog.labwatch=True",
         *(["--allow-root"] if os.getuid() == 0 else [])],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    api = f"http://127.0.0.1:{port}/api"
    with the_wall(kafka, tmp_path, room["table"], room["state"]["moderator_key"]) as (base, _):
        moderator = joined(base, key=room["state"]["moderator_key"])
        try:
            wait_until(lambda: _answers(f"{api}/status?token={token}"), 60, "JupyterLab's server", interval=0.5)
            session = httpx.post(
                f"{api}/sessions?token={token}",
                json={"path": "notebooks/01-cat-dog-lab.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
            ).json()
            kernel = wait_until(lambda: _kernel_process(server.pid), 60, "the kernel's process")
            wait_until(
                lambda: rows(moderator)["Ada"]["notebooks"], 40, "Ada's heartbeat naming her notebook", interval=1
            )
            os.kill(kernel, signal.SIGKILL)  # as the kernel's cgroup limit kills it
            ada = wait_until(
                lambda: (lambda row: row if row["restarts"] >= 1 else None)(rows(moderator)["Ada"]),
                60,
                lambda: "the restart on the board:\n" + (tmp_path / "jupyter.log").read_text()[-3000:],
                interval=1,
            )
            assert ada["notebooks"][0]["path"] == session["path"] and ada["status"] == "working"
        finally:
            os.killpg(server.pid, signal.SIGKILL)  # the lab stops: no more heartbeats
            server.wait(30)
        stopped = time.monotonic()
        wait_until(
            lambda: rows(moderator)["Ada"]["status"] == "silent", 60 + 5, "Ada's lab shown as silent", interval=1
        )
        assert time.monotonic() - stopped < 60 and SILENT_SECONDS < 60


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _kernel_process(server_pid: int) -> int | None:
    """The kernel the server started: its child running ipykernel."""
    found = subprocess.run(["pgrep", "-P", str(server_pid), "-f", "ipykernel"], capture_output=True, text=True)
    return int(found.stdout.split()[0]) if found.stdout.split() else None


LEARNERS = 50
HOURS = 3


def three_hours_of_a_room(kafka, keys: dict[str, str], hours: float = HOURS) -> int:
    """What the labs of ``keys`` write in ``hours``: a heartbeat every 20 s each, exercises checked three
    times each, a few hands; stamped over those hours up to now. The number of records."""
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=20, acks=1)
    now = int(time.time() * 1000)
    beats = max(1, int(hours * 3600 // 20))
    count = 0
    for index, name in enumerate(sorted(keys)):
        for beat in range(beats):
            at = now - (beats - beat) * 20_000 + (0 if index % 10 else -120_000)  # every tenth lab went silent
            notebooks = [{"path": f"notebooks/0{1 + beat * 4 // beats}-lesson.ipynb", "kernel": "idle"}]
            key, value, headers = progress_record(name, name, keys, "heartbeat", notebooks=notebooks, restarts=0)
            producer.send(kafka.progress_topic, key=key, value=value, headers=headers, timestamp_ms=at)
            count += 1
        for number in ("1.1", "1.2", "2.1", "2.2", "3.1", "3.2", "4.1", "4.2")[: index % 9]:
            for tries in range(3):
                record = progress_record(name, name, keys, "check", exercise=number, done=tries == 2, tries=tries)
                producer.send(kafka.progress_topic, key=record[0], value=record[1], headers=record[2])
                count += 1
        if index % 7 == 3:
            record = progress_record(name, name, keys, "hand", raised=True, note=f"stuck on {1 + index % 4}.1")
            producer.send(kafka.progress_topic, key=record[0], value=record[1], headers=record[2])
            count += 1
    producer.flush(60)
    producer.close()
    return count


def wall_memory_limit_mib() -> int:
    deployment = yaml.safe_load((REPO / "deploy/openshift/room/shared/wall/deployment.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return int(container["resources"]["limits"]["memory"].removesuffix("Mi"))


@pytest.mark.timeout(600)
def test_fifty_learners_three_hours_fit_the_walls_memory_and_a_1080p_board(kafka, tmp_path):
    """The volume a room of 50 writes in three hours, read by a wall starting cold; its resident memory
    stays well inside its Deployment's limit, and the moderator's board shows 50 rows on a 1080p screen."""
    from selenium.webdriver.common.by import By

    from browser import browser_session, wall_problems

    folder = tmp_path / "room"
    write_room(folder, "--count", str(LEARNERS), "--apps-domain", "apps.example.com")
    state = read_room(folder)
    table = tmp_path / "keys.json"
    table.write_text(json.dumps(key_table(state)))
    keys = {entry["name"]: entry["signing_key"] for entry in state["learners"].values()}
    ensure_topics(kafka)
    records = three_hours_of_a_room(kafka, keys)
    assert records > LEARNERS * HOURS * 180
    with the_wall(kafka, tmp_path, table, state["moderator_key"]) as (base, process):
        moderator = joined(base, key=state["moderator_key"])
        board = wait_until(
            lambda: (lambda b: b if b["refused"] == 0 and sum(r["done"] for r in b["rows"]) else None)(
                moderator.get("/api/board").json()
            ),
            120,
            "the board caught up with three hours of 50 labs",
        )
        rss_mib = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{process.pid}/status").read_text()).group(1)) // 1024
        statuses = [row["status"] for row in board["rows"]]
        hands = [i for i in range(LEARNERS) if i % 7 == 3]  # as three_hours_of_a_room wrote them
        silent = [i for i in range(LEARNERS) if i % 10 == 0 and i not in hands]
        assert statuses == ["hand"] * len(hands) + ["silent"] * len(silent) + ["working"] * (
            LEARNERS - len(hands) - len(silent)
        )
        with browser_session() as desk:
            desk.set_window_size(1920, 1080)
            desk.get(f"{base}/moderate#key={state['moderator_key']}")
            wait_until(
                lambda: len(desk.find_elements(By.CSS_SELECTOR, "#board-rows tr")) == LEARNERS,
                30,
                lambda: "50 rows on the moderator's page:\n" + desk.page_source[-2000:],
                interval=0.5,
            )
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            desk.save_screenshot(str(ARTIFACTS / "board-50-learners-1080p.png"))
            overflow = desk.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the board is {overflow} px wider than a 1080p screen"
            assert not wall_problems(desk)
    (ARTIFACTS / "fifty-learners.json").write_text(
        json.dumps({"records": records, "wall_rss_mib": rss_mib, "limit_mib": wall_memory_limit_mib()})
    )
    assert rss_mib < wall_memory_limit_mib() / 2, f"{rss_mib} MiB after three hours of 50 labs"
