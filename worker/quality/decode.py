"""Bytes → one RGB picture, with OSS's size limits checked before any pixel is decoded.

Formats: those of :data:`FORMATS` — JPEG, PNG, WebP, GIF, BMP, TIFF and AVIF through Pillow,
HEIC/HEIF through ``pillow_heif``. Only the first frame of an animation is scored, but an
animated GIF counts all its frames against :data:`MAX_PIXELS`, as OSS does.

Module-level side effects, both process-wide and idempotent: the HEIF opener is registered
with Pillow, and Pillow's own decompression-bomb threshold is raised to :data:`MAX_PIXELS`
(its default, 89 Mpx warning / 179 Mpx error, would refuse pictures OSS accepts).
``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False, so a truncated file fails instead of
coming back half grey.

OSS's limits bound pixels, not memory: under them a PNG that deflate shrank 1000-fold still
decodes to gigabytes. So a picture must also fit :data:`DECODE_BUDGET_BYTES` at the scale it
is decoded, and a header that promises more pixels than its data can hold is refused as
corrupt before any pixel memory is allocated (libjpeg, for one, fills what is missing with grey
and reports it only as a warning, which Pillow drops).
"""

from __future__ import annotations

import io
import math
import re
from typing import NamedTuple

import pillow_heif
from PIL import Image, ImageOps

