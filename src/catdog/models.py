"""The networks: our quick CNN, the 2019 lab's original CNN, and MobileNet with a cat/dog head.

Every model takes raw RGB pixels (0..255, the decoder's output) and returns one sigmoid: p(dog). Each
model carries its own rescaling, so a caller never needs to know how a model was trained.
"""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from catdog.threads import start_tensorflow

# ruff: noqa: E402 - what follows imports TensorFlow, after start_tensorflow() sized its thread pools
start_tensorflow()  # pools sized to this container's CPUs before TensorFlow starts

import keras
from keras import layers

from catdog import CatdogError
from catdog.config import MOBILENET_V2_WEIGHTS_URL, MOBILENET_WEIGHTS_URL

# A model file's version and card: with the versions they name (catdog.registry, which needs no Keras).
from catdog.registry import card_path, model_version  # noqa: F401 - re-exported: callers read a model's card from here

QUICK_IMAGE_SIZE = 128
ORIGINAL_IMAGE_SIZE = 200
IMAGENET_IMAGE_SIZE = 224  # the size the ImageNet weights were trained at, and the zero-shot model's input
# MobileNetV2 sees the photo at 288 px: its convolutions take any size, and an animal 29 % larger in pixels
# gives features that separate cats from dogs better (benchmarks/backbone_sizes.py: about half the misses).
MOBILENET_V2_IMAGE_SIZE = 288
MOBILENET_ALPHA = 0.75
# The 2019 lab's zoom augmentation (ImageDataGenerator's zoom_range=0.1: each axis from 0.9 to 1.1).
ORIGINAL_ZOOM = (-0.1, 0.1)
# ImageNet classes 151..268 are dog breeds and 281..285 domestic cats (tabby, tiger cat, Persian,
# Siamese, Egyptian cat); the zero-shot head compares the probability mass of the two groups.
IMAGENET_DOG_CLASSES = (151, 269)
IMAGENET_CAT_CLASSES = (281, 286)


class ModelFileError(CatdogError):
    """A model file is missing, damaged, unsafe or not a catdog model; the message names the file."""


def build_quick_cnn(image_size: int = QUICK_IMAGE_SIZE, *, batch_norm: bool = False) -> keras.Model:
    """Small and fast: a strided first convolution, three conv + pool stages, global pooling.

    Augmentation lives in the model (active only in training) so 80 photos look like many more; global
    average pooling instead of big dense layers keeps it to 98k weights, which 80 photos can fit.
    ``batch_norm``: each convolution's output normalised, as the time-budgeted training uses it (see
    ``training.BUDGET_*``): on 1500 photos in a minute, normalised layers learn faster.
    """
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.RandomFlip("horizontal")(x)
    x = layers.RandomRotation(0.1)(x)
    x = layers.RandomZoom(0.15)(x)
    for index, filters in enumerate((16, 32, 64, 128)):
        x = layers.Conv2D(
            filters,
            3,
            strides=2 if index == 0 else 1,
            padding="same",
            activation=None if batch_norm else "relu",
            use_bias=not batch_norm,
        )(x)
        if batch_norm:
            # momentum 0.9: the moving statistics settle within a few dozen steps (a 5 s budget is ~50);
            # with Keras' 0.99 a short run predicts one class for every photo (measured: 0.500).
            x = layers.Activation("relu")(layers.BatchNormalization(momentum=0.9)(x))
        if index > 0:
            x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_dog")(x)
    model = keras.Model(inputs, outputs, name="quick_cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def build_original_cnn(image_size: int = ORIGINAL_IMAGE_SIZE) -> keras.Model:
    """The 2019 lab's network (gsurma's "model 5") with its 2019 training: the baseline the quick CNN must beat.

    The 2019 notebook fed it through ``ImageDataGenerator(rescale=1/255, shear_range=0.1, zoom_range=0.1,
    horizontal_flip=True)``; these layers do the same inside the model, active only in training.
    zoom_range scales each axis apart. shear_range is in degrees there: 0.1 degrees moves the farthest
    pixel of a 200 px image by 0.35 px, so it is left out (Keras 3.15's RandomShear also cannot be
    loaded back from a saved model with a range that small).
    """
    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.RandomZoom(height_factor=ORIGINAL_ZOOM, width_factor=ORIGINAL_ZOOM, fill_mode="nearest")(x)
    x = layers.RandomFlip("horizontal")(x)
    for filters in (32, 64, 128, 256):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    for _ in range(2):
        x = layers.Dense(256, activation="relu")(x)
        x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="p_dog")(x)
    model = keras.Model(inputs, outputs, name="original_cnn")
    model.compile(optimizer=keras.optimizers.RMSprop(1e-4), loss="binary_crossentropy", metrics=["accuracy"])
    return model


