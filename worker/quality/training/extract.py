"""Extract the model's features from BIQ2021 once, so heads can be fitted and compared quickly.

For every photo of both official splits: backbone features of the whole view at each side in
``--whole-sides`` and of the ``--crops`` most detailed native crops, the measured dimensions
(:func:`worker.quality.dimensions.measure_all`), and the MOS. Written as float16/float32
``.npy`` files under ``--out`` (``whole-{side}.npy``, ``crops.npy``, ``measures.npy``,
``mos.npy``); rows follow the CSV order (train rows first, then test).

    python -m worker.quality.training.extract --biq /path/to/BIQ2021 --backbone backbone.onnx --out features/ \
        --whole-sides 320,256 --crops 9
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from worker.quality.backbone import Backbone
from worker.quality.decode import decode_scaled
from worker.quality.dimensions import measure_all
from worker.quality.head import measure_values
from worker.quality.views import ANALYSIS_SHORT_SIDE, GRID, VIEW_SIDE, model_views, whole_view

SPLITS = {"train": "Train (Images and MOS).csv", "test": "Test (Images and MOS).csv"}


def read_split(biq: Path, split: str) -> list[tuple[str, float]]:
    """(image file name, MOS) rows of one official split; names resolved case-insensitively."""
    on_disk = {p.name.lower(): p.name for p in (biq / "Images").iterdir()}
    rows = []
    with open(biq / SPLITS[split], newline="", encoding="utf-8-sig") as f:
        for record in csv.reader(f):
            if not record or record[0] == "Image Name":
                continue
            rows.append((on_disk[record[0].strip().lower()], float(record[1])))
    return rows


def image_features(backbone: Backbone, data: bytes, whole_sides: tuple[int, ...],
                   crops: int) -> tuple[dict[int, np.ndarray], np.ndarray, np.ndarray]:
    """Features of one encoded photo: {side: whole view's (F,)}, the crops' (crops, F), and the
    12 raw measure values. Views come from :func:`model_views`, exactly as the runtime makes them."""
    img, size = decode_scaled(data, ANALYSIS_SHORT_SIDE)
    whole, cut = model_views(img, crops, whole_sides[0])
    wholes = {whole_sides[0]: backbone.features(whole[None])[0]}
    for side in whole_sides[1:]:
        wholes[side] = backbone.features(whole_view(img, side)[None])[0]
    crop_features = backbone.features(cut) if len(cut) else np.zeros((0, len(wholes[whole_sides[0]])), np.float32)
    found = measure_all(img, size)
    measured = measure_values({n: m.score for n, m in found.items()}, {n: m.raw for n, m in found.items()})
    return wholes, crop_features, measured


_BACKBONE: Backbone | None = None


def _work(args: tuple[str, str, list[tuple[int, str]], str, tuple[int, ...], int]) -> int:
    global _BACKBONE
    backbone_path, image_dir, items, out, whole_sides, crops = args
    if _BACKBONE is None:
        _BACKBONE = Backbone(Path(backbone_path))
    wholes = {side: np.load(Path(out) / f"whole-{side}.npy", mmap_mode="r+") for side in whole_sides}
    cut = np.load(Path(out) / "crops.npy", mmap_mode="r+")
    meas = np.load(Path(out) / "measures.npy", mmap_mode="r+")
    for index, name in items:
        w, c, m = image_features(_BACKBONE, (Path(image_dir) / name).read_bytes(), whole_sides, crops)
        for side in whole_sides:
            wholes[side][index] = w[side].astype(np.float16)
        cut[index] = c.astype(np.float16)
        meas[index] = m
    for array in (*wholes.values(), cut, meas):
        array.flush()
    return len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--biq", type=Path, required=True)
    parser.add_argument("--backbone", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit", type=int, default=None, help="first N rows of each split (smoke runs)")
    parser.add_argument("--whole-sides", default=str(VIEW_SIDE), help="whole-view sides, px, comma-separated")
    parser.add_argument("--crops", type=int, default=GRID * GRID, help="crops kept, most detailed first")
    options = parser.parse_args()
    rows = {split: read_split(options.biq, split)[: options.limit] for split in SPLITS}
    names = [name for split in SPLITS for name, _ in rows[split]]
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "mos.npy", np.asarray([mos for split in SPLITS for _, mos in rows[split]], dtype=np.float32))
    whole_sides = tuple(int(side) for side in options.whole_sides.split(","))
    (out / "index.json").write_text(json.dumps({"train": len(rows["train"]), "test": len(rows["test"]),
                                                "whole_sides": whole_sides, "crops": options.crops,
                                                "names": names}))
    probe = Backbone(options.backbone)
    width = probe.features(np.zeros((1, VIEW_SIDE, VIEW_SIDE, 3), np.uint8)).shape[1]
    for side in whole_sides:
        np.lib.format.open_memmap(out / f"whole-{side}.npy", "w+", np.float16, (len(names), width)).flush()
    np.lib.format.open_memmap(out / "crops.npy", "w+", np.float16, (len(names), options.crops, width)).flush()
    np.lib.format.open_memmap(out / "measures.npy", "w+", np.float32, (len(names), 12)).flush()
    chunks = [list(enumerate(names))[i:i + 200] for i in range(0, len(names), 200)]
    started, done = time.perf_counter(), 0
    with ProcessPoolExecutor(options.workers) as pool:
        jobs = [(str(options.backbone), str(options.biq / "Images"), c, str(out), whole_sides, options.crops)
                for c in chunks]
        for n in pool.map(_work, jobs):
            done += n
            print(f"{done}/{len(names)} images, {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
