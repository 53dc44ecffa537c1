"""Tests for the bundled demo bucket builder (worker.demo.build)."""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pytest
from PIL import Image

from worker.demo import DEMO_IMAGES, KINDS, build_demo_bucket
from worker.demo.build import SMALL_WIDTH, main, read_demo_image

EXPECTED_KINDS = {"blur", "noise", "jpeg", "dark", "bright", "grey", "small"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, list[str]]:
    root = tmp_path_factory.mktemp("store")
    keys = build_demo_bucket(root)
    return root / "demo", keys


def _open(path: pathlib.Path) -> Image.Image:
    with Image.open(path) as im:
        assert im.format == "JPEG"
        im.load()
        return im.convert("RGB")


def _luma(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"), dtype=np.float64)


def _chroma(img: Image.Image) -> float:
    ycc = np.asarray(img.convert("YCbCr"), dtype=np.float64)
    return float(np.mean(np.hypot(ycc[..., 1] - 128, ycc[..., 2] - 128)))


def _sharpness(img: Image.Image) -> float:
    y = _luma(img)
    lap = y[1:-1, 1:-1] * 4 - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(lap.var())


def test_bundled_images() -> None:
    assert len(DEMO_IMAGES) == 6
    assert set(KINDS) == EXPECTED_KINDS
    total = 0
    for name in DEMO_IMAGES:
        assert name.startswith("kodim") and name.endswith(".jpg")
        data = read_demo_image(name)
        total += len(data)
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "JPEG"
            assert im.size in {(768, 512), (512, 768)}
            assert not im.info.get("progressive") and not im.info.get("progression")
    assert total < 1_500_000


def test_expected_keys(built: tuple[pathlib.Path, list[str]]) -> None:
    base, keys = built
    expected = {f"originals/{n}" for n in DEMO_IMAGES} | {
        f"damaged/{k}/{n}" for k in EXPECTED_KINDS for n in DEMO_IMAGES
    }
    assert keys == sorted(expected)
    on_disk = {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()}
    assert on_disk == expected  # object files only, nothing else
    for name in DEMO_IMAGES:
        assert (base / "originals" / name).read_bytes() == read_demo_image(name)


def test_variant_sizes(built: tuple[pathlib.Path, list[str]]) -> None:
    base, _ = built
    for name in DEMO_IMAGES:
        w, h = _open(base / "originals" / name).size
        for kind in EXPECTED_KINDS:
            img = _open(base / "damaged" / kind / name)
            if kind == "small":
                assert img.size == (SMALL_WIDTH, round(h * SMALL_WIDTH / w))
                assert img.width * img.height < w * h
            else:
                assert img.size == (w, h)


def test_deterministic(tmp_path: pathlib.Path, built: tuple[pathlib.Path, list[str]]) -> None:
    base, keys = built
    keys2 = build_demo_bucket(tmp_path, bucket="again")
    assert keys2 == keys
    for key in keys:
        assert (tmp_path / "again" / key).read_bytes() == (base / key).read_bytes(), key


@pytest.mark.parametrize("name", DEMO_IMAGES)
def test_damage_direction(built: tuple[pathlib.Path, list[str]], name: str) -> None:
    base, _ = built
    orig = _open(base / "originals" / name)
    var = {k: _open(base / "damaged" / k / name) for k in EXPECTED_KINDS}
    for kind in var:
        assert (base / "damaged" / kind / name).read_bytes() != read_demo_image(name), kind

    assert _luma(var["dark"]).mean() < 0.5 * _luma(orig).mean()
    assert _luma(var["bright"]).mean() > _luma(orig).mean() + 30
    assert (_luma(var["bright"]) >= 250).mean() > (_luma(orig) >= 250).mean() + 0.1  # clipped
    assert _chroma(var["grey"]) < 0.3 * _chroma(orig)
    assert _sharpness(var["blur"]) < 0.2 * _sharpness(orig)
    # Noise: large pixel-wise deviation from the original, mean brightness roughly kept.
    diff = _luma(var["noise"]) - _luma(orig)
    assert diff.std() > 10 and abs(diff.mean()) < 5
    # Heavy JPEG: much smaller file, visibly different pixels.
    jpeg_bytes = (base / "damaged" / "jpeg" / name).stat().st_size
    assert jpeg_bytes < 0.25 * (base / "originals" / name).stat().st_size
    assert np.abs(_luma(var["jpeg"]) - _luma(orig)).mean() > 2
    assert var["small"].width * var["small"].height < orig.width * orig.height


def test_cli(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), "--bucket", "b1"]) == 0
    out = capsys.readouterr().out
    assert "originals/" in out and "damaged/small/" in out
    assert (tmp_path / "b1" / "originals" / DEMO_IMAGES[0]).is_file()
