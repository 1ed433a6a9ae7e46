"""Benchmark: the Kafka pipeline against the raw speed of its own models, in one run.

    python benchmarks/pipeline.py            # full run (~10 min on 2 cores)
    python benchmarks/pipeline.py --smoke    # seconds: proves the script works (CI)

Measured on the embedded broker with real photos and freshly trained models:
1. models alone: images/s of each model batched and one image at a time, and single-image latency;
2. throughput: a backlog of photos sent to a running, warmed-up `catdog classify`, timed from just before
   the first send to the last result's arrival, against decoding plus both models batched on the same
   photos with no Kafka (target ratio >= 0.9); and the 2019 notebook's loop (one image per poll, both
   models, printed, auto-commit), warmed up and timed the same way;
3. latency: single photos sent at a low rate, send-to-result p50/p95/p99 against the raw single-image
   latency of decoding plus both models (target p50 <= 2x);
4. memory: the service's RSS while it drains a burst (target <= 1 GiB, and flat);
5. a py-spy profile of the service while it drains, summarised by where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CATDOG_SHARED") or REPO.parent / "shared")
LAB_SOURCE = SHARED / "datasets" / "ocp-lab"
KAGGLE_SOURCE = SHARED / "datasets" / "kaggle-dev"
WEIGHTS = os.environ.get("CATDOG_WEIGHTS_DIR") or str(SHARED / "models" / "imagenet")
LATENCY_PAUSE_SECONDS = 0.3  # between single photos: a service that is idle when each one arrives
# The throughput reader's fetch wait. The embedded broker answers a fetch only when its wait ends, so a
# reader at the service's 10 ms asks 100 times a second and took ~14 % of a core beside the service it
# timed (the baseline has no reader); at 100 ms a result's arrival is known within 0.1 s of a drain of 10+ s.
READER_FETCH_WAIT_MS = 100

sys.path.insert(0, str(REPO / "tests"))  # the one helper for `catdog` processes, shared with the tests
from processes import Service, free_port  # noqa: E402 - from tests/, on the path just above
from processes import kafka_env as catdog_env  # noqa: E402 - the same


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def train_models(work: Path, smoke: bool, backbone: str) -> Path:
    from catdog import training, transfer
    from catdog.data import prepare

    models = work / "models"
    prepare(str(LAB_SOURCE), work / "lab", 50, cache_dir=work / "cache", progress=False)
    training.train_cnn(work / "lab", models / "quick.keras", epochs=1 if smoke else None, verbose=0)
    prepare(str(KAGGLE_SOURCE), work / "head", 20 if smoke else 200, seed=5, cache_dir=work / "cache", progress=False)
    transfer.train_pretrained(
        work / "head", models / "pretrained.keras", weights_dir=WEIGHTS, verbose=0, progress=False, backbone=backbone
    )
    return models


def model_speed(loaded, photos: list[bytes], batch_size: int) -> dict:
    """Each model alone on decoded photos: batched and one at a time; decoding measured apart."""
    import numpy as np

    from catdog import models
    from catdog.images import decode_image
    from catdog.predict import classify_timed, predict_fn

    started = time.perf_counter()
    decoded = [decode_image(data, target_size=224) for data in photos]
    decode_seconds = (time.perf_counter() - started) / len(photos)
    figures: dict = {"decode_ms_per_image": decode_seconds * 1000}
    for name, model in loaded.items():
        size = models.input_size(model)
        arrays = np.stack([image.to_array(size) for image in decoded])
        run = predict_fn(model)  # the same compiled call the service makes
        run(arrays[:batch_size])  # warm-up (traces the graph once)
        started = time.perf_counter()
        for start in range(0, len(arrays), batch_size):
            run(arrays[start : start + batch_size])
        batched = len(arrays) / (time.perf_counter() - started)
        singles = []
        for array in arrays[: min(len(arrays), 50)]:
            started = time.perf_counter()
            run(array[None])
            singles.append(time.perf_counter() - started)
        figures[name] = {
            "batched_images_per_s": batched,
            "single_images_per_s": 1 / statistics.mean(singles),
            "single_latency_ms_p50": percentile(singles, 50) * 1000,
        }
    # Both models on the same photos, as the service runs them: decode + resize + both models, batched.
    started = time.perf_counter()
    for start in range(0, len(photos), batch_size):
        chunk = [decode_image(data, target_size=224) for data in photos[start : start + batch_size]]
        classify_timed(loaded, chunk)
    figures["both_batched_images_per_s"] = len(photos) / (time.perf_counter() - started)
    # Before: each photo resized by PIL once per model. Now: once, to the largest input (the smaller
    # model shrinks it in its graph). Alternated twice on the same decoded photos.
    decoded_all = [decode_image(data, target_size=224) for data in photos]

    def resize_per_model(chunk):
        for model in loaded.values():
            size = models.input_size(model)
            predict_fn(model)(np.stack([image.to_array(size) for image in chunk])).numpy()

    rates: dict[str, list[float]] = {"per_model": [], "once": []}
    for _ in range(2):
        for name, run in (("per_model", resize_per_model), ("once", lambda chunk: classify_timed(loaded, chunk))):
            started = time.perf_counter()
            for start in range(0, len(decoded_all), batch_size):
                run(decoded_all[start : start + batch_size])
            rates[name].append(len(decoded_all) / (time.perf_counter() - started))
    figures["resize_images_per_s"] = {name: statistics.mean(values) for name, values in rates.items()}
    latencies = []
    for data in photos[: min(len(photos), 50)]:
        started = time.perf_counter()
        classify_timed(loaded, [decode_image(data, target_size=224)])
        latencies.append(time.perf_counter() - started)
    figures["both_single_latency_ms_p50"] = percentile(latencies, 50) * 1000
    # The same, paced as the latency test sends: each photo after 0.3 s idle, when TensorFlow's threads
    # have gone to sleep and must be woken (measured: ~5 ms more than back to back).
    paced = []
    for data in photos[: min(len(photos), 40)]:
        time.sleep(LATENCY_PAUSE_SECONDS)
        started = time.perf_counter()
        classify_timed(loaded, [decode_image(data, target_size=224)])
        paced.append(time.perf_counter() - started)
    figures["both_single_paced_ms_p50"] = percentile(paced, 50) * 1000
    return figures


def kafka_env(kafka) -> dict:
    """The tests' environment for a `catdog` process on ``kafka``'s topics, TensorFlow quiet."""
    return {**catdog_env(kafka), "TF_CPP_MIN_LOG_LEVEL": "3"}


def send_backlog(kafka, photos: list[bytes], count: int) -> None:
    from catdog.kafka.clients import make_producer
    from catdog.kafka.photos import image_key

    producer = make_producer(kafka, linger_ms=20)
    for index in range(count):
        data = photos[index % len(photos)]
        producer.send(
            kafka.images_topic, value=data, key=image_key(data), headers=[("filename", f"{index}.jpg".encode())]
        )
    producer.flush()
    producer.close()


def collect_results(kafka, count: int, timeout: float) -> list[tuple[float, dict]]:
    """(arrival time, result) for ``count`` results, read as they are published."""
    from catdog.kafka.clients import make_consumer

    consumer = make_consumer(kafka, kafka.predictions_topic)
    arrived: list[tuple[float, dict]] = []
    deadline = time.monotonic() + timeout
    while len(arrived) < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            now = time.time()
            arrived += [(now, json.loads(record.value)) for record in records]
    consumer.close()
    return arrived


def drain_rate(results: list[tuple[float, dict]]) -> float:
    """Images per second from the first to the last result's classified_at (a burst's steady rate)."""
    from datetime import datetime

    stamps = sorted(datetime.fromisoformat(result["classified_at"]).timestamp() for _, result in results)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


class Collector(threading.Thread):
    """Reads results as they are published, from before the first photo is sent: arrival times."""

    def __init__(self, kafka, count: int, timeout: float) -> None:
        super().__init__(daemon=True)
        from catdog.kafka.clients import make_consumer

        self.consumer = make_consumer(replace(kafka, fetch_wait_ms=READER_FETCH_WAIT_MS), kafka.predictions_topic)
        self.count, self.timeout, self.arrived = count, timeout, []
        self.read(500)  # assigned and positioned: warm before the clock starts

    def read(self, timeout_ms: int) -> None:
        for records in self.consumer.poll(timeout_ms=timeout_ms).values():
            now = time.time()
            self.arrived += [(now, json.loads(record.value)) for record in records]

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while len(self.arrived) < self.count and time.monotonic() < deadline:
            self.read(100)
        self.consumer.close()


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system, all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_service_throughput(
    kafka, photos: list[bytes], count: int, models_dir: Path, log: Path, broker_pid: int | None = None
) -> dict:
    """A running service, warmed up on one photo, then paused (SIGSTOP) while the backlog is sent so the
    broker's ingest is not timed (the baseline's photos are in memory). The clock starts as it resumes
    and stops at the last result's arrival at a reader: fetching, decoding, inference, publishing and
    committing every image are inside it. Where the machine's CPU went meanwhile is counted too: the
    broker and the reader share the cores the baseline had to itself."""
    service = Service(kafka_env(kafka), models_dir, log)
    service.wait_ready()
    collector = Collector(kafka, count + 1, 900)
    send_backlog(kafka, photos[:1], 1)  # the warm-up photo: graphs traced, producer connected
    while not any(result for _, result in collector.arrived):
        collector.read(100)
    service.process.send_signal(signal.SIGSTOP)
    send_backlog(kafka, photos, count)
    pids = {"service": service.process.pid, "broker": broker_pid, "reader": os.getpid()}
    before = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
    collector.start()
    started = time.time()
    service.process.send_signal(signal.SIGCONT)
    collector.join()
    spent = {f"{name}_cpu_s": round(cpu_seconds(pids[name]) - was, 2) for name, was in before.items()}
    service.stop()
    timed = [arrived for arrived, _ in collector.arrived[1:]]
    seconds = max(timed) - started
    return {"images": len(timed), "seconds": seconds, "images_per_s": len(timed) / seconds, **spent}


def loop_2019(args: argparse.Namespace) -> None:
    """In a child process: the 2019 notebook's consumer loop, repeated. KafkaConsumer with
    max_poll_records=1 and auto-commit; each message one image, decoded, each model called on it alone
    at its own size, the verdicts printed; nothing published. Our decoder and compiled models (the 2019
    code wrote a file and used Keras' predict_generator, far slower), so the loop is what is compared."""
    from catdog import models
    from catdog.config import load_settings
    from catdog.images import decode_image
    from catdog.kafka.clients import make_consumer
    from catdog.predict import load_models, predict_fn

    kafka = load_settings().kafka
    loaded = load_models(args.models)
    consumer = make_consumer(
        kafka, kafka.images_topic, group_id=kafka.group_id + "-2019", max_poll_records=1, enable_auto_commit=True
    )
    sink = open(os.devnull, "w")
    done, last = 0, 0.0
    for message in consumer:
        image = decode_image(message.value)
        for name, model in loaded.items():
            p_dog = float(predict_fn(model)(image.to_array(models.input_size(model))[None]).numpy()[0, 0])
            print(f"{p_dog * 100:.2f}% dog using the {name} model", file=sink)
        done += 1
        last = time.time()
        if done == 1:
            print("READY", flush=True)  # the warm-up image: graphs traced, partitions assigned
        if done == args.count + 1:
            break
    consumer.close()
    print(json.dumps({"images": done - 1, "last": last}), flush=True)


def timed_2019_loop(kafka, photos: list[bytes], count: int, models_dir: Path) -> dict:
    """The 2019 loop in its own process, warmed up on one image, paused while the backlog is sent, then
    timed from its resumption as the service is."""
    command = [sys.executable, __file__, "--loop-2019", "--models", str(models_dir), "--count", str(count)]
    process = subprocess.Popen(command, env={**os.environ, **kafka_env(kafka)}, stdout=subprocess.PIPE, text=True)
    send_backlog(kafka, photos[:1], 1)
    for line in process.stdout:
        if line.strip() == "READY":
            break
    else:
        raise SystemExit("the 2019 loop ended before its warm-up image")
    process.send_signal(signal.SIGSTOP)
    send_backlog(kafka, photos, count)
    started = time.time()
    process.send_signal(signal.SIGCONT)
    finished = json.loads(process.stdout.read().strip().splitlines()[-1])
    process.wait(60)
    return {
        "images": finished["images"],
        "seconds": finished["last"] - started,
        "images_per_s": finished["images"] / (finished["last"] - started),
    }


def measure_latency(kafka, photos: list[bytes], count: int, models_dir: Path, log: Path) -> dict:
    """Send-to-result: one photo every 0.3 s to an idle, warm service; each timed from just before its
    send to its result's arrival at a reader (our consumer, with the same fetch wait as the service)."""
    from catdog.kafka.clients import make_consumer, make_producer
    from catdog.kafka.photos import send_image

    service = Service(kafka_env(kafka), models_dir, log)
    service.wait_ready()
    producer = make_producer(kafka)
    reader = make_consumer(kafka, kafka.predictions_topic)
    reader.poll(timeout_ms=500)
    latencies = []
    for index in range(count):
        sent_at = time.perf_counter()
        send_image(producer, kafka, photos[index], f"{index}.jpg")
        got = False
        while not got and time.perf_counter() - sent_at < 60:
            got = any(reader.poll(timeout_ms=50).values())
        latencies.append(time.perf_counter() - sent_at)
        time.sleep(LATENCY_PAUSE_SECONDS)
    reader.close()
    producer.close()
    service.stop()
    timed = latencies[1:] or latencies  # the first photo traces the service's graphs
    return {f"p{q}": percentile(timed, q) * 1000 for q in (50, 95, 99)}


def profile_service(pid: int, seconds: int, out: Path) -> dict | None:
    """py-spy samples of the draining service, grouped into where the time goes."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        return None
    result = subprocess.run(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not out.exists():
        return {"error": result.stderr.strip()[-300:]}
    groups = {
        "model inference (TensorFlow/Keras)": ("keras/", "tensorflow/"),
        "image decoding and resizing": ("catdog/images.py", "PIL/"),
        "Kafka client": ("kafka/",),
        "waiting in poll": ("selectors.py",),
    }
    totals = dict.fromkeys([*groups, "other"], 0)
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leafward = stack.split(";")[::-1]
        group = next((g for frame in leafward for g, keys in groups.items() if any(k in frame for k in keys)), "other")
        totals[group] += int(count)
    all_samples = sum(totals.values()) or 1
    return {group: round(100 * n / all_samples, 1) for group, n in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    parser.add_argument("--photos", type=int, default=1000, help="backlog drained for throughput")
    parser.add_argument("--latency-photos", type=int, default=40, help="single photos sent for latency")
    parser.add_argument("--burst", type=int, default=10_000, help="burst drained for memory")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--models-from",
        type=Path,
        metavar="DIR",
        help="time the models in DIR (quick.keras, pretrained.keras) instead of training fresh ones",
    )
    parser.add_argument(
        "--backbone",
        choices=("mobilenet_v2", "mobilenet"),
        default="mobilenet_v2",
        help="the pretrained model's backbone (mobilenet: 2019's, as the service ran before issue 43)",
    )
    parser.add_argument("--loop-2019", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--models", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop_2019:
        return loop_2019(args)
    if args.smoke:
        args.photos, args.latency_photos, args.burst = 24, 4, 40

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import catdog

    catdog.quiet_tensorflow()
    from catdog import broker
    from catdog.config import load_settings
    from catdog.kafka.clients import ensure_topics
    from catdog.predict import load_models

    figures: dict = {
        "machine": {"cpus": os.cpu_count()},
        "sizes": vars(args) | {"json": None, "models_from": args.models_from and str(args.models_from)},
    }
    with tempfile.TemporaryDirectory(prefix="catdog-bench-") as tmp:
        work = Path(tmp)
        models_dir = args.models_from or train_models(work, args.smoke, args.backbone)
        loaded = load_models(models_dir)
        photo_paths = (
            sorted((KAGGLE_SOURCE / "cat").glob("*.jpg"))[-150:] + sorted((KAGGLE_SOURCE / "dog").glob("*.jpg"))[-150:]
        )
        photos = [path.read_bytes() for path in photo_paths][: max(args.photos, 50)]
        base = load_settings(broker.CLIENT_ENV).kafka
        batch_size = base.batch_size
        figures["models"] = model_speed(loaded, photos[: args.photos], batch_size)
        print(f"models alone: {json.dumps(figures['models'], indent=1)}", flush=True)

        info = broker.start(work / "broker", free_port())
        try:

            def fresh(name: str):
                kafka = replace(
                    base,
                    bootstrap_servers=info.bootstrap,
                    images_topic=f"{name}-images",
                    predictions_topic=f"{name}-predictions",
                    dlq_topic=f"{name}-dlq",
                    group_id=f"{name}-group",
                )
                ensure_topics(kafka)
                return kafka

            # Throughput: a backlog sent to a warm service, and to the 2019 loop, each on fresh topics.
            figures["service"] = timed_service_throughput(
                fresh("throughput"), photos, args.photos, models_dir, work / "throughput.log", info.pid
            )
            figures["loop_2019"] = timed_2019_loop(fresh("loop2019"), photos, args.photos, models_dir)
            print(
                f"service {figures['service']['images_per_s']:.1f} img/s, 2019 loop "
                f"{figures['loop_2019']['images_per_s']:.1f} img/s",
                flush=True,
            )

            # Latency: one photo at a time, at a low rate, while the service idles in poll.
            figures["latency_ms"] = measure_latency(
                fresh("latency"), photos, args.latency_photos, models_dir, work / "latency.log"
            )
            print(f"latency {figures['latency_ms']}", flush=True)

            # Memory: a burst, drained; RSS sampled every 0.25 s; a profile while it drains.
            kafka = fresh("burst")
            send_backlog(kafka, photos, args.burst)
            service = Service(kafka_env(kafka), models_dir, work / "burst.log", sample_rss=True)
            service.wait_ready()
            profile = None
            if not args.smoke:
                time.sleep(5)
                profile = profile_service(service.process.pid, 30, work / "profile.txt")
            results = collect_results(kafka, args.burst, timeout=3600)
            service.stop()
            rss = [mib for _, mib in service.rss]
            quarter = rss[len(rss) // 4] if rss else 0.0
            figures["burst"] = {
                "images": len(results),
                "peak_rss_mib": max(rss, default=0.0),
                "rss_at_25_percent_mib": quarter,
                "rss_at_end_mib": rss[-1] if rss else 0.0,
                "images_per_s": drain_rate(results),
            }
            figures["profile_percent"] = profile
        finally:
            broker.stop(work / "broker")

    both = figures["models"]["both_batched_images_per_s"]
    single = figures["models"]["both_single_latency_ms_p50"]
    service, loop = figures["service"]["images_per_s"], figures["loop_2019"]["images_per_s"]
    figures["ratios"] = {
        "service_over_batched": service / both,
        "service_over_2019_loop": service / loop,
        "latency_p50_over_single": figures["latency_ms"]["p50"] / single,
    }
    print()
    print("| figure | ours | baseline | ratio / target |")
    print("|---|---|---|---|")
    for name in ("quick", "pretrained"):
        m = figures["models"][name]
        print(
            f"| {name} model alone, images/s batched vs one at a time | {m['batched_images_per_s']:.0f} | "
            f"{m['single_images_per_s']:.0f} | {m['batched_images_per_s'] / m['single_images_per_s']:.1f}x |"
        )
    resize = figures["models"]["resize_images_per_s"]
    print(
        f"| both models batched on decoded photos, resized once vs once per model, images/s | {resize['once']:.0f} | "
        f"{resize['per_model']:.0f} | {resize['once'] / resize['per_model']:.2f}x |"
    )
    print(
        f"| service end to end vs decoding + both models batched (no Kafka), images/s | {service:.1f} | "
        f"{both:.1f} | {figures['ratios']['service_over_batched']:.2f} (target >= 0.9) |"
    )
    drain = figures["service"]
    cores = os.cpu_count() or 1
    print(
        f"| CPU seconds while the service drained them (of {drain['seconds'] * cores:.1f} on {cores} cores): "
        f"service / broker / the reader | {drain['service_cpu_s']:.1f} | {drain['broker_cpu_s']:.1f} / "
        f"{drain['reader_cpu_s']:.1f} | |"
    )
    print(
        f"| service vs the 2019 notebook's loop, images/s | {service:.1f} | {loop:.1f} | "
        f"{figures['ratios']['service_over_2019_loop']:.1f}x |"
    )
    lat = figures["latency_ms"]
    paced = figures["models"]["both_single_paced_ms_p50"]
    figures["ratios"]["latency_p50_over_paced_single"] = lat["p50"] / paced
    print(
        f"| send-to-result latency p50 / p95 / p99 (ms) vs decode + both models on one photo, back to back | "
        f"{lat['p50']:.0f} / {lat['p95']:.0f} / {lat['p99']:.0f} | {single:.1f} | "
        f"{figures['ratios']['latency_p50_over_single']:.2f} (target p50 <= 2) |"
    )
    print(
        f"| the same p50 vs decode + both models on one photo, each after {LATENCY_PAUSE_SECONDS} s idle "
        f"(as the photos are sent) | {lat['p50']:.0f} | {paced:.1f} | "
        f"{figures['ratios']['latency_p50_over_paced_single']:.2f} (target p50 <= 2) |"
    )
    from catdog.threads import cpu_limit

    cores = cpu_limit().threads
    figures["service_images_per_s_per_core"] = service / cores
    print(
        f"| service images/s per CPU of the limit (size replicas by it: a room's photos per second / this) | "
        f"{service / cores:.1f} | {cores} CPU(s) | |"
    )
    burst = figures["burst"]
    print(
        f"| service peak RSS draining {burst['images']} images (MiB) | {burst['peak_rss_mib']:.0f} | "
        f"at 25%: {burst['rss_at_25_percent_mib']:.0f}, end: {burst['rss_at_end_mib']:.0f} | target <= 1024, flat |"
    )
    if figures["profile_percent"]:
        print(f"\nwhere the service's time goes (py-spy, % of samples): {figures['profile_percent']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
