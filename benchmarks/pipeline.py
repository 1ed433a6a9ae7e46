"""Benchmark: the Kafka pipeline against the raw speed of its own models, in one run.

    python benchmarks/pipeline.py            # full run (~10 min on 2 cores)
    python benchmarks/pipeline.py --smoke    # seconds: proves the script works (CI)

Measured on the embedded broker with real photos and freshly trained models:
1. models alone: images/s of each model batched and one image at a time, and single-image latency;
2. service throughput: a backlog of photos drained by `catdog classify`, end to end, against the raw
   batched throughput of the same two models on the same decoded photos (target ratio >= 0.8), and the
   original lab's pattern (one image per poll, the models called one at a time) as a baseline;
3. latency: single photos sent at a low rate, send-to-result p50/p95/p99 against the raw single-image
   latency of decoding plus both models (target p50 <= 2x);
4. memory: the service's peak RSS while it drains a burst (target <= 1.5 GiB, and flat);
5. a py-spy profile of the service while it drains, summarised by where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CATDOG_SHARED") or REPO.parent / "shared")
LAB_SOURCE = SHARED / "datasets" / "ocp-lab"
KAGGLE_SOURCE = SHARED / "datasets" / "kaggle-dev"
WEIGHTS = os.environ.get("CATDOG_WEIGHTS_DIR") or str(SHARED / "models" / "imagenet")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def train_models(work: Path, smoke: bool) -> Path:
    from catdog import training
    from catdog.data import prepare

    models = work / "models"
    prepare(str(LAB_SOURCE), work / "lab", 50, cache_dir=work / "cache", progress=False)
    training.train_cnn(work / "lab", models / "quick.keras", epochs=1 if smoke else None, verbose=0)
    prepare(str(KAGGLE_SOURCE), work / "head", 20 if smoke else 200, seed=5, cache_dir=work / "cache", progress=False)
    training.train_pretrained(work / "head", models / "pretrained.keras", weights_dir=WEIGHTS, verbose=0, progress=False)
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
            run(arrays[start:start + batch_size])
        batched = len(arrays) / (time.perf_counter() - started)
        singles = []
        for array in arrays[: min(len(arrays), 50)]:
            started = time.perf_counter()
            run(array[None])
            singles.append(time.perf_counter() - started)
        figures[name] = {"batched_images_per_s": batched, "single_images_per_s": 1 / statistics.mean(singles),
                         "single_latency_ms_p50": percentile(singles, 50) * 1000}
    # Both models on the same photos, as the service runs them: decode + resize + both models, batched.
    started = time.perf_counter()
    for start in range(0, len(photos), batch_size):
        chunk = [decode_image(data, target_size=224) for data in photos[start:start + batch_size]]
        classify_timed(loaded, chunk)
    figures["both_batched_images_per_s"] = len(photos) / (time.perf_counter() - started)
    latencies = []
    for data in photos[: min(len(photos), 50)]:
        started = time.perf_counter()
        classify_timed(loaded, [decode_image(data, target_size=224)])
        latencies.append(time.perf_counter() - started)
    figures["both_single_latency_ms_p50"] = percentile(latencies, 50) * 1000
    return figures


class Service:
    """`catdog classify` as a separate process, as on OpenShift; RSS sampled while it runs."""

    def __init__(self, env: dict, models: Path, log: Path) -> None:
        self.port = free_port()
        self.log = log
        with open(log, "wb") as stream:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "catdog.cli", "classify", "--models", str(models), "--metrics-port", str(self.port)],
                env=env, stdout=stream, stderr=subprocess.STDOUT)
        self.rss: list[tuple[float, float]] = []
        self._sampling = True
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while self._sampling and self.process.poll() is None:
            try:
                for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.rss.append((time.monotonic(), int(line.split()[1]) / 1024))
            except OSError:
                pass
            time.sleep(0.25)

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                raise SystemExit(self.log.read_text())
            time.sleep(0.2)
        raise SystemExit("service not ready:\n" + self.log.read_text())

    def stop(self) -> None:
        self._sampling = False
        self.process.terminate()
        self.process.wait(60)


def kafka_env(kafka) -> dict:
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "CATDOG_IMAGES_TOPIC": kafka.images_topic,
            "CATDOG_PREDICTIONS_TOPIC": kafka.predictions_topic, "CATDOG_DLQ_TOPIC": kafka.dlq_topic,
            "CATDOG_GROUP_ID": kafka.group_id, "CATDOG_BATCH_SIZE": str(kafka.batch_size), "TF_CPP_MIN_LOG_LEVEL": "3"}


def send_backlog(kafka, photos: list[bytes], count: int) -> None:
    from catdog.kafka_io import image_key, make_producer

    producer = make_producer(kafka, linger_ms=20)
    for index in range(count):
        data = photos[index % len(photos)]
        producer.send(kafka.images_topic, value=data, key=image_key(data), headers=[("filename", f"{index}.jpg".encode())])
    producer.flush()
    producer.close()


def collect_results(kafka, count: int, timeout: float) -> list[tuple[float, dict]]:
    """(arrival time, result) for ``count`` results, read as they are published."""
    from catdog.kafka_io import make_consumer

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
    """Images per second from the first to the last result's classified_at (service start-up excluded)."""
    from datetime import datetime

    stamps = sorted(datetime.fromisoformat(result["classified_at"]).timestamp() for _, result in results)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def original_pattern(kafka, loaded, count: int) -> float:
    """The 2019 lab's loop: one image per poll, decoded, each model called on it alone, one result sent
    and committed per image. Same models, same decoder, same broker."""
    from catdog.images import decode_image
    from catdog.kafka_io import make_consumer, make_producer
    from catdog.predict import classify_timed

    consumer = make_consumer(kafka, kafka.images_topic, group_id=kafka.group_id + "-original", max_poll_records=1)
    producer = make_producer(kafka)
    done, started = 0, None
    deadline = time.monotonic() + 900
    while done < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000, max_records=1).values():
            for record in records:
                started = started or time.perf_counter()
                image = decode_image(record.value, target_size=224)
                verdicts = {}
                for name, model in loaded.items():
                    verdicts.update(classify_timed({name: model}, [image])[0][0])
                producer.send(kafka.predictions_topic + "-original", value=json.dumps(
                    {name: v.p_dog for name, v in verdicts.items()}).encode()).get(30)
                consumer.commit()
                done += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    producer.close()
    return (done - 1) / elapsed


