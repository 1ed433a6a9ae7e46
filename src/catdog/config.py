"""Settings, read from the environment in one place.

Nothing here runs at import time: call :func:`load_settings` when a command starts. The same variable
names are used locally, in CI and on OpenShift (where they come from a ConfigMap).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from catdog import CatdogError

# Microsoft's public copy of the Kaggle "Dogs vs. Cats" photos (PetImages/Cat, PetImages/Dog; ~786 MB).
# Microsoft publishes no hash for it, so none is checked unless CATDOG_DATA_SHA256 gives one.
PETIMAGES_URL = (
    "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/"
    "kagglecatsanddogs_5340.zip"
)
MIB = 1024 * 1024
DEFAULT_MAX_IMAGE_BYTES = 10 * MIB
# 40 megapixels is more than any phone camera; an RGB decode of it takes ~120 MB.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000


class ConfigError(CatdogError, ValueError):
    """A setting in the environment has a value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    data_source: str
    data_sha256: str | None
    data_dir: Path
    models_dir: Path
    weights_dir: Path | None
    cache_dir: Path
    max_image_bytes: int
    max_image_pixels: int


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be greater than zero")
    return value


def _optional_path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read every catdog setting from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    cache_home = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Settings(
        data_source=env.get("CATDOG_DATA_SOURCE", "").strip() or PETIMAGES_URL,
        data_sha256=env.get("CATDOG_DATA_SHA256", "").strip().lower() or None,
        data_dir=_optional_path(env, "CATDOG_DATA_DIR") or Path("data"),
        models_dir=_optional_path(env, "CATDOG_MODELS_DIR") or Path("models"),
        weights_dir=_optional_path(env, "CATDOG_WEIGHTS_DIR"),
        cache_dir=_optional_path(env, "CATDOG_CACHE_DIR") or cache_home / "catdog",
        max_image_bytes=_positive_int(env, "CATDOG_MAX_IMAGE_BYTES", DEFAULT_MAX_IMAGE_BYTES),
        max_image_pixels=_positive_int(env, "CATDOG_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS),
    )
