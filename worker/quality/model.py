"""The shipped learned model: one backbone and its heads inside the package, loaded once per process.

``model/`` holds ``backbone.onnx`` (MobileNetV2 fine-tuned on BIQ2021, see
:mod:`worker.quality.backbone`), the heads (see :mod:`worker.quality.head`) and
``MODEL_CARD.md``. Nothing is fetched at run time; a missing or damaged file is a packaging
error and fails loudly on first use.

Two *layouts* share the backbone, because no single one is both as accurate and as fast as
people want (the model card has the figures):

* ``accurate`` (the default) looks at the whole view and the three most detailed
  native-resolution crops, and averages two heads: the network trained with the backbone and a
  kernel regressor that also reads the measures;
* ``fast`` looks at the whole view alone (one forward pass instead of four) through a kernel
  regressor: for bulk audits on CPUs, at some cost in agreement with people.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from worker.quality.backbone import Backbone
from worker.quality.head import Head, MlpHead, head_input, load_head, measure_vector
from worker.quality.views import model_views

__all__ = ["DEFAULT_LAYOUT", "LAYOUTS", "MODEL_DIR", "MODEL_FILES", "QualityModel", "check_layout", "shipped_model"]

MODEL_DIR = Path(__file__).with_name("model")
#: Layout name → the head files whose predictions are averaged (each records its crop count).
LAYOUTS: dict[str, tuple[str, ...]] = {"accurate": ("head.npz", "head-mlp.npz"), "fast": ("head-fast.npz",)}
DEFAULT_LAYOUT = "accurate"
#: Every weight file the layouts need, the backbone first.
MODEL_FILES = ("backbone.onnx", *sorted({name for names in LAYOUTS.values() for name in names}))


class QualityModel:
    """Views of a decoded picture → the learned overall score (the mean of its heads)."""

    def __init__(self, backbone: Backbone, heads: tuple[Head | MlpHead, ...]) -> None:
        self.backbone = backbone
        self.heads = heads
        #: Crops the views must include: the most any head reads.
        self.crops = max(head.crops for head in heads)
        sides = {head.whole_side for head in heads if head.use_backbone}
        if len(sides) > 1:  # a packaging error: one forward pass of the whole view serves every head
            raise ValueError(f"the heads read whole views of different sides: {sorted(sides)}")
        #: Side of the whole view, px (the heads record it).
        self.whole_side = sides.pop() if sides else 0

    @classmethod
    def load(cls, directory: Path = MODEL_DIR, head_files: tuple[str, ...] = LAYOUTS[DEFAULT_LAYOUT],
             backbone: Backbone | None = None) -> QualityModel:
        return cls(backbone or Backbone(directory / "backbone.onnx"),
                   tuple(load_head(directory / name) for name in head_files))

    def view_features(self, img: Image.Image) -> np.ndarray:
        """Backbone features ``(1 + k, F)`` of the whole view and the ``k`` most detailed crops."""
        if not any(head.use_backbone for head in self.heads):
            return np.zeros((1 + self.crops, 1), np.float32)
        whole, crops = model_views(img, self.crops, self.whole_side)
        features = self.backbone.features(whole[None])
        return np.concatenate([features, self.backbone.features(crops)]) if len(crops) else features

    def predict(self, features: np.ndarray, measures: np.ndarray) -> float:
        """The mean of the heads' 0..1 scores, from view features and the 12 measure inputs."""
        return float(np.mean([head.predict(head_input(features, measures, head.crops, use_backbone=head.use_backbone,
                                                      use_measures=head.use_measures)[None])[0]
                              for head in self.heads]))

    def overall(self, img: Image.Image, scores: dict[str, float], raw: dict[str, float]) -> float:
        """The learned 0..1 score of ``img`` given its measured dimensions (scores and raw values)."""
        return self.predict(self.view_features(img), measure_vector(scores, raw))


def check_layout(layout: str) -> str:
    """``layout`` if the shipped model has it; otherwise a ValueError that lists those it has."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown quality model {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    return layout


@functools.cache
def shipped_model(layout: str = DEFAULT_LAYOUT) -> QualityModel:
    """The packaged model in one layout, loaded on first use and kept for the life of the process."""
    return QualityModel.load(MODEL_DIR, LAYOUTS[check_layout(layout)], _shipped_backbone())


@functools.cache
def _shipped_backbone() -> Backbone:
    """One backbone per process, whichever layouts it uses."""
    return Backbone(MODEL_DIR / "backbone.onnx")
