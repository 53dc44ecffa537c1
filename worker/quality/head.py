"""The trained head: pooled features of the views → overall quality, 0..1 (0.5 means "fair").

Runtime half, numpy only. Two kinds of head read the same input vector: the kernel
regressor :class:`Head` and the network :class:`MlpHead` trained together with the backbone.
The input vector is built by :func:`head_input` from the backbone features of the whole view
and of the first ``crops`` crops (their mean and standard deviation: the typical crop and how
uneven the picture is) and from the measured dimensions (:mod:`worker.quality.dimensions`).
Both kinds predict the BIQ2021 mean opinion score (1..5 rescaled to 0..1, so 0.5 is the
scale's "fair").

Computed in float64 from stored arrays, so a given input gives the same score in every process
(tests check it against a fixture).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Head", "MlpHead", "load_head", "head_input", "measure_inputs", "measure_values", "measure_vector",
           "MEASURE_NAMES"]

#: Side of the whole view, px, for heads whose file does not record one (all heads before 2026-11-27).
LEGACY_WHOLE_SIDE = 224

#: The measured dimensions fed to the head (scores 0..1, then raw values).
MEASURE_NAMES = ("resolution", "noise", "blur", "compression", "saturation", "exposure")


#: Column of the pixel count among the 12 measure values (the first raw value).
_PIXELS = len(MEASURE_NAMES) + MEASURE_NAMES.index("resolution")


def measure_values(scores: dict[str, float], raw: dict[str, float]) -> np.ndarray:
    """The 12 measure values as stored by training: each dimension's score, then its raw value."""
    return np.asarray([scores[n] for n in MEASURE_NAMES] + [raw[n] for n in MEASURE_NAMES], dtype=np.float64)


def measure_inputs(values: np.ndarray) -> np.ndarray:
    """Measure values ``(..., 12)`` → head inputs: the same, with the pixel count as log10."""
    out = np.array(values, dtype=np.float64)
    out[..., _PIXELS] = np.log10(np.maximum(out[..., _PIXELS], 1.0))
    return out.astype(np.float32)


def measure_vector(scores: dict[str, float], raw: dict[str, float]) -> np.ndarray:
    """The 12 head inputs of one picture's measures."""
    return measure_inputs(measure_values(scores, raw))


def head_input(views: np.ndarray, measures: np.ndarray, crops: int, *, use_backbone: bool = True,
               use_measures: bool = True) -> np.ndarray:
    """Input vector(s): ``views`` is ``(..., 1 + k, F)`` (whole view first, crops by detail).

    Works on one picture (``(1 + k, F)``) or a batch (``(n, 1 + k, F)``).
    """
    parts: list[np.ndarray] = []
    if use_backbone:
        parts.append(views[..., 0, :].astype(np.float32))
        if crops:
            picked = views[..., 1:1 + crops, :].astype(np.float32)
            parts += [picked.mean(axis=-2), picked.std(axis=-2)]
    if use_measures:
        parts.append(measures.astype(np.float32))
    return np.concatenate(parts, axis=-1)


