"""Training: the quick CNN (or the 2019 original) on a prepared data folder, and the pretrained head."""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from catdog.threads import start_tensorflow

# ruff: noqa: E402 - what follows imports TensorFlow, after start_tensorflow() sized its thread pools
start_tensorflow()  # pools sized to this container's CPUs before TensorFlow starts

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

import catdog
from catdog import models
from catdog.data import MANIFEST_NAME, SPLITS, image_files, load_split, read_manifest
from catdog.download import sha256_file
from catdog.labels import record_ranges

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
HEAD_EPOCHS = 30
HEAD_BATCH_SIZE = 32
FEATURE_BATCH_SIZE = 32
# `train pretrained --fine-tune`: MobileNet's last two depthwise blocks (from the padding before block 12,
# at 7x7) are trained with the head, at a learning rate small enough not to undo what ImageNet taught them.
FINE_TUNE_FROM = "conv_pad_12"
FINE_TUNE_EPOCHS = 10
FINE_TUNE_LEARNING_RATE = 1e-4
FINE_TUNE_BATCH_SIZE = 32
FINE_TUNE_PATIENCE = 3
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


def accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray, batch_size: int = 32) -> float:
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
        # Photos that came from Kafka (--source kafka:<topic>): exactly which records, as offset runs.
        "kafka_records": record_ranges([row["source"] for row in read_manifest(data_dir)])
        if manifest and manifest.exists()
        else {},
        "validation_accuracy": val_accuracy,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {
            "catdog": catdog.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
        },
    }


def split_backbone(backbone: keras.Model, first_tuned: str) -> tuple[keras.Model, keras.Model]:
    """MobileNet as two models sharing its layers: below ``first_tuned`` (frozen) and from it on (tuned).

    MobileNet is one chain of layers, so the upper part is its own layers applied in order to a new input.
    Training the upper part trains ``backbone``'s own layers: the assembled model carries the tuned weights.
    """
    names = [layer.name for layer in backbone.layers]
    if first_tuned not in names:
        raise ValueError(f"{backbone.name} has no layer {first_tuned!r}")
    index = names.index(first_tuned)
    lower = keras.Model(backbone.input, backbone.layers[index - 1].output, name="frozen_blocks")
    inputs = keras.Input(shape=lower.output.shape[1:], name="activations")
    x = inputs
    for layer in backbone.layers[index:]:
        x = layer(x)
    return lower, keras.Model(inputs, x, name="tuned_blocks")


