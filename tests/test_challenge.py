"""The room's challenge: made by the instructor with the answers apart, published without labels, each
learner's verdicts submitted as who their key says and scored by the wall alone, one a minute, on a
leaderboard the projector shows (in Chromium). The real embedded broker, the real `catdog wall`, the
`catdog challenge` and `catdog submit` commands as people type them, and a client we did not write."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import httpx
import pytest
import yaml
from confluent_kafka import Producer

from catdog import challenge
from catdog.data import read_manifest
from catdog.identity import Keys, new_key, signed_header
from catdog.kafka.clients import ensure_topics
from catdog.kafka.records import LEARNER_HEADER
from conftest import REPO
from processes import catdog, catdog_ok, kafka_env, start_wall
from test_kafka import collect
from waiting import wait_until

CODE = "challenge-room-code"
ARTIFACTS = (
    Path(os.environ.get("CATDOG_ARTIFACTS") or REPO / "test-artifacts") / "challenge"
)  # a screenshot of the board
ANSWERS = challenge.Answers("c0ffee123456", {"a1": "cat", "b2": "dog", "c3": "dog", "d4": "cat"}, {"pretrained": 0.75})
KEYS = {"Ada": new_key(), "Bob": new_key(), "Eve": new_key()}


def signed(learner: str, verdicts: dict, key_of: str | None = None, challenge_name: str = ANSWERS.challenge):
    """A submission as `catdog submit` writes it: (key, value, headers), signed with ``key_of``'s key."""
    key, value = learner.encode(), challenge.submission(challenge_name, verdicts, "quick")
    signer = key_of or learner
    return key, value, [(LEARNER_HEADER, key), signed_header(signer, KEYS[signer], learner, key, value)]


def test_each_learners_best_is_on_the_board_best_first_and_the_earlier_wins_a_tie():
    board = challenge.Scoreboard(ANSWERS, Keys(KEYS))
    minute = 60_000
    assert board.add(*signed("Ada", {"a1": "cat", "b2": "cat"}), 0) == (True, "Ada: 0.250")  # 1 of 4 right
    assert board.add(*signed("Bob", {"a1": "cat", "b2": "dog", "c3": "dog"}), 1000)[0]  # 3 of 4
    assert board.add(*signed("Ada", {"a1": "cat", "b2": "dog", "c3": "dog", "d4": "cat"}), minute)[0]  # 4 of 4
    assert board.add(*signed("Ada", {}), 2 * minute)[0]  # a worse one later keeps her best
    rows = board.board()["rows"]
    assert [(row["learner"], row["accuracy"], row["submissions"]) for row in rows] == [
        ("Ada", 1.0, 3),
        ("Bob", 0.75, 1),
    ]
    assert rows[0]["submitted_at"] == "1970-01-01T00:01:00+00:00"  # when her best was submitted
    assert board.board()["baseline"] == {"pretrained": 0.75} and board.board()["photos"] == 4
    tie = challenge.Scoreboard(ANSWERS, None)
    tie.add(*signed("Bob", {"a1": "cat"}), 5000)
    tie.add(*signed("Ada", {"b2": "dog"}), 9000)
    assert [row["learner"] for row in tie.board()["rows"]] == ["Bob", "Ada"]


def test_a_forged_name_a_second_submission_within_the_minute_and_anything_else_are_refused():
    board = challenge.Scoreboard(ANSWERS, Keys(KEYS))
    assert board.add(*signed("Ada", {"a1": "cat"}), 0)[0]
    assert board.add(*signed("Ada", {"a1": "cat"}, key_of="Eve"), 70_000) == (False, "not signed with Ada's own key")
    too_soon = board.add(*signed("Ada", {"a1": "cat"}), 59_000)
    assert too_soon == (False, "Ada submitted less than 60 s after their last scored submission")
    assert board.add(*signed("Ada", {"a1": "cat"}), 60_000)[0]  # a minute on, it counts
    key, value, headers = signed("Bob", {"a1": "cat"})
    assert board.add(b"Ada", value, headers, 0)[1] == "a submission is keyed by the learner who sends it"
    assert board.add(key, value, headers[:1], 0)[1] == "not signed with Bob's own key"  # no signature at all
    assert (
        board.add(*signed("Bob", {"a1": "cat"}, challenge_name="another"), 0)[1]
        == "for another challenge than the one running"
    )
    key, _, _ = signed("Bob", {})
    assert (
        board.add(
            key, b"not json", [(LEARNER_HEADER, key), signed_header("Bob", KEYS["Bob"], "Bob", key, b"not json")], 0
        )[1]
        == "not a submission (JSONDecodeError)"
    )
    flood = {f"x{i}": "cat" for i in range(5)}  # more verdicts than the set has photos
    assert board.add(*signed("Bob", flood), 0)[1] == "verdicts must be one label per photo of the set"
    assert board.refused == 7 and [row["learner"] for row in board.board()["rows"]] == ["Ada"]


