"""Which defect dominates an image, from its sub-scores, and the words for it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.quality import measures
from worker.quality.explain import WASHED_OUT_M
from worker.report.defects import (
    COLOUR_LINE,
    DEFECT_LINE,
    DEFECTS,
    MILD,
    NO_SUBSCORES,
    describe,
    dominant_defects,
    label_of,
)

NAMES = ["BlurScore", "NoiseScore", "ExposureScore", "CompressionScore", "SaturationScore", "ResolutionScore",
         "DistortionScore"]
CODE = {d.name: i for i, d in enumerate(DEFECTS)}


def dominant(*rows: dict[str, float], names: list[str] = NAMES) -> list[int]:
    matrix = np.full((len(rows), len(names)), np.nan, dtype=np.float32)
    for r, values in enumerate(rows):
        for name, value in values.items():
            matrix[r, names.index(name)] = value
    return dominant_defects(matrix, names).tolist()


@pytest.mark.parametrize(("dims", "expected"), [
    ({"BlurScore": 0.3, "NoiseScore": 0.2}, "noise"),                      # the lowest relative to its line
    ({"BlurScore": 0.2, "NoiseScore": 0.3}, "blur"),
    ({"BlurScore": 0.25, "NoiseScore": 0.25}, "blur"),                     # equals: DEFECTS' order
    ({"ExposureScore": 0.49}, "exposure"),
    ({"CompressionScore": 0.1, "ResolutionScore": 0.2}, "compression"),
    ({"ResolutionScore": 0.45, "NoiseScore": 0.9}, "resolution"),
    # colour is judged on its own line: 0.1/0.14 is further under than 0.4/0.5
    ({"SaturationScore": 0.1, "BlurScore": 0.4}, "colour"),
    ({"SaturationScore": 0.13, "BlurScore": 0.35}, "blur"),               # 0.93 of its line vs 0.7
    ({"SaturationScore": 0.13}, "colour"),
    ({"SaturationScore": 0.2}, "mild"),                                    # under ½ but above the colour line
    ({"SaturationScore": 0.2, "BlurScore": 0.49}, "blur"),
    # distortion is blur and compression together: named only when neither is known
    ({"DistortionScore": 0.1}, "distortion"),
    ({"DistortionScore": 0.1, "NoiseScore": 0.3}, "distortion"),
    ({"DistortionScore": 0.1, "BlurScore": 0.45}, "blur"),
    ({"DistortionScore": 0.1, "BlurScore": 0.9}, "mild"),
    ({"DistortionScore": 0.1, "CompressionScore": 0.9}, "mild"),
    ({"DistortionScore": 0.1, "CompressionScore": 0.9, "NoiseScore": 0.4}, "noise"),
    # darkness mutes colour: a badly exposed image is not also washed out
    ({"ExposureScore": 0.4, "SaturationScore": 0.01}, "exposure"),
    ({"ExposureScore": 0.5, "SaturationScore": 0.01}, "colour"),
    ({"ExposureScore": 0.6, "SaturationScore": 0.05}, "colour"),
    # nothing under its line
    ({"BlurScore": 0.5, "NoiseScore": 0.9, "SaturationScore": 0.14}, "mild"),
    ({name: 1.0 for name in NAMES}, "mild"),
    ({}, "none"),
])
def test_the_dominant_defect(dims: dict[str, float], expected: str) -> None:
    code = {"mild": MILD, "none": NO_SUBSCORES}.get(expected, CODE.get(expected))
    assert dominant(dims) == [code]


def test_many_rows_at_once_and_names_in_any_order() -> None:
    rows = [{"BlurScore": 0.1}, {"NoiseScore": 0.3, "ExposureScore": 0.9}, {}, {"ResolutionScore": 0.9},
            {"ExposureScore": 0.2, "SaturationScore": 0.0}]
    expected = [CODE["blur"], CODE["noise"], NO_SUBSCORES, MILD, CODE["exposure"]]
    assert dominant(*rows) == expected
    shuffled = [NAMES[i] for i in (6, 4, 2, 0, 5, 3, 1)]
    assert dominant(*rows, names=shuffled) == expected
    with_unknown = ["Aesthetics", *NAMES]
    assert dominant(*rows, {"Aesthetics": 0.01}, names=with_unknown) == [*expected, NO_SUBSCORES]


def test_no_sub_scores_at_all() -> None:
    assert dominant_defects(np.empty((3, 0), dtype=np.float32), []).tolist() == [NO_SUBSCORES] * 3
    assert dominant_defects(np.empty((0, 2), dtype=np.float32), ["BlurScore", "NoiseScore"]).tolist() == []
    assert dominant_defects(np.full((2, 1), 0.1, dtype=np.float32), ["OverallQualityScore"]).tolist() == [
        NO_SUBSCORES] * 2


def test_labels() -> None:
    assert [label_of(i) for i in range(len(DEFECTS))] == [d.words for d in DEFECTS]
    assert "no sub-scores" in label_of(NO_SUBSCORES)
    assert "several mild" in label_of(MILD)


@pytest.mark.parametrize(("dims", "words"), [
    ({}, "no sub-scores"),
    ({"BlurScore": 0.9, "NoiseScore": 0.5}, "no visible defect"),
    ({"Aesthetics": 0.1}, "no visible defect"),
    ({"BlurScore": 0.3}, "blurred"),
    ({"BlurScore": 0.4, "ExposureScore": 0.1}, "badly exposed and blurred"),  # worst first
    ({"BlurScore": 0.1, "ExposureScore": 0.4}, "blurred and badly exposed"),
    ({"NoiseScore": 0.2, "BlurScore": 0.3, "ResolutionScore": 0.45},
     "grainy (noise), blurred and low resolution"),
    ({"SaturationScore": 0.2}, "no visible defect"),                          # colour has its own line
    ({"SaturationScore": 0.07, "BlurScore": 0.45}, "washed-out colour and blurred"),
    ({"SaturationScore": 0.01, "ExposureScore": 0.3}, "badly exposed"),       # darkness mutes colour
    ({"DistortionScore": 0.2}, "distorted (blur or compression)"),
    ({"DistortionScore": 0.2, "BlurScore": 0.9}, "no visible defect"),        # blur already says it
    ({"DistortionScore": 0.2, "CompressionScore": 0.3}, "blocky compression"),
])
def test_describe(dims: dict[str, float], words: str) -> None:
    assert describe(dims) == words


def test_describe_agrees_with_the_dominant_defect() -> None:
    """The first words of ``describe`` name the defect :func:`dominant_defects` picks."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        dims = {n: round(float(rng.random() ** 2), 3) for n in NAMES if rng.random() < 0.5}
        (code,) = dominant(dims)
        words = describe(dims)
        if code == NO_SUBSCORES:
            assert words == "no sub-scores"
        elif code == MILD:
            assert words == "no visible defect"
        else:
            assert words.startswith(DEFECTS[code].words), (dims, words)


