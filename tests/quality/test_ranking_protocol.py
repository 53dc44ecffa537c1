"""Issue 17's measurement protocol and ranking heads, on small made-up data (BIQ2021 not needed):
the leave-one-subset-out folds, the ss02 scene grouping, the pairs and the pairwise loss."""

from __future__ import annotations

import json

import numpy as np
import pytest

from worker.demo.build import read_demo_image
from worker.quality import score
from worker.quality.model import MODEL_DIR, shipped_model
from worker.quality.training.extract import image_features
from worker.quality.training.loso import (
    Split,
    file_number,
    overall_from_measures,
    shipped_figures,
    subset_of,
    within_subsets,
)
from worker.quality.training.ranking import (
    group_pairs,
    ladder_pairs,
    pairwise_accuracy,
    pairwise_difference_loss,
    pairwise_hinge_loss,
    pairwise_logistic_loss,
)
from worker.quality.training.scenes import (
    TAPPED_CHANNELS,
    content_descriptor,
    group_scenes,
    group_sizes,
    null_threshold,
    pairs_within,
)
from worker.quality.training.train import Features

NAMES = ["ss01 (1).jpg", "ss02 (7).jpg", "ss03 (2).jpg", "ss02 (8).JPG", "ss01 (3).jpg", "ss03 (9).jpg",
         "ss02 (10).jpg", "ss01 (11).jpg", "ss03 (12).jpg"]


def test_subsets_and_numbers_come_from_file_names() -> None:
    assert list(subset_of(NAMES[:4])) == ["ss01", "ss02", "ss03", "ss02"]
    assert file_number("ss02 (1014).JPG") == 1014
    with pytest.raises(ValueError):
        subset_of(["kodim01.png"])


def test_a_loso_fold_fits_on_the_other_subsets_train_photos_and_scores_the_held_ones() -> None:
    split = Split(subset_of(NAMES), n_train=6)
    for held in ("ss01", "ss02", "ss03"):
        fitting, scored = split.fold(held)
        assert set(fitting) <= set(range(6)) and not (split.subsets[fitting] == held).any()
        assert set(scored) <= set(range(6, 9)) and (split.subsets[scored] == held).all() and len(scored) == 1
        fitting_val, scored_val = split.fold(held, "train")  # LOSO-val never reads a test row
        assert list(fitting_val) == list(fitting) and set(scored_val) <= set(range(6))
        assert (split.subsets[scored_val] == held).all() and len(scored_val) == 2
    with pytest.raises(ValueError):
        split.fold("ss04")


def test_within_subsets_reports_the_whole_and_each_subset() -> None:
    subsets = np.asarray(["ss01"] * 4 + ["ss02"] * 4)
    truth = np.asarray([1, 2, 3, 4, 1, 2, 3, 4], float)
    pred = np.asarray([1, 2, 3, 4, 4, 3, 2, 1], float) + np.asarray([0] * 4 + [10] * 4)
    figures = within_subsets(pred, truth, subsets)
    assert figures["ss01"] == pytest.approx(1.0) and figures["ss02"] == pytest.approx(-1.0)
    assert "ss03" not in figures and -1 < figures["all"] < 1


def test_figures_from_cached_features_are_what_quality_score_answers(tmp_path) -> None:
    """The path loso.py takes (cached features, shipped heads, overall_from_measures) gives
    quality.score's overall for a bundled photo, in both layouts."""
    photos = [read_demo_image(name) for name in ("kodim23-parrots.jpg", "kodim08-houses.jpg", "kodim04-portrait.jpg")]
    extracted = [image_features(shipped_model().backbone, photo, (224,), 3) for photo in photos]
    np.save(tmp_path / "whole-224.npy", np.stack([wholes[224] for wholes, _, _ in extracted]))
    np.save(tmp_path / "crops.npy", np.stack([crops for _, crops, _ in extracted]))
    np.save(tmp_path / "measures.npy", np.stack([measured for _, _, measured in extracted]))
    np.save(tmp_path / "mos.npy", np.asarray([0.5, 0.6, 0.7], np.float32))
    names = ["ss01 (1).jpg", "ss02 (1).jpg", "ss03 (1).jpg"]
    (tmp_path / "index.json").write_text(json.dumps({"train": 0, "test": 3, "whole_sides": [224], "crops": 3,
                                                     "names": names}))
    figures = shipped_figures(Features.load(tmp_path), Split(subset_of(names), 0), MODEL_DIR)
    for layout in ("accurate", "fast"):
        expected = [score(photo, layout).overall for photo in photos]
        np.testing.assert_allclose(figures[layout]["_overall"], expected, atol=2e-6)
    assert overall_from_measures(np.asarray([1.0]), extracted[0][2][None])[0] <= 1.0


