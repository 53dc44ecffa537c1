"""video/snapshot's decoding on real H.264 and H.265 encodes (libx264, libx265 through PyAV).

Each frame of the test videos is one flat colour whose red channel encodes the frame number
(frame i: red = 9 i), so the captured frame's number reads back from one pixel: the
checks are about *which* frame comes back, as OSS documents it.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw

from worker.oss.snapshot_contract import SnapshotSpec, parse_snapshot
from worker.video.encode import encode_video
from worker.video.snapshot import (
    DECODE_TIMEOUT_EC,
    NOT_SUPPORTED_EC,
    TOO_LARGE_EC,
    UNREADABLE_EC,
    VideoError,
    VideoLimits,
    capture,
    probe,
)

FPS, GOP, FRAMES = 10, 10, 25  # key frames at 0, 1.0 and 2.0 s; the last frame at 2.4 s


def numbered_frame(i: int, size: tuple[int, int] = (96, 64)) -> Image.Image:
    image = Image.new("RGB", size, (9 * i, 40, 40))
    ImageDraw.Draw(image).rectangle([0, 0, 15, 15], fill=(255, 255, 255))  # marks the top-left corner
    return image


@pytest.fixture(scope="module", params=["h264", "h265"])
def video(request: pytest.FixtureRequest) -> bytes:
    return encode_video([numbered_frame(i) for i in range(FRAMES)], codec=request.param, fps=FPS, gop=GOP)


def frame_number(data: bytes) -> int:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    red = image.getpixel((image.width * 3 // 4, image.height * 3 // 4))[0]
    return round(red / 9)


def snap(data: bytes, process: str, limits: VideoLimits | None = None) -> bytes:
    spec = parse_snapshot(process)
    return capture(io.BytesIO(data), spec) if limits is None else capture(io.BytesIO(data), spec, limits)


@pytest.mark.parametrize(("t_ms", "expected"), [(0, 0), (1250, 12), (1299, 12), (1300, 13), (2400, 24)])
def test_the_frame_on_screen_at_t(video: bytes, t_ms: int, expected: int) -> None:
    assert frame_number(snap(video, f"t_{t_ms}")) == expected


@pytest.mark.parametrize(("t_ms", "expected"), [(0, 0), (999, 0), (1000, 10), (1250, 10), (2300, 20)])
def test_fast_mode_gives_the_key_frame_at_or_before_t(video: bytes, t_ms: int, expected: int) -> None:
    assert frame_number(snap(video, f"t_{t_ms},m_fast")) == expected


@pytest.mark.parametrize("process", ["t_2500", "t_99999999", "t_99999999,m_fast"])
def test_past_the_end_gives_the_last_frame(video: bytes, process: str) -> None:
    assert frame_number(snap(video, process)) == FRAMES - 1


def test_size_follows_the_documented_rules(video: bytes) -> None:
    def size(process: str) -> tuple[int, int]:
        return Image.open(io.BytesIO(snap(video, process))).size

    assert size("t_0") == (96, 64)  # neither: the video's size
    assert size("t_0,w_48") == (48, 32)  # h 0: in proportion
    assert size("t_0,h_32") == (48, 32)  # w 0: in proportion
    assert size("t_0,w_0,h_0") == (96, 64)
    assert size("t_0,w_90,h_20") == (90, 20)  # both: exactly that


@pytest.mark.parametrize(("process", "ec"), [("t_0,w_97", "0053-00000104"), ("t_0,h_65", "0053-00000105")])
def test_a_side_larger_than_the_video_is_refused(video: bytes, process: str, ec: str) -> None:
    with pytest.raises(VideoError) as caught:
        snap(video, process)
    assert (caught.value.status, caught.value.ec) == (400, ec)


def test_png_and_jpeg(video: bytes) -> None:
    assert Image.open(io.BytesIO(snap(video, "t_0,f_png"))).format == "PNG"
    assert Image.open(io.BytesIO(snap(video, "t_0,f_jpg"))).format == "JPEG"
    assert Image.open(io.BytesIO(snap(video, "t_0"))).format == "JPEG"  # f defaults to jpg


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_ar_auto_follows_the_rotation_metadata(codec: str) -> None:
    """A phone held upright records landscape frames and a -90° display matrix (turn clockwise):
    with ar_auto the snapshot is portrait and the marked top-left corner ends top-right."""
    rotated = encode_video([numbered_frame(i) for i in range(5)], codec=codec, fps=FPS, gop=GOP, rotation=-90)
    as_stored = Image.open(io.BytesIO(snap(rotated, "t_0"))).convert("L")
    upright = Image.open(io.BytesIO(snap(rotated, "t_0,ar_auto"))).convert("L")
    assert as_stored.size == (96, 64) and as_stored.getpixel((4, 4)) > 200
    assert upright.size == (64, 96)
    assert upright.getpixel((64 - 5, 4)) > 200 and upright.getpixel((4, 4)) < 150
    # w and h apply to what the viewer sees
    assert Image.open(io.BytesIO(snap(rotated, "t_0,ar_auto,h_48"))).size == (32, 48)


@pytest.mark.parametrize(("codec", "container"), [("vp9", "webm"), ("mpeg4", "mp4")])
def test_codecs_other_than_h264_and_h265_are_refused(codec: str, container: str) -> None:
    other = encode_video([numbered_frame(i) for i in range(3)], codec=codec, container=container)
    with pytest.raises(VideoError) as caught:
        snap(other, "t_0")
    assert (caught.value.status, caught.value.code, caught.value.ec) == (400, "BadRequest", NOT_SUPPORTED_EC)
    assert codec in caught.value.message


def test_what_is_not_a_video_is_refused() -> None:
    jpeg = io.BytesIO()
    numbered_frame(1).save(jpeg, format="JPEG")
    for data in (b"", b"plain text, not a video\n" * 100):
        with pytest.raises(VideoError) as caught:
            snap(data, "t_0")
        assert (caught.value.status, caught.value.ec) == (400, UNREADABLE_EC)


def test_a_truncated_video_is_refused(video: bytes) -> None:
    """The MP4 index (moov) comes after the frames: cut in half, the file has no index."""
    with pytest.raises(VideoError) as caught:
        snap(video[: len(video) // 2], "t_0")
    assert caught.value.ec == UNREADABLE_EC


def test_limits(video: bytes) -> None:
    with pytest.raises(VideoError) as caught:
        snap(video, "t_0", VideoLimits(max_pixels=95 * 64))
    assert caught.value.ec == TOO_LARGE_EC and "96x64" in caught.value.message
    with pytest.raises(VideoError) as caught:
        snap(video, "t_0", VideoLimits(max_duration_s=2.0))
    assert caught.value.ec == TOO_LARGE_EC
    with pytest.raises(VideoError) as caught:
        snap(video, "t_2400", VideoLimits(max_decode_s=-1.0))  # any decoding at all is too long
    assert (caught.value.status, caught.value.code, caught.value.ec) == (503, "CpuLimitExceeded", DECODE_TIMEOUT_EC)


def test_longer_and_shorter_sides(video: bytes) -> None:
    def size(process: str) -> tuple[int, int]:
        return Image.open(io.BytesIO(snap(video, process))).size

    assert size("t_0,l_48") == (48, 32) and size("t_0,s_32") == (48, 32) and size("t_0,l_90,s_20") == (90, 20)
    assert size("t_0,w_24,l_90") == (24, 16)  # w/h decide where both kinds are given
    with pytest.raises(VideoError) as caught:
        snap(video, "t_0,s_65")  # the shorter side is 64
    assert caught.value.ec == "0053-00000103"


def test_ar_h_and_ar_w_turn_the_frame_portrait_or_landscape(video: bytes) -> None:
    portrait = Image.open(io.BytesIO(snap(video, "t_0,ar_h"))).convert("L")
    assert portrait.size == (64, 96)
    assert portrait.getpixel((64 - 5, 4)) > 200  # a quarter turn clockwise: top-left goes top-right
    assert Image.open(io.BytesIO(snap(video, "t_0,ar_w"))).size == (96, 64)  # already landscape


def test_probe_reads_the_header(video: bytes) -> None:
    info = probe(io.BytesIO(video))
    assert info.codec in ("h264", "hevc") and (info.width, info.height) == (96, 64)
    assert info.duration_s == pytest.approx(FRAMES / FPS, abs=0.11)


def test_spec_default_is_the_first_frame_as_jpeg(video: bytes) -> None:
    data = capture(io.BytesIO(video), SnapshotSpec())
    assert Image.open(io.BytesIO(data)).format == "JPEG" and frame_number(data) == 0
