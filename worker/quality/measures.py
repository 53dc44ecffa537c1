"""One measurement per quality dimension: a physical quantity, and its 0..1 score.

Each function returns a :class:`Measure`: ``raw`` is a quantity a person can check (noise sigma
in 8-bit levels, edge width in pixels …) and ``score`` maps it onto 0 (worst) .. 1 (best) with
a smooth, strictly monotonic curve, so that every step of damage moves the score.

Inputs, prepared by :mod:`worker.quality.dimensions` so that all of this costs less than a decode:

* ``tiles``: a few square luma crops at native resolution, float32 ``(k, T, T)``, ``T`` a
  multiple of 8 and every origin on the 8-px grid — noise, blur and JPEG blocks exist only at
  native resolution;
* ``view``: the whole picture box-reduced to at most
  :data:`~worker.quality.dimensions.GLOBAL_STATS_SIDE` px a side, RGB float32, and its luma
  histogram — enough for global statistics, and the box filter keeps noise out of them.

Calibration: each curve's ½ point is where its damage is plainly visible at 100 %, checked
against the Kodak photos in ``worker/demo/images`` and graded damage of them (the tests in
``tests/quality`` hold every step of that damage to a lower score).
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
    "exposure_key",
    "headroom",
    "noise",
    "resolution",
    "saturation",
]


class Measure(NamedTuple):
    """A dimension's raw measurement and its 0..1 score (higher is better)."""

    raw: float
    score: float


def _falloff(x: float, half: float, power: float) -> float:
    """1 at x ≤ 0, ½ at x = ``half``, → 0 as x grows; ``power`` sets the steepness."""
    return 1.0 / (1.0 + (max(x, 0.0) / half) ** power)


# -- resolution ----------------------------------------------------------------------------------

_RES_FLOOR = 128 * 128  # pixels that score 0: a thumbnail
_RES_FULL = 2_000_000  # pixels that score 1: full HD and more


def resolution(width: int, height: int) -> Measure:
    """Pixel count on a log scale: 0 at a 128² thumbnail, 1 from 2 Mpx; beyond 2:1 adds nothing."""
    short = min(width, height)
    pixels = min(width * height, 2 * short * short)
    score = math.log(max(pixels, 1) / _RES_FLOOR) / math.log(_RES_FULL / _RES_FLOOR)
    return Measure(float(width * height), min(max(score, 0.0), 1.0))


# -- noise ---------------------------------------------------------------------------------------

_BLOCK = 8
_NOISE_PERCENTILE = 0.10  # the flattest tenth of the blocks: texture there is least
_PERCENTILE_BIAS = 0.80  # that percentile of pure Gaussian noise's block estimates reads 0.8 sigma
_NOISE_HALF = 10.0  # luma sigma that scores ½: grain obvious at any viewing size
# Immerkær's mask [1 -2 1]ᵀ[1 -2 1] cancels planes and ramps; on white noise its output has
# sigma_r = 6 sigma (coefficients' squares sum to 36), and E|x| = sigma √(2/π) for Gaussian x.
_RESIDUAL_TO_SIGMA = math.sqrt(math.pi / 2.0) / 6.0


def _block_means(a: np.ndarray) -> np.ndarray:
    """Means of the 8x8 blocks of a ``(k, H, W)`` stack (ragged edges dropped), flattened.

    Sixteen strided slice-adds: no copy of a non-contiguous input, unlike reshape-and-sum.
    """
    h8, w8 = a.shape[1] - a.shape[1] % _BLOCK, a.shape[2] - a.shape[2] % _BLOCK
    cols = a[:, :h8, 0:w8:_BLOCK].copy()
    for i in range(1, _BLOCK):
        cols += a[:, :h8, i:w8:_BLOCK]
    blocks = cols[:, 0::_BLOCK].copy()
    for i in range(1, _BLOCK):
        blocks += cols[:, i::_BLOCK]
    return blocks.ravel() * (1.0 / _BLOCK**2)


