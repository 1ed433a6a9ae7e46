"""The `catdog` command end to end, as a user runs it: a real subprocess, real photos, real models."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from catdog import models, training
from processes import catdog

VERBS = [
    [],
    ["data"],
    ["data", "prepare"],
    ["train"],
    ["train", "quick"],
    ["train", "pretrained"],
    ["experiment"],
    ["predict"],
]


@pytest.mark.parametrize("verb", VERBS, ids=lambda verb: " ".join(verb) or "catdog")
def test_every_verb_has_help(verb):
    result = catdog(*verb, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: catdog")
    assert len(result.stdout.splitlines()) > 4


def test_data_prepare_writes_the_lab_layout(ocp_lab, tmp_path):
    result = catdog("data", "prepare", "--source", str(ocp_lab), "--out", str(tmp_path / "data"), "--no-progress")
    assert result.returncode == 0, result.stderr
    # The lab's 100 photos hold two exact duplicate dogs: they are reported, not kept twice.
    assert "training   40 cats, 38 dogs" in result.stdout
    assert "validation 10 cats, 10 dogs" in result.stdout
    assert "2 duplicate" in result.stdout
    assert len(list((tmp_path / "data" / "training" / "dog").iterdir())) == 38


def test_data_source_comes_from_the_environment(ocp_lab, tmp_path):
    result = catdog(
        "data",
        "prepare",
        "--per-class",
        "4",
        "--no-progress",
        cwd=tmp_path,
        env={"CATDOG_DATA_SOURCE": str(ocp_lab), "CATDOG_DATA_DIR": ""},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "manifest.csv").is_file()


def test_train_quick_saves_model_history_and_curves(lab_data, tmp_path):
    out = tmp_path / "quick.keras"
    result = catdog("train", "quick", "--data", str(lab_data), "--epochs", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Trained the quick CNN" in result.stdout
    assert out.is_file() and out.with_suffix(".history.json").is_file()
    assert out.with_suffix(".history.png").read_bytes().startswith(b"\x89PNG")


def test_train_quick_from_a_source_samples_prepares_and_stops_at_its_time_budget(kaggle_dev, lab_data, tmp_path):
    """One command, like `train pretrained`: the photos it wants, trained for a time, not an epoch count."""
    out, budget = tmp_path / "quick.keras", 6.0
    result = catdog(
        "train",
        "quick",
        "--source",
        str(kaggle_dev),
        "--per-class",
        "40",
        "--seconds",
        str(budget),
        "--exclude-from",
        str(lab_data),
        "--out",
        str(out),
        "--no-progress",
        env={"CATDOG_DATA_DIR": str(tmp_path / "data"), "CATDOG_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    assert "training   32 cats, 32 dogs" in result.stdout and "validation 8 cats, 8 dogs" in result.stdout
    assert (tmp_path / "data" / "quick" / "manifest.csv").is_file()
    seconds = float(re.search(r"Trained the quick CNN in ([\d.]+) s", result.stdout).group(1))
    epochs = len(json.loads(out.with_suffix(".history.json").read_text())["loss"])
    # Stopped by the budget (after the batch that used it up, and that epoch's validation), not by an
    # epoch count. (How far past the budget depends on the machine's load: benchmarks time that.)
    assert seconds >= budget, result.stdout
    assert 1 <= epochs < training.BUDGET_MAX_EPOCHS
    # Within a budget the quick CNN takes the small input that measured best (more passes per second).
    assert models.input_size(models.load_model(out)) == training.BUDGET_IMAGE_SIZE


def test_train_pretrained_from_a_prepared_folder(kaggle_data, weights_dir, tmp_path):
    out = tmp_path / "pretrained.keras"
    result = catdog(
        "train",
        "pretrained",
        "--source",
        str(kaggle_data),
        "--out",
        str(out),
        "--no-progress",
        env={"CATDOG_WEIGHTS_DIR": str(weights_dir)},
    )
    assert result.returncode == 0, result.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["head"] == "trained" and card["validation_accuracy"] >= 0.9
    assert out.with_suffix(".history.png").is_file()


def test_train_pretrained_imagenet_head_with_no_data(weights_dir, tmp_path):
    out = tmp_path / "zero.keras"
    result = catdog(
        "train",
        "pretrained",
        "--head",
        "imagenet",
        "--out",
        str(out),
        env={"CATDOG_WEIGHTS_DIR": str(weights_dir), "CATDOG_DATA_SOURCE": ""},
    )
    assert result.returncode == 0, result.stderr
    assert "not scored" in result.stdout
    assert json.loads(out.with_suffix(".json").read_text())["images_used"] is None


@pytest.fixture
def photos(cat_photos, dog_photos, tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in cat_photos[-2:] + dog_photos[-2:]:
        shutil.copyfile(photo, folder / photo.name)
    (folder / "notes.jpg").write_text("not a photo")
    return folder


def test_predict_prints_both_verdicts_and_reports_bad_files(models_dir, photos):
    result = catdog("predict", "--models", str(models_dir), str(photos))
    assert result.returncode == 1  # one file could not be classified
    lines = result.stdout.splitlines()
    assert "quick" in lines[0] and "pretrained" in lines[0] and "agree" in lines[0]
    rows = [line for line in lines[2:] if "chanakya" in line]
    assert len(rows) == 4 and all(row.count("p_dog") == 2 for row in rows)
    assert any("notes.jpg" in line and "not-an-image" in line for line in lines)
    assert "1 file(s) could not be classified" in result.stderr


def test_predict_json_is_one_object_per_image(models_dir, photos):
    result = catdog("predict", "--json", "--models", str(models_dir), str(photos))
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 5
    good = [r for r in records if "error" not in r]
    assert len(good) == 4
    for record in good:
        assert set(record) == {"path", "quick", "pretrained"}
        for name in ("quick", "pretrained"):
            assert record[name]["label"] in ("cat", "dog") and 0 <= record[name]["p_dog"] <= 1
            assert record[name]["label"] == ("dog" if record[name]["p_dog"] >= 0.5 else "cat")
    # The pretrained model knows these photos' classes (they are named after them).
    for record in good:
        assert record["pretrained"]["label"] in Path(record["path"]).name
    bad = [r for r in records if "error" in r]
    assert bad[0]["path"].endswith("notes.jpg") and bad[0]["error"].startswith("not-an-image")


def test_predict_with_a_missing_model_names_the_file(tmp_path, photos):
    result = catdog("predict", "--models", str(tmp_path), str(photos))
    assert result.returncode == 2
    assert f"{tmp_path / 'quick.keras'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_is_a_clear_error(photos):
    result = catdog("predict", str(photos), env={"CATDOG_MAX_IMAGE_BYTES": "ten"})
    assert result.returncode == 2
    assert "CATDOG_MAX_IMAGE_BYTES='ten' is not a whole number" in result.stderr
