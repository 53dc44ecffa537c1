"""``explain``: a person's words for a photo's defects (issue 17, "Explain for people").

On the demo photos, each kind of damage must be named as the driver and add no other defect,
and the originals must be clean — all but kodim20, whose hazy white sky the measures read as
blown highlights (as ``conftest.SHARP_PHOTOS`` notes). Synthetic scores pin the wording.
"""

from __future__ import annotations

import json
from types import MappingProxyType

import numpy as np
import pytest

from tests.quality.conftest import demo_photo
from worker.demo.build import DEMO_IMAGES, KINDS, read_demo_image
from worker.quality import Score, measures, score
from worker.quality.explain import (
    BLURRED_EDGE_PX,
    USES,
    Explanation,
    clipping,
    explain,
    half_stops,
    join_words,
    unclipped_exposure,
)

#: The defect each kind of demo damage (worker.demo.build.KINDS) must be blamed on.
DRIVER = {"blur": "blurred", "noise": "grainy", "jpeg": "blocky_compression", "dark": "underexposed",
          "bright": "overexposed", "grey": "washed_out_colour", "small": "low_resolution"}
#: Defects of the undamaged originals: only kodim20's sky, near white edge to edge.
ORIGINAL_DEFECTS = {name: () for name in DEMO_IMAGES} | {"kodim20-airplane.jpg": ("overexposed",)}


@pytest.fixture(scope="module", params=DEMO_IMAGES)
def demo_scores(request: pytest.FixtureRequest) -> tuple[str, Score, dict[str, Score]]:
    """One demo photo's name, its original's score, and each damaged copy's (built in-test)."""
    name = request.param
    img = demo_photo(name)
    return name, score(read_demo_image(name)), {kind: score(make(img, name)) for kind, make in KINDS.items()}


def kinds(explanation: Explanation) -> tuple[str, ...]:
    return tuple(d.kind for d in explanation.defects)


def test_originals_are_clean_but_for_kodim20s_blown_sky(demo_scores: tuple[str, Score, dict[str, Score]]) -> None:
    name, original, _ = demo_scores
    found = explain(original)
    assert kinds(found) == ORIGINAL_DEFECTS[name], found
    if not found.defects:
        assert found.summary == "no visible defect" and found.driver is None
    else:
        assert found.summary == "overexposed (highlights blown)"  # +1.3 stops: under the threshold, unsaid


def test_each_damage_drives_its_own_defect_and_adds_no_other(demo_scores: tuple[str, Score, dict[str, Score]]) -> None:
    name, _, damaged = demo_scores
    for kind, found in damaged.items():
        words = explain(found)
        assert words.driver is not None and words.driver.kind == DRIVER[kind], (kind, words)
        assert set(kinds(words)) <= {DRIVER[kind], *ORIGINAL_DEFECTS[name]}, (kind, words)


def test_dark_and_bright_copies_say_their_stops(demo_scores: tuple[str, Score, dict[str, Score]]) -> None:
    """The demo darkens by x0.25 and brightens by x2.5 in sRGB: 2..3.5 stops under by the measure,
    and blown highlights (kodim17's +1.1 stops says only that)."""
    _, _, damaged = demo_scores
    dark, bright = explain(damaged["dark"]).driver, explain(damaged["bright"]).driver
    assert dark is not None and bright is not None
    assert dark.words.startswith("too dark (about ") and " stops under" in dark.words, dark
    assert "highlights blown" in bright.words and bright.words.startswith("overexposed ("), bright


def test_demo_resolution_is_judged_for_its_use(demo_scores: tuple[str, Score, dict[str, Score]]) -> None:
    name, original, damaged = demo_scores
    assert "low_resolution" not in kinds(explain(original, use="web"))  # 768 x 512 is plenty for a page
    for_print = explain(original, use="print")
    assert "low_resolution" in kinds(for_print) and "low resolution for print" in for_print.summary
    small = damaged["small"]  # 160 px wide: 160 x 107 (landscape) or 160 x 240 (portrait)
    thumbnail = "low_resolution" in kinds(explain(small, use="thumbnail"))
    assert thumbnail == (small.measurements["resolution"] < USES["thumbnail"]), name


