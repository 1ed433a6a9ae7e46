"""The benchmark scripts keep working (tiny sizes); their figures are measured by `make bench`, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_smoke(script: str, weights_dir: Path, tmp_path: Path, *args: str) -> tuple[str, dict]:
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--smoke", "--json", str(figures), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "CATDOG_WEIGHTS_DIR": str(weights_dir)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, json.loads(figures.read_text())


def test_training_benchmark_runs_and_prints_its_table(weights_dir, tmp_path):
    stdout, summary = run_smoke("training.py", weights_dir, tmp_path)
    assert "| training time, fit (s) |" in stdout and "| zero-shot ImageNet head |" in stdout
    runs = {run["arch"]: run for run in summary["runs"]}
    assert set(runs) == {"original", "quick"} and len(summary["runs"]) == 2  # one seed each at smoke size
    # The published ratio is the one the runs give, and the table prints it.
    ratio = runs["quick"]["fit_seconds"] / runs["original"]["fit_seconds"]
    assert summary["fit_time_ratio_quick_over_original"] == pytest.approx(ratio)
    assert f"| {ratio:.3f} (target <= 0.167) |" in stdout
    for run in runs.values():  # scored on exactly the unseen photos asked for: 10 a class
        assert run["unseen_images"] == 20 and (run["unseen_accuracy"] * 20) == pytest.approx(
            round(run["unseen_accuracy"] * 20)
        )
    learner = summary["notebook_vs_cli"]  # the notebook's own cells ran in a kernel and reported their time
    assert len(learner["notebook_fit_seconds"]) == len(learner["cli_fit_seconds"]) == 1
    assert learner["ratio_notebook_over_cli"] == pytest.approx(
        learner["notebook_fit_seconds"][0] / learner["cli_fit_seconds"][0]
    )


def test_pipeline_benchmark_runs_and_prints_its_table(weights_dir, models_dir, tmp_path):
    # On the session's models: the training it would do first is the training benchmark's smoke.
    stdout, summary = run_smoke("pipeline.py", weights_dir, tmp_path, "--models-from", str(models_dir))
    assert "| service end to end vs decoding + both models batched (no Kafka)" in stdout
    # Every photo sent is timed, the warm-up image is not; the burst came back whole.
    assert summary["service"]["images"] == summary["loop_2019"]["images"] == 24
    assert summary["burst"]["images"] == 40
    # Where the CPU went while it drained: the service, and beside it the broker and the reader.
    drain = summary["service"]
    assert drain["service_cpu_s"] > 0 < drain["broker_cpu_s"] and drain["reader_cpu_s"] > 0
    assert f"| {drain['service_cpu_s']:.1f} | {drain['broker_cpu_s']:.1f} / {drain['reader_cpu_s']:.1f} |" in stdout
    ratios = summary["ratios"]
    assert ratios["service_over_batched"] == pytest.approx(
        summary["service"]["images_per_s"] / summary["models"]["both_batched_images_per_s"]
    )
    assert f"| {ratios['service_over_batched']:.2f} (target >= 0.9) |" in stdout
    assert ratios["service_over_2019_loop"] == pytest.approx(
        summary["service"]["images_per_s"] / summary["loop_2019"]["images_per_s"]
    )


def test_accuracy_benchmark_scores_every_command_on_the_same_unseen_photos(weights_dir, tmp_path):
    stdout, report = run_smoke("accuracy.py", weights_dir, tmp_path)
    assert {"lab", "quick", "pretrained", "fine-tune"} <= set(report) and report["test_photos"] == 12
    runs = report["quick"]["runs"]
    assert [run["seed"] for run in runs] == [1, 2]  # one per seed, each its own photos
    for scored in [report["lab"], report["pretrained"], report["fine-tune"], *runs]:
        for key in ("as_trained", "as_served"):  # a whole number of the 12 test photos
            assert scored[key] * 12 == pytest.approx(round(scored[key] * 12), abs=0.01)  # rounded to 4 places
    from catdog.training import BUDGET_MAX_EPOCHS

    for run in runs:  # the smoke's 3 s budget stopped each run (it used it up), not an epoch count
        assert run["fit_seconds"] >= 3 and 1 <= run["epochs"] < BUDGET_MAX_EPOCHS
    served = [run["as_served"] for run in runs]
    assert report["quick"]["as_served"]["mean"] == pytest.approx(sum(served) / 2, abs=1e-4)
    assert report["quick"]["fit_seconds_max"] == max(run["fit_seconds"] for run in runs)
    # Each backbone (MobileNet v1 0.75, MobileNetV2 1.0) trained by the same command on the same reserved photos.
    assert set(report["backbones"]) == {"mobilenet", "mobilenet_v2"}
    assert all(found["runs"][0]["as_served"] * 12 == pytest.approx(round(found["runs"][0]["as_served"] * 12), abs=0.01)
               for found in report["backbones"].values())  # fmt: skip
    assert "--fine-tune" in report["fine-tune"]["command"]
    assert "| MobileNetV2 at 288 px, last block fine-tuned |" in stdout
    # Each backbone's cost as the classifier pays it, measured on its own model file.
    costs = {name: found["cost"] for name, found in report["backbones"].items()}
    assert (costs["mobilenet"]["input_px"], costs["mobilenet_v2"]["input_px"]) == (224, 288)
    assert all(paid["ms_per_photo_batched"] > 0 < paid["memory_mib"] and paid["file_mib"] > 1
               for paid in costs.values()), costs  # fmt: skip
    assert "| mobilenet_v2 | 288 px |" in stdout


def test_backbone_sizes_benchmark_scores_each_backbone_and_size_once_per_photo(weights_dir, tmp_path):
    stdout, report = run_smoke("backbone_sizes.py", weights_dir, tmp_path)
    # At smoke size the cost baseline and the default only (the full run: v1 at 224 and 288, V2 at 224, 256, 288).
    assert [(run["backbone"], run["input_px"]) for run in report["runs"]] == [("mobilenet", 224), ("mobilenet_v2", 288)]
    assert report["photos"] == 16  # 8 a class
    for run in report["runs"]:  # each photo scored once, by a head that never saw it
        assert run["accuracy"] == pytest.approx(1 - run["missed"] / 16, abs=1e-4) and run["ms_per_photo"] > 0
        assert f"| {run['backbone']} | {run['input_px']} px | {run['missed']} |" in stdout
    assert report["runs"][0]["cost_ratio"] == 1.0


def test_board_benchmark_runs_and_prints_its_table(weights_dir, tmp_path):
    printed, figures = run_smoke("board.py", weights_dir, tmp_path)
    assert figures["learners"] == 5 and figures["records"] > 5 * 18 and "report_to_board_p95_s" in printed
    assert figures["wall_rss_mib"] < figures["wall_limit_mib"] and figures["report_to_board_p95_s"] < 5
