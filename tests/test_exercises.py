"""The notebooks' exercise checks: each says Done to a right answer and Not yet (with a hint) to a wrong or
missing one, never raises for a learner, and fails its cell only where CI asked for an answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from catdog import exercises
from catdog.experiments import summarize
from catdog.monitoring import Drift
from catdog.training import TrainResult


@pytest.fixture(autouse=True)
def a_learner(monkeypatch):
    """As a learner runs the notebooks: no expectation set (CI's runs set it)."""
    monkeypatch.delenv(exercises.EXPECT_VARIABLE, raising=False)


def run(train: list[float], validation: list[float], seconds: float) -> TrainResult:
    return TrainResult(Path("my-quick.keras"), {"accuracy": train, "val_accuracy": validation}, seconds, validation[-1])


LAB_RUN = run([0.6, 0.7, 0.8, 0.82, 0.84, 0.85], [0.6, 0.7, 0.65, 0.75, 0.6, 0.7], 30)


def test_memorising_is_done_when_training_accuracy_reaches_the_target_within_the_time():
    done = exercises.memorised(run([0.9, 0.97, 0.98, 0.99, 0.99, 1.0], [0.7] * 6, 15), LAB_RUN, 0.95, 45)
    assert done.done and "Training accuracy 0.99 in 15 s" in done.message and "validation accuracy 0.70" in done.message
    too_slow = exercises.memorised(run([0.99] * 6, [0.7] * 6, 60), LAB_RUN, 0.95, 45)
    assert not too_slow.done and "Too slow" in too_slow.message
    # One lucky last epoch is not enough: the last five are averaged.
    lucky = exercises.memorised(run([0.8, 0.8, 0.8, 0.8, 0.8, 0.99], [0.7] * 6, 15), LAB_RUN, 0.95, 45)
    assert not lucky.done and "Aim for 0.95" in lucky.message
    untrained = exercises.memorised(None, LAB_RUN, 0.95, 45)
    assert not untrained.done and "remove the #" in untrained.message


def test_a_photo_the_models_disagree_on_is_done_one_they_agree_on_is_not(models_dir, lab_data, tmp_path):
    from catdog.predict import evaluate_folder, load_models

    loaded = load_models(models_dir)
    evaluation = evaluate_folder(loaded, lab_data, splits=("training", "validation"))
    differ = evaluation.predicted("quick") != evaluation.predicted("pretrained")
    assert differ.any() and not differ.all(), "the fixture's models should disagree on some photos, not all"
    limits = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 40_000_000}
    disagree = exercises.models_disagree(evaluation.paths[int(np.argmax(differ))], loaded, **limits)
    assert disagree.done and "quick says" in disagree.message and "pretrained says" in disagree.message
    agree = exercises.models_disagree(evaluation.paths[int(np.argmin(differ))], loaded, **limits)
    assert not agree.done and "They agree" in agree.message
    (tmp_path / "notes.txt").write_text("not a photo")
    assert (
        "not a photo the models can read" in exercises.models_disagree(tmp_path / "notes.txt", loaded, **limits).message
    )
    assert "There is no file" in exercises.models_disagree(tmp_path / "missing.jpg", loaded, **limits).message
    assert "Set MY_PHOTO" in exercises.models_disagree(None, loaded, **limits).message


def test_cats_called_dogs_is_read_from_row_cat_column_dog():
    labels, predicted = [0, 0, 0, 1, 1], [1, 1, 0, 0, 1]  # two cats called dogs, one dog called a cat
    assert exercises.cats_called_dogs(2, labels, predicted).done
    wrong = exercises.cats_called_dogs(1, labels, predicted)  # the dog called a cat: the other cell
    assert not wrong.done and "row cat, column dog" in wrong.message
    assert not exercises.cats_called_dogs(None, labels, predicted).done


DRIFT = Drift(
    phases=["balanced"] * 3 + ["only cats"] * 3,
    windows={"pretrained": [0.45, 0.6, 0.38, 0.1, 0.15, 0.3], "quick": [0.5] * 6},
    missing=0,
)


def test_the_drift_band_must_hold_the_balanced_stream_and_miss_most_of_the_skewed_one():
    right = exercises.drift_band((0.33, 0.65), DRIFT)
    assert right.done and "0 of 3 balanced windows would alert, 3 of 3 skewed windows would" in right.message
    assert exercises.drift_band((0.65, 0.33), DRIFT).done  # the order of the two edges does not matter
    narrow = exercises.drift_band((0.4, 0.6), DRIFT)  # 0.38 would wake someone
    assert not narrow.done and "widen the band" in narrow.message
    wide = exercises.drift_band((0.05, 0.95), DRIFT)  # the skewed stream never leaves it
    assert not wide.done and "narrow the band" in wide.message
    assert not exercises.drift_band((None, None), DRIFT).done