def test_making_a_challenge_leaves_no_label_beside_the_photos_and_keeps_the_answers_private(
    models_dir, kaggle_dev, kaggle_data, tmp_path
):
    out = tmp_path / "challenge"
    env = {"CATDOG_MODELS_DIR": str(models_dir), "CATDOG_DATA_DIR": str(tmp_path / "data")}
    printed = catdog_ok(
        "challenge",
        "make",
        "--source",
        kaggle_dev,
        "--per-class",
        "4",
        "--out",
        out,
        "--exclude-from",
        kaggle_data,
        env=env,
    )
    answers = challenge.read_answers(out / challenge.ANSWERS_FILE)
    photos = sorted((out / challenge.PHOTOS_FOLDER).iterdir())
    assert sorted(path.name for path in out.iterdir()) == ["answers.json", "photos", "secret.yaml"]
    assert len(photos) == 8 and sorted(answers.labels.values()) == ["cat"] * 4 + ["dog"] * 4
    assert {path.stem for path in photos} == set(answers.labels)  # named by content: no class in any name
    assert all(
        len(path.stem) == challenge.ID_CHARS and path.stem == challenge.photo_id(path.read_bytes()) for path in photos
    )
    assert answers.challenge == challenge.challenge_id(answers.labels)
    assert set(answers.baseline) == {"quick", "pretrained"} and f"challenge {answers.challenge}: 8 photos" in printed
    for private in ("answers.json", "secret.yaml"):
        assert stat.S_IMODE((out / private).stat().st_mode) == 0o600
    secret = yaml.safe_load((out / "secret.yaml").read_text())
    assert secret["metadata"]["name"] == "catdog-challenge" and secret["metadata"]["namespace"] == "catdog-room"
    assert json.loads(secret["stringData"]["answers.json"])["labels"] == answers.labels
    # None of the photos any model trained on (the exclusion), so the room has never seen them.
    used = {row["sha256"][: challenge.ID_CHARS] for row in read_manifest(kaggle_data)}
    assert not used & set(answers.labels)


def leaderboard(base: str, timeout: float = 30, until=lambda board: True) -> dict | None:
    """The board in the wall's snapshot, as a projector's event stream first receives it, once ``until`` holds
    (the last one seen after ``timeout`` s, for the caller's assertion to show; None: no challenge on)."""
    last: list = []
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.post("/api/join", json={"code": CODE}).status_code == 204

        def board_as_wanted() -> bool:
            with client.stream("GET", "/api/events") as stream:
                line = next(line for line in stream.iter_lines() if line.startswith("data:"))
            last[:] = [json.loads(line.split(":", 1)[1])["leaderboard"]]
            return last[0] is None or until(last[0])

        wait_until(board_as_wanted, timeout, "", interval=0.5, fail=False)
    return last[0]


