"""The shipped learned model: packaged, deterministic, torch-free, and guarded by a fixture."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.quality.conftest import demo_photo, encode
from tests.quality.model_fixture import FIXTURE, current, model_hashes
from worker.demo import DEMO_IMAGES
from worker.demo.build import read_demo_image
from worker.quality import score
from worker.quality.head import MlpHead, load_head
from worker.quality.model import LAYOUTS, MODEL_DIR, MODEL_FILES, QualityModel, shipped_model

MAX_MODEL_BYTES = 25 * 1024 * 1024


def test_model_files_ship_inside_the_package_under_25_mb() -> None:
    files = [p for p in MODEL_DIR.iterdir() if p.is_file()]
    assert {"MODEL_CARD.md", *MODEL_FILES} <= {p.name for p in files}
    assert sum(p.stat().st_size for p in files) <= MAX_MODEL_BYTES


@pytest.mark.slow
def test_a_changed_model_file_must_change_the_fixture_on_purpose() -> None:
    expected = json.loads(FIXTURE.read_text())
    assert model_hashes() == expected["model_sha256"], (
        "the model files changed: if on purpose, regenerate the fixture with "
        "`python -m tests.quality.model_fixture --write` and commit it with the model")
    assert current()["overall"] == expected["overall"]


_SCORE_IN_CHILD = (
    "import json, sys; from worker.quality import score; from worker.demo.build import read_demo_image; "
    "from worker.demo import DEMO_IMAGES; "
    "print(json.dumps([score(read_demo_image(n)).overall for n in DEMO_IMAGES])); "
    "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))))")


@pytest.mark.slow
def test_same_bytes_same_score_in_every_process_and_no_torch_at_run_time() -> None:
    here = [score(read_demo_image(name)).overall for name in DEMO_IMAGES]
    for _ in range(2):
        child = subprocess.run([sys.executable, "-c", _SCORE_IN_CHILD], capture_output=True, text=True, check=True)
        scores, torch_modules = (json.loads(line) for line in child.stdout.splitlines())
        assert scores == here
        assert torch_modules == []


def test_the_model_is_loaded_once_per_process_and_its_layouts_share_one_backbone() -> None:
    assert shipped_model() is shipped_model()
    assert shipped_model("fast").backbone is shipped_model("accurate").backbone


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_shipped_head_survives_a_save_and_load_unchanged(tmp_path, layout: str) -> None:
    for head in shipped_model(layout).heads:
        head.save(tmp_path / "head.npz")
        again = load_head(tmp_path / "head.npz")
        assert type(again) is type(head)
        width = head.shift.shape[0] if isinstance(head, MlpHead) else head.mean.shape[0]
        x = np.random.default_rng(3).normal(size=(4, width))
        np.testing.assert_array_equal(head.predict(x), again.predict(x))
        assert ((head.predict(x) >= 0.0) & (head.predict(x) <= 1.0)).all()


def test_each_layout_shows_the_network_the_views_its_heads_read(monkeypatch) -> None:
    """fast: one whole view; accurate: a whole view and its native crops, at the sides the heads record."""
    img = demo_photo("kodim23-parrots.jpg")
    backbone = shipped_model().backbone
    seen: list[tuple[int, ...]] = []
    real = type(backbone).features
    monkeypatch.setattr(type(backbone), "features", lambda self, views: seen.append(views.shape) or real(self, views))
    for layout in ("fast", "accurate"):
        seen.clear()
        model = shipped_model(layout)
        features = model.view_features(img)
        whole = model.whole_side
        assert features.shape[0] == 1 + model.crops
        assert seen[0] == (1, whole, whole, 3)
        assert sum(shape[0] for shape in seen) == 1 + model.crops
        assert all(shape[1:] == (224, 224, 3) for shape in seen[1:])
    assert shipped_model("fast").crops == 0 < shipped_model("accurate").crops


def test_heads_that_read_different_whole_views_cannot_share_a_model() -> None:
    fast = shipped_model("fast").heads[0]
    larger = dataclasses.replace(fast, whole_side=fast.whole_side + 32)
    with pytest.raises(ValueError, match="whole views of different sides"):
        QualityModel(shipped_model().backbone, (fast, larger))
    assert QualityModel(shipped_model().backbone, (larger,)).whole_side == fast.whole_side + 32


def test_layouts_change_the_overall_score_but_not_the_dimensions() -> None:
    data = read_demo_image(DEMO_IMAGES[0])
    accurate, fast = score(data, "accurate"), score(data, "fast")
    assert accurate.overall != fast.overall
    assert dict(accurate.dimensions) == dict(fast.dimensions)
    assert score(data).overall == accurate.overall  # the default


def test_an_unknown_layout_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown quality model 'fastest'; choose one of: accurate, fast"):
        score(read_demo_image(DEMO_IMAGES[0]), "fastest")


def test_scores_are_calibrated_fair_at_one_half() -> None:
    """Sharp demo photos read well above "fair"; heavy blur reads below it."""
    from PIL import ImageFilter

    img = demo_photo("kodim23-parrots.jpg")
    assert score(encode(img)).overall > 0.7
    assert score(encode(img.filter(ImageFilter.GaussianBlur(6)))).overall < 0.5


@pytest.mark.parametrize("size", [(16, 16), (100, 60), (223, 500)])
def test_pictures_smaller_than_a_crop_score_in_range(size: tuple[int, int]) -> None:
    img = demo_photo("kodim23-parrots.jpg").resize(size)
    found = score(encode(img))
    assert 0.0 <= found.overall <= 1.0


def test_a_large_jpeg_is_scored_at_the_analysis_scale_with_its_full_resolution() -> None:
    big = demo_photo("kodim23-parrots.jpg").resize((3072, 2048), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=92)
    found = score(buffer.getvalue())
    assert found.measurements["resolution"] == 3072 * 2048
    assert found.dimensions["resolution"] == 1.0
    assert 0.0 <= found.overall <= 1.0
