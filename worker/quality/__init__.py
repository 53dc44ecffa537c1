"""picscore's answer to OSS ``x-oss-process=image/score``: bytes in, quality scores out.

>>> s = score(open("photo.jpg", "rb").read())          # doctest: +SKIP
>>> s.overall, s.dimensions["noise"]                      # doctest: +SKIP
(0.83, 0.97)

``overall`` is OSS's ``OverallQualityScore``: 0 (worst) .. 1 (best). ``dimensions`` holds one
0..1 score per aspect, higher always better:

* ``resolution``  — pixel count, log scale, 0 at a 128² thumbnail, 1 from 2 Mpx;
* ``noise``       — luma noise sigma in the flattest blocks, at native resolution;
* ``blur``        — edge width of the sharpest detailed area, at native resolution;
* ``compression`` — JPEG 8x8 blockiness;
* ``distortion``  — blur and compression together (what OSS calls distortion);
* ``saturation``  — colourfulness (Hasler-Süsstrunk);
* ``exposure``    — scene key in stops from a mid key (under-exposure only as far as the
  highlights have headroom below white), and crushed/blown pixels.

``measurements`` holds the raw quantity behind each measured dimension, for explanations:
pixel count, noise sigma (8-bit levels), edge sigma (px), boundary/interior gradient ratio,
colourfulness M, stops from the mid key. How they are measured and mapped onto 0..1:
:mod:`worker.quality.measures`; how they combine: :mod:`worker.quality.dimensions`.

Pure and deterministic: no I/O, no randomness; the same bytes give the same scores in any
process. Failures raise an :class:`ImageError` carrying the OSS ``Code`` and ``EC`` to
answer with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from PIL import Image

from worker.quality.decode import (
    MAX_PIXELS,
    MAX_SIDE,
    ImageError,
    ImageTooLarge,
    UnsupportedImage,
    decode_scaled,
)
from worker.quality.dimensions import combine, measure_all, overall_score
from worker.quality.model import DEFAULT_LAYOUT, LAYOUTS, shipped_model
from worker.quality.views import ANALYSIS_SHORT_SIDE

__all__ = [
    "DEFAULT_LAYOUT",
    "LAYOUTS",
    "MAX_PIXELS",
    "MAX_SIDE",
    "ImageError",
    "ImageTooLarge",
    "Score",
    "UnsupportedImage",
    "score",
    "score_measured",
]


@dataclass(frozen=True)
class Score:
    """One picture's quality: ``overall`` and per-dimension scores, all 0..1, higher better."""

    overall: float
    dimensions: Mapping[str, float]
    measurements: Mapping[str, float]


def score(data: bytes, model: str = DEFAULT_LAYOUT) -> Score:
    """Score an encoded picture (any format :func:`worker.quality.decode.decode_image` reads).

    ``overall`` is mostly the learned model (:mod:`worker.quality.model`) in the layout
    ``model`` (``"accurate"`` or ``"fast"``), blended with the measured dimensions, and capped
    where blur, noise, JPEG compression or exposure is severe
    (:func:`worker.quality.dimensions.overall_score`); the dimensions are the measures' and do not
    depend on ``model``. Raises :class:`UnsupportedImage` or :class:`ImageTooLarge` (both
    :class:`ImageError`), and ValueError for an unknown ``model``.
    """
    learned = shipped_model(model)
    img, scores, raw = _measured(data)
    _, dimensions = combine(scores)
    overall = overall_score(learned.overall(img, scores, raw), dimensions, raw)
    return Score(overall=round(overall, 6), dimensions=MappingProxyType(dimensions),
                 measurements=MappingProxyType(raw))


def score_measured(data: bytes) -> Score:
    """The first, unlearned scorer: a weighted geometric mean of the measured dimensions.

    Kept as the baseline ``make bench-quality`` compares the learned model with.
    """
    _, scores, raw = _measured(data)
    overall, dimensions = combine(scores)
    return Score(overall=overall, dimensions=MappingProxyType(dimensions), measurements=MappingProxyType(raw))


def _measured(data: bytes) -> tuple[Image.Image, dict[str, float], dict[str, float]]:
    """Decode at the analysis scale and measure: (picture, dimension scores, raw measurements)."""
    img, size = decode_scaled(data, ANALYSIS_SHORT_SIDE)
    found = measure_all(img, size)
    return img, {name: m.score for name, m in found.items()}, {name: m.raw for name, m in found.items()}
