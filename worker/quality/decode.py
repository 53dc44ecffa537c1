"""Bytes → one RGB picture, with OSS's size limits checked before any pixel is decoded.

Formats: those of :data:`FORMATS` — JPEG, PNG, WebP, GIF, BMP, TIFF and AVIF through Pillow,
HEIC/HEIF through ``pillow_heif``. Only the first frame of an animation is scored, but an
animated GIF counts all its frames against :data:`MAX_PIXELS`, as OSS does.

Module-level side effects, both process-wide and idempotent: the HEIF opener is registered
with Pillow, and Pillow's own decompression-bomb threshold is raised to :data:`MAX_PIXELS`
(its default, 89 Mpx warning / 179 Mpx error, would refuse pictures OSS accepts).
``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False, so a truncated file fails instead of
coming back half grey.
"""

from __future__ import annotations

import io
import math

import pillow_heif
from PIL import Image, ImageOps

__all__ = [
    "MAX_PIXELS",
    "MAX_SIDE",
    "FORMATS",
    "ImageError",
    "ImageTooLarge",
    "UnsupportedImage",
    "decode_image",
    "decode_scaled",
]

MAX_SIDE = 30_000
"""Longest side OSS image processing accepts, in pixels."""

MAX_PIXELS = 250_000_000
"""Most pixels OSS image processing accepts (width x height x frames for an animated GIF)."""

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")
"""Pillow format names tried: those OSS image processing reads (a camera's multi-picture MPO
opens as JPEG). Never the rest: EPS would run Ghostscript; every extra parser is attack surface."""

_WHITE = (255, 255, 255)

pillow_heif.register_heif_opener()
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(Exception):
    """A picture that cannot be scored, carrying the OSS error ``Code`` and ``EC`` to answer."""

    oss_code: str = "BadRequest"
    ec: str | None = None


class UnsupportedImage(ImageError):
    """Not an image, an unknown format, or a corrupt or truncated file."""

    oss_code = "BadRequest"
    ec = "0040-00000005"


class ImageTooLarge(ImageError):
    """Over OSS's limits: a side over :data:`MAX_SIDE` or more than :data:`MAX_PIXELS` pixels."""

    oss_code = "ImageTooLarge"

    def __init__(self, message: str, ec: str) -> None:
        super().__init__(message)
        self.ec = ec


def decode_image(data: bytes) -> Image.Image:
    """Decode ``data`` to an upright 8-bit RGB image (EXIF orientation applied, alpha on white).

    Raises :class:`ImageTooLarge` from the header alone, before the pixels are decoded, and
    :class:`UnsupportedImage` for anything Pillow cannot open or fully decode.
    """
    return _finish(_open(data))


def decode_scaled(data: bytes, short_side: int) -> tuple[Image.Image, tuple[int, int]]:
    """Like :func:`decode_image`, but a JPEG whose short side exceeds ``short_side`` is decoded
    at the coarsest DCT scale (1/2, 1/4, 1/8) that keeps its short side at least ``short_side``;
    returns the picture and its full upright (width, height).

    Why: libjpeg's scaled decoding skips most of the inverse DCT, so a 12 Mpx photo decodes
    at 1/4 scale in a fraction of the full time. Other formats decode at full size.
    """
    im = _open(data)
    width, height = im.size
    if _EXIF_SWAPS_SIDES.get(_orientation(im), False):
        width, height = height, width
    if im.format == "JPEG" and min(width, height) > short_side:
        scale = short_side / min(width, height)
        im.draft("RGB", (math.ceil(im.width * scale), math.ceil(im.height * scale)))
    return _finish(im), (width, height)


_ORIENTATION_TAG = 0x0112
#: EXIF orientations 5..8 rotate by 90°: the upright picture's width is the stored height.
_EXIF_SWAPS_SIDES = {5: True, 6: True, 7: True, 8: True}


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation, 1 when there is none or it cannot be read (then decoding says why)."""
    try:
        return int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a damaged file: _finish raises UnsupportedImage for it
        return 1


def _open(data: bytes) -> Image.Image:
    """Open ``data`` lazily and check OSS's limits from the header."""
    try:
        im = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:  # over 2 x MAX_PIXELS: Pillow refuses first
        raise ImageTooLarge(str(exc), "0040-00000012") from exc
    except Image.UnidentifiedImageError as exc:
        raise UnsupportedImage("not an image, or not in a supported format") from exc
    except Exception as exc:  # an opener fed arbitrary bytes fails in many ways; all mean "no"
        raise UnsupportedImage(f"corrupt image header: {exc}") from exc
    check_limits(im.width, im.height, im.n_frames if im.format == "GIF" else 1)
    return im


def _finish(im: Image.Image) -> Image.Image:
    """Decode the pixels, stand the picture upright, make it 8-bit RGB."""
    # No ``with im``: for an RGB picture the result *is* ``im``, and the input is in memory.
    try:
        im.load()
        ImageOps.exif_transpose(im, in_place=True)
        return to_rgb(im)
    except Exception as exc:  # truncated or corrupt pixel data, in any decoder
        raise UnsupportedImage(f"corrupt or truncated image: {exc}") from exc


def check_limits(width: int, height: int, frames: int = 1) -> None:
    """Refuse pictures OSS refuses; header numbers only, so a bomb costs nothing to reject."""
    if max(width, height) > MAX_SIDE:
        raise ImageTooLarge(
            f"image side {max(width, height)} px exceeds {MAX_SIDE} px", "0040-00000019"
        )
    if width * height * frames > MAX_PIXELS:
        raise ImageTooLarge(
            f"image has {width * height * frames} pixels, more than {MAX_PIXELS}",
            "0040-00000012",
        )


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB view of any Pillow mode: 16-bit scaled (not clipped), alpha composited on white."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # Pillow's own I→L conversion clips at 255; a 16-bit picture must be scaled instead.
        im = im.convert("I").point(lambda v: v / 257).convert("L")
    if im.mode == "F":
        im = im.point(lambda v: v * 255).convert("L")  # float pictures are 0..1 by convention
    if im.mode in ("RGBA", "RGBa", "LA", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return im.convert("RGB")
