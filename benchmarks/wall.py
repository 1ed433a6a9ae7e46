"""Benchmark: a room's phones and projectors on one wall, beside one classifier and one broker.

    python benchmarks/wall.py                 # 30 uploaders x 2 photos, 50 viewers (~2 min on 2 cores)
    python benchmarks/wall.py --uploaders 5 --viewers 5 --photos 1 --json wall.json

Everything on this machine, loopback only: the embedded broker, `catdog classify` (the models in
models/, or --models) and `catdog wall`. The same burst of photos twice, each burst all at once:

1. baseline, the classifier's own latency: every photo sent straight to Kafka (as `catdog send` does),
   timed from the send to its result arriving on the predictions topic;
2. the wall: UPLOADERS phones, each joined with the room code, POST their photos at the same moment while
   VIEWERS projectors hold the event stream open; timed from the upload's start to its card at each viewer.

Reported: p50 and p95 of both and their ratios (what the wall adds: upload, the decoder's check, the
thumbnail, the stream), the wall's peak memory (VmHWM), and whether every viewer got every card. The
benchmark's own clients share the machine's cores with the three services.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from pipeline import percentile  # benchmarks/pipeline.py's helper

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CATDOG_SHARED") or REPO.parent / "shared")
PHOTOS = SHARED / "datasets" / "kaggle-dev"
CODE = "benchmark-room"
BIN = Path(sys.prefix) / "bin"
CARD_TIMEOUT_SECONDS = 180

sys.path.insert(0, str(REPO / "tests"))  # the one helper for `catdog` processes, shared with the tests
from processes import Service, catdog_ok, free_port, start_wall  # noqa: E402 - from tests/, on the path just above


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def baseline(kafka, photos: list[bytes]) -> list[float]:
    """Send every photo at once straight to Kafka; seconds from each send to its result on the topic."""
    from catdog.kafka.clients import make_producer, make_reader
    from catdog.kafka.results import iter_predictions

    producer = make_producer(kafka)
    reader = make_reader(kafka, kafka.predictions_topic, since_ms=int(time.time() * 1000) - 60_000)
    started, futures = {}, []
    for index, data in enumerate(photos):
        started[index] = time.monotonic()
        futures.append(
            (
                index,
                producer.send(
                    kafka.images_topic,
                    value=data,
                    key=f"b-{index}".encode(),
                    headers=[("filename", f"baseline-{index}.jpg".encode())],
                ),
            )
        )
    where = {}
    for index, future in futures:
        metadata = future.get(timeout=60)
        where[(metadata.topic, metadata.partition, metadata.offset)] = index
    latencies: dict[int, float] = {}
    deadline = time.monotonic() + CARD_TIMEOUT_SECONDS
    while len(latencies) < len(photos) and time.monotonic() < deadline:
        for result in iter_predictions(reader, timeout=1.0):
            source = result["source"]
            index = where.get((source["topic"], source["partition"], source["offset"]))
            if index is not None and index not in latencies:
                latencies[index] = time.monotonic() - started[index]
    producer.close()
    reader.close()
    if len(latencies) < len(photos):
        sys.exit(f"baseline: {len(photos) - len(latencies)} results never came")
    return list(latencies.values())


async def viewer(
    base: str, arrivals: dict, ready: asyncio.Event, ready_count: list, viewers: int, expected: asyncio.Event, want: set
) -> None:
    """A projector: joins, opens the event stream, notes when each card arrives."""
    async with httpx.AsyncClient(base_url=base, timeout=None) as client:
        assert (await client.post("/api/join", json={"code": CODE})).status_code == 204
        async with client.stream("GET", "/api/events") as stream:
            name = None
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:])
                    now = time.monotonic()
                    if name == "snapshot":
                        if not arrivals:  # the first snapshot: this viewer is ready
                            ready_count[0] += 1
                            if ready_count[0] == viewers:
                                ready.set()
                        cards = data["cards"]
                    elif name == "card":
                        cards = [data]
                    else:
                        cards = []
                    for card in cards:
                        arrivals.setdefault(card["id"], now)
                    if want and want <= arrivals.keys():
                        return
                if expected.is_set() and want <= arrivals.keys():
                    return


async def uploader(base: str, photos: list[bytes], name: str, sent: dict) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        assert (await client.post("/api/join", json={"code": CODE})).status_code == 204
        for index, data in enumerate(photos):
            started = time.monotonic()
            answer = await client.post(
                "/api/photos", params={"filename": f"{name}-{index}.jpg", "learner": name}, content=data
            )
            assert answer.status_code == 201, answer.text
            placed = answer.json()
            sent[f"{placed['partition']}-{placed['offset']}"] = started


async def through_the_wall(base: str, uploads: list[list[bytes]], viewers: int) -> dict:
    ready, expected = asyncio.Event(), asyncio.Event()
    want: set = set()
    arrivals = [dict() for _ in range(viewers)]
    ready_count = [0]
    watching = [
        asyncio.create_task(viewer(base, arrivals[i], ready, ready_count, viewers, expected, want))
        for i in range(viewers)
    ]
    await asyncio.wait_for(ready.wait(), 60)
    sent: dict[str, float] = {}
    await asyncio.gather(*(uploader(base, photos, f"phone-{i + 1:02d}", sent) for i, photos in enumerate(uploads)))
    want.update(sent)
    expected.set()
    done, pending = await asyncio.wait(watching, timeout=CARD_TIMEOUT_SECONDS)
    for task in pending:
        task.cancel()
    latencies = [seen[card] - sent[card] for seen in arrivals for card in sent if card in seen]
    behind = sum(1 for seen in arrivals if not set(sent) <= seen.keys())
    return {"latencies": latencies, "uploads": len(sent), "viewers_missing_cards": behind}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploaders", type=int, default=30)
    parser.add_argument("--photos", type=int, default=2, help="photos per uploader")
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    from catdog.broker import CLIENT_ENV
    from catdog.config import load_settings

    files = sorted(PHOTOS.rglob("*.jpg"))[: args.uploaders * args.photos]
    photos = [path.read_bytes() for path in files]
    work = Path(tempfile.mkdtemp(prefix="wall-bench-"))
    kafka_port = free_port()
    env = {
        **os.environ,
        **CLIENT_ENV,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "CATDOG_BROKER_DIR": str(work / "broker"),
        "CATDOG_WALL_CARDS": "8",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    catdog_ok("broker", "start", "--port", kafka_port, "--partitions", 3, env=env)
    services = []
    try:
        classifier = Service(env, args.models, work / "classify.log")
        services.append(classifier.process)
        classifier.wait_ready(timeout=180)
        wall, base = start_wall(env, work / "wall.log", CODE, timeout=180)
        services.append(wall)
        kafka = load_settings(env).kafka

        baseline(kafka, photos[:4])  # warm-up: the first batch through both models builds their graphs
        direct = baseline(kafka, photos)
        print(f"baseline: {len(direct)} photos straight to Kafka at once", flush=True)
        uploads = [photos[i * args.photos : (i + 1) * args.photos] for i in range(args.uploaders)]
        walled = asyncio.run(through_the_wall(base, uploads, args.viewers))
        wall_peak = peak_mib(wall.pid)
    finally:
        for process in services:
            process.terminate()
            process.wait(30)
        subprocess.run([BIN / "catdog", "broker", "stop"], env=env, check=False, capture_output=True)

    figures = {
        "uploaders": args.uploaders,
        "photos_per_uploader": args.photos,
        "viewers": args.viewers,
        "cpus": os.cpu_count(),
        "baseline_send_to_result_s": {"p50": statistics.median(direct), "p95": percentile(direct, 95)},
        "wall_upload_to_card_s": {
            "p50": statistics.median(walled["latencies"]),
            "p95": percentile(walled["latencies"], 95),
        },
        "uploads": walled["uploads"],
        "card_arrivals": len(walled["latencies"]),
        "viewers_missing_cards": walled["viewers_missing_cards"],
        "wall_peak_mib": round(wall_peak),
    }
    figures["ratio_p50"] = figures["wall_upload_to_card_s"]["p50"] / figures["baseline_send_to_result_s"]["p50"]
    figures["ratio_p95"] = figures["wall_upload_to_card_s"]["p95"] / figures["baseline_send_to_result_s"]["p95"]
    print(f"\n| {args.uploaders} phones x {args.photos} photos, {args.viewers} viewers | p50 (s) | p95 (s) |")
    print("|---|---|---|")
    for label, key in (
        ("classifier alone: send -> result (Kafka)", "baseline_send_to_result_s"),
        ("through the wall: upload -> card at each viewer", "wall_upload_to_card_s"),
    ):
        print(f"| {label} | {figures[key]['p50']:.2f} | {figures[key]['p95']:.2f} |")
    print(f"| ratio, wall / classifier alone | {figures['ratio_p50']:.2f} | {figures['ratio_p95']:.2f} |")
    print(
        f"\ncards seen: {figures['card_arrivals']} of {figures['uploads'] * args.viewers} "
        f"(viewers missing a card: {figures['viewers_missing_cards']}); wall peak memory {figures['wall_peak_mib']} MiB"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    if figures["viewers_missing_cards"]:
        sys.exit("some viewers were left behind")


if __name__ == "__main__":
    main()
