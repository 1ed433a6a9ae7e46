"""Classification with both models side by side: the quick CNN and the pretrained MobileNet."""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from catdog.threads import start_tensorflow

# ruff: noqa: E402 - what follows imports TensorFlow, after start_tensorflow() sized its thread pools
start_tensorflow()  # pools sized to this container's CPUs before TensorFlow starts

import keras
import numpy as np
import tensorflow as tf

from catdog import CLASS_NAMES, models
from catdog.data import expand_paths
from catdog.images import DecodedImage, ImageError, decode_image

MODEL_NAMES = ("quick", "pretrained")
# Photos a model sees at once when a notebook or `catdog predict` scores a folder: MobileNetV2 at 288 px
# holds ~25 MB of activations a photo, and TensorFlow keeps its high-water mark (a kernel that scored in
# batches of 32 kept 800 MiB more, in 8 about 200, for 5 % more time; issue 43).
BATCH_SIZE = 8


@dataclass(frozen=True)
class Verdict:
    label: str
    p_dog: float

    @classmethod
    def from_p_dog(cls, p_dog: float) -> Verdict:
        return cls(CLASS_NAMES[int(p_dog >= 0.5)], float(p_dog))


def model_paths(models_dir: Path) -> dict[str, Path]:
    return {name: Path(models_dir) / f"{name}.keras" for name in MODEL_NAMES}


def load_models(models_dir: Path) -> dict[str, keras.Model]:
    """Both models from ``models_dir`` (``quick.keras`` and ``pretrained.keras``), loaded safely."""
    return {name: models.load_model(path) for name, path in model_paths(models_dir).items()}


def largest_input(loaded: dict[str, keras.Model]) -> int:
    return max(models.input_size(model) for model in loaded.values())


_GRAPHS: weakref.WeakKeyDictionary[keras.Model, dict[int, tf.types.experimental.PolymorphicFunction]] = (
    weakref.WeakKeyDictionary()
)


def predict_fn(model: keras.Model, input_size: int | None = None):
    """The model as one traced graph for uint8 batches of any size.

    Measured on 2 cores against calling the model eagerly on batches of varying size: ~1.8x the images
    per second and ~700 MB less memory (eager mode keeps per-shape kernels and caches around).
    ``input_size``: the side of the pictures it will be given, when larger than the model's own. The graph
    then shrinks them itself (bilinear, antialiased, as PIL's resize), batched in TensorFlow's threads:
    each photo is resized once, for the largest model, instead of once per model.
    """
    size = models.input_size(model)
    given = input_size or size
    graphs = _GRAPHS.setdefault(model, {})
    if given not in graphs:
        ref = weakref.ref(model)

        def run(pixels):
            if given != size:
                pixels = tf.image.resize(pixels, (size, size), method="bilinear", antialias=True)
            return ref()(pixels, training=False)

        graphs[given] = tf.function(run, input_signature=[tf.TensorSpec([None, given, given, 3], tf.uint8)])
    return graphs[given]


def classify_timed(
    loaded: dict[str, keras.Model], images: list[DecodedImage]
) -> tuple[list[dict[str, Verdict]], dict[str, float]]:
    """One batched call per model on the same pixels, resized once to the largest input; also the seconds
    each model took."""
    verdicts: list[dict[str, Verdict]] = [{} for _ in images]
    seconds: dict[str, float] = {}
    if not images:
        return verdicts, seconds
    size = largest_input(loaded)
    batch = np.stack([image.to_array(size) for image in images])
    for name, model in loaded.items():
        started = time.perf_counter()
        p_dog = predict_fn(model, size)(batch).numpy().reshape(-1)
        seconds[name] = time.perf_counter() - started
        for verdict, p in zip(verdicts, p_dog, strict=True):
            verdict[name] = Verdict.from_p_dog(p)
    return verdicts, seconds


def classify(loaded: dict[str, keras.Model], images: list[DecodedImage]) -> list[dict[str, Verdict]]:
    """Both (or all given) models on a batch of decoded images."""
    return classify_timed(loaded, images)[0]


@dataclass(frozen=True)
class PathResult:
    path: Path
    verdicts: dict[str, Verdict] | None = None
    error: str | None = None


def classify_paths(
    paths: Iterable[Path], loaded: dict[str, keras.Model], *, max_bytes: int, max_pixels: int
) -> Iterator[PathResult]:
    """Classify files in batches, in the order given; an unusable file yields its reason, never stops the rest."""
    target = largest_input(loaded)
    pending: list[tuple[Path, DecodedImage | str]] = []

    def flush() -> Iterator[PathResult]:
        decoded = [item for _, item in pending if isinstance(item, DecodedImage)]
        verdicts = iter(classify(loaded, decoded))
        for path, item in pending:
            yield (
                PathResult(path, verdicts=next(verdicts))
                if isinstance(item, DecodedImage)
                else PathResult(path, error=item)
            )
        pending.clear()

    for path in expand_paths(paths):
        try:
            data = path.read_bytes()
            pending.append((path, decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels, target_size=target)))
        except ImageError as error:
            pending.append((path, f"{error.reason}: {error}"))
        except OSError as error:
            pending.append((path, f"unreadable: {error.strerror or error}"))
        if len(pending) == BATCH_SIZE:
            yield from flush()
    yield from flush()


@dataclass(frozen=True)
class Evaluation:
    """Every photo of some splits of a prepared folder, its true class and each model's p(dog)."""

    paths: list[Path]
    labels: np.ndarray  # 0 = cat, 1 = dog
    p_dog: dict[str, np.ndarray]

    def predicted(self, model: str) -> np.ndarray:
        return (self.p_dog[model] >= 0.5).astype(int)

    def verdicts(self, index: int) -> dict[str, Verdict]:
        return {name: Verdict.from_p_dog(values[index]) for name, values in self.p_dog.items()}


def evaluate_folder(
    loaded: dict[str, keras.Model], data_dir: Path, splits: tuple[str, ...] = ("validation",)
) -> Evaluation:
    """Each model on every photo of ``splits``, prepared as the service prepares them (decoded and resized
    once, to the largest input), so a photo gets the same verdict here as from the service."""
    from catdog.data import image_files, load_arrays

    files = [item for split in splits for item in image_files(data_dir, split)]
    paths = [path for path, _ in files]
    size = largest_input(loaded)
    images = load_arrays(paths, size)
    p_dog = {}
    for name, model in loaded.items():
        run = predict_fn(model, size)
        p_dog[name] = np.concatenate(
            [run(images[start : start + BATCH_SIZE]).numpy().reshape(-1) for start in range(0, len(images), BATCH_SIZE)]
        )
    return Evaluation(paths, np.array([label for _, label in files]), p_dog)


def scores(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Accuracy, and precision, recall and F1 for "dog" (the positive class)."""
    labels, predicted = np.asarray(labels).astype(int), np.asarray(predicted).astype(int)
    true_positive = int(np.sum((predicted == 1) & (labels == 1)))
    precision = true_positive / max(1, int(np.sum(predicted == 1)))
    recall = true_positive / max(1, int(np.sum(labels == 1)))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": float(np.mean(labels == predicted)), "precision": precision, "recall": recall, "f1": f1}
