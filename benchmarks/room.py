"""Benchmark: learners training at once on one machine, as a room's notebooks do on a shared node.

    python benchmarks/room.py                # one learner alone, then 3 at once (~8 min on 2 cores)
    python benchmarks/room.py --learners 3 --epochs 3 --json room.json

Each learner is a Jupyter kernel running notebook 01's own cells up to and including the quick CNN cell
(the lab's photos, its epochs, live curves), in its own folder, started at the same moment as the others.
Reported: the seconds the notebook prints for the fit, alone and at once (and their ratio), and each
kernel's peak memory (VmHWM, read by the kernel itself after the fit). Nothing limits the kernels' CPUs:
this is the contended case a room's notebooks meet when their limits add up to more than the node has.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CATDOG_SHARED") or REPO.parent / "shared")
LAB_SOURCE = SHARED / "datasets" / "ocp-lab"
PEAK_CELL = "print('VmHWM', [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])"


def learner(work: Path, epochs: int | None) -> dict:
    """One learner's kernel: notebook 01 up to the quick CNN cell, then its own peak memory."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(REPO / "notebooks" / "01-cat-dog-lab.ipynb", as_version=4)
    last = next(i for i, cell in enumerate(notebook.cells) if "training.train_cnn(" in cell.source)
    notebook.cells = notebook.cells[: last + 1] + [nbformat.v4.new_code_cell(PEAK_CELL)]
    os.environ.update(
        {
            "CATDOG_DATA_SOURCE": str(LAB_SOURCE),
            "CATDOG_DATA_DIR": str(work / "data"),
            "CATDOG_MODELS_DIR": str(work / "models"),
            "CATDOG_CACHE_DIR": str(work / "cache"),
            "CATDOG_LEARNER": work.name,
        }
    )
    if epochs:
        os.environ["CATDOG_LAB_EPOCHS"] = str(epochs)
    NotebookClient(
        notebook, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}}
    ).execute()
    fit = "".join(output.get("text", "") for output in notebook.cells[last].outputs)
    peak = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
    return {
        "fit_seconds": float(re.search(r"trained in ([\d.]+) s", fit).group(1)),
        "peak_mib": round(int(re.search(r"VmHWM (\d+)", peak).group(1)) / 1024),
    }


def run_at_once(count: int, root: Path, epochs: int | None) -> list[dict]:
    """``count`` learners, each its own process and kernel, started together."""
    processes = []
    for index in range(count):
        work = root / f"learner-{index + 1}"
        work.mkdir(parents=True)
        command = [sys.executable, __file__, "--worker", str(work)] + (["--epochs", str(epochs)] if epochs else [])
        processes.append(
            subprocess.Popen(
                command, stdout=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
            )
        )
    results = []
    for process in processes:
        out, _ = process.communicate()
        if process.returncode:
            sys.exit(f"a learner's kernel failed (exit {process.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", type=int, default=3, help="kernels training at once (default 3)")
    parser.add_argument("--epochs", type=int, help="CATDOG_LAB_EPOCHS (default: the notebook's, 20)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(learner(args.worker, args.epochs)))
        return
    with tempfile.TemporaryDirectory(prefix="catdog-room-") as tmp:
        alone = run_at_once(1, Path(tmp) / "alone", args.epochs)
        together = run_at_once(args.learners, Path(tmp) / "together", args.epochs)
    mean_together = statistics.mean(r["fit_seconds"] for r in together)
    figures = {
        "cpus": os.cpu_count(),
        "epochs": args.epochs or 20,
        "alone": alone,
        "together": together,
        "ratio_together_over_alone": mean_together / alone[0]["fit_seconds"],
    }
    print(f"| learners training at once on {os.cpu_count()} CPUs | quick CNN cell, fit (s) | kernel peak (MiB) |")
    print("|---|---|---|")
    print(f"| 1 | {alone[0]['fit_seconds']:.1f} | {alone[0]['peak_mib']} |")
    print(
        f"| {args.learners} | "
        + ", ".join(f"{r['fit_seconds']:.1f}" for r in together)
        + f" (mean {mean_together:.1f}, {figures['ratio_together_over_alone']:.2f}× alone) | "
        + ", ".join(str(r["peak_mib"]) for r in together)
        + " |"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
