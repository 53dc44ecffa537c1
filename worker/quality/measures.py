"""One measurement per quality dimension: a physical quantity, and its 0..1 score.

Each function returns a :class:`Measure`: ``raw`` is the quantity in units a person can check
(noise σ in 8-bit levels, edge width in pixels …) and ``score`` maps it onto 0 (worst) .. 1
(best) with a smooth, strictly monotonic curve, so that every step of damage moves the score.

Two inputs, prepared by :mod:`worker.quality.scorer` so that the cost stays below one decode:

* ``view``: the whole picture box-reduced to a few hundred pixels, RGB float32 — enough for
  global statistics (exposure, colour), and the box filter averages noise out of them;
* ``tiles``: a few square luma crops at native resolution, float32 ``(k, T, T)`` with ``T`` a
  multiple of 8 and every tile origin on the 8-pixel grid — the only place where noise, blur
  and JPEG blocks are visible.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = [
    "Measure",
    "blur",
    "compression",
    "exposure",
    "noise",
    "resolution",
    "saturation",
]


class Measure(NamedTuple):
    """A dimension's raw measurement and its 0..1 score (higher is better)."""

    raw: float
    score: float


def _falloff(x: float, half: float, power: float) -> float:
    """1 at x = 0, ½ at x = ``half``, → 0 as x grows; ``power`` sets the steepness."""
    return 1.0 / (1.0 + (max(x, 0.0) / half) ** power)


# -- resolution ----------------------------------------------------------------------------------

_RES_FLOOR = 128 * 128  # pixels at which resolution scores 0: a thumbnail
_RES_FULL = 2_000_000  # pixels at which resolution scores 1: full-HD and more


def resolution(width: int, height: int) -> Measure:
    """Pixel count on a log scale, 0 at a 128² thumbnail, 1 from 2 Mpx; panoramas count as 2:1."""
    short = min(width, height)
    pixels = min(width * height, 2 * short * short)
    span = math.log(_RES_FULL / _RES_FLOOR)
    score = math.log(max(pixels, 1) / _RES_FLOOR) / span
    return Measure(float(width * height), float(np.clip(score, 0.0, 1.0)))


# -- noise ---------------------------------------------------------------------------------------

_BLOCK = 8
_NOISE_PERCENTILE = 0.10  # flattest tenth of the blocks: texture there is negligible
_NOISE_HALF = 8.0  # σ (8-bit levels) that scores ½: grain plainly visible on a screen
# Immerkær's residual (Laplacian-of-Laplacian mask, coefficients' squares sum to 36) has
# σ_residual = 6 σ, and E|x| = σ √(2/π) for Gaussian x.
_RESIDUAL_TO_SIGMA = math.sqrt(math.pi / 2.0) / 6.0


