"""Severe defects pull the overall down (issue 17): the weakest-link gate of
:func:`worker.quality.dimensions.overall_score`, on its own and on strongly damaged photos."""

from __future__ import annotations

import io
from itertools import pairwise

import pytest
from PIL import Image

from tests.quality.conftest import demo_photo, encode
from worker import quality
from worker.quality import dimensions
from worker.quality.dimensions import GATE, blended_score, defect_cap, overall_score, soft_minimum
from worker.quality.training import damage

GOOD = {"resolution": 0.6, "noise": 0.95, "blur": 0.9, "compression": 0.9, "distortion": 0.9, "saturation": 0.6,
        "exposure": 0.9}
MID_KEY = {"exposure": 0.1}  # stops from the mid key: a well-exposed picture


def test_without_a_severe_defect_the_overall_is_the_blended_score() -> None:
    """The learned model alone ranks pictures whose gated dimensions are all above threshold."""
    for learned in (0.2, 0.5, 0.9):
        assert defect_cap(GOOD, MID_KEY) == 1.0
        assert overall_score(learned, GOOD, MID_KEY) == blended_score(learned, GOOD)


@pytest.mark.parametrize("defect", ["blur", "noise", "compression"])
def test_each_step_below_the_threshold_lowers_the_overall(defect: str) -> None:
    threshold, _ = GATE[defect]
    values = [threshold * f for f in (1.0, 0.8, 0.6, 0.4, 0.2, 0.1, 0.05)]
    overall = [overall_score(0.8, GOOD | {defect: v}, MID_KEY) for v in values]
    assert overall[0] == blended_score(0.8, GOOD | {defect: values[0]})
    assert all(a > b for a, b in pairwise(overall)), overall
    assert overall[-1] <= 0.35


def test_exposure_is_gated_by_its_direction() -> None:
    """Too dark reads the key factor of the stops (crushed blacks alone do not gate); too bright
    the exposure score; without the measurements, the gentler of the two."""
    dark = GOOD | {"exposure": 0.05}
    assert overall_score(0.8, dark, {"exposure": -4.0}) <= 0.35  # four stops under
    assert overall_score(0.8, dark, {"exposure": -0.3}) == blended_score(0.8, dark)  # low-key, crushed blacks
    bright = GOOD | {"exposure": 0.02}
    assert overall_score(0.8, bright, {"exposure": 2.8}) <= 0.35
    assert overall_score(0.8, bright) >= overall_score(0.8, bright, {"exposure": 2.8})


def test_the_soft_minimum() -> None:
    assert soft_minimum(0.7, 1.0) == 0.7
    assert soft_minimum(0.7, 0.1) == pytest.approx(0.1, abs=0.01)
    assert soft_minimum(0.1, 0.7) == pytest.approx(0.1, abs=0.001)
    caps = [0.9, 0.7, 0.5, 0.3]
    assert all(soft_minimum(0.6, a) > soft_minimum(0.6, b) for a, b in pairwise(caps))
    assert all(soft_minimum(a, 0.5) > soft_minimum(b, 0.5) for a, b in pairwise(caps))


def test_the_gate_parameters_are_sane() -> None:
    assert set(GATE) == {"blur", "noise", "compression", "under", "over"}
    assert all(0 < threshold < 1 and power > 0 for threshold, power in GATE.values())
    assert dimensions.GATE_SOFTNESS >= 1


# -- strongly damaged photos ---------------------------------------------------------------------

PHOTO = "kodim23-parrots.jpg"
#: Kinds whose most severe step the gate does not bring down to 0.35 yet, and why (the model card
#: has the figures): the measures cannot tell them from photos people rate well.
NOT_YET = {
    "motion": "the blur measure reads the sharpest edges, and edges along the motion stay sharp",
    "over": "a +3 stop photo reads like a bright high-key one, which people rate well",
    "under": "a gate steep enough for 3 stops under also capped the low-key photos of a photographer's "
             "gallery (BIQ2021 ss01), 0.09 SRCC there; the gate is calibrated to cost at most 0.01 per subset",
    "resolution": "a 1/8 downscale reads as blur, whose gate is gentler for the same reason (shallow focus)",
}


@pytest.fixture(scope="module")
def original() -> Image.Image:
    return demo_photo(PHOTO)


@pytest.mark.parametrize("layout", ["accurate", "fast"])
@pytest.mark.parametrize("kind", [k for k in damage.KINDS if k != "desaturate"])
def test_a_severely_damaged_photo_scores_at_most_035(original: Image.Image, kind: str, layout: str,
                                                       request: pytest.FixtureRequest) -> None:
    if kind in NOT_YET:
        request.applymarker(pytest.mark.xfail(reason=NOT_YET[kind], strict=True))
    before = quality.score(encode(original), layout).overall
    after = quality.score(encode(damage.make(original, kind, 1.0)), layout).overall
    assert after < before
    assert after <= 0.35, (kind, after)


@pytest.mark.parametrize("layout", ["accurate", "fast"])
def test_a_grey_copy_scores_at_least_005_below(original: Image.Image, layout: str) -> None:
    before = quality.score(encode(original), layout).overall
    grey = quality.score(encode(damage.make(original, "desaturate", 1.0)), layout).overall
    assert grey <= before - 0.05, (before, grey)


def test_a_jpeg_original_is_scored_as_before_the_gate() -> None:
    """The bundled photo itself has no severe defect: its overall is the blended score."""
    from worker.quality.decode import decode_scaled
    from worker.quality.dimensions import combine, measure_all
    from worker.quality.model import shipped_model
    from worker.quality.views import ANALYSIS_SHORT_SIDE

    data = io.BytesIO()
    demo_photo(PHOTO).save(data, "JPEG", quality=92)
    img, size = decode_scaled(data.getvalue(), ANALYSIS_SHORT_SIDE)
    found = measure_all(img, size)
    scores, raw = {n: m.score for n, m in found.items()}, {n: m.raw for n, m in found.items()}
    dims = combine(scores)[1]
    assert defect_cap(dims, raw) == 1.0
    learned = shipped_model("fast").overall(img, scores, raw)
    assert quality.score(data.getvalue(), "fast").overall == round(blended_score(learned, dims), 6)


def test_under_exposure_counts_only_as_far_as_the_highlights_have_headroom() -> None:
    """A dark scene whose lamps reach white was exposed for them; the same scene 3 stops darker
    (lamps at 1/8 of white in linear light, level 99) is under-exposed by about 3 stops."""
    import numpy as np

    from worker.quality import measures

    night = np.zeros(256)
    night[20], night[255] = 0.99, 0.01  # mostly deep shadow, 1 % lamps at white
    darker = np.zeros(256)
    darker[3], darker[99] = 0.99, 0.01  # the same, 3 stops under (linear light / 8)
    key_only = measures.exposure(night)
    lit = measures.exposure(night, night)
    under = measures.exposure(darker, darker)
    assert key_only.raw < -3.0  # by the key alone, far under
    assert -0.05 < lit.raw < 0  # the lamps reach white: still on the dark side, but not under-exposed
    assert -3.2 < under.raw < -2.8  # three stops of headroom, and a key further down than that
    assert measures.headroom(darker) == pytest.approx(3.0, abs=0.05)
    assert measures.exposure_key(lit.raw) > 0.99 and measures.exposure_key(under.raw) < 0.25