__all__ = [
    "MAX_PIXELS",
    "MAX_SIDE",
    "DECODE_BUDGET_BYTES",
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

DECODE_BUDGET_BYTES = 512 * 2**20
"""Most memory one picture may take to decode: its raster as Pillow stores it, at the scale it
is decoded, plus the copies made on the way to 8-bit RGB (:func:`check_decode_budget`), so a
worker's peak stays near this plus the model's, whatever the file. Pictures up to 128 Mpx RGB,
64 Mpx RGBA or 100 Mpx greyscale fit at full scale, and JPEGs are decoded reduced
(:func:`decode_scaled`); larger PNG, TIFF, WebP, GIF, HEIF or AVIF pictures are refused as too
large (400 ImageTooLarge), although OSS would process them."""

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")
"""Pillow format names tried: those OSS image processing reads (a camera's multi-picture MPO
opens as JPEG). Never the rest: EPS would run Ghostscript; every extra parser is attack surface."""

_WHITE = (255, 255, 255)
#: Pillow's names for JPEG data: a camera's multi-picture file is "MPO", its first picture a JPEG.
_JPEG_FORMATS = ("JPEG", "MPO")

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
    return _finish(_open(data))[0]


def decode_scaled(data: bytes, short_side: int) -> tuple[Image.Image, tuple[int, int]]:
    """Like :func:`decode_image`, but a JPEG whose short side exceeds ``short_side`` is decoded
    at the coarsest DCT scale (1/2, 1/4, 1/8) that keeps its short side at least ``short_side``;
    returns the picture and its full upright (width, height).

    Why: libjpeg's scaled decoding skips most of the inverse DCT, so a 12 Mpx photo decodes
    at 1/4 scale in a fraction of the full time. Other formats decode at full size.
    """
    im = _open(data)
    width, height = im.size
    if im.format in _JPEG_FORMATS and min(width, height) > short_side:
        scale = short_side / min(width, height)
        im.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
    picture, swapped = _finish(im)
    return picture, ((height, width) if swapped else (width, height))


_ORIENTATION_TAG = 0x0112
#: EXIF orientations 5..8 rotate by 90°: the upright picture's width is the stored height.
_EXIF_SWAPS_SIDES = {5: True, 6: True, 7: True, 8: True}


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation, 1 when there is none or it cannot be read."""
    try:
        return int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a damaged EXIF block: score the picture as stored
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
    if _data_too_short(im.format, data):
        raise UnsupportedImage(
            f"corrupt or truncated image: too little data for {im.width}x{im.height} pixels"
        )
    return im


def _finish(im: Image.Image) -> tuple[Image.Image, bool]:
    """Decode the pixels, stand the picture upright, make it 8-bit RGB; also says whether
    standing it upright swapped its sides.

    The budget is checked first, and EXIF read only after the pixels: a PNG's EXIF may follow
    its image data, so reading it decodes the picture — and an error met there would be lost,
    Pillow's second ``load()`` then returning the half-decoded picture as if whole.
    """
    # No ``with im``: for an RGB picture the result *is* ``im``, and the input is in memory.
    check_decode_budget(im)
    try:
        im.load()
        swapped = _EXIF_SWAPS_SIDES.get(_orientation(im), False)
        ImageOps.exif_transpose(im, in_place=True)
        return to_rgb(im), swapped
    except MemoryError as exc:  # a limit on this process's memory (the scoring pool sets one)
        raise ImageTooLarge("decoding this image needs more memory than is allowed", "0040-00000012") from exc
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


def check_decode_budget(im: Image.Image) -> None:
    """Refuse a picture whose decoding would take more than :data:`DECODE_BUDGET_BYTES`; from
    the mode and size Pillow will decode at (after a JPEG draft), so nothing is allocated yet."""
    needed = im.width * im.height * _decode_bytes_per_pixel(im)
    if needed > DECODE_BUDGET_BYTES:
        raise ImageTooLarge(
            f"decoding this {im.width}x{im.height} {im.mode} image needs {needed >> 20} MiB, "
            f"more than the {DECODE_BUDGET_BYTES >> 20} MiB a picture may use",
            "0040-00000012",
        )


def _decode_bytes_per_pixel(im: Image.Image) -> int:
    """Pillow's raster (one byte a pixel for 1/L/P, two for I;16, else four: RGB is padded),
    plus the copies :func:`to_rgb` holds at once: the RGB result, and before it the 32-bit
    picture that alpha or 16-bit and float samples go through."""
    mode = im.mode
    stored = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    if mode == "RGB":
        return stored
    via_32_bit = mode in ("LA", "PA", "RGBa", "I", "F") or mode.startswith("I;16") or (
        mode != "RGBA" and "transparency" in im.info)
    return stored + 4 * via_32_bit + 4


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
        rgba = im if im.mode == "RGBA" else im.convert("RGBA")  # converting to itself copies
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return im.convert("RGB")


# --- Is there enough data for the pixels the header declares? ------------------------------
# Only bounds no valid file can break, so a true picture is never refused: the decoders still
# catch the rest of what is corrupt.

#: No deflate stream expands more than 1032-fold (a 258-byte match in two 1-bit codes).
_DEFLATE_MAX_RATIO = 1032
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: JPEG start-of-frame markers of Huffman-coded DCT frames: baseline, extended, progressive.
_SOF_HUFFMAN = (0xC0, 0xC1, 0xC2)
_SOF_ANY = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # less DHT, JPG, DAC
#: A marker that ends entropy-coded data: 0xFF then anything but stuffing (00), RSTn or fill (FF).
_END_OF_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_RESTART = re.compile(rb"\xff[\xd0-\xd7]")


def _data_too_short(fmt: str | None, data: bytes) -> bool:
    """True when ``data`` cannot hold the pixels its header declares (a lying header, or a file
    cut short and closed again): PNG and JPEG, whose decoders would otherwise allocate the
    whole raster first, or — libjpeg — fill it with grey."""
    try:
        if fmt == "PNG":
            return _png_too_short(data)
        if fmt in _JPEG_FORMATS:
            return _jpeg_too_short(data)
    except (IndexError, KeyError, ValueError, ZeroDivisionError):  # damaged: the decoder says how
        return False
    return False


def _png_too_short(data: bytes) -> bool:
    """The image data (IDAT chunks) is too short to inflate to the declared rows."""
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour = data[24], data[25]
    pos, compressed = 8, 0
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if kind == b"IDAT":
            compressed += min(length, len(data) - pos - 8)
        elif kind == b"IEND":
            break
        pos += 12 + length
    raw = height * ((width * _PNG_CHANNELS.get(colour, 1) * depth + 7) // 8)
    return raw > compressed * _DEFLATE_MAX_RATIO


def _jpeg_too_short(data: bytes) -> bool:
    """Too few bits for the frame's 8x8 blocks, or too few restart markers for its MCUs.

    In a Huffman-coded JPEG every block's DC value costs at least one bit, and with a restart
    interval every interval but the last ends in an RSTn marker — what a cut file lacks even
    when an end-of-image marker was put back after the cut.
    """
    frame: _JpegFrame | None = None
    interval, entropy_bits, pos = 0, 0, 2
    while pos >= 0 and pos + 4 <= len(data):
        marker = data[pos + 1]
        if data[pos] != 0xFF or marker == 0xFF:  # stray bytes (libjpeg skips them too) or fill
            pos = data.find(b"\xff", pos + 1)
            continue
        if marker == 0xD9:  # EOI
            break
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in _SOF_ANY:
            frame = _JpegFrame.parse(marker, data[pos + 4:end])
        elif marker == 0xDD:  # DRI
            interval = int.from_bytes(data[end - 2:end], "big")
        elif marker == 0xDA and frame is not None:  # SOS: its entropy-coded data runs to the next marker
            found = _END_OF_SCAN.search(data, end)
            scan_end = found.start() if found else len(data)
            entropy_bits += 8 * (scan_end - end)
            if interval and len(_RESTART.findall(data, end, scan_end)) < frame.restarts(data[pos + 4:end], interval):
                return True
            end = scan_end
        pos = end
    if frame is None or frame.marker not in _SOF_HUFFMAN:
        return False  # arithmetic coding can squeeze a flat picture below a bit per block
    return entropy_bits < sum(frame.blocks(component) for component in frame.sampling)


class _JpegFrame(NamedTuple):
    """What a start-of-frame segment says: marker, size, and each component's (h, v) sampling."""

    marker: int
    height: int
    width: int
    sampling: dict[int, tuple[int, int]]

    @classmethod
    def parse(cls, marker: int, body: bytes) -> _JpegFrame:
        components = range(body[5])
        sampling = {body[6 + 3 * i]: (body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in components}
        return cls(marker, int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big"), sampling)

    def blocks(self, component: int) -> int:
        """8x8 blocks of one component (not padded to whole MCUs: what a one-component scan codes)."""
        h_max, v_max = self._max_sampling()
        h, v = self.sampling[component]
        return math.ceil(math.ceil(self.width * h / h_max) / 8) * math.ceil(math.ceil(self.height * v / v_max) / 8)

    def restarts(self, scan_header: bytes, interval: int) -> int:
        """RSTn markers a complete scan holds: one after every ``interval`` MCUs but the last."""
        components = [scan_header[1 + 2 * i] for i in range(scan_header[0])]
        if len(components) == 1:  # a non-interleaved scan: one block per MCU
            mcus = self.blocks(components[0])
        else:
            h_max, v_max = self._max_sampling()
            mcus = math.ceil(self.width / (8 * h_max)) * math.ceil(self.height / (8 * v_max))
        return math.ceil(mcus / interval) - 1

    def _max_sampling(self) -> tuple[int, int]:
        return max(h for h, _ in self.sampling.values()), max(v for _, v in self.sampling.values())
