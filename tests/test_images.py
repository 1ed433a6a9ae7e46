"""The one decoder: every accepted image mode comes out as upright 8-bit RGB; every bad input is refused
with its own reason."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from catdog.images import ImageError, decode_image, load_image_array
from samples import bomb, encode, gradient, html, noise, pdf, random_bytes, zip_bytes


@pytest.fixture
def photo(cat_photos) -> bytes:
    return cat_photos[0].read_bytes()


def test_real_jpeg_becomes_a_model_ready_array(photo):
    array = load_image_array(photo, 128)
    assert array.shape == (128, 128, 3) and array.dtype == np.uint8
    assert 20 < array.mean() < 235  # a real picture, not a blank


@pytest.mark.parametrize(
    "mode, fmt, options",
    [
        ("L", "PNG", {}),  # grayscale
        ("1", "PNG", {}),  # black and white
        ("P", "PNG", {}),  # palette
        ("P", "GIF", {}),
        ("RGBA", "PNG", {}),
        ("LA", "PNG", {}),
        ("CMYK", "JPEG", {}),
        ("RGB", "WEBP", {}),
        ("RGB", "BMP", {}),
        ("RGB", "TIFF", {}),
        ("RGB", "JPEG", {"progressive": True}),
    ],
)
def test_every_common_mode_and_format_decodes_to_rgb(mode, fmt, options):
    data = encode(gradient().convert(mode), fmt, **options)
    decoded = decode_image(data)
    assert decoded.image.mode == "RGB" and decoded.format == fmt
    assert (decoded.width, decoded.height) == (120, 80)
    assert decoded.to_array(64).shape == (64, 64, 3)


def test_grayscale_keeps_its_brightness():
    data = encode(Image.new("L", (50, 50), 200), "PNG")
    assert np.all(decode_image(data).to_array(32) == 200)


def test_sixteen_bit_png_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (40, 1))
    data = encode(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    array = np.asarray(decode_image(data).image)
    assert array[0, 0, 0] == 0 and array[0, -1, 0] == 255
    assert 110 < array[0, 128, 0] < 145  # mid-grey stays mid-grey (clipping would make it white)


def test_transparent_palette_png_is_classified_on_white():
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    image.paste((200, 30, 30, 255), (10, 10, 30, 30))
    data = encode(image.convert("P"), "PNG")
    decoded = decode_image(data)
    assert decoded.mode == "P"
    array = np.asarray(decoded.image)
    assert tuple(array[0, 0]) == (255, 255, 255)
    assert tuple(array[20, 20]) == (200, 30, 30)


def test_cmyk_jpeg_colours_survive():
    red = Image.new("RGB", (40, 40), (220, 20, 20)).convert("CMYK")
    red_pixel = np.asarray(decode_image(encode(red, "JPEG", quality=95)).image)[20, 20]
    assert red_pixel[0] > 180 and red_pixel[1] < 70 and red_pixel[2] < 70


def test_exif_rotated_photo_is_turned_upright():
    # Stored 200x100, left half red, right half blue, with "rotate 90 degrees clockwise to display".
    stored = Image.new("RGB", (200, 100), (255, 0, 0))
    stored.paste((0, 0, 255), (100, 0, 200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode_image(encode(stored, "JPEG", exif=exif, quality=95))
    assert (decoded.width, decoded.height) == (100, 200)
    array = np.asarray(decoded.image)
    assert array[20, 50, 0] > 200 and array[20, 50, 2] < 60  # top is red
    assert array[180, 50, 2] > 200 and array[180, 50, 0] < 60  # bottom is blue


def test_animated_gif_uses_its_first_frame():
    frames = [Image.new("RGB", (30, 30), colour) for colour in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    pixel = np.asarray(decode_image(buffer.getvalue()).image)[15, 15]
    assert pixel[0] > 200 and pixel[1] < 50


def test_large_jpeg_decodes_at_reduced_scale_but_same_content(photo):
    big = encode(Image.open(io.BytesIO(photo)).convert("RGB").resize((2000, 1600)), "JPEG", quality=90)
    fast = decode_image(big, target_size=128)
    assert (fast.width, fast.height) == (2000, 1600)  # the size reported is the photo's own
    assert fast.image.width < 2000  # ...but it was decoded at a fraction of it
    full = decode_image(big).to_array(128).astype(int)
    assert np.abs(fast.to_array(128).astype(int) - full).mean() < 6


BAD_INPUTS = {
    "empty": (lambda photo: b"", "empty"),
    "text": (lambda photo: b"hello, I am a cat", "not-an-image"),
    "html": (lambda photo: html(), "not-an-image"),
    "random bytes": (lambda photo: random_bytes(), "not-an-image"),
    "zip": (lambda photo: zip_bytes(), "not-an-image"),
    "pdf": (lambda photo: pdf(), "unsupported-format"),
    "psd": (lambda photo: b"8BPS\x00\x01" + bytes(40), "unsupported-format"),
    "truncated jpeg": (lambda photo: photo[: len(photo) // 2], "truncated"),
    "truncated png": (lambda photo: encode(noise(), "PNG")[:3000], "truncated"),
    "damaged header": (lambda photo: photo[:20] + bytes(200) + photo[220:], "corrupt"),
    "decompression bomb": (lambda photo: bomb(), "too-many-pixels"),
}


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_is_refused_with_its_reason(kind, photo):
    make, reason = BAD_INPUTS[kind]
    with pytest.raises(ImageError) as caught:
        decode_image(make(photo))
    assert caught.value.reason == reason, str(caught.value)
    # A message a person can act on: it says what was wrong in words, not only the machine reason.
    assert re.search(MESSAGES[reason], str(caught.value)), str(caught.value)


MESSAGES = {
    "empty": r"empty \(0 bytes\)",
    "not-an-image": r"^not an image: no known image format starts with b",
    "unsupported-format": r"^(PDF|PSD) images are not accepted; send JPEG, PNG",
    "truncated": r"^the (JPEG|PNG) data is truncated",
    "corrupt": r"^this starts like a JPEG but its header is damaged"
    r"|^the (image header|JPEG data) (is damaged|cannot be decoded)",
    "too-many-pixels": r"decompression bomb",
}


def test_thirty_two_bit_tiff_is_stretched_not_clipped_to_white():
    """A 32-bit integer image (mode I) beyond the 16-bit range: e.g. a scientific camera's TIFF."""
    ramp = np.tile(np.linspace(0, 2**31 - 1, 256).astype(np.int32), (40, 1))
    data = encode(Image.fromarray(ramp, mode="I"), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I"
    array = np.asarray(decode_image(data).image)
    assert array[0, 0, 0] == 0 and array[0, -1, 0] == 255
    assert 110 < array[0, 128, 0] < 145


def test_a_pixel_limit_above_pillows_own_is_the_one_that_counts(monkeypatch):
    """Pillow refuses images over twice its MAX_IMAGE_PIXELS by itself; CATDOG_MAX_IMAGE_PIXELS decides."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # Pillow alone would refuse over 2,000 pixels
    data = encode(gradient(100, 60), "PNG")  # 6,000 pixels
    assert decode_image(data, max_pixels=10_000).image.size == (100, 60)
    assert Image.MAX_IMAGE_PIXELS == 1_000  # left as it was
    with pytest.raises(ImageError) as caught:
        decode_image(data, max_pixels=5_000)
    assert caught.value.reason == "too-many-pixels"


def test_size_limits_are_configurable(photo):
    with pytest.raises(ImageError, match="more than the limit") as caught:
        decode_image(photo, max_bytes=len(photo) - 1)
    assert caught.value.reason == "too-large"
    decode_image(photo, max_bytes=len(photo))
    with pytest.raises(ImageError) as caught:
        decode_image(encode(gradient(100, 100), "PNG"), max_pixels=9_999)
    assert caught.value.reason == "too-many-pixels"


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "I;16", "L", "1"])
@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP"])
def test_every_format_is_shrunk_as_it_is_decoded_and_looks_the_same(fmt, mode):
    """No full-resolution picture outlives the decode when the model's size is known (JPEG is drafted; the
    others box-averaged at once), and the model input differs from a full decode's only by rounding."""
    from catdog.images import decode_image

    if fmt == "WEBP" and mode not in ("RGB", "RGBA"):
        pytest.skip("WebP stores RGB(A) only")
    picture = gradient(1800, 1200)
    picture = {
        "RGBA": picture.convert("RGBA"),
        "P": picture.quantize(64),
        "L": picture.convert("L"),
        "1": picture.convert("1"),
        "I;16": Image.fromarray(np.asarray(picture.convert("L"), np.uint16) * 257),
    }.get(mode, picture)
    data = encode(picture, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    small = decode_image(data, target_size=224)
    assert max(small.image.size) < 2 * 224 * 1.5 and min(small.image.size) >= 224
    assert (small.width, small.height, small.format) == (1800, 1200, fmt)
    full = decode_image(data)
    assert full.image.size == (1800, 1200)
    difference = np.abs(small.to_array(224).astype(int) - full.to_array(224).astype(int))
    assert difference.mean() < 3, difference.mean()


def test_the_decode_budget_lets_only_what_fits_decode_at_once():
    import threading
    import time

    from catdog.images import DecodeBudget

    budget = DecodeBudget(100)
    inside, most = [0], [0]
    lock = threading.Lock()

    def work(cost: int) -> None:
        cost = min(cost, budget.limit)  # an image larger than the whole budget waits for all of it
        with budget.hold(cost):
            with lock:
                inside[0] += cost
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= cost

    workers = [threading.Thread(target=work, args=(cost,)) for cost in (60, 60, 30, 500, 10)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert most[0] <= 100 and budget.peak <= 100 and budget.used == 0