def _block_means(a: np.ndarray) -> np.ndarray:
    """Means of the 8×8 blocks of a ``(k, H, W)`` stack (H, W multiples of 8), as ``(k·H/8·W/8,)``."""
    k, h, w = a.shape
    rows = a.reshape(k, h, w // _BLOCK, _BLOCK).sum(axis=3)
    return rows.reshape(k, h // _BLOCK, _BLOCK, w // _BLOCK).sum(axis=2).ravel() / _BLOCK**2


def noise(tiles: np.ndarray) -> Measure:
    """Sensor/grain noise σ (8-bit levels): Immerkær residual in the flattest unclipped blocks."""
    a = tiles
    d = a[:, :, :-2] + a[:, :, 2:] - 2.0 * a[:, :, 1:-1]
    r = np.abs(d[:, :-2] + d[:, 2:] - 2.0 * d[:, 1:-1])
    k, h, w = r.shape
    h8, w8 = h - h % _BLOCK, w - w % _BLOCK
    sigma = _block_means(r[:, :h8, :w8]) * _RESIDUAL_TO_SIGMA
    level = _block_means(a[:, 1 : 1 + h8, 1 : 1 + w8])
    unclipped = sigma[(level > 16.0) & (level < 240.0)]
    if unclipped.size >= sigma.size // 10:  # a mostly black/white picture: use what there is
        sigma = unclipped
    if sigma.size == 0:
        return Measure(0.0, 1.0)
    nth = int(_NOISE_PERCENTILE * (sigma.size - 1))
    est = float(np.partition(sigma, nth)[nth])
    return Measure(est, _falloff(est, _NOISE_HALF, 2.0))


# -- blur ----------------------------------------------------------------------------------------

_EDGE_FRACTION = 0.05  # strongest 5 % of coarse gradients: the edges that exist in any photo
_COARSE_VAR = 2.0  # variance (px²) of the coarse-scale binomial pre-smoothing, per axis
_BLUR_HALF = 2.0  # edge σ (px) that scores ½: visibly soft at 100 %


def _binomial(a: np.ndarray, passes: int) -> np.ndarray:
    """Binomial smoothing (variance ``passes``/4 px² per axis), valid part only (shrinks)."""
    for _ in range(passes):
        a = a[:, :, 1:] + a[:, :, :-1]
    for _ in range(passes):
        a = a[:, 1:] + a[:, :-1]
    return a * (0.25**passes)


def _gradient(a: np.ndarray) -> np.ndarray:
    """|∂x| + |∂y| by central differences, valid part only."""
    return np.abs(a[:, 1:-1, 2:] - a[:, 1:-1, :-2]) + np.abs(a[:, 2:, 1:-1] - a[:, :-2, 1:-1])


def _edge_ratio(sigma: float | np.ndarray) -> float | np.ndarray:
    """Fine/coarse gradient ratio at a Gaussian edge of σ px (central differences, erf profile)."""
    coarse = np.sqrt(np.square(sigma) + _COARSE_VAR)
    fine = np.maximum(sigma, 1e-6)
    return _erf(1.0 / (fine * math.sqrt(2.0))) / _erf(1.0 / (coarse * math.sqrt(2.0)))


_erf = np.vectorize(math.erf, otypes=[float])
_WIDTHS = np.linspace(0.05, 20.0, 400)
_RATIOS = _edge_ratio(_WIDTHS)  # decreasing in width; inverted by interpolation below


def blur(tiles: np.ndarray) -> Measure:
    """Edge width σ (px): fine- vs coarse-scale gradient at the strongest edges, so content-free."""
    passes = int(round(_COARSE_VAR * 4))
    coarse = _gradient(_binomial(tiles, passes))
    m = passes // 2  # the binomial shrank each side by passes/2 per axis
    fine = _gradient(tiles)[:, m : m + coarse.shape[1], m : m + coarse.shape[2]]
    flat = coarse.ravel()
    nth = int((1.0 - _EDGE_FRACTION) * (flat.size - 1))
    threshold = np.partition(flat, nth)[nth]
    edges = flat >= max(threshold, 1e-3)
    if not edges.any():  # a flat picture has no edges to judge
        return Measure(0.0, 1.0)
    ratio = float(fine.ravel()[edges].sum() / flat[edges].sum())
    width = float(np.interp(-ratio, -_RATIOS, _WIDTHS))
    return Measure(width, _falloff(width, _BLUR_HALF, 3.0))


# -- compression ---------------------------------------------------------------------------------

_BLOCKINESS_HALF = 0.25  # excess boundary/interior gradient ratio that scores ½


def _phase_profile(tiles: np.ndarray) -> np.ndarray:
    """Mean |neighbour difference| across each of the 8 pixel-grid phases (x and y pooled)."""
    k, h, w = tiles.shape
    across_x = np.abs(tiles[:, :, 1:] - tiles[:, :, :-1]).sum(axis=(0, 1))
    across_y = np.abs(tiles[:, 1:] - tiles[:, :-1]).sum(axis=(0, 2))
    # difference i lies between pixels i and i+1; i mod 8 == 7 is a block boundary
    return (
        np.append(across_x, 0.0).reshape(-1, _BLOCK).sum(axis=0)
        + np.append(across_y, 0.0).reshape(-1, _BLOCK).sum(axis=0)
    )


def compression(tiles: np.ndarray) -> Measure:
    """JPEG blockiness: gradient across 8-px block boundaries ÷ inside blocks (1 = none)."""
    profile = _phase_profile(tiles)
    boundary = int(np.argmax(profile))  # the grid may be shifted by a crop or a flip
    interior = (profile.sum() - profile[boundary]) / (_BLOCK - 1)
    if interior <= 0.0:
        return Measure(1.0, 1.0)
    ratio = float(profile[boundary] / interior)
    return Measure(ratio, _falloff(ratio - 1.0, _BLOCKINESS_HALF, 2.0))


# -- saturation ----------------------------------------------------------------------------------

_COLOURFUL_HALF = 30.0  # Hasler–Süsstrunk M that scores ½ ("moderately colourful" starts at 33)


def saturation(view: np.ndarray) -> Measure:
    """Colourfulness M of Hasler & Süsstrunk (2003): spread and mean of opponent chroma."""
    r, g, b = view[..., 0], view[..., 1], view[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    m = math.hypot(float(rg.std()), float(yb.std())) + 0.3 * math.hypot(
        float(rg.mean()), float(yb.mean())
    )
    return Measure(m, 1.0 - _falloff(m, _COLOURFUL_HALF, 2.0))


# -- exposure ------------------------------------------------------------------------------------

_MID = 0.46  # mean luma of a well-exposed photo (≈ sRGB of 18 % grey)
_MID_WIDTH = 0.30  # distance from _MID at which the mid-tone factor falls to 1/e
_CLIP_HALF = 0.15  # fraction of clipped pixels that halves the score


def exposure(luma_hist: np.ndarray) -> Measure:
    """Mean luma's distance from mid-grey × the fraction of crushed shadows / blown highlights."""
    n = float(luma_hist.sum())
    mean = float(np.dot(luma_hist, np.arange(256))) / (255.0 * n)
    clipped = float(luma_hist[:3].sum() + luma_hist[253:].sum()) / n
    mid = math.exp(-(((mean - _MID) / _MID_WIDTH) ** 2))
    return Measure(mean, mid * _falloff(clipped, _CLIP_HALF, 2.0))
