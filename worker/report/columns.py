"""Results files as compact columns: what a report needs of a million rows, and nothing more.

A report aggregates; it never needs a row as a Python object. Rows are read in Arrow batches
and reduced at once to numpy columns (a status code, a score, a size, a prefix code, one
float32 per sub-score), while the keys stay Arrow strings, which cost their bytes and no
per-object overhead. Error messages are kept only for rows that did not score, and ETags only
for the rows the page shows (:func:`read_etags`, a second pass over three columns).

Prefix, status, bucket and error codes are small integers into lists of names, built as the
batches arrive (:class:`_Codes`), so shards read in any order give the same names.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ResultsFileError
from ..results.format_names import format_of
from ..results.formats import RESULT_PARQUET_SCHEMA, read_rows
from ..results.schema import RESULT_SCHEMA, Status
from .identity import identities

__all__ = ["AuditColumns", "read_audit", "read_etags", "STATUS_NAMES", "ROOT_PREFIX", "BATCH_ROWS"]

#: Rows per batch: large enough for Arrow's kernels to dominate, small enough to stay flat in memory.
BATCH_ROWS = 32_768
#: Statuses in the order the page lists them; a file's unknown status names are appended after.
STATUS_NAMES: tuple[str, ...] = tuple(status.value for status in Status)
#: The prefix of keys directly at the bucket's top (no ``/``).
ROOT_PREFIX = ""
#: Most distinct sub-score names kept; a file with more is not picscore's (or OSS's) output.
MAX_DIMENSIONS = 32
_COLUMNS = ("bucket", "key", "size", "status", "score", "dimensions", "error_code", "error_message",
            "http_status", "scored_at")
#: What a night compared against needs: identities, scores and prefixes; not sub-scores or messages,
#: whose maps are most of the decoding work and memory. ETags are never kept: :func:`read_etags`
#: fetches those of the few rows a page shows.
_COMPARE_COLUMNS = ("bucket", "key", "size", "status", "score", "error_code", "scored_at")  # keys: hashed, not kept
_FAILURE_COLUMNS = ("bucket", "key", "status", "error_code", "error_message", "http_status")


class _Codes:
    """Names to small integer codes, in order of first appearance."""

    def __init__(self, initial: Iterable[Hashable] = ()) -> None:
        self.names: list = []
        self._index: dict[Hashable, int] = {}
        for name in initial:
            self.code(name)

    def code(self, name: Hashable) -> int:
        found = self._index.get(name)
        if found is None:
            found = self._index[name] = len(self.names)
            self.names.append(name)
        return found

    def encode(self, column: pa.Array, *, null: int = -1) -> np.ndarray:
        """Codes of a string column (``null`` for nulls), hashing each distinct value once."""
        encoded = pc.dictionary_encode(column)
        mapping = np.fromiter((self.code(v) for v in encoded.dictionary.to_pylist()), dtype=np.int32,
                              count=len(encoded.dictionary))
        indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        out = np.full(len(indices), null, dtype=np.int32)
        valid = indices >= 0
        out[valid] = mapping[indices[valid]]
        return out


@dataclass
class AuditColumns:
    """One column per fact, one entry per results row (across every input file, in input order)."""

    files: tuple[str, ...]
    bucket: np.ndarray            # int32 codes into ``buckets``
    buckets: list[str]
    key: pa.ChunkedArray          # string (empty when read for comparison: ``identity`` matches rows)
    hashed: np.ndarray | None     # uint64 per row, when keys are not kept (see ``identity``)
    status: np.ndarray            # int32 codes into ``statuses``
    statuses: list[str]
    score: np.ndarray             # float64, NaN where there is no score
    size: np.ndarray              # int64, 0 where unknown
    prefix: np.ndarray            # int32 codes into ``prefixes`` (the bucket's top-level folder)
    prefixes: list[tuple[int, str]]  # (bucket code, top-level prefix such as "photos/"; "" for the top)
    error_code: np.ndarray        # int32 codes into ``error_codes``; -1 for none
    error_codes: list[str]
    dimensions: np.ndarray        # float32 (rows, len(dimension_names)), NaN where absent
    dimension_names: list[str]
    first_scored_at: datetime | None
    last_scored_at: datetime | None
    unsettled: pa.Table = field(repr=False)  # the rows that did not score: bucket, key, status, codes, message

    def __len__(self) -> int:
        return len(self.score)

    def status_code(self, name: str) -> int:
        """The code of status ``name``, or -1 if no row has it."""
        return self.statuses.index(name) if name in self.statuses else -1

    def prefix_label(self, code: int) -> str:
        """``photos/`` (or ``(top level)``), with the bucket in front when there are several."""
        bucket, top = self.prefixes[code]
        label = top or "(top level)"
        return f"{self.buckets[bucket]}: {label}" if len(self.buckets) > 1 else label

    @property
    def identity(self) -> np.ndarray:
        """Each row's (bucket, key) as a 64-bit identity (:mod:`.identity`): hashed while reading
        when the keys are not kept, else from the keys on first use (only comparisons need it)."""
        if self.hashed is None:
            pieces, start = [], 0
            for chunk in self.key.chunks:
                pieces.append(identities(self.bucket[start:start + len(chunk)], self.buckets, chunk))
                start += len(chunk)
            self.hashed = _concat(pieces, np.uint64)
        return self.hashed

    def drop_details(self) -> None:
        """Free the sub-scores and failure rows once summarised: comparing nights needs neither,
        and a million rows' sub-scores are the largest column kept."""
        self.dimensions = self.dimensions[:0].copy()
        self.unsettled = self.unsettled.slice(0, 0)
        pa.default_memory_pool().release_unused()

    def object_url(self, row: int) -> str:
        return f"oss://{self.buckets[self.bucket[row]]}/{self.key[row].as_py()}"