def _block_noise(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 8x8 block: the Immerkær noise estimate, and whether the block is clear of clipping."""
    d = tiles[:, :, :-2] + tiles[:, :, 2:]
    d -= tiles[:, :, 1:-1]
    d -= tiles[:, :, 1:-1]
    r = d[:, :-2] + d[:, 2:]
    r -= d[:, 1:-1]
    r -= d[:, 1:-1]
    sigma = _block_means(np.abs(r, out=r)) * _RESIDUAL_TO_SIGMA
    level = _block_means(tiles[:, 1:-1, 1:-1])
    return sigma, (level > 16.0) & (level < 240.0)  # clipping flattens noise away


def noise(tiles: np.ndarray, backup: np.ndarray | None = None) -> Measure:
    """Luma noise sigma (8-bit levels): Immerkær residual in the flattest unclipped 8x8 blocks.

    ``backup`` tiles are read too when ``tiles`` are mostly clipped (a blown sky is flat, but
    shows no noise). Fine texture everywhere (foliage, water) reads as noise: no flat block,
    no way to tell.
    """
    sigma, clear = _block_noise(tiles)
    if clear.sum() < sigma.size // 2 and backup is not None and backup.size:
        more_sigma, more_clear = _block_noise(backup)
        sigma, clear = np.concatenate([sigma, more_sigma]), np.concatenate([clear, more_clear])
    if clear.sum() >= max(sigma.size // 10, 1):  # else a black/white picture: use what is
        sigma = sigma[clear]
    nth = int(_NOISE_PERCENTILE * (sigma.size - 1))
    est = float(np.partition(sigma, nth)[nth]) / _PERCENTILE_BIAS
    return Measure(est, _falloff(est, _NOISE_HALF, 2.0))


# -- blur ----------------------------------------------------------------------------------------

_FINE_VAR = 0.5  # px² per axis of the fine scale's smoothing, [1 2 1] / 4
_COARSE_VAR = 2.25  # px² per axis of the coarse one: 2x2 box, then [1 2 1] / 4 at half size
_EDGE_FRACTION = 0.05  # strongest 5 % of coarse gradients: every photo has that many edges
_BLUR_HALF = 2.0  # edge sigma (px) that scores ½: soft at 100 %, like a 2x upscale


def _edge_ratio(width: np.ndarray) -> np.ndarray:
    """Fine/coarse gradient ratio (both per pixel) at a step blurred by a Gaussian sigma = width.

    A difference across ±d px of an erf edge of total variance S² is erf(d / (S√2)) times the
    step; S² is the edge's own sigma² plus the smoothing's. Fine: d = 1; coarse: d = 2.
    """
    erf = np.vectorize(math.erf)
    fine = erf(1.0 / np.sqrt(2.0 * (width**2 + _FINE_VAR))) / 2.0
    coarse = erf(2.0 / np.sqrt(2.0 * (width**2 + _COARSE_VAR))) / 4.0
    return fine / coarse


_WIDTHS = np.linspace(0.0, 20.0, 801)
_RATIOS = _edge_ratio(_WIDTHS)  # strictly decreasing: 2.06 at a perfect step, → 1 when wide


def _smooth(a: np.ndarray) -> np.ndarray:
    """[1 2 1] ⊗ [1 2 1] (gain 16), valid part: shrinks by 2, index i ↔ input i + 1."""
    a = a[:, :, 1:] + a[:, :, :-1]
    a = a[:, :, 1:] + a[:, :, :-1]
    a = a[:, 1:] + a[:, :-1]
    return a[:, 1:] + a[:, :-1]


def _abs_gradient(a: np.ndarray, rows: slice, cols: slice, step: int) -> np.ndarray:
    """|∂x| + |∂y| by central differences at the (rows, cols) lattice of spacing ``step``."""
    r0, c0 = rows.start, cols.start
    right = slice(c0 + 1, cols.stop + 1, step)
    left = slice(c0 - 1, cols.stop - 1, step)
    down = slice(r0 + 1, rows.stop + 1, step)
    up = slice(r0 - 1, rows.stop - 1, step)
    g = np.abs(a[:, rows, right] - a[:, rows, left])
    g += np.abs(a[:, down, cols] - a[:, up, cols])
    return g


def blur(tiles: np.ndarray) -> Measure:
    """Edge width sigma (px) of the sharpest tile, from fine- vs coarse-scale gradients at its edges.

    The ratio does not depend on edge contrast, so it judges focus, not content; smoothing
    the fine scale keeps noise from passing for sharpness; the sharpest tile decides, so a
    shallow depth of field is not blur. The coarse scale runs at half size and the fine
    gradient is read only where a coarse one is, to stay cheap. Texture finer than the coarse
    scale reads as a perfect step (width 0).
    """
    half = tiles[:, 0::2] + tiles[:, 1::2]
    half = half[:, :, 0::2] + half[:, :, 1::2]  # 2x2 box sums: half[i] ↔ tile 2i + ½
    smooth_half = _smooth(half)  # ↔ tile 2i + 2½
    n = smooth_half.shape[1] - 2
    coarse = _abs_gradient(smooth_half, slice(1, 1 + n), slice(1, 1 + n), 1)  # ↔ tile 2i + 4½
    # the fine gradient at tile 2i + 4, i.e. smoothed-tile index 2i + 3
    lattice = slice(3, 3 + 2 * n, 2)
    fine = _abs_gradient(_smooth(tiles), lattice, lattice, 2)
    coarse = coarse.reshape(len(tiles), -1)
    fine = fine.reshape(len(tiles), -1)
    nth = int((1.0 - _EDGE_FRACTION) * (coarse.shape[1] - 1))
    # gains: coarse 4 (box) x 16 x 2 (difference), fine 16 x 2 → ratio = 4 x 2 x raw ratio;
    # an edge must reach 1 level per pixel: a coarse difference of 4 levels, 512 with gain
    threshold = np.maximum(np.partition(coarse, nth, axis=1)[:, nth : nth + 1], 512.0)
    edges = coarse >= threshold
    edge_sums = (coarse * edges).sum(axis=1)
    if not edge_sums.any():  # a flat picture: nothing is out of focus
        return Measure(0.0, 1.0)
    ratios = 8.0 * (fine * edges).sum(axis=1)[edge_sums > 0] / edge_sums[edge_sums > 0]
    width = float(np.interp(-float(ratios.max()), -_RATIOS, _WIDTHS))
    return Measure(width, _falloff(width, _BLUR_HALF, 3.0))


# -- compression ---------------------------------------------------------------------------------

_BLOCKINESS_HALF = 0.30  # boundary gradient 30 % above the interior's scores ½: blocks visible
_MAX_BLOCKINESS = 100.0  # flat blocks with steps between them: as blocky as it gets


def _phase_profile(tiles: np.ndarray) -> np.ndarray:
    """Summed |neighbour difference| at each of the 8 grid phases, across x and y pooled.

    Difference i lies between pixels i and i + 1, so with tile origins on the 8-px grid phase
    7 straddles JPEG block boundaries.
    """
    across_x = np.abs(tiles[:, :, 1:] - tiles[:, :, :-1]).sum(axis=(0, 1))
    across_y = np.abs(tiles[:, 1:] - tiles[:, :-1]).sum(axis=(0, 2))
    both = np.append(across_x + across_y, 0.0)
    return both.reshape(-1, _BLOCK).sum(axis=0)


def compression(tiles: np.ndarray) -> Measure:
    """JPEG blockiness: mean gradient across 8-px block boundaries ÷ inside blocks (1 = none).

    The boundary phase is the strongest one, not assumed 7: a crop or a flip moves the grid.
    """
    profile = _phase_profile(tiles)
    boundary = float(profile.max())
    if boundary <= 0.0:  # a flat picture has no blocks to see
        return Measure(1.0, 1.0)
    interior = (float(profile.sum()) - boundary) / (_BLOCK - 1)
    ratio = boundary / max(interior, boundary / _MAX_BLOCKINESS)
    return Measure(ratio, _falloff(ratio - 1.0, _BLOCKINESS_HALF, 2.0))


# -- saturation ----------------------------------------------------------------------------------

_COLOURFUL_HALF = 30.0  # M that scores ½; Hasler-Süsstrunk call 33 "moderately colourful"


def saturation(view: np.ndarray) -> Measure:
    """Colourfulness M of Hasler & Süsstrunk (2003): spread and mean of opponent chroma."""
    rgb = view.reshape(-1, 3)
    rg = rgb[:, 0] - rgb[:, 1]
    yb = rgb[:, 0] + rgb[:, 1]
    yb *= 0.5
    yb -= rgb[:, 2]
    mean_rg, mean_yb = float(rg.mean()), float(yb.mean())
    rg -= mean_rg
    yb -= mean_yb
    spread = math.sqrt((float(np.einsum("i,i", rg, rg)) + float(np.einsum("i,i", yb, yb))) / rg.size)
    m = spread + 0.3 * math.hypot(mean_rg, mean_yb)
    return Measure(m, 1.0 - _falloff(m, _COLOURFUL_HALF, 2.0))


# -- exposure ------------------------------------------------------------------------------------

_KEY = 0.13  # log-average linear luminance of a well-exposed scene (Kodak set: 0.06..0.16)
# Stops from _KEY that score ½: under-exposure is judged harder, as it buries shadows in noise.
_UNDER_HALF, _OVER_HALF = 1.75, 2.0
_CLIP_HALF = 0.35  # fraction of clipped pixels that halves the score
# How clipped each level is: a ramp over the last 15 levels at either end rather than a hard
# cut, so that noise on a blown sky (which spreads it both ways) does not pass for detail.
_CLIP_WEIGHT = np.clip((np.arange(256) - 240) / 15.0, 0, 1) + np.clip((15 - np.arange(256)) / 15.0, 0, 1)
_LEVELS = np.arange(256) / 255.0
_LINEAR = np.where(_LEVELS <= 0.04045, _LEVELS / 12.92, ((_LEVELS + 0.055) / 1.055) ** 2.4)
_LOG2_LUMINANCE = np.log2(_LINEAR + 0.005)  # + ε: a black pixel is dark, not -∞ stops
_HIGHLIGHT_SHARE = 0.005  # the brightest 0.5 % of the pixels are the highlights headroom reads
_DARKEST = 2.0**-10  # headroom stops counting at 10 stops (a black picture)
_LEAST_UNDER = 0.01  # stops: a picture darker than the mid key keeps the sign, whatever its headroom


def headroom(top_hist: np.ndarray) -> float:
    """Stops between the brightest 0.5 % of the picture (by its brightest channel) and white, >= 0.

    A camera exposes so that the highlights come near white: a picture whose brightest parts
    fall N stops short of white is under-exposed by about N stops. A night scene's lamps or a
    low-key portrait's catch-lights still reach white: no headroom there.
    """
    cumulative = np.cumsum(top_hist)
    level = int(np.searchsorted(cumulative, (1.0 - _HIGHLIGHT_SHARE) * cumulative[-1]))
    return float(-math.log2(max(_LINEAR[min(level, 255)], _DARKEST)))


def exposure(luma_hist: np.ndarray, top_hist: np.ndarray | None = None) -> Measure:
    """Stops between the log-average luminance and a mid key, x crushed/blown pixel fraction.

    Log-average (Reinhard's scene key) in linear light, because exposure errors are stops.
    Under-exposure counts only as far as the highlights have headroom (:func:`headroom`, from
    ``top_hist``, the histogram of each pixel's brightest channel): a dark scene whose lights
    reach white was exposed for them, not too short. Without ``top_hist`` the key alone counts.
    """
    n = float(luma_hist.sum())
    stops = float(luma_hist @ _LOG2_LUMINANCE) / n - math.log2(_KEY)
    if stops < 0 and top_hist is not None:  # still on the dark side, if by as little as _LEAST_UNDER
        stops = -max(min(-stops, headroom(top_hist)), _LEAST_UNDER)
    clipped = float(luma_hist @ _CLIP_WEIGHT) / n
    return Measure(stops, exposure_key(stops) * _falloff(clipped, _CLIP_HALF, 2.0))


def exposure_key(stops: float) -> float:
    """The exposure score's key factor alone: 1 at the mid key, ½ at 1.75 stops under or 2 over.
    The exposure score is this times the clipping factor."""
    return _falloff(-stops, _UNDER_HALF, 3.0) * _falloff(stops, _OVER_HALF, 3.0)
