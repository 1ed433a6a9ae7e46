"""The one image decoder: bytes in, a model-ready array out, or an :class:`ImageError` saying why not.

Training, prediction, the notebooks and the Kafka service all call :func:`decode_image`, so an image
that one of them accepts, all of them accept, and it looks the same to every model.
"""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from catdog.config import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS

# Formats a user may send. Everything else PIL can read (PSD, ICO, EPS, …) is refused on purpose:
# fewer parsers exposed to untrusted bytes. (JPEG includes MPO, the multi-picture JPEG of many cameras.)
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
# Transparent pixels are shown on white, as a browser would show them.
BACKGROUND = (255, 255, 255)
ORIENTATION_TAG = 0x0112


class ImageError(ValueError):
    """An input that is not a usable image. ``reason`` is a short stable code, the message says why."""

    REASONS = (
        "empty",
        "too-large",
        "too-many-pixels",
        "too-small",
        "not-an-image",
        "unsupported-format",
        "truncated",
        "corrupt",
    )

    def __init__(self, reason: str, message: str) -> None:
        if reason not in self.REASONS:
            raise AssertionError(f"unknown image error reason {reason!r}")
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class DecodedImage:
    """An upright 8-bit RGB picture plus what it was: format, mode, and size as displayed (after EXIF)."""

    image: Image.Image
    format: str
    mode: str
    width: int
    height: int

    def to_array(self, size: int) -> np.ndarray:
        """Resize (squashing, as the lab always did) to ``size`` x ``size``: uint8, shape (size, size, 3)."""
        resized = self.image.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: alpha composited on white, 16/32-bit and float scaled to 0..255."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and 255 < high <= 65535):
            values = values / 257.0  # 16-bit range onto 8-bit
        elif image.mode == "F" or low < 0 or high > 65535:
            # Floats, and 32-bit integers beyond 16 bits, have no fixed range: stretch what is there.
            values = (values - low) / ((high - low) or 1.0) * 255.0
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, BACKGROUND)
        background.paste(image, mask=image.getchannel("A"))
        return background
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


# EXIF orientation -> the turn that shows the picture upright (as ImageOps.exif_transpose does).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _shrink(image: Image.Image, size: int) -> Image.Image:
    """Box-average a loaded image down by the largest whole factor that keeps both sides at least ``size``:
    what JPEG's draft mode does while decoding, for every other format right after it. A 40-megapixel
    PNG then holds ~1 MB instead of its 160 MB decode, and every later step (turning, RGB, resizing)
    works on the small copy."""
    factor = min(image.width // size, image.height // size)
    if factor < 2:
        return image
    if image.mode.startswith("I;16"):  # reduced as 32-bit, then 16-bit again: _to_rgb scales 16-bit ranges
        return image.convert("I").reduce(factor).convert("I;16")
    if image.mode in ("P", "PA", "1"):  # palette indices cannot be averaged: colours first
        image = image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
    return image.reduce(factor)


# Peak memory of a full-size decode, per pixel, measured on 40-megapixel images (Pillow 13): PNG, TIFF
# and GIF ~4-6 bytes (RGBX, or palette + RGB), WebP ~16 (libwebp's RGBA buffer, its copy and the image).
DECODE_BYTES_PER_PIXEL = {"WEBP": 16}
DEFAULT_DECODE_BYTES_PER_PIXEL = 8


class DecodeBudget:
    """Bytes of full-size decodes in flight at once, across threads: a decoder waits until its image's
    peak fits. One image alone always fits, so a budget smaller than the largest image is not a deadlock.

    Decoded images are shrunk at once (:func:`_shrink`), so this bounds a decoding pool's memory however
    many records a batch holds or however large each is."""

    def __init__(self, limit_bytes: int, refuse_larger: bool = False) -> None:
        self.limit = max(1, int(limit_bytes))
        # A service with a small memory limit (the wall) refuses an image whose decode alone would take more
        # than the budget (a 40-megapixel WebP of a few kilobytes needs ~600 MiB), instead of letting it in.
        self.refuse_larger = refuse_larger
        self.used = 0
        self.peak = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, nbytes: int):
        if self.refuse_larger and nbytes > self.limit:
            raise ImageError(
                "too-many-pixels",
                f"decoding it would take {nbytes / 2**20:,.0f} MiB, more than the "
                f"{self.limit / 2**20:,.0f} MiB this service decodes at once",
            )
        nbytes = min(max(0, int(nbytes)), self.limit)
        with self._changed:
            self._changed.wait_for(lambda: self.used + nbytes <= self.limit)
            self.used += nbytes
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            with self._changed:
                self.used -= nbytes
                self._changed.notify_all()


def decode_cost(image: Image.Image) -> int:
    """Bytes a full decode of ``image`` (opened, not loaded; after any draft) may take at its peak."""
    per_pixel = DECODE_BYTES_PER_PIXEL.get(image.format or "", DEFAULT_DECODE_BYTES_PER_PIXEL)
    return image.width * image.height * per_pixel


