"""The ``video/snapshot`` contract, in one place for both ends of the wire.

Alibaba Cloud OSS captures one frame of an H.264 or H.265 video when it is read with
``x-oss-process=video/snapshot,t_7000,f_jpg,w_800,h_600,m_fast,ar_auto`` and answers with the
image ("Video snapshots": https://www.alibabacloud.com/help/en/oss/user-guide/video-snapshots):

* ``t``: the time, in milliseconds; past the end of the video, the last frame;
* ``w``, ``h``: the size, each from 0 to the video's; 0 follows the other side's proportion,
  both 0 keep the video's size; ``l``, ``s``: the same by the longer and the shorter side
  (documented by their error pages, 0053-00000102 and -103; where ``w`` or ``h`` is given too,
  picscore lets ``w``/``h`` decide: OSS does not say);
* ``m_fast``: the nearest key frame before ``t`` instead of the frame at ``t``;
* ``f``: ``jpg`` or ``png``;
* ``ar_auto``: rotate the image as the video's rotation metadata says; ``ar_h`` and ``ar_w``
  (documented by 0053-00000108) turn it portrait or landscape.

``picscore serve`` parses the process with :func:`parse_snapshot` and ``picscore thumbnails``
builds it with :func:`snapshot_process`, so the two ends cannot drift apart. A parameter OSS
refuses raises :class:`SnapshotParameterError`, carrying the OSS error code of its ``0053-``
family (one documentation page per code, e.g.
https://www.alibabacloud.com/help/en/oss/user-guide/0053-00000104 for ``w``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SNAPSHOT_ACTION", "SnapshotSpec", "SnapshotParameterError", "parse_snapshot", "snapshot_process",
           "SNAPSHOT_CONTENT_TYPES", "PARAMETER_EC", "MALFORMED_EC"]

SNAPSHOT_ACTION = "video/snapshot"
SnapshotFormat = Literal["jpg", "png"]
#: ``ar``: None (as stored), "auto" (the rotation metadata), "h" (portrait), "w" (landscape).
Orientation = Literal["auto", "h", "w"]
SNAPSHOT_CONTENT_TYPES: dict[str, str] = {"jpg": "image/jpeg", "png": "image/png"}

#: The OSS error code of each refused parameter (the "0053-" pages of the OSS documentation).
PARAMETER_EC: dict[str, str] = {
    "t": "0053-00000101",
    "l": "0053-00000102",
    "s": "0053-00000103",
    "w": "0053-00000104",
    "h": "0053-00000105",
    "m": "0053-00000106",
    "f": "0053-00000107",
    "ar": "0053-00000108",
}
#: A process string that does not parse as ``name_value`` pairs (0053-00000109).
MALFORMED_EC = "0053-00000109"
_MAX_TIME_MS = 2**53  # JSON-safe; far past any video, and t past the end is the last frame anyway


class SnapshotParameterError(ValueError):
    """A snapshot parameter OSS refuses: 400 InvalidArgument with ``ec``."""

    def __init__(self, message: str, ec: str, name: str | None = None, value: str | None = None) -> None:
        super().__init__(message)
        self.ec = ec
        self.name = name
        self.value = value


@dataclass(frozen=True)
class SnapshotSpec:
    """One snapshot request. ``width``/``height`` 0 mean "follow the other side" (or the video's
    size when both are 0); they are checked against the video's size when it is known."""

    time_ms: int = 0
    width: int = 0
    height: int = 0
    fast: bool = False
    format: SnapshotFormat = "jpg"
    orient: Orientation | None = None
    longer: int = 0
    shorter: int = 0

    @property
    def content_type(self) -> str:
        return SNAPSHOT_CONTENT_TYPES[self.format]


def _whole_number(name: str, value: str) -> int:
    if not value.isdigit() or not value.isascii():
        raise SnapshotParameterError(f"The {name} parameter of video/snapshot must be a whole number >= 0, "
                                     f"not {value[:40]!r}.", PARAMETER_EC[name], name, value[:200])
    number = int(value)
    if number > _MAX_TIME_MS:
        raise SnapshotParameterError(f"The {name} parameter of video/snapshot is out of range.",
                                     PARAMETER_EC[name], name, value[:200])
    return number


def parse_snapshot(parameters: str) -> SnapshotSpec:
    """``t_7000,f_jpg,w_800,h_600,m_fast,ar_auto`` (what follows ``video/snapshot,``) → spec.

    The order of the parameters does not matter and each may appear once; an empty string is
    the first frame at the video's size, as JPEG.
    """
    found: dict[str, str] = {}
    for item in filter(None, parameters.split(",")):
        name, underscore, value = item.partition("_")
        if not underscore or not value:
            raise SnapshotParameterError(f"The video/snapshot parameter {item[:40]!r} is not name_value.",
                                         MALFORMED_EC, item[:200])
        if name not in PARAMETER_EC:
            raise SnapshotParameterError(f"video/snapshot has no parameter {name[:40]!r}.", MALFORMED_EC,
                                         name[:200], value[:200])
        if name in found:
            raise SnapshotParameterError(f"The video/snapshot parameter {name} is given twice.",
                                         PARAMETER_EC[name], name, value[:200])
        found[name] = value
    numbers = {name: _whole_number(name, found[name]) if name in found else 0 for name in ("t", "w", "h", "l", "s")}
    mode, fmt, rotate = found.get("m"), found.get("f", "jpg"), found.get("ar")
    if mode is not None and mode != "fast":
        raise SnapshotParameterError(f"m of video/snapshot is fast or absent, not {mode[:40]!r}.",
                                     PARAMETER_EC["m"], "m", mode[:200])
    if fmt not in SNAPSHOT_CONTENT_TYPES:
        raise SnapshotParameterError(f"f of video/snapshot is jpg or png, not {fmt[:40]!r}.",
                                     PARAMETER_EC["f"], "f", fmt[:200])
    if rotate is not None and rotate not in ("auto", "h", "w"):
        raise SnapshotParameterError(f"ar of video/snapshot is auto, h, w or absent, not {rotate[:40]!r}.",
                                     PARAMETER_EC["ar"], "ar", rotate[:200])
    return SnapshotSpec(numbers["t"], numbers["w"], numbers["h"], mode == "fast", fmt,  # type: ignore[arg-type]
                        rotate, numbers["l"], numbers["s"])  # type: ignore[arg-type]


def snapshot_process(spec: SnapshotSpec) -> str:
    """The ``x-oss-process`` value asking for ``spec``:
    ``video/snapshot,t_…,f_…[,w_…][,h_…][,l_…][,s_…][,m_fast][,ar_…]``."""
    parts = [SNAPSHOT_ACTION, f"t_{spec.time_ms}", f"f_{spec.format}"]
    parts += [f"{name}_{value}" for name, value in (("w", spec.width), ("h", spec.height), ("l", spec.longer),
                                                     ("s", spec.shorter)) if value]
    if spec.fast:
        parts.append("m_fast")
    if spec.orient:
        parts.append(f"ar_{spec.orient}")
    return ",".join(parts)