@pytest.mark.timeout(600)
def test_learners_submit_from_the_cli_and_the_wall_ranks_them_refusing_a_stolen_name(
    kafka, models_dir, kaggle_dev, kaggle_data, tmp_path
):
    """Two learners submit with `catdog submit` (Ada her quick CNN, Bob the pretrained model); Eve submits
    as Ada with her own key and is refused; Ada's second try within the minute is refused; a client we did
    not write (librdkafka) submits for Ada a minute on and counts. The projector shows the board."""
    ensure_topics(kafka)
    out, keys = tmp_path / "challenge", tmp_path / "keys.json"
    keys.write_text(json.dumps({"learners": KEYS, "relays": {}}))
    env = {**kafka_env(kafka), "CATDOG_MODELS_DIR": str(models_dir), "CATDOG_DATA_DIR": str(tmp_path / "data")}
    catdog_ok(
        "challenge",
        "make",
        "--source",
        kaggle_dev,
        "--per-class",
        "5",
        "--out",
        out,
        "--exclude-from",
        kaggle_data,
        env=env,
    )
    assert "10 photos on" in catdog_ok("challenge", "publish", out, env=env)
    answers = challenge.read_answers(out / "answers.json")
    process, base = start_wall(
        {**env, "CATDOG_CHALLENGE_ANSWERS": str(out / "answers.json"), "CATDOG_LEARNER_KEYS": str(keys)},
        tmp_path / "wall.log",
        CODE,
    )
    try:

        def submit(who: str, key_of: str, model: str):
            return catdog(
                "submit",
                "--model",
                models_dir / f"{model}.keras",
                "--photos",
                tmp_path / who,
                env={**env, "CATDOG_LEARNER": who, "CATDOG_LEARNER_KEY": KEYS[key_of]},
            )

        for who, model in (("Ada", "quick"), ("Bob", "pretrained")):
            done = submit(who, who, model)
            assert (
                done.returncode == 0
                and f"submitted 10 verdicts on challenge {answers.challenge} as {who}" in done.stdout
            ), done
        assert submit("Ada", "Eve", "pretrained").returncode == 0  # sent: the room refuses it, not the client
        assert submit("Ada", "Ada", "pretrained").returncode == 0  # sent within her minute: not scored
        photos = sorted((tmp_path / "Ada").iterdir())
        assert len(photos) == 10 and {path.stem for path in photos} == set(answers.labels)  # no labels came
        board = leaderboard(base, until=lambda board: len(board["refusals"]) == 2)
        expected = {who: answers.baseline[model] for who, model in (("Ada", "quick"), ("Bob", "pretrained"))}
        assert [(row["learner"], row["accuracy"]) for row in board["rows"]] == sorted(
            expected.items(), key=lambda item: -item[1]
        ), board
        assert board["refusals"] == [
            "Ada submitted less than 60 s after their last scored submission",
            "not signed with Ada's own key",
        ]

        # A client we did not write: Ada's next try stamped a minute on buys no slot (the rule counts by the
        # broker's time where the topic says LogAppendTime, as on the cluster; here, CreateTime, by the record's
        # time capped at the wall's clock); a copy of Bob's submission sent again by anyone is refused as a
        # replay, never as Bob's own try, and his board row is untouched.
        from catdog.models import load_model

        verdicts = challenge.verdicts(
            {"pretrained": load_model(models_dir / "pretrained.keras")},
            photos,
            max_bytes=10 * 2**20,
            max_pixels=40_000_000,
        )
        key, value = b"Ada", challenge.submission(answers.challenge, verdicts, "pretrained")
        producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
        producer.produce(
            kafka.submissions_topic,
            value,
            key=key,
            timestamp=int(time.time() * 1000) + 61_000,
            headers=[(LEARNER_HEADER, key), signed_header("Ada", KEYS["Ada"], "Ada", key, value)],
        )
        [bobs] = [record for record in collect(kafka, kafka.submissions_topic, 4) if record.key == b"Bob"]
        producer.produce(
            kafka.submissions_topic,
            bobs.value,
            key=bobs.key,
            timestamp=int(time.time() * 1000) + 61_000,
            headers=bobs.headers,
        )
        assert producer.flush(15) == 0
        board = leaderboard(base, until=lambda board: len(board["refusals"]) == 4)
        assert board["refusals"][:2] == [
            "not Bob's: replay: a copy of a record Bob signed, first read at "
            f"{kafka.submissions_topic}[{bobs.partition}]@{bobs.offset}",
            "Ada submitted less than 60 s after their last scored submission",
        ], board
        assert {row["learner"]: row["submissions"] for row in board["rows"]} == {"Ada": 1, "Bob": 1}
        show_on_the_projector(base, board, answers)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def show_on_the_projector(base: str, board: dict, answers) -> None:
    """The wall in Chromium at 1080p: the board's rows in order, the line to beat, the refusals."""
    from selenium.webdriver.common.by import By

    from browser import browser_session, open_wall, wall_problems

    with browser_session() as driver:
        open_wall(driver, base, CODE)
        shown = wait_until(
            lambda: [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#leaders li")],
            30,
            "the leaderboard on the wall",
            interval=1,
        )
        names = [text.split()[0] for text in shown if not text.startswith("pretrained model")]
        assert names == [row["learner"] for row in board["rows"]], shown
        line = f"pretrained model: {round(answers.baseline['pretrained'] * 100)}% (the line to beat)"
        assert line in shown, shown
        assert f"{len(answers.labels)} photos nobody has seen" in driver.find_element(By.ID, "leaderboard").text
        assert "not signed with Ada's own key" in driver.find_element(By.ID, "refusals").text
        assert not wall_problems(driver)
        # On the projector's first screen, beside the room's counts: a projector does not scroll.
        assert driver.execute_script(
            "return document.getElementById('leaderboard').getBoundingClientRect().bottom <= window.innerHeight"
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "wall-leaderboard.png"))


