"""One frame of a video as an image, as OSS's ``video/snapshot`` answers it.

Pure apart from reading the video: a path (or file object) and a
:class:`~worker.oss.snapshot_contract.SnapshotSpec` in, encoded JPEG or PNG bytes out.
The embedded server runs it in its process pool (:mod:`worker.server.scoring_pool`), and
``picscore score VIDEO`` runs it in-process.

What OSS documents, and how it is done here
(https://www.alibabacloud.com/help/en/oss/user-guide/video-snapshots):

* Only H.264 and H.265 are accepted; any other codec, a file that is not a video, and a file
  FFmpeg cannot open (a truncated MP4 has lost its index) is refused with an OSS error.
* ``t`` past the end gives the last frame. Otherwise the frame on screen at ``t``: decoding
  starts at the key frame before ``t`` and stops at the last frame whose time is ``<= t``;
  ``m_fast`` stops at that key frame, which costs one frame's decoding instead of a GOP's.
* ``ar_auto`` rotates the frame as the container's display matrix says, ``ar_h``/``ar_w`` turn
  it portrait/landscape; without ``ar`` the frame comes as stored (OSS does not say which it
  does by default). ``w``/``h`` apply after the rotation, to what a viewer sees.

Limits keep a hostile or huge video from holding a worker: duration, frame size, and decode
time (:class:`VideoLimits`); past them the answer is an error, never a hang.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
from PIL import Image

from ..oss.snapshot_contract import PARAMETER_EC, SnapshotSpec

__all__ = ["VideoError", "VideoLimits", "VideoInfo", "capture", "probe", "ACCEPTED_CODECS", "DEFAULT_VIDEO_LIMITS"]

#: FFmpeg decoder names OSS's snapshot accepts, and what people call them.
ACCEPTED_CODECS = {"h264": "H.264", "hevc": "H.265"}
_JPEG_QUALITY = 90


@dataclass(frozen=True)
class VideoLimits:
    """What one snapshot may cost. Defaults: 6 hours, 8K (7680x4320), 30 s of decoding."""

    max_duration_s: float = 6 * 3600.0
    max_pixels: int = 7680 * 4320
    max_decode_s: float = 30.0


DEFAULT_VIDEO_LIMITS = VideoLimits()


class VideoError(Exception):
    """A video OSS would refuse: HTTP ``status``, OSS ``code`` and ``ec``, a message for people."""

    def __init__(self, message: str, ec: str, code: str = "BadRequest", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.ec = ec
        self.code = code
        self.status = status


#: OSS error codes of the video itself: "format not supported" and "no video stream found" have
#: their pages (https://help.aliyun.com/zh/oss/support/0053-00000005, …/0053-00000004); "the
#: file cannot be read" (-0002) and "the video stream cannot be opened" (-0003) are listed beside
#: them without pages. OSS answers the first with 400 BadRequest "not supported format."
NOT_SUPPORTED_EC = "0053-00000005"
NO_VIDEO_STREAM_EC = "0053-00000004"
UNREADABLE_EC = "0053-00000002"
UNDECODABLE_EC = "0053-00000003"
#: picscore's own limits (OSS documents none): past them a video gets 400 with the EC OSS gives a
#: file it cannot read, and a decode past its time budget the processing pool's 503, as scoring.
TOO_LARGE_EC = UNREADABLE_EC
DECODE_TIMEOUT_EC = "0040-00000100"


@dataclass(frozen=True)
class VideoInfo:
    """What the container's header says: codec, coded size, duration (s) where it is known."""

    codec: str
    width: int
    height: int
    duration_s: float | None


