"""Videos made from the bundled photos, with bad stretches a thumbnail must avoid: the tests',
the benchmark's and the demo's.

Each clip is one photo in equal stretches: motion-blurred, defocused, too dark, too bright,
black, a fade to black, and one clean stretch, in an order shuffled per clip (seeded), so the
clean stretch is sometimes early, sometimes late. The truth to check: the chosen time falls
within the clean stretch (:attr:`Clip.clean_ms`). Real libx264/libx265 encodes
(:func:`worker.video.encode.encode_video`).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image

from worker.demo.build import DEMO_IMAGES, read_demo_image
from worker.quality.training import damage
from worker.video.encode import encode_video

FPS, STRETCH_FRAMES = 10, 12  # 1.2 s stretches by default
WIDTH = 384  # the photos at 384 px wide by default: quick to encode and to score
BAD = ("motion", "defocus", "under", "over", "black", "fade")


@dataclass(frozen=True)
class Clip:
    name: str
    data: bytes
    clean_ms: tuple[int, int]  # [start, end) of the clean stretch
    duration_ms: int


def photo(name: str, width: int = WIDTH) -> Image.Image:
    """A bundled photo ``width`` px wide (even sides, as H.264 and H.265 want)."""
    image = Image.open(io.BytesIO(read_demo_image(name))).convert("RGB")
    height = round(image.height * width / image.width) // 2 * 2
    return image.resize((width // 2 * 2, height), Image.Resampling.LANCZOS)


def _stretch(image: Image.Image, kind: str, frames: int) -> list[Image.Image]:
    if kind == "clean":
        return [image] * frames
    if kind == "black":
        return [Image.new("RGB", image.size)] * frames
    if kind == "fade":
        black = Image.new("RGB", image.size)
        return [Image.blend(image, black, 0.35 + 0.65 * i / max(1, frames - 1)) for i in range(frames)]
    return [damage.make(image, kind, 1.0)] * frames


def make_clip(photo_name: str, codec: str, seed: int, *, width: int = WIDTH, fps: int = FPS,
              stretch_frames: int = STRETCH_FRAMES) -> Clip:
    """One clip of ``photo_name``: seven stretches of ``stretch_frames`` frames, key frames every second."""
    image = photo(photo_name, width)
    order = ["clean", *BAD]
    random.Random(seed).shuffle(order)
    frames: list[Image.Image] = []
    clean = (0, 0)
    for index, kind in enumerate(order):
        if kind == "clean":
            start = index * stretch_frames * 1000 // fps
            clean = (start, start + stretch_frames * 1000 // fps)
        frames += _stretch(image, kind, stretch_frames)
    data = encode_video(frames, codec, fps=fps, gop=fps)
    stem = photo_name.rsplit(".", 1)[0]
    return Clip(f"{stem}-{codec}.mp4", data, clean, len(frames) * 1000 // fps)


def clips(codecs: tuple[str, ...] = ("h264", "h265"), photos: tuple[str, ...] = DEMO_IMAGES, **sizes: int
          ) -> list[Clip]:
    """One clip per photo and codec, each with its own order of stretches."""
    return [make_clip(name, codec, seed=7 * i + j, **sizes) for i, name in enumerate(photos)
            for j, codec in enumerate(codecs)]


def main() -> None:
    """``python -m worker.demo.videos FOLDER``: write the demo clips there (a bucket folder)."""
    import sys
    from pathlib import Path

    if len(sys.argv) != 2:
        sys.exit("usage: python -m worker.demo.videos FOLDER")
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    for clip in clips():
        (folder / clip.name).write_bytes(clip.data)
        print(f"{folder / clip.name}: {clip.duration_ms} ms, clean from {clip.clean_ms[0]} to {clip.clean_ms[1]} ms")


if __name__ == "__main__":
    main()
