"""The CPU half of ``make train``: extraction reads the runtime's views, and fitting never sees
the rows it is scored on. BIQ2021 itself is not needed: a bundled photo and small arrays stand in."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.quality.conftest import demo_photo
from worker.demo.build import read_demo_image
from worker.quality.decode import decode_scaled
from worker.quality.head import head_input, measure_inputs
from worker.quality.model import shipped_model
from worker.quality.training.extract import image_features
from worker.quality.training.fit import HOLDOUT, holdout_split
from worker.quality.training.train import SHIPPED_VIEWS, Features, Views, trained_whole_side
from worker.quality.training.train import main as train_main
from worker.quality.views import ANALYSIS_SHORT_SIDE, crop_boxes, crops, whole_view

PHOTO = "kodim23-parrots.jpg"


def test_extraction_computes_the_views_the_runtime_scores() -> None:
    backbone = shipped_model().backbone
    wholes, crop_features, measured = image_features(backbone, read_demo_image(PHOTO), (224, 256), 3)
    img, _ = decode_scaled(read_demo_image(PHOTO), ANALYSIS_SHORT_SIDE)
    for side in (224, 256):
        np.testing.assert_array_equal(wholes[side], backbone.features(whole_view(img, side)[None])[0])
    np.testing.assert_array_equal(crop_features, backbone.features(crops(img, crop_boxes(img)[:3])))
    assert measured.shape == (12,)
    assert not np.array_equal(wholes[224], wholes[256])
    assert img.size == demo_photo(PHOTO).size


def _features(tmp_path, n_train: int = 20, n_test: int = 6, crops_kept: int = 3) -> Features:
    rng = np.random.default_rng(1)
    n = n_train + n_test
    for side in (224, 320):
        np.save(tmp_path / f"whole-{side}.npy", np.full((n, 4), side, np.float16))
    np.save(tmp_path / "crops.npy", rng.normal(size=(n, crops_kept, 4)).astype(np.float16))
    np.save(tmp_path / "measures.npy", rng.uniform(1, 2, (n, 12)).astype(np.float32))
    np.save(tmp_path / "mos.npy", rng.uniform(size=n).astype(np.float32))
    (tmp_path / "index.json").write_text(json.dumps({"train": n_train, "test": n_test, "whole_sides": [224, 320],
                                                     "crops": crops_kept, "names": [f"{i}.jpg" for i in range(n)]}))
    return Features.load(tmp_path)


def test_the_holdout_split_never_reads_test_rows_and_matches_fine_tuning(tmp_path) -> None:
    features = _features(tmp_path)
    fitting, scored = features.split(holdout=False)
    assert list(fitting) == list(range(20)) and list(scored) == list(range(20, 26))
    fitting, held = features.split(holdout=True)
    assert len(held) == 4 and not set(fitting) & set(held) and set(fitting) | set(held) == set(range(20))
    assert sorted(held) == sorted(holdout_split(20)[0])  # the photos fine-tuning held out
    assert len(holdout_split(10_000)[0]) == HOLDOUT


def test_a_head_reads_the_whole_view_of_its_side_and_its_first_crops(tmp_path) -> None:
    features = _features(tmp_path)
    rows = np.asarray([0, 5, 21])
    x = features.head_input(rows, 2, 320, use_backbone=True, use_measures=True)
    views = np.concatenate([np.full((3, 1, 4), 320, np.float32), features.crops[rows, :2].astype(np.float32)], axis=1)
    np.testing.assert_array_equal(x, head_input(views, measure_inputs(features.measures[rows]), 2))
    measures_only = features.head_input(rows, 0, 0, use_backbone=False, use_measures=True)
    np.testing.assert_array_equal(measures_only, measure_inputs(features.measures[rows]))
    with pytest.raises(KeyError):
        features.head_input(rows, 2, 256, use_backbone=True, use_measures=True)  # a side never extracted


def test_views_name_every_side_to_extract_and_what_each_kernel_head_reads() -> None:
    views = Views(accurate_crops=7, accurate_whole_side=320, fast_whole_side=256)
    assert views.whole_sides == [256, 320]
    heads = views.kernel_heads()
    assert heads["head.npz"] == (7, 320, True, True) and heads["head-fast.npz"] == (0, 256, True, True)
    assert heads["head-backbone-only.npz"] == (7, 320, True, False)
    assert SHIPPED_VIEWS.whole_sides == [224]
    shipped = {layout: shipped_model(layout) for layout in ("accurate", "fast")}
    assert (shipped["accurate"].crops, shipped["accurate"].whole_side) == (SHIPPED_VIEWS.accurate_crops,
                                                                          SHIPPED_VIEWS.accurate_whole_side)
    assert shipped["fast"].whole_side == SHIPPED_VIEWS.fast_whole_side


def test_the_accurate_whole_side_defaults_to_the_side_the_network_head_was_trained_at(tmp_path) -> None:
    assert trained_whole_side(None) == shipped_model("accurate").whole_side  # the CPU route: the shipped head
    run = tmp_path / "finetune"
    run.mkdir()
    (run / "finetune-report.json").write_text(json.dumps({"whole_side": 320, "layouts": {}}))
    assert trained_whole_side(run) == 320
    (run / "finetune-report.json").write_text(json.dumps({"layouts": {}}))  # a run from before --whole-side
    assert trained_whole_side(run) == 224


def test_train_refuses_a_finetuned_folder_without_its_report(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["train", "--biq", str(tmp_path / "BIQ2021"), "--finetuned", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"lacks finetune-report\.json"):
        train_main()
