"""The head fitting that ``make train`` runs, on synthetic data (BIQ2021 is not needed here)."""

from __future__ import annotations

import numpy as np

from worker.quality.head import Head, head_input
from worker.quality.training.fit import fit_head, plcc, srcc


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs with a few latent factors (as features are), and a smooth non-linear target of them."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 4))
    mixing = np.random.default_rng(99).normal(size=(4, 40))
    x = latent @ mixing + 0.1 * rng.normal(size=(n, 40))
    y = 1 / (1 + np.exp(-(latent[:, 0] + 0.5 * latent[:, 1] ** 2 - 0.5)))
    return x, y


def test_the_fitted_head_ranks_unseen_inputs_like_the_truth(tmp_path) -> None:
    x, y = _data(1500, 0)
    head = fit_head(x, y, crops=0, use_backbone=False, use_measures=True, components=16, alpha=0.3)
    x_new, y_new = _data(300, 1)
    predicted = head.predict(x_new)
    assert srcc(predicted, y_new) > 0.8
    assert plcc(predicted, y_new) > 0.8
    head.save(tmp_path / "h.npz")
    np.testing.assert_array_equal(Head.load(tmp_path / "h.npz").predict(x_new), predicted)


def test_fitting_is_deterministic() -> None:
    x, y = _data(400, 2)
    a = fit_head(x, y, crops=0, use_backbone=False, use_measures=True, components=8)
    b = fit_head(x, y, crops=0, use_backbone=False, use_measures=True, components=8)
    np.testing.assert_array_equal(a.predict(x[:50]), b.predict(x[:50]))


def test_head_input_pools_the_crops_and_appends_the_measures() -> None:
    views = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)  # 2 pictures, whole + 3 crops, F=3
    measures = np.ones((2, 12), np.float32)
    x = head_input(views, measures, crops=2)
    assert x.shape == (2, 3 + 3 + 3 + 12)
    np.testing.assert_array_equal(x[0, :3], views[0, 0])
    np.testing.assert_array_equal(x[0, 3:6], views[0, 1:3].mean(axis=0))
    assert head_input(views, measures, crops=0, use_measures=False).shape == (2, 3)
