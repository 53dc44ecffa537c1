"""Making small videos from pictures: the demo bucket's and the tests' H.264 and H.265 videos.

Real encodes (libx264, libx265 through PyAV), so that what the server and ``picscore
thumbnails`` read is what a camera or an editor would have written: key frames every ``gop``
frames, B-frames, an MP4 index, a display matrix for rotation.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import av
import numpy as np
from PIL import Image

__all__ = ["encode_video", "CODECS"]

#: Names people use → FFmpeg encoders.
CODECS = {"h264": "libx264", "h265": "libx265", "vp9": "libvpx-vp9", "mpeg4": "mpeg4"}


def encode_video(frames: Iterable[Image.Image], codec: str = "h264", fps: int = 10, gop: int = 10,
                 rotation: int = 0, container: str = "mp4") -> bytes:
    """The frames (all one size, even sides) as a video; ``rotation`` degrees counter-clockwise
    in the display matrix (a phone held upright records -90)."""
    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as muxer:
        stream = None
        for image in frames:
            if stream is None:
                stream = muxer.add_stream(CODECS[codec], rate=fps)
                stream.width, stream.height = image.size
                stream.pix_fmt = "yuv420p"
                options = {"g": str(gop), "keyint_min": str(gop)}
                if codec == "h265":
                    options["x265-params"] = f"keyint={gop}:min-keyint={gop}:log-level=error"
                stream.options = options
                if rotation:
                    stream.set_display_rotation(rotation)
            frame = av.VideoFrame.from_ndarray(np.asarray(image.convert("RGB")), format="rgb24")
            for packet in stream.encode(frame):
                muxer.mux(packet)
        if stream is None:
            raise ValueError("a video needs at least one frame")
        for packet in stream.encode():
            muxer.mux(packet)
    return out.getvalue()
