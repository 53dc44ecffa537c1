"""Choosing a video's thumbnail frame: which candidates are rejected, and which one wins.

The "videos" here are sequences of the six bundled demo photos (shrunk to 320x240 for speed),
with black frames, fades, cross-dissolves and pans made from them. Where a test is about
rejection its scores are made up, and the rejected frame is given the best one, so only the
rejection can keep it from winning; one test scores real frames with :func:`worker.quality.score`.
"""

from __future__ import annotations

import functools
import io
import itertools

import numpy as np
import pytest
from PIL import Image, ImageFilter

from worker.demo.build import DARK_FACTOR, DEMO_IMAGES, read_demo_image
from worker.quality import score
from worker.video.frame_choice import (
    BLACK,
    DUPLICATE,
    FADE,
    FLAT,
    TRANSITION,
    UNSCORED,
    Candidate,
    Choice,
    FrameLook,
    choose,
)

SIZE = (320, 240)


@functools.cache
def photo(name: str) -> Image.Image:
    with Image.open(io.BytesIO(read_demo_image(name))) as image:
        return image.convert("RGB").resize(SIZE, Image.Resampling.BILINEAR)


@functools.cache
def look_of(name: str) -> FrameLook:
    return FrameLook.of(photo(name))


def scaled(image: Image.Image, factor: float, towards: float = 0.0) -> Image.Image:
    """``image`` moved towards grey level ``towards`` (0: a fade to black, 255: to white)."""
    pixels = np.asarray(image, dtype=np.float32)
    return Image.fromarray(np.clip(np.rint(towards + (pixels - towards) * factor), 0, 255).astype(np.uint8))


def shifted(image: Image.Image, dx: int) -> Image.Image:
    """The picture a few seconds on: the camera has drifted ``dx`` pixels."""
    return image.crop((dx, 0, dx + image.width - 16, image.height)).resize(image.size)


def solid(level: int) -> Image.Image:
    return Image.new("RGB", SIZE, (level, level, level))


def video(*frames: Image.Image | FrameLook, scores: list[float | None] | None = None) -> list[Candidate]:
    """Candidates one second apart; made-up scores 0.5, 0.51, ... unless given."""
    scores = scores if scores is not None else [0.5 + 0.01 * i for i in range(len(frames))]
    return [Candidate(1000 * i, s, {}, f if isinstance(f, FrameLook) else FrameLook.of(f))
            for i, (f, s) in enumerate(zip(frames, scores, strict=True))]


def others(name: str) -> list[FrameLook]:
    return [look_of(n) for n in DEMO_IMAGES if n != name]


def test_the_demo_photos_are_six() -> None:
    assert len(DEMO_IMAGES) == 6


def test_frame_look_of_a_flat_grey_frame() -> None:
    look = FrameLook.of(solid(128))
    assert look.mean_luma == pytest.approx(128) and look.contrast == pytest.approx(0)
    assert look.signature.shape == (24, 24) and look.signature.dtype == np.float32
    assert not look.signature.flags.writeable


def test_black_frame_is_rejected_even_with_the_best_score() -> None:
    a, b = DEMO_IMAGES[:2]  # made-up scores: the black frame's is the best
    choice = choose(video(look_of(a), solid(0), look_of(b), scores=[0.5, 0.99, 0.6]))
    assert choice.chosen is not None and choice.chosen.time_ms == 2000
    assert choice.rejected == {1000: BLACK} and not choice.fallback


def test_white_flash_and_title_card_are_rejected_as_flat() -> None:
    a, b, c = DEMO_IMAGES[:3]
    choice = choose(video(look_of(a), solid(250), look_of(b), solid(90), look_of(c), scores=[0.5, 0.9, 0.5, 0.9, 0.5]))
    assert choice.rejected == {1000: FLAT, 3000: FLAT}


