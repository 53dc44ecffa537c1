"""Fixtures for the quality tests: the bundled Kodak photos and ways to damage them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from worker.demo.build import read_demo_image

#: Sharp, well-exposed, colourful demo photos: every kind of damage can only make them worse.
#: (kodim20's sky is already blown and kodim13 is grain and foliage edge to edge, so noise
#: or blur can trade against what they already lack; see worker/quality/measures.py.)
SHARP_PHOTOS = ("kodim23-parrots.jpg", "kodim08-houses.jpg")


def demo_photo(name: str) -> Image.Image:
    """A bundled demo photo, decoded to RGB."""
    with Image.open(io.BytesIO(read_demo_image(name))) as im:
        return im.convert("RGB")


def encode(img: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    """``img`` encoded in memory (PNG by default: lossless, so it adds no damage of its own)."""
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def scaled(img: Image.Image, factor: float) -> Image.Image:
    """Every channel value x factor, clipped: exposure off by log2(factor) stops, roughly."""
    arr = np.asarray(img, dtype=np.float32) * factor
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def noisy(img: Image.Image, sigma: float, seed: int = 7) -> Image.Image:
    """Gaussian noise of ``sigma`` levels added to each channel (fixed seed)."""
    rng = np.random.default_rng(seed)
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0.0, sigma, (img.height, img.width, 3))
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


@pytest.fixture(scope="session", params=SHARP_PHOTOS)
def sharp_photo(request: pytest.FixtureRequest) -> Image.Image:
    return demo_photo(request.param)
