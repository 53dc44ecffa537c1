"""What a person would say about a photo's defects, from its :class:`~worker.quality.Score`.

``--explain`` used to name the lowest dimension with its number, and for the 0.39 Mpx demo
photos that was "resolution 0.66" every time: the resolution dimension is scored against 2 Mpx,
so a picture that is plenty for a web page never reaches 1 (issue 17). :func:`explain` names
*defects* instead — a measurement past the point where a person sees the damage — in the words
a person would use ("too dark (about 2 stops under) and grainy"), and keeps the numbers in
:attr:`Defect.detail`.

Thresholds are on the raw measurements (physical quantities: px, 8-bit levels, stops), not on
the overall score or its aggregation, so recalibrating how scores combine does not move them.
Each sits between the bundled Kodak photos and their damaged copies (:mod:`worker.demo`), with
margin on both sides; the figures below are those photos' measurements. Only kodim20 among the
originals has a defect: its hazy white sky is blown (``tests/quality/conftest.py`` says so too).

Severity is the shortfall of the defect's dimension, ``1 − score``: every measure's curve is
calibrated to ½ where its damage is plainly visible (:mod:`worker.quality.measures`), so
shortfalls compare across dimensions, and the largest is the defect that pulled the score down
most (the *driver*). Resolution is judged against a use instead (:data:`USES`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any

import numpy as np

from worker.quality import Score, measures

__all__ = ["DEFAULT_USE", "USES", "Defect", "Explanation", "explain", "check_use", "clipping", "half_stops",
           "join_words", "unclipped_exposure"]

USES: Mapping[str, int] = MappingProxyType({
    "thumbnail": 150 * 150,
    "web": 250_000,
    "print": 2_000_000,
})
"""Fewest pixels that are enough for each use; below it, "low resolution for <use>".

* ``thumbnail``: 150 x 150 — the default thumbnail of common CMSs (WordPress), a list or grid tile;
* ``web``: 0.25 Mpx — 640 px wide at 3:2 or 16:10 (0.26..0.27 Mpx) fills a typical 600..700 px
  article column at 1x; the 768 x 512 demo photos (0.39 Mpx) are fine, their 160 px copies not;
* ``print``: 2 Mpx — a 6 x 4 in print at about 300 ppi (1800 x 1200 = 2.16 Mpx), rounded down so
  that full HD (2.07 Mpx) passes; also where the resolution dimension reaches 1.
"""
DEFAULT_USE = "web"

#: Edge sigma (px) from which a photo is blurred: a 2x upscale, soft at 100 % (the blur curve's ½).
#: Originals ≤ 1.3 px, the demo's Gaussian-blur copies ≥ 3.9.
BLURRED_EDGE_PX = 2.0
#: Noise sigma (8-bit levels) from which it is grainy. Originals ≤ 7.1 (kodim13's foliage and
#: water read as grain), noise copies ≥ 12.9.
GRAINY_SIGMA = 9.0
#: Block-boundary / interior gradient ratio from which JPEG blocks show. Originals ≤ 1.11,
#: resampled or darkened copies ≤ 1.28, quality-8 JPEGs ≥ 1.89.
BLOCKY_RATIO = 1.5
#: Colourfulness M (Hasler-Süsstrunk) under which colour is washed out: below their "slightly
#: colourful" (15). Originals ≥ 19 (kodim17, a white statue), copies at 10 % saturation ≤ 8.
WASHED_OUT_M = 12.0
#: Stops from the mid key from which a photo is too dark or too bright, and from which the stops
#: are worth saying: scenes themselves span about a stop (Kodak keys: −1.1..+0.3 stops; the
#: originals measure −1.0..+1.3), the demo's dark and bright copies −2.2..−3.5 and +1.1..+2.4
#: (the +1.1 one, kodim17, is caught by its blown highlights).
EXPOSURE_STOPS = 1.5
#: Share of the exposure score lost to crushed or blown pixels from which they are named.
#: Originals 0 bar kodim20 (0.54: blown sky), bright copies ≥ 0.26.
CLIPPING = 0.2
#: A resolution shortfall of this factor in pixels (4x in each side) is severity 1.
_RESOLUTION_RUIN = 16.0
#: Levels that measures.exposure never counts as clipped (it ramps over the 15 at either end).
_MID_LEVELS = range(16, 240)


@dataclass(frozen=True)
class Defect:
    """One visible defect: ``kind`` (a fixed identifier), ``severity`` 0..1, the ``words`` a
    person would use, and the numbers behind them in ``detail``."""

    kind: str
    severity: float
    words: str
    detail: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Explanation:
    """A photo's defects, the one that pulled its score down most first, and a summary."""

    defects: tuple[Defect, ...]
    use: str = DEFAULT_USE

    @property
    def driver(self) -> Defect | None:
        """The defect that drove the score down most; None for a clean photo."""
        return self.defects[0] if self.defects else None

    @property
    def summary(self) -> str:
        """Every defect's words joined as a sentence fragment, worst first."""
        return join_words([d.words for d in self.defects]) or "no visible defect"

    def as_record(self) -> dict[str, Any]:
        """JSON-ready: summary, driver's kind, use, and each defect with its numbers (3 decimals)."""
        return {
            "summary": self.summary,
            "driver": self.driver.kind if self.driver else None,
            "use": self.use,
            "defects": [{"kind": d.kind, "severity": round(d.severity, 3), "words": d.words,
                         "detail": {k: round(v, 3) for k, v in d.detail.items()}} for d in self.defects],
        }


