"""The lab's heartbeat for the instructor's board: a Jupyter Server extension in the notebook's pod.

Every HEARTBEAT_SECONDS it reads Jupyter's own state (the open notebooks' sessions, each kernel's
execution state: starting, idle, busy, restarting, dead) and sends it as this learner's signed
``heartbeat`` (catdog.progress); a kernel that died and was restarted (killed at its memory limit, say)
is counted and reported at once. Enabled by the lab's start scripts
(``--ServerApp.jpserver_extensions=catdog.labwatch=True``); a laptop's bare lab (no room's key, no wall
beside it) sends nothing. A stopped JupyterLab sends nothing either: the board shows the silence.
"""

from __future__ import annotations

import asyncio
import logging
import time

from catdog.config import ConfigError, load_settings
from catdog.progress import HEARTBEAT_SECONDS, KERNEL_STATES, MAX_NOTEBOOKS, Reporter, reports_here

log = logging.getLogger(__name__)
FIRST_BEAT_SECONDS = 2.0  # the board hears of a lab that just started without waiting a whole period


class LabWatch:
    """What the heartbeat says: the sessions' notebooks and kernel states, and the kernels restarted."""

    def __init__(self, serverapp, reporter: Reporter) -> None:
        self.app, self.reporter = serverapp, reporter
        self.restarts: dict[str, int] = {}  # notebook path -> its kernel's restarts since the lab started
        self.hooked: set[str] = set()  # kernels whose restarts are counted

    def hook(self, kernel_id: str, path: str) -> None:
        """Count ``kernel_id``'s restarts (Jupyter restarts a kernel that died) under ``path``."""
        if kernel_id in self.hooked:
            return
        try:
            kernel = self.app.kernel_manager.get_kernel(kernel_id)
        except KeyError:
            return

        def restarted() -> None:
            self.restarts[path] = self.restarts.get(path, 0) + 1
            asyncio.get_event_loop().call_soon(lambda: asyncio.ensure_future(self.beat()))

        kernel.add_restart_callback(restarted, "restart")
        self.hooked.add(kernel_id)

    async def state(self) -> list[dict]:
        """The open notebooks (at most MAX_NOTEBOOKS), each with its kernel's state."""
        sessions = self.app.session_manager.list_sessions()
        sessions = await sessions if asyncio.iscoroutine(sessions) else sessions
        notebooks = []
        for session in sessions[:MAX_NOTEBOOKS]:
            kernel = session.get("kernel") or {}
            path = str(session.get("path") or session.get("name") or "")
            if kernel.get("id"):
                self.hook(kernel["id"], path)
            state = kernel.get("execution_state") or "unknown"
            state = state if state in KERNEL_STATES else "unknown"
            notebooks.append({"path": path, "kernel": state, "restarts": self.restarts.get(path, 0)})
        return notebooks

    async def beat(self) -> None:
        """One heartbeat, now (never raises: the lab goes on whatever Kafka does)."""
        try:
            notebooks = await self.state()
        except Exception as error:  # noqa: BLE001 - a heartbeat that cannot read Jupyter says so, once a beat
            log.warning("catdog heartbeat: cannot read Jupyter's sessions (%s)", error)
            notebooks = []
        restarts = sum(self.restarts.values())  # every kernel restarted since the lab started, open or closed
        self.reporter.send("heartbeat", notebooks=notebooks, restarts=restarts, at=int(time.time() * 1000))

    async def run(self) -> None:
        await asyncio.sleep(FIRST_BEAT_SECONDS)
        while True:
            await self.beat()
            await asyncio.sleep(HEARTBEAT_SECONDS)


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "catdog.labwatch"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Start the heartbeat in the server's event loop, if this lab is in a room."""
    try:
        settings = load_settings()
    except ConfigError as error:
        log.warning("catdog heartbeat off: %s", error)
        return
    kafka = settings.kafka
    if not reports_here(settings):
        log.info("catdog heartbeat off: no room's key and no wall here (a laptop's own lab)")
        return
    watch = LabWatch(serverapp, Reporter(kafka, enabled=True))
    serverapp.io_loop.add_callback(lambda: asyncio.ensure_future(watch.run()))
    log.info("catdog heartbeat on: every %d s to %s as %s", HEARTBEAT_SECONDS, kafka.progress_topic, kafka.learner)
