"""The two records that flow through the pipeline: a listed object, and its result row.

``ResultRow`` is the output contract (README "Output schema"): one row per object version,
written once. Column order and types here are the order and types in every output format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = ["Status", "ObjectRef", "ResultRow", "RESULT_COLUMNS"]


class Status(StrEnum):
    """What happened to one object. Only ``scored`` counts as success."""

    SCORED = "scored"    # the service answered with a valid score
    SKIPPED = "skipped"  # not sent on purpose (filters, directory marker, too large); see ``error_code``
    MISSING = "missing"  # listed, then gone when scored (404 NoSuchKey)
    FAILED = "failed"    # the service refused (400/403), or retries ran out, or the answer was invalid


@dataclass(frozen=True)
class ObjectRef:
    """One listed object version, as ListObjectsV2 reports it."""

    bucket: str
    key: str
    etag: str
    size: int
    last_modified: datetime | None
    prefix: str = ""  # which configured prefix listed it (checkpoint bookkeeping)


@dataclass
class ResultRow:
    """One output row. ``dimensions`` holds the per-dimension scores the service returned beside
    ``OverallQualityScore``, if any (e.g. ``{"NoiseScore": 0.97}``): Alibaba Cloud returns none,
    picscore's server several. One map column keeps the schema the same for both."""

    bucket: str
    key: str
    etag: str
    size: int
    last_modified: datetime | None
    status: Status
    score: float | None = None
    dimensions: dict[str, float] = field(default_factory=dict)
    error_code: str | None = None   # OSS Code, or picscore's reason for skipped/invalid rows
    error_message: str | None = None
    http_status: int | None = None
    attempts: int = 0
    latency_ms: float | None = None  # of the last attempt
    request_id: str | None = None
    scored_at: datetime | None = None  # when the row was decided (UTC)

    @classmethod
    def skipped(cls, ref: ObjectRef, reason: str, message: str, when: datetime) -> ResultRow:
        return cls(ref.bucket, ref.key, ref.etag, ref.size, ref.last_modified, Status.SKIPPED,
                   error_code=reason, error_message=message, scored_at=when)


#: Columns, in output order (Parquet: ``dimensions`` is map<string, double>; CSV: a JSON object).
RESULT_COLUMNS = (
    "bucket", "key", "etag", "size", "last_modified", "status", "score", "dimensions",
    "error_code", "error_message",
    "http_status", "attempts", "latency_ms", "request_id", "scored_at",
)