_PIL_LIMIT = threading.Lock()


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Image.open with our pixel limit as the only one: Pillow's own (MAX_IMAGE_PIXELS, an error at twice
    it) would otherwise refuse images that a larger CATDOG_MAX_IMAGE_PIXELS allows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        except Image.DecompressionBombError:
            if Image.MAX_IMAGE_PIXELS is None or max_pixels <= 2 * Image.MAX_IMAGE_PIXELS:
                raise  # over our limit too
        with _PIL_LIMIT:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
            try:
                return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            finally:
                Image.MAX_IMAGE_PIXELS = saved


def decode_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    target_size: int | None = None,
    budget: DecodeBudget | None = None,
) -> DecodedImage:
    """Fully decode ``data`` into an upright RGB image, or raise :class:`ImageError`.

    ``target_size``: the largest side a model will want. JPEGs decode at a reduced scale (never below it),
    several times faster for camera photos; every other format is shrunk right after decoding, so no
    full-resolution copy outlives this call. ``budget``: threads decoding at once share it (the service).
    """
    if not data:
        raise ImageError("empty", "the input is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageError("too-large", f"the input is {len(data):,} bytes, more than the limit of {max_bytes:,}")
    try:
        image = _open(data, max_pixels)
    except Image.DecompressionBombError as error:
        raise ImageError("too-many-pixels", f"refused as a possible decompression bomb: {error}") from None
    except UnidentifiedImageError:
        damaged = _accepted_signature(data)
        if damaged:
            raise ImageError("corrupt", f"this starts like a {damaged} but its header is damaged") from None
        kind = _guess_unsupported(data)
        if kind:
            raise ImageError(
                "unsupported-format", f"{kind} images are not accepted; send JPEG, PNG, GIF, WebP or BMP"
            ) from None
        raise ImageError("not-an-image", f"not an image: no known image format starts with {data[:8]!r}") from None
    except Exception as error:  # noqa: BLE001 - PIL raises many types on malformed headers
        raise ImageError("corrupt", f"the image header is damaged: {error}") from None

    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            "too-many-pixels",
            f"{width}x{height} = {width * height:,} pixels is more than the limit of {max_pixels:,} "
            "(possible decompression bomb)",
        )
    if width < 1 or height < 1:
        raise ImageError("corrupt", f"the image claims a size of {width}x{height}")
    source_format, source_mode = image.format or "unknown", image.mode
    orientation = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. PIL's "palette images with transparency" notice
            if target_size and image.format in ("JPEG", "MPO"):
                image.draft("RGB", (target_size, target_size))
            with budget.hold(decode_cost(image)) if budget else contextlib.nullcontext():
                # Inside the budget: a PNG's EXIF may follow its pixels, and Pillow decodes them all to find it.
                orientation = _orientation(image)
                image.load()
                if target_size:
                    image = _shrink(image, target_size)
                if orientation in _TRANSPOSE:
                    image = image.transpose(_TRANSPOSE[orientation])
                image = _to_rgb(image)
    except ImageError:
        raise
    except OSError as error:
        if "truncated" in str(error):
            raise ImageError("truncated", f"the {source_format} data is truncated: {error}") from None
        raise ImageError("corrupt", f"the {source_format} data cannot be decoded: {error}") from None
    except Exception as error:  # noqa: BLE001 - any other failure of the decoder is a damaged image
        raise ImageError("corrupt", f"the {source_format} data cannot be decoded: {error}") from None
    if orientation in (5, 6, 7, 8):  # turned by a quarter: as seen, the sides swap
        width, height = height, width
    return DecodedImage(image=image, format=source_format, mode=source_mode, width=width, height=height)


def _orientation(image: Image.Image) -> int | None:
    """The EXIF orientation tag; unreadable EXIF is dropped, as if there were none."""
    try:
        return image.getexif().get(ORIENTATION_TAG)
    except Exception:  # noqa: BLE001 - EXIF that PIL cannot read is as if absent
        return None


def load_image_array(data: bytes, size: int, **limits: int) -> np.ndarray:
    """Decode ``data`` and resize it to one model's input: the shortcut for a single model."""
    return decode_image(data, target_size=size, **limits).to_array(size)


_SIGNATURES = (
    (b"%PDF", "PDF"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"%!PS", "PostScript"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)


_ACCEPTED_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _accepted_signature(data: bytes) -> str | None:
    """The accepted format ``data`` claims to be by its first bytes, if any."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for signature, name in _ACCEPTED_SIGNATURES if data.startswith(signature)), None)


def _guess_unsupported(data: bytes) -> str | None:
    """Name a well-known non-accepted format, so the error says what was sent."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypavif", b"ftypmif1"):
        return "HEIC/AVIF"
    if data.lstrip()[:1] == b"<" and b"<svg" in data[:1024].lower():
        return "SVG"
    return None
