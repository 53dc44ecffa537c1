"""The quality dimensions: where each is measured, and how their scores combine.

picscore's first, unlearned scorer lives here, and its parts still serve the shipped one:

* :func:`measure_all` takes every measure of :mod:`worker.quality.measures` on a decoded
  picture, and gives the ``dimensions`` (and ``measurements``) that ``quality.score`` answers;
* :func:`combine` turns the six measured scores into the seven dimensions and the unlearned
  overall (:func:`worker.quality.score_measured`, the baseline benchmarks compare with);
* :func:`overall_score` blends the learned model's score with the dimensions, and lets a
  severe defect in a named dimension cap the result: the shipped overall
  (:func:`worker.quality.score`).

Cost: the decode is the floor, so everything here must cost less than it.

* Global statistics (exposure, colour) use a *view*: the picture box-reduced by an integer
  factor to at most :data:`GLOBAL_STATS_SIDE` px a side.
* Native-resolution measures (noise, blur, JPEG blocks) read square luma *tiles* covering
  about 1/8 of the picture (at most 9 x 256² px). The picture is cut into 4x4 cells; the view's
  gradient ranks them, and tiles are centred in the most detailed cells (where focus shows)
  and in the flattest ones (where noise and blocks show). Deterministic: same pixels, same
  tiles.

The unlearned overall (:func:`combine`) is a weighted geometric mean of the dimension scores,
each floored at 0.01::

    distortion = blur^0.65 · compression^0.35
    overall    = resolution^0.20 · noise^0.15 · distortion^0.35 · exposure^0.20
                 · saturation^0.10

Multiplicative, so one terrible dimension pulls the overall down however good the others are
(a dimension at 0.1 with weight 0.2 alone caps the overall at 0.63; at the 0.01 floor, 0.40),
and strictly increasing in every dimension, so damage that lowers a dimension and nothing else
lowers the overall. The floor keeps one zero from hiding every other dimension.

The shipped overall (:func:`overall_score`) is mostly the learned model's, blended with the
measures (:func:`blended_score`), under a *weakest-link gate*: each of blur, noise, JPEG
compression and exposure (too dark or too bright, apart) caps the overall once its score falls
below a threshold::

    cap     = min over the gated defects of  min(1, score / threshold) ^ power
    overall = blended · ((1 + blended^8) / (1 + (blended / cap)^8))^(1/8)     (= blended at cap 1)

a soft minimum of the blended score and the cap: a picture without a severe defect keeps its
blended score exactly (the learned model ranks it), one with a severe defect scores about its
cap, and every further step of that damage lowers it. :data:`GATE` has the thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from PIL import Image

from worker.quality import measures
from worker.quality.measures import Measure

__all__ = ["DIMENSIONS", "GATE", "GLOBAL_STATS_SIDE", "WEIGHTS", "blended_score", "combine", "defect_cap",
           "measure_all", "overall_score", "soft_minimum", "tile_boxes"]

GLOBAL_STATS_SIDE = 160
"""Longest side, px, of the global view that exposure, colour and the ranking of tile cells
read: plenty for a histogram and colour statistics, and far cheaper than the decode. Not the
learned model's input side (:data:`worker.quality.views.VIEW_SIDE`)."""

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
    "noise": 0.15,
    "distortion": 0.35,
    "exposure": 0.20,
    "saturation": 0.10,
}
_DISTORTION_WEIGHTS: Mapping[str, float] = {"blur": 0.65, "compression": 0.35}
_FLOOR = 0.01

_FAST_REDUCE = 4  # the largest factor with a fast path in Pillow's reduce
_CELLS = 4  # candidate tile positions: the centres of a 4x4 grid of cells
_TILE_SHARE = 8  # tiles cover about 1/_TILE_SHARE of the picture …
_TILE_MIN, _TILE_MAX = 32, 256  # … with sides within these bounds (px)

Box = tuple[int, int, int, int]


def global_view(img: Image.Image) -> Image.Image:
    """The whole picture box-reduced by an integer factor to at most GLOBAL_STATS_SIDE px a side.

    Large factors go in two steps, 4 and then the rest: Pillow has fast paths for small
    factors only, and a box of boxes is a box, so the result is the same for less work.
    """
    factor = math.ceil(max(img.size) / GLOBAL_STATS_SIDE)
    if factor >= 2 * _FAST_REDUCE:
        img = img.reduce(_FAST_REDUCE)
        factor = math.ceil(max(img.size) / GLOBAL_STATS_SIDE)
    return img.reduce(factor) if factor > 1 else img


def cell_detail(luma_view: np.ndarray, grid: int = _CELLS) -> np.ndarray:
    """Mean |gradient| of each cell of a ``grid`` x ``grid`` grid over the view, row-major,
    shape (grid²,). All zero (no preference) for a view too thin to cut into cells.
    """
    grad = np.abs(np.diff(luma_view, axis=1))[:-1] + np.abs(np.diff(luma_view, axis=0))[:, :-1]
    ch, cw = grad.shape[0] // grid, grad.shape[1] // grid
    if ch == 0 or cw == 0:
        return np.zeros(grid * grid)
    cells = grad[: ch * grid, : cw * grid].reshape(grid, ch, grid, cw)
    return cells.mean(axis=(1, 3)).ravel()


