"""The public API: shape of a Score, determinism (also across processes), and edge cases."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.quality.conftest import encode
from worker.demo.build import read_demo_image
from worker.quality import ImageError, ImageTooLarge, Score, UnsupportedImage, score
from worker.quality.dimensions import DIMENSIONS, combine

PHOTO = "kodim23-parrots.jpg"


def test_a_score_has_every_dimension_in_range() -> None:
    found = score(read_demo_image(PHOTO))
    assert isinstance(found, Score)
    assert set(found.dimensions) == set(DIMENSIONS) == {
        "resolution", "noise", "blur", "compression", "distortion", "saturation", "exposure"}
    assert all(0.0 <= v <= 1.0 for v in found.dimensions.values())
    assert 0.0 <= found.overall <= 1.0
    assert set(found.measurements) == set(DIMENSIONS) - {"distortion"}


def test_a_score_is_immutable() -> None:
    found = score(read_demo_image(PHOTO))
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.overall = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        found.dimensions["noise"] = 1.0  # type: ignore[index]


def test_same_bytes_same_score() -> None:
    data = read_demo_image(PHOTO)
    assert score(data) == score(data)


def test_same_score_in_another_process() -> None:
    """No hidden state: a fresh interpreter gives bit-identical floats."""
    code = ("import json, sys; from worker.quality import score; from worker.demo.build import "
            f"read_demo_image; s = score(read_demo_image({PHOTO!r})); "
            "print(json.dumps([s.overall, dict(s.dimensions)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = score(read_demo_image(PHOTO))
    assert json.loads(out.stdout) == [here.overall, dict(here.dimensions)]


def test_errors_carry_oss_codes() -> None:
    assert issubclass(UnsupportedImage, ImageError) and issubclass(ImageTooLarge, ImageError)
    err = UnsupportedImage("x")
    assert (err.oss_code, err.ec) == ("BadRequest", "0040-00000005")
    big = ImageTooLarge("y", "0040-00000019")
    assert (big.oss_code, big.ec) == ("ImageTooLarge", "0040-00000019")


@pytest.mark.parametrize(
    "size", [(1, 1), (7, 5), (15, 15), (16, 16), (2000, 20), (20, 2000), (33, 4000)]
)
def test_tiny_and_extreme_shapes_score(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    found = score(encode(img))
    assert 0.0 <= found.overall <= 1.0
    assert found.dimensions["resolution"] < 0.5


@pytest.mark.parametrize("value", [0, 128, 255])
def test_flat_pictures_score(value: int) -> None:
    found = score(encode(Image.new("RGB", (300, 200), (value,) * 3)))
    assert found.dimensions["saturation"] == 0.0
    assert found.dimensions["noise"] == 1.0  # nothing to see is no evidence of noise
    if value in (0, 255):
        assert found.dimensions["exposure"] < 0.05


def test_jpeg_blocks_are_seen_as_compression() -> None:
    """A picture made of flat 8x8 blocks is as blocky as it gets."""
    rng = np.random.default_rng(2)
    blocks = np.kron(rng.integers(0, 255, (40, 40)), np.ones((8, 8))).astype(np.uint8)
    assert score(encode(Image.fromarray(blocks))).dimensions["compression"] < 0.05


def test_one_terrible_dimension_pulls_the_overall_down() -> None:
    good = dict.fromkeys(["resolution", "noise", "blur", "compression", "saturation", "exposure"], 0.95)
    overall_good, _ = combine(good)
    for name in good:
        overall_bad, dims = combine(good | {name: 0.02})
        assert overall_bad < 0.8 * overall_good, name
        assert overall_bad > 0.0 and dims[name] == 0.02