def test_second_black_frame_and_a_held_fade_are_rejected() -> None:
    a, b, c = DEMO_IMAGES[:3]
    noisy_black = scaled(photo(a), 0.03)  # the dark end of a fade: a trace of the picture left
    choice = choose(video(look_of(a), solid(0), look_of(b), noisy_black, look_of(c), scores=[0.5, 0.9, 0.5, 0.9, 0.5]))
    assert choice.rejected == {1000: BLACK, 3000: BLACK}
    # a fade held on screen: the second dim frame's brighter original is two frames away, not a
    # neighbour; a fade is judged against any frame of the video of its shape
    dim = scaled(shifted(photo(a), 6), 0.3)
    choice = choose(video(look_of(a), dim, dim, look_of(b), look_of(c), scores=[0.5, 0.9, 0.9, 0.6, 0.5]))
    assert choice.rejected == {1000: FADE, 2000: FADE}
    assert choice.chosen is not None and choice.chosen.time_ms == 3000
    # a duplicate of a rejected frame that no rule rejects by itself: the same dissolve shown again
    # later between other shots, where it is no blend of its neighbours
    dissolve = Image.blend(photo(a), photo(b), 0.5)
    choice = choose(video(look_of(a), dissolve, look_of(b), look_of(c), dissolve, look_of(DEMO_IMAGES[3]),
                          scores=[0.5, 0.9, 0.5, 0.5, 0.9, 0.5]))
    assert choice.rejected == {1000: TRANSITION, 4000: DUPLICATE}


@pytest.mark.parametrize("name", DEMO_IMAGES)
def test_fade_to_black_between_normal_frames_is_rejected(name: str) -> None:
    fading = scaled(shifted(photo(name), 8), 0.3)  # made-up scores: the fading frame's is the best
    frames = [look_of(name), fading, *others(name)]
    choice = choose(video(*frames, scores=[0.5, 0.99, 0.6, 0.6, 0.6, 0.6, 0.6]))
    assert choice.rejected == {1000: FADE}
    # from black: the fading frame before the picture, at the start of the video
    choice = choose(video(fading, look_of(name), *others(name), scores=[0.99, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6]))
    assert choice.rejected == {0: FADE}


@pytest.mark.parametrize("name", DEMO_IMAGES)
def test_fade_to_white_is_rejected(name: str) -> None:
    washed = scaled(shifted(photo(name), 8), 0.3, towards=255)
    choice = choose(video(look_of(name), washed, *others(name)))
    assert choice.rejected == {1000: FADE}