@dataclass(frozen=True)
class Backbone:
    """An ImageNet network the pretrained model stands on: Keras' constructor for it, the file names and the
    official URL of its weights (Keras' own, so a copy in ``$KERAS_HOME/models/`` loads with no download),
    the first layer of its last blocks (fine-tuning trains those) and the photo's size it looks at."""

    name: str
    application: str  # the keras.applications constructor
    alpha: float  # width multiplier
    url: str
    fine_tune_from: str
    image_size: int = IMAGENET_IMAGE_SIZE
    why: str = ""  # one line for the model card: why a lab would stand its head on this network

    def weights_file(self, include_top: bool) -> str:
        """The file name Keras uses for these ImageNet weights (trained at 224 px, loaded at any size)."""
        top = "" if include_top else "_no_top"
        if self.application == "MobileNetV2":
            return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{self.alpha:.1f}_{IMAGENET_IMAGE_SIZE}{top}.h5"
        alpha = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}[self.alpha]
        return f"mobilenet_{alpha}_{IMAGENET_IMAGE_SIZE}_tf{top}.h5"

    def describe(self) -> str:
        return f"keras.applications.{self.application}(alpha={self.alpha}, input {self.image_size}px)"


def mobilenet(alpha: float = MOBILENET_ALPHA) -> Backbone:
    """MobileNet v1 at width ``alpha`` (2019's backbone; 0.25 for quick tests; the zero-shot model's)."""
    why = "2019's backbone: 2.6 times cheaper a photo than MobileNetV2 at 288 px, less often right (0.975 to 0.989)"
    return Backbone("mobilenet", "MobileNet", alpha, MOBILENET_WEIGHTS_URL, "conv_pad_12", why=why)


BACKBONES = {
    # MobileNetV2 1.0 at 288 px, the default since issue 43 (benchmarks/RESULTS.md: backbone_sizes.py chose it).
    # Fine-tuning trains its last block (the first after the last residual add: one chain from there).
    "mobilenet_v2": Backbone(
        "mobilenet_v2",
        "MobileNetV2",
        1.0,
        MOBILENET_V2_WEIGHTS_URL,
        "block_16_expand",
        MOBILENET_V2_IMAGE_SIZE,
        "the default: right on 0.989 of catdog's 500 reserved Kaggle photos (three seeds, none below 0.988), "
        "where 2019's MobileNet v1 0.75 at 224 px is right on 0.975, for 2.6 times its work a photo "
        "(benchmarks/RESULTS.md)",
    ),
    "mobilenet": mobilenet(),  # 2019's lab's backbone, MobileNet v1 (0.75 wide), at 224 px
}
DEFAULT_BACKBONE = "mobilenet_v2"
PRETRAINED_IMAGE_SIZE = BACKBONES[DEFAULT_BACKBONE].image_size


def imagenet_weights_file(alpha: float, include_top: bool) -> str:
    """The file name Keras uses for MobileNet v1's ImageNet weights at 224 px."""
    return mobilenet(alpha).weights_file(include_top)


def fetch_imagenet_weights(
    backbone: Backbone | float, include_top: bool, weights_dir: str | Path | None = None
) -> Path:
    """Put a backbone's ImageNet weights in Keras' cache (``$KERAS_HOME/models/``); the cached path. A bare
    number is MobileNet v1 at that width.

    Goes through ``keras.utils.get_file`` — Keras' own download and cache — from the public URL, or
    from ``weights_dir`` when one is given: a local folder (e.g. for CI) or the base URL of an internal
    mirror (for disconnected clusters).
    """
    backbone = backbone if isinstance(backbone, Backbone) else mobilenet(backbone)
    name = backbone.weights_file(include_top)
    if weights_dir is not None and re.match(r"^(https?|file)://", str(weights_dir)):
        origin = str(weights_dir).rstrip("/") + "/" + name
    elif weights_dir is not None:
        local = Path(weights_dir).expanduser().resolve() / name
        if not local.is_file():
            raise ModelFileError(f"{local} does not exist: CATDOG_WEIGHTS_DIR must hold {name}")
        origin = local.as_uri()
    else:
        origin = backbone.url + name
    try:
        return Path(keras.utils.get_file(name, origin, cache_subdir="models"))
    except Exception as error:  # noqa: BLE001 - any failure to fetch says which file and from where
        raise ModelFileError(f"cannot fetch the ImageNet weights {name} from {origin}: {error}") from None