def tile_boxes(width: int, height: int, detail: np.ndarray) -> tuple[list[Box], int]:
    """Crop boxes on the 8-px grid, most detailed cells first, then the flattest; and how
    many are the detailed ones.

    2 + 2 tiles below 1 Mpx, else 5 detailed + 4 flat; sides a multiple of 8 chosen so that
    they cover ~1/8 of the picture. None for a picture under 16 px a side.
    """
    pixels = width * height
    n_detail, n_flat = (2, 2) if pixels < 1_000_000 else (5, 4)
    side = int(math.sqrt(pixels / _TILE_SHARE / (n_detail + n_flat))) // 8 * 8
    side = min(max(side, _TILE_MIN), _TILE_MAX, width // 8 * 8, height // 8 * 8)
    if side < 16:
        return [], 0
    order = np.argsort(-detail, kind="stable").tolist()  # most detailed first; ties by position
    cells = order[:n_detail] + order[n_detail:][::-1][:n_flat]

    def start(index: int, extent: int) -> int:
        centre = (2 * index + 1) * extent // (2 * _CELLS)
        return min(max(centre - side // 2, 0), extent - side) // 8 * 8

    boxes = []
    for cell in cells:
        x, y = start(cell % _CELLS, width), start(cell // _CELLS, height)
        boxes.append((x, y, x + side, y + side))
    return boxes, n_detail


def native_tiles(img: Image.Image, boxes: list[Box]) -> np.ndarray:
    """The boxes' luma at native resolution, float32 ``(k, T, T)``.

    Pasted into one strip first: one array conversion instead of k, each with a fixed overhead.
    """
    side = boxes[0][2] - boxes[0][0]
    strip = Image.new("L", (side, side * len(boxes)))
    for i, box in enumerate(boxes):
        strip.paste(img.crop(box).convert("L"), (0, side * i))
    return np.asarray(strip, dtype=np.float32).reshape(len(boxes), side, side)


def measure_all(img: Image.Image, size: tuple[int, int] | None = None) -> dict[str, Measure]:
    """Every measured dimension of an 8-bit RGB picture (distortion is derived: see combine).

    ``size`` is the picture's full size when ``img`` was decoded at a reduced JPEG scale
    (:func:`worker.quality.decode.decode_scaled`): resolution is judged on what was stored,
    the pixel-level measures on what was decoded.
    """
    view = global_view(img)
    luma = view.convert("L")
    rgb = np.asarray(view)
    brightest = np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])  # ~15x faster than max(axis=2)
    found = {
        "resolution": measures.resolution(*(size or img.size)),
        "saturation": measures.saturation(rgb.astype(np.float32)),
        "exposure": measures.exposure(np.asarray(luma.histogram(), dtype=np.float64),
                                      np.bincount(brightest.ravel(), minlength=256).astype(np.float64)),
    }
    # a half-size luma view is detailed enough to rank 4x4 cells
    boxes, n_detail = tile_boxes(*img.size, cell_detail(np.asarray(luma.reduce(2), np.float32)))
    if not boxes:  # under 16 px: nothing to see at native resolution, so no evidence of harm
        return found | {"noise": Measure(0.0, 1.0), "blur": Measure(0.0, 1.0),
                        "compression": Measure(1.0, 1.0)}
    tiles = native_tiles(img, boxes)
    return found | {
        "noise": measures.noise(tiles[n_detail:], backup=tiles[:n_detail]),
        "blur": measures.blur(tiles[:n_detail]),
        "compression": measures.compression(tiles),
    }


def _geometric_mean(scores: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Weighted geometric mean of the floored scores; weights need not sum to 1."""
    log_sum = sum(w * math.log(max(scores[k], _FLOOR)) for k, w in weights.items())
    return math.exp(log_sum / sum(weights.values()))


def combine(dimension_scores: Mapping[str, float]) -> tuple[float, dict[str, float]]:
    """(overall, all seven dimensions) from the six measured ones; see the module docstring."""
    dims = dict(dimension_scores)
    dims["distortion"] = _geometric_mean(dims, _DISTORTION_WEIGHTS)
    return _geometric_mean(dims, WEIGHTS), {k: dims[k] for k in DIMENSIONS}


#: Share of the measured dimensions in the shipped overall score (the rest is the learned model).
#: Small, so that it costs the learned model's agreement with people almost nothing (the model
#: card has the cross-validation figures), yet a damage that clearly lowers a dimension lowers
#: the overall even where the learned score wobbles.
MEASURED_SHARE = 0.1
#: Resolution enters on its own, relative to BIQ2021's 512x512 (where the learned score is
#: calibrated): smaller pictures lose, larger ones gain, up to the clip at 1. BIQ2021 has one
#: size, so this cannot be fitted there; 0.2 is resolution's weight in :data:`WEIGHTS`.
RESOLUTION_WEIGHT = 0.2
RESOLUTION_REFERENCE = measures.resolution(512, 512).score

#: The severe-defect gate (issue 17): defect → (threshold, power). Below its threshold the
#: named dimension caps the overall at ``(score / threshold) ** power``; the lowest cap is the
#: weakest link. Exposure is gated apart by its direction (the sign of its stops): people rate
#: a dark picture lower than a bright one of the same exposure score (a white background, snow).
#: Calibrated on damage ladders of BIQ2021 train photos (:mod:`worker.quality.training.gate`;
#: the model card has the figures), under a guard of train photos that keeps agreement with
#: people within each BIQ2021 subset: a photographer's low-key, high-key and shallow-focus
#: photos are choices, not defects, and a stricter gate ranked them 0.09 worse.
GATE: Mapping[str, tuple[float, float]] = {
    "blur": (0.25, 1.0),
    "noise": (0.7, 2.0),
    "compression": (0.1, 0.75),
    "under": (0.4, 0.75),
    "over": (0.1, 1.0),
}
#: How softly the blended score meets the cap (a generalised mean of order −GATE_SOFTNESS):
#: large is a hard minimum; finite, a cap a little above the blended score already pulls it down,
#: so every step of a damage past the threshold lowers the overall.
GATE_SOFTNESS = 8.0
FLOOR = _FLOOR
#: Which dimension each gated defect reads.
GATED_DIMENSION = {"blur": "blur", "noise": "noise", "compression": "compression", "under": "exposure",
                   "over": "exposure"}


def blended_score(learned: float, dimensions: Mapping[str, float]) -> float:
    """The learned score blended with the measures: learned^0.9 · measured^0.1 · (resolution /
    512² reference)^0.2, in 0..1. "measured" is the dimensions' weighted geometric mean without
    resolution. The overall before the gate, and the whole overall without a severe defect."""
    measured = _geometric_mean(dimensions, {k: w for k, w in WEIGHTS.items() if k != "resolution"})
    size = (max(dimensions["resolution"], _FLOOR) / RESOLUTION_REFERENCE) ** RESOLUTION_WEIGHT
    blended = max(learned, _FLOOR) ** (1 - MEASURED_SHARE) * measured ** MEASURED_SHARE * size
    return min(1.0, max(0.0, blended))


def soft_minimum(value: float | np.ndarray, cap: float | np.ndarray,
                 softness: float = GATE_SOFTNESS) -> float | np.ndarray:
    """``value`` pulled under ``cap`` (both in 0..1): ``value · ((1 + value^n) / (1 + (value / cap)^n))^(1/n)``.

    Exactly ``value`` at ``cap`` = 1, close to ``min(value, cap)`` when they are far apart, and
    strictly increasing in both.
    """
    value = np.maximum(value, 1e-9)
    return value * ((1.0 + value**softness) / (1.0 + (value / cap) ** softness)) ** (1.0 / softness)


def _cap(score: float, threshold: float, power: float) -> float:
    return min(1.0, max(score, _FLOOR) / threshold) ** power


def defect_cap(dimensions: Mapping[str, float], measurements: Mapping[str, float] | None = None) -> float:
    """The lowest of the gated defects' caps: 1 unless some dimension is below its threshold.

    Exposure is gated by its direction, from its stops (``measurements["exposure"]``): "under"
    reads the exposure score's key factor alone (:func:`worker.quality.measures.exposure_key`;
    crushed blacks are a low-key photographer's choice as often as a fault), "over" the whole
    exposure score. Without the measurements, the whole score under the gentler of the two.
    """
    cap = min(_cap(dimensions[GATED_DIMENSION[defect]], *GATE[defect]) for defect in ("blur", "noise", "compression"))
    stops = None if measurements is None else measurements.get("exposure")
    if stops is None:
        return min(cap, _cap(dimensions["exposure"], *_GENTLER_EXPOSURE))
    if stops < 0:
        return min(cap, _cap(measures.exposure_key(stops), *GATE["under"]))
    return min(cap, _cap(dimensions["exposure"], *GATE["over"]))


#: The exposure gate used when the direction is unknown: the one whose cap is higher on average.
_GENTLER_EXPOSURE = max(GATE["under"], GATE["over"],
                        key=lambda tp: sum(_cap(x / 100, *tp) for x in range(101)))


def overall_score(learned: float, dimensions: Mapping[str, float],
                  measurements: Mapping[str, float] | None = None) -> float:
    """The shipped overall, in 0..1: the blended score (:func:`blended_score`) under the
    weakest-link cap of the gated defects (:func:`defect_cap`, :func:`soft_minimum`).

    ``dimensions`` are all seven from :func:`combine`; ``measurements`` the raw ones
    (:func:`measure_all`), for the direction of an exposure error — pass them, as
    ``quality.score`` does. Without a defect below its threshold the overall is the blended
    score: the learned model alone ranks such pictures.
    """
    blended = blended_score(learned, dimensions)
    cap = defect_cap(dimensions, measurements)
    return blended if cap >= 1.0 else min(1.0, max(0.0, float(soft_minimum(blended, cap))))
