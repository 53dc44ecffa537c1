"""Result output: durable part files during the run, one atomic final file at the end.

Rows arrive in batches; each batch becomes one *part* file in ``<output>.parts/``
(``part-000042.parquet``), and :meth:`ResultSink.finalize` merges the committed parts, in part
order, into ``<output>``. Three formats share this shape (:class:`PartSink`): Parquet, CSV and
JSON Lines, with the columns and types of ``model.RESULT_COLUMNS``.

Why the output loses nothing and repeats nothing across ``kill -9``:

1. A part is written to a temp file in the parts directory, fsynced, renamed to its final name,
   and the directory fsynced: after that the file survives a crash.
2. Only then does ``Checkpoint.commit_part`` record the part, its rows' ``(key, etag)`` and the
   listing progress in one SQLite transaction. A row counts as written iff that commit happened.
3. Opening a sink deletes every file in the parts directory that the checkpoint does not list
   (temp files, and a part renamed just before a crash but never committed). Those rows are
   not in ``done``, so the resumed run scores them again and writes them exactly once.
   A committed part that is missing stops the run (``SinkError``) instead of losing its rows.
4. ``finalize`` writes ``<output>`` through a temp file + fsync + rename, marks the checkpoint
   finished, then removes the parts. A crash before the mark re-runs the merge from the intact
   parts (same result); a crash after it leaves only leftovers that the next open removes.

So every row in the final file comes from exactly one committed part, and every committed
``(key, etag)`` is in exactly one part. Memory stays bounded: parts are streamed (Parquet in
record batches, CSV/JSONL as bytes), never the whole run.

Value rules shared by all formats: timestamps are UTC with millisecond precision (naive
datetimes are taken as UTC); non-finite floats are written as null, and non-finite entries are
dropped from ``dimensions``, so a bad score can never produce an unreadable file. In CSV, null
is the empty cell, so an empty string reads back as ``None``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from worker.pipeline.checkpoint import Checkpoint, ListingState
from worker.pipeline.model import RESULT_COLUMNS, ResultRow

__all__ = [
    "open_sink", "ResultSink", "SinkError", "read_rows", "FORMATS", "PARQUET_SCHEMA", "to_record",
    "PartSink", "ParquetPartSink", "CsvPartSink", "JsonlPartSink", "COALESCE_ROWS",
]

FORMATS = ("parquet", "csv", "jsonl")

#: Final Parquet row groups hold at least this many rows (except the last): small parts are
#: coalesced, and no more than about twice this many rows are held in memory while merging.
COALESCE_ROWS = 65_536

PARQUET_COMPRESSION = "zstd"

#: Each column's kind; the Parquet schema and the CSV/JSONL encodings derive from it.
_KINDS: dict[str, str] = {
    "bucket": "str", "key": "str", "etag": "str", "size": "int", "last_modified": "ts",
    "status": "str", "score": "float", "dimensions": "map", "error_code": "str",
    "error_message": "str", "http_status": "int", "attempts": "int", "latency_ms": "float",
    "request_id": "str", "scored_at": "ts",
}
if tuple(_KINDS) != RESULT_COLUMNS:  # pragma: no cover - guards edits to model.py
    raise ImportError("sinks._KINDS is out of step with model.RESULT_COLUMNS")

_ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(), "int": pa.int64(), "float": pa.float64(),
    "ts": pa.timestamp("ms", tz="UTC"), "map": pa.map_(pa.string(), pa.float64()),
}

PARQUET_SCHEMA = pa.schema([pa.field(name, _ARROW_TYPES[kind]) for name, kind in _KINDS.items()])

Record = dict[str, object]


class SinkError(Exception):
    """The output cannot be written or resumed as asked; the message says why."""


# -- values ------------------------------------------------------------------------------------


def _utc_ms(value: datetime | None) -> datetime | None:
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


#: Per kind, the function that turns a ``ResultRow`` attribute into a record value.
_NORMALISE: dict[str, Callable[[Any], object]] = {
    "str": _str, "int": _int, "float": _finite, "ts": _utc_ms, "map": _map,
}
_COLUMN_NORMALISERS = tuple((name, _NORMALISE[kind]) for name, kind in _KINDS.items())


def to_record(row: ResultRow) -> Record:
    """The row as plain values in column order: what :func:`read_rows` gives back for every format."""
    return {name: normalise(getattr(row, name)) for name, normalise in _COLUMN_NORMALISERS}


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _to_text(kind: str, value: object) -> object:
    """A record value as JSON-ready data (CSV cells are this, with maps as compact JSON text)."""
    if value is None:
        return None
    if kind == "ts":
        return _iso(value)  # type: ignore[arg-type]
    return value


def _from_text(kind: str, value: object) -> object:
    """Inverse of :func:`_to_text`."""
    if value is None:
        return {} if kind == "map" else None
    if kind == "int":
        return int(value)  # type: ignore[call-overload]
    if kind == "float":
        return float(value)  # type: ignore[arg-type]
    if kind == "ts":
        return _utc_ms(datetime.fromisoformat(value))  # type: ignore[arg-type]
    if kind == "map" and isinstance(value, str):
        return {str(k): float(v) for k, v in json.loads(value).items()}
    if kind == "map":
        return {str(k): float(v) for k, v in value.items()}  # type: ignore[attr-defined]
    return value


def _compact_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# -- durable files -----------------------------------------------------------------------------


def _fsync_path(path: Path, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(dest: Path) -> Path:
    """``.<name>.<random>.tmp`` beside ``dest``: same filesystem (rename is atomic), easy to sweep."""
    return dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.tmp")


@contextmanager
def _atomic(dest: Path) -> Iterator[Path]:
    """Yield a temp path to write; then fsync it, rename it over ``dest`` and fsync the directory."""
    tmp = _temp_name(dest)
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_path(dest.parent, directory=True)


# -- formats -----------------------------------------------------------------------------------


class PartSink(Protocol):
    """One output format: how a part is written, how parts merge, how a file reads back."""

    suffix: str

    def write_part(self, records: Sequence[Record], path: Path) -> None:
        """Write ``records`` as one complete file at ``path``."""

    def merge(self, parts: Sequence[Path], path: Path) -> None:
        """Write ``path`` from ``parts`` in order, holding a bounded number of rows (zero parts: empty file)."""

    def read(self, path: Path) -> Iterator[Record]:
        """Yield the file's rows as records (the values of :func:`to_record`)."""


