"""Training the quick CNN (or the 2019 original) on a prepared data folder: within an epoch count or a time
budget, with live curves in a notebook; the pretrained model is :mod:`catdog.transfer`'s."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from catdog.threads import start_tensorflow

# ruff: noqa: E402 - what follows imports TensorFlow, after start_tensorflow() sized its thread pools
start_tensorflow()  # pools sized to this container's CPUs before TensorFlow starts

import keras
import numpy as np
import tensorflow as tf

from catdog import models
from catdog.data import load_split

QUICK_EPOCHS = 20
QUICK_BATCH_SIZE = 16
# Each quick epoch shows every training photo 4 times, each time augmented differently: 80 passes in all,
# with a quarter of Keras' per-epoch overhead (validation, callbacks), which dominates on 80 photos.
QUICK_REPEATS = 4
# With a time budget (`catdog train quick --source`), the most epochs: the budget ends training first.
BUDGET_MAX_EPOCHS = 1000
# `catdog train quick --source`: training stops after this many seconds, whatever the number of photos.
QUICK_BUDGET_SECONDS = 55.0
# Within a time budget the quick CNN trains on small inputs, with batch normalisation, in larger batches,
# with a learning rate that starts high and anneals to zero by the end of the budget: the best of the
# settings measured in RESULTS.md ("Quick model"). At 128 px it passes over 1500 photos 14 times in 55 s,
# at 40 px about 60 times.
BUDGET_IMAGE_SIZE = 40
BUDGET_BATCH_NORM = True
BUDGET_BATCH_SIZE = 64
BUDGET_LEARNING_RATE = 3e-3
# The 2019 lab's settings for its network.
ORIGINAL_EPOCHS = 32
ORIGINAL_BATCH_SIZE = 8
ARCHITECTURES: dict[str, tuple[Callable[[], keras.Model], int, int, int, int]] = {
    # name: (builder, image size, default epochs, batch size, passes over the photos per epoch)
    "quick": (models.build_quick_cnn, models.QUICK_IMAGE_SIZE, QUICK_EPOCHS, QUICK_BATCH_SIZE, QUICK_REPEATS),
    "original": (models.build_original_cnn, models.ORIGINAL_IMAGE_SIZE, ORIGINAL_EPOCHS, ORIGINAL_BATCH_SIZE, 1),
}


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the batch that uses up ``seconds``: a budget instead of an epoch count, so
    any number of photos trains in the same wait (more photos: fewer passes over each).

    With ``learning_rate``, the rate follows a cosine from it to zero over the budget's seconds (not
    epochs, whose number is not known in advance): big steps first, fine ones at the end.
    """

    def __init__(self, seconds: float, learning_rate: float | None = None) -> None:
        super().__init__()
        self.seconds = seconds
        self.learning_rate = learning_rate
        self.started = 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.learning_rate is not None:
            done = min(1.0, (time.perf_counter() - self.started) / self.seconds)
            self.model.optimizer.learning_rate.assign(self.learning_rate * 0.5 * (1 + math.cos(math.pi * done)))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if time.perf_counter() - self.started >= self.seconds:
            self.model.stop_training = True


@dataclass
class TrainResult:
    model_path: Path
    history: dict[str, list[float]]
    seconds: float
    validation_accuracy: float
    model: keras.Model | None = None  # the trained model still in memory (what was saved to model_path)


class LiveCurves(keras.callbacks.Callback):
    """Redraws the loss and accuracy curves in place as training goes, so a notebook shows training live.

    At most once every REDRAW_SECONDS (and after the last epoch): a redraw costs about a second in a
    notebook, which would otherwise double a run of short epochs and count against its time."""

    REDRAW_SECONDS = 3.0

    def __init__(self, title: str = "training") -> None:
        super().__init__()
        self.title = title
        self.history: dict[str, list[float]] = {}
        self._handle = None
        self._drawn_at = 0.0
        self._epoch = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self._epoch = epoch + 1
        if time.perf_counter() - self._drawn_at >= self.REDRAW_SECONDS:
            self._draw()

    def on_train_end(self, logs: dict | None = None) -> None:
        self._draw()

    def _draw(self) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        from catdog import plots

        if not self.history:
            return
        figure = plots.plot_history(self.history, f"{self.title}: epoch {self._epoch}")
        if self._handle is None:
            self._handle = display(figure, display_id=True)
        else:
            self._handle.update(figure)
        plt.close(figure)
        self._drawn_at = time.perf_counter()


