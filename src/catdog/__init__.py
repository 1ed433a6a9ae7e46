"""catdog: a cats-vs-dogs lab kit — a quick-trained CNN and a pretrained MobileNet, side by side."""

__version__ = "0.1.0"


class CatdogError(Exception):
    """Base of the errors a user can act on: the CLI prints their message, not a traceback."""


CLASS_NAMES = ("cat", "dog")
"""Class index order everywhere: 0 = cat, 1 = dog. Every model outputs one sigmoid, p(dog)."""
