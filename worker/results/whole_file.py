"""Writing a whole file of rows at once (a selection, a covers list, a plan), streamed.

The engine's :class:`~worker.results.parts.PartWriter` is for outputs built across a run, with a
checkpoint; these files are computed in one go before anything acts. Rows are written in chunks
of :data:`CHUNK_ROWS` to part files in a temporary folder beside ``path`` (so memory holds one
chunk, however many rows there are), merged into ``path`` atomically, and the folder removed:
``path`` is either the previous file or the complete new one.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Any

from .atomic import atomic_path
from .formats import format_named
from .schema import RowSchema

__all__ = ["write_whole_file", "CHUNK_ROWS"]

CHUNK_ROWS = 10_000


def write_whole_file(path: Path, fmt: str, schema: RowSchema, rows: Iterable[Any]) -> int:
    """Write ``rows`` (objects with the schema's attributes) to ``path`` in ``fmt``; return the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt_writer = format_named(fmt, schema)
    scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.chunks")
    scratch.mkdir()
    try:
        parts: list[Path] = []
        count = 0
        iterator = iter(rows)
        while chunk := list(islice(iterator, CHUNK_ROWS)):
            part = scratch / f"{len(parts):06d}{fmt_writer.suffix}"
            fmt_writer.write_part([schema.to_record(row) for row in chunk], part)
            parts.append(part)
            count += len(chunk)
        if not parts:  # an empty file still has its header / schema
            part = scratch / f"empty{fmt_writer.suffix}"
            fmt_writer.write_part([], part)
            parts.append(part)
        with atomic_path(path) as tmp:
            fmt_writer.merge(parts, tmp)
        return count
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
