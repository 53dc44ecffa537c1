"""Reading a video's header through ranged reads, and choosing candidate frame times."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from PIL import Image

from worker.video.candidates import MAX_CANDIDATES, candidate_times
from worker.video.encode import encode_video
from worker.video.ranged import HeaderUnreachable, read_header
from worker.video.snapshot import VideoError, probe


@pytest.fixture(scope="module")
def clip() -> bytes:
    """3 s of noise at 320x240: about 3 MB, with the MP4 index (moov) after the frames."""
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)) for _ in range(90)]
    return encode_video(frames, "h264", fps=30, gop=30)


def header_of(data: bytes, **kwargs: int) -> tuple[object, int, list[tuple[int, int]]]:
    asked: list[tuple[int, int]] = []

    async def fetch(start: int, end: int) -> bytes:
        asked.append((start, end))
        return data[start:end + 1]

    info, requests = asyncio.run(read_header(len(data), fetch, probe, **kwargs))
    return info, requests, asked


def test_two_ranged_reads_find_an_index_at_the_end(clip: bytes) -> None:
    info, requests, asked = header_of(clip)
    assert info.duration_s == pytest.approx(3.0) and (info.width, info.height) == (320, 240)
    assert requests == 2 == len(asked)
    assert asked[0][0] == 0 and asked[1][1] == len(clip) - 1  # the start, then the block holding the end
    assert sum(end - start + 1 for start, end in asked) < len(clip) / 5  # far from the whole video


def test_small_blocks_take_more_reads_and_the_cap_refuses(clip: bytes) -> None:
    _, requests, _ = header_of(clip, block=4096)
    assert 2 < requests <= 24
    with pytest.raises(HeaderUnreachable) as caught:
        header_of(clip, block=4096, max_requests=2)
    assert caught.value.requests == 2


def test_a_file_that_is_not_a_video_is_refused_after_one_read() -> None:
    text = b"hello, not a video\n" * 30000
    with pytest.raises(VideoError):
        header_of(text)


def test_a_short_ranged_answer_is_refused(clip: bytes) -> None:
    async def short(start: int, end: int) -> bytes:
        return clip[start:end]  # one byte short

    with pytest.raises(HeaderUnreachable):
        asyncio.run(read_header(len(clip), short, probe))


def test_frames_spread_over_the_video_at_the_middle_of_equal_stretches() -> None:
    assert candidate_times(60_000, frames=4) == [7500, 22500, 37500, 52500]
    assert candidate_times(60_000, frames=12)[0] == 2500 and candidate_times(60_000, frames=12)[-1] == 57500


def test_every_and_window() -> None:
    assert candidate_times(60_000, every_ms=20_000) == [10_000, 30_000, 50_000]
    assert candidate_times(60_000, frames=5, window_ms=(10_000, None)) == [15_000, 25_000, 35_000, 45_000, 55_000]
    assert candidate_times(60_000, frames=2, window_ms=(0, 20_000)) == [5_000, 15_000]
    with pytest.raises(ValueError, match="window"):
        candidate_times(60_000, window_ms=(70_000, None))


def test_the_count_is_capped_and_short_videos_still_get_distinct_times() -> None:
    long = candidate_times(7_200_000, every_ms=1000)
    assert len(long) == MAX_CANDIDATES and long == sorted(set(long))
    short = candidate_times(100, frames=12)
    assert len(short) == 12 and all(0 <= t < 100 for t in short)
    assert candidate_times(0) == [0]
    with pytest.raises(ValueError):
        candidate_times(1000, frames=0)
    with pytest.raises(ValueError):
        candidate_times(1000, every_ms=0)