def test_the_wall_without_answers_shows_no_board_and_reads_no_submissions(kafka, tmp_path):
    ensure_topics(kafka)
    process, base = start_wall(
        {**kafka_env(kafka), "CATDOG_CHALLENGE_ANSWERS": str(tmp_path / "absent.json")}, tmp_path / "wall.log", CODE
    )
    try:
        assert leaderboard(base) is None
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_a_copy_of_a_learners_submission_is_refused_as_a_replay_and_takes_nothing_of_theirs():
    """Eve cannot read the submissions topic, but a copy sent again (by anyone, with any timestamp) must not
    count, take Ada's one-a-minute slot, or read as Ada's own mistake; a record stamped a day ahead buys no
    lock-out either: the rule counts by a time no sender chose."""
    board = challenge.Scoreboard(ANSWERS, Keys(KEYS))
    now = int(time.time() * 1000)
    key, value, headers = signed("Ada", {"a1": "cat"})
    assert board.add(key, value, headers, now, where=("s", 0, 0), now_ms=now)[0]
    copy = board.add(key, value, headers, now + 61_000, where=("s", 0, 1), now_ms=now + 61_000)
    assert copy == (False, "not Ada's: replay: a copy of a record Ada signed, first read at s[0]@0")
    assert board.add(
        *signed("Ada", {"a1": "cat", "b2": "dog"}), now + 86_400_000, where=("s", 0, 2), now_ms=now + 62_000
    )[0]  # her own next try a minute on counts: the copy took no slot
    assert board.add(*signed("Ada", {"a1": "cat"}), now + 86_400_000, where=("s", 0, 3), now_ms=now + 125_000)[0], (
        "a day-ahead stamp locked her out"
    )
    assert [(row["learner"], row["submissions"]) for row in board.board()["rows"]] == [("Ada", 3)]
    on_the_cluster = challenge.Scoreboard(ANSWERS, Keys(KEYS))  # LogAppendTime: the broker's stamp is the time
    assert on_the_cluster.add(*signed("Bob", {}), now, where=("s", 0, 0), timestamp_type=1, now_ms=now + 500_000)[0]
    assert not on_the_cluster.add(
        *signed("Bob", {}), now + 30_000, where=("s", 0, 1), timestamp_type=1, now_ms=now + 500_000
    )[0]


def test_the_leaderboard_comes_back_whole_when_the_wall_restarts(kafka, tmp_path):
    """The wall's pod restarted mid-challenge: the board (each learner's best, their counts, the refusals) is
    read back from the submissions topic, the same as before."""
    from dataclasses import replace

    from catdog.kafka.clients import make_producer

    ensure_topics(kafka)
    answers, keys = tmp_path / "answers.json", tmp_path / "keys.json"
    answers.write_text(
        json.dumps({"challenge": ANSWERS.challenge, "labels": dict(ANSWERS.labels), "baseline": dict(ANSWERS.baseline)})
    )
    keys.write_text(json.dumps({"learners": KEYS, "relays": {}}))
    env = {**kafka_env(kafka), "CATDOG_CHALLENGE_ANSWERS": str(answers), "CATDOG_LEARNER_KEYS": str(keys)}
    producer = make_producer(kafka)
    for who, key_of, given in (
        ("Ada", "Ada", {"a1": "cat", "b2": "dog"}),
        ("Bob", "Bob", {"a1": "cat"}),
        ("Ada", "Ada", {"a1": "cat", "b2": "dog", "c3": "dog"}),  # within her minute
        ("Bob", "Eve", {"a1": "cat", "b2": "dog", "c3": "dog", "d4": "cat"}),
    ):  # forged
        challenge.submit(producer, replace(kafka, learner=who, learner_key=KEYS[key_of]), ANSWERS.challenge, given)
    producer.close()
    boards = []
    for name in ("before", "after"):
        process, base = start_wall(env, tmp_path / f"{name}.log", CODE)
        try:
            boards.append(leaderboard(base, until=lambda board: len(board["refusals"]) == 2))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    before, after = boards
    assert [(row["learner"], row["accuracy"], row["submissions"]) for row in before["rows"]] == [
        ("Ada", 0.5, 1),
        ("Bob", 0.25, 1),
    ]
    assert len(before["refusals"]) == 2 and after == before