# -- wording, on synthetic scores ------------------------------------------------------------------

CLEAN_RAW = {"resolution": 768 * 512, "noise": 1.0, "blur": 1.0, "compression": 1.02, "saturation": 40.0,
             "exposure": 0.0}


def synthetic(dims: dict[str, float] | None = None, clipped: float = 0.0, **raw: float) -> Score:
    """A Score with clean measurements unless given; the exposure score follows the stops, less
    ``clipped`` of it (as if that share were lost to crushed or blown pixels)."""
    measurements = CLEAN_RAW | raw
    key = unclipped_exposure(measurements["exposure"])
    assert key is not None
    dimensions = {name: 1.0 for name in ("resolution", "noise", "blur", "compression", "distortion", "saturation")}
    dimensions |= {"exposure": key * (1.0 - clipped)} | (dims or {})
    return Score(overall=0.5, dimensions=MappingProxyType(dimensions), measurements=MappingProxyType(measurements))


@pytest.mark.parametrize(("stops", "words"), [
    (0.3, "half a stop"), (0.8, "1 stop"), (1.24, "1 stop"), (1.25, "1.5 stops"), (-1.6, "1.5 stops"),
    (-1.74, "1.5 stops"), (-1.75, "2 stops"), (2.2, "2 stops"), (-3.3, "3.5 stops"),
])
def test_stops_are_said_to_the_nearest_half_stop(stops: float, words: str) -> None:
    assert half_stops(stops) == words


@pytest.mark.parametrize(("parts", "joined"), [
    ([], ""), (["grainy"], "grainy"), (["blurred", "grainy"], "blurred and grainy"),
    (["too dark (about 2 stops under)", "grainy", "blurred"], "too dark (about 2 stops under), grainy and blurred"),
])
def test_defects_are_listed_as_a_person_would(parts: list[str], joined: str) -> None:
    assert join_words(parts) == joined


def test_a_clean_photo_has_nothing_to_say() -> None:
    found = explain(synthetic())
    assert (found.defects, found.driver, found.summary) == ((), None, "no visible defect")


def test_exposure_words_use_the_measured_stops() -> None:
    assert explain(synthetic(exposure=-2.1)).summary == "too dark (about 2 stops under)"
    assert explain(synthetic(exposure=2.6)).summary == "overexposed (about 2.5 stops over)"
    assert explain(synthetic(exposure=-2.1, clipped=0.4)).summary == "too dark (about 2 stops under, shadows crushed)"
    # a stop off the mid key is the scene's own key, not a fault: unsaid, unless pixels clip
    assert explain(synthetic(exposure=-1.0)).defects == ()
    assert explain(synthetic(exposure=1.0, clipped=0.5)).summary == "overexposed (highlights blown)"
    found = explain(synthetic(exposure=-2.1)).defects[0]
    assert found.kind == "underexposed" and found.detail["stops"] == -2.1 and found.detail["clipping"] < 1e-9


def test_defects_are_ordered_by_how_far_they_pull_their_dimension_down() -> None:
    dims = {"noise": 0.2, "blur": 0.3}
    found = explain(synthetic(dims, noise=15.0, blur=3.0))
    assert [d.kind for d in found.defects] == ["grainy", "blurred"] and found.summary == "grainy and blurred"
    assert [d.severity for d in found.defects] == pytest.approx([0.8, 0.7])
    found = explain(synthetic(dims | {"noise": 0.6}, noise=15.0, blur=3.0))
    assert found.summary == "blurred and grainy" and found.driver is not None and found.driver.kind == "blurred"


def test_dark_and_grainy_reads_naturally() -> None:
    found = explain(synthetic({"noise": 0.1}, exposure=-2.0, noise=20.0))
    assert found.summary == "grainy and too dark (about 2 stops under)"


