"""The pretrained model: an ImageNet backbone, its features computed once, a small head trained on them (or
its last blocks fine-tuned), the zero-shot model that uses ImageNet's own classes; each saved with its card."""

from __future__ import annotations

import platform
import time
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
from catdog.training import TrainResult, accuracy, save_history

HEAD_EPOCHS = 30
HEAD_BATCH_SIZE = 32
FEATURE_BATCH_SIZE = 8  # photos through the backbone at once: memory, not speed (predict.BATCH_SIZE)
# `train pretrained --fine-tune`: the backbone's last blocks (from Backbone.fine_tune_from: MobileNetV2's
# block 16 and its last 1x1 convolution, MobileNet v1's blocks 12 and 13) are trained with the head, at a
# learning rate small enough not to undo what ImageNet taught them.
FINE_TUNE_EPOCHS = 10
FINE_TUNE_LEARNING_RATE = 1e-4
FINE_TUNE_BATCH_SIZE = 32
FINE_TUNE_PATIENCE = 3


def feature_extractor(backbone: keras.Model) -> keras.Model:
    inputs, x = models.mobilenet_inputs(backbone.input_shape[1])
    return keras.Model(inputs, backbone(x, training=False), name="features")


def _counts(data_dir: Path) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        labels = [label for _, label in image_files(data_dir, split)]
        counts[split] = {name: labels.count(index) for index, name in enumerate(catdog.CLASS_NAMES)}
    return counts


def _card(
    model_path: Path,
    data_dir: Path | None,
    head: str,
    backbone: models.Backbone,
    weights: Path,
    val_accuracy: float | None,
) -> dict:
    manifest = data_dir / MANIFEST_NAME if data_dir else None
    return {
        "model": model_path.name,
        "backbone": backbone.describe(),
        "why_this_backbone": backbone.why,
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

    From ``first_tuned`` on, MobileNet is one chain of layers (v1 everywhere; V2 after its last residual
    add), so the upper part is its own layers applied in order to a new input.
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
    memory (MobileNetV2 at 288 px: 9x9x160 values a photo; v1: 15x15x384)."""
    chunks = [
        model.predict(images[start : start + 256], batch_size=FEATURE_BATCH_SIZE, verbose=0).astype(dtype)
        for start in tqdm(range(0, len(images), 256), desc="MobileNet", unit="chunk", disable=not progress)
    ]
    return np.concatenate(chunks)


def train_pretrained(
    data_dir: Path,
    out: Path,
    *,
    backbone: str = models.DEFAULT_BACKBONE,
    weights_dir: str | Path | None = None,
    epochs: int = HEAD_EPOCHS,
    seed: int = 1337,
    verbose: int = 2,
    progress: bool = True,
    fine_tune: bool = False,
) -> TrainResult:
    """MobileNet features computed once (frozen backbone), then a one-layer head trained on them.

    Training photos are also seen mirrored: twice the examples for one more pass of the backbone.
    ``fine_tune``: then the backbone's last blocks are trained too, at a small learning rate, on the
    frozen blocks' output computed once (so each epoch costs those blocks, not the whole network); batch
    normalisation keeps its ImageNet statistics, and the epoch with the lowest validation loss is kept.
    """
    keras.utils.set_random_seed(seed)
    kind = models.BACKBONES[backbone]
    weights = models.fetch_imagenet_weights(kind, False, weights_dir)
    backbone = models.build_backbone(kind, weights_dir)
    size = kind.image_size
    x_train, y_train = load_split(data_dir, "training", size, progress=progress)
    x_val, y_val = load_split(data_dir, "validation", size, progress=progress)
    started = time.perf_counter()
    if fine_tune:  # the frozen blocks' output, computed once, feeds the tuned blocks in every epoch
        lower, upper = split_backbone(backbone, kind.fine_tune_from)
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
    head_kind = "trained"
    if fine_tune:
        head_kind = f"trained, {kind.application}'s last blocks fine-tuned from {kind.fine_tune_from}"
    models.write_card(out, _card(out, data_dir, head_kind, kind, weights, val_accuracy))
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
        x_val, y_val = load_split(data_dir, "validation", models.IMAGENET_IMAGE_SIZE)
        val_accuracy = accuracy(model, x_val, y_val)
    models.save_model(model, out)
    models.write_card(out, _card(out, data_dir, "imagenet", models.mobilenet(alpha), weights, val_accuracy))
    return out, val_accuracy
