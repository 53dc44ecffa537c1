"""Frame sequences of one photo, as a hand-held video would give them: choose the best frame.

:func:`sequence` draws :data:`FRAMES` frames' worth of three troubles that come and go:

* **camera shake**: each frame a short straight motion blur, length 5 px x |z| per 512 px of
  short side (z an AR(1) series, correlation 0.5, unit variance: half the frames under 3.4 px,
  one in twenty over 9.8 px), in a random direction, and a random sub-pixel shift (±0.5 px on
  each axis: no frame sits on the same pixel grid);
* **focus breathing**: a disk blur whose radius swings between 0 and 3 px (per 512 px) over a
  random period of 15..40 frames from a random phase;
* **exposure drift**: a random walk in stops (steps of sigma 0.12 stop) from a random start
  within ±0.5 stop, held within ±1.5 stops.

Each frame's *construction damage* is the sum of its three troubles on the ladders' scale
(:mod:`worker.quality.training.damage`, where level 1 is severe): shake length / 24 px +
defocus radius / 8 px + |stops| / 4 under or stops / 3 over. ``quality = 1 - damage`` ranks the
frames by construction: the thumbnail a scorer should pick is among the least damaged.

Deterministic per photo and seed: the generator is seeded from ``seed`` and a CRC of the
photo's pixels. :func:`render` makes a frame's picture: one convolution in linear light (shake
then defocus, then the shift), the exposure gain, and the clip at white.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from worker.quality.training import damage

__all__ = ["FRAMES", "Frame", "render", "sequence"]

FRAMES = 30
SHAKE_PX, SHAKE_CORRELATION = 5.0, 0.5
BREATHING_PX, BREATHING_PERIOD = 3.0, (15.0, 40.0)
DRIFT_START, DRIFT_STEP, DRIFT_LIMIT = 0.5, 0.12, 1.5


@dataclass(frozen=True)
class Frame:
    """One frame's troubles, in px per 512 px of the photo's short side, and stops."""

    index: int
    shake: float  # motion blur length
    angle: float  # its direction, degrees counter-clockwise from horizontal
    shift: tuple[float, float]  # (dx, dy) sub-pixel move
    defocus: float  # disk radius
    stops: float  # exposure error (negative: darker)

    @property
    def damage(self) -> float:
        """Construction damage: the troubles' ladder levels, summed (0 = a perfect frame)."""
        exposure = -self.stops / damage.UNDER_STOPS if self.stops < 0 else self.stops / damage.OVER_STOPS
        return self.shake / damage.MOTION_LENGTH + self.defocus / damage.DEFOCUS_RADIUS + exposure

    @property
    def quality(self) -> float:
        """Construction quality, ``1 - damage``: higher is a better frame."""
        return 1.0 - self.damage


def sequence(img: Image.Image, seed: int = 0, frames: int = FRAMES) -> list[Frame]:
    """``frames`` frames of troubles for ``img``: the same photo and seed give the same list."""
    rng = np.random.default_rng([seed, zlib.crc32(img.convert("RGB").tobytes())])
    z = np.empty(frames)
    z[0] = rng.standard_normal()
    for t in range(1, frames):
        z[t] = SHAKE_CORRELATION * z[t - 1] + math.sqrt(1 - SHAKE_CORRELATION**2) * rng.standard_normal()
    angles = rng.uniform(0.0, 180.0, frames)
    shifts = rng.uniform(-0.5, 0.5, (frames, 2))
    period = rng.uniform(*BREATHING_PERIOD)
    phase = rng.uniform(0.0, 2 * math.pi)
    radius = BREATHING_PX * (1 - np.cos(2 * math.pi * np.arange(frames) / period + phase)) / 2
    stops = np.empty(frames)
    stops[0] = rng.uniform(-DRIFT_START, DRIFT_START)
    for t in range(1, frames):
        stops[t] = np.clip(stops[t - 1] + DRIFT_STEP * rng.standard_normal(), -DRIFT_LIMIT, DRIFT_LIMIT)
    return [Frame(t, float(SHAKE_PX * abs(z[t])), float(angles[t]), (float(shifts[t, 0]), float(shifts[t, 1])),
                  float(radius[t]), float(stops[t])) for t in range(frames)]


def render(img: Image.Image, frame: Frame) -> Image.Image:
    """``img`` as ``frame`` saw it: shake and defocus in linear light, shifted, exposed, clipped."""
    scale = min(img.size) / damage.REFERENCE_SIDE
    kernel = damage.compose(damage.line_kernel(frame.shake * scale, frame.angle),
                            damage.disk_kernel(frame.defocus * scale))
    light = damage.convolve_linear(damage.to_linear(img.convert("RGB")), kernel, frame.shift)
    return damage.from_linear(light * 2.0 ** frame.stops)
