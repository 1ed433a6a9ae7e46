"""Hot swaps: the models folder watched for a newly served version, loaded (safe_mode) beside the running
one and handed to the pipeline between batches; a file that does not load is reported and never served."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from catdog.metrics import ServiceMetrics
from catdog.models import ModelFileError, input_size, load_model, model_version
from catdog.predict import predict_fn

log = logging.getLogger("catdog.service")


class ModelWatcher:
    """Hot reload: notices a new file for a model in the models folder (a retrained model written to the
    volume), loads it with safe_mode and checks it on a sample batch, all off the hot path, and offers it
    to the classifier, which swaps it in between batches. A file that fails keeps the old model serving."""

    def __init__(
        self,
        folder: Path,
        versions: dict[str, str],
        metrics: ServiceMetrics,
        interval: float,
        sizes: dict[str, int] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.versions = dict(versions)  # what is being served (or already offered)
        self.sizes = dict(sizes or {})  # each served model's input side: the batch comes at the largest
        self.metrics = metrics
        self.interval = interval
        self.failed: set[tuple[str, str]] = set()
        self.seen = {name: self._stamp(name) for name in versions}
        self.pending: dict[str, tuple[keras.Model, str]] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def _stamp(self, name: str) -> tuple[int, int] | None:
        try:
            status = (self.folder / f"{name}.keras").stat()
        except OSError:
            return None
        return status.st_mtime_ns, status.st_size

    def check(self) -> None:
        """Look once for changed model files; load and check each new version."""
        for name in list(self.versions):
            stamp = self._stamp(name)
            if stamp is None or stamp == self.seen.get(name):
                continue
            self.seen[name] = stamp
            path = self.folder / f"{name}.keras"
            version = "unreadable"
            try:
                version = model_version(path)
                if version == self.versions[name] or (name, version) in self.failed:
                    continue
                model = load_model(path)
                # Checked, and traced, exactly as it will serve: at the batch's size (the largest model's
                # input), so the first batch after the swap pays no tracing on the hot path.
                serving = max([size for other, size in self.sizes.items() if other != name] + [input_size(model)])
                p_dog = predict_fn(model, serving)(tf.zeros((2, serving, serving, 3), tf.uint8)).numpy().reshape(-1)
                if p_dog.shape != (2,) or not np.all((p_dog >= 0) & (p_dog <= 1)):
                    raise ModelFileError(f"{path} does not answer a probability per image")
            except Exception as error:  # noqa: BLE001 - whatever is wrong with the file, keep serving
                self.failed.add((name, version))
                self.metrics.model_reload_failures.labels(name).inc()
                log.error("new %s model not loaded, still serving version %s: %s", name, self.versions[name], error)
                continue
            with self.lock:
                self.pending[name] = (model, version)
            self.versions[name] = version
            self.sizes[name] = input_size(model)
            log.info("new %s model %s loaded and checked; swapping it in after the current batch", name, version)

    def take(self) -> dict[str, tuple[keras.Model, str]]:
        with self.lock:
            pending, self.pending = self.pending, {}
        return pending

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.check()

    def start(self) -> ModelWatcher:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
