"""Threads sized to the CPUs this process may use (its cgroup's CPU quota), not to the node's cores.

TensorFlow and OpenMP size their thread pools from the cores they see. In a pod limited to 2 CPUs on a
64-core node that is 64 threads sharing 2 CPUs' worth of time: the kernel throttles the pod, every step is
slower, and a training *time budget* (``catdog train quick --seconds``, notebook 03's grid) trains a
fraction of the epochs it was tuned for. :func:`start_tensorflow` sizes them and then imports TensorFlow:
every module of ours that uses TensorFlow calls it first, so kernels, the CLI and the service all get pools
of the right size, and importing ``catdog`` alone reads no cgroup file.

``CATDOG_CPU_THREADS`` overrides the detected number.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from catdog import CatdogError, quiet_tensorflow
from catdog.config import ConfigError

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Environment variables TensorFlow (intra-op, inter-op pools) and OpenMP / oneDNN read at start-up.
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class CpuLimit:
    """How many threads to run, and why (shown by ``catdog cpus``)."""

    threads: int
    cores: int  # the CPUs this process may be scheduled on (affinity)
    quota: float | None  # the cgroup's CPU quota in CPUs, None when unlimited
    source: str


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cgroup_paths(proc_cgroup: str) -> dict[str, str]:
    """Controller name ("" for cgroup v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2]
    return paths


def _ancestors(base: Path, path: str) -> list[Path]:
    """``base/path`` and each folder above it up to ``base``: a parent's quota limits its children too.
    Inside a container with its own cgroup namespace the path is "/" and ``base`` is the container's."""
    folder = base / path.lstrip("/")
    found = []
    while True:
        found.append(folder)
        if folder == base or base not in folder.parents:
            return found
        folder = folder.parent


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> tuple[float | None, str]:
    """The smallest CPU quota on this process's cgroup path, in CPUs (None: unlimited), and where it is
    from. cgroup v2 ``cpu.max`` ("max 100000" or "150000 100000"); v1 ``cpu.cfs_quota_us`` (-1: none)
    over ``cpu.cfs_period_us``. On hybrid hosts the v1 cpu controller is the one that applies."""
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup")) or ""
    paths = _cgroup_paths(proc_cgroup)
    best: tuple[float | None, str] = (None, "no cgroup CPU quota")
    candidates: list[tuple[Path, str]] = []
    if "cpu" in paths:
        base = next((root / name for name in ("cpu", "cpu,cpuacct") if (root / name).is_dir()), None)
        if base is not None:
            candidates += [(folder, "v1") for folder in _ancestors(base, paths["cpu"])]
    if "" in paths:
        v2_base = root / "unified" if (root / "unified" / "cgroup.controllers").exists() else root
        candidates += [(folder, "v2") for folder in _ancestors(v2_base, paths[""])]
    for folder, version in candidates:
        if version == "v1":
            quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            if quota is None or period is None or int(quota) <= 0 or int(period) <= 0:
                continue
            cpus, text = int(quota) / int(period), f"cgroup v1 {folder}/cpu.cfs_quota_us {quota} / period {period}"
        else:
            line = _read(folder / "cpu.max")
            if not line or line.split()[0] == "max":
                continue
            quota, period = line.split()[:2]
            cpus, text = int(quota) / int(period), f"cgroup v2 {folder}/cpu.max {line}"
        if best[0] is None or cpus < best[0]:
            best = (cpus, text)
    return best


def cpu_limit(
    env: MutableMapping[str, str] | None = None, root: Path = CGROUP_ROOT, proc_cgroup: str | None = None
) -> CpuLimit:
    """Threads to use: ``CATDOG_CPU_THREADS`` if set, else the quota rounded up, at most the cores."""
    env = os.environ if env is None else env
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota, source = cgroup_quota(root, proc_cgroup)
    raw = env.get("CATDOG_CPU_THREADS", "").strip()
    if raw:
        try:
            threads = int(raw)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ConfigError(f"CATDOG_CPU_THREADS={raw!r} must be a whole number of threads, 1 or more")
        return CpuLimit(threads, cores, quota, "CATDOG_CPU_THREADS")
    if quota is None:
        return CpuLimit(cores, cores, None, f"{source}: all {cores} cores")
    return CpuLimit(max(1, min(cores, math.ceil(quota - 1e-9))), cores, quota, source)


def configure(env: MutableMapping[str, str] | None = None) -> CpuLimit:
    """Size TensorFlow's and OpenMP's pools (through the variables they read when they start) from
    :func:`cpu_limit`. Variables already set win: a deliberate choice is kept."""
    env = os.environ if env is None else env
    limit = cpu_limit(env)
    for name in THREAD_VARIABLES:
        env.setdefault(name, str(limit.threads))
    if env is os.environ and "tensorflow" in sys.modules:  # imported before catdog: set it directly
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(env["TF_NUM_INTRAOP_THREADS"]))
            tf.config.threading.set_inter_op_parallelism_threads(int(env["TF_NUM_INTEROP_THREADS"]))
        except RuntimeError:  # its runtime already started: too late to change, nothing to do
            pass
    return limit


def start_tensorflow() -> None:
    """Size the pools (:func:`configure`), then import TensorFlow without its start-up chatter. Called by
    each module that imports keras or tensorflow, before it does; later calls cost nothing. A bad
    ``CATDOG_CPU_THREADS`` is said once and the detected number kept: a typo must not stop a lesson."""
    global _started
    if not _started:
        _started = True
        try:
            configure()
        except CatdogError as error:
            print(f"catdog: warning: {error}", file=sys.stderr)
    quiet_tensorflow()


_started = False


def tensorflow_threads() -> dict[str, int]:
    """What TensorFlow runs with, measured: the pool sizes it was given, and the threads this process
    has after a multi-threaded operation (each pool thread exists by then)."""
    start_tensorflow()
    import tensorflow as tf

    before = len(os.listdir("/proc/self/task"))
    matrix = tf.random.uniform((512, 512))
    for _ in range(4):
        matrix = tf.linalg.matmul(matrix, matrix) / 512.0
    matrix.numpy()
    return {
        "intra_op": int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0")),
        "inter_op": int(os.environ.get("TF_NUM_INTEROP_THREADS", "0")),
        "process_threads_before": before,
        "process_threads": len(os.listdir("/proc/self/task")),
    }


def shell_exports() -> str:
    """``export NAME=VALUE`` lines for :data:`THREAD_VARIABLES`: the image's start script evaluates them,
    so every kernel JupyterLab starts has them, even one that imports TensorFlow before catdog."""
    import shlex

    configure()
    return "\n".join(f"export {name}={shlex.quote(os.environ[name])}" for name in THREAD_VARIABLES)
