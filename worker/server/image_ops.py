"""The pixels of ``image/resize``, ``image/format`` and ``image/quality``: bytes and a parsed
:class:`~worker.oss.image_process_contract.ImageProcessSpec` in, the processed image out.

Pure functions, run in a worker of the processing pool (:mod:`worker.server.scoring_pool`).
Decoding goes through :mod:`worker.quality.decode`, so every format the server scores (JPEG, PNG,
WebP, GIF, BMP, TIFF, HEIF, AVIF) can be resized, under the same OSS source limits (30,000 px a
side, 250 Mpx) and memory budget; the 20 MB object limit is checked before the bytes are read.
What OSS documents and picscore does:

* Orientation: the picture is turned upright from its EXIF orientation before it is resized.
  OSS's ``auto-orient`` defaults to 1 ("Default value: 1",
  https://www.alibabacloud.com/help/en/oss/user-guide/auto-rotate-4); ``auto-orient,0`` is not
  implemented. The result carries no EXIF.
* Without ``format`` the result keeps the source's format, as OSS does; picscore writes JPEG,
  PNG, WebP, BMP, GIF and TIFF, and a HEIF or AVIF source comes back as JPEG (OSS does not say).
* Transparency is composited on white (the decoder's behaviour; OSS fills transparent areas with
  white when the output cannot carry them, and keeps them when it can: picscore does not), and an
  animated GIF comes back as its first frame (OSS resizes every frame).
* Quality: ``q`` is relative to a JPEG source's quality (estimated from its quantisation
  tables) and absolute otherwise; ``Q`` is absolute but never above a JPEG source's. Without
  ``quality``, a JPEG keeps its source's estimated quality and other pictures are written at 85.
* A large JPEG is decoded at a reduced DCT scale when the first resize needs less
  (:func:`worker.quality.decode.decode_scaled`), never below the size the resize reads.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from ..oss.image_process_contract import (
    FORMAT_CONTENT_TYPES,
    ImageParameterError,
    ImageProcessSpec,
    ResizeSpec,
    plan_resize,
)
from ..quality.decode import FORMATS, ImageError, ImageTooLarge, decode_image, decode_scaled

__all__ = ["ProcessedImage", "process_image", "process_image_bytes", "jpeg_quality", "SOURCE_TOO_LARGE_EC",
           "ImageOutcome"]

#: "The size of the source image exceeds the limit when you resize" (30,000 px a side, 250 Mpx):
#: https://www.alibabacloud.com/help/en/oss/user-guide/0040-00000009
SOURCE_TOO_LARGE_EC = "0040-00000009"
#: WebP stores each side in 14 bits ("Maximum width and height allowed is 16383 pixels for
#: converting webp": https://www.alibabacloud.com/help/en/oss/the-maximum-width-and-height-allowed-is-16383-pixels-for-converting-webp-error-message-appears-when-you-convert-the-image-format).
WEBP_MAX_SIDE = 16_383
DEFAULT_QUALITY = 85
#: Pillow's format name → the ``format`` value that keeps it (HEIF and AVIF: JPEG).
_SOURCE_FORMATS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "GIF": "gif",
                   "TIFF": "tiff"}
_PILLOW_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP", "gif": "GIF", "tiff": "TIFF"}
#: The IJG luminance quantisation table at quality 50 (ITU T.81 Annex K, table K.1).
_IJG_LUMINANCE = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                  14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                  49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)

@dataclass(frozen=True)
class ProcessedImage:
    body: bytes
    content_type: str
    size: tuple[int, int]


def jpeg_quality(quantization: dict[int, list[int]] | None) -> int | None:
    """The IJG quality (1..100) whose luminance table is closest in sum to the first table of
    ``quantization`` (Pillow's ``im.quantization``); None without tables."""
    if not quantization:
        return None
    table = quantization[min(quantization)]
    scale = 100 * sum(table) / sum(_IJG_LUMINANCE)  # libjpeg's scale factor, in percent
    quality = (200 - scale) / 2 if scale <= 100 else 5000 / scale
    return max(1, min(100, round(quality)))


def _source(data: bytes) -> tuple[str, int | None]:
    """The source's ``format`` value and, for a JPEG, its estimated quality (the header only)."""
    with Image.open(io.BytesIO(data), formats=FORMATS) as im:
        quality = jpeg_quality(getattr(im, "quantization", None)) if im.format in ("JPEG", "MPO") else None
        return _SOURCE_FORMATS.get(im.format or "", "jpg"), quality


def _output_format(spec: ImageProcessSpec, source: str) -> str:
    asked = spec.output_format
    if asked is None or (asked == "gif" and source != "gif"):  # OSS: gif keeps a non-GIF in its format
        return source
    return asked


def _quality(spec: ImageProcessSpec, output: str, source: str, source_quality: int | None) -> int | None:
    if output not in ("jpg", "webp"):
        return None
    from_jpeg = source_quality if source == "jpg" else None
    asked = spec.quality
    if asked is None:
        return from_jpeg if from_jpeg and output == "jpg" else DEFAULT_QUALITY
    if asked.absolute:
        return min(asked.absolute, from_jpeg) if from_jpeg else asked.absolute
    return max(1, round(from_jpeg * asked.relative / 100)) if from_jpeg else asked.relative


def _resize(picture: Image.Image, spec: ResizeSpec, full: tuple[int, int]) -> Image.Image:
    """Apply one resize planned for a ``full``-sized picture to ``picture`` (the same picture,
    possibly decoded at a reduced scale)."""
    plan = plan_resize(spec, *full)
    if plan.size == full and plan.box is None and plan.canvas == full:
        return picture if picture.size == full else picture.resize(full, Image.Resampling.LANCZOS)
    sx, sy = picture.width / full[0], picture.height / full[1]
    box = (0.0, 0.0, float(picture.width), float(picture.height)) if plan.box is None else (
        plan.box[0] * sx, plan.box[1] * sy, plan.box[2] * sx, plan.box[3] * sy)
    resized = picture.resize(plan.size, Image.Resampling.LANCZOS, box=box)
    if plan.canvas == plan.size:
        return resized
    canvas = Image.new("RGB", plan.canvas, spec.rgb)
    canvas.paste(resized, plan.offset)
    return canvas


def process_image(data: bytes, spec: ImageProcessSpec) -> ProcessedImage:
    """Decode ``data``, apply ``spec``'s actions in order, encode. Raises the decoder's
    :class:`~worker.quality.decode.ImageError` and :class:`ImageParameterError`."""
    resizes = spec.resizes
    hint = resizes[0].size_hint if resizes else None
    if hint is not None:
        picture, full = decode_scaled(data, hint)
    else:
        picture = decode_image(data)
        full = picture.size
    source, source_quality = _source(data)
    for resize in resizes:
        picture = _resize(picture, resize, full)
        full = picture.size
    output = _output_format(spec, source)
    if output == "webp" and max(picture.size) > WEBP_MAX_SIDE:
        raise ImageParameterError(f"Maximum width and height allowed is {WEBP_MAX_SIDE} pixels for converting webp.",
                                  "0040-00000007")
    quality = _quality(spec, output, source, source_quality)
    buffer = io.BytesIO()
    options = {} if quality is None else {"quality": quality}
    picture.save(buffer, _PILLOW_FORMATS[output], **options)
    return ProcessedImage(buffer.getvalue(), FORMAT_CONTENT_TYPES[output], picture.size)


#: What a worker sends back: the image, or an OSS error as (status, code, EC, message).
ImageOutcome = ProcessedImage | tuple[int, str, str | None, str]


def process_image_bytes(data: bytes, spec: ImageProcessSpec) -> ImageOutcome:
    """:func:`process_image`, with the errors a bad picture or request gets as values (run in a
    worker process: an answer, not a crash). Over OSS's source limits, a resize answers
    0040-00000009, the code of its page; other processing keeps the decoder's code."""
    try:
        return process_image(data, spec)
    except ImageTooLarge as exc:
        return (400, exc.oss_code, SOURCE_TOO_LARGE_EC if spec.resizes else exc.ec, str(exc))
    except ImageError as exc:
        return (400, exc.oss_code, exc.ec, str(exc))
    except ImageParameterError as exc:
        return (exc.status, exc.code, exc.ec, str(exc))
    except MemoryError:  # the worker's address-space limit
        return (400, "ImageTooLarge", "0040-00000012", "The image needs more memory to process than is allowed.")