def read_audit(paths: Sequence[Path], *, for_comparison: bool = False) -> AuditColumns:
    """Read results files (``picscore run``'s output: Parquet, CSV or JSON Lines) as one audit.

    ``for_comparison``: only what :func:`~worker.report.night.compare_nights` needs of the
    previous night (no sub-scores, no failure rows), in about half the time and memory.

    Raises :class:`ResultsFileError` for a missing file, an unknown format, or a file that is not
    ``picscore run``'s output (a required column missing, an unreadable file).
    """
    builder = _Builder(keep_keys=not for_comparison)
    columns = _COMPARE_COLUMNS if for_comparison else _COLUMNS
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ResultsFileError(f"{path} does not exist (or is not a file)")
        try:
            for batch in _batches(path, columns):
                builder.add(batch)
        except ResultsFileError as exc:
            if str(path) in str(exc):
                raise
            raise ResultsFileError(f"{path}: {exc}") from None  # which of a sharded audit's files
        except Exception as exc:  # pyarrow's own errors are not all ValueErrors
            raise ResultsFileError(f"{path} is not a picscore results file ({type(exc).__name__}: {exc})") from None
    audit = builder.finish(tuple(str(p) for p in paths))
    pa.default_memory_pool().release_unused()  # the decoder's buffers: give them back before the next step
    return audit


def _batches(path: Path, columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
    """The file's rows in batches of ``columns``, typed as Parquet stores them."""
    fmt = format_of(str(path))
    if fmt is None:
        raise ResultsFileError(f"cannot tell the format of {path} from its name: use .parquet, .csv or .jsonl")
    target = pa.schema([RESULT_PARQUET_SCHEMA.field(name) for name in columns])
    if fmt == "parquet":
        # One thread and no pre-buffering: a report reads a file once, front to back, and Arrow's
        # per-thread buffers would otherwise cost more memory than the columns kept (make bench-report).
        with pq.ParquetFile(path, pre_buffer=False) as parquet:
            _check_columns(path, parquet.schema_arrow.names)
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=list(columns), use_threads=False):
                yield batch if batch.schema == target else batch.cast(target)
        return
    try:
        rows = read_rows(path)
        while chunk := list(islice(rows, BATCH_ROWS)):
            yield pa.RecordBatch.from_pylist([{name: row[name] for name in columns} for row in chunk], schema=target)
    except ValueError as exc:
        message = str(exc)
        if "lacks the column" in message:
            raise ResultsFileError(f"{message}: is it picscore run's output?") from None
        raise


