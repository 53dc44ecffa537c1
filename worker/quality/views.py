"""What the learned model looks at: one whole-picture view and native-resolution crops.

Downscaling a whole photo to a network's input size hides exactly what quality is about —
blur, noise and JPEG blocking at the pixel level — so the model also sees square crops cut at
the *analysis scale* (full resolution, or the JPEG DCT scale that keeps the short side at least
:data:`ANALYSIS_SHORT_SIDE`: roughly how a screen shows the photo; see
:func:`worker.quality.decode.decode_scaled`). Crops come from a 3x3 grid, most detailed cell
first: people judge sharpness on the subject, and flat sky says little about blur.

Everything here is deterministic integer geometry and Pillow resampling: the same bytes give
the same arrays in every process.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from worker.quality.dimensions import cell_detail

__all__ = ["ANALYSIS_SHORT_SIDE", "VIEW_SIDE", "GRID", "model_views", "whole_view", "crop_boxes", "crops"]

#: JPEGs are decoded at the coarsest DCT scale that keeps the short side at least this long.
#: 640 is under a 12 Mpx photo's short side at 1/4 scale in every common shape (750, 707 and
#: 650 px at 4:3, 3:2 and 16:9), so such photos decode at 1/4; a larger value would send some
#: to 1/2 scale, with 4x the pixels downstream. BIQ2021's photos (short side <= 512) are never
#: scaled, so the model's fit is untouched.
ANALYSIS_SHORT_SIDE = 640
#: Side of each crop, px, and of the whole view unless the heads record another (``Head.whole_side``).
VIEW_SIDE = 224
#: Crops are centred on the cells of a GRID x GRID grid.
GRID = 3

Box = tuple[int, int, int, int]


def whole_view(img: Image.Image, side: int = VIEW_SIDE) -> np.ndarray:
    """The whole picture resized (aspect not kept) to ``side`` x ``side``, uint8 HWC."""
    return np.asarray(img.resize((side, side), Image.Resampling.BILINEAR, reducing_gap=3.0))


def crop_boxes(img: Image.Image, side: int = VIEW_SIDE) -> list[Box]:
    """Boxes of ``side`` px centred on the grid cells (clamped inside), most detailed cell first.

    Empty when the picture is smaller than ``side`` on either axis: then the whole view is
    already at (or above) native resolution and stands in for the crops.
    """
    width, height = img.size
    if width < side or height < side:
        return []
    detail = _cell_detail(img)
    boxes = []
    for cell in np.argsort(-detail, kind="stable").tolist():
        row, col = divmod(cell, GRID)
        x = min(max((2 * col + 1) * width // (2 * GRID) - side // 2, 0), width - side)
        y = min(max((2 * row + 1) * height // (2 * GRID) - side // 2, 0), height - side)
        boxes.append((x, y, x + side, y + side))
    return boxes


def crops(img: Image.Image, boxes: list[Box]) -> np.ndarray:
    """The boxes' pixels, uint8 ``(k, side, side, 3)``."""
    return np.stack([np.asarray(img.crop(box)) for box in boxes])


def model_views(img: Image.Image, crop_count: int, whole_side: int = VIEW_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """The network's input: the whole view (``whole_side`` square, uint8 HWC) and the
    ``crop_count`` most detailed crops (uint8 ``(crop_count, VIEW_SIDE, VIEW_SIDE, 3)``).

    Separate arrays because their sides may differ: a larger whole view shows more of the
    picture's detail (the model card has what larger sides did), while the crops stay at the
    network's native input size. A picture too small for crops repeats its
    whole view at crop size (already at or above native resolution) in their places.
    """
    whole = whole_view(img, whole_side)
    no_crops = np.zeros((0, VIEW_SIDE, VIEW_SIDE, 3), np.uint8)
    if not crop_count:  # ranking the cells reads the whole picture: skip it when no crop is wanted
        return whole, no_crops
    boxes = crop_boxes(img)[:crop_count]
    cut = crops(img, boxes) if boxes else no_crops
    if len(cut) < crop_count:
        filler = whole if whole_side == VIEW_SIDE else whole_view(img)
        cut = np.concatenate([cut, np.repeat(filler[None], crop_count - len(cut), axis=0)])
    return whole, cut


def _cell_detail(img: Image.Image) -> np.ndarray:
    """Mean |luma gradient| per grid cell on a small view, row-major, shape (GRID * GRID,)."""
    small = img.convert("L")
    small = small.reduce(max(1, min(small.size) // 96)) if min(small.size) > 192 else small
    return cell_detail(np.asarray(small, dtype=np.float32), GRID)
