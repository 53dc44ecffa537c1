"""Decoding: every supported format, EXIF orientation, pixel modes, and refusals — corrupt,
truncated, not an image, or over OSS's size limits (refused from the header, quickly)."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.quality.conftest import encode
from worker.quality import MAX_PIXELS, MAX_SIDE, ImageError, ImageTooLarge, UnsupportedImage, score
from worker.quality.decode import decode_image

pytestmark = pytest.mark.timeout(30)


def gradient_photo(width: int = 96, height: int = 64) -> Image.Image:
    """Colourful and smooth, so every codec reproduces it closely."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    return Image.fromarray(rgb.astype(np.uint8))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF"])
def test_every_supported_format_decodes_to_the_same_picture(fmt: str) -> None:
    original = gradient_photo()
    decoded = decode_image(encode(original, fmt))
    assert decoded.mode == "RGB" and decoded.size == original.size
    error = np.abs(np.asarray(decoded, np.int16) - np.asarray(original, np.int16)).mean()
    assert error < 12, error  # lossy codecs and GIF's palette, not garbage
    assert 0.0 <= score(encode(original, fmt)).overall <= 1.0


def test_animated_gif_scores_its_first_frame() -> None:
    frames = [Image.new("RGB", (64, 48), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert decode_image(buf.getvalue()).getpixel((10, 10))[0] > 200


def _two_halves() -> Image.Image:
    """Red on the left, blue on the right: where red ends up tells the rotation."""
    img = Image.new("RGB", (60, 40), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 30, 40))
    return img


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "HEIF", "AVIF"])
def test_exif_orientation_is_applied(fmt: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored as-is, displayed rotated 90° clockwise: left half on top
    decoded = decode_image(encode(_two_halves(), fmt, exif=exif.tobytes()))
    assert decoded.size == (40, 60)
    top, bottom = decoded.getpixel((20, 5)), decoded.getpixel((20, 55))
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]


def test_no_orientation_tag_leaves_the_picture_alone() -> None:
    decoded = decode_image(encode(_two_halves(), "JPEG"))
    assert decoded.size == (60, 40) and decoded.getpixel((5, 20))[0] > 200


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (16, 1))
    decoded = np.asarray(decode_image(encode(Image.fromarray(ramp), "PNG")))[..., 0]
    assert decoded[0, 0] == 0 and decoded[0, -1] == 255
    assert abs(int(decoded[0, 128]) - 128) <= 2  # clipping would give 255 from a quarter on


def _half_transparent(mode: str) -> tuple[Image.Image, dict[str, int]]:
    """Left half opaque red (grey in LA), right half fully transparent black."""
    if mode == "P":  # a palette with a transparent index, as GIF and indexed PNG store it
        img = Image.new("P", (32, 32), 0)
        img.putpalette([0, 0, 0, 200, 0, 0])
        img.paste(1, (0, 0, 16, 32))
        return img, {"transparency": 0}
    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    img.paste((200, 0, 0, 255), (0, 0, 16, 32))
    return img.convert(mode), {}


@pytest.mark.parametrize(
    ("mode", "fmt"), [("RGBA", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("P", "GIF"), ("RGBA", "WEBP")]
)
def test_transparent_pixels_come_out_white(mode: str, fmt: str) -> None:
    img, params = _half_transparent(mode)
    decoded = decode_image(encode(img, fmt, **params))
    assert decoded.getpixel((28, 16)) == (255, 255, 255)
    assert sum(decoded.getpixel((4, 16))) < 300  # the opaque half keeps its colour


@pytest.mark.parametrize("mode", ["L", "1", "CMYK", "P", "I"])
def test_other_pixel_modes_become_rgb(mode: str) -> None:
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode == "I" else "PNG"
    decoded = decode_image(encode(gradient_photo().convert(mode), fmt))
    assert decoded.mode == "RGB" and decoded.size == (96, 64)


def _jpeg() -> bytes:
    return encode(gradient_photo(320, 240), "JPEG", quality=90)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is a text file\n",
        b"\xff\xd8\xff" + bytes(range(256)) * 4,  # JPEG magic, then garbage
        _jpeg()[:100],  # header cut
        _jpeg()[: len(_jpeg()) // 2],  # pixel data cut
        encode(Image.effect_noise((200, 100), 60), "PNG")[:3000],
        encode(gradient_photo(), "GIF")[:200],
        encode(gradient_photo(), "WEBP")[:60],
        encode(Image.new("RGB", (8, 8)), "PPM"),  # a real image, in a format OSS does not read
    ],
    ids=["empty", "text", "jpeg-garbage", "jpeg-header-cut", "jpeg-data-cut", "png-cut", "gif-cut",
         "webp-cut", "ppm"],
)
def test_corrupt_truncated_or_foreign_input_is_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedImage) as caught:
        score(data)
    assert caught.value.oss_code == "BadRequest" and caught.value.ec == "0040-00000005"


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height but carries almost no pixel data: a bomb's header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _gif_header(width: int, height: int, frames: int) -> bytes:
    """An animated GIF of ``frames`` frames of width x height with (almost) no pixel data."""
    out = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x4c\x01\x00"
    return out + frame * frames + b"\x3b"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("data", "ec"),
    [
        (_png_header(40_000, 10), "0040-00000019"),  # a side over MAX_SIDE
        (_png_header(10, 30_001), "0040-00000019"),
        (_png_header(20_000, 20_000), "0040-00000012"),  # 400 Mpx
        (_png_header(29_000, 29_000), "0040-00000012"),  # past Pillow's own bomb limit too
        (_gif_header(10_000, 10_000, 3), "0040-00000012"),  # 100 Mpx x 3 frames
    ],
    ids=["wide", "tall", "400Mpx", "841Mpx", "gif-frames"],
)
def test_oversized_pictures_are_refused_from_the_header(data: bytes, ec: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge) as caught:
        score(data)
    assert time.perf_counter() - start < 1.0  # nothing was decoded
    assert caught.value.oss_code == "ImageTooLarge" and caught.value.ec == ec
    assert isinstance(caught.value, ImageError)


def test_limits_are_oss_limits() -> None:
    assert (MAX_SIDE, MAX_PIXELS) == (30_000, 250_000_000)


def test_a_picture_at_the_side_limit_is_not_too_large() -> None:
    """30 000 px is allowed: the limit is 'more than'. (Narrow, so it decodes in a blink.)"""
    found = score(encode(Image.new("RGB", (MAX_SIDE, 2), (90, 120, 150)), "PNG"))
    assert 0.0 <= found.overall <= 1.0
