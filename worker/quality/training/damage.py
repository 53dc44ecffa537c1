"""Graded synthetic damage: one photo → the same photo made worse, by a known physical amount.

``make(img, kind, level)`` returns a new 8-bit RGB picture of the same size; ``level`` runs from
0 (the photo untouched) to 1 (severe: the damage is the first thing anyone notices) and maps onto
a physical strength, monotonically, as :data:`KINDS` documents. Ladders of
:data:`LADDER_LEVELS` fine steps (:func:`ladder`) check that the score falls with the damage
(``benchmarks/bench_quality.py --ladders``) and calibrate the severe-defect gate
(:mod:`worker.quality.training.gate`); :mod:`worker.quality.training.frames` builds frame
sequences from the same operators.

Lengths are in pixels *per 512 px of the picture's short side* (BIQ2021's photos are 512 px;
the bundled Kodak photos 512 x 768), so the same level looks alike at any size.

Pure and deterministic: numpy and Pillow only, no global state; noise draws from its own seeded
generator. Blurs are convolutions in linear light (a lens and a shaking camera act on light, not
on gamma-encoded values), done by FFT over a reflect-padded copy; exposure is a gain in linear
light clipped at the sensor's white, as a camera would record it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np
from PIL import Image

__all__ = ["KINDS", "LADDER_LEVELS", "compose", "convolve", "convolve_linear", "disk_kernel", "ladder", "line_kernel",
           "make", "strength"]

#: Fine steps of a ladder, the undamaged photo not counted (issue 17 asks for at least 8).
LADDER_LEVELS = 8

#: Each kind, and the physical strength ``level`` 1 maps onto (``level`` x this, unless noted).
KINDS: Mapping[str, str] = {
    "defocus": "disk (pill-box) blur, radius 8 px per 512 px of short side",
    "motion": "straight-line motion blur, length 24 px per 512 px of short side, at `angle` degrees",
    "noise": "additive Gaussian noise, luma sigma 40 levels (8-bit) plus chroma sigma 20 on Cb and Cr",
    "jpeg": "JPEG re-encoding, quality round(75 x (3/75)^level): 50, 34, 22, 15, 10, 7, 4, 3 at eighths",
    "under": "under-exposure, 4 stops at level 1: linear light x 2^(-4 level)",
    "over": "over-exposure, 3 stops at level 1: linear light x 2^(3 level), clipped at white",
    "desaturate": "chroma toward Rec.601 luma, x (1 - level): level 1 is grey",
    "resolution": "down by 2^(3 level) (1/8 at level 1, box filter), then back up (bicubic)",
}

DEFOCUS_RADIUS = 8.0
MOTION_LENGTH = 24.0
MOTION_ANGLE = 30.0
NOISE_SIGMA, CHROMA_SHARE = 40.0, 0.5
JPEG_BEST, JPEG_WORST = 75.0, 3.0
UNDER_STOPS, OVER_STOPS = 4.0, 3.0
RESOLUTION_STOPS = 3.0  # log2 of the linear downscale at level 1
REFERENCE_SIDE = 512.0

_SUPERSAMPLE = 8  # kernel rendering: sub-samples per pixel and axis


def ladder(steps: int = LADDER_LEVELS) -> tuple[float, ...]:
    """Levels 0, 1/steps, …, 1: the undamaged photo and ``steps`` fine steps of damage."""
    return tuple(k / steps for k in range(steps + 1))


def strength(kind: str, level: float) -> float:
    """The physical strength ``level`` maps onto for ``kind`` (units as :data:`KINDS` says):
    px (defocus radius, motion length, at a 512 px short side), noise sigma, JPEG quality
    (100 = not re-encoded), stops (under: negative), saturation removed (0..1), downscale factor."""
    level = _check(kind, level)
    if kind == "defocus":
        return DEFOCUS_RADIUS * level
    if kind == "motion":
        return MOTION_LENGTH * level
    if kind == "noise":
        return NOISE_SIGMA * level
    if kind == "jpeg":
        return 100.0 if level == 0 else float(int(JPEG_BEST * (JPEG_WORST / JPEG_BEST) ** level + 0.5))
    if kind == "under":
        return 0.0 - UNDER_STOPS * level
    if kind == "over":
        return OVER_STOPS * level
    if kind == "desaturate":
        return level
    return 2.0 ** (RESOLUTION_STOPS * level)


def make(img: Image.Image, kind: str, level: float, *, angle: float = MOTION_ANGLE, seed: int = 0) -> Image.Image:
    """``img`` damaged by ``kind`` at ``level`` (0..1), as a new 8-bit RGB picture of the same size.

    ``angle`` (degrees, counter-clockwise from horizontal) is the direction of motion blur;
    ``seed`` chooses the noise. Level 0 returns an unchanged copy for every kind.
    """
    level = _check(kind, level)
    rgb = img.convert("RGB")
    if level == 0:
        return rgb.copy()
    value = strength(kind, level)
    scale = min(rgb.size) / REFERENCE_SIDE
    if kind == "defocus":
        return convolve(rgb, disk_kernel(value * scale))
    if kind == "motion":
        return convolve(rgb, line_kernel(value * scale, angle))
    if kind == "noise":
        return add_noise(rgb, value, CHROMA_SHARE * value, seed)
    if kind == "jpeg":
        buffer = io.BytesIO()
        rgb.save(buffer, "JPEG", quality=int(value))
        with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
            return decoded.convert("RGB")
    if kind in ("under", "over"):
        return exposed(rgb, value)
    if kind == "desaturate":
        return desaturated(rgb, value)
    small = (max(1, round(rgb.width / value)), max(1, round(rgb.height / value)))
    return rgb.resize(small, Image.Resampling.BOX).resize(rgb.size, Image.Resampling.BICUBIC)


def _check(kind: str, level: float) -> float:
    if kind not in KINDS:
        raise ValueError(f"unknown damage {kind!r}; choose one of: {', '.join(KINDS)}")
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"level must be within 0..1, not {level}")
    return float(level)


# -- colour helpers ------------------------------------------------------------------------------

def to_linear(rgb: Image.Image) -> np.ndarray:
    """sRGB 8-bit → linear light, float64 (H, W, 3) in 0..1."""
    v = np.asarray(rgb, dtype=np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def from_linear(linear: np.ndarray) -> Image.Image:
    """Linear light (clipped to 0..1) → sRGB 8-bit."""
    v = np.clip(linear, 0.0, 1.0)
    v = np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)
    return Image.fromarray(np.clip(np.rint(v * 255.0), 0, 255).astype(np.uint8), "RGB")


def exposed(rgb: Image.Image, stops: float) -> Image.Image:
    """Exposure changed by ``stops`` (negative: darker): a gain in linear light, clipped at white."""
    return from_linear(to_linear(rgb) * 2.0 ** stops)


def desaturated(rgb: Image.Image, amount: float) -> Image.Image:
    """Chroma scaled by ``1 - amount`` around Rec.601 luma (the encoded values, as Pillow's Color)."""
    arr = np.asarray(rgb, dtype=np.float64)
    luma = arr @ np.array([0.299, 0.587, 0.114])
    out = luma[..., None] + (1.0 - amount) * (arr - luma[..., None])
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


def add_noise(rgb: Image.Image, luma_sigma: float, chroma_sigma: float, seed: int) -> Image.Image:
    """Gaussian noise of ``luma_sigma`` levels on Y and ``chroma_sigma`` on Cb and Cr (JPEG's
    YCbCr), added to the encoded values. The same ``seed`` draws the same pattern at every
    strength, so a stronger level is the same grain, louder."""
    rng = np.random.default_rng(seed)
    h, w = rgb.height, rgb.width
    y, cb, cr = (rng.standard_normal((h, w)) for _ in range(3))
    y *= luma_sigma
    cb *= chroma_sigma
    cr *= chroma_sigma
    offset = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    out = np.asarray(rgb, dtype=np.float64) + offset
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


# -- blur kernels --------------------------------------------------------------------------------

def disk_kernel(radius: float) -> np.ndarray:
    """A pill-box of ``radius`` px, sum 1: points on a 1/8-px lattice within the disk, each
    spread bilinearly onto its four nearest pixels (as :func:`line_kernel` spreads its path), so
    the blur grows smoothly from the identity at radius 0 — a disk smaller than a pixel still
    softens, as it does on a sensor."""
    steps = math.floor(radius * _SUPERSAMPLE)
    grid = np.arange(-steps, steps + 1) / _SUPERSAMPLE
    u, v = np.meshgrid(grid, grid)
    inside = u * u + v * v <= radius * radius + 1e-12
    return _splat(u[inside], v[inside])


def line_kernel(length: float, angle: float) -> np.ndarray:
    """A straight path of ``length`` px at ``angle`` degrees (counter-clockwise from +x), centred,
    sampled every 1/8 px and spread bilinearly, sum 1: a camera that moves steadily while the
    shutter is open. Length 0: the identity."""
    theta = math.radians(angle)
    n = max(1, math.ceil(length * _SUPERSAMPLE)) + 1
    t = np.linspace(-0.5, 0.5, n) * length
    return _splat(t * math.cos(theta), -t * math.sin(theta))  # image y points down


def _splat(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Equal-weight points (px, centred on the origin) spread bilinearly onto an odd square grid, sum 1."""
    half = math.ceil(max(np.abs(xs).max(), np.abs(ys).max())) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    x0, y0 = np.floor(xs), np.floor(ys)
    fx, fy = xs - x0, ys - y0
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, ((y0 + dy).astype(int) + half, (x0 + dx).astype(int) + half), weight)
    # trim rows and columns that got nothing (a kernel one pixel wider than needed costs FFT padding only)
    while kernel.shape[0] > 1 and not kernel[0].any() and not kernel[-1].any() \
            and not kernel[:, 0].any() and not kernel[:, -1].any():
        kernel = kernel[1:-1, 1:-1]
    return kernel / kernel.sum()


def convolve(rgb: Image.Image, kernel: np.ndarray, shift: tuple[float, float] = (0.0, 0.0)) -> Image.Image:
    """``rgb`` convolved with ``kernel`` in linear light (see :func:`convolve_linear`)."""
    return from_linear(convolve_linear(to_linear(rgb), kernel, shift))


def convolve_linear(linear: np.ndarray, kernel: np.ndarray, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(H, W, 3) light convolved with ``kernel`` (odd square, centred), edges reflected, then moved
    by ``shift`` (dx, dy px, sub-pixel) as a Fourier phase ramp: exact, unlike an interpolating
    shift, which would blur."""
    if kernel.shape == (1, 1) and shift == (0.0, 0.0):
        return linear * kernel[0, 0]
    pad = kernel.shape[0] // 2 + math.ceil(max(abs(shift[0]), abs(shift[1]))) + 2
    padded = np.pad(linear, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    h, w = padded.shape[:2]
    k = np.zeros((h, w))
    kh = kernel.shape[0] // 2
    k[: kernel.shape[0], : kernel.shape[1]] = kernel
    k = np.roll(k, (-kh, -kh), axis=(0, 1))  # kernel centre at the origin
    transfer = np.fft.rfft2(k)
    if shift != (0.0, 0.0):
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None, :]
        transfer = transfer * np.exp(-2j * np.pi * (fx * shift[0] + fy * shift[1]))
    out = np.fft.irfft2(np.fft.rfft2(padded, axes=(0, 1)) * transfer[..., None], s=(h, w), axes=(0, 1))
    return out[pad:-pad, pad:-pad]


def compose(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The kernel of ``first`` then ``second`` (full 2-D convolution of two odd square kernels)."""
    n, m = first.shape[0], second.shape[0]
    out = np.zeros((n + m - 1, n + m - 1))
    for (y, x) in zip(*np.nonzero(first), strict=True):
        out[y:y + m, x:x + m] += first[y, x] * second
    return out