def read_etags(paths: Sequence[Path], wanted: set[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    """The ETags of the (bucket, key) pairs in ``wanted``, streaming only those three columns
    (a key listed twice keeps its first ETag, as :func:`~worker.report.night.compare_nights` does)."""
    found: dict[tuple[str, str], str | None] = {}
    if not wanted:
        return found
    keys = pa.array(sorted({key for _, key in wanted}), type=pa.string())
    for path in paths:
        for batch in _batches(Path(path), ("bucket", "key", "etag")):
            hits = batch.filter(pc.is_in(batch.column("key"), value_set=keys))
            for bucket, key, etag in zip(*(hits.column(i).to_pylist() for i in range(3)), strict=True):
                if (bucket, key) in wanted:
                    found.setdefault((bucket, key), etag)
    return found


def _check_columns(path: Path, names: Iterable[str]) -> None:
    missing = RESULT_SCHEMA.missing_from(names)
    if missing:
        raise ResultsFileError(f"{path} lacks the column(s) {', '.join(missing)}: is it picscore run's output?")


def _top_level(key: pa.Array) -> pa.Array:
    """Each key's first folder with its slash (``photos/2024/a.jpg`` → ``photos/``); "" at the top."""
    folder = pc.replace_substring_regex(key, pattern="(?s)/.*", replacement="/", max_replacements=1)
    return pc.if_else(pc.match_substring(key, "/"), folder, pa.scalar(ROOT_PREFIX))


class _Builder:
    """Accumulates batches into numpy pieces; :meth:`finish` concatenates them once."""

    def __init__(self, *, keep_keys: bool = True) -> None:
        self.keep_keys = keep_keys
        self.buckets, self.statuses, self.error_codes = _Codes(), _Codes(STATUS_NAMES), _Codes()
        self.prefix_codes, self.dimension_names = _Codes(), _Codes()
        self.pieces: dict[str, list] = {name: [] for name in (
            "bucket", "key", "identity", "status", "score", "size", "prefix", "error_code", "dimensions",
            "unsettled")}
        self.first: float = math.inf
        self.last: float = -math.inf

    def add(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        column = batch.column
        if column("bucket").null_count or column("key").null_count:
            raise ResultsFileError("a row has no bucket or key; is it a picscore results file?")
        pieces = self.pieces
        bucket = self.buckets.encode(column("bucket"))
        pieces["bucket"].append(bucket)
        if self.keep_keys:
            pieces["key"].append(column("key"))
        else:
            pieces["identity"].append(identities(bucket, self.buckets.names, column("key")))
        names = batch.schema.names
        status = self.statuses.encode(column("status"))
        if (status < 0).any():
            raise ResultsFileError("a row has no status; is it a picscore results file?")
        pieces["status"].append(status)
        pieces["score"].append(_floats(column("score")))
        pieces["size"].append(pc.fill_null(column("size"), 0).to_numpy(zero_copy_only=False).astype(np.int64))
        pieces["error_code"].append(self.error_codes.encode(column("error_code")))
        pieces["prefix"].append(self._prefixes(bucket, _top_level(column("key"))))
        pieces["dimensions"].append(self._dimensions(column("dimensions")) if "dimensions" in names
                                    else np.empty((batch.num_rows, 0), dtype=np.float32))
        scored = status == self.statuses.code(Status.SCORED.value)
        if "error_message" in names and not scored.all():
            pieces["unsettled"].append(pa.Table.from_batches([batch.select(list(_FAILURE_COLUMNS))])
                                       .filter(pa.array(~scored)))
        self._span(column("scored_at"))

    def _prefixes(self, bucket: np.ndarray, top: pa.Array) -> np.ndarray:
        """Codes of (bucket code, top-level folder) pairs, new ones in order of first appearance
        (as every other code), so the batch size never changes the order of ``prefixes``."""
        encoded = pc.dictionary_encode(top)
        tops = encoded.dictionary.to_pylist()
        pairs = bucket.astype(np.int64) * len(tops) + encoded.indices.to_numpy()
        unique, first, inverse = np.unique(pairs, return_index=True, return_inverse=True)
        mapping = np.empty(len(unique), dtype=np.int32)
        for i in np.argsort(first).tolist():
            p = int(unique[i])
            mapping[i] = self.prefix_codes.code((p // len(tops), tops[p % len(tops)]))
        return mapping[inverse.reshape(-1)]

    def _dimensions(self, maps: pa.Array) -> np.ndarray:
        """A (rows, dimensions known so far) float32 block; later blocks may be wider."""
        rows = len(maps)
        offsets = maps.offsets.to_numpy()  # of this slice; .keys and .items are the whole child arrays
        start, end = int(offsets[0]), int(offsets[-1])
        if end == start:
            return np.full((rows, len(self.dimension_names.names)), np.nan, dtype=np.float32)
        parents = np.repeat(np.arange(rows), np.diff(offsets))
        names = self.dimension_names.encode(maps.keys.slice(start, end - start))
        if len(self.dimension_names.names) > MAX_DIMENSIONS:
            raise ResultsFileError(f"more than {MAX_DIMENSIONS} distinct sub-score names in dimensions; "
                                   "is it a picscore results file?")
        block = np.full((rows, len(self.dimension_names.names)), np.nan, dtype=np.float32)
        block[parents, names] = _floats(maps.items.slice(start, end - start))
        return block

    def _span(self, scored_at: pa.Array) -> None:
        if scored_at.null_count == len(scored_at):
            return
        millis = pc.min_max(scored_at.cast(pa.int64()))
        self.first = min(self.first, millis["min"].as_py())
        self.last = max(self.last, millis["max"].as_py())

    def finish(self, files: tuple[str, ...]) -> AuditColumns:
        pieces = self.pieces
        width = len(self.dimension_names.names)
        blocks = [np.pad(b, ((0, 0), (0, width - b.shape[1])), constant_values=np.nan) for b in pieces["dimensions"]]
        unsettled = (pa.concat_tables(pieces["unsettled"]) if pieces["unsettled"]
                     else pa.schema([RESULT_PARQUET_SCHEMA.field(n) for n in _FAILURE_COLUMNS]).empty_table())
        return AuditColumns(
            files=files,
            bucket=_concat(pieces["bucket"], np.int32), buckets=self.buckets.names,
            key=pa.chunked_array(pieces["key"], type=pa.string()),
            hashed=None if self.keep_keys else _concat(pieces["identity"], np.uint64),
            status=_concat(pieces["status"], np.int32), statuses=self.statuses.names,
            score=_concat(pieces["score"], np.float64), size=_concat(pieces["size"], np.int64),
            prefix=_concat(pieces["prefix"], np.int32), prefixes=self.prefix_codes.names,
            error_code=_concat(pieces["error_code"], np.int32), error_codes=self.error_codes.names,
            dimensions=np.concatenate(blocks) if blocks else np.empty((0, width), dtype=np.float32),
            dimension_names=self.dimension_names.names,
            first_scored_at=_instant(self.first), last_scored_at=_instant(self.last),
            unsettled=unsettled,
        )


def _floats(column: pa.Array) -> np.ndarray:
    """A numeric column as float64 with NaN for null (and for non-finite values, which are not scores)."""
    values = pc.fill_null(column.cast(pa.float64()), math.nan).to_numpy(zero_copy_only=False)
    values = np.array(values, dtype=np.float64)
    values[~np.isfinite(values)] = np.nan
    return values


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _instant(millis: float) -> datetime | None:
    return None if not math.isfinite(millis) else datetime.fromtimestamp(millis / 1000, tz=UTC)
