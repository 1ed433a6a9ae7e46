"""The experiment grid: every combination trained, none on a photo it is scored on, rows that plot and save."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from catdog import experiments, plots, training
from catdog.data import read_manifest


@pytest.fixture(scope="module")
def grid(kaggle_dev, lab_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("grid")
    lab_photos = {row["sha256"] for row in read_manifest(lab_data)}
    seen = []
    rows = experiments.run_grid(
        str(kaggle_dev),
        work,
        per_class=(6, 12),
        image_sizes=(32, 48),
        seconds=(1.0,),
        seeds=(1, 2),
        test_per_class=10,
        exclude=lab_photos,
        cache_dir=work / "cache",
        progress=False,
        on_row=seen.append,
    )
    return {"work": work, "rows": rows, "seen": seen, "lab_photos": lab_photos}


def test_every_combination_runs_once_and_is_reported_as_it_finishes(grid):
    rows = grid["rows"]
    assert grid["seen"] == rows
    assert sorted((r["per_class"], r["image_size"], r["seed"]) for r in rows) == sorted(
        (n, size, seed) for n in (6, 12) for size in (32, 48) for seed in (1, 2)
    )
    for row in rows:
        assert row["photos"] == 2 * row["per_class"]  # the sample's validation split is trained on too
        assert row["test_photos"] == 20 and 0.0 <= row["test_accuracy"] <= 1.0
        assert row["fit_seconds"] >= row["seconds"] and row["epochs"] >= 1  # stopped by the budget


def test_no_run_trains_on_a_test_photo_and_seeds_draw_their_own_photos(grid):
    work = grid["work"]
    test = {row["sha256"] for row in read_manifest(work / "test")}
    assert len(test) == 20 and not test & grid["lab_photos"]  # the lab's model can be scored on them too
    samples = {}
    for folder in sorted(work.glob("sample-*")):
        samples[folder.name] = {row["sha256"] for row in read_manifest(folder)}
        assert not samples[folder.name] & test, folder
    assert set(samples) == {"sample-6-seed1", "sample-6-seed2", "sample-12-seed1", "sample-12-seed2"}
    assert samples["sample-12-seed1"] != samples["sample-12-seed2"]


def test_the_test_set_is_the_same_for_the_same_source_and_exclusions(grid, kaggle_dev, tmp_path):
    again = experiments.prepare_test_set(
        str(kaggle_dev), tmp_path, 10, exclude=grid["lab_photos"], cache_dir=tmp_path / "cache"
    )
    assert {row["sha256"] for row in read_manifest(again)} == {
        row["sha256"] for row in read_manifest(grid["work"] / "test")
    }


def test_rows_survive_a_csv_round_trip(grid, tmp_path):
    path = experiments.save_rows(grid["rows"], tmp_path / "results.csv")
    assert experiments.read_rows(path) == grid["rows"]


def test_summary_is_the_mean_and_spread_over_seeds():
    rows = [
        {
            "per_class": 40,
            "photos": 80,
            "image_size": 32,
            "seconds": 10.0,
            "seed": seed,
            "epochs": epochs,
            "fit_seconds": 10.2,
            "test_photos": 300,
            "test_accuracy": accuracy,
        }
        for seed, epochs, accuracy in ((1, 30, 0.60), (2, 32, 0.70), (3, 31, 0.65))
    ]
    rows.append({**rows[0], "per_class": 200, "photos": 400, "test_accuracy": 0.72})
    summary = experiments.summarize(rows)
    assert [(s["photos"], s["runs"]) for s in summary] == [(80, 3), (400, 1)]
    assert summary[0]["accuracy"] == pytest.approx(0.65) and summary[0]["spread"] == pytest.approx(0.05)
    assert summary[0]["epochs"] == 31 and summary[1]["spread"] == 0.0
    table = experiments.markdown_table(summary)
    assert table.index("0.720") < table.index("0.650")  # best first
    assert "± 0.050 (3 seeds)" in table


def test_the_figure_draws_both_curves_with_every_setting(grid):
    summary = experiments.summarize(grid["rows"])
    figure = plots.plot_experiments(summary)
    learning, cost = figure.axes
    assert {text.get_text() for text in learning.get_legend().get_texts()} == {"32 px, 1 s", "48 px, 1 s"}
    assert {text.get_text() for text in cost.get_legend().get_texts()} == {
        f"{photos} photos, {size} px" for photos in (12, 24) for size in (32, 48)
    }
    assert learning.get_xlabel() == "training photos" and cost.get_xlabel() == "training seconds"


def test_the_time_budget_anneals_the_learning_rate_to_zero_by_its_end(monkeypatch):
    """The rate follows the budget's seconds, not epochs: high at the start, near zero at the end. The
    budget's clock ticks 0.05 s a reading here, so a loaded machine (a first batch that compiles for
    longer than the budget) cannot change what the run does."""
    ticks = itertools.count()
    monkeypatch.setattr(training.time, "perf_counter", lambda: next(ticks) * 0.05)
    rates = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    images = np.random.default_rng(0).integers(0, 255, (64, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(64, dtype=np.float32) % 2
    _, history, seconds = training.fit_cnn(images, labels, seconds=5.0, callbacks=[Record()])
    assert seconds >= 5.0 and len(rates) > 10
    assert rates[0] == pytest.approx(training.BUDGET_LEARNING_RATE, rel=0.01)
    assert rates[-1] < 0.05 * training.BUDGET_LEARNING_RATE
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))


def test_experiment_verb_writes_rows_and_curves_and_prints_the_table(kaggle_dev, tmp_path):
    from test_cli import catdog

    result = catdog(
        "experiment",
        "--source",
        str(kaggle_dev),
        "--per-class",
        "5",
        "--image-sizes",
        "32",
        "--seconds",
        "1",
        "--seeds",
        "1,2",
        "--test-per-class",
        "5",
        "--out",
        str(tmp_path / "grid"),
        "--no-progress",
        env={"CATDOG_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    rows = experiments.read_rows(tmp_path / "grid" / "results.csv")
    assert [row["seed"] for row in rows] == [1, 2]
    assert "| 10 | 32 px | 1 s |" in result.stdout and "(2 seeds)" in result.stdout
    assert (tmp_path / "grid" / "results.png").read_bytes().startswith(b"\x89PNG")
    bad = catdog("experiment", "--per-class", "ten")
    assert bad.returncode == 2 and "not a comma-separated list of numbers" in bad.stderr