def history_path(model_path: Path) -> Path:
    return model_path.with_suffix(".history.json")


def save_history(model_path: Path, history: dict[str, list[float]]) -> Path:
    """The per-epoch curves as JSON, next to the model, so plots can be redrawn later."""
    path = history_path(model_path)
    path.write_text(json.dumps({key: [float(v) for v in values] for key, values in history.items()}, indent=1))
    return path


def accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray, batch_size: int = 8) -> float:
    """The share of photos on the right side of p(dog) = 0.5; in small batches, as predict.BATCH_SIZE says why."""
    p_dog = model.predict(images, batch_size=batch_size, verbose=0).reshape(-1)
    return float(np.mean((p_dog >= 0.5) == (labels >= 0.5)))


def fit_cnn(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    arch: str = "quick",
    epochs: int | None = None,
    seconds: float | None = None,
    seed: int = 1337,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    verbose: int = 0,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> tuple[keras.Model, dict[str, list[float]], float]:
    """Build and train a from-scratch CNN on images already decoded at the size it takes.

    The model's input size is the images' size. ``seconds``: a time budget; then ``epochs`` is only a
    ceiling, and the quick CNN trains with the BUDGET_* settings. Returns the model, its history and the
    seconds ``fit`` took. Shared by :func:`train_cnn` and the experiment grid: both train the same way.
    """
    builder, _, default_epochs, batch_size, repeats = ARCHITECTURES[arch]
    keras.utils.set_random_seed(seed)
    callbacks = list(callbacks or [])
    tuned = seconds is not None and arch == "quick"  # the settings measured best for a time budget
    if seconds is not None:
        callbacks.append(TimeBudget(seconds, BUDGET_LEARNING_RATE if tuned else None))
        default_epochs, batch_size = BUDGET_MAX_EPOCHS, BUDGET_BATCH_SIZE if tuned else batch_size
        # Repeating within an epoch only pays on a few dozen photos (see QUICK_REPEATS).
        repeats = max(1, min(repeats, round(QUICK_REPEATS * 80 / max(1, len(images)))))
    training_set = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(len(images), seed=seed)  # reshuffled on every pass
        .repeat(repeats)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    if tuned:
        model = models.build_quick_cnn(images.shape[1], batch_norm=BUDGET_BATCH_NORM)
    else:
        model = builder(images.shape[1])
    started = time.perf_counter()
    fitted = model.fit(
        training_set, epochs=epochs or default_epochs, validation_data=validation, verbose=verbose, callbacks=callbacks
    )
    return model, fitted.history, time.perf_counter() - started


def train_cnn(
    data_dir: Path,
    out: Path,
    *,
    arch: str = "quick",
    epochs: int | None = None,
    seed: int = 1337,
    verbose: int = 2,
    callbacks: list[keras.callbacks.Callback] | None = None,
    seconds: float | None = None,
    image_size: int | None = None,
) -> TrainResult:
    """Train a from-scratch CNN on ``data_dir``'s training split, validating on its validation split.

    ``seconds``: a training time budget (see :func:`fit_cnn`). ``image_size``: the model's input size
    (default: the architecture's own; for the quick CNN within a budget, BUDGET_IMAGE_SIZE).
    """
    size = image_size or (BUDGET_IMAGE_SIZE if seconds is not None and arch == "quick" else ARCHITECTURES[arch][1])
    x_train, y_train = load_split(data_dir, "training", size)
    validation = load_split(data_dir, "validation", size)
    model, history, fit_seconds = fit_cnn(
        x_train,
        y_train,
        arch=arch,
        epochs=epochs,
        seconds=seconds,
        seed=seed,
        validation=validation,
        verbose=verbose,
        callbacks=callbacks,
    )
    models.save_model(model, out)
    save_history(out, history)
    return TrainResult(out, history, fit_seconds, float(history["val_accuracy"][-1]), model)
