"""catdog: a cats-vs-dogs lab kit — a quick-trained CNN and a pretrained MobileNetV2, side by side."""

import os
import sys

__version__ = "0.1.0"


class CatdogError(Exception):
    """Base of the errors a user can act on: the CLI prints their message, not a traceback."""


CLASS_NAMES = ("cat", "dog")
"""Class index order everywhere: 0 = cat, 1 = dog. Every model outputs one sigmoid, p(dog)."""


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up chatter and notices, which hide what learners need to see.

    TF_CPP_MIN_LOG_LEVEL=2 keeps warnings and errors, but TF 2.21 logs its oneDNN notice before reading
    it, so the C-level stderr is muted while TensorFlow is imported (an import error still shows).
    Call it before anything imports keras; a later call does nothing. Thread pools are sized by
    :func:`catdog.threads.start_tensorflow`, which calls this.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("0", "1") or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    # Python-side notices too (e.g. tf.function retracing when several models predict in turn).
    tensorflow.get_logger().setLevel("ERROR")