def profile_service(pid: int, seconds: int, out: Path) -> dict | None:
    """py-spy samples of the draining service, grouped into where the time goes."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        return None
    result = subprocess.run([spy, "record", "--pid", str(pid), "--duration", str(seconds), "--format", "raw",
                             "--output", str(out), "--nonblocking"], capture_output=True, text=True)
    if result.returncode != 0 or not out.exists():
        return {"error": result.stderr.strip()[-300:]}
    groups = {"model inference (TensorFlow/Keras)": ("keras/", "tensorflow/"), "image decoding and resizing": ("catdog/images.py", "PIL/"),
              "Kafka client": ("kafka/",), "waiting in poll": ("selectors.py",)}
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
    parser.add_argument("--photos", type=int, default=300, help="backlog drained for throughput")
    parser.add_argument("--latency-photos", type=int, default=40, help="single photos sent for latency")
    parser.add_argument("--burst", type=int, default=10_000, help="burst drained for memory")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.smoke:
        args.photos, args.latency_photos, args.burst = 24, 4, 40

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import catdog

    catdog.quiet_tensorflow()
    from catdog import broker
    from catdog.config import load_settings
    from catdog.kafka_io import ensure_topics, make_producer, send_image
    from catdog.predict import load_models

    figures: dict = {"machine": {"cpus": os.cpu_count()}, "sizes": vars(args) | {"json": None}}
    with tempfile.TemporaryDirectory(prefix="catdog-bench-") as tmp:
        work = Path(tmp)
        models_dir = train_models(work, args.smoke)
        loaded = load_models(models_dir)
        photo_paths = sorted((KAGGLE_SOURCE / "cat").glob("*.jpg"))[-150:] + sorted((KAGGLE_SOURCE / "dog").glob("*.jpg"))[-150:]
        photos = [path.read_bytes() for path in photo_paths][: max(args.photos, 50)]
        base = load_settings({}).kafka
        batch_size = base.batch_size
        figures["models"] = model_speed(loaded, photos[: args.photos], batch_size)
        print(f"models alone: {json.dumps(figures['models'], indent=1)}", flush=True)

        info = broker.start(work / "broker", free_port())
        try:
            def fresh(name: str):
                kafka = replace(base, bootstrap_servers=info.bootstrap, images_topic=f"{name}-images",
                                predictions_topic=f"{name}-predictions", dlq_topic=f"{name}-dlq", group_id=f"{name}-group")
                ensure_topics(kafka)
                return kafka

            # Throughput: a backlog, drained by the service.
            kafka = fresh("throughput")
            send_backlog(kafka, photos, args.photos)
            service = Service(kafka_env(kafka), models_dir, work / "throughput.log")
            results = collect_results(kafka, args.photos, timeout=900)
            service.stop()
            figures["service_images_per_s"] = drain_rate(results)
            # The original lab's pattern on the same backlog.
            figures["original_pattern_images_per_s"] = original_pattern(kafka, loaded, args.photos)
            print(f"service {figures['service_images_per_s']:.1f} img/s, original pattern "
                  f"{figures['original_pattern_images_per_s']:.1f} img/s", flush=True)

            # Latency: one photo at a time, at a low rate, while the service idles in poll.
            kafka = fresh("latency")
            service = Service(kafka_env(kafka), models_dir, work / "latency.log")
            service.wait_ready()
            producer = make_producer(kafka)
            from catdog.kafka_io import make_consumer

            reader = make_consumer(kafka, kafka.predictions_topic)
            reader.poll(timeout_ms=500)
            latencies = []
            for index in range(args.latency_photos):
                sent_at = time.perf_counter()
                send_image(producer, kafka, photos[index], f"{index}.jpg")
                got = False
                while not got and time.perf_counter() - sent_at < 60:
                    got = any(reader.poll(timeout_ms=50).values())
                latencies.append(time.perf_counter() - sent_at)
                time.sleep(0.3)
            reader.close()
            producer.close()
            service.stop()
            figures["latency_ms"] = {f"p{q}": percentile(latencies[1:] or latencies, q) * 1000 for q in (50, 95, 99)}
            print(f"latency {figures['latency_ms']}", flush=True)

            # Memory: a burst, drained; RSS sampled every 0.25 s; a profile while it drains.
            kafka = fresh("burst")
            send_backlog(kafka, photos, args.burst)
            service = Service(kafka_env(kafka), models_dir, work / "burst.log")
            service.wait_ready()
            profile = None
            if not args.smoke:
                time.sleep(5)
                profile = profile_service(service.process.pid, 30, work / "profile.txt")
            results = collect_results(kafka, args.burst, timeout=3600)
            service.stop()
            rss = [mib for _, mib in service.rss]
            quarter = rss[len(rss) // 4] if rss else 0.0
            figures["burst"] = {"images": len(results), "peak_rss_mib": max(rss, default=0.0),
                                "rss_at_25_percent_mib": quarter, "rss_at_end_mib": rss[-1] if rss else 0.0,
                                "images_per_s": drain_rate(results)}
            figures["profile_percent"] = profile
        finally:
            broker.stop(work / "broker")

    both = figures["models"]["both_batched_images_per_s"]
    single = figures["models"]["both_single_latency_ms_p50"]
    print()
    print("| figure | ours | baseline | ratio / target |")
    print("|---|---|---|---|")
    for name in ("quick", "pretrained"):
        m = figures["models"][name]
        print(f"| {name} model alone, images/s batched vs one at a time | {m['batched_images_per_s']:.0f} | "
              f"{m['single_images_per_s']:.0f} | {m['batched_images_per_s'] / m['single_images_per_s']:.1f}x |")
    print(f"| service end to end vs both models batched on decoded photos, images/s | {figures['service_images_per_s']:.1f} | "
          f"{both:.1f} | {figures['service_images_per_s'] / both:.2f} (target >= 0.8) |")
    print(f"| service vs the original lab's pattern, images/s | {figures['service_images_per_s']:.1f} | "
          f"{figures['original_pattern_images_per_s']:.1f} | {figures['service_images_per_s'] / figures['original_pattern_images_per_s']:.1f}x |")
    lat = figures["latency_ms"]
    print(f"| send-to-result latency p50 / p95 / p99 (ms) vs decode + both models on one photo | "
          f"{lat['p50']:.0f} / {lat['p95']:.0f} / {lat['p99']:.0f} | {single:.0f} | {lat['p50'] / single:.2f} (target p50 <= 2) |")
    burst = figures["burst"]
    print(f"| service peak RSS draining {burst['images']} images (MiB) | {burst['peak_rss_mib']:.0f} | "
          f"at 25%: {burst['rss_at_25_percent_mib']:.0f}, end: {burst['rss_at_end_mib']:.0f} | target <= 1536, flat |")
    if figures["profile_percent"]:
        print(f"\nwhere the service's time goes (py-spy, % of samples): {figures['profile_percent']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
