"""``picscore score VIDEO.mp4``: a local video's best frame, as ``picscore thumbnails`` chooses it.

The same steps as the bucket command, without a bucket: the header for the duration, candidate
frames spread over the video (:func:`worker.video.candidates.candidate_times`), each decoded as
OSS's ``video/snapshot`` would answer (:func:`worker.video.snapshot.capture`), scored with
picscore's model, frames nobody would pick rejected, the best of the rest chosen
(:func:`worker.video.frame_choice.choose`). One JSON line per video::

    {"path": "clip.mp4", "kind": "video", "duration_ms": 8400, "chosen_ms": 4550, "score": 0.83,
     "dimensions": {...}, "runners_up": [{"time_ms": 3850, "score": 0.82}, ...],
     "frames": [{"time_ms": 350, "score": 0.12, "rejected": "black"}, ...]}

``frames_out`` writes every candidate as ``<dir>/<video stem>-<time>ms.jpg`` to look at.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from PIL import Image

from .. import quality
from ..oss.snapshot_contract import SnapshotSpec
from ..video.candidates import candidate_times
from ..video.frame_choice import Candidate, FrameLook, choose
from ..video.snapshot import VideoError, capture, probe

__all__ = ["score_video_file", "is_video"]

DEFAULT_FRAMES = 12


def is_video(path: str) -> bool:
    from .thumbnail_rows import VIDEO_EXTENSIONS

    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _error(path: str, code: str, message: str, ec: str | None = None) -> dict[str, Any]:
    error = {"code": code, "message": message} if ec is None else {"code": code, "ec": ec, "message": message}
    return {"path": path, "kind": "video", "error": error}


def score_video_file(path: str, frames: int = DEFAULT_FRAMES, frames_out: str | None = None,
                     quality_model: str = quality.DEFAULT_LAYOUT) -> dict[str, Any]:
    """One output record for one video; never raises for a bad video."""
    if not os.path.exists(path):
        return _error(path, "NotFound", "no such file")
    try:
        info = probe(path)
        if info.duration_s is None:
            return _error(path, "HeaderUnreadable", "the header does not say how long the video is")
        duration_ms = round(info.duration_s * 1000)
        shots = {t: capture(path, SnapshotSpec(t)) for t in candidate_times(duration_ms, frames)}
    except VideoError as exc:
        return _error(path, exc.code, exc.message, exc.ec)
    candidates = []
    for time_ms, data in shots.items():
        image = Image.open(io.BytesIO(data))
        found = quality.score(data, quality_model)
        candidates.append(Candidate(time_ms, found.overall, dict(found.dimensions), FrameLook.of(image.convert("RGB"))))
    choice = choose(candidates)
    written = _write_frames(path, shots, frames_out) if frames_out else {}
    record: dict[str, Any] = {"path": path, "kind": "video", "duration_ms": duration_ms}
    if choice.chosen is not None:
        record.update(chosen_ms=choice.chosen.time_ms, score=round(choice.chosen.score or 0.0, 3),
                      dimensions={k: round(v, 3) for k, v in choice.chosen.dimensions.items()},
                      runners_up=[{"time_ms": c.time_ms, "score": round(c.score or 0.0, 3)} for c in choice.runners_up])
    if choice.fallback:
        record["fallback"] = True
    record["frames"] = [{"time_ms": c.time_ms, "score": round(c.score or 0.0, 3),
                         **({"rejected": choice.rejected[c.time_ms]} if c.time_ms in choice.rejected else {}),
                         **({"file": written[c.time_ms]} if c.time_ms in written else {})} for c in candidates]
    return record


def _write_frames(path: str, shots: dict[int, bytes], folder: str) -> dict[int, str]:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(path).stem
    written = {}
    for time_ms, data in shots.items():
        target = out / f"{stem}-{time_ms:07d}ms.jpg"
        target.write_bytes(data)
        written[time_ms] = str(target)
    return written
