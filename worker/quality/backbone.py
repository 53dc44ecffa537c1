"""The image network, run with onnxruntime: uint8 views in, pooled multi-level features out.

The graph (``model/backbone.onnx``) is MobileNetV2 with ImageNet weights, exported once by
:mod:`worker.quality.training.backbone`; it normalises its input itself. One intra-op thread:
the figures the project promises are per core, a server scores many images in parallel
processes rather than one image on many threads, and one thread keeps the sums in a fixed
order, so the same views give the same features in every process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["Backbone"]


class Backbone:
    """A loaded feature extractor; build once per process (loading parses and plans the whole graph)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime  # deferred: a process that never scores never pays for it

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def features(self, views: np.ndarray) -> np.ndarray:
        """``(n, H, W, 3)`` uint8 RGB → ``(n, F)`` float32 features."""
        batch = np.ascontiguousarray(views.transpose(0, 3, 1, 2), dtype=np.float32)
        return self._session.run(None, {self._input: batch})[0]
