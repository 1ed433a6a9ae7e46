"""Test inputs made on the fly: every kind of message a user might send, good or bad."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 120, height: int = 80) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(0, 255, height, dtype=np.uint8)
    pixels = np.stack(
        [np.tile(x, (height, 1)), np.tile(y[:, None], (1, width)), np.full((height, width), 90, np.uint8)], -1
    )
    return Image.fromarray(pixels, "RGB")


def noise(size: int = 100) -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8))


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cat.txt", "meow")
    return buffer.getvalue()


def bomb() -> bytes:
    """20000 x 20000 one-bit pixels: ~50 kB on the wire, 400 million pixels decoded."""
    return encode(Image.new("1", (20000, 20000)), "PNG")


def transparent_palette_png(photo: bytes) -> bytes:
    image = Image.open(io.BytesIO(photo)).convert("RGBA").resize((160, 120))
    image.paste((0, 0, 0, 0), (0, 0, 40, 40))  # a fully transparent corner
    return encode(image.convert("P"), "PNG")


def sixteen_bit_png(photo: bytes) -> bytes:
    grey = np.asarray(Image.open(io.BytesIO(photo)).convert("L").resize((160, 120)), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey), "PNG")


def animated_gif(photo: bytes) -> bytes:
    first = Image.open(io.BytesIO(photo)).convert("RGB").resize((160, 120))
    frames = [first, first.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def exif_rotated(photo: bytes) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored = Image.open(io.BytesIO(photo)).convert("RGB").transpose(Image.Transpose.ROTATE_90)
    return encode(stored, "JPEG", exif=exif, quality=90)


def cmyk_jpeg(photo: bytes) -> bytes:
    return encode(Image.open(io.BytesIO(photo)).convert("CMYK"), "JPEG", quality=90)


def pdf() -> bytes:
    return b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF"


def html() -> bytes:
    return b"<!doctype html><html><body><img src=cat.jpg></body></html>"


def random_bytes() -> bytes:
    return np.random.default_rng(0).bytes(5000)


def giants(width: int = 8000, height: int = 5000) -> dict[str, bytes]:
    """The largest images the pipeline accepts (40 megapixels at the default limit) in every lossless
    format that compresses a flat picture to kilobytes: each is legal and small on the wire, and each
    is ~120-640 MB once decoded at full size."""
    flat = Image.new("RGB", (width, height), (150, 110, 70))
    return {
        "giant-rgb.png": encode(flat, "PNG"),
        "giant-rgb.webp": encode(flat, "WEBP", lossless=True),
        "giant-rgb.tiff": encode(flat, "TIFF", compression="tiff_adobe_deflate"),
        "giant-palette.png": encode(flat.quantize(4), "PNG"),
        "giant-16bit.png": encode(Image.new("I;16", (width, height), 30000), "PNG"),
        "giant-rgba.png": encode(flat.convert("RGBA"), "PNG"),
    }
