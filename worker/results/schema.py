"""The results contract: what one outcome row holds, column by column, in every format.

``ResultRow`` is ``picscore run``'s row (README "Output schema"): one row per object version,
written once. A :class:`RowSchema` names each column's *kind*; the Parquet schema and the
CSV/JSON Lines encodings are derived from the kinds, so a command that writes another kind of
row (covers, filter actions) declares its columns once and gets all three formats.

Value rules shared by all formats: timestamps are UTC with millisecond precision (naive
datetimes are taken as UTC); non-finite floats are written as null, and non-finite entries are
dropped from maps, so a bad score can never produce an unreadable file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any, Literal, Protocol

__all__ = [
    "Status", "ObjectRef", "ResultRow", "RESULT_COLUMNS", "RESULT_SCHEMA", "RowSchema", "Record", "Kind",
    "KeyedRow", "utc_ms",
]

#: A column's kind: text, whole number, real number, UTC timestamp, or a map of text to real.
Kind = Literal["str", "int", "float", "ts", "map"]
#: One row as plain values in column order (what every format writes and reads back).
Record = dict[str, Any]


class Status(StrEnum):
    """What happened to one object. Only ``scored`` counts as success."""

    SCORED = "scored"    # the service answered with a valid score
    SKIPPED = "skipped"  # not sent on purpose (filters, directory marker, too large); see ``error_code``
    MISSING = "missing"  # listed, then gone when scored (404 NoSuchKey)
    FAILED = "failed"    # the service refused (400/403), or retries ran out, or the answer was invalid


class KeyedRow(Protocol):
    """What the checkpoint needs of any outcome row: the object version it is about."""

    key: str
    etag: str


@dataclass(frozen=True)
class ObjectRef:
    """One object version, as a listing (or a results file) reports it."""

    bucket: str
    key: str
    etag: str
    size: int
    last_modified: datetime | None
    prefix: str = ""  # which configured prefix (or results file) it came from: resume bookkeeping
    storage_class: str | None = None  # Standard, IA, Archive, ColdArchive… as the listing reports it


@dataclass
class ResultRow:
    """One row of ``picscore run``. ``dimensions`` holds the per-dimension scores the service
    returned beside ``OverallQualityScore``, if any (e.g. ``{"NoiseScore": 0.97}``): Alibaba
    Cloud returns none, picscore's server several. One map column keeps the schema the same."""

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
    storage_class: str | None = None  # from the listing: what `picscore filter` reports bytes by

    @classmethod
    def skipped(cls, ref: ObjectRef, reason: str, message: str, when: datetime) -> ResultRow:
        return cls(ref.bucket, ref.key, ref.etag, ref.size, ref.last_modified, Status.SKIPPED,
                   error_code=reason, error_message=message, scored_at=when, storage_class=ref.storage_class)


def utc_ms(value: datetime | None) -> datetime | None:
    """UTC, truncated to milliseconds (what Parquet stores), so every format holds the same instant."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    sub_ms = value.microsecond % 1000
    return value.replace(microsecond=value.microsecond - sub_ms) if sub_ms else value


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _str(value: object) -> str | None:
    if value is None or type(value) is str:
        return value
    return value.value if isinstance(value, Enum) else str(value)  # str(Status.X) is "Status.X"


def _int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _map(value: object) -> dict[str, float]:
    if not value:
        return {}
    return {str(k): float(v) for k, v in value.items() if math.isfinite(v)}  # type: ignore[attr-defined]


#: Per kind, the function that turns a row attribute into a record value.
_NORMALISE: dict[str, Callable[[Any], object]] = {
    "str": _str, "int": _int, "float": _finite, "ts": utc_ms, "map": _map,
}


class RowSchema:
    """The columns of one kind of outcome row, in output order, and each column's kind.

    ``optional`` columns were added after files of this kind were first written: a file without
    them still reads, with None in their place, so older results stay usable as inputs."""

    def __init__(self, kinds: Mapping[str, Kind], optional: frozenset[str] = frozenset()) -> None:
        unknown = {kind for kind in kinds.values() if kind not in _NORMALISE}
        if unknown:
            raise ValueError(f"unknown column kinds: {sorted(unknown)}")
        if not optional <= set(kinds):
            raise ValueError(f"optional columns that are not columns: {sorted(optional - set(kinds))}")
        self.kinds: dict[str, Kind] = dict(kinds)
        self.optional = optional
        self.columns: tuple[str, ...] = tuple(kinds)
        self._normalisers = tuple((name, _NORMALISE[kind]) for name, kind in self.kinds.items())

    def to_record(self, row: object) -> Record:
        """The row as plain values in column order: what every format gives back on reading."""
        return {name: normalise(getattr(row, name)) for name, normalise in self._normalisers}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowSchema) and (self.kinds, self.optional) == (other.kinds, other.optional)

    def __hash__(self) -> int:
        return hash(tuple(self.kinds.items()))

    def missing_from(self, names: Iterable[str]) -> list[str]:
        """The required columns a file with columns ``names`` lacks."""
        present = set(names)
        return [name for name in self.columns if name not in present and name not in self.optional]


#: ``picscore run``'s columns (Parquet: ``dimensions`` is map<string, double>; CSV: a JSON object).
RESULT_SCHEMA = RowSchema({
    "bucket": "str", "key": "str", "etag": "str", "size": "int", "last_modified": "ts",
    "status": "str", "score": "float", "dimensions": "map", "error_code": "str",
    "error_message": "str", "http_status": "int", "attempts": "int", "latency_ms": "float",
    "request_id": "str", "scored_at": "ts", "storage_class": "str",
}, optional=frozenset({"storage_class"}))
RESULT_COLUMNS = RESULT_SCHEMA.columns
