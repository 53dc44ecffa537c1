"""Which of a video's candidate frames becomes its thumbnail (``picscore thumbnails``).

The quality model scores a frame as a photo: it does not know that a crisp black frame, the dim
middle of a fade or the double image of a cross-dissolve are frames nobody would pick. So the
candidates (about a dozen, spread over the video, in time order) first lose the frames a person
would never pick, judged from a cheap :class:`FrameLook` of each, and the best-scoring frame of
the rest is chosen. Apart from black and flat frames, the rules read each frame against the
video's own frames, never against absolute taste: a night video keeps its dark frames.

* ``black``: dark and almost without contrast (a black frame, the dark end of a fade);
* ``flat``: almost no contrast at any brightness (a plain title card, a white flash);
* ``fade``: darker (or whiter) and flatter than the video's typical frame, and than a neighbour
  it still resembles in shape: the same picture on its way to or from black (or white);
* ``transition``: well explained as a blend of the previous and next candidates, far better
  than by either alone: the double image of a cross-dissolve;
* ``duplicate-of-rejected``: nearly the same picture as a rejected frame (a long black segment,
  a fade held on screen), which the rules above can miss for lack of a brighter neighbour.

Pure: numpy and Pillow, no I/O; the same candidates give the same choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

__all__ = ["FrameLook", "Candidate", "Choice", "choose", "BLACK", "FLAT", "FADE", "TRANSITION", "DUPLICATE",
           "UNSCORED"]

#: Why a frame was rejected (the values of :attr:`Choice.rejected`).
BLACK, FLAT, FADE, TRANSITION, DUPLICATE, UNSCORED = (
    "black", "flat", "fade", "transition", "duplicate-of-rejected", "unscored")

#: Luma and contrast are read from the frame shrunk to this longer side: a thumbnail is judged at
#: a glance, and averaging away sensor noise keeps a noisy black frame black.
LOOK_SIDE = 128
#: Side of the grey signature compared between frames. 24 rather than 16: the middle frame of a
#: slow pan is roughly the average of its neighbours (low frequencies interpolate), less so at 24
#: (on the demo photos the smallest such residual rises from 0.24 to 0.28 of the frame's std),
#: while a real blend stays exact at any size.
SIGNATURE_SIDE = 24

#: Black: mean luma under 20 (video black shown without range expansion is 16) with a luma std under 8
#: levels. A photo at a quarter of its exposure (the demo's "dark" kind) stays above one or the
#: other; a frame below both reads as black on a thumbnail, whatever it shows.
BLACK_LUMA = 20.0
BLACK_CONTRAST = 8.0
#: Flat: a luma std under 6 levels at any brightness is a solid card or flash; a clear sky or a
#: fog bank keeps more than that once anything else is in the picture.
FLAT_CONTRAST = 6.0

#: Fade: both the distance from black (or white) and the contrast at most 0.6 of the video's
#: median frame's, so a dim shot in a video of dim shots is never a fade; a photo at 0.3 of its
#: brightness is well below, one at 0.7 (still a fair picture) above.
FADE_RATIO = 0.6
#: ... and at most 0.8 of those of another frame of the video it resembles: a fade is a ramp away
#: from a brighter picture of the same shape. That picture need not be a neighbour: a fade from
#: black at the start of a video has only black before it and the shot seconds later, and a fade
#: held on screen has dim frames around it. A dim scene in a bright video has no brighter frame
#: of its shape and is kept. (Found by ``make bench-thumbnails``: with neighbours alone, 4 s
#: stretches of the demo clips put a half-faded kodim13, which the model scores above the clean
#: shot, first in 2 of 12 videos.)
FADE_STEP = 0.8
#: Resembling a neighbour: signature correlation of at least 0.7. Neighbours are seconds apart,
#: so the picture has moved; unrelated photos correlate under 0.35.
FADE_LIKENESS = 0.7

#: Transition: least-squares weights of both neighbours clearly inside 0..1 and summing to about
#: 1 (a dissolve keeps brightness; a frame merely like one neighbour weighs it near 1, the other
#: near 0) ...
TRANSITION_WEIGHTS = (0.15, 0.85)
TRANSITION_WEIGHT_SUM = (0.8, 1.2)
#: ... a residual rms under 0.25 of the frame's own signature std (a real blend of the demo photos
#: leaves under 0.02, unrelated frames about 1.0; the slack is for neighbours seconds away from
#: the dissolve) ...
TRANSITION_RESIDUAL = 0.25
#: ... and unlike each neighbour alone: correlating under 0.98 with either, and fitted at least
#: 1/0.3 times better by the blend than by either neighbour alone (scaled and offset). The middle
#: of a pan or zoom is roughly the average of its neighbours too, but fits no better than 0.41x on
#: the demo photos once it correlates under 0.98; a blend, even 25/75 of a soft picture under a
#: contrasty one (correlating 0.975 with it), fits 0.06x. Correlation alone cannot tell these apart.
TRANSITION_UNLIKE = 0.98
TRANSITION_GAIN = 0.3

#: Duplicate: signatures within 0.02 rms (about 5 grey levels): the same picture, re-encoded.
DUPLICATE_RMS = 0.02

#: Signature std (0..1 scale) below which a frame has no shape to correlate (a quarter level).
_SHAPELESS = 1e-3


@dataclass(frozen=True, eq=False)
class FrameLook:
    """What rejection reads of one frame, cheap to compute from the decoded image.

    ``eq=False``: frames compare by identity, as numpy arrays have no single truth value; the
    signature is left out of ``repr``.
    """

    mean_luma: float  # 0..255
    contrast: float  # std of luma, 0..255
    signature: np.ndarray = field(repr=False)  # SIGNATURE_SIDE² grey thumbnail, float32 0..1, read-only

    @classmethod
    def of(cls, image: Image.Image) -> FrameLook:
        """The look of ``image`` (any mode Pillow converts to ``L``; luma as ITU-R 601)."""
        grey = image.convert("L")
        scale = LOOK_SIDE / max(grey.size)
        if scale < 1:
            grey = grey.resize((max(1, round(grey.width * scale)), max(1, round(grey.height * scale))),
                               Image.Resampling.BOX)
        pixels = np.asarray(grey, dtype=np.float32)
        signature = np.asarray(grey.resize((SIGNATURE_SIDE, SIGNATURE_SIDE), Image.Resampling.BOX),
                               dtype=np.float32) / 255.0
        signature.setflags(write=False)
        return cls(float(pixels.mean()), float(pixels.std()), signature)


@dataclass(frozen=True)
class Candidate:
    """One candidate frame: where it is, its quality score, and its look."""

    time_ms: int
    score: float | None  # None: the frame could not be scored (an error): never chosen
    dimensions: Mapping[str, float]
    look: FrameLook | None  # None when no image was obtained: no rule can reject it


@dataclass(frozen=True)
class Choice:
    """The chosen frame, the runners-up, and why the other frames were left out.

    ``rejected`` maps ``time_ms`` to a reason, in time order; with ``fallback`` it still holds the
    chosen frame's reason, so a caller can say the video had no good frame and why.
    """

    chosen: Candidate | None  # None only if no candidate has a score
    runners_up: list[Candidate]  # the next best kept candidates, best first
    rejected: dict[int, str]  # time_ms -> BLACK, FLAT, FADE, TRANSITION, DUPLICATE or UNSCORED
    fallback: bool  # every scored frame was rejected; the best of them was chosen anyway


def choose(candidates: Sequence[Candidate], runners_up: int = 3) -> Choice:
    """The best-scoring candidate no rule rejects, and up to ``runners_up`` more, best first.

    Ties in score go to the earlier frame. Candidates are taken in time order (sorted by
    ``time_ms``, which must be distinct). When every scored frame is rejected the best-scoring one
    is chosen with ``fallback=True``: a video of dark frames still gets a thumbnail.
    """
    if runners_up < 0:
        raise ValueError(f"runners_up must be 0 or more, not {runners_up}")
    frames = sorted(candidates, key=lambda c: c.time_ms)
    if len({c.time_ms for c in frames}) != len(frames):
        raise ValueError("candidates must have distinct time_ms")
    look_reasons = _reasons_by_look([c.look for c in frames])
    rejected = {c.time_ms: UNSCORED if not _scored(c) else look_reasons[i]
                for i, c in enumerate(frames) if not _scored(c) or i in look_reasons}
    # best first; the index (time order) breaks ties towards the earlier frame
    ranked = sorted((i for i, c in enumerate(frames) if _scored(c)), key=lambda i: (-frames[i].score, i))
    kept = [frames[i] for i in ranked if i not in look_reasons]
    if kept:
        return Choice(kept[0], kept[1:1 + runners_up], rejected, fallback=False)
    if ranked:
        return Choice(frames[ranked[0]], [], rejected, fallback=True)
    return Choice(None, [], rejected, fallback=False)


def _scored(candidate: Candidate) -> bool:
    return candidate.score is not None and math.isfinite(candidate.score)


def _reasons_by_look(looks: Sequence[FrameLook | None]) -> dict[int, str]:
    """Index -> reason for every frame its look rejects, scored or not.

    Frames without a look are skipped, as if absent: the neighbours of a frame are the nearest
    frames before and after it that have a look. Unscored frames take part as neighbours and as
    the rejected frames a duplicate is compared with: they still show what the video looks like.
    """
    reasons: dict[int, str] = {}
    seen = [i for i, look in enumerate(looks) if look is not None]
    for i in seen:
        look = looks[i]
        assert look is not None
        if look.mean_luma < BLACK_LUMA and look.contrast < BLACK_CONTRAST:
            reasons[i] = BLACK
        elif look.contrast < FLAT_CONTRAST:
            reasons[i] = FLAT
    typical = [looks[i] for i in seen if i not in reasons]
    median_luma = float(np.median([t.mean_luma for t in typical])) if typical else 0.0
    median_contrast = float(np.median([t.contrast for t in typical])) if typical else 0.0
    for k, i in enumerate(seen):
        if i in reasons:
            continue
        look = looks[i]
        prev_i = seen[k - 1] if k > 0 else None
        next_i = seen[k + 1] if k + 1 < len(seen) else None
        prev = looks[prev_i] if prev_i is not None else None
        nxt = looks[next_i] if next_i is not None else None
        assert look is not None
        others = tuple(looks[j] for j in seen if j != i and j not in reasons)
        if _is_fade(look, others, median_luma, median_contrast):
            reasons[i] = FADE
        elif (prev is not None and nxt is not None
              and reasons.get(prev_i) not in (BLACK, FLAT) and reasons.get(next_i) not in (BLACK, FLAT)
              and _is_transition(prev, look, nxt)):
            # a blend with a black or flat frame is a fade (or a title card), not a double image
            reasons[i] = TRANSITION
    changed = True
    while changed:  # to a fixed point: a duplicate of a duplicate is rejected too
        changed = False
        for i in seen:
            if i not in reasons and any(_same(looks[i], looks[j]) for j in reasons):
                reasons[i] = DUPLICATE
                changed = True
    return reasons


def _is_fade(look: FrameLook, neighbours: Sequence[FrameLook | None], median_luma: float,
             median_contrast: float) -> bool:
    """Darker (or whiter) and flatter than the median frame and than another frame of the same shape.

    Contrast must drop too: a fade scales the picture's range towards black or white, while a
    shot that is merely darker (a night exterior) keeps its contrast.
    """
    if median_contrast <= 0 or look.contrast > FADE_RATIO * median_contrast:
        return False
    for room in (_to_black, _to_white):
        if room(median_luma) <= 0 or room(look.mean_luma) > FADE_RATIO * room(median_luma):
            continue
        for other in neighbours:
            if (other is not None and room(look.mean_luma) <= FADE_STEP * room(other.mean_luma)
                    and look.contrast <= FADE_STEP * other.contrast
                    and _likeness(look.signature, other.signature) >= FADE_LIKENESS):
                return True
    return False


def _to_black(luma: float) -> float:
    """How far a mean luma is from black: what a fade to black takes away."""
    return luma


def _to_white(luma: float) -> float:
    """How far a mean luma is from white: what a fade to white takes away."""
    return 255.0 - luma


def _is_transition(prev: FrameLook, look: FrameLook, nxt: FrameLook) -> bool:
    """``look`` ≈ a·prev + b·next with a, b clearly inside 0..1, far better than either alone."""
    frame = look.signature.ravel().astype(np.float64)
    spread = float(frame.std())
    if spread < _SHAPELESS:
        return False
    basis = np.stack([prev.signature.ravel(), nxt.signature.ravel()], axis=1).astype(np.float64)
    weights, *_ = np.linalg.lstsq(basis, frame, rcond=None)
    low, high = TRANSITION_WEIGHTS
    if not all(low <= w <= high for w in weights):
        return False
    if not TRANSITION_WEIGHT_SUM[0] <= float(weights.sum()) <= TRANSITION_WEIGHT_SUM[1]:
        return False
    likeness = max(abs(_likeness(look.signature, prev.signature)), abs(_likeness(look.signature, nxt.signature)))
    if likeness >= TRANSITION_UNLIKE:
        return False
    residual = float(np.sqrt(np.mean((frame - basis @ weights) ** 2)))
    alone = spread * math.sqrt(max(0.0, 1.0 - likeness**2))  # the best affine fit's residual
    return residual <= TRANSITION_RESIDUAL * spread and residual <= TRANSITION_GAIN * alone


def _likeness(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two signatures: alike in shape whatever the brightness and contrast.

    0 where either has no shape (a black or flat frame): a flat picture resembles nothing.
    """
    x = a.ravel().astype(np.float64)
    y = b.ravel().astype(np.float64)
    x = x - x.mean()
    y = y - y.mean()
    if x.std() < _SHAPELESS or y.std() < _SHAPELESS:
        return 0.0
    return float(x @ y / math.sqrt(float(x @ x) * float(y @ y)))


def _same(a: FrameLook | None, b: FrameLook | None) -> bool:
    """Nearly the same picture, brightness included (where :func:`_likeness` ignores brightness)."""
    if a is None or b is None or a.signature.shape != b.signature.shape:
        return False
    difference = a.signature.astype(np.float64) - b.signature.astype(np.float64)
    return float(np.sqrt(np.mean(difference ** 2))) <= DUPLICATE_RMS
