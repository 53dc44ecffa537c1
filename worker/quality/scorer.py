"""Picture → dimension scores → one overall score.

Cost: the decode is the floor, so everything here must cost less than it. Global statistics
(exposure, colour) use a box-reduced view of at most :data:`VIEW_SIDE` pixels a side; the
native-resolution measures (noise, blur, JPEG blocks) read a fixed 2×2 or 3×3 grid of square
luma tiles, a few percent of a large picture. Both are deterministic functions of the pixels.

Overall formula — a weighted geometric mean::

    distortion = blur^0.6 · compression^0.4
    overall    = resolution^0.20 · noise^0.20 · distortion^0.30 · exposure^0.20 · saturation^0.10

It is multiplicative, so one terrible dimension pulls the overall down however good the others
are (a dimension at 0.1 with weight 0.2 alone caps the overall at 0.63), and it is strictly
increasing in every dimension, so damage that lowers a dimension lowers the overall. Scores
are floored at 0.01 before combining so that a single zero does not hide every other dimension.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from PIL import Image

from worker.quality import measures
from worker.quality.measures import Measure

__all__ = ["DIMENSIONS", "WEIGHTS", "combine", "measure_all"]

VIEW_SIDE = 384  # longest side of the global view
DIMENSIONS = (
    "resolution",
    "noise",
    "blur",
    "compression",
    "distortion",
    "saturation",
    "exposure",
)
WEIGHTS: Mapping[str, float] = {
    "resolution": 0.20,
    "noise": 0.20,
    "distortion": 0.30,
    "exposure": 0.20,
    "saturation": 0.10,
}
_DISTORTION_WEIGHTS = {"blur": 0.6, "compression": 0.4}
_FLOOR = 0.01


def global_view(img: Image.Image) -> Image.Image:
    """The whole picture box-reduced by an integer factor to at most VIEW_SIDE a side."""
    factor = math.ceil(max(img.size) / VIEW_SIDE)
    return img.reduce(factor) if factor > 1 else img


def tile_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Deterministic crop boxes: a g×g grid of T-px squares spread evenly, on the 8-px grid.

    Small pictures get 2×2 tiles of 128 px (JPEG blocks, noise and edges need no more),
    large ones 3×3 of 256 px; a picture narrower than a tile gets one tile as big as fits.
    """
    pixels = width * height
    side, grid = (256, 3) if pixels >= 4_000_000 else (128, 3) if pixels >= 1_000_000 else (128, 2)
    side = min(side, width - width % 8, height - height % 8)
    if side < 16:
        return []
    if side * grid > min(width, height):
        grid = 1

    def starts(extent: int) -> list[int]:
        span = extent - side
        return [((span * (2 * i + 1)) // (2 * grid)) // 8 * 8 for i in range(grid)]

    return [(x, y, x + side, y + side) for y in starts(height) for x in starts(width)]


def native_tiles(img: Image.Image) -> np.ndarray:
    """Luma tiles at native resolution as float32 ``(k, T, T)``; k = 0 for a tiny picture."""
    boxes = tile_boxes(*img.size)
    if not boxes:
        return np.zeros((0, 0, 0), np.float32)
    return np.stack([np.asarray(img.crop(box).convert("L")) for box in boxes]).astype(np.float32)


def measure_all(img: Image.Image) -> dict[str, Measure]:
    """Every dimension's measure for an 8-bit RGB picture (distortion excluded: see combine)."""
    view = global_view(img)
    tiles = native_tiles(img)
    unmeasurable = Measure(0.0, 1.0)  # nothing to see in a picture under 16 px: no evidence
    return {
        "resolution": measures.resolution(*img.size),
        "noise": measures.noise(tiles) if tiles.size else unmeasurable,
        "blur": measures.blur(tiles) if tiles.size else unmeasurable,
        "compression": measures.compression(tiles) if tiles.size else unmeasurable,
        "saturation": measures.saturation(np.asarray(view, dtype=np.float32)),
        "exposure": measures.exposure(np.asarray(view.convert("L").histogram(), np.float64)),
    }


def _geometric_mean(scores: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Weighted geometric mean of floored scores; weights need not sum to 1."""
    total = sum(weights.values())
    log_sum = sum(w * math.log(max(scores[k], _FLOOR)) for k, w in weights.items())
    return math.exp(log_sum / total)


def combine(dimension_scores: Mapping[str, float]) -> tuple[float, dict[str, float]]:
    """(overall, all seven dimensions) from the six measured ones; see the module docstring."""
    dims = dict(dimension_scores)
    dims["distortion"] = _geometric_mean(dims, _DISTORTION_WEIGHTS)
    return _geometric_mean(dims, WEIGHTS), {k: dims[k] for k in DIMENSIONS}
