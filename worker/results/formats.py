"""The three output formats (Parquet, CSV, JSON Lines) for any :class:`~worker.results.schema.RowSchema`.

Each format knows three things (:class:`Format`): how to write a batch of records as one
complete file, how to merge part files into one file holding a bounded number of rows in memory,
and how to stream a file's rows back as records. ``read_rows`` of any format gives back the same
values that :meth:`RowSchema.to_record` produced, which is what the round-trip tests hold them to.

* Parquet: zstd-compressed; each part is one row group, and the final file is re-chunked into row
  groups of at least ``COALESCE_ROWS`` rows so readers do not pay per tiny group.
* CSV: RFC 4180 quoting, UTF-8, ``\\n`` line ends, a header row; maps as compact JSON objects;
  null is the empty cell, so an empty string reads back as ``None``.
* JSON Lines: one object per row, the column names as keys, maps nested, UTF-8.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .format_names import FORMAT_ALIASES, FORMATS, format_of
from .schema import RESULT_SCHEMA, Record, RowSchema, utc_ms

__all__ = [
    "Format", "ParquetFormat", "CsvFormat", "JsonlFormat", "format_named", "read_rows", "read_numbers",
    "parquet_schema",
    "COALESCE_ROWS", "PARQUET_COMPRESSION", "RESULT_PARQUET_SCHEMA",
]

#: Final Parquet row groups hold at least this many rows (except the last): small parts are
#: coalesced, and no more than about twice this many rows are held in memory while merging.
COALESCE_ROWS = 65_536
#: Rows converted to Python at a time when reading: a million-row file is read in about 190 MB
#: (448 MB at 65,536), for a few percent more time.
READ_BATCH_ROWS = 8192
PARQUET_COMPRESSION = "zstd"

_ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(), "int": pa.int64(), "float": pa.float64(),
    "ts": pa.timestamp("ms", tz="UTC"), "map": pa.map_(pa.string(), pa.float64()),
}


@lru_cache(maxsize=16)
def parquet_schema(schema: RowSchema) -> pa.Schema:
    """The Arrow schema of ``schema``'s columns, in order."""
    return pa.schema([pa.field(name, _ARROW_TYPES[kind]) for name, kind in schema.kinds.items()])


class Format(Protocol):
    """One output format: how a part is written, how parts merge, how a file reads back."""

    name: str
    suffix: str

    def write_part(self, records: Sequence[Record], path: Path) -> None:
        """Write ``records`` as one complete file at ``path``."""

    def merge(self, parts: Sequence[Path], path: Path) -> None:
        """Write ``path`` from ``parts`` in order, holding a bounded number of rows (zero parts: empty file)."""

    def read(self, path: Path) -> Iterator[Record]:
        """Yield the file's rows as records (the values of :meth:`RowSchema.to_record`)."""


class ParquetFormat:
    name = "parquet"
    suffix = ".parquet"

    def __init__(self, schema: RowSchema) -> None:
        self.schema = schema
        self.arrow_schema = parquet_schema(schema)

    def write_part(self, records: Sequence[Record], path: Path) -> None:
        columns = {name: [record[name] for record in records] for name in self.schema.columns}
        table = pa.Table.from_pydict(columns, schema=self.arrow_schema)
        pq.write_table(table, path, compression=PARQUET_COMPRESSION, row_group_size=max(len(records), 1))

    def merge(self, parts: Sequence[Path], path: Path) -> None:
        with pq.ParquetWriter(path, self.arrow_schema, compression=PARQUET_COMPRESSION) as writer:
            pending: list[pa.Table] = []
            pending_rows = 0
            for chunk in self._chunks(parts):
                pending.append(chunk)
                pending_rows += chunk.num_rows
                if pending_rows >= COALESCE_ROWS:
                    writer.write_table(pa.concat_tables(pending), row_group_size=pending_rows)
                    pending, pending_rows = [], 0
            if pending_rows:
                writer.write_table(pa.concat_tables(pending), row_group_size=pending_rows)

    def read(self, path: Path) -> Iterator[Record]:
        """Column by column per batch (:func:`_python_values`), then zipped into records: several
        times faster than Arrow's row-wise ``to_pylist`` on maps and time zones, which matters for
        million-row inputs (``make bench`` prints the rate)."""
        with pq.ParquetFile(path) as parquet:
            names = parquet.schema_arrow.names
            missing = self.schema.missing_from(names)
            if missing:
                raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}")
            order = self.schema.columns
            present = [name for name in order if name in names]
            kinds = self.schema.kinds
            for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=present):
                read = {name: _python_values(batch.column(i), kinds[name]) for i, name in enumerate(present)}
                columns = [read.get(name) or [None] * batch.num_rows for name in order]
                for values in zip(*columns, strict=True):
                    yield dict(zip(order, values, strict=True))


    def _chunks(self, parts: Iterable[Path]) -> Iterator[pa.Table]:
        """Every part's rows in tables of at most ``COALESCE_ROWS``, one file open at a time."""
        for part in parts:
            with pq.ParquetFile(part) as parquet:
                for batch in parquet.iter_batches(batch_size=COALESCE_ROWS):
                    chunk = pa.Table.from_batches([batch])
                    yield chunk if chunk.schema == self.arrow_schema else chunk.cast(self.arrow_schema)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _python_values(column: pa.Array, kind: str) -> list[object]:
    """One column as record values: UTC datetimes, plain dicts for maps (empty for null), else as is."""
    if kind == "ts":
        millis = column.cast(pa.timestamp("ms", tz="UTC"), safe=False).cast(pa.int64()).to_pylist()
        return [None if value is None else _EPOCH + timedelta(milliseconds=value) for value in millis]
    if kind == "map":
        offsets = column.offsets.to_pylist()
        keys = [sys.intern(key) for key in column.keys.to_pylist()]  # a few names, shared by every row kept
        items = column.items.to_pylist()
        valid = column.is_valid().to_pylist() if column.null_count else None
        return [dict(zip(keys[offsets[i]:offsets[i + 1]], items[offsets[i]:offsets[i + 1]], strict=True))
                if valid is None or valid[i] else {} for i in range(len(column))]
    return column.to_pylist()


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
        return utc_ms(datetime.fromisoformat(value))  # type: ignore[arg-type]
    if kind == "map" and isinstance(value, str):
        return {str(k): float(v) for k, v in json.loads(value).items()}
    if kind == "map":
        return {str(k): float(v) for k, v in value.items()}  # type: ignore[attr-defined]
    return value


