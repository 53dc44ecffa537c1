"""The output formats by name and by file suffix: the one table every module reads.

Kept apart from the codecs (:mod:`worker.results.formats`) so that settings can check a format
name without importing pyarrow.
"""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = ["FORMATS", "SUFFIX_FORMATS", "FORMAT_ALIASES", "format_of"]

#: Format names, the default first.
FORMATS = ("parquet", "csv", "jsonl")
#: Other names people use for a format.
FORMAT_ALIASES = {"ndjson": "jsonl"}
#: File suffix (lower case) → format.
SUFFIX_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def format_of(path: str) -> str | None:
    """The format a path's suffix names (``results.csv`` → ``csv``), or None for an unknown suffix.

    Works for local paths and ``oss://bucket/key`` alike: only the last path segment counts."""
    name = PurePosixPath(path.rsplit("/", 1)[-1]).name
    if "." not in name.lstrip("."):
        return None
    return SUFFIX_FORMATS.get("." + name.rsplit(".", 1)[-1].lower())
