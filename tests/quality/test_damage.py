"""The graded damage generators and frame sequences (worker.quality.training.damage, .frames):
deterministic, the identity at level 0, and stronger with every step."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from PIL import Image

from tests.quality.conftest import demo_photo
from worker.quality.training import damage, frames


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A 256x192 crop of the parrots: small enough for fast tests, with edges, flats and colour."""
    return demo_photo("kodim23-parrots.jpg").crop((256, 128, 512, 320))


def _luma(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"), dtype=np.float64)


def _detail(img: Image.Image) -> float:
    """Mean |Laplacian| of the luma: how much fine detail is left."""
    y = _luma(img)
    return float(np.abs(y[1:-1, :-2] + y[1:-1, 2:] + y[:-2, 1:-1] + y[2:, 1:-1] - 4 * y[1:-1, 1:-1]).mean())


def _chroma(img: Image.Image) -> float:
    arr = np.asarray(img, dtype=np.float64)
    return float(np.abs(arr - arr.mean(axis=2, keepdims=True)).mean())


#: Per kind, a statistic of (damaged, original) that must rise strictly with the level.
STRENGTH = {
    "defocus": lambda d, o: -_detail(d),
    "motion": lambda d, o: -_detail(d),
    "resolution": lambda d, o: -_detail(d),
    "noise": lambda d, o: float((_luma(d) - _luma(o)).std()),
    "jpeg": lambda d, o: float(np.abs(np.asarray(d, np.float64) - np.asarray(o, np.float64)).mean()),
    "under": lambda d, o: -float(_luma(d).mean()),
    "over": lambda d, o: float(_luma(d).mean()),
    "desaturate": lambda d, o: -_chroma(d),
}


def test_every_kind_has_a_strength_check() -> None:
    assert set(STRENGTH) == set(damage.KINDS)


def test_ladders_have_at_least_eight_fine_steps() -> None:
    assert damage.LADDER_LEVELS >= 8
    levels = damage.ladder()
    assert levels[0] == 0.0 and levels[-1] == 1.0 and len(levels) == damage.LADDER_LEVELS + 1
    assert all(a < b for a, b in pairwise(levels))


def test_level_one_is_the_documented_strength() -> None:
    assert damage.strength("defocus", 1.0) == 8.0
    assert damage.strength("motion", 1.0) == 24.0
    assert damage.strength("noise", 1.0) == 40.0
    assert [damage.strength("jpeg", v) for v in damage.ladder()] == [100, 50, 34, 22, 15, 10, 7, 4, 3]
    assert damage.strength("under", 1.0) == -4.0 and damage.strength("under", 0.0) == 0.0
    assert damage.strength("over", 1.0) == 3.0
    assert damage.strength("desaturate", 1.0) == 1.0
    assert damage.strength("resolution", 1.0) == 8.0


@pytest.mark.parametrize("kind", damage.KINDS)
def test_level_zero_is_the_photo(photo: Image.Image, kind: str) -> None:
    out = damage.make(photo, kind, 0.0)
    assert out is not photo and np.array_equal(np.asarray(out), np.asarray(photo))


@pytest.mark.parametrize("kind", damage.KINDS)
def test_same_input_same_pixels(photo: Image.Image, kind: str) -> None:
    first, second = damage.make(photo, kind, 0.6), damage.make(photo, kind, 0.6)
    assert first.size == photo.size and first.mode == "RGB"
    assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize("kind", damage.KINDS)
def test_each_step_is_stronger(photo: Image.Image, kind: str) -> None:
    values = [STRENGTH[kind](damage.make(photo, kind, level), photo) for level in damage.ladder()]
    assert all(a < b for a, b in pairwise(values)), list(zip(damage.ladder(), values, strict=True))


def test_noise_seed_and_motion_angle_matter(photo: Image.Image) -> None:
    assert damage.make(photo, "noise", 0.5, seed=1).tobytes() != damage.make(photo, "noise", 0.5, seed=2).tobytes()
    assert damage.make(photo, "motion", 0.5, angle=0).tobytes() != damage.make(photo, "motion", 0.5, angle=90).tobytes()


def test_exposure_is_a_gain_in_linear_light_clipped_at_white() -> None:
    grey = Image.new("RGB", (8, 8), (118, 118, 118))  # about 18 % grey in linear light
    under = np.asarray(damage.make(grey, "under", 0.25))[0, 0, 0]  # one stop under: about 9 % → level 84
    over = np.asarray(damage.make(grey, "over", 1.0))[0, 0, 0]  # three stops over: 145 % → clipped
    assert 82 <= under <= 86 and over == 255


def test_kernels_are_normalised_and_grow() -> None:
    for make_kernel in (damage.disk_kernel, lambda r: damage.line_kernel(2 * r, 30.0)):
        kernels = [make_kernel(r) for r in (0.0, 1.0, 2.0, 4.0)]
        assert all(abs(k.sum() - 1.0) < 1e-12 for k in kernels)
        assert [k.shape[0] for k in kernels] == sorted(k.shape[0] for k in kernels)
        assert kernels[0].shape == (1, 1)


def test_bad_kind_or_level_is_refused(photo: Image.Image) -> None:
    with pytest.raises(ValueError, match="unknown damage"):
        damage.make(photo, "smudge", 0.5)
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        damage.make(photo, "noise", 1.5)


# -- frames --------------------------------------------------------------------------------------

def test_a_sequence_is_thirty_frames_deterministic_per_photo_and_seed(photo: Image.Image) -> None:
    sequence = frames.sequence(photo, seed=3)
    assert len(sequence) == frames.FRAMES == 30
    assert sequence == frames.sequence(photo, seed=3)
    assert sequence != frames.sequence(photo, seed=4)
    assert sequence != frames.sequence(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), seed=3)
    assert all(f.damage >= 0 and f.quality == 1.0 - f.damage for f in sequence)
    assert len({round(f.quality, 9) for f in sequence}) == len(sequence)  # a strict order by construction


def test_frames_stay_small_troubles(photo: Image.Image) -> None:
    for seed in range(5):
        for f in frames.sequence(photo, seed):
            assert 0 <= f.shake <= 25 and 0 <= f.defocus <= frames.BREATHING_PX + 1e-9
            assert abs(f.stops) <= frames.DRIFT_LIMIT and max(abs(f.shift[0]), abs(f.shift[1])) <= 0.5


def test_rendering_is_deterministic_and_a_clean_frame_is_the_photo(photo: Image.Image) -> None:
    frame = frames.sequence(photo, seed=1)[0]
    assert frames.render(photo, frame).tobytes() == frames.render(photo, frame).tobytes()
    clean = frames.Frame(0, 0.0, 0.0, (0.0, 0.0), 0.0, 0.0)
    assert clean.damage == 0.0
    assert np.array_equal(np.asarray(frames.render(photo, clean)), np.asarray(photo))


def test_more_construction_damage_leaves_less_detail(photo: Image.Image) -> None:
    base = frames.Frame(0, 0.0, 30.0, (0.25, -0.25), 0.0, 0.0)
    shaken = [frames.render(photo, frames.Frame(0, s, 30.0, (0.25, -0.25), 0.0, 0.0)) for s in (1.0, 4.0, 8.0)]
    details = [_detail(frames.render(photo, base))] + [_detail(img) for img in shaken]
    assert all(a > b for a, b in pairwise(details)), details
