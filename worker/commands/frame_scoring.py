"""Scoring candidate frames for ``picscore thumbnails``: on OSS, or in-process.

* :class:`OssFrameScorer` (``--scorer oss``, the default against Alibaba Cloud): OSS scores
  only stored objects, so each frame is put under a scratch prefix, scored with
  ``image/score``, and deleted at once. A crash can leave scratch objects behind; they all
  live under one prefix per run (:func:`scratch_prefix`), which the command clears before it
  starts and after it ends, so a resumed run removes what the crashed one left.
* :class:`LocalFrameScorer` (``--scorer local``): picscore's own model in worker processes, no
  billed call beyond the snapshot.

Either way the frame's look (:class:`~worker.video.frame_choice.FrameLook`: brightness,
contrast, a tiny signature) is computed here, from the snapshot's bytes, for rejecting frames
no person would pick.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from ..oss.errors import CallFailure, invalid_answer
from ..oss.score_contract import InvalidAnswer, parse_score_answer
from ..video.frame_choice import FrameLook
from .video_calls import VideoCalls

__all__ = ["FrameScore", "FrameScorer", "LocalFrameScorer", "OssFrameScorer", "look_of", "scratch_prefix"]

_LOOK_SIDE = 64  # a JPEG decoded at 1/8 scale (draft mode) is plenty for brightness and likeness


@dataclass(frozen=True)
class FrameScore:
    """One frame's score (None when it could not be scored), its look, and the calls it cost."""

    score: float | None
    dimensions: dict[str, float] = field(default_factory=dict)
    look: FrameLook | None = None
    calls: int = 0
    failure: CallFailure | None = None


class FrameScorer(Protocol):
    async def score(self, data: bytes, scratch_key: str) -> FrameScore: ...
    async def close(self) -> None: ...


def look_of(data: bytes) -> FrameLook | None:
    """The frame's look from its JPEG/PNG bytes, decoded small; None if the bytes are not an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (_LOOK_SIDE, _LOOK_SIDE))
            image.thumbnail((4 * _LOOK_SIDE, 4 * _LOOK_SIDE))
            return FrameLook.of(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def scratch_prefix(base: str, run_id: str) -> str:
    """Where one run's scratch frames live: ``<base><run id>/``, cleared as a whole."""
    return f"{base.rstrip('/')}/{run_id}/" if base else f"{run_id}/"


def scratch_key(prefix: str, video_key: str, time_ms: int) -> str:
    """A frame's scratch key: short, unique per (video, time), whatever the video's key holds."""
    digest = hashlib.sha256(video_key.encode("utf-8")).hexdigest()[:20]
    return f"{prefix}{digest}/{time_ms}.jpg"


def _score_locally(data: bytes, layout: str) -> tuple[float | None, dict[str, float], str | None]:
    """Runs in a worker process: (overall, dimensions, error)."""
    from .. import quality

    try:
        result = quality.score(data, layout)
    except quality.ImageError as exc:
        return None, {}, str(exc)
    return result.overall, dict(result.dimensions), None


def _warm(layout: str) -> int:
    from ..quality.model import shipped_model

    shipped_model(layout)
    return os.getpid()


class LocalFrameScorer:
    """picscore's model in ``workers`` processes (default: one per CPU)."""

    def __init__(self, workers: int | None = None, layout: str = "accurate") -> None:
        self.layout = layout
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["worker.quality"])
        self._pool = ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1, mp_context=context)

    async def score(self, data: bytes, scratch_key: str) -> FrameScore:
        loop = asyncio.get_running_loop()
        (overall, dimensions, error), look = await asyncio.gather(
            loop.run_in_executor(self._pool, _score_locally, data, self.layout), asyncio.to_thread(look_of, data))
        if error is not None:
            return FrameScore(None, look=look, failure=invalid_answer(error, 200, None))
        return FrameScore(overall, dimensions, look)

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)


class OssFrameScorer:
    """Put the frame under the run's scratch prefix, ``image/score`` it, delete it."""

    def __init__(self, calls: VideoCalls, bucket: str) -> None:
        self.calls = calls
        self.bucket = bucket

    async def score(self, data: bytes, scratch_key: str) -> FrameScore:
        look_task = asyncio.create_task(asyncio.to_thread(look_of, data))
        put = await self.calls.put(self.bucket, scratch_key, data, "image/jpeg")
        if put.failure is not None:
            return FrameScore(None, look=await look_task, calls=1, failure=put.failure)
        try:
            scored = await self.calls.score(self.bucket, scratch_key)
        finally:
            await self.calls.delete(self.bucket, scratch_key)  # a failed delete is swept with the prefix
        look = await look_task
        if scored.failure is not None:
            return FrameScore(None, look=look, calls=3, failure=scored.failure)
        assert scored.value is not None
        try:
            answer = parse_score_answer(scored.value.body)
        except InvalidAnswer as exc:
            return FrameScore(None, look=look, calls=3,
                              failure=invalid_answer(str(exc), scored.value.status, scored.value.request_id))
        return FrameScore(answer.score, dict(answer.dimensions), look, calls=3)

    async def close(self) -> None:
        return None
