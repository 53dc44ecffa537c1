"""Damage a sharp photo step by step: each step must lower the dimension that names the damage,
and the ladder as a whole the overall score — the contract that makes the score honest."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import pytest
from PIL import Image, ImageEnhance, ImageFilter
from scipy import stats

from tests.quality.conftest import SHARP_PHOTOS, demo_photo, encode, noisy, scaled
from worker.demo import DEMO_IMAGES, KINDS
from worker.demo.build import read_demo_image
from worker.quality import Score, score

Damage = Callable[[Image.Image, float], bytes]

LADDERS: dict[str, tuple[str, list[float], Damage]] = {
    "gaussian blur sigma": ("blur", [1, 2, 3, 5], lambda im, s: encode(im.filter(ImageFilter.GaussianBlur(s)))),
    "noise sigma": ("noise", [3, 6, 12, 25], lambda im, s: encode(noisy(im, s))),
    "jpeg quality": ("compression", [50, 30, 15, 8], lambda im, q: encode(im, "JPEG", quality=int(q))),
    "under-exposure x": ("exposure", [0.7, 0.5, 0.3, 0.15], lambda im, f: encode(scaled(im, f))),
    "over-exposure x": ("exposure", [1.4, 1.8, 2.5, 3.5], lambda im, f: encode(scaled(im, f))),
    # From half saturation: taking a quarter off a vivid photo (kodim08) is not damage to people,
    # and the learned overall rightly does not punish it.
    "saturation x": ("saturation", [0.5, 0.25, 0.1, 0.0],
                     lambda im, f: encode(ImageEnhance.Color(im).enhance(f))),
    "resolution x": ("resolution", [0.75, 0.5, 0.3, 0.2],
                     lambda im, f: encode(im.resize((round(im.width * f), round(im.height * f)),
                                                    Image.Resampling.LANCZOS))),
}


@pytest.mark.slow
@pytest.mark.parametrize("ladder", LADDERS)
def test_each_step_of_damage_lowers_overall_and_its_dimension(sharp_photo: Image.Image, ladder: str) -> None:
    dimension, levels, damage = LADDERS[ladder]
    scores = [score(encode(sharp_photo))] + [score(damage(sharp_photo, v)) for v in levels]
    overall = [s.overall for s in scores]
    dim = [s.dimensions[dimension] for s in scores]
    steps = ["undamaged"] + [f"{ladder} {v}" for v in levels]
    assert all(a > b for a, b in pairwise(dim)), list(zip(steps, dim, strict=True))
    # The overall is mostly learned from people's ratings: between two adjacent *mild* steps it
    # may wobble (people do not always prefer the less desaturated photo), so it must fall in
    # rank over the ladder (at most one adjacent swap) and clearly at its end.
    rho = stats.spearmanr(range(len(overall)), overall).statistic
    assert rho <= -0.89, list(zip(steps, overall, strict=True))
    assert overall[-1] < overall[0] - 0.02, list(zip(steps, overall, strict=True))


DEMO_DIMENSION = {"blur": "blur", "noise": "noise", "jpeg": "compression", "dark": "exposure",
                  "bright": "exposure", "grey": "saturation", "small": "resolution"}


@pytest.mark.parametrize("name", DEMO_IMAGES)
def test_every_demo_variant_scores_below_its_original(name: str) -> None:
    """The demo bucket's damaged variants (worker.demo) read worse than the original, on the
    overall score and on the dimension the damage names — all six photos, not only sharp ones."""
    original = score(read_demo_image(name))
    img = demo_photo(name)
    for kind, make in KINDS.items():
        damaged: Score = score(make(img, name))
        dimension = DEMO_DIMENSION[kind]
        assert damaged.overall < original.overall, (kind, damaged.overall, original.overall)
        assert damaged.dimensions[dimension] < original.dimensions[dimension], kind


def test_sharp_photos_score_well() -> None:
    """The undamaged photos are good: high overall, and no dimension below 0.4."""
    for name in SHARP_PHOTOS:
        found = score(read_demo_image(name))
        assert found.overall > 0.75, (name, found.overall)
        assert min(found.dimensions.values()) > 0.4, (name, dict(found.dimensions))