class ParquetPartSink:
    """Parquet: each part one row group; the final file re-chunked into ≥ ``COALESCE_ROWS`` groups."""

    suffix = ".parquet"

    def write_part(self, records: Sequence[Record], path: Path) -> None:
        columns = {name: [record[name] for record in records] for name in RESULT_COLUMNS}
        table = pa.Table.from_pydict(columns, schema=PARQUET_SCHEMA)
        pq.write_table(table, path, compression=PARQUET_COMPRESSION, row_group_size=max(len(records), 1))

    def merge(self, parts: Sequence[Path], path: Path) -> None:
        with pq.ParquetWriter(path, PARQUET_SCHEMA, compression=PARQUET_COMPRESSION) as writer:
            pending: list[pa.Table] = []
            pending_rows = 0
            for chunk in _chunks(parts):
                pending.append(chunk)
                pending_rows += chunk.num_rows
                if pending_rows >= COALESCE_ROWS:
                    writer.write_table(pa.concat_tables(pending), row_group_size=pending_rows)
                    pending, pending_rows = [], 0
            if pending_rows:
                writer.write_table(pa.concat_tables(pending), row_group_size=pending_rows)

    def read(self, path: Path) -> Iterator[Record]:
        with pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=COALESCE_ROWS):
                for row in batch.to_pylist():
                    yield _from_arrow(row)


