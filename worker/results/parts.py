"""Writing outcome rows so that a crash loses nothing and repeats nothing: parts, then one commit.

Rows arrive in batches; each batch becomes one *part* file in ``<output>.parts/``
(``part-000042.parquet``), and :meth:`PartWriter.finalize` merges the committed parts, in part
order, into ``<output>``. Why the output loses nothing and repeats nothing across ``kill -9``:

1. A part is written through :func:`~worker.results.atomic.atomic_path` (temp file, fsync,
   rename, fsync of the folder): after that the file survives a crash.
2. Only then does the checkpoint record the part, its rows' ``(key, etag)`` and the resume
   positions in one SQLite transaction (:meth:`PartLedger.commit_part`). A row counts as
   written iff that commit happened.
3. Opening a writer deletes every file in the parts directory that the checkpoint does not
   list (temp files, and a part renamed just before a crash but never committed). Those rows
   are not recorded as done, so the resumed run does them again and writes them exactly once.
   A committed part that is missing stops the run (:class:`~worker.errors.OutputError`)
   instead of losing its rows.
4. ``finalize`` writes ``<output>`` atomically, marks the checkpoint finished, then removes the
   parts. A crash before the mark re-runs the merge from the intact parts (same result); a
   crash after it leaves only leftovers that the next open removes.

Memory stays bounded: parts are streamed (Parquet in record batches, CSV/JSONL as bytes).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol

from ..errors import OutputError
from .atomic import atomic_path, make_dir_durable, remove_temps_of
from .formats import Format, format_named
from .schema import RESULT_SCHEMA, KeyedRow, RowSchema

__all__ = ["PartWriter", "PartLedger", "open_part_writer"]


class PartLedger(Protocol):
    """What the writer needs of the checkpoint (:class:`worker.batch.checkpoint.Checkpoint`)."""

    path: Path

    def next_part_no(self) -> int: ...
    def is_finished(self) -> bool: ...
    def committed_parts(self) -> list[tuple[int, str]]: ...
    def commit_part(self, part_no: int, file_name: str, rows: Sequence[KeyedRow],
                    positions: Mapping[str, Any]) -> None: ...
    def commit_positions(self, positions: Mapping[str, Any]) -> None: ...
    def mark_finished(self, output: str) -> None: ...


class PartWriter:
    """Writes one run's output through its checkpoint. One writer: not for concurrent callers."""

    def __init__(self, output: Path, fmt: Format, ledger: PartLedger, schema: RowSchema) -> None:
        """Use :func:`open_part_writer`, which also cleans and checks the parts directory."""
        self.output = output
        self.format = fmt
        self.schema = schema
        self.parts_dir = output.with_name(output.name + ".parts")
        self._ledger = ledger
        self._next_part = ledger.next_part_no()
        self._finished = ledger.is_finished()

    def write_part(self, rows: Sequence[Any], positions: Mapping[str, Any] | None = None) -> None:
        """Make ``rows`` durable as one part, then commit them with ``positions`` (module docstring).

        Empty ``rows`` commit the resume positions alone, without a file.
        """
        if self._finished:
            raise OutputError(f"{self.output} is already finalized; no more rows can be written")
        positions = dict(positions or {})
        if not rows:
            self._ledger.commit_positions(positions)
            return
        part_no, self._next_part = self._next_part, self._next_part + 1  # never reuse a number
        name = f"part-{part_no:06d}{self.format.suffix}"
        path = self.parts_dir / name
        with atomic_path(path) as tmp:
            self.format.write_part([self.schema.to_record(row) for row in rows], tmp)
        try:
            self._ledger.commit_part(part_no, name, rows, positions)
        except BaseException:
            self._discard_uncommitted(part_no, path)
            raise

    def finalize(self) -> Path:
        """Merge the committed parts into ``output`` atomically, mark the run finished, drop the parts.

        Idempotent: a finished run returns ``output`` again.
        """
        if self._finished:
            return self.output
        parts = [self.parts_dir / name for _, name in self._ledger.committed_parts()]
        with atomic_path(self.output) as tmp:
            self.format.merge(parts, tmp)
        self._ledger.mark_finished(str(self.output))
        self._finished = True
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        return self.output

    def _discard_uncommitted(self, part_no: int, path: Path) -> None:
        """After a failed commit, drop the part file unless the commit did land (then it must stay).

        If even that check fails, the file stays and the next open removes it as an orphan.
        """
        with suppress(Exception):  # best effort: the original error is what matters
            if all(n != part_no for n, _ in self._ledger.committed_parts()):
                path.unlink(missing_ok=True)


def open_part_writer(output: Path, fmt: str, ledger: PartLedger, schema: RowSchema = RESULT_SCHEMA) -> PartWriter:
    """The writer for ``output`` in ``fmt``, its parts directory cleaned to exactly the committed parts.

    Raises :class:`~worker.errors.OutputError` if a committed part is missing (its rows would be
    lost: restore it, or delete the checkpoint to start over) and ``ValueError`` for an unknown format.
    """
    output = Path(output)
    writer = PartWriter(output, format_named(fmt, schema), ledger, schema)
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_temps_of(output)
    if ledger.is_finished():
        shutil.rmtree(writer.parts_dir, ignore_errors=True)  # a crash during finalize's cleanup
        return writer
    make_dir_durable(writer.parts_dir)
    committed = {name for _, name in ledger.committed_parts()}
    _remove_uncommitted(writer.parts_dir, committed)
    missing = sorted(committed - {entry.name for entry in writer.parts_dir.iterdir()})
    if missing:
        raise OutputError(
            f"{len(missing)} committed part file(s) are missing from {writer.parts_dir} (first: {missing[0]}); "
            f"resuming would lose their rows: restore them, or delete the checkpoint {ledger.path} to start over"
        )
    return writer


def _remove_uncommitted(parts_dir: Path, committed: set[str]) -> None:
    """Delete temp files and parts renamed but never committed (their rows are not recorded as done)."""
    for entry in parts_dir.iterdir():
        if entry.name not in committed and entry.is_file():
            entry.unlink()
