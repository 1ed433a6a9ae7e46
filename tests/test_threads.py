"""Thread pools sized from the container's CPU limit (catdog.threads), read from cgroup files as the
kernel writes them; the image test runs it under `podman run --cpus`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from catdog import threads
from catdog.config import ConfigError

CORES = len(os.sched_getaffinity(0))


def cgroup_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    return root


@pytest.mark.parametrize(
    ("files", "proc", "expected"),
    [
        ({"cpu.max": "150000 100000"}, "0::/\n", 1.5),  # cgroup v2, in a container's own namespace
        ({"cpu.max": "max 100000"}, "0::/\n", None),
        ({"kubepods/pod1/cpu.max": "200000 100000", "kubepods/cpu.max": "max 100000"}, "0::/kubepods/pod1\n", 2.0),
        ({"kubepods/cpu.max": "50000 100000", "kubepods/pod1/cpu.max": "400000 100000"}, "0::/kubepods/pod1\n", 0.5),
        ({"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"}, "4:cpu,cpuacct:/\n0::/\n", 1.0),
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, "4:cpu,cpuacct:/\n", None),
    ],
    ids=["v2", "v2 unlimited", "v2 pod", "v2 parent tighter", "v1 hybrid", "v1 unlimited"],
)
def test_the_quota_is_read_from_the_processs_own_cgroup_and_its_parents(tmp_path, files, proc, expected):
    quota, _ = threads.cgroup_quota(cgroup_tree(tmp_path, files), proc)
    assert quota == expected


def test_threads_are_the_quota_rounded_up_at_most_the_cores_or_the_override(tmp_path):
    root = cgroup_tree(tmp_path, {"cpu.max": "150000 100000"})
    assert threads.cpu_limit({}, root, "0::/\n").threads == min(2, CORES)
    assert (
        threads.cpu_limit({}, cgroup_tree(tmp_path / "big", {"cpu.max": "6400000 100000"}), "0::/\n").threads == CORES
    )
    assert threads.cpu_limit({"CATDOG_CPU_THREADS": "3"}, root, "0::/\n").threads == 3
    with pytest.raises(ConfigError, match="CATDOG_CPU_THREADS"):
        threads.cpu_limit({"CATDOG_CPU_THREADS": "many"}, root, "0::/\n")


def test_tensorflow_starts_with_pools_of_that_size_however_it_is_imported():
    """A kernel that imports TensorFlow before catdog is sized too (the start script exports the same)."""
    script = (
        "import tensorflow, catdog, os; from catdog import threads; "
        "print(threads.tensorflow_threads()['process_threads'], os.environ['TF_NUM_INTRAOP_THREADS'])"
    )
    counts = {}
    for limit in ("1", "4"):
        env = {**os.environ, "CATDOG_CPU_THREADS": limit, "TF_CPP_MIN_LOG_LEVEL": "3"}
        for name in threads.THREAD_VARIABLES:
            env.pop(name, None)
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        process_threads, intra = result.stdout.split()
        assert intra == limit
        counts[limit] = int(process_threads)
    assert counts["4"] >= counts["1"] + 3  # three more intra-op threads at least: the setting took