def _chunks(parts: Iterable[Path]) -> Iterator[pa.Table]:
    """Every part's rows in tables of at most ``COALESCE_ROWS``, one file open at a time."""
    for part in parts:
        with pq.ParquetFile(part) as parquet:
            for batch in parquet.iter_batches(batch_size=COALESCE_ROWS):
                chunk = pa.Table.from_batches([batch])
                yield chunk if chunk.schema == PARQUET_SCHEMA else chunk.cast(PARQUET_SCHEMA)


def _from_arrow(row: Record) -> Record:
    """Arrow's Python values → record values (maps come back as key/value pairs, UTC as zoneinfo)."""
    for name, kind in _KINDS.items():
        value = row[name]
        if kind == "map":
            row[name] = dict(value) if value else {}
        elif kind == "ts" and value is not None:
            row[name] = value.replace(tzinfo=UTC)  # type: ignore[attr-defined]
    return row


class CsvPartSink:
    """CSV (RFC 4180 quoting, UTF-8, ``\\n`` line ends): every part carries the header so it reads
    on its own; the final file has it once. ``dimensions`` is a compact JSON object."""

    suffix = ".csv"

    def write_part(self, records: Sequence[Record], path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(RESULT_COLUMNS)
            writer.writerows(_csv_cells(record) for record in records)

    def merge(self, parts: Sequence[Path], path: Path) -> None:
        with path.open("wb") as out:
            out.write((",".join(RESULT_COLUMNS) + "\n").encode())
            for part in parts:
                with part.open("rb") as source:
                    source.readline()  # the part's header (plain names: never quoted, one line)
                    shutil.copyfileobj(source, out)

    def read(self, path: Path) -> Iterator[Record]:
        with path.open(encoding="utf-8", newline="") as source:
            for row in csv.DictReader(source):
                yield {name: _from_text(kind, row[name] or None) for name, kind in _KINDS.items()}  # "" is null


def _csv_cells(record: Record) -> list[object]:
    cells: list[object] = []
    for name, kind in _KINDS.items():
        value = _to_text(kind, record[name])
        if kind == "map":
            value = _compact_json(value)
        elif kind == "float" and value is not None:
            value = repr(value)  # shortest text that reads back to the same float
        cells.append("" if value is None else value)
    return cells


class JsonlPartSink:
    """JSON Lines: one object per row, the column names as keys, ``dimensions`` nested, UTF-8."""

    suffix = ".jsonl"

    def write_part(self, records: Sequence[Record], path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="\n") as out:
            for record in records:
                out.write(_compact_json({n: _to_text(k, record[n]) for n, k in _KINDS.items()}) + "\n")

    def merge(self, parts: Sequence[Path], path: Path) -> None:
        with path.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, out)

    def read(self, path: Path) -> Iterator[Record]:
        with path.open(encoding="utf-8", newline="\n") as source:
            for line in source:
                if line.strip():
                    obj = json.loads(line)
                    yield {name: _from_text(kind, obj.get(name)) for name, kind in _KINDS.items()}


_SINKS: dict[str, type[ParquetPartSink | CsvPartSink | JsonlPartSink]] = {
    "parquet": ParquetPartSink, "csv": CsvPartSink, "jsonl": JsonlPartSink,
}
_SUFFIX_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def _part_sink(fmt: str) -> PartSink:
    try:
        return _SINKS[fmt]()
    except KeyError:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}") from None


def read_rows(path: Path, fmt: str | None = None) -> Iterator[Record]:
    """Stream the rows of a final (or part) file, any format; ``fmt`` defaults from the suffix.

    Values are those of :func:`to_record` (``status`` as its string, timestamps UTC-aware).
    """
    path = Path(path)
    if fmt is None:
        fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"cannot tell the format of {path} from its suffix; pass fmt")
    return _part_sink(fmt).read(path)


# -- the sink ----------------------------------------------------------------------------------


