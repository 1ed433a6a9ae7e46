"""The benchmark scripts keep working (tiny sizes); their figures are measured by `make bench`, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_smoke(script: str, weights_dir: Path, tmp_path: Path) -> tuple[str, dict]:
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--smoke", "--json", str(figures)],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "CATDOG_WEIGHTS_DIR": str(weights_dir)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, json.loads(figures.read_text())


def test_training_benchmark_runs_and_prints_its_table(weights_dir, tmp_path):
    stdout, summary = run_smoke("training.py", weights_dir, tmp_path)
    assert "| training time, fit (s) |" in stdout and "| zero-shot ImageNet head |" in stdout
    assert {run["arch"] for run in summary["runs"]} == {"original", "quick"}
    assert 0 < summary["fit_time_ratio_quick_over_original"]
    assert all(0 <= run["unseen_accuracy"] <= 1 for run in summary["runs"])


def test_pipeline_benchmark_runs_and_prints_its_table(weights_dir, tmp_path):
    stdout, summary = run_smoke("pipeline.py", weights_dir, tmp_path)
    assert "| service end to end vs both models batched" in stdout
    assert summary["burst"]["images"] == 40  # every image of the burst came back with a result
    assert summary["service_images_per_s"] > 0 and summary["latency_ms"]["p50"] > 0
