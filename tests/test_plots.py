"""Figures: curves show both splits per metric; the confusion matrix counts true against predicted."""

from __future__ import annotations

import numpy as np

from catdog import plots


def test_history_plot_has_training_and_validation_curves(tmp_path):
    history = {"loss": [0.9, 0.6], "accuracy": [0.5, 0.7], "val_loss": [0.7, 0.65], "val_accuracy": [0.5, 0.6]}
    figure = plots.plot_history(history)
    loss_axis, accuracy_axis = figure.axes
    assert [line.get_label() for line in loss_axis.lines] == ["training", "validation"]
    np.testing.assert_allclose(accuracy_axis.lines[1].get_ydata(), [0.5, 0.6])
    path = plots.save_figure(figure, tmp_path / "curves.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_confusion_matrix_rows_are_true_classes():
    matrix = plots.confusion_matrix([0, 0, 0, 1, 1], [0, 1, 1, 1, 1])
    assert matrix.tolist() == [[1, 2], [0, 2]]
    axis = plots.plot_confusion(matrix, "quick")
    assert sorted(text.get_text() for text in axis.texts) == ["0", "1", "2", "2"]


def test_image_grid_captions_every_photo():
    images = [np.zeros((8, 8, 3), np.uint8)] * 3
    figure = plots.plot_image_grid(images, ["cat", "dog", "cat"], columns=2)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert titles == ["cat", "dog", "cat"] and len(figure.axes) == 4


def test_verdict_grid_colours_right_and_wrong():
    from catdog.predict import Verdict

    images = [np.zeros((8, 8, 3), np.uint8)] * 2
    verdicts = [
        {"quick": Verdict.from_p_dog(0.1), "pretrained": Verdict.from_p_dog(0.2)},  # both say cat
        {"quick": Verdict.from_p_dog(0.9), "pretrained": Verdict.from_p_dog(0.1)},  # they disagree
    ]
    figure = plots.plot_verdicts(images, verdicts, truth=[0, 0])
    titles = [axis.title for axis in figure.axes[:2]]
    assert titles[0].get_text() == "quick: cat (0.10)\npretrained: cat (0.20)"
    assert titles[0].get_color() == "tab:green" and titles[1].get_color() == "tab:red"


def test_drift_plot_draws_each_model_and_skips_empty_windows():
    figure = plots.plot_drift({"quick": [0.5, None, 0.2], "pretrained": [0.5, 0.4, 0.0]}, ["balanced"] * 2 + ["cats"])
    lines = {line.get_label(): line for line in figure.axes[0].lines if not line.get_label().startswith("_")}
    assert list(lines["quick"].get_xdata()) == [1, 3]
    assert list(lines["pretrained"].get_ydata()) == [0.5, 0.4, 0.0]