def _compact_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class CsvFormat:
    """Every part carries the header so it reads on its own; the final file has it once."""

    name = "csv"
    suffix = ".csv"

    def __init__(self, schema: RowSchema) -> None:
        self.schema = schema

    def write_part(self, records: Sequence[Record], path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(self.schema.columns)
            writer.writerows(self._cells(record) for record in records)

    def merge(self, parts: Sequence[Path], path: Path) -> None:
        with path.open("wb") as out:
            out.write((",".join(self.schema.columns) + "\n").encode())
            for part in parts:
                with part.open("rb") as source:
                    source.readline()  # the part's header (plain names: never quoted, one line)
                    shutil.copyfileobj(source, out)

    def read(self, path: Path) -> Iterator[Record]:
        kinds = self.schema.kinds
        with path.open(encoding="utf-8", newline="") as source:
            reader = csv.DictReader(source)
            missing = self.schema.missing_from(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}")
            for row in reader:
                yield {name: _from_text(kind, row.get(name) or None) for name, kind in kinds.items()}  # "" is null

    def _cells(self, record: Record) -> list[object]:
        cells: list[object] = []
        for name, kind in self.schema.kinds.items():
            value = _to_text(kind, record[name])
            if kind == "map":
                value = _compact_json(value)
            elif kind == "float" and value is not None:
                value = repr(value)  # shortest text that reads back to the same float
            cells.append("" if value is None else value)
        return cells


class JsonlFormat:
    name = "jsonl"
    suffix = ".jsonl"

    def __init__(self, schema: RowSchema) -> None:
        self.schema = schema

    def write_part(self, records: Sequence[Record], path: Path) -> None:
        kinds = self.schema.kinds
        with path.open("w", encoding="utf-8", newline="\n") as out:
            for record in records:
                out.write(_compact_json({n: _to_text(k, record[n]) for n, k in kinds.items()}) + "\n")

    def merge(self, parts: Sequence[Path], path: Path) -> None:
        with path.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, out)

    def read(self, path: Path) -> Iterator[Record]:
        kinds = self.schema.kinds
        with path.open(encoding="utf-8", newline="\n") as source:
            for line in source:
                if line.strip():
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise ValueError(f"{path}: a line is not a JSON object")
                    yield {name: _from_text(kind, obj.get(name)) for name, kind in kinds.items()}


_FORMATS: dict[str, type[ParquetFormat | CsvFormat | JsonlFormat]] = {
    "parquet": ParquetFormat, "csv": CsvFormat, "jsonl": JsonlFormat,
}
if tuple(_FORMATS) != FORMATS:  # pragma: no cover - guards edits to format_names.py
    raise ImportError("formats._FORMATS is out of step with format_names.FORMATS")


def format_named(name: str, schema: RowSchema = RESULT_SCHEMA) -> Format:
    """The codec of format ``name`` (``parquet``, ``csv``, ``jsonl``, or an alias) for ``schema``."""
    try:
        return _FORMATS[FORMAT_ALIASES.get(name, name)](schema)
    except KeyError:
        raise ValueError(f"unknown output format {name!r}; choose one of {', '.join(FORMATS)}") from None


def read_numbers(path: Path, column: str, schema: RowSchema = RESULT_SCHEMA) -> np.ndarray:
    """The non-null values of one numeric column, as float64: from Parquet without converting
    any other column (a million scores in milliseconds), from CSV and JSON Lines row by row."""
    path = Path(path)
    if format_of(str(path)) == "parquet":
        with pq.ParquetFile(path) as parquet:
            if column not in parquet.schema_arrow.names:
                raise ValueError(f"{path} lacks the column {column}")
            chunks = [batch.column(0).drop_null().to_numpy(zero_copy_only=False).astype(np.float64)
                      for batch in parquet.iter_batches(batch_size=COALESCE_ROWS, columns=[column])]
        return np.concatenate(chunks) if chunks else np.empty(0)
    values = (row[column] for row in read_rows(path, schema=schema) if row[column] is not None)
    return np.fromiter(values, dtype=np.float64)


def read_rows(path: Path, fmt: str | None = None, schema: RowSchema = RESULT_SCHEMA) -> Iterator[Record]:
    """Stream the rows of a final (or part) file, any format; ``fmt`` defaults from the suffix.

    Values are those of :meth:`RowSchema.to_record` (``status`` as its string, timestamps UTC-aware).
    """
    path = Path(path)
    if fmt is None:
        fmt = format_of(str(path))
        if fmt is None:
            raise ValueError(f"cannot tell the format of {path} from its suffix (use .parquet, .csv or .jsonl)")
    return format_named(fmt, schema).read(path)


#: ``picscore run``'s results as Parquet stores them.
RESULT_PARQUET_SCHEMA = parquet_schema(RESULT_SCHEMA)
