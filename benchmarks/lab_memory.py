"""How much memory the lab needs: the image's JupyterLab walked full-size in Chromium, as a learner does.

    .venv/bin/python benchmarks/lab_memory.py            (needs podman, runc, mmdebstrap, chromium, ../shared)

The notebook Deployment's memory request and limit are sized from this measurement
(tests/test_deploy.py checks them against benchmarks/lab-memory.json). It builds the image as CI does
(tests/image/build.sh, cached), starts the embedded broker on the host and `catdog classify` in its own
container, then the lab from the image's CMD as a random UID, with no memory limit and the notebooks'
full-size defaults (20 epochs, 100 evaluation photos per class, 30 drift photos, notebook 03's full grid),
and clicks Run All in each notebook; every kernel stays alive, as for a learner who moves on to the next
notebook. The image is baked with the largest photo pool ../shared's Kaggle photos allow once catdog's 500
reserved photos are left out (747 dogs; BAKE_SIZES: a pool of 700 per class, 40 for the pretrained head), so
notebook 03's grid trains on at most 500 photos a class (GRID_PER_CLASS) instead of its default 800.

The container's memory cgroup is sampled every SAMPLE_SECONDS: *working set* is what the kubelet counts
against a limit and what the OOM killer cannot reclaim (usage minus inactive page cache); *usage* adds
the page cache; the cgroup's own high-water mark of usage is read at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from browser import NOTEBOOKS, browser_session, run_notebook  # noqa: E402 - after the path is set just above
from catdog.broker import CLIENT_ENV  # noqa: E402 - after the path is set just above
from waiting import wait_until  # noqa: E402 - the same

IMAGE = "localhost/catdog:bench-memory"
BAKE_SIZES = {"LAB_PER_CLASS": "50", "EVAL_PER_CLASS": "650", "PRETRAINED_PER_CLASS": "40"}
GRID_PER_CLASS = "40,200,500"  # the pool less the lab's 50 and notebook 03's 150 test photos
RANDOM_UID = "23456:0"
SAMPLE_SECONDS = 0.25
MIB = 2**20
RESULT = REPO / "benchmarks" / "lab-memory.json"

sys.path.insert(0, str(REPO / "tests"))  # the one helper for `catdog` processes, shared with the tests
from processes import free_port  # noqa: E402 - after the path is set just above


def podman(*args: str) -> str:
    return subprocess.run(["podman", *args], check=True, capture_output=True, text=True).stdout.strip()


def memory_cgroup(container: str) -> Path:
    """The container's cgroup v1 memory folder (these machines run hybrid cgroups, see CONTAINERS.md)."""
    pid = podman("inspect", "--format", "{{.State.Pid}}", container)
    line = next(line for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if ":memory:" in line)
    return Path("/sys/fs/cgroup/memory") / line.split(":", 2)[2].lstrip("/")


