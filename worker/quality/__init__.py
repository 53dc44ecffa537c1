"""picscore's answer to OSS ``x-oss-process=image/score``: bytes in, quality scores out.

>>> s = score(open("photo.jpg", "rb").read())          # doctest: +SKIP
>>> s.overall, s.dimensions["noise"]                      # doctest: +SKIP
(0.83, 0.97)

``overall`` is OSS's ``OverallQualityScore``: 0 (worst) .. 1 (best). ``dimensions`` holds one
0..1 score per aspect, higher always better:

* ``resolution``  — pixel count, log scale, saturating at 2 Mpx;
* ``noise``       — sensor/grain noise σ, measured in flat areas at native resolution;
* ``blur``        — edge width at the strongest edges, at native resolution;
* ``compression`` — JPEG 8×8 blockiness;
* ``distortion``  — blur and compression together (what OSS calls distortion);
* ``saturation``  — colourfulness (Hasler–Süsstrunk);
* ``exposure``    — mean luma vs mid-grey, and clipped shadows/highlights.

``measurements`` holds each dimension's raw quantity (σ in 8-bit levels, edge width in px,
boundary/interior gradient ratio, colourfulness M, mean luma 0..1, pixel count) for
explanations. How they combine: :mod:`worker.quality.scorer`.

Pure and deterministic: no I/O, no randomness, no threads; the same bytes give the same
scores in any process. Failures raise an :class:`ImageError` carrying the OSS ``Code`` and
``EC`` to answer with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from worker.quality.decode import (
    MAX_PIXELS,
    MAX_SIDE,
    ImageError,
    ImageTooLarge,
    UnsupportedImage,
    decode,
)
from worker.quality.scorer import combine, measure_all

__all__ = [
    "MAX_PIXELS",
    "MAX_SIDE",
    "ImageError",
    "ImageTooLarge",
    "Score",
    "UnsupportedImage",
    "score",
]


@dataclass(frozen=True)
class Score:
    """One picture's quality: ``overall`` and per-dimension scores, all 0..1, higher better."""

    overall: float
    dimensions: Mapping[str, float]
    measurements: Mapping[str, float]


def score(data: bytes) -> Score:
    """Score an encoded picture (any format :func:`worker.quality.decode.decode` reads).

    Raises :class:`UnsupportedImage` or :class:`ImageTooLarge` (both :class:`ImageError`).
    """
    found = measure_all(decode(data))
    overall, dimensions = combine({name: m.score for name, m in found.items()})
    return Score(
        overall=overall,
        dimensions=MappingProxyType(dimensions),
        measurements=MappingProxyType({name: m.raw for name, m in found.items()}),
    )