def _open(source: str | Path | BinaryIO) -> av.container.InputContainer:
    try:
        return av.open(source if not isinstance(source, Path) else str(source), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as exc:
        raise VideoError(f"The object cannot be read as a video ({type(exc).__name__}).", UNREADABLE_EC) from None


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoError("The object has no video stream.", NO_VIDEO_STREAM_EC)
    stream = container.streams.video[0]
    if stream.codec_context.name not in ACCEPTED_CODECS:
        raise VideoError(f"not supported format: video/snapshot takes H.264 and H.265, not "
                         f"{stream.codec_context.name}.", NOT_SUPPORTED_EC)
    stream.thread_type = "SLICE"  # one worker, one core: frame threads would only add latency
    stream.codec_context.thread_count = 1
    return stream


def _duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def probe(source: str | Path | BinaryIO, limits: VideoLimits = DEFAULT_VIDEO_LIMITS) -> VideoInfo:
    """The header's facts about a video OSS would snapshot, or the :class:`VideoError` it would give."""
    with _open(source) as container:
        return _checked_video(container, limits)[1]


def _checked_video(container: av.container.InputContainer,
                   limits: VideoLimits) -> tuple[av.video.stream.VideoStream, VideoInfo]:
    """The container's video stream and what its header says, within ``limits``."""
    stream = _video_stream(container)
    info = VideoInfo(stream.codec_context.name, stream.codec_context.width, stream.codec_context.height,
                     _duration_s(container, stream))
    _check_limits(info, limits)
    return stream, info


def _check_limits(info: VideoInfo, limits: VideoLimits) -> None:
    if info.width * info.height > limits.max_pixels:
        raise VideoError(f"The video is {info.width}x{info.height}; video/snapshot takes up to "
                         f"{limits.max_pixels} pixels a frame.", TOO_LARGE_EC)
    if info.duration_s is not None and info.duration_s > limits.max_duration_s:
        raise VideoError(f"The video lasts {info.duration_s:.0f} s; video/snapshot takes up to "
                         f"{limits.max_duration_s:.0f} s.", TOO_LARGE_EC)


def _frame_at(container: av.container.InputContainer, stream: av.video.stream.VideoStream, spec: SnapshotSpec,
              deadline: float) -> av.VideoFrame:
    """The frame shown at ``spec.time_ms`` (the key frame before it with ``fast``); the last frame past the end."""
    seconds = Fraction(spec.time_ms, 1000)
    time_base = stream.time_base or Fraction(1, 1000)
    try:
        container.seek(int(seconds / time_base) + (stream.start_time or 0), stream=stream, backward=True,
                       any_frame=False)
    except av.error.FFmpegError:
        container.seek(0)  # no index to seek by: decode from the start
    start = Fraction(stream.start_time or 0) * time_base
    duration = _duration_s(container, stream)
    chosen: av.VideoFrame | None = None
    try:
        for frame in container.decode(stream):
            if time.monotonic() > deadline:
                raise VideoError("Decoding the frame took too long.", DECODE_TIMEOUT_EC,
                                 code="CpuLimitExceeded", status=503)
            # exact arithmetic: frame 13 of a 10 fps video is at 1.3 s, not float(1.3) > 1.3
            at = None if frame.pts is None else Fraction(frame.pts) * time_base - start
            if chosen is not None and at is not None and at > seconds:
                break  # past t: the frame before is the one on screen at t
            chosen = frame
            if spec.fast and frame.key_frame and (duration is None or seconds < duration):
                break  # the key frame at or before t; past the end, on to the last frame
    except av.error.FFmpegError:
        if chosen is None:
            raise VideoError("The video's frames cannot be decoded.", UNDECODABLE_EC) from None
    if chosen is None:
        raise VideoError("The video has no decodable frame.", UNDECODABLE_EC)
    return chosen


def _size(spec: SnapshotSpec, width: int, height: int) -> tuple[int, int]:
    """The answer's size: both given → both; one given → the other in proportion; none → the
    frame's. ``l``/``s`` (longer/shorter side) stand in for ``w``/``h`` when neither is given."""
    requested_w, requested_h = spec.width, spec.height
    if not (requested_w or requested_h):
        landscape = width >= height
        requested_w, requested_h = (spec.longer, spec.shorter) if landscape else (spec.shorter, spec.longer)
        for name, value, limit in (("l", spec.longer, max(width, height)), ("s", spec.shorter, min(width, height))):
            if value > limit:
                raise VideoError(f"{name} must be from 0 to the video's {'longer' if name == 'l' else 'shorter'} "
                                 f"side ({limit}), not {value}.", PARAMETER_EC[name], code="InvalidArgument")
    if requested_w > width:
        raise VideoError(f"w must be from 0 to the video's width ({width}), not {requested_w}.", PARAMETER_EC["w"],
                         code="InvalidArgument")
    if requested_h > height:
        raise VideoError(f"h must be from 0 to the video's height ({height}), not {requested_h}.",
                         PARAMETER_EC["h"], code="InvalidArgument")
    if requested_w and requested_h:
        return requested_w, requested_h
    if requested_w:
        return requested_w, max(1, round(height * requested_w / width))
    if requested_h:
        return max(1, round(width * requested_h / height)), requested_h
    return width, height


def _orient(image: Image.Image, frame: av.VideoFrame, orient: str | None) -> Image.Image:
    """``ar_auto``: as the display matrix says (PIL turns counter-clockwise, as the matrix does);
    ``ar_h``/``ar_w``: a quarter turn clockwise if the frame is landscape/portrait."""
    if orient == "auto" and frame.rotation:
        return image.rotate(frame.rotation, expand=True)
    if (orient == "h" and image.width > image.height) or (orient == "w" and image.height > image.width):
        return image.rotate(-90, expand=True)
    return image


def capture(source: str | Path | BinaryIO, spec: SnapshotSpec, limits: VideoLimits = DEFAULT_VIDEO_LIMITS) -> bytes:
    """The snapshot ``spec`` asks for, encoded as ``spec.format``; :class:`VideoError` as OSS would refuse."""
    started = time.monotonic()
    with _open(source) as container:
        stream, _ = _checked_video(container, limits)
        frame = _frame_at(container, stream, spec, started + limits.max_decode_s)
        image = _orient(frame.to_image(), frame, spec.orient)
    size = _size(spec, *image.size)
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if spec.format == "png":
        image.save(out, format="PNG")
    else:
        image.save(out, format="JPEG", quality=_JPEG_QUALITY)
    return out.getvalue()