def explain(score: Score, *, use: str | None = None) -> Explanation:
    """The defects of a scored photo for ``use`` (:data:`USES`; None: :data:`DEFAULT_USE`),
    worst first. Pure and cheap (a few arithmetic steps and one 256-bin dot product).

    Raises ValueError for an unknown use. A measurement missing from ``score`` is not judged.
    """
    use = check_use(use)
    dims, raw = score.dimensions, score.measurements
    exposure = _exposure(dims, raw)
    found = [exposure, _resolution(raw, use), _blurred(dims, raw), _grainy(dims, raw), _blocky(dims, raw)]
    if exposure is None or exposure.kind != "underexposed":
        found.append(_washed_out(dims, raw))  # darkness mutes colour in any sRGB measure: say "dark" only
    defects = sorted((d for d in found if d is not None), key=lambda d: -d.severity)
    return Explanation(defects=tuple(defects), use=use)


def check_use(use: str | None) -> str:
    """``use`` itself (None: :data:`DEFAULT_USE`) if it is one of :data:`USES`; else ValueError."""
    if use is None:
        return DEFAULT_USE
    if use not in USES:
        raise ValueError(f"unknown use {use!r}; choose one of: {', '.join(USES)}")
    return use


def join_words(parts: list[str]) -> str:
    """"a", "a and b", "a, b and c": how a person lists things."""
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def half_stops(stops: float) -> str:
    """|stops| rounded to the nearest half stop, in words: "half a stop", "1 stop", "2.5 stops"."""
    halves = math.floor(abs(stops) * 2.0 + 0.5)
    if halves == 1:
        return "half a stop"
    return "1 stop" if halves == 2 else f"{halves / 2:g} stops"


def _shortfall(dims: Mapping[str, float], name: str) -> float:
    return min(max(1.0 - float(dims.get(name, 1.0)), 0.0), 1.0)


def _blurred(dims: Mapping[str, float], raw: Mapping[str, float]) -> Defect | None:
    width = raw.get("blur")
    if width is None or width < BLURRED_EDGE_PX:
        return None
    return Defect("blurred", _shortfall(dims, "blur"), "blurred", {"edge_sigma_px": width})


def _grainy(dims: Mapping[str, float], raw: Mapping[str, float]) -> Defect | None:
    sigma = raw.get("noise")
    if sigma is None or sigma < GRAINY_SIGMA:
        return None
    return Defect("grainy", _shortfall(dims, "noise"), "grainy", {"noise_sigma": sigma})


def _blocky(dims: Mapping[str, float], raw: Mapping[str, float]) -> Defect | None:
    ratio = raw.get("compression")
    if ratio is None or ratio < BLOCKY_RATIO:
        return None
    return Defect("blocky_compression", _shortfall(dims, "compression"), "blocky compression", {"blockiness": ratio})