class Sampler(threading.Thread):
    """Peak working set and usage of one cgroup, by phase (the notebook being run)."""

    def __init__(self, cgroup: Path):
        super().__init__(daemon=True)
        self.cgroup, self.phase, self.peaks, self.done = cgroup, "start", {}, threading.Event()

    def read(self) -> tuple[int, int]:
        usage = int((self.cgroup / "memory.usage_in_bytes").read_text())
        stat = dict(line.split() for line in (self.cgroup / "memory.stat").read_text().splitlines())
        return usage - int(stat["total_inactive_file"]), usage

    def run(self) -> None:
        while not self.done.wait(SAMPLE_SECONDS):
            working, usage = self.read()
            peak = self.peaks.setdefault(self.phase, {"working_set": 0, "usage": 0})
            peak["working_set"], peak["usage"] = max(peak["working_set"], working), max(peak["usage"], usage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=RESULT, help="where to write the figures (JSON)")
    args = parser.parse_args()
    os.environ.setdefault("CONTAINERS_CONF", str(REPO / "tests" / "image" / "containers.conf"))
    bin_dir = Path(sys.prefix) / "bin"
    env = {
        **os.environ,
        **BAKE_SIZES,
        "SHARED": os.environ.get("SHARED", str(REPO.parent / "shared")),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    print("building the image (tests/image/build.sh) …", flush=True)
    subprocess.run(
        ["bash", str(REPO / "tests" / "image" / "build.sh"), IMAGE], env=env, check=True, stdout=subprocess.DEVNULL
    )
    started: list[str] = []
    state = tempfile.mkdtemp(prefix="catdog-bench-broker-")
    broker_env = {**env, "CATDOG_BROKER_DIR": state}
    kafka_port, metrics_port, lab_port, token = free_port(), free_port(), free_port(), uuid.uuid4().hex
    subprocess.run(
        [bin_dir / "catdog", "broker", "start", "--port", str(kafka_port), "--partitions", "3"],
        env=broker_env,
        check=True,
        capture_output=True,
    )
    try:
        bootstrap = f"127.0.0.1:{kafka_port}"
        started.append(
            podman(
                "run",
                "--detach",
                "--user",
                "34567:0",
                "--env",
                f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}",
                *[f"--env={name}={value}" for name, value in CLIENT_ENV.items()],
                "--env",
                f"CATDOG_METRICS_PORT={metrics_port}",
                IMAGE,
                "catdog",
                "classify",
            )
        )
        lab = podman(
            "run",
            "--detach",
            "--user",
            RANDOM_UID,
            "--env",
            f"JUPYTER_TOKEN={token}",
            "--env",
            f"JUPYTER_PORT={lab_port}",
            "--env",
            f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}",
            "--env",
            f"CATDOG_METRICS_URL=http://127.0.0.1:{metrics_port}/metrics",
            "--env",
            "NOTEBOOK_ARGS=--LabApp.expose_app_in_browser=True",
            "--env",
            f"CATDOG_GRID_PER_CLASS={GRID_PER_CLASS}",
            IMAGE,
        )
        started.append(lab)
        sampler = Sampler(memory_cgroup(lab))
        sampler.start()
        url = f"http://127.0.0.1:{lab_port}/lab?token={token}"

        def answering() -> bool:
            import urllib.request

            try:
                return (
                    urllib.request.urlopen(f"http://127.0.0.1:{lab_port}/api/status?token={token}", timeout=5).status
                    == 200
                )
            except OSError:
                return False

        wait_until(answering, 120, "the lab to start", interval=0.5)
        sampler.phase = "JupyterLab idle"
        seconds = {}
        with browser_session() as driver, tempfile.TemporaryDirectory() as shots:
            for path in NOTEBOOKS:
                sampler.phase = Path(path).stem
                print(f"running {path} full-size in Chromium …", flush=True)
                result = run_notebook(driver, url, path, Path(shots) / sampler.phase)
                errors = [error for cell in result["cells"] for error in cell["errors"]]
                assert not errors, errors
                seconds[sampler.phase] = round(result["seconds"], 1)
            sampler.phase = "kernels idle"
            time.sleep(5)
        sampler.done.set()
        sampler.join()
        high_water = int((sampler.cgroup / "memory.max_usage_in_bytes").read_text())
    finally:
        for name in started:
            subprocess.run(["podman", "rm", "--force", "--time", "5", name], capture_output=True)
        subprocess.run([bin_dir / "catdog", "broker", "stop"], env=broker_env, capture_output=True)

    peak = max(phase["working_set"] for phase in sampler.peaks.values())
    figures = {
        "what": "catdog lab image, every notebook full-size in Chromium, one container, no memory limit",
        "bake_sizes": BAKE_SIZES,
        "command": "python benchmarks/lab_memory.py",
        "measured": time.strftime("%Y-%m-%d"),
        "peak_working_set_mib": round(peak / MIB),
        "cgroup_max_usage_mib": round(high_water / MIB),
        "by_phase_mib": {
            name: {key: round(value / MIB) for key, value in phase.items()} for name, phase in sampler.peaks.items()
        },
        "notebook_seconds": seconds,
    }
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"peak working set {figures['peak_working_set_mib']} MiB; cgroup high-water mark (with page cache) "
        f"{figures['cgroup_max_usage_mib']} MiB"
    )
    for name, phase in figures["by_phase_mib"].items():
        print(f"  {name:<26} working set {phase['working_set']:>5} MiB   usage {phase['usage']:>5} MiB")
    print(f"notebook seconds: {seconds}; written to {args.output}")


if __name__ == "__main__":
    main()
