"""Fit the head on extracted BIQ2021 features (see :mod:`worker.quality.training.extract`).

Training-time only (scikit-learn). Standardise, keep ``components`` principal components, fit
an RBF kernel ridge regression. Hyper-parameters (``train.KERNEL``) were chosen on the train
photos fine-tuning held out (:func:`holdout_split`), fitted on the rest; the test split is never
looked at while fitting. Deterministic: PCA's randomised solver gets a fixed seed.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.kernel_ridge import KernelRidge

from worker.quality.head import LEGACY_WHOLE_SIDE, Head

#: Train photos held out from fitting, to choose settings without looking at the test split;
#: fine-tuning holds out the same ones.
HOLDOUT, HOLDOUT_SEED = 1000, 2021


def holdout_split(n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out rows, fitting rows) of ``n_train`` train photos: HOLDOUT of them (at most a fifth)."""
    order = np.random.RandomState(HOLDOUT_SEED).permutation(n_train)
    held = min(HOLDOUT, n_train // 5)
    return order[:held], order[held:]


def srcc(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(stats.spearmanr(pred, truth).statistic)


def plcc(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(stats.pearsonr(pred, truth).statistic)


def fit_head(x: np.ndarray, y: np.ndarray, *, crops: int, use_backbone: bool, use_measures: bool,
             whole_side: int = LEGACY_WHOLE_SIDE, components: int = 256, alpha: float = 0.3,
             gamma_scale: float = 1.0, seed: int = 2021) -> Head:
    """A :class:`Head` fitted on inputs ``x`` (rows from :func:`worker.quality.head.head_input`).

    ``gamma = gamma_scale / d`` with ``d`` the input width: standardised inputs have squared
    distances of order ``d``, so this keeps the kernel's reach comparable across variants.
    """
    x = x.astype(np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    pca = PCA(min(components, z.shape[1]), random_state=seed, svd_solver="randomized" if z.shape[1] > components
              else "full").fit(z)
    # Store what the runtime will use (float16), and fit on exactly that.
    axes = pca.components_.T.astype(np.float16).astype(np.float64)
    centre = pca.mean_ @ axes
    support = (z @ axes - centre).astype(np.float16).astype(np.float64)
    gamma = gamma_scale / x.shape[1]
    intercept = float(y.mean())
    ridge = KernelRidge(alpha=alpha, kernel="rbf", gamma=gamma).fit(support, y - intercept)
    return Head(mean, scale, axes, centre, support, np.asarray(ridge.dual_coef_, np.float64).ravel(), gamma,
                intercept, crops, use_backbone, use_measures, whole_side)
