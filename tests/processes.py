"""The `catdog` command in its own process, as users and pods run it: one helper each, for the tests and
the benchmarks (which put this folder on their path)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx

from catdog.broker import free_port
from waiting import wait_until

CATDOG = Path(sys.prefix) / "bin" / "catdog"  # the console script the venv (or the image) installs
SERVICE_START_SECONDS = 120
WALL_START_SECONDS = 60


def catdog(
    *args, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """`catdog ARGS` as a user types it, with ``env`` over this process's environment."""
    return subprocess.run(
        [CATDOG, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def catdog_ok(*args, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """`catdog ARGS` that must succeed: its standard output, or an error with what it said."""
    result = catdog(*args, env=env, timeout=timeout)
    assert result.returncode == 0, f"catdog {' '.join(map(str, args))}:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result.stdout


def kafka_env(kafka) -> dict[str, str]:
    """The environment that points a `catdog` process at the same broker, topics and group as ``kafka``."""
    return {
        "CATDOG_SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
        "CATDOG_HEARTBEAT_INTERVAL_MS": str(kafka.heartbeat_interval_ms),
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CATDOG_IMAGES_TOPIC": kafka.images_topic,
        "CATDOG_PREDICTIONS_TOPIC": kafka.predictions_topic,
        "CATDOG_DLQ_TOPIC": kafka.dlq_topic,
        "CATDOG_FEEDBACK_TOPIC": kafka.feedback_topic,
        "CATDOG_MODERATION_TOPIC": kafka.moderation_topic,
        "CATDOG_CHALLENGE_TOPIC": kafka.challenge_topic,
        "CATDOG_SUBMISSIONS_TOPIC": kafka.submissions_topic,
        "CATDOG_PROGRESS_TOPIC": kafka.progress_topic,
        "CATDOG_GROUP_ID": kafka.group_id,
        "CATDOG_BATCH_SIZE": str(kafka.batch_size),
        "CATDOG_FETCH_WAIT_MS": str(kafka.fetch_wait_ms),
        "CATDOG_MAX_IMAGE_BYTES": str(kafka.max_image_bytes),
    }


class Service:
    """`catdog classify` in its own process, as it runs on OpenShift; its memory (VmRSS) sampled while it
    runs when ``sample_rss`` (the benchmarks)."""

    def __init__(self, env: dict[str, str], models_dir: Path, log: Path, sample_rss: bool = False) -> None:
        self.port = free_port()
        self.log = log
        with open(log, "ab") as stream:
            self.process = subprocess.Popen(
                [CATDOG, "classify", "--models", str(models_dir), "--metrics-port", str(self.port)],
                stdout=stream,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            )
        self.rss: list[tuple[float, float]] = []  # (monotonic seconds, MiB)
        if sample_rss:
            threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while self.process.poll() is None:
            try:
                for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.rss.append((time.monotonic(), int(line.split()[1]) / 1024))
            except OSError:
                pass
            time.sleep(0.25)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""
        except OSError as error:
            return 0, repr(error)

    def wait_ready(self, timeout: float = SERVICE_START_SECONDS) -> None:
        wait_until(
            lambda: self.running() and self.get("/readyz")[0] == 200,
            timeout,
            lambda: f"the service to be ready:\n{self.output()[-5000:]}",
            interval=0.3,
        )

    def running(self) -> bool:
        """True while the process runs; once it stopped, a failed assertion with its log."""
        assert self.process.poll() is None, f"it stopped (status {self.process.returncode}):\n{self.output()[-3000:]}"
        return True

    def wait_logged(self, text: str, timeout: float, times: int = 1) -> None:
        """Until ``text`` is in the log (``times`` times), the process running all along."""
        wait_until(
            lambda: self.running() and self.output().count(text) >= times,
            timeout,
            lambda: f"{text!r} in the log ({times}x):\n{self.output()[-3000:]}",
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout)


def start_service(
    services: list,
    kafka,
    models_dir: Path,
    tmp_path: Path,
    name: str = "service",
    extra_env: dict[str, str] | None = None,
    ready: bool = True,
) -> Service:
    """A `catdog classify` on ``kafka``'s topics, kept in ``services`` (the fixture that stops them)."""
    service = Service({**kafka_env(kafka), **(extra_env or {})}, models_dir, tmp_path / f"{name}.log")
    services.append(service)
    if ready:
        service.wait_ready()
    return service


def start_wall(
    env: dict[str, str], log: Path, code: str, port: int | None = None, timeout: float = WALL_START_SECONDS
) -> tuple[subprocess.Popen, str]:
    """`catdog wall` with the room ``code``, once it answers ready (caught up with its topics): the process
    and its base URL. Stop it with SIGTERM, as the pod's end does."""
    port = port or free_port()
    # A room's code comes with the room's secret (the wall refuses the code alone): a test's own unless given.
    env = {"CATDOG_WALL_SECRET": secrets.token_hex(32), **env, "CATDOG_ROOM_CODE": code, "CATDOG_WALL_PORT": str(port)}
    process = subprocess.Popen(
        [CATDOG, "wall"], stdout=open(log, "wb"), stderr=subprocess.STDOUT, env={**os.environ, **env}
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"{base}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout, lambda: f"the wall to be ready:\n{log.read_text()}")
    except BaseException:
        process.kill()
        raise
    return process, base
