"""What is wrong with an image, from the sub-scores a results row keeps.

A results row holds the sub-scores the service returned (``dimensions``: ``BlurScore``,
``NoiseScore``…), not the raw measurements behind them, so the report judges defects on the
sub-scores: every picscore sub-score is calibrated to ½ where its damage is plainly visible
(:mod:`worker.quality.measures`), so a sub-score under its defect's line (:data:`DEFECT_LINE`,
but :data:`COLOUR_LINE` for colour) is a defect a person sees, and the one furthest under its
line is the defect that dominates. ``DistortionScore`` is blur and
compression together, so it is named only when neither of those is known; darkness mutes colour
in any sRGB measure, so a badly exposed image is not also called washed out (as
:mod:`worker.quality.explain` does). Alibaba Cloud's
``image/score`` returns no sub-scores: its rows are counted as "no sub-scores", never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Defect", "DEFECTS", "DEFECT_LINE", "COLOUR_LINE", "NO_SUBSCORES", "MILD", "dominant_defects", "describe",
           "label_of"]

#: A sub-score under this is a defect a person sees (each curve's ½: plainly visible damage).
DEFECT_LINE = 0.5
#: Colourfulness is the exception: its curve's ½ is M = 30, "moderately colourful", and photos of
#: white statues and grey skies sit below that unharmed. Washed out is M under 12
#: (:data:`worker.quality.explain.WASHED_OUT_M`), which the curve M² / (M² + 30²) scores 0.138.
COLOUR_LINE = 0.14


@dataclass(frozen=True)
class Defect:
    """A kind of damage: the sub-score that measures it, what a person would call it, and the
    sub-score under which a person sees it."""

    name: str
    dimension: str
    words: str
    line: float = DEFECT_LINE


#: In order of precedence for equal sub-scores.
DEFECTS: tuple[Defect, ...] = (
    Defect("blur", "BlurScore", "blurred"),
    Defect("noise", "NoiseScore", "grainy (noise)"),
    Defect("exposure", "ExposureScore", "badly exposed"),
    Defect("compression", "CompressionScore", "blocky compression"),
    Defect("colour", "SaturationScore", "washed-out colour", COLOUR_LINE),
    Defect("resolution", "ResolutionScore", "low resolution"),
    Defect("distortion", "DistortionScore", "distorted (blur or compression)"),
)
#: Codes beyond the defects: the service gave no sub-scores; no sub-score is under the line.
NO_SUBSCORES = len(DEFECTS)
MILD = len(DEFECTS) + 1
_LABELS = (*(d.words for d in DEFECTS), "no sub-scores (the service returned the overall score only)",
           "no single defect (several mild ones)")


def label_of(code: int) -> str:
    """Words for a code from :func:`dominant_defects`."""
    return _LABELS[code]


def _columns(names: Sequence[str]) -> list[int | None]:
    """For each defect, its sub-score's column in a dimensions matrix, or None."""
    index = {name: i for i, name in enumerate(names)}
    return [index.get(defect.dimension) for defect in DEFECTS]


def dominant_defects(dimensions: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Per row of ``dimensions`` (rows × ``names``), the code of the defect that dominates:
    an index into :data:`DEFECTS`, :data:`NO_SUBSCORES` or :data:`MILD`."""
    rows = dimensions.shape[0]
    matrix = np.full((rows, len(DEFECTS)), np.nan, dtype=np.float32)
    for code, column in enumerate(_columns(names)):
        if column is not None:
            matrix[:, code] = dimensions[:, column]
    distortion = len(DEFECTS) - 1
    known_parts = ~np.isnan(matrix[:, 0]) | ~np.isnan(matrix[:, DEFECTS.index(_by_name("compression"))])
    matrix[known_parts, distortion] = np.nan  # blur or compression already says it
    exposure, colour = DEFECTS.index(_by_name("exposure")), DEFECTS.index(_by_name("colour"))
    matrix[matrix[:, exposure] < DEFECT_LINE, colour] = np.nan  # darkness mutes colour: say exposure only
    known = ~np.isnan(matrix).all(axis=1)
    lines = np.array([defect.line for defect in DEFECTS], dtype=np.float32)
    relative = np.where(np.isnan(matrix), np.inf, matrix / lines)  # under 1: a defect; lowest: the worst
    lowest = relative.argmin(axis=1)  # the first of equals: DEFECTS' order
    codes = np.where(relative[np.arange(rows), lowest] < 1, lowest, MILD)
    return np.where(known, codes, NO_SUBSCORES).astype(np.int8)


def describe(dimensions: dict[str, float]) -> str:
    """One image's defects in words, worst first (``"blurred and badly exposed"``)."""
    if not dimensions:
        return "no sub-scores"
    found = [(dimensions[d.dimension] / d.line, d.words) for d in DEFECTS
             if d.dimension in dimensions and dimensions[d.dimension] < d.line]
    if any(name in dimensions for name in ("BlurScore", "CompressionScore")):
        found = [(value, words) for value, words in found if words != _by_name("distortion").words]
    if dimensions.get("ExposureScore", 1.0) < DEFECT_LINE:
        found = [(value, words) for value, words in found if words != _by_name("colour").words]
    if not found:
        return "no visible defect"
    words = [w for _, w in sorted(found, key=lambda item: item[0])]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _by_name(name: str) -> Defect:
    return next(defect for defect in DEFECTS if defect.name == name)
