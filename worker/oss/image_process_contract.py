"""The ``image/resize``, ``image/format`` and ``image/quality`` contract, in one place for both
ends of the wire.

Alibaba Cloud OSS answers a GetObject with ``x-oss-process=image/<action>,<parameters>/<action>…``
with the processed image; the actions apply in the order given
("Image processing": https://www.alibabacloud.com/help/en/oss/user-guide/overview-17/).
picscore implements three of them:

* ``resize`` ("Resize images": https://www.alibabacloud.com/help/en/oss/user-guide/resize-images-4):
  ``m`` is ``lfit`` (default: the largest picture inside the ``w``x``h`` box), ``mfit`` (the
  smallest picture covering it), ``fill`` (``mfit``, then cropped from the centre to the box),
  ``pad`` (``lfit``, then centred on a box of ``color``, default ``FFFFFF``) or ``fixed`` (exactly
  the box); ``w``, ``h``, ``l`` (the longer side), ``s`` (the shorter side) each 1 to 16,384;
  ``p`` a percentage from 1 to 1,000; ``limit_1`` (default) keeps a picture that the resize
  would enlarge at its own size, ``limit_0`` enlarges it. Where ``w`` or ``h`` is given, ``l``
  and ``s`` do not take effect (OSS says so); where none of them is, ``p`` does. A computed side
  is rounded to the nearest pixel (OSS: "the ratio is rounded to an integer").
  Not documented by OSS, so picscore follows what OSS-compatible services document for the same
  parameters (Volcengine TOS, https://volcengine.com/docs/6349/153626): with one side only, ``fill``
  and ``pad`` use a square box; ``lfit``, ``mfit`` and ``fixed`` follow the picture's proportion.
  ``limit_1`` keeps the size when the resized picture (before ``fill``'s crop or ``pad``'s border)
  would be wider or taller than the source.
* ``format,<jpg|png|webp|bmp|gif|tiff>`` ("Convert image formats":
  https://www.alibabacloud.com/help/en/oss/user-guide/convert-image-formats-2): ``gif`` keeps a GIF
  a GIF and leaves any other picture in its own format, as OSS documents. ``heic`` and ``avif``
  (https://www.alibabacloud.com/help/en/oss/user-guide/advanced-compression-of-heif-or-avif-images)
  are OSS values picscore does not write: ``400 NotImplemented``. ``jpeg`` is not an OSS value.
* ``quality,q_<1..100>`` (relative to a JPEG source's quality) and ``Q_<1..100>`` (absolute, never
  above a JPEG source's), for JPEG and WebP output; ``Q`` wins over ``q``
  ("Adjust image quality": https://www.alibabacloud.com/help/en/oss/user-guide/adjust-image-quality).

A refused parameter raises :class:`ImageParameterError` with the OSS error code of its page in
the ``0040-`` family (https://www.alibabacloud.com/help/en/oss/user-guide/0040-00000312 for ``w``
and so on; see :data:`RESIZE_EC`, :data:`FORMAT_EC`, :data:`QUALITY_EC`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["IMAGE_PROCESS_ACTIONS", "ResizeSpec", "FormatSpec", "QualitySpec", "ImageProcessSpec", "ResizePlan",
           "ImageParameterError", "parse_image_process", "image_process", "plan_resize", "FORMAT_CONTENT_TYPES",
           "RESIZE_EC", "FORMAT_EC", "QUALITY_EC", "MALFORMED_EC", "NOT_IMPLEMENTED_EC", "TARGET_TOO_LARGE_EC",
           "MAX_SIDE", "MAX_TARGET_PIXELS"]

#: The image actions picscore implements, chained with ``/`` in any order and number.
IMAGE_PROCESS_ACTIONS = frozenset({"resize", "format", "quality"})
ResizeMode = Literal["lfit", "mfit", "fill", "pad", "fixed"]
_MODES = ("lfit", "mfit", "fill", "pad", "fixed")
#: The ``format`` values picscore writes, and their Content-Type.
FORMAT_CONTENT_TYPES: dict[str, str] = {
    "jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "bmp": "image/bmp", "gif": "image/gif",
    "tiff": "image/tiff",
}
#: ``format`` values OSS documents that picscore does not write.
_UNWRITTEN_FORMATS = ("heic", "avif")

#: Longest side of a resize parameter and of a resized picture ("Resize images": [1,16384]).
MAX_SIDE = 16_384
#: Most pixels a resized picture may have: 4,096 x 4,096, the page of 0040-00000007
#: (https://www.alibabacloud.com/help/en/oss/support/0040-00000007).
MAX_TARGET_PIXELS = 4096 * 4096
_MAX_PERCENT = 1000

#: The EC of each refused resize parameter: the "0040-000003xx" pages of the OSS documentation
#: (https://help.aliyun.com/en/oss/user-guide/0040-00000311 …). 0040-00000313 (``h``) is
#: inferred from the numbering: its page was not found, those of 311, 312, 314, 315, 317, 318,
#: 319, 321 and 322 were.
RESIZE_EC: dict[str, str] = {
    "m": "0040-00000311",
    "w": "0040-00000312",
    "h": "0040-00000313",
    "l": "0040-00000314",
    "s": "0040-00000315",
    "p": "0040-00000317",
    "color": "0040-00000318",
    "limit": "0040-00000319",
}
#: ``resize,w_0,h_0`` (0040-00000321) and ``resize`` with no size at all (0040-00000322).
RESIZE_ZERO_SIZE_EC = "0040-00000321"
RESIZE_NO_SIZE_EC = "0040-00000322"
#: ``format,dng`` (0040-00000206) and ``format`` with no value (0040-00000207).
FORMAT_EC = {"value": "0040-00000206", "missing": "0040-00000207"}
#: ``quality`` with no parameter (307), a bad ``Q`` (308), a bad ``q`` (309), a bare number (310).
QUALITY_EC = {"missing": "0040-00000307", "Q": "0040-00000308", "q": "0040-00000309", "bare": "0040-00000310"}
#: "Image processing action parameter format invalid" (0040-00000203): an item that is not
#: ``name_value``, a parameter the action does not have, or a one-value action given several.
MALFORMED_EC = "0040-00000203"
#: What the server answers for OSS features it does not implement (as for other actions).
NOT_IMPLEMENTED_EC = "0040-00000212"
#: The resized picture is over :data:`MAX_SIDE` a side or :data:`MAX_TARGET_PIXELS` (0040-00000007).
TARGET_TOO_LARGE_EC = "0040-00000007"


class ImageParameterError(ValueError):
    """A process string OSS refuses: ``status`` ``code`` (400 InvalidArgument, or 400
    NotImplemented for what OSS does and picscore does not) with ``ec``."""

    def __init__(self, message: str, ec: str, name: str | None = None, value: str | None = None,
                 code: str = "InvalidArgument") -> None:
        super().__init__(message)
        self.ec = ec
        self.name = name
        self.value = value
        self.code = code
        self.status = 400


@dataclass(frozen=True)
class ResizeSpec:
    """``resize``: 0 means "not given" for ``width``/``height``/``longer``/``shorter``/``percent``."""

    mode: ResizeMode = "lfit"
    width: int = 0
    height: int = 0
    longer: int = 0
    shorter: int = 0
    percent: int = 0
    limit: bool = True
    color: str = "FFFFFF"

    @property
    def rgb(self) -> tuple[int, int, int]:
        return int(self.color[0:2], 16), int(self.color[2:4], 16), int(self.color[4:6], 16)

    @property
    def size_hint(self) -> int | None:
        """An upper bound on the shorter side of what this resize reads from the picture (None
        for ``p``, which depends on the picture): decoding at a short side of at least this
        loses nothing."""
        sides = [side for side in (self.width, self.height, self.longer, self.shorter) if side]
        return max(sides) if sides else None


@dataclass(frozen=True)
class FormatSpec:
    """``format,<value>``."""

    format: str = "jpg"


@dataclass(frozen=True)
class QualitySpec:
    """``quality``: ``relative`` is ``q``, ``absolute`` is ``Q``; 0 means "not given"."""

    relative: int = 0
    absolute: int = 0


ImageAction = ResizeSpec | FormatSpec | QualitySpec


@dataclass(frozen=True)
class ImageProcessSpec:
    """The actions of one ``image/…`` process string, in order."""

    actions: tuple[ImageAction, ...]

    @property
    def output_format(self) -> str | None:
        """The last ``format`` asked for (None: keep the source's)."""
        formats = [action.format for action in self.actions if isinstance(action, FormatSpec)]
        return formats[-1] if formats else None

    @property
    def quality(self) -> QualitySpec | None:
        qualities = [action for action in self.actions if isinstance(action, QualitySpec)]
        return qualities[-1] if qualities else None

    @property
    def resizes(self) -> tuple[ResizeSpec, ...]:
        return tuple(action for action in self.actions if isinstance(action, ResizeSpec))


@dataclass(frozen=True)
class ResizePlan:
    """How one resize turns a ``width`` x ``height`` picture into its result: the region
    ``box`` of the picture (None: all of it; ``fill`` crops) is resized to ``size`` and placed at
    ``offset`` on a ``canvas`` (larger than ``size`` only for ``pad``)."""

    size: tuple[int, int]
    canvas: tuple[int, int]
    offset: tuple[int, int] = (0, 0)
    box: tuple[float, float, float, float] | None = None


def _round(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, at least 1 (exact: no floating point)."""
    return max(1, (2 * numerator + denominator) // (2 * denominator))


def _fit(width: int, height: int, box_w: int, box_h: int, cover: bool) -> tuple[int, int]:
    """The picture scaled to the largest size inside (or, ``cover``, the smallest covering) the
    box; a box side of 0 follows the picture's proportion."""
    if not box_h or (box_w and (box_w * height <= box_h * width) != cover):
        return box_w, _round(height * box_w, width)  # the width decides
    return _round(width * box_h, height), box_h


def _box(spec: ResizeSpec, width: int, height: int) -> tuple[int, int]:
    if spec.width or spec.height:
        box_w, box_h = spec.width, spec.height
    else:  # l and s: the longer and the shorter side of the picture
        box_w, box_h = (spec.longer, spec.shorter) if width >= height else (spec.shorter, spec.longer)
    if spec.mode in ("fill", "pad") and not (box_w and box_h):
        box_w = box_h = box_w or box_h  # one side: a square box
    return box_w, box_h


def plan_resize(spec: ResizeSpec, width: int, height: int) -> ResizePlan:
    """What ``spec`` makes of a ``width`` x ``height`` picture. Raises :class:`ImageParameterError`
    (0040-00000007) when the result would be over :data:`MAX_SIDE` or :data:`MAX_TARGET_PIXELS`."""
    keep = ResizePlan((width, height), (width, height))
    box: tuple[float, float, float, float] | None = None
    if not (spec.width or spec.height or spec.longer or spec.shorter):
        size = _round(width * spec.percent, 100), _round(height * spec.percent, 100)
        canvas, offset = size, (0, 0)
    else:
        box_w, box_h = _box(spec, width, height)
        if spec.mode == "fixed" and box_w and box_h:
            size = box_w, box_h
        else:
            size = _fit(width, height, box_w, box_h, cover=spec.mode in ("mfit", "fill"))
        canvas, offset = size, (0, 0)
        if spec.mode == "pad":
            canvas = box_w, box_h
            offset = (box_w - size[0]) // 2, (box_h - size[1]) // 2
        elif spec.mode == "fill":
            if spec.limit and (size[0] > width or size[1] > height):
                return keep
            # Crop the box's share of the picture from its centre, in the picture's own pixels,
            # so the covering picture itself (maybe huge) is never made.
            x0, y0 = (size[0] - box_w) / 2, (size[1] - box_h) / 2
            sx, sy = width / size[0], height / size[1]
            box = (x0 * sx, y0 * sy, (x0 + box_w) * sx, (y0 + box_h) * sy)
            size = canvas = box_w, box_h
    if spec.limit and box is None and (size[0] > width or size[1] > height):
        return keep
    for side_w, side_h in (size, canvas):
        if max(side_w, side_h) > MAX_SIDE or side_w * side_h > MAX_TARGET_PIXELS:
            raise ImageParameterError(
                f"The resized image would be {side_w}x{side_h} pixels: at most {MAX_SIDE} a side and "
                f"{MAX_TARGET_PIXELS} pixels in all.", TARGET_TOO_LARGE_EC)
    return ResizePlan(size, canvas, offset, box)


# -- parsing ---------------------------------------------------------------------------------------

def _pairs(action: str, parameters: list[str], allowed: dict[str, str] | frozenset[str]) -> dict[str, str]:
    """``name_value`` items → {name: value}; each name once and known to the action."""
    found: dict[str, str] = {}
    for item in parameters:
        name, underscore, value = item.partition("_")
        if not underscore or not value or name not in allowed:
            raise ImageParameterError(f"image/{action} has no parameter {item[:40]!r} (parameters are name_value).",
                                      MALFORMED_EC, name[:200], value[:200])
        if name in found:
            ec = allowed[name] if isinstance(allowed, dict) else MALFORMED_EC
            raise ImageParameterError(f"The image/{action} parameter {name} is given twice.", ec, name, value[:200])
        found[name] = value
    return found


def _number(action: str, name: str, value: str, low: int, high: int, ec: str) -> int:
    if not (value.isascii() and value.isdigit() and len(value) <= 6 and low <= int(value) <= high):
        raise ImageParameterError(f"The {name} parameter of image/{action} must be a whole number from {low} to "
                                  f"{high}, not {value[:40]!r}.", ec, name, value[:200])
    return int(value)


def _parse_resize(parameters: list[str]) -> ResizeSpec:
    found = _pairs("resize", parameters, RESIZE_EC)
    mode = found.get("m", "lfit")
    if mode not in _MODES:
        raise ImageParameterError(f"m of image/resize is one of {', '.join(_MODES)}, not {mode[:40]!r}.",
                                  RESIZE_EC["m"], "m", mode[:200])
    if found.get("w") == "0" and found.get("h") == "0":
        raise ImageParameterError("image/resize cannot make a picture of width and height 0.", RESIZE_ZERO_SIZE_EC,
                                  "w", "0")
    sides = {name: _number("resize", name, found[name], 1, MAX_SIDE, RESIZE_EC[name]) if name in found else 0
             for name in ("w", "h", "l", "s")}
    percent = _number("resize", "p", found["p"], 1, _MAX_PERCENT, RESIZE_EC["p"]) if "p" in found else 0
    limit = found.get("limit", "1")
    if limit not in ("0", "1"):
        raise ImageParameterError(f"limit of image/resize is 0 or 1, not {limit[:40]!r}.", RESIZE_EC["limit"],
                                  "limit", limit[:200])
    color = found.get("color", "FFFFFF")
    if len(color) != 6 or not all(c in "0123456789abcdefABCDEF" for c in color):
        raise ImageParameterError(f"color of image/resize is six hex digits (RRGGBB), not {color[:40]!r}.",
                                  RESIZE_EC["color"], "color", color[:200])
    if not any(sides.values()) and not percent:
        raise ImageParameterError("image/resize needs w, h, l, s or p.", RESIZE_NO_SIZE_EC)
    return ResizeSpec(mode, sides["w"], sides["h"], sides["l"], sides["s"], percent, limit == "1",  # type: ignore[arg-type]
                      color.upper())


def _parse_format(parameters: list[str]) -> FormatSpec:
    if not parameters:
        raise ImageParameterError("image/format needs a format, e.g. format,jpg.", FORMAT_EC["missing"])
    if len(parameters) > 1:
        raise ImageParameterError("image/format takes one value.", MALFORMED_EC, "format", ",".join(parameters)[:200])
    value = parameters[0]
    if value in _UNWRITTEN_FORMATS:
        raise ImageParameterError(f"picscore serve does not write {value} images.", NOT_IMPLEMENTED_EC, "format", value,
                                  code="NotImplemented")
    if value not in FORMAT_CONTENT_TYPES:
        raise ImageParameterError(f"format is one of {', '.join([*FORMAT_CONTENT_TYPES, *_UNWRITTEN_FORMATS])}, "
                                  f"not {value[:40]!r}.", FORMAT_EC["value"], "format", value[:200])
    return FormatSpec(value)


def _parse_quality(parameters: list[str]) -> QualitySpec:
    if not parameters:
        raise ImageParameterError("image/quality needs q_ or Q_, e.g. quality,q_80.", QUALITY_EC["missing"])
    if parameters[0].isdigit():
        raise ImageParameterError("image/quality takes q_<1-100> or Q_<1-100>, not a bare number.",
                                  QUALITY_EC["bare"], "quality", parameters[0][:200])
    found = _pairs("quality", parameters, {"q": QUALITY_EC["q"], "Q": QUALITY_EC["Q"]})
    if "lossless" in found.values():
        raise ImageParameterError("picscore serve does not implement lossless quality.", NOT_IMPLEMENTED_EC,
                                  code="NotImplemented")
    numbers = {name: _number("quality", name, value, 1, 100, QUALITY_EC[name]) for name, value in found.items()}
    return QualitySpec(numbers.get("q", 0), numbers.get("Q", 0))


_PARSERS = {"resize": _parse_resize, "format": _parse_format, "quality": _parse_quality}


def parse_image_process(actions: str) -> ImageProcessSpec:
    """``resize,m_lfit,w_160,h_160/format,jpg/quality,q_80`` (what follows ``image/``) → spec.

    Every action must be one of :data:`IMAGE_PROCESS_ACTIONS` (the caller answers the others).
    """
    parsed: list[ImageAction] = []
    for action in actions.split("/"):
        name, *parameters = action.split(",")
        if name not in _PARSERS:
            raise ImageParameterError(f"The operation {name[:50]!r} is not one of "
                                      f"{', '.join(sorted(IMAGE_PROCESS_ACTIONS))}.", NOT_IMPLEMENTED_EC,
                                      code="NotImplemented")
        parsed.append(_PARSERS[name]([item for item in parameters if item]))
    return ImageProcessSpec(tuple(parsed))


def image_process(spec: ImageProcessSpec) -> str:
    """The ``x-oss-process`` value asking for ``spec``: ``image/resize,…/format,…/quality,…``."""
    parts = []
    for action in spec.actions:
        if isinstance(action, ResizeSpec):
            items = [f"m_{action.mode}"] + [f"{name}_{value}" for name, value in (
                ("w", action.width), ("h", action.height), ("l", action.longer), ("s", action.shorter),
                ("p", action.percent)) if value]
            items += [f"limit_{int(action.limit)}", f"color_{action.color}"]
            parts.append(",".join(["resize", *items]))
        elif isinstance(action, FormatSpec):
            parts.append(f"format,{action.format}")
        else:
            parts.append(",".join(["quality", *[f"{name}_{value}" for name, value in
                                               (("q", action.relative), ("Q", action.absolute)) if value]]))
    return "image/" + "/".join(parts)
