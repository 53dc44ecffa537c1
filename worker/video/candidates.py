"""Which moments of a video to look at: candidate frame times spread over its length.

A person choosing a thumbnail scrubs through the whole video; so do these times. ``frames``
spreads N times evenly, at the middle of N equal stretches, so neither the first frame (often
black, or a logo) nor the last (a fade out) is a candidate unless the video is very short;
``every`` takes one frame per interval, likewise centred. A ``window`` limits both to part of
the video (skip an intro, an outro). The count is capped: each candidate is a billed snapshot.
"""

from __future__ import annotations

__all__ = ["candidate_times", "MAX_CANDIDATES"]

#: At most this many snapshots per video, whatever ``every`` asks for (a 2-hour film at
#: ``--every 1s`` would be 7,200 billed calls).
MAX_CANDIDATES = 120


def candidate_times(duration_ms: int, frames: int | None = 12, every_ms: int | None = None,
                    window_ms: tuple[int, int | None] | None = None,
                    max_candidates: int = MAX_CANDIDATES) -> list[int]:
    """Sorted distinct times (ms) within ``[start, end)`` of the video, ``end`` at most ``duration_ms``.

    Exactly one of ``frames`` and ``every_ms`` applies (``every_ms`` when given). A window
    outside the video leaves nothing, and raises ValueError: nothing can be chosen there.
    """
    if duration_ms <= 0:
        return [0]
    start, end = 0, duration_ms
    if window_ms is not None:
        start = max(0, window_ms[0])
        end = duration_ms if window_ms[1] is None else min(duration_ms, window_ms[1])
    if end <= start:
        raise ValueError(f"the window {window_ms} leaves nothing of a {duration_ms} ms video")
    span = end - start
    if every_ms is not None:
        if every_ms <= 0:
            raise ValueError("every must be positive")
        count = min(max_candidates, max(1, span // every_ms))
        step = span / count if span // every_ms > max_candidates else every_ms
    else:
        if frames is None or frames <= 0:
            raise ValueError("frames must be positive")
        count = min(frames, max_candidates)
        step = span / count
    return sorted({min(end - 1, int(start + (i + 0.5) * step)) for i in range(count)})