class ResultSink:
    """Writes one run's output through its checkpoint. One writer: not for concurrent callers."""

    def __init__(self, output: Path, fmt: str, checkpoint: Checkpoint, part_sink: PartSink) -> None:
        """Use :func:`open_sink`, which also cleans and checks the parts directory."""
        self.output = output
        self.fmt = fmt
        self.parts_dir = output.with_name(output.name + ".parts")
        self._checkpoint = checkpoint
        self._format = part_sink
        self._next_part = checkpoint.next_part_no()
        self._finished = checkpoint.is_finished()

    def write_part(self, rows: Sequence[ResultRow], listing: Mapping[str, ListingState] | None = None) -> None:
        """Make ``rows`` durable as one part, then commit them with ``listing`` (module docstring).

        Empty ``rows`` commit the listing progress alone, without a file.
        """
        if self._finished:
            raise SinkError(f"{self.output} is already finalized; no more rows can be written")
        listing = dict(listing or {})
        if not rows:
            self._checkpoint.commit_listing(listing)
            return
        part_no, self._next_part = self._next_part, self._next_part + 1  # never reuse a number
        name = f"part-{part_no:06d}{self._format.suffix}"
        path = self.parts_dir / name
        with _atomic(path) as tmp:
            self._format.write_part([to_record(row) for row in rows], tmp)
        try:
            self._checkpoint.commit_part(part_no, name, rows, listing)
        except BaseException:
            self._discard_uncommitted(part_no, path)
            raise

    def finalize(self) -> Path:
        """Merge the committed parts into ``output`` atomically, mark the run finished, drop the parts.

        Idempotent: a finished run returns ``output`` again.
        """
        if self._finished:
            return self.output
        parts = [self.parts_dir / name for _, name in self._checkpoint.committed_parts()]
        with _atomic(self.output) as tmp:
            self._format.merge(parts, tmp)
        self._checkpoint.mark_finished(str(self.output))
        self._finished = True
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        return self.output

    def _discard_uncommitted(self, part_no: int, path: Path) -> None:
        """After a failed commit, drop the part file unless the commit did land (then it must stay).

        If even that check fails, the file stays and the next open removes it as an orphan.
        """
        with suppress(Exception):  # best effort: the original error is what matters
            if all(n != part_no for n, _ in self._checkpoint.committed_parts()):
                path.unlink(missing_ok=True)


def open_sink(output: Path, fmt: str, checkpoint: Checkpoint) -> ResultSink:
    """The sink for ``output`` in ``fmt``, its parts directory cleaned to exactly the committed parts.

    Raises ``SinkError`` if a committed part is missing (its rows would be lost: delete the
    checkpoint to start over) and ``ValueError`` for an unknown format.
    """
    output = Path(output)
    sink = ResultSink(output, fmt, checkpoint, _part_sink(fmt))
    output.parent.mkdir(parents=True, exist_ok=True)
    _remove_final_temps(output)
    if checkpoint.is_finished():
        shutil.rmtree(sink.parts_dir, ignore_errors=True)  # a crash during finalize's cleanup
        return sink
    _make_dir(sink.parts_dir)
    committed = {name for _, name in checkpoint.committed_parts()}
    _remove_uncommitted(sink.parts_dir, committed)
    missing = sorted(committed - {entry.name for entry in sink.parts_dir.iterdir()})
    if missing:
        raise SinkError(
            f"{len(missing)} committed part file(s) are missing from {sink.parts_dir} (first: {missing[0]}); "
            f"resuming would lose their rows: restore them, or delete the checkpoint {checkpoint.path} to start over"
        )
    return sink


def _make_dir(path: Path) -> None:
    """Create ``path`` durably: its entry must survive a crash before any part in it is committed."""
    if not path.is_dir():
        path.mkdir(parents=True)
        _fsync_path(path.parent, directory=True)


def _remove_uncommitted(parts_dir: Path, committed: set[str]) -> None:
    """Delete temp files and parts renamed but never committed (their rows are not in ``done``)."""
    for entry in parts_dir.iterdir():
        if entry.name not in committed and entry.is_file():
            entry.unlink()


def _remove_final_temps(output: Path) -> None:
    """Delete temp files of a finalize that was killed (``.<output name>.<random>.tmp``)."""
    for entry in output.parent.glob(f".{_glob_escape(output.name)}.*.tmp"):
        if entry.is_file():
            entry.unlink()


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