@dataclass(frozen=True)
class Head:
    """Standardise, project onto principal components, then kernel ridge regression (RBF).

    ``score = intercept + Σ dual_i · exp(-gamma · |z - support_i|²)`` over the training
    pictures' projected features ``support``: a smooth nearest-neighbours-like regressor that,
    on these features, ranked BIQ2021 better than a linear head or a small network did when
    the head was chosen. The support set is stored as float16, and the result is clipped to 0..1.
    """

    mean: np.ndarray          # (d,) standardisation
    scale: np.ndarray         # (d,)
    components: np.ndarray    # (d, c) principal axes of the standardised training inputs
    centre: np.ndarray        # (c,) their mean after projection
    support: np.ndarray       # (n, c) projected training inputs
    dual: np.ndarray          # (n,)
    gamma: float
    intercept: float
    crops: int
    use_backbone: bool
    use_measures: bool
    whole_side: int = LEGACY_WHOLE_SIDE

    def project(self, x: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(x).astype(np.float64) - self.mean) / self.scale
        return z @ self.components - self.centre

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores for ``(n, d)`` inputs, each in 0..1."""
        p = self.project(x)
        distance = (p * p).sum(axis=1)[:, None] - 2.0 * p @ self.support.T + self._support_norms[None, :]
        return np.clip(np.exp(-self.gamma * np.maximum(distance, 0.0)) @ self.dual + self.intercept, 0.0, 1.0)

    @functools.cached_property
    def _support_norms(self) -> np.ndarray:
        """|support_i|², once per head (cached_property writes past the frozen dataclass)."""
        return (self.support * self.support).sum(axis=1)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, mean=self.mean, scale=self.scale, components=self.components.astype(np.float16),
                            centre=self.centre, support=self.support.astype(np.float16), dual=self.dual,
                            scalars=np.asarray([self.gamma, self.intercept], np.float64), config=_config(self))

    @classmethod
    def load(cls, path: Path) -> Head:
        """Read a saved head; float16 arrays widen to float64 so that saving is lossless afterwards."""
        with np.load(path) as f:
            gamma, intercept = (float(v) for v in f["scalars"])
            return cls(*(f[name].astype(np.float64) for name in ("mean", "scale", "components", "centre",
                                                                  "support", "dual")),
                       gamma, intercept, **_read_config(f["config"]))


@dataclass(frozen=True)
class MlpHead:
    """A one-hidden-layer network: ``w2 · gelu(((x - shift) · scale) @ w1 + b1) + b2``, clipped to 0..1.

    Trained on a GPU together with the backbone (:mod:`worker.quality.training.finetune`); its
    batch normalisation is stored as ``shift`` and ``scale`` (float64), which also turn the
    crops' standard deviation into the sample (n - 1) form it was trained on. ``w1`` is stored
    as float16 and widened on load; every sum runs in float64, so the result is deterministic.
    """

    shift: np.ndarray         # (d,)
    scale: np.ndarray         # (d,)
    w1: np.ndarray            # (d, h)
    b1: np.ndarray            # (h,)
    w2: np.ndarray            # (h,)
    b2: float
    crops: int
    use_backbone: bool = True
    use_measures: bool = False
    whole_side: int = LEGACY_WHOLE_SIDE

    @classmethod
    def from_training(cls, norm: dict[str, np.ndarray], w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: float,
                      crops: int, features_per_view: int) -> MlpHead:
        """The runtime form of a head trained by :mod:`worker.quality.training.finetune`.

        ``norm`` is its batch normalisation (``weight``, ``bias``, ``running_mean``,
        ``running_var``), folded here into ``shift`` and ``scale``. Training pooled the crops'
        standard deviation in the sample (n - 1) form, :func:`head_input` in the population
        form, so those columns are rescaled by sqrt(k / (k - 1)) to read the same.
        """
        scale = norm["weight"] / np.sqrt(norm["running_var"] + 1e-5)
        shift = norm["running_mean"] - norm["bias"] / scale
        if crops > 1:
            std_columns = slice(2 * features_per_view, 3 * features_per_view)
            scale[std_columns] *= math.sqrt(crops / (crops - 1))
            shift[std_columns] /= math.sqrt(crops / (crops - 1))
        return cls(shift, scale, w1, b1, w2, float(b2), crops)

    def with_views(self, crops: int, whole_side: int) -> MlpHead:
        """The same network reading ``crops`` crops and a ``whole_side`` whole view.

        It was trained on a fixed crop count and whole-view side, but reads more the same way:
        the crops' mean and spread are summaries whatever their number, and a larger whole view
        shows more detail (the model card has the hold-out figures). The mean and spread
        columns keep their trained scale (rescaling the spread for the new count did worse);
        only what the head reads changes.
        """
        return dataclasses.replace(self, crops=crops, whole_side=whole_side)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores for ``(n, d)`` inputs, each in 0..1."""
        hidden = ((np.atleast_2d(x).astype(np.float64) - self.shift) * self.scale) @ self.w1 + self.b1
        hidden = 0.5 * hidden * (1.0 + _erf(hidden / math.sqrt(2.0)).astype(np.float64))  # exact GELU, as trained
        return np.clip(hidden @ self.w2 + self.b2, 0.0, 1.0)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, kind=np.asarray("mlp"), shift=self.shift, scale=self.scale,
                            w1=self.w1.astype(np.float16), b1=self.b1, w2=self.w2,
                            scalars=np.asarray([self.b2], np.float64), config=_config(self))

    @classmethod
    def load(cls, path: Path) -> MlpHead:
        with np.load(path) as f:
            return cls(*(f[name].astype(np.float64) for name in ("shift", "scale", "w1", "b1", "w2")),
                       float(f["scalars"][0]), **_read_config(f["config"]))


def _config(head: Head | MlpHead) -> np.ndarray:
    """What a head reads, as stored: crops, uses backbone, uses measures, whole view side."""
    return np.asarray([head.crops, head.use_backbone, head.use_measures, head.whole_side], np.int32)


def _read_config(config: np.ndarray) -> dict[str, int | bool]:
    """The stored config; files written before whole views could be larger lack the side."""
    crops, use_backbone, use_measures, *rest = (int(v) for v in config)
    return {"crops": crops, "use_backbone": bool(use_backbone), "use_measures": bool(use_measures),
            "whole_side": rest[0] if rest else LEGACY_WHOLE_SIDE}


def load_head(path: Path) -> Head | MlpHead:
    """Either kind of head, by the ``kind`` its file records (kernel heads predate the field)."""
    with np.load(path) as f:
        kind = str(f["kind"]) if "kind" in f.files else "kernel"
    return MlpHead.load(path) if kind == "mlp" else Head.load(path)


#: math.erf elementwise (numpy has no erf; scipy is not a runtime dependency).
_erf = np.frompyfunc(math.erf, 1, 1)