def test_lines() -> None:
    assert DEFECT_LINE == 0.5
    assert [d.line for d in DEFECTS] == [DEFECT_LINE] * 4 + [COLOUR_LINE] + [DEFECT_LINE] * 2


def test_the_colour_line_is_the_washed_out_colourfulness() -> None:
    """COLOUR_LINE is what measures.saturation scores at explain.WASHED_OUT_M: an image of
    colourfulness M = 12 (uniform chroma: R - G = M / 0.3, B half-way between them)."""
    rg = WASHED_OUT_M / 0.3
    rng = np.random.default_rng(5)
    image = np.empty((64, 64, 3), dtype=np.float32)
    image[..., 0] = 128 + rg / 2
    image[..., 1] = 128 - rg / 2
    image[..., 2] = 128
    measured = measures.saturation(image.copy())
    assert measured.raw == pytest.approx(WASHED_OUT_M, abs=1e-3)
    assert abs(measured.score - COLOUR_LINE) < 0.01
    # the analytic curve the comment in defects.py quotes
    assert measured.score == pytest.approx(WASHED_OUT_M**2 / (WASHED_OUT_M**2 + 30**2), abs=1e-3)
    # a textured image with M near 12 scores near the line too, and a more colourful one above it
    grey = rng.normal(128, 20, (64, 64, 1)).astype(np.float32)
    textured = np.concatenate([grey + rg / 2, grey - rg / 2, grey], axis=-1)
    assert abs(measures.saturation(textured).score - COLOUR_LINE) < 0.01
    colourful = image.copy()
    colourful[..., 0] += 40
    assert measures.saturation(colourful).score > COLOUR_LINE + 0.1
    assert not math.isnan(measured.score)