def _scenes(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """60 photos in file order: runs of 1-4 shots of one random content, plus a little noise."""
    rng = np.random.default_rng(seed)
    truth, vectors = [], []
    group = 0
    while len(truth) < 60:
        centre = rng.normal(size=32)
        for _ in range(int(rng.integers(1, 5))):
            truth.append(group)
            vectors.append(centre + 0.15 * rng.normal(size=32))
        group += 1
    x = np.asarray(vectors)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.arange(1, len(truth) + 1) * 2, np.asarray(truth)  # file numbers with gaps (test photos)


def test_scene_grouping_recovers_runs_of_like_content_in_file_order() -> None:
    x, numbers, truth = _scenes()
    threshold = null_threshold(x, numbers, far=10, quantile=0.999)
    labels = group_scenes(x, numbers, threshold, window=6)
    # same partition as the truth (labels may be numbered differently)
    assert len(set(zip(labels, truth, strict=True))) == len(set(labels)) == len(set(truth))
    assert labels[0] == 0 and (np.diff(labels[np.argsort(numbers)]) >= 0).all()  # numbered in file order
    assert sum(size * count for size, count in group_sizes(labels).items()) == len(labels)


def test_like_content_far_apart_in_file_order_is_not_linked() -> None:
    x, numbers, _ = _scenes()
    x = np.concatenate([x, x[:1]])  # the first photo's twin, at the end of the file order
    numbers = np.concatenate([numbers, [10_000]])
    labels = group_scenes(x, numbers, 0.9, window=6)
    assert labels[-1] != labels[0] and (labels == labels[-1]).sum() == 1


def test_pairs_within_a_window_follow_file_numbers_not_rows() -> None:
    numbers = np.asarray([5, 1, 2, 9, 3])
    i, j = pairs_within(numbers, 2)
    found = {tuple(sorted((int(numbers[a]), int(numbers[b])))) for a, b in zip(i, j, strict=True)}
    assert found == {(1, 2), (1, 3), (2, 3), (3, 5)}


def test_the_content_descriptor_reads_the_last_layers_means() -> None:
    width = 2 * sum(TAPPED_CHANNELS)
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(5, width))
    b = a.copy()
    b[:, :width - 2 * 1280] += rng.uniform(size=(5, width - 2 * 1280))  # earlier layers
    b[:, width - 1280:] += 1.0  # the last layer's std
    np.testing.assert_allclose(content_descriptor(a), content_descriptor(b))
    np.testing.assert_allclose(np.linalg.norm(content_descriptor(a), axis=1), 1.0)


def test_tapped_channels_match_the_training_backbone() -> None:
    backbone = pytest.importorskip("worker.quality.training.backbone")
    assert backbone.TAPPED_CHANNELS == TAPPED_CHANNELS


def test_group_pairs_put_the_better_photo_first_and_skip_close_scores() -> None:
    labels = np.asarray([0, 0, 0, 1, 1, 2])
    mos = np.asarray([0.2, 0.9, 0.5, 0.40, 0.42, 0.1])
    better, worse = group_pairs(labels, mos, min_gap=0.05)
    assert sorted(zip(better.tolist(), worse.tolist(), strict=True)) == [(1, 0), (1, 2), (2, 0)]


def test_ladder_pairs_rank_less_damage_higher_within_one_photo_and_kind() -> None:
    source = np.asarray([7, 7, 7, 7, 8])
    kind = np.asarray([0, 0, 0, 1, 0])
    level = np.asarray([0.0, 0.5, 1.0, 0.5, 0.5])
    better, worse = ladder_pairs(source, kind, level, min_step=0.5)
    assert sorted(zip(better.tolist(), worse.tolist(), strict=True)) == [(0, 1), (0, 2), (1, 2)]


def test_pairwise_accuracy_counts_ties_as_half() -> None:
    pred = np.asarray([3.0, 2.0, 2.0, 5.0])
    assert pairwise_accuracy(pred, np.asarray([0, 1, 0]), np.asarray([1, 2, 3])) == pytest.approx(0.5)


def test_the_pairwise_loss_orders_a_toy_problem() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(40, 3)).astype(np.float32))
    truth = x @ torch.tensor([1.0, -2.0, 0.5])
    better, worse = (torch.from_numpy(a) for a in group_pairs(np.zeros(40), truth.numpy(), 0.1))
    w = torch.zeros(3, requires_grad=True)
    assert float(pairwise_logistic_loss(x @ w, better, worse, tau=1.0).detach()) == pytest.approx(np.log(2), abs=1e-6)
    optimiser = torch.optim.SGD([w], lr=0.5)
    for _ in range(200):
        optimiser.zero_grad()
        pairwise_logistic_loss(x @ w, better, worse, tau=1.0).backward()
        optimiser.step()
    assert pairwise_accuracy((x @ w).detach().numpy(), better.numpy(), worse.numpy()) > 0.97
    assert float(pairwise_logistic_loss(x @ w, better[:0], worse[:0]).detach()) == 0.0


def test_the_difference_and_hinge_losses_are_zero_exactly_when_pairs_are_right() -> None:
    torch = pytest.importorskip("torch")
    scores = torch.tensor([0.9, 0.5, 0.2])
    better, worse = torch.tensor([0, 1]), torch.tensor([1, 2])
    assert float(pairwise_difference_loss(scores, better, worse, torch.tensor([0.4, 0.3]))) == pytest.approx(0.0)
    assert float(pairwise_difference_loss(scores, better, worse, torch.tensor([0.2, 0.3]))) == pytest.approx(0.02)
    assert float(pairwise_hinge_loss(scores, better, worse, 0.25)) == pytest.approx(0.0)
    assert float(pairwise_hinge_loss(scores, worse, better, 0.1)) == pytest.approx((0.5 + 0.4) / 2)
    assert float(pairwise_hinge_loss(scores, better[:0], worse[:0], 0.1)) == 0.0
