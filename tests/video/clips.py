"""Test videos made from the bundled photos, with bad stretches a thumbnail must avoid.

Each clip is one photo in stretches of 1.2 s: motion-blurred, defocused, too dark, too bright,
black, a fade to black, and one clean stretch, in an order shuffled per clip (seeded), so the
clean stretch is sometimes early, sometimes late. The truth a test checks: the chosen time
falls within the clean stretch.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image

from worker.demo.build import DEMO_IMAGES, read_demo_image
from worker.quality.training import damage
from worker.video.encode import encode_video

FPS, STRETCH_FRAMES = 10, 12  # 1.2 s stretches
WIDTH = 384  # the photos at 384 px wide: quick to encode and to score
BAD = ("motion", "defocus", "under", "over", "black", "fade")


@dataclass(frozen=True)
class Clip:
    name: str
    data: bytes
    clean_ms: tuple[int, int]  # [start, end) of the clean stretch
    duration_ms: int


def photo(name: str) -> Image.Image:
    image = Image.open(io.BytesIO(read_demo_image(name))).convert("RGB")
    height = round(image.height * WIDTH / image.width) // 2 * 2
    return image.resize((WIDTH, height), Image.Resampling.LANCZOS)


def _stretch(image: Image.Image, kind: str) -> list[Image.Image]:
    if kind == "clean":
        return [image] * STRETCH_FRAMES
    if kind == "black":
        return [Image.new("RGB", image.size)] * STRETCH_FRAMES
    if kind == "fade":
        black = Image.new("RGB", image.size)
        return [Image.blend(image, black, 0.35 + 0.65 * i / (STRETCH_FRAMES - 1)) for i in range(STRETCH_FRAMES)]
    return [damage.make(image, kind, 1.0)] * STRETCH_FRAMES


def make_clip(photo_name: str, codec: str, seed: int) -> Clip:
    image = photo(photo_name)
    order = ["clean", *BAD]
    random.Random(seed).shuffle(order)
    frames: list[Image.Image] = []
    clean = (0, 0)
    for index, kind in enumerate(order):
        if kind == "clean":
            start = index * STRETCH_FRAMES * 1000 // FPS
            clean = (start, start + STRETCH_FRAMES * 1000 // FPS)
        frames += _stretch(image, kind)
    data = encode_video(frames, codec, fps=FPS, gop=FPS)
    stem = photo_name.rsplit(".", 1)[0]
    return Clip(f"{stem}-{codec}.mp4", data, clean, len(frames) * 1000 // FPS)


def clips(codecs: tuple[str, ...] = ("h264", "h265"), photos: tuple[str, ...] = DEMO_IMAGES) -> list[Clip]:
    return [make_clip(name, codec, seed=7 * i + j) for i, name in enumerate(photos) for j, codec in enumerate(codecs)]
