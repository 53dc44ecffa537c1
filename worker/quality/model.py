"""The shipped learned model: backbone + head files inside the package, loaded once per process.

``model/`` holds ``backbone.onnx`` (MobileNetV2 features, see :mod:`worker.quality.backbone`),
``head.npz`` (see :mod:`worker.quality.head`) and ``MODEL_CARD.md``. Nothing is fetched at run
time; a missing or damaged file is a packaging error and fails loudly on first use.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from worker.quality.backbone import Backbone
from worker.quality.head import Head, head_input, measure_vector
from worker.quality.views import model_views

__all__ = ["MODEL_DIR", "QualityModel", "shipped_model"]

MODEL_DIR = Path(__file__).with_name("model")


class QualityModel:
    """Views of a decoded picture → the learned overall score."""

    def __init__(self, backbone: Backbone, head: Head) -> None:
        self.backbone = backbone
        self.head = head

    @classmethod
    def load(cls, directory: Path = MODEL_DIR, head_file: str = "head.npz") -> QualityModel:
        return cls(Backbone(directory / "backbone.onnx"), Head.load(directory / head_file))

    def view_features(self, img: Image.Image, crop_count: int | None = None) -> np.ndarray:
        """Backbone features ``(1 + k, F)`` of the whole view and the ``k`` most detailed crops."""
        k = self.head.crops if crop_count is None else crop_count
        if not self.head.use_backbone:
            return np.zeros((1 + k, 1), np.float32)
        return self.backbone.features(model_views(img, k))

    def overall(self, img: Image.Image, scores: dict[str, float], raw: dict[str, float]) -> float:
        """The learned 0..1 score of ``img`` given the first scorer's measures of it."""
        features = self.view_features(img)
        x = head_input(features, measure_vector(scores, raw), self.head.crops,
                       use_backbone=self.head.use_backbone, use_measures=self.head.use_measures)
        return float(self.head.predict(x[None])[0])


@functools.cache
def shipped_model() -> QualityModel:
    """The packaged model, loaded on first use and kept for the life of the process."""
    return QualityModel.load()