def build_backbone(
    backbone: Backbone | float, weights_dir: str | Path | None, include_top: bool = False
) -> keras.Model:
    backbone = backbone if isinstance(backbone, Backbone) else mobilenet(backbone)
    fetch_imagenet_weights(backbone, include_top, weights_dir)
    size = IMAGENET_IMAGE_SIZE if include_top else backbone.image_size  # ImageNet's top takes 224 px only
    with warnings.catch_warnings():  # Keras warns that a size other than 224 loads the 224 px weights: it should
        warnings.filterwarnings("ignore", message=".*will be loaded as the default")
        return getattr(keras.applications, backbone.application)(
            input_shape=(size, size, 3),
            alpha=backbone.alpha,
            include_top=include_top,
            pooling=None if include_top else "avg",
            weights="imagenet",
        )


def mobilenet_inputs(size: int = IMAGENET_IMAGE_SIZE) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input(shape=(size, size, 3), name="pixels")
    # MobileNet's own preprocessing (pixels to -1..1) as a layer, so the saved file takes raw pixels.
    return inputs, layers.Rescaling(1.0 / 127.5, offset=-1.0, name="mobilenet_preprocess")(inputs)


def build_head(feature_size: int) -> keras.Model:
    """The trainable part on top of frozen MobileNet features."""
    features = keras.Input(shape=(feature_size,), name="features")
    x = layers.Dropout(0.2)(features)
    outputs = layers.Dense(1, activation="sigmoid", name="p_dog")(x)
    head = keras.Model(features, outputs, name="cat_dog_head")
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    return head


def assemble_pretrained(backbone: keras.Model, head: keras.Model) -> keras.Model:
    """One model, pixels to p(dog): preprocessing, the frozen backbone, then the trained head."""
    backbone.trainable = False
    inputs, x = mobilenet_inputs(backbone.input_shape[1])
    outputs = head(backbone(x, training=False))
    model = keras.Model(inputs, outputs, name="mobilenet_cat_dog")
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    return model


@keras.saving.register_keras_serializable(package="catdog")
class ImageNetCatDog(layers.Layer):
    """Reads ImageNet's 1000 class probabilities as p(dog) = dog mass / (dog mass + cat mass)."""

    def call(self, probabilities):
        dog = keras.ops.sum(probabilities[:, IMAGENET_DOG_CLASSES[0] : IMAGENET_DOG_CLASSES[1]], axis=-1, keepdims=True)
        cat = keras.ops.sum(probabilities[:, IMAGENET_CAT_CLASSES[0] : IMAGENET_CAT_CLASSES[1]], axis=-1, keepdims=True)
        return dog / (dog + cat + keras.config.epsilon())

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def build_zero_shot(alpha: float, weights_dir: str | Path | None) -> keras.Model:
    """The untouched ImageNet classifier read as cat vs dog: no training data needed."""
    classifier = build_backbone(alpha, weights_dir, include_top=True)
    inputs, x = mobilenet_inputs()
    outputs = ImageNetCatDog(name="p_dog")(classifier(x, training=False))
    model = keras.Model(inputs, outputs, name="mobilenet_imagenet_cat_dog")
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    return model


def input_size(model: keras.Model) -> int:
    """The square image size a model expects."""
    return int(model.input_shape[1])


def save_model(model: keras.Model, path: Path) -> None:
    """Save as one ``.keras`` file, written beside the target first so a crash leaves the old file intact."""
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: model files must end in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial.keras")
    model.save(partial)
    partial.replace(path)


def load_model(path: Path) -> keras.Model:
    """Load a ``.keras`` file with ``safe_mode=True`` and check it is a catdog model (pixels in, p(dog) out)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist: train it with `catdog train` or pass --models DIR")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a .keras model file (damaged, or another format)")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except ValueError as error:
        if "safe_mode" in str(error) or "lambda" in str(error).lower():
            raise ModelFileError(
                f"{path} contains code (a Lambda layer) and is refused by safe_mode: {error}"
            ) from None
        raise ModelFileError(f"{path} cannot be loaded: {error}") from None
    except Exception as error:  # noqa: BLE001 - Keras raises many types on a damaged file
        raise ModelFileError(f"{path} cannot be loaded (damaged or made by an incompatible Keras): {error}") from None
    shape_in, shape_out = tuple(model.input_shape), tuple(model.output_shape)
    if len(shape_in) != 4 or shape_in[1] != shape_in[2] or shape_in[3] != 3 or shape_out[1:] != (1,):
        raise ModelFileError(
            f"{path} is not a catdog model: it maps {shape_in} to {shape_out}, expected square RGB images to one p(dog)"
        )
    return model


def write_card(model_path: Path, card: dict) -> Path:
    path = card_path(model_path)
    path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return path
