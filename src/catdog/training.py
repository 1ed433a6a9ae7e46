"""Training: the quick CNN (or the 2019 original) on a prepared data folder, and the pretrained head."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

import catdog
from catdog import models
from catdog.data import MANIFEST_NAME, SPLITS, image_files, load_split
from catdog.download import sha256_file

QUICK_EPOCHS = 20
QUICK_BATCH_SIZE = 16
# Each quick epoch shows every training photo 4 times, each time augmented differently: 80 passes in all,
# with a quarter of Keras' per-epoch overhead (validation, callbacks), which dominates on 80 photos.
QUICK_REPEATS = 4
# With a time budget (`catdog train quick --source`), the most epochs: the budget ends training first.
BUDGET_MAX_EPOCHS = 1000
# `catdog train quick --source`: training stops after this many seconds, whatever the number of photos.
QUICK_BUDGET_SECONDS = 55.0
# The 2019 lab's settings for its network.
ORIGINAL_EPOCHS = 32
ORIGINAL_BATCH_SIZE = 8
HEAD_EPOCHS = 30
HEAD_BATCH_SIZE = 32
FEATURE_BATCH_SIZE = 32
ARCHITECTURES: dict[str, tuple[Callable[[], keras.Model], int, int, int, int]] = {
    # name: (builder, image size, default epochs, batch size, passes over the photos per epoch)
    "quick": (models.build_quick_cnn, models.QUICK_IMAGE_SIZE, QUICK_EPOCHS, QUICK_BATCH_SIZE, QUICK_REPEATS),
    "original": (models.build_original_cnn, models.ORIGINAL_IMAGE_SIZE, ORIGINAL_EPOCHS, ORIGINAL_BATCH_SIZE, 1),
}


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the batch that uses up ``seconds``: a budget instead of an epoch count, so
    any number of photos trains in the same wait (more photos: fewer passes over each)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.started = 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

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
    """Redraws the loss and accuracy curves in place after every epoch, so a notebook shows training live."""

    def __init__(self, title: str = "training") -> None:
        super().__init__()
        self.title = title
        self.history: dict[str, list[float]] = {}
        self._handle = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        from catdog import plots

        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        figure = plots.plot_history(self.history, f"{self.title}: epoch {epoch + 1}")
        if self._handle is None:
            self._handle = display(figure, display_id=True)
        else:
            self._handle.update(figure)
        plt.close(figure)


def history_path(model_path: Path) -> Path:
    return model_path.with_suffix(".history.json")


def save_history(model_path: Path, history: dict[str, list[float]]) -> Path:
    """The per-epoch curves as JSON, next to the model, so plots can be redrawn later."""
    path = history_path(model_path)
    path.write_text(json.dumps({key: [float(v) for v in values] for key, values in history.items()}, indent=1))
    return path


def accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray, batch_size: int = 32) -> float:
    p_dog = model.predict(images, batch_size=batch_size, verbose=0).reshape(-1)
    return float(np.mean((p_dog >= 0.5) == (labels >= 0.5)))


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
) -> TrainResult:
    """Train a from-scratch CNN on ``data_dir``'s training split, validating on its validation split.

    ``seconds``: a training time budget; then ``epochs`` is only a ceiling (default: until the budget).
    """
    builder, size, default_epochs, batch_size, repeats = ARCHITECTURES[arch]
    keras.utils.set_random_seed(seed)
    x_train, y_train = load_split(data_dir, "training", size)
    x_val, y_val = load_split(data_dir, "validation", size)
    if seconds is not None:
        callbacks = [*(callbacks or []), TimeBudget(seconds)]
        default_epochs = BUDGET_MAX_EPOCHS
        # Repeating within an epoch only pays on a few dozen photos (see QUICK_REPEATS).
        repeats = max(1, min(repeats, round(QUICK_REPEATS * 80 / max(1, len(x_train)))))
    training_set = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=seed)  # reshuffled on every pass
        .repeat(repeats)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    model = builder()
    started = time.perf_counter()
    fitted = model.fit(
        training_set,
        epochs=epochs or default_epochs,
        validation_data=(x_val, y_val),
        verbose=verbose,
        callbacks=callbacks,
    )
    seconds = time.perf_counter() - started
    models.save_model(model, out)
    save_history(out, fitted.history)
    return TrainResult(out, fitted.history, seconds, float(fitted.history["val_accuracy"][-1]), model)


def feature_extractor(backbone: keras.Model) -> keras.Model:
    inputs, x = models.mobilenet_inputs()
    return keras.Model(inputs, backbone(x, training=False), name="features")


def _counts(data_dir: Path) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        labels = [label for _, label in image_files(data_dir, split)]
        counts[split] = {name: labels.count(index) for index, name in enumerate(catdog.CLASS_NAMES)}
    return counts


def _card(
    model_path: Path, data_dir: Path | None, head: str, alpha: float, weights: Path, val_accuracy: float | None
) -> dict:
    manifest = data_dir / MANIFEST_NAME if data_dir else None
    return {
        "model": model_path.name,
        "backbone": f"keras.applications.MobileNet(alpha={alpha}, input {models.PRETRAINED_IMAGE_SIZE}px)",
        "head": head,
        "weights_file": weights.name,
        "weights_sha256": sha256_file(weights),
        "data_manifest_sha256": sha256_file(manifest) if manifest and manifest.exists() else None,
        "images_used": _counts(data_dir) if data_dir else None,
        "validation_accuracy": val_accuracy,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "catdog": catdog.__version__, "keras": keras.__version__, "python": platform.python_version(),
        },
    }


def train_pretrained(
    data_dir: Path,
    out: Path,
    *,
    alpha: float = models.MOBILENET_ALPHA,
    weights_dir: str | Path | None = None,
    epochs: int = HEAD_EPOCHS,
    seed: int = 1337,
    verbose: int = 2,
    progress: bool = True,
) -> TrainResult:
    """MobileNet features computed once (frozen backbone), then a one-layer head trained on them.

    Training photos are also seen mirrored: twice the examples for one more pass of the backbone.
    """
    keras.utils.set_random_seed(seed)
    weights = models.fetch_imagenet_weights(alpha, False, weights_dir)
    backbone = models.build_backbone(alpha, weights_dir)
    extract = feature_extractor(backbone)
    size = models.PRETRAINED_IMAGE_SIZE
    x_train, y_train = load_split(data_dir, "training", size, progress=progress)
    x_val, y_val = load_split(data_dir, "validation", size, progress=progress)
    started = time.perf_counter()
    predict_verbose = 1 if progress else 0
    features_train = np.concatenate([
        extract.predict(x_train, batch_size=FEATURE_BATCH_SIZE, verbose=predict_verbose),
        extract.predict(x_train[:, :, ::-1], batch_size=FEATURE_BATCH_SIZE, verbose=predict_verbose),
    ])
    labels_train = np.concatenate([y_train, y_train])
    features_val = extract.predict(x_val, batch_size=FEATURE_BATCH_SIZE, verbose=predict_verbose)
    head = models.build_head(features_train.shape[1])
    fitted = head.fit(
        features_train, labels_train,
        batch_size=HEAD_BATCH_SIZE, epochs=epochs,
        validation_data=(features_val, y_val), shuffle=True, verbose=verbose,
    )
    seconds = time.perf_counter() - started
    model = models.assemble_pretrained(backbone, head)
    val_accuracy = accuracy(head, features_val, y_val)
    models.save_model(model, out)
    save_history(out, fitted.history)
    models.write_card(out, _card(out, data_dir, "trained", alpha, weights, val_accuracy))
    return TrainResult(out, fitted.history, seconds, val_accuracy)


def build_zero_shot_model(
    out: Path,
    *,
    data_dir: Path | None = None,
    alpha: float = models.MOBILENET_ALPHA,
    weights_dir: str | Path | None = None,
) -> tuple[Path, float | None]:
    """Save the ImageNet head read as cat vs dog; scored on ``data_dir``'s validation split if given."""
    weights = models.fetch_imagenet_weights(alpha, True, weights_dir)
    model = models.build_zero_shot(alpha, weights_dir)
    val_accuracy = None
    if data_dir is not None:
        x_val, y_val = load_split(data_dir, "validation", models.PRETRAINED_IMAGE_SIZE)
        val_accuracy = accuracy(model, x_val, y_val)
    models.save_model(model, out)
    models.write_card(out, _card(out, data_dir, "imagenet", alpha, weights, val_accuracy))
    return out, val_accuracy
