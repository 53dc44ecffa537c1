"""``picscore thumbnails``' output: one row per video, in Parquet, CSV or JSON Lines.

``score`` and ``dimensions`` are the chosen frame's, so the rows read like ``picscore run``'s
where they overlap (the same status values, error columns and summary). The rest says what
was chosen and from what:

* ``duration_ms`` (from the container's header), ``chosen_ms`` (the chosen frame's time);
* ``runners_up``: time (ms, as text) → score of the next best frames a person may prefer;
* ``candidates``: frames looked at; ``rejected``: ``time:reason`` of the frames a person would
  never pick (``black``, ``flat``, ``fade``, ``transition``, ``duplicate-of-rejected``, ``unscored``), and
  ``fallback`` 1 when every frame was rejected and the best of them was chosen anyway;
* ``saved_to``: where ``--save-to`` wrote the chosen frame;
* ``calls``: the calls this video cost: billed snapshots and image/score calls, and the
  ranged reads, puts and deletes beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..results.schema import ObjectRef, RowSchema, Status

__all__ = ["ThumbnailRow", "THUMBNAIL_SCHEMA", "VIDEO_EXTENSIONS"]

#: Keys that are listed as videos; anything else is a ``skipped`` row (``NotVideo``). The
#: containers FFmpeg reads that carry H.264/H.265 in practice.
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".ts", ".m2ts", ".mts",
                              ".3gp", ".3g2", ".mpg", ".mpeg", ".hevc", ".h264", ".h265"})


@dataclass(frozen=True)
class ThumbnailRow:
    """One video's outcome."""

    bucket: str
    key: str
    etag: str
    size: int
    last_modified: datetime | None
    status: Status
    duration_ms: int | None = None
    chosen_ms: int | None = None
    score: float | None = None
    dimensions: dict[str, float] = field(default_factory=dict)
    runners_up: dict[str, float] = field(default_factory=dict)
    candidates: int = 0
    rejected: str | None = None
    fallback: int = 0
    saved_to: str | None = None
    calls: int = 0
    error_code: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    attempts: int = 0
    latency_ms: float | None = None
    request_id: str | None = None
    scored_at: datetime | None = None
    storage_class: str | None = None

    @classmethod
    def skipped(cls, ref: ObjectRef, reason: str, message: str, when: datetime) -> ThumbnailRow:
        return cls.of(ref, Status.SKIPPED, error_code=reason, error_message=message, scored_at=when)

    @classmethod
    def of(cls, ref: ObjectRef, status: Status, **fields: object) -> ThumbnailRow:
        return cls(ref.bucket, ref.key, ref.etag, ref.size, ref.last_modified, status,
                   storage_class=ref.storage_class, **fields)  # type: ignore[arg-type]


THUMBNAIL_SCHEMA = RowSchema({
    "bucket": "str", "key": "str", "etag": "str", "size": "int", "last_modified": "ts", "status": "str",
    "duration_ms": "int", "chosen_ms": "int", "score": "float", "dimensions": "map", "runners_up": "map",
    "candidates": "int", "rejected": "str", "fallback": "int", "saved_to": "str", "calls": "int",
    "error_code": "str", "error_message": "str", "http_status": "int", "attempts": "int", "latency_ms": "float",
    "request_id": "str", "scored_at": "ts", "storage_class": "str",
})
