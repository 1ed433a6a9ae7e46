"""Benchmark: the instructor's board under a whole workshop's reports (issue 42).

    python benchmarks/board.py                          # 50 learners, three hours (~1 min on 2 cores)
    python benchmarks/board.py --learners 5 --hours 0.1 --json board.json

Everything on this machine: the embedded broker and `catdog wall` with a room's key table (`catdog room
--count N`). What N labs write in H hours (a signed heartbeat every 20 s each, every exercise checked,
a few hands: tests/test_board.py's simulation) is produced first; then a wall starts cold and reads it all.
Reported: the records, the wall's catch-up time and resident memory (against its Deployment's limit), the
board's size and the time one `/api/board` takes, and an event's way to the board: from a lab's report
sent to its row showing it, p50 and p95 over 20 reports (the issue's bound: 5 s).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx

from pipeline import percentile  # benchmarks/pipeline.py's helper

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the helpers for `catdog` processes and the room's simulation
from processes import catdog_ok, free_port, kafka_env, start_wall  # noqa: E402 - from tests/, on the path just above
from test_board import three_hours_of_a_room, wall_memory_limit_mib  # noqa: E402 - the same

REPORTS = 20


def rss_mib(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    return tuple(int(re.search(rf"{name}:\s+(\d+)", status).group(1)) / 1024 for name in ("VmRSS", "VmHWM"))


def measure(work: Path, learners: int, hours: float) -> dict:
    from catdog.broker import CLIENT_ENV
    from catdog.config import load_settings
    from catdog.kafka.clients import ensure_topics
    from catdog.progress import Reporter
    from catdog.room.folder import read_room
    from catdog.room.manifests import key_table

    catdog_ok("room", "--count", str(learners), "--out", work / "room", "--apps-domain", "apps.example.com")
    state = read_room(work / "room")
    (work / "keys.json").write_text(json.dumps(key_table(state)))
    keys = {entry["name"]: entry["signing_key"] for entry in state["learners"].values()}
    port = free_port()
    catdog_ok("broker", "start", "--port", str(port), env={"CATDOG_BROKER_DIR": str(work / "broker")})
    try:
        kafka = replace(load_settings(CLIENT_ENV).kafka, bootstrap_servers=f"127.0.0.1:{port}")
        ensure_topics(kafka)
        started = time.monotonic()
        records = three_hours_of_a_room(kafka, keys, hours=hours)
        produced = time.monotonic() - started
        env = {**kafka_env(kafka), "CATDOG_LEARNER_KEYS": str(work / "keys.json")}
        env["CATDOG_WALL_MODERATOR_KEY"] = state["moderator_key"]
        started = time.monotonic()
        process, base = start_wall(env, work / "wall.log", "benchmark-board", timeout=600)
        caught_up = time.monotonic() - started
        try:
            rss, peak = rss_mib(process.pid)
            moderator = httpx.Client(base_url=base, timeout=30)
            moderator.post("/api/join", json={"key": state["moderator_key"]}).raise_for_status()
            timings = []
            for _ in range(REPORTS):
                begun = time.monotonic()
                body = moderator.get("/api/board").content
                timings.append(time.monotonic() - begun)
            first = sorted(keys)[0]
            reporter = Reporter(replace(kafka, learner=first, learner_key=keys[first]))
            latencies = []
            for number in range(REPORTS):
                note = f"report {number}"
                begun = time.monotonic()
                reporter.send("hand", raised=True, note=note)
                while not any(
                    (row["hand"] or {}).get("note") == note for row in moderator.get("/api/board").json()["rows"]
                ):
                    time.sleep(0.02)
                latencies.append(time.monotonic() - begun)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    finally:
        catdog_ok("broker", "stop", env={"CATDOG_BROKER_DIR": str(work / "broker")})
    return {
        "learners": learners,
        "hours": hours,
        "records": records,
        "produce_seconds": round(produced, 1),
        "wall_catch_up_seconds": round(caught_up, 1),
        "wall_rss_mib": round(rss, 1),
        "wall_peak_mib": round(peak, 1),
        "wall_limit_mib": wall_memory_limit_mib(),
        "board_bytes": len(body),
        "board_request_p50_ms": round(percentile(timings, 50) * 1000, 1),
        "report_to_board_p50_s": round(percentile(latencies, 50), 3),
        "report_to_board_p95_s": round(percentile(latencies, 95), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", type=int, default=50)
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--smoke", action="store_true", help="5 learners, six minutes: seconds, for CI")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    learners, hours = (5, 0.1) if args.smoke else (args.learners, args.hours)
    with tempfile.TemporaryDirectory() as work:
        figures = measure(Path(work), learners, hours)
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
