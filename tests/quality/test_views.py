"""What the model looks at: scaled JPEG decoding and the detail-ordered native crops."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from worker.quality import UnsupportedImage
from worker.quality.decode import decode_scaled
from worker.quality.views import ANALYSIS_SHORT_SIDE, GRID, VIEW_SIDE, crop_boxes, crops, whole_view


def _jpeg(img: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=90, **params)
    return buffer.getvalue()


def test_a_large_jpeg_decodes_at_a_dct_scale_keeping_the_short_side() -> None:
    img, size = decode_scaled(_jpeg(Image.new("RGB", (3200, 2400), (90, 120, 150))), ANALYSIS_SHORT_SIDE)
    assert size == (3200, 2400)
    assert img.size == (800, 600) or min(img.size) >= ANALYSIS_SHORT_SIDE
    assert img.size == (1600, 1200)  # 1/4 would give 600 < 640: 1/2 is the coarsest that keeps it


@pytest.mark.parametrize("size", [(4000, 3000), (4242, 2828), (4618, 2598)], ids=["4:3", "3:2", "16:9"])
def test_a_12_mpx_photo_of_any_common_shape_decodes_at_quarter_scale(size: tuple[int, int]) -> None:
    img, full = decode_scaled(_jpeg(Image.new("RGB", size, (90, 120, 150))), ANALYSIS_SHORT_SIDE)
    assert full == size
    assert img.size == tuple(-(-side // 4) for side in size)  # libjpeg rounds scaled sides up


def test_exif_rotation_swaps_the_reported_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°
    img, size = decode_scaled(_jpeg(Image.new("RGB", (3000, 1500)), exif=exif.tobytes()), ANALYSIS_SHORT_SIDE)
    assert size == (1500, 3000)
    assert img.width < img.height


def test_other_formats_and_small_jpegs_decode_at_full_size() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 1500)).save(buffer, "PNG")
    img, size = decode_scaled(buffer.getvalue(), ANALYSIS_SHORT_SIDE)
    assert img.size == size == (2000, 1500)
    img, size = decode_scaled(_jpeg(Image.new("RGB", (640, 480))), ANALYSIS_SHORT_SIDE)
    assert img.size == size == (640, 480)


def test_bad_bytes_are_refused_by_the_scaled_decoder_too() -> None:
    with pytest.raises(UnsupportedImage):
        decode_scaled(b"not an image", ANALYSIS_SHORT_SIDE)
    with pytest.raises(UnsupportedImage):
        decode_scaled(_jpeg(Image.new("RGB", (2000, 1500)))[:3000], ANALYSIS_SHORT_SIDE)


def test_crops_are_inside_the_picture_and_the_most_detailed_comes_first() -> None:
    rng = np.random.default_rng(1)
    pixels = np.full((600, 900, 3), 128, np.uint8)
    pixels[420:600, 620:900] = rng.integers(0, 256, (180, 280, 3), dtype=np.uint8)  # bottom-right cell
    img = Image.fromarray(pixels)
    boxes = crop_boxes(img)
    assert len(boxes) == GRID * GRID
    for x0, y0, x1, y1 in boxes:
        assert x1 - x0 == y1 - y0 == VIEW_SIDE
        assert x0 >= 0 and y0 >= 0 and x1 <= 900 and y1 <= 600
    # centred on the bottom-right cell's centre (750, 500), clamped inside the bottom edge
    assert boxes[0] == (750 - VIEW_SIDE // 2, 600 - VIEW_SIDE, 750 + VIEW_SIDE // 2, 600)
    assert crops(img, boxes[:2]).shape == (2, VIEW_SIDE, VIEW_SIDE, 3)
    assert whole_view(img).shape == (VIEW_SIDE, VIEW_SIDE, 3)


def test_a_picture_smaller_than_a_crop_has_no_crops() -> None:
    assert crop_boxes(Image.new("RGB", (500, 200))) == []
