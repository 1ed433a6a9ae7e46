"""The learner's path, walked in a real browser: `make lab` on a fresh copy of this checkout, then
headless Chromium opens the printed URL with its token and runs every notebook through JupyterLab's own
Run menu ("Run All Cells"), exactly as a learner clicks it.

Fails on an error output, on a cell that never finished, on a plotting cell without a rendered figure,
on the "Jupyter news" prompt, and on anything the run leaves for `git status` to see. Screenshots of
each notebook's end and of each figure are saved under $CATDOG_ARTIFACTS (default:
test-artifacts/lab-browser/) as PNG files a person can open.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from browser import (
    LAB_SIZES,
    LEARNERS_COPY,
    NOTEBOOKS,
    browser_session,
    open_wall,
    problems,
    run_notebook,
    send_from_phone,
    walk_lab,
    wall_card,
    wall_problems,
)
from conftest import REPO, SHARED, free_port
from waiting import wait_until

# Longer than the suite's default timeout: every notebook run in the browser.
pytestmark = pytest.mark.timeout(2400)

START_SECONDS = 600  # make lab trains both models before JupyterLab starts
ARTIFACTS = Path(os.environ.get("CATDOG_ARTIFACTS") or REPO / "test-artifacts") / "lab-browser"


def lab_copy(destination: Path) -> Path:
    """This checkout as a fresh clone would have it (tracked and new files, nothing ignored), in git."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)  # mtimes kept: make sees an up-to-date virtualenv
    git = ["git", "-c", "user.name=catdog test", "-c", "user.email=test@catdog.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=destination, check=True)
    subprocess.run([*git, "add", "-A"], cwd=destination, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fresh clone"], cwd=destination, check=True)
    return destination


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` as a learner runs it, in a fresh copy of the checkout, with CI-size models."""
    copy = lab_copy(tmp_path_factory.mktemp("clone") / "catdog")
    venv = Path(sys.prefix)  # the virtualenv running these tests: make sees it up to date
    log = tmp_path_factory.mktemp("lab-log") / "make-lab.log"
    port = free_port()
    make = [
        "make",
        "-o",
        f"{venv}/bin/catdog",
        "lab",
        f"VENV={venv}",
        f"LAB_PORT={port}",
        "PRETRAINED_PER_CLASS=40",
        "QUICK_EPOCHS=2",
        "LAB_ARGS=--LabApp.expose_app_in_browser=True",
        f"SHARED={SHARED}",
    ]
    kafka_port, metrics_port, wall_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        **LAB_SIZES,
        **LEARNERS_COPY,
        "CATDOG_LAB_KAFKA_PORT": str(kafka_port),
        "CATDOG_METRICS_PORT": str(metrics_port),
        "CATDOG_WALL_PORT": str(wall_port),
        "PYTHONUNBUFFERED": "1",
    }
    for name in (
        "CATDOG_DATA_DIR",
        "CATDOG_MODELS_DIR",
        "CATDOG_LAB_DIR",
        "JUPYTER_TOKEN",
        "CATDOG_ROOM_CODE",
        "CATDOG_WALL_URL",
    ):
        env.pop(name, None)  # the learner's defaults, not a test's
    with open(log, "wb") as stream:
        process = subprocess.Popen(
            make, cwd=copy, env=env, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True
        )

    def answering() -> str | None:
        """The printed URL, once the server behind it answers its API with the token."""
        found = re.search(r"JupyterLab: (http://\S+\?token=(\S+))", log.read_text(errors="replace"))
        if process.poll() is not None or not found:
            return None
        base = found.group(1).split("/lab/")[0]
        try:
            urllib.request.urlopen(f"{base}/api/status?token={found.group(2)}", timeout=5)
        except OSError:
            return None
        return found.group(1)

    url = wait_until(answering, START_SECONDS, "", interval=1, fail=False)
    if url is None:  # stopped, then reported with make lab's log
        os.killpg(process.pid, signal.SIGTERM)
        pytest.fail(f"make lab did not start JupyterLab:\n{log.read_text(errors='replace')[-5000:]}")
    # The wall's link, printed with JupyterLab's (the room code in its fragment).
    wall = re.search(r"Wall: (http://\S+)/#code=(\S+)", log.read_text(errors="replace"))
    moderator = re.search(r"Moderator: (http://\S+/moderate#key=\S+)", log.read_text(errors="replace"))
    assert wall and moderator, log.read_text(errors="replace")[-3000:]
    yield {
        "url": url,
        "wall": wall.group(1),
        "room_code": wall.group(2),
        "moderator": moderator.group(1),
        "copy": copy,
        "log": log,
        "process": process,
        "bootstrap": f"127.0.0.1:{kafka_port}",
        "metrics_url": f"http://127.0.0.1:{metrics_port}/metrics",
        "env": env,
    }
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # as Ctrl+C or a closing terminal would
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def driver(lab):
    with browser_session() as session:
        yield session


def test_make_lab_runs_every_notebook_in_the_browser(lab, driver):
    walk_lab(driver, lab["url"].split("/lab/")[0] + "/lab?" + lab["url"].partition("?")[2], ARTIFACTS)


ROOM = ("Ada", "Bo")  # two learners prove "my result, mine first" as well as thirty (benchmarks/room.py times three)


def test_learners_at_once_each_get_their_own_result_first(lab, tmp_path):
    """A room on this machine: `make lab`'s broker and classifier, and two more JupyterLabs started as a
    learner's pod starts one (scripts/start-notebook.sh: an empty HOME seeded with the lab, its own token,
    its own CATDOG_LEARNER), driven in two Chromiums at once through notebook 01. Each learner's photo
    gets its result, and each learner's listing of the topic starts with that learner's own results; each
    submits to `make lab`'s challenge from the notebook and finds their place on the wall's leaderboard."""
    import secrets
    import threading

    started = []
    try:
        for name in ROOM:
            home, port, token = tmp_path / name, free_port(), secrets.token_hex(16)
            home.mkdir()
            env = {
                **lab["env"],
                "HOME": str(home),
                "CATDOG_BAKED_LAB": str(lab["copy"]),
                "JUPYTER_TOKEN": token,
                "JUPYTER_PORT": str(port),
                "CATDOG_LEARNER": name,
                "KAFKA_BOOTSTRAP_SERVERS": lab["bootstrap"],
                "CATDOG_METRICS_URL": lab["metrics_url"],
                "CATDOG_WALL_URL": lab["wall"],  # as a room's settings give each learner: the wall, and its board
                "PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}",
                # what the image sets to its baked photos and weights (the Makefile's, from ../shared)
                "CATDOG_DATA_SOURCE": str(SHARED / "datasets" / "ocp-lab"),
                "CATDOG_EVAL_SOURCE": str(SHARED / "datasets" / "kaggle-dev"),
                "CATDOG_WEIGHTS_DIR": str(SHARED / "models" / "imagenet"),
            }
            for unset in ("CATDOG_LAB_DIR", "CATDOG_DATA_DIR", "CATDOG_MODELS_DIR"):
                env.pop(unset, None)
            # One option a line, as OpenShift AI passes its own: loopback only, the page's app exposed to
            # the test, the lab's JupyterLab settings (no news prompt, as the image installs them).
            env["NOTEBOOK_ARGS"] = "\n".join(
                [
                    "--ip=127.0.0.1",
                    "--LabApp.expose_app_in_browser=True",
                    f"--LabApp.app_settings_dir={lab['copy'] / 'scripts' / 'jupyterlab'}",
                ]
            )
            command = [
                "bash",
                str(lab["copy"] / "scripts" / "start-notebook.sh"),
                *(["--allow-root"] if os.getuid() == 0 else []),
            ]
            log = open(tmp_path / f"{name}.log", "wb")
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            started.append((name, f"http://127.0.0.1:{port}/lab?token={token}", process, home))
        for name, url, process, _ in started:
            status = url.replace("/lab?", "/api/status?")
            wait_until(
                lambda process=process, status=status: process.poll() is None and _answers(status),
                120,
                lambda name=name: f"{name}'s lab to answer:\n" + (tmp_path / f"{name}.log").read_text()[-3000:],
                interval=1,
            )

        states: dict[str, dict] = {}

        def learner(name: str, url: str) -> None:
            with browser_session() as session:
                states[name] = run_notebook(session, url, NOTEBOOKS[0], ARTIFACTS / "room" / name)

        threads = [threading.Thread(target=learner, args=(name, url)) for name, url, _, _ in started]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for name, _, _, home in started:
            state = states.get(name)
            assert state is not None and not problems(state), f"{name}: {problems(state) if state else 'no run'}"
            [cell] = [cell for cell in state["cells"] if "find_prediction(" in cell["source"]]
            mine, _, recent = cell["text"].partition("most recent on the topic")
            assert "(no result" not in mine and mine.rstrip().endswith(name), cell["text"]  # my photo, my name
            rows = [line for line in recent.splitlines()[1:] if line.strip()]
            assert rows and rows[0].rstrip().endswith(name), cell["text"]  # my results first
            assert (home / "notebooks" / "01-cat-dog-lab.ipynb").is_file()  # each its own HOME
            [submitted] = [cell for cell in state["cells"] if "challenge.submit(" in cell["source"]]
            assert f"verdicts as {name}: find your place" in submitted["text"], submitted["text"]
        # `make lab` runs a challenge: both learners' submissions from the notebook are on the projector's board.
        with browser_session() as projector:
            open_wall(projector, lab["wall"], lab["room_code"])
            board = wait_until(
                lambda: (lambda rows: rows if set(ROOM) <= {r.split()[0] for r in rows} else None)(
                    projector.execute_script(
                        "return [...document.querySelectorAll('#leaders li')].map(li => li.textContent)"
                    )
                ),
                60,
                "every learner on the projector's leaderboard",
                interval=1,
            )
            assert any(row.startswith("pretrained model") for row in board), board
            projector.save_screenshot(str(ARTIFACTS / "room" / "wall-leaderboard.png"))
        # The instructor's board: each learner's lab heard from (its heartbeat, from its Jupyter server), both
        # exercise checks of notebook 01 tried (the learner's copy answers Not yet), the challenge's best.
        with browser_session() as desk:
            desk.set_window_size(1920, 1080)
            desk.get(lab["moderator"])
            script = (
                "return [...document.querySelectorAll('#board-rows tr')].map(tr => ({learner: tr.dataset.learner,"
                " text: tr.innerText, cells: [...tr.children].map(td => td.className)}))"
            )
            rows = wait_until(
                lambda: (lambda found: found if set(ROOM) <= {r["learner"] for r in found} else None)(
                    desk.execute_script(script)
                ),
                60,
                lambda: "both learners on the moderator's board:\n" + desk.page_source[-2000:],
                interval=1,
            )
            desk.save_screenshot(str(ARTIFACTS / "room" / "board.png"))
            for row in (r for r in rows if r["learner"] in ROOM):
                assert row["cells"][2:4] == ["cell tried", "cell tried"], row  # 1.1 and 1.2: tried, not yet done
                assert "not started" not in row["text"] and "%" in row["text"], row  # heard from; a challenge score
    finally:
        for _, _, process, _ in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(60)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5)
        return True
    except OSError:
        return False


PHONE_LEARNER = "Zoë on a phone"  # a name no notebook in this module sends with


def test_phones_and_the_projector_meet_on_the_wall(lab, tmp_path, cat_photos):
    """The wall beside `make lab`'s classifier: a photo picked on a phone's page (a phone's screen) appears
    on the projector's page (1080p, another browser) with both verdicts; "wrong" writes exactly one labelled
    feedback event; a PDF gets the decoder's reason on the phone and nothing reaches the topic; a file name
    and learner name written as HTML by a foreign client (librdkafka) are shown as text, never run."""
    from confluent_kafka import Producer
    from kafka import TopicPartition
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    from catdog.config import load_settings
    from catdog.kafka.clients import make_consumer
    from catdog.kafka.photos import image_key
    from catdog.kafka.records import LEARNER_HEADER

    kafka = load_settings({"KAFKA_BOOTSTRAP_SERVERS": lab["bootstrap"]}).kafka
    consumer = make_consumer(kafka)

    def end(topic: str) -> int:
        return consumer.end_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]

    shots = ARTIFACTS / "wall"
    shots.mkdir(parents=True, exist_ok=True)
    with browser_session() as projector, browser_session(phone=True) as phone:
        open_wall(projector, lab["wall"], lab["room_code"])
        photo = tmp_path / "my cat.jpg"
        photo.write_bytes(cat_photos[-1].read_bytes())
        shown = send_from_phone(phone, lab["wall"], lab["room_code"], PHONE_LEARNER, photo)
        assert "error" not in shown, shown
        card = wall_card(projector, PHONE_LEARNER, timeout=30)
        assert card, projector.page_source[-3000:]
        assert card["quick"].split()[:3] == shown["quick"].split()[:3] and card["filename"] == "my cat.jpg"
        assert card["pretrained"].split()[:3] == shown["pretrained"].split()[:3]
        phone.save_screenshot(str(shots / "upload-phone.png"))

        feedback_before = end(kafka.feedback_topic)
        phone.find_element(By.ID, "wrong").click()
        wait_until(lambda: "recorded" in phone.find_element(By.ID, "thanks").text, 20, "the phone's thanks", interval=1)
        assert not phone.find_element(By.ID, "right").is_enabled()  # one answer per photo
        wrong_label = phone.find_element(By.ID, "wrong").get_attribute("data-label")
        consumer.assign([TopicPartition(kafka.feedback_topic, 0)])
        consumer.seek(TopicPartition(kafka.feedback_topic, 0), feedback_before)
        written = [r for batch in consumer.poll(timeout_ms=3000).values() for r in batch]
        assert len(written) == 1 == end(kafka.feedback_topic) - feedback_before
        # Keyed by the image as the phone's page sent it (shrunk in the browser), as stored on the topic.
        images = [TopicPartition(kafka.images_topic, p) for p in consumer.partitions_for_topic(kafka.images_topic)]
        consumer.assign(images)
        consumer.seek_to_beginning(*images)
        ends, stored = consumer.end_offsets(images), []
        while any(consumer.position(p) < ends[p] for p in images):
            stored += [r for batch in consumer.poll(timeout_ms=1000).values() for r in batch]
        sent = [r for r in stored if (LEARNER_HEADER, PHONE_LEARNER.encode()) in r.headers]
        # One vote, keyed by the image and the phone that cast it (a phone is a voter of its own).
        image, voter = written[0].key.decode().split("/", 1)
        assert [image.encode()] == [image_key(r.value) for r in sent] == [r.key for r in sent]
        assert voter.startswith("phone:"), voter
        assert json.loads(written[0].value)["label"] == wrong_label != shown["pretrained"].split()[2].lower()
        # The projector scores the serving version on the photos the room judged (this one among them).
        history = projector.find_element(By.ID, "history")
        wait_until(lambda: "right of" in history.text, 20, lambda: f"the room's score on the projector: {history.text}")
        assert "pretrained, version by version:" in history.text and card["versions"].split()[-1] in history.text

        images_before = end(kafka.images_topic)
        pdf = tmp_path / "homework.pdf"
        pdf.write_bytes(b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n")
        refused = send_from_phone(phone, lab["wall"], lab["room_code"], PHONE_LEARNER, pdf)
        assert "PDF" in refused.get("error", "") and "nothing was sent" in refused["error"], refused
        phone.save_screenshot(str(shots / "upload-refused.png"))
        assert end(kafka.images_topic) == images_before

        hostile, who = "<img src=x onerror=alert(1)>.jpg", "<script>alert(2)</script>Mallory"
        producer = Producer({"bootstrap.servers": lab["bootstrap"]})
        producer.produce(
            kafka.images_topic,
            cat_photos[-2].read_bytes(),
            key=image_key(cat_photos[-2].read_bytes()),
            headers=[("filename", hostile.encode()), ("learner", who.encode())],
        )
        producer.flush(10)
        card = wall_card(projector, who, timeout=60)
        assert card and card["filename"] == hostile, card
        assert (
            projector.execute_script(
                "return document.querySelectorAll('#cards img:not(.thumb), script:not([src])').length"
            )
            == 0
        )
        try:
            _ = projector.switch_to.alert  # raises when no alert is open
            pytest.fail("a sender's text ran as a script on the wall")
        except NoAlertPresentException:
            pass
        projector.save_screenshot(str(shots / "wall-projector.png"))
        assert not wall_problems(projector) and not wall_problems(phone)
    consumer.close()


def test_the_moderator_takes_a_photo_off_the_projector_within_a_second(lab, cat_photos):
    """The link `make lab` prints for the instructor alone: its page lists the wall's cards; "Hide" on a
    prankster's photo takes it off the projector's page (another browser) within a second; the key is
    gone from the moderator's address bar once used."""
    from confluent_kafka import Producer
    from selenium.webdriver.common.by import By

    from catdog.config import load_settings
    from catdog.kafka.photos import image_key

    kafka = load_settings({"KAFKA_BOOTSTRAP_SERVERS": lab["bootstrap"]}).kafka
    prank = cat_photos[-3].read_bytes()
    producer = Producer({"bootstrap.servers": lab["bootstrap"]})
    producer.produce(kafka.images_topic, prank, key=image_key(prank), headers=[("learner", b"Prankster")])
    producer.flush(10)
    (ARTIFACTS / "wall").mkdir(parents=True, exist_ok=True)
    with browser_session() as projector, browser_session() as desk:
        open_wall(projector, lab["wall"], lab["room_code"])
        assert wall_card(projector, "Prankster", timeout=60), projector.page_source[-2000:]
        desk.get(lab["moderator"])
        hide = (
            "return [...document.querySelectorAll('#cards .card')]"
            ".find(c => c.querySelector('.learner').textContent === 'Prankster')"
        )
        card = wait_until(
            lambda: desk.execute_script(hide),
            30,
            lambda: "the card on the moderator's page:\n" + desk.page_source[-2000:],
        )
        assert "key=" not in desk.current_url
        card.find_element(By.CSS_SELECTOR, "button.hide").click()
        clicked = time.monotonic()
        on_wall = "return [...document.querySelectorAll('#cards .learner')].some(n => n.textContent === 'Prankster')"
        wait_until(
            lambda: not projector.execute_script(on_wall), 5, "the hidden card gone from the wall", interval=0.05
        )
        taken_off = time.monotonic() - clicked
        projector.save_screenshot(str(ARTIFACTS / "wall" / "moderated-projector.png"))
        desk.save_screenshot(str(ARTIFACTS / "wall" / "moderator.png"))
        assert taken_off < 1.0, f"the projector still showed it {taken_off:.2f} s after the click"
        assert not wall_problems(projector) and not wall_problems(desk)


def test_the_walk_leaves_nothing_for_git(lab, driver):
    """After every notebook ran: no stray notebooks/data or notebooks/models, a clean `git status`."""
    os.killpg(lab["process"].pid, signal.SIGTERM)
    assert lab["process"].wait(60) is not None
    copy = lab["copy"]
    assert not (copy / "notebooks" / "data").exists() and not (copy / "notebooks" / "models").exists()
    assert (copy / "models" / "quick.keras").is_file() and (copy / "data" / "evaluation").is_dir()
    # The notebooks were saved after running (see run_notebook); the lessons stay as git has them.
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=copy, capture_output=True, text=True, check=True
    ).stdout
    assert status == "", f"make lab left files for git:\n{status}"