@pytest.mark.parametrize("mix", [0.5, 0.35])
@pytest.mark.parametrize(("first", "second"), list(itertools.permutations(DEMO_IMAGES, 2)))
def test_cross_dissolve_is_rejected_as_a_transition(first: str, second: str, mix: float) -> None:
    dissolve = Image.blend(photo(first), photo(second), mix)  # made-up scores: the blend's is the best
    rest = [look_of(n) for n in DEMO_IMAGES if n not in (first, second)]
    scores = [0.5, 0.99, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert choose(video(look_of(first), dissolve, look_of(second), *rest, scores=scores)).rejected == {1000: TRANSITION}


def test_a_faint_ghost_under_a_contrasty_picture_is_kept() -> None:
    """The price of keeping camera moves: a 70/30 blend that correlates 0.98 with the stronger,
    contrastier picture is taken for that picture. The score decides between it and the others."""
    first, second = "kodim20-airplane.jpg", "kodim04-portrait.jpg"
    dissolve = Image.blend(photo(first), photo(second), 0.3)
    assert choose(video(look_of(first), dissolve, look_of(second))).rejected == {}


def test_normal_frames_are_never_rejected_in_any_order() -> None:
    for order in itertools.permutations(DEMO_IMAGES):
        choice = choose(video(*(look_of(n) for n in order)))
        assert choice.rejected == {}, order


def test_a_dark_video_keeps_its_dark_frames() -> None:
    """A night video: every frame at a quarter exposure (the demo's "dark" damage) is still a picture."""
    dark = [scaled(photo(n), DARK_FACTOR) for n in DEMO_IMAGES]
    assert choose(video(*dark)).rejected == {}
    # a dark shot among bright ones is no fade when it resembles neither neighbour
    assert choose(video(look_of(DEMO_IMAGES[0]), dark[1], *others(DEMO_IMAGES[1])[1:])).rejected == {}


def test_a_dim_scene_in_a_bright_video_is_kept() -> None:
    """Several candidates of one dim scene: each resembles a neighbour, but none as a step down from it."""
    dim = scaled(photo(DEMO_IMAGES[2]), 0.35)
    frames = [look_of(DEMO_IMAGES[0]), look_of(DEMO_IMAGES[1]), dim, shifted(dim, 4), shifted(dim, 8),
              look_of(DEMO_IMAGES[3]), look_of(DEMO_IMAGES[4])]
    assert choose(video(*frames)).rejected == {}


@pytest.mark.parametrize("name", DEMO_IMAGES)
def test_pans_and_zooms_are_no_transitions(name: str) -> None:
    """The middle of a camera move is roughly an average of its neighbours: it must not count as a dissolve."""
    wide = photo(name)
    for step in (4, 8, 16, 32, 48):
        pan = [wide.crop((k * step, 0, k * step + 160, 240)).resize(SIZE) for k in range(4)]
        assert choose(video(*pan)).rejected == {}, ("pan", step)
    for ratio in (0.95, 0.9, 0.8, 0.7):
        zoom = []
        for k in range(4):
            margin_x, margin_y = SIZE[0] * (1 - ratio**k) / 2, SIZE[1] * (1 - ratio**k) / 2
            box = (round(margin_x), round(margin_y), round(SIZE[0] - margin_x), round(SIZE[1] - margin_y))
            zoom.append(wide.crop(box).resize(SIZE))
        assert choose(video(*zoom)).rejected == {}, ("zoom", ratio)


def test_unscored_frames_are_never_chosen() -> None:
    frames = video(*(look_of(n) for n in DEMO_IMAGES[:4]), scores=[0.5, None, 0.6, float("nan")])
    frames.append(Candidate(4000, None, {}, None))  # no image either
    choice = choose(frames)
    assert choice.chosen is frames[2]
    assert choice.runners_up == [frames[0]]
    assert choice.rejected == {1000: UNSCORED, 3000: UNSCORED, 4000: UNSCORED}
    assert choose([Candidate(0, None, {}, None)]) == Choice(None, [], {0: UNSCORED}, fallback=False)
    assert choose([]) == Choice(None, [], {}, fallback=False)


def test_a_scored_frame_without_an_image_can_win() -> None:
    frames = [*video(look_of(DEMO_IMAGES[0]), scores=[0.5]), Candidate(1000, 0.7, {}, None)]
    assert choose(frames).chosen is frames[1]


def test_fallback_when_every_scored_frame_is_rejected() -> None:
    frames = video(solid(0), solid(3), solid(255), scores=[0.2, 0.4, 0.3])
    frames.append(Candidate(3000, None, {}, FrameLook.of(photo(DEMO_IMAGES[0]))))
    choice = choose(frames)
    assert choice.fallback and choice.chosen is frames[1] and choice.runners_up == []
    assert choice.rejected == {0: BLACK, 1000: BLACK, 2000: FLAT, 3000: UNSCORED}


def test_runners_up_best_first() -> None:
    frames = video(*(look_of(n) for n in DEMO_IMAGES[:5]), scores=[0.3, 0.9, 0.5, 0.7, 0.6])
    choice = choose(frames)
    assert choice.chosen is frames[1] and choice.runners_up == [frames[3], frames[4], frames[2]]
    assert choose(frames, runners_up=1).runners_up == [frames[3]]
    assert choose(frames, runners_up=0).runners_up == []
    assert choose(frames, runners_up=10).runners_up == [frames[3], frames[4], frames[2], frames[0]]
    with pytest.raises(ValueError):
        choose(frames, runners_up=-1)


def test_ties_go_to_the_earlier_frame() -> None:
    frames = video(*(look_of(n) for n in DEMO_IMAGES[:4]), scores=[0.4, 0.8, 0.4, 0.8])
    choice = choose(list(reversed(frames)))  # given out of order: time decides, not position
    assert choice.chosen is frames[1] and choice.runners_up == [frames[3], frames[0], frames[2]]
    assert list(choice.rejected) == []


def test_distinct_times_are_required() -> None:
    frames = video(look_of(DEMO_IMAGES[0]), look_of(DEMO_IMAGES[1]))
    with pytest.raises(ValueError):
        choose([frames[0], Candidate(0, 0.9, {}, frames[1].look)])


def test_real_scores_prefer_the_sharp_frame() -> None:
    """With the quality model's real scores: a blurred copy of a frame loses to the sharp original."""
    sharp = photo(DEMO_IMAGES[1])
    blurred = sharp.filter(ImageFilter.GaussianBlur(3))
    frames = []
    for t, image in enumerate([blurred, sharp]):
        data = io.BytesIO()
        image.save(data, "JPEG", quality=92)
        found = score(data.getvalue())
        frames.append(Candidate(1000 * t, found.overall, found.dimensions, FrameLook.of(image)))
    choice = choose(frames)
    assert choice.chosen is frames[1] and choice.runners_up == [frames[0]] and choice.rejected == {}
