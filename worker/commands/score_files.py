"""``picscore score PATH...``: score local files and folders, one JSON object per line.

Each input file gives exactly one line on ``out``, in sorted path order::

    {"path": "a.jpg", "score": 0.812, "dimensions": {"resolution": 0.661, ...}}
    {"path": "b.jpg", "score": 0.41, "dimensions": {...}, "explanation": {"summary": "blurred", ...}}
    {"path": "notes.txt", "error": {"code": "BadRequest", "ec": "0040-00000005", "message": ...}}
    {"path": "clip.mp4", "kind": "video", "chosen_ms": 4550, "score": 0.83, ...}

A video (by its extension) gives its best frame and that frame's score (:mod:`.score_video`).

Folders are walked recursively in sorted order; hidden files and folders (``.name``) are
skipped unless named on the command line. A file that cannot be read or scored gives an error
line and the run goes on. Error codes: the OSS ``Code`` for picture errors (``BadRequest``,
``ImageTooLarge``, with the OSS ``ec``), ``NotFound`` for a missing path, ``ReadError`` for an
unreadable file, ``InternalError`` for a scorer failure.

Exit status: 0 when every file was scored (including when there was nothing to score),
1 when at least one line is an error.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TextIO

from tqdm import tqdm

from .. import quality
from ..quality.explain import DEFAULT_USE, check_use
from ..quality.explain import explain as explain_score
from ..quality.model import check_layout
from .score_video import DEFAULT_FRAMES, is_video, score_video_file

__all__ = ["collect_files", "run_score"]

EXIT_OK = 0
EXIT_SOME_FAILED = 1
#: A progress bar is shown by default only from this many files: a bar for fewer is noise.
PROGRESS_MIN_FILES = 20
POOL_MIN_FILES = 8  # below this, starting processes costs more than it saves


Record = dict[str, Any]


def collect_files(paths: Iterable[str]) -> list[str]:
    """Files to score: each named path as given (missing ones too: they become error lines),
    and every non-hidden file under each named folder, sorted."""
    found: list[str] = []
    for path in paths:
        if not os.path.isdir(path):
            found.append(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith("."))
    return found


def _error(path: str, code: str, message: str, ec: str | None = None) -> Record:
    error = {"code": code, "message": message} if ec is None else {"code": code, "ec": ec, "message": message}
    return {"path": path, "error": error}


def score_file(path: str, explain: bool = False, quality_model: str = quality.DEFAULT_LAYOUT,
               use: str = DEFAULT_USE, frames: int = DEFAULT_FRAMES, frames_out: str | None = None) -> Record:
    """One output record for one file; never raises for a bad file or a scorer failure.

    ``explain`` adds ``explanation``: the photo's visible defects for ``use`` in words and numbers
    (:func:`worker.quality.explain.explain`). A video (by its extension) gives its best frame
    instead, among ``frames`` candidates (:mod:`.score_video`), the candidates written to
    ``frames_out`` when given.
    """
    if is_video(path):
        try:
            return score_video_file(path, frames, frames_out, quality_model)
        except Exception as exc:  # a decoder or scorer bug must not abort a library-wide run
            return _error(path, "InternalError", f"{type(exc).__name__}: {exc}")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return _error(path, "NotFound", "no such file")
    except OSError as exc:
        return _error(path, "ReadError", exc.strerror or str(exc))
    try:
        found = quality.score(data, quality_model)
    except quality.ImageError as exc:
        return _error(path, exc.oss_code, str(exc), exc.ec)
    except Exception as exc:  # a scorer bug must not abort a library-wide run
        return _error(path, "InternalError", f"{type(exc).__name__}: {exc}")
    record: Record = {
        "path": path,
        "score": round(found.overall, 3),
        "dimensions": {name: round(value, 3) for name, value in found.dimensions.items()},
    }
    if explain:
        record["explanation"] = explain_score(found, use=use).as_record()
    return record


def _records(files: list[str], explain: bool, jobs: int | None, quality_model: str, use: str, frames: int,
             frames_out: str | None) -> Iterator[Record]:
    """Records in input order; a process pool when there are enough files and CPUs."""
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    fn = functools.partial(score_file, explain=explain, quality_model=quality_model, use=use, frames=frames,
                           frames_out=frames_out)
    if workers <= 1 or len(files) < POOL_MIN_FILES:
        yield from map(fn, files)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(files))) as pool:
        yield from pool.map(fn, files, chunksize=4)


def run_score(paths: list[str], *, out: TextIO, err: TextIO, progress: bool | None = None,
              explain: bool = False, jobs: int | None = None,
              quality_model: str = quality.DEFAULT_LAYOUT, use: str = DEFAULT_USE, frames: int = DEFAULT_FRAMES,
              frames_out: str | None = None) -> int:
    """Score every file under ``paths``, one JSON line each on ``out``; see the module doc.

    ``progress``: None shows a bar on ``err`` only when it is a terminal and there are at least
    PROGRESS_MIN_FILES files. ``jobs``: scoring processes (None: CPU count). ``quality_model``:
    the quality model's layout (:data:`worker.quality.LAYOUTS`). ``use``: what ``explain`` judges
    resolution against (:data:`worker.quality.explain.USES`).
    Returns 0 when every file was scored, 1 when any line is an error; raises ValueError for
    an unknown ``quality_model`` or ``use`` before reading any file.
    """
    check_layout(quality_model)
    check_use(use)
    files = collect_files(paths)
    show = progress if progress is not None else (err.isatty() and len(files) >= PROGRESS_MIN_FILES)
    failed = False
    with tqdm(total=len(files), file=err, unit="img", disable=not show) as bar:
        for record in _records(files, explain, jobs, quality_model, use, frames, frames_out):
            failed |= "error" in record
            out.write(json.dumps(record) + "\n")
            out.flush()
            bar.update()
    return EXIT_SOME_FAILED if failed else EXIT_OK
