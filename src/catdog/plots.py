"""Figures a learner looks at: training curves, image grids with both verdicts, confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from catdog import CLASS_NAMES


def plot_history(history: dict[str, Sequence[float]], title: str = "training") -> plt.Figure:
    """Loss and accuracy per epoch, training against validation: the gap between them is overfitting."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.plot(epochs, history[metric], "o-", markersize=3, label="training", color="tab:blue")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], "o-", markersize=3, label="validation", color="tab:orange")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    axes[1].set_ylim(0, 1.02)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def save_figure(figure: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def confusion_matrix(labels: Sequence[int], predicted: Sequence[int]) -> np.ndarray:
    """Rows: true class, columns: predicted class (cat, dog)."""
    matrix = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)), dtype=int)
    for true, guess in zip(labels, predicted):
        matrix[int(true), int(guess)] += 1
    return matrix


def plot_confusion(matrix: np.ndarray, title: str, axis: plt.Axes | None = None) -> plt.Axes:
    if axis is None:
        _, axis = plt.subplots(figsize=(3.6, 3.2))
    axis.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        axis.text(column, row, str(count), ha="center", va="center", color=color, fontsize=13)
    axis.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    axis.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    return axis


def plot_image_grid(
    images: Sequence[np.ndarray], captions: Sequence[str], *, columns: int = 5, colors: Sequence[str] | None = None
) -> plt.Figure:
    """Photos in a grid, each with its caption (e.g. both models' verdicts), colored when given."""
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 3.1 * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index])
            axis.set_title(captions[index], fontsize=9, color=(colors[index] if colors else "black"))
    figure.tight_layout()
    return figure


def verdict_caption(verdicts: dict) -> str:
    """One line per model: 'quick: cat (p_dog 0.12)'."""
    return "\n".join(f"{name}: {v.label} ({v.p_dog:.2f})" for name, v in verdicts.items())


def plot_verdicts(
    images: Sequence[np.ndarray], verdicts: Sequence[dict], truth: Sequence[int] | None = None, columns: int = 5
) -> plt.Figure:
    """Photos with both models' verdicts; with the truth known, green where both are right, red otherwise."""
    captions = [verdict_caption(v) for v in verdicts]
    colors = None
    if truth is not None:
        colors = [
            "tab:green" if all(x.label == CLASS_NAMES[t] for x in v.values()) else "tab:red"
            for v, t in zip(verdicts, truth)
        ]
    return plot_image_grid(images, captions, columns=columns, colors=colors)


def plot_results(
    images: Sequence[np.ndarray], results: Sequence[dict | None], truth: Sequence[str], columns: int = 5
) -> plt.Figure:
    """Photos with the classifier service's verdicts (results from the predictions topic) and what each
    really is: red where the pretrained model got it wrong, the photos the room's labels will teach it."""
    captions, colors = [], []
    for result, label in zip(results, truth):
        if result is None:
            captions.append(f"no result yet\nreally: {label}")
            colors.append("tab:gray")
            continue
        said = "\n".join(
            f"{name}: {result[name]['label']} ({result[name]['p_dog']:.2f})" for name in ("quick", "pretrained")
        )
        captions.append(f"{said}\nreally: {label}")
        colors.append("tab:green" if result["pretrained"]["label"] == label else "tab:red")
    return plot_image_grid(images, captions, columns=columns, colors=colors)


def show_received(received: Sequence, loaded: dict, waited: float) -> plt.Figure | None:
    """Images read from a topic (``photos.fetch_images``) with both models' verdicts, or why one could
    not be classified; says so when nothing arrived instead of showing nothing."""
    from catdog.predict import classify, largest_input

    if not received:
        print(
            f"No new image arrived within {waited:g} s. Send one (the cell above, or `catdog send PHOTO`) "
            "and run this cell again."
        )
        return None
    for item in received:
        print(
            f"{item.filename} from {item.topic}[{item.partition}]@{item.offset}"
            + (f": not classified, {item.error.reason} ({item.error})" if item.error else "")
        )
    usable = [item.image for item in received if item.image is not None]
    if not usable:
        return None
    return plot_verdicts(
        [image.to_array(largest_input(loaded)) for image in usable], classify(loaded, usable), columns=len(usable)
    )


def plot_confusions(matrices: dict[str, np.ndarray]) -> plt.Figure:
    """Confusion matrices side by side, one per model."""
    figure, axes = plt.subplots(1, len(matrices), figsize=(4 * len(matrices), 3.6), squeeze=False)
    for axis, (name, matrix) in zip(axes[0], matrices.items()):
        plot_confusion(matrix, name, axis)
    figure.tight_layout()
    return figure


def plot_drift(windows: dict[str, Sequence[float | None]], phases: Sequence[str]) -> plt.Figure:
    """Mean p(dog) per window of images for each model, with the phase of the stream shaded behind."""
    figure, axis = plt.subplots(figsize=(9, 3.8))
    shades = {}
    for index, phase in enumerate(phases):
        color = shades.setdefault(phase, f"C{len(shades) + 2}")
        axis.axvspan(
            index + 0.5, index + 1.5, color=color, alpha=0.12, label=phase if index == phases.index(phase) else None
        )
    for name, values in windows.items():
        points = [(index + 1, value) for index, value in enumerate(values) if value is not None]
        axis.plot([x for x, _ in points], [y for _, y in points], "o-", label=name)
    axis.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("window of images, in order sent")
    axis.set_ylabel("mean p(dog)")
    axis.set_title("prediction drift: mean p(dog) per window")
    axis.legend(loc="upper right", fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def plot_experiments(summary: Sequence[dict]) -> plt.Figure:
    """The grid at a glance. Left, the learning curve: unseen accuracy against training photos. Right, the
    cost curve: the same against training seconds. Bars: the spread over seeds; dashed: a coin toss."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    sizes = sorted({row["image_size"] for row in summary})
    budgets = sorted({row["seconds"] for row in summary})
    counts = sorted({row["photos"] for row in summary})
    colors = dict(zip(sizes, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")))
    styles = ("-", "--", ":", "-.")
    for size in sizes:
        for style, budget in zip(styles, budgets):
            points = sorted(
                (r for r in summary if r["image_size"] == size and r["seconds"] == budget), key=lambda r: r["photos"]
            )
            left.errorbar(
                [r["photos"] for r in points],
                [r["accuracy"] for r in points],
                yerr=[r["spread"] for r in points],
                fmt="o" + style,
                color=colors[size],
                capsize=3,
                label=f"{size} px, {budget:g} s",
            )
        for marker, count in zip("os^Dv", counts):
            points = sorted(
                (r for r in summary if r["image_size"] == size and r["photos"] == count), key=lambda r: r["fit_seconds"]
            )
            right.errorbar(
                [r["fit_seconds"] for r in points],
                [r["accuracy"] for r in points],
                yerr=[r["spread"] for r in points],
                fmt=marker + "-",
                color=colors[size],
                capsize=3,
                alpha=0.4 + 0.6 * (counts.index(count) + 1) / len(counts),
                label=f"{count} photos, {size} px",
            )
    left.set_xscale("log")
    left.set_xticks(counts, [str(c) for c in counts])
    left.minorticks_off()
    left.set_xlabel("training photos")
    left.set_ylabel("accuracy on unseen photos")
    left.set_title("learning curve: more photos")
    right.set_xlabel("training seconds")
    right.set_title("cost curve: more seconds")
    for axis in (left, right):
        axis.axhline(0.5, color="grey", linestyle="--", linewidth=1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure
