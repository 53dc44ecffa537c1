"""Helpers for the report tests: results rows built by hand, written in any format, read as an audit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from worker.report.columns import AuditColumns, read_audit
from worker.results.format_names import format_of
from worker.results.schema import RESULT_SCHEMA, ResultRow, Status
from worker.results.whole_file import write_whole_file

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
STATUSES = tuple(s.value for s in Status)


def row(key: str, score: float | None = None, *, status: str = "scored", bucket: str = "photos", size: int = 1000,
        dims: dict[str, float] | None = None, etag: str | None = None, code: str | None = None,
        message: str | None = None, http: int | None = None, at: datetime | None = None) -> ResultRow:
    """One results row; ``status`` may be any string (a file may carry statuses this version does not know)."""
    return ResultRow(bucket=bucket, key=key, etag=etag if etag is not None else f"etag-{key}", size=size,
                     last_modified=T0 - timedelta(days=1), status=status, score=score,  # type: ignore[arg-type]
                     dimensions=dict(dims or {}), error_code=code, error_message=message, http_status=http,
                     attempts=1, latency_ms=12.5, request_id="req", scored_at=at or T0)


def write(path: Path, rows: Iterable[ResultRow]) -> Path:
    """Write ``rows`` to ``path`` in the format its suffix names."""
    fmt = format_of(str(path))
    assert fmt is not None, path
    write_whole_file(path, fmt, RESULT_SCHEMA, rows)
    return path


def audit_of(directory: Path, rows: Sequence[ResultRow], name: str = "results.parquet", **kwargs) -> AuditColumns:
    return read_audit([write(directory / name, rows)], **kwargs)


def status_names(audit: AuditColumns) -> list[str]:
    return [audit.statuses[c] for c in audit.status.tolist()]


def prefix_labels(audit: AuditColumns) -> list[str]:
    return [audit.prefix_label(c) for c in audit.prefix.tolist()]


def error_codes(audit: AuditColumns) -> list[str | None]:
    return [audit.error_codes[c] if c >= 0 else None for c in audit.error_code.tolist()]


def dimension_dicts(audit: AuditColumns) -> list[dict[str, float]]:
    """Each row's sub-scores as a dict (float32 as stored), absent ones left out."""
    return [{name: float(v) for name, v in zip(audit.dimension_names, values, strict=True) if not np.isnan(v)}
            for values in audit.dimensions]


def facts(audit: AuditColumns) -> dict:
    """Everything an audit holds, as plain values (NaN scores as None), for comparing two audits."""
    return {
        "bucket": [audit.buckets[c] for c in audit.bucket.tolist()],
        "key": audit.key.to_pylist(),
        "status": status_names(audit),
        "statuses": list(audit.statuses),
        "score": [None if np.isnan(s) else float(s) for s in audit.score],
        "size": audit.size.tolist(),
        "prefix": prefix_labels(audit),
        "prefixes": list(audit.prefixes),
        "error_code": error_codes(audit),
        "dimensions": dimension_dicts(audit),
        "dimension_names": list(audit.dimension_names),
        "first": audit.first_scored_at,
        "last": audit.last_scored_at,
        "unsettled": audit.unsettled.to_pylist(),
    }


def write_columns(path: Path, **values: Sequence) -> Path:
    """A Parquet results file straight from columns (fast for tens of thousands of rows); the
    columns not given are null (``status`` defaults to scored, ``bucket`` to photos)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from worker.results.formats import RESULT_PARQUET_SCHEMA

    rows = len(values["key"])
    values.setdefault("bucket", ["photos"] * rows)
    values.setdefault("status", ["scored"] * rows)
    arrays = [pa.array(values[f.name], f.type) if f.name in values else pa.nulls(rows, f.type)
              for f in RESULT_PARQUET_SCHEMA]
    pq.write_table(pa.Table.from_arrays(arrays, schema=RESULT_PARQUET_SCHEMA), path)
    return path
