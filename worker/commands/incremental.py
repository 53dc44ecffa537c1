"""``--incremental PREVIOUS_OUTPUT``: don't pay again for objects that have not changed.

A nightly audit of a library that grows slowly re-scores only what is new or rewritten: an
object whose (key, ETag) appears as ``scored`` in the previous run's output is not sent; its
row is written as ``skipped`` with reason ``Unchanged``, carrying the previous score,
dimensions and ``scored_at`` forward, so each night's output is still a complete picture.

The previous output may hold millions of rows, so it is indexed once into a SQLite file next
to the checkpoint (streamed, bounded memory) and queried a listing page at a time.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..errors import ConfigError
from ..results.formats import read_rows
from ..results.schema import ObjectRef, ResultRow, Status

__all__ = ["PreviousResults", "PreviousScore", "IncrementalError"]

_BATCH = 500


class IncrementalError(ConfigError):
    """The ``--incremental`` file is missing or is not a picscore output (a configuration error)."""

    def __init__(self, problem: str) -> None:
        super().__init__("incremental", problem)


@dataclass(frozen=True)
class PreviousScore:
    score: float
    dimensions: dict[str, float]
    scored_at: datetime | None

    def carry_forward(self, ref: ObjectRef) -> ResultRow:
        """The ``skipped``/``Unchanged`` row for ``ref``, with the previous run's score."""
        return ResultRow(ref.bucket, ref.key, ref.etag, ref.size, ref.last_modified, Status.SKIPPED,
                         score=self.score, dimensions=dict(self.dimensions), error_code="Unchanged",
                         error_message="ETag unchanged since the previous run; score carried forward",
                         scored_at=self.scored_at, storage_class=ref.storage_class)


class PreviousResults:
    """The scored (key, ETag) pairs of a previous output, indexed for page-sized lookups."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @classmethod
    def index(cls, previous_output: Path, index_path: Path) -> PreviousResults:
        """Index ``previous_output`` (any output format) into ``index_path``, replacing it.

        Raises :class:`IncrementalError`, with a message fit to print, when the file is missing
        or is not a picscore output.
        """
        if not previous_output.is_file():
            raise IncrementalError(f"{previous_output} does not exist")
        index_path.unlink(missing_ok=True)
        db = sqlite3.connect(index_path, check_same_thread=False)
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("CREATE TABLE previous (key TEXT, etag TEXT, score REAL, dimensions TEXT, scored_at TEXT,"
                   " PRIMARY KEY (key, etag)) WITHOUT ROWID")
        try:
            db.executemany("INSERT OR REPLACE INTO previous VALUES (?, ?, ?, ?, ?)", _scored(previous_output))
        except (KeyError, TypeError, ValueError) as exc:
            db.close()
            raise IncrementalError(f"{previous_output} is not a picscore output ({exc})") from None
        db.commit()
        return cls(db)

    def unchanged_among(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], PreviousScore]:
        """Which of ``pairs`` were scored with the same ETag last time, and what they scored."""
        found: dict[tuple[str, str], PreviousScore] = {}
        for start in range(0, len(pairs), _BATCH):
            chunk = pairs[start:start + _BATCH]
            where = " OR ".join(["(key = ? AND etag = ?)"] * len(chunk))
            params = [value for pair in chunk for value in pair]
            query = f"SELECT key, etag, score, dimensions, scored_at FROM previous WHERE {where}"
            for key, etag, score, dimensions, scored_at in self._db.execute(query, params):
                found[(key, etag)] = PreviousScore(score, json.loads(dimensions),
                                                   datetime.fromisoformat(scored_at) if scored_at else None)
        return found

    def close(self) -> None:
        self._db.close()


def _scored(path: Path) -> Iterable[tuple[str, str, float, str, str | None]]:
    for row in read_rows(path):
        if row["key"] is None or row["status"] is None or row["etag"] is None:
            raise ValueError("a row has no key, etag or status")
        if row["status"] == Status.SCORED.value and row["score"] is not None:
            scored_at = row["scored_at"]
            yield (row["key"], row["etag"], float(row["score"]), json.dumps(row["dimensions"] or {}),
                   scored_at.isoformat() if scored_at else None)