def _activations(model: keras.Model, images: np.ndarray, progress: bool, dtype=np.float16) -> np.ndarray:
    """``model`` on ``images`` in chunks, kept as float16: the lower blocks' output for every photo fits in
    memory (15x15x384 values a photo), where float32 for 2000 photos would need 2.6 GB."""
    chunks = [
        model.predict(images[start : start + 256], batch_size=FEATURE_BATCH_SIZE, verbose=0).astype(dtype)
        for start in tqdm(range(0, len(images), 256), desc="MobileNet", unit="chunk", disable=not progress)
    ]
    return np.concatenate(chunks)


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
    fine_tune: bool = False,
) -> TrainResult:
    """MobileNet features computed once (frozen backbone), then a one-layer head trained on them.

    Training photos are also seen mirrored: twice the examples for one more pass of the backbone.
    ``fine_tune``: then MobileNet's last two blocks are trained too, at a small learning rate, on the
    frozen blocks' output computed once (so each epoch costs two blocks, not the whole network); batch
    normalisation keeps its ImageNet statistics, and the epoch with the lowest validation loss is kept.
    """
    keras.utils.set_random_seed(seed)
    weights = models.fetch_imagenet_weights(alpha, False, weights_dir)
    backbone = models.build_backbone(alpha, weights_dir)
    size = models.PRETRAINED_IMAGE_SIZE
    x_train, y_train = load_split(data_dir, "training", size, progress=progress)
    x_val, y_val = load_split(data_dir, "validation", size, progress=progress)
    started = time.perf_counter()
    if fine_tune:  # the frozen blocks' output, computed once, feeds the tuned blocks in every epoch
        lower, upper = split_backbone(backbone, FINE_TUNE_FROM)
        below = feature_extractor(lower)
        cached = np.concatenate(
            [_activations(below, x_train, progress), _activations(below, x_train[:, :, ::-1], progress)]
        )
        cached_val = _activations(below, x_val, progress)
        features_train = upper.predict(cached, batch_size=FEATURE_BATCH_SIZE, verbose=0)
        features_val = upper.predict(cached_val, batch_size=FEATURE_BATCH_SIZE, verbose=0)
    else:
        extract = feature_extractor(backbone)
        predict_verbose = 1 if progress else 0
        features_train = np.concatenate(
            [
                extract.predict(x_train, batch_size=FEATURE_BATCH_SIZE, verbose=predict_verbose),
                extract.predict(x_train[:, :, ::-1], batch_size=FEATURE_BATCH_SIZE, verbose=predict_verbose),
            ]
        )
        features_val = extract.predict(x_val, batch_size=FEATURE_BATCH_SIZE, verbose=predict_verbose)
    labels_train = np.concatenate([y_train, y_train])
    head = models.build_head(features_train.shape[1])
    fitted = head.fit(
        features_train,
        labels_train,
        batch_size=HEAD_BATCH_SIZE,
        epochs=epochs,
        validation_data=(features_val, y_val),
        shuffle=True,
        verbose=verbose,
    )
    history = fitted.history
    if fine_tune:
        tuned = fine_tune_blocks(upper, head, cached, labels_train, cached_val, y_val, seed=seed, verbose=verbose)
        del cached, cached_val
        history = {**history, **{f"fine_tune_{key}": values for key, values in tuned.items()}}
    seconds = time.perf_counter() - started
    model = models.assemble_pretrained(backbone, head)
    # Scored as saved: after fine-tuning, the whole model on the photos (the tuning ran on float16 inputs).
    val_accuracy = accuracy(model, x_val, y_val) if fine_tune else accuracy(head, features_val, y_val)
    models.save_model(model, out)
    save_history(out, history)
    head_kind = "trained, last two MobileNet blocks fine-tuned" if fine_tune else "trained"
    models.write_card(out, _card(out, data_dir, head_kind, alpha, weights, val_accuracy))
    return TrainResult(out, history, seconds, val_accuracy)


def fine_tune_blocks(
    upper: keras.Model,
    head: keras.Model,
    cached: np.ndarray,
    labels: np.ndarray,
    cached_val: np.ndarray,
    labels_val: np.ndarray,
    *,
    seed: int,
    verbose: int = 0,
) -> dict[str, list[float]]:
    """Train MobileNet's upper blocks with the head, from cached activations; keeps the best epoch."""
    for layer in upper.layers:
        # Batch normalisation keeps ImageNet's statistics: re-estimated from a few thousand photos in
        # small batches they would drift, and a frozen layer also runs in inference mode in Keras 3.
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    inputs = keras.Input(shape=cached.shape[1:], name="activations")
    model = keras.Model(inputs, head(upper(inputs, training=False)), name="fine_tune")
    model.compile(
        optimizer=keras.optimizers.Adam(FINE_TUNE_LEARNING_RATE), loss="binary_crossentropy", metrics=["accuracy"]
    )
    training_set = (
        tf.data.Dataset.from_tensor_slices((cached, labels))
        .shuffle(len(cached), seed=seed)
        .batch(FINE_TUNE_BATCH_SIZE)
        .map(lambda x, y: (tf.cast(x, tf.float32), y))
        .prefetch(tf.data.AUTOTUNE)
    )
    fitted = model.fit(
        training_set,
        epochs=FINE_TUNE_EPOCHS,
        validation_data=(cached_val.astype(np.float32), labels_val),
        verbose=verbose,
        callbacks=[keras.callbacks.EarlyStopping("val_loss", patience=FINE_TUNE_PATIENCE, restore_best_weights=True)],
    )
    for layer in upper.layers:
        layer.trainable = False
    return fitted.history


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