def _washed_out(dims: Mapping[str, float], raw: Mapping[str, float]) -> Defect | None:
    m = raw.get("saturation")
    if m is None or m >= WASHED_OUT_M:
        return None
    return Defect("washed_out_colour", _shortfall(dims, "saturation"), "washed-out colour", {"colourfulness": m})


def _resolution(raw: Mapping[str, float], use: str) -> Defect | None:
    """Low resolution *for the use*: severity grows on a log scale from 0 at the use's pixels to 1
    at 1/16 of them, as the resolution dimension does (but that one is anchored at 2 Mpx)."""
    pixels, needed = raw.get("resolution"), USES[use]
    if pixels is None or pixels >= needed:
        return None
    severity = min(math.log(needed / max(pixels, 1.0)) / math.log(_RESOLUTION_RUIN), 1.0)
    words = "low resolution for " + {"thumbnail": "a thumbnail", "web": "the web", "print": "print"}[use]
    return Defect("low_resolution", severity, words, {"megapixels": pixels / 1e6, "needed_megapixels": needed / 1e6})


def _exposure(dims: Mapping[str, float], raw: Mapping[str, float]) -> Defect | None:
    """Too dark or overexposed: stops past :data:`EXPOSURE_STOPS` (said, to a half stop), or
    enough crushed/blown pixels (:func:`clipping`; which end, by the sign of the stops)."""
    stops, exposure_score = raw.get("exposure"), dims.get("exposure")
    if stops is None or exposure_score is None:
        return None
    clipped = clipping(stops, exposure_score)
    far, clips = abs(stops) >= EXPOSURE_STOPS, clipped is not None and clipped >= CLIPPING
    if not (far or clips):
        return None
    under = stops < 0
    notes = [f"about {half_stops(stops)} {'under' if under else 'over'}"] if far else []
    if clips:
        notes.append("shadows crushed" if under else "highlights blown")
    words = f"{'too dark' if under else 'overexposed'} ({', '.join(notes)})"
    detail = {"stops": stops} | ({"clipping": clipped} if clipped is not None else {})
    return Defect("underexposed" if under else "overexposed", _shortfall(dims, "exposure"), words, detail)


def clipping(stops: float, exposure_score: float) -> float | None:
    """Share of the exposure score lost to crushed or blown pixels: 1 − score / the score the same
    stops get with nothing clipped (:func:`unclipped_exposure`). None where that is unknown.

    The measurements hold the stops but not the clipped fraction, which only the exposure score
    carries (key curve x clipping factor); asking :func:`worker.quality.measures.exposure` what
    it gives an unclipped picture of the same stops separates the two without copying its curves.
    """
    unclipped = unclipped_exposure(stops)
    if unclipped is None or unclipped < 0.02:  # the key alone already ruins it: no telling
        return None
    return min(max(1.0 - exposure_score / unclipped, 0.0), 1.0)


def unclipped_exposure(stops: float) -> float | None:
    """The exposure score of a picture at ``stops`` with no pixel near black or white: a mix of
    two adjacent mid levels with exactly that log-average. None beyond what mid levels reach
    (about −3.7..+2.7 stops)."""
    levels, level_stops = _mid_level_stops()
    i = int(np.searchsorted(level_stops, stops))
    if i == 0 or i == len(levels):
        return None if stops != level_stops[0] else float(measures.exposure(_one_hot(levels[0])).score)
    t = (stops - level_stops[i - 1]) / (level_stops[i] - level_stops[i - 1])
    hist = (1.0 - t) * _one_hot(levels[i - 1]) + t * _one_hot(levels[i])
    return float(measures.exposure(hist).score)


@cache
def _mid_level_stops() -> tuple[tuple[int, ...], np.ndarray]:
    """Each mid level, and the stops :func:`measures.exposure` reads for a picture all at it
    (increasing)."""
    levels = tuple(_MID_LEVELS)
    return levels, np.array([measures.exposure(_one_hot(level)).raw for level in levels])


def _one_hot(level: int) -> np.ndarray:
    hist = np.zeros(256)
    hist[level] = 1.0
    return hist