GRID = summarize(
    [
        {
            "per_class": per_class,
            "image_size": size,
            "seconds": seconds,
            "seed": seed,
            "photos": 2 * per_class,
            "test_accuracy": accuracy + (0.01 if seed == 2 else 0.0),
            "fit_seconds": seconds,
            "epochs": 10,
        }
        for per_class, size, seconds, accuracy in [
            (40, 40, 5, 0.60),
            (40, 40, 20, 0.62),
            (800, 40, 5, 0.66),
            (800, 40, 20, 0.77),
            (40, 128, 5, 0.55),
            (40, 128, 20, 0.58),
            (800, 128, 5, 0.52),
            (800, 128, 20, 0.57),
        ]
        for seed in (1, 2)
    ]
)


def test_the_best_grid_point_within_the_budget_is_done_a_worse_or_slower_one_is_not():
    assert exercises.best_within_budget({"photos": 1600, "input": 40, "budget": 20}, GRID, budget=20).done
    worse = exercises.best_within_budget({"photos": 80, "input": 40, "budget": 20}, GRID, budget=20)
    assert not worse.done and "scores clearly higher" in worse.message
    slow = exercises.best_within_budget({"photos": 1600, "input": 40, "budget": 20}, GRID, budget=5)
    assert not slow.done and "the budget is 5 s" in slow.message
    assert exercises.best_within_budget({"photos": 1600, "input": 40, "budget": 5}, GRID, budget=5).done
    assert (
        "No row of the table" in exercises.best_within_budget({"photos": 3, "input": 40, "budget": 5}, GRID, 5).message
    )


def test_the_learning_curve_answer_is_read_at_the_largest_budget_and_best_input():
    assert exercises.more_photos_help(True, GRID).done  # 40 px, 20 s: 0.625 -> 0.775
    assert not exercises.more_photos_help(False, GRID).done
    flat = [dict(row, accuracy=0.6) if row["image_size"] == 40 and row["seconds"] == 20 else row for row in GRID]
    assert exercises.more_photos_help(False, flat).done  # no gain at the best input: False is right


def test_the_gates_decision_is_read_from_the_candidates_status():
    assert exercises.gate_decision("promoted", "serving").done
    assert exercises.gate_decision("Refused", "refused: worse on the check set").done
    assert not exercises.gate_decision("promoted", "refused: worse on the check set").done
    assert not exercises.gate_decision(None, "serving").done


PHOTOS = [(Path("a.jpg"), "cat"), (Path("b.jpg"), "dog"), (Path("c.jpg"), "dog")]
RESULTS = [{"pretrained": {"label": "cat", "p_dog": 0.02}}, {"pretrained": {"label": "dog", "p_dog": 0.7}}, None]


def test_a_lone_wrong_label_against_a_sure_verdict_is_set_aside_against_an_unsure_one_it_passes():
    sure = exercises.lone_wrong_label(0, PHOTOS, RESULTS)
    assert sure.done and "'dog' is set aside" in sure.message and "a second voter must agree" in sure.message
    unsure = exercises.lone_wrong_label(1, PHOTOS, RESULTS)
    assert not unsure.done and "would be accepted" in unsure.message and "0.70 sure" in unsure.message
    assert not exercises.lone_wrong_label(2, PHOTOS, RESULTS).done  # no verdict to count against
    assert not exercises.lone_wrong_label(7, PHOTOS, RESULTS).done


def test_a_check_never_raises_for_a_learner_and_says_what_went_wrong():
    broken = exercises.drift_band((0.1, 0.9), drift="not a drift run")
    assert not broken.done and "could not be checked" in broken.message
    assert str(broken).startswith("Exercise 2.2: Not yet.")
    assert broken._repr_markdown_().startswith("⬜ **Exercise 2.2: Not yet.**")


def test_ci_expectation_fails_a_check_that_disagrees_and_passes_one_that_agrees(monkeypatch):
    monkeypatch.setenv(exercises.EXPECT_VARIABLE, "done")
    assert exercises.gate_decision("promoted", "serving").done
    with pytest.raises(exercises.ExpectationError, match="CATDOG_EXERCISES_EXPECT=done, but Exercise 4.2: Not yet"):
        exercises.gate_decision(None, "serving")
    monkeypatch.setenv(exercises.EXPECT_VARIABLE, "not-yet")
    assert not exercises.gate_decision(None, "serving").done
    with pytest.raises(exercises.ExpectationError):
        exercises.gate_decision("promoted", "serving")
    monkeypatch.setenv(exercises.EXPECT_VARIABLE, "maybe")
    with pytest.raises(exercises.ExpectationError, match="use one of done, not-yet"):
        exercises.gate_decision("promoted", "serving")