def test_numbers_stay_in_detail_except_the_stops() -> None:
    bad = synthetic({"noise": 0.2, "blur": 0.1, "compression": 0.05, "saturation": 0.02, "resolution": 0.01},
                    noise=20.0, blur=4.0, compression=2.5, saturation=3.0, resolution=20_000.0)
    found = explain(bad)
    assert {d.kind for d in found.defects} == {"grainy", "blurred", "blocky_compression", "washed_out_colour",
                                               "low_resolution"}
    assert not any(ch.isdigit() for ch in found.summary), found.summary
    assert all(d.detail and 0.0 <= d.severity <= 1.0 for d in found.defects)


def test_darkness_is_not_also_called_washed_out() -> None:
    """Darkening scales every sRGB channel, so colourfulness falls with it: say "too dark" only."""
    assert [d.kind for d in explain(synthetic(exposure=-2.5, saturation=5.0)).defects] == ["underexposed"]
    assert [d.kind for d in explain(synthetic(saturation=5.0)).defects] == ["washed_out_colour"]


def test_thresholds_are_on_the_measurements_not_the_dimension_scores() -> None:
    assert explain(synthetic({"blur": 0.05}, blur=BLURRED_EDGE_PX - 0.01)).defects == ()
    assert explain(synthetic({"blur": 0.9}, blur=BLURRED_EDGE_PX)).summary == "blurred"


@pytest.mark.parametrize(("use", "pixels", "severity"), [
    ("web", 250_000, None), ("web", 393_216, None), ("web", 250_000 / 4, 0.5), ("web", 250_000 / 16, 1.0),
    ("web", 1_000, 1.0), ("print", 2_000_000, None), ("print", 500_000, 0.5), ("thumbnail", 150 * 150 / 2, 0.25),
])
def test_low_resolution_is_judged_for_a_use(use: str, pixels: float, severity: float | None) -> None:
    found = explain(synthetic(resolution=pixels), use=use)
    if severity is None:
        assert found.defects == ()
        return
    (defect,) = found.defects
    assert defect.kind == "low_resolution" and defect.severity == pytest.approx(severity)
    assert defect.detail == {"megapixels": pixels / 1e6, "needed_megapixels": USES[use] / 1e6}


def test_the_default_use_is_the_web_and_unknown_uses_are_refused() -> None:
    small = synthetic(resolution=200_000)
    assert explain(small).use == "web" and explain(small).summary == "low resolution for the web"
    with pytest.raises(ValueError, match="unknown use 'poster'"):
        explain(small, use="poster")


def test_the_record_is_json_with_the_numbers_rounded() -> None:
    record = explain(synthetic({"blur": 0.123456}, blur=3.333333)).as_record()
    assert json.loads(json.dumps(record)) == record == {
        "summary": "blurred", "driver": "blurred", "use": "web",
        "defects": [{"kind": "blurred", "severity": 0.877, "words": "blurred", "detail": {"edge_sigma_px": 3.333}}],
    }


# -- clipping, read back from the exposure score ----------------------------------------------------

def test_unclipped_exposure_has_exactly_the_stops_asked_for() -> None:
    for stops in (-3.0, -1.0, 0.0, 0.7, 2.0):
        key = unclipped_exposure(stops)
        assert key is not None and clipping(stops, key) == pytest.approx(0.0, abs=1e-9)
    assert unclipped_exposure(-8.0) is None and unclipped_exposure(6.0) is None


def test_clipping_reads_blown_pixels_out_of_the_exposure_score() -> None:
    hist = np.zeros(256)
    hist[[120, 255]] = [0.6, 0.4]  # 40 % blown white
    blown = measures.exposure(hist)
    loss = clipping(blown.raw, blown.score)
    assert loss is not None and loss > 0.3
    hist[[120, 255]] = [1.0, 0.0]
    clean = measures.exposure(hist)
    assert clipping(clean.raw, clean.score) == pytest.approx(0.0, abs=1e-9)
