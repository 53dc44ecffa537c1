"""Files that appear whole or not at all: write a temp file, fsync it, rename it, fsync the folder.

A reader (or a resumed run after ``kill -9``) then sees either the previous state or the
complete new file, never a torn one. Temp files are named ``.<name>.<random>.tmp`` beside their
destination, on the same filesystem (so the rename is atomic), and easy to sweep.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "fsync_path", "make_dir_durable", "remove_temps_of"]


def fsync_path(path: Path, *, directory: bool = False) -> None:
    """Flush ``path`` (a file, or a directory's entries) to stable storage."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.tmp")


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temp path to write; then fsync it, rename it over ``dest`` and fsync the directory.

    If the block raises, the temp file is removed and ``dest`` is untouched."""
    tmp = _temp_name(dest)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(dest.parent, directory=True)


def make_dir_durable(path: Path) -> None:
    """Create ``path`` so that its entry survives a crash before anything in it is relied on."""
    if not path.is_dir():
        path.mkdir(parents=True)
        fsync_path(path.parent, directory=True)


def remove_temps_of(dest: Path) -> None:
    """Delete temp files that an :func:`atomic_path` for ``dest`` left when it was killed."""
    for entry in dest.parent.glob(f".{_glob_escape(dest.name)}.*.tmp"):
        if entry.is_file():
            entry.unlink()


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
