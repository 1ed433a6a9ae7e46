"""What a CPU limit below the cores does to a training time budget, with and without catdog.threads.

A pod's CPU limit is a cgroup quota: the container still sees every core of the node. TensorFlow sizes its
pools from the cores, so under a quota it runs more threads than it has CPU time for and the kernel
throttles them. This runs `catdog train quick` within a time budget (as notebook 03's grid and
`train quick --source` do) in the CI image under `podman run --cpus QUOTA`:

- sized: catdog's default, threads = the quota (catdog.threads);
- unsized: CATDOG_CPU_THREADS = every core, as TensorFlow sizes itself without catdog.threads (main before
  issue 20);
- and, for reference, no quota with every core.

Each row: epochs finished within the budget and validation accuracy on the same photos, per seed.

    python benchmarks/cpu_quota.py [--quota 1] [--seconds 20] [--per-class 200] [--seeds 1,2]
Needs the image (tests/image/build.sh, as `make test` builds it) and podman. Figures in RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = "localhost/catdog:test"
CORES = len(os.sched_getaffinity(0))


def train(quota: str | None, threads: int | None, seconds: float, per_class: int, seed: int) -> dict:
    options = ["--cpus", quota] if quota else []
    if threads:
        options += ["--env", f"CATDOG_CPU_THREADS={threads}"]
    script = (
        f"catdog train quick --source /opt/app-root/lab/photos --per-class {per_class} --seconds {seconds} "
        f"--seed {seed} --no-progress --data-out /tmp/quick-data --out /tmp/quick.keras >/tmp/out.txt 2>&1; "
        "cat /tmp/out.txt; cat /tmp/quick.history.json"
    )
    result = subprocess.run(
        ["podman", "run", "--rm", "--user", "23456:0", *options, IMAGE, "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "CONTAINERS_CONF": str(REPO / "tests" / "image" / "containers.conf")},
    )
    text = result.stdout
    accuracy = float(re.search(r"validation accuracy ([\d.]+)", text).group(1))
    history = json.loads(text[text.index("{") :])
    return {"epochs": len(history["loss"]), "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quota", default="1", help="CPUs of the quota (podman --cpus), below the cores")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--per-class", type=int, default=200, help="photos of each class (CI's image bakes 200)")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    runs = {
        f"quota {args.quota}, threads sized to it": (args.quota, None),
        f"quota {args.quota}, {CORES} threads (one per core)": (args.quota, CORES),
        f"no quota, {CORES} threads": (None, None),
    }
    figures: dict = {"cores": CORES, "seconds": args.seconds, "per_class": args.per_class, "runs": {}}
    for name, (quota, threads) in runs.items():
        rows = [train(quota, threads, args.seconds, args.per_class, seed) for seed in seeds]
        figures["runs"][name] = rows
        print(
            f"{name:<40} epochs {statistics.mean(r['epochs'] for r in rows):5.1f}  "
            f"accuracy {statistics.mean(r['accuracy'] for r in rows):.3f}  ({rows})",
            flush=True,
        )
    sized, unsized = (figures["runs"][name] for name in list(runs)[:2])
    ratio = statistics.mean(r["epochs"] for r in sized) / statistics.mean(r["epochs"] for r in unsized)
    print(f"epochs within the budget under the quota, sized / unsized: {ratio:.2f}x")
    figures["epochs_ratio"] = ratio
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    sys.exit(main())
