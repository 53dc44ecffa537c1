"""Extract the model's features from BIQ2021 once, so heads can be fitted and compared quickly.

For every photo of both official splits: backbone features of the whole view and of all
GRID x GRID native crops (most detailed first), the first scorer's measures, and the MOS.
Written as float16/float32 ``.npy`` files under ``--out``; rows follow the CSV order
(train rows first, then test).

    python -m worker.quality.training.extract --biq /path/to/BIQ2021 --backbone backbone.onnx --out features/
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
from worker.quality.head import measure_values
from worker.quality.scorer import measure_all
from worker.quality.views import ANALYSIS_SHORT_SIDE, GRID, VIEW_SIDE, model_views

SPLITS = {"train": "Train (Images and MOS).csv", "test": "Test (Images and MOS).csv"}
VIEWS = 1 + GRID * GRID


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


def image_features(backbone: Backbone, data: bytes, side: int = VIEW_SIDE,
                   views_kept: int = VIEWS) -> tuple[np.ndarray, np.ndarray]:
    """(views_kept x F backbone features, the 12 raw measure values) of one encoded photo."""
    img, size = decode_scaled(data, ANALYSIS_SHORT_SIDE)
    features = backbone.features(model_views(img, views_kept - 1, side))
    found = measure_all(img, size)
    return features, measure_values({n: m.score for n, m in found.items()}, {n: m.raw for n, m in found.items()})


_BACKBONE: Backbone | None = None


def _work(args: tuple[str, str, list[tuple[int, str]], str, int, int]) -> int:
    global _BACKBONE
    backbone_path, image_dir, items, out, side, views_kept = args
    if _BACKBONE is None:
        _BACKBONE = Backbone(Path(backbone_path))
    feats = np.load(Path(out) / "backbone.npy", mmap_mode="r+")
    meas = np.load(Path(out) / "measures.npy", mmap_mode="r+")
    for index, name in items:
        f, m = image_features(_BACKBONE, (Path(image_dir) / name).read_bytes(), side, views_kept)
        feats[index] = f.astype(np.float16)
        meas[index] = m
    feats.flush()
    meas.flush()
    return len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--biq", type=Path, required=True)
    parser.add_argument("--backbone", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit", type=int, default=None, help="first N rows of each split (smoke runs)")
    parser.add_argument("--side", type=int, default=VIEW_SIDE, help="side of every view, px")
    parser.add_argument("--crops", type=int, default=VIEWS - 1, help="crops kept, most detailed first")
    options = parser.parse_args()
    rows = {split: read_split(options.biq, split)[: options.limit] for split in SPLITS}
    names = [name for split in SPLITS for name, _ in rows[split]]
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "mos.npy", np.asarray([mos for split in SPLITS for _, mos in rows[split]], dtype=np.float32))
    (out / "index.json").write_text(json.dumps({"train": len(rows["train"]), "test": len(rows["test"]),
                                                "names": names}))
    probe = Backbone(options.backbone)
    width = probe.features(np.zeros((1, options.side, options.side, 3), np.uint8)).shape[1]
    views_kept = 1 + options.crops
    np.lib.format.open_memmap(out / "backbone.npy", "w+", np.float16, (len(names), views_kept, width)).flush()
    np.lib.format.open_memmap(out / "measures.npy", "w+", np.float32, (len(names), 12)).flush()
    chunks = [list(enumerate(names))[i:i + 200] for i in range(0, len(names), 200)]
    started, done = time.perf_counter(), 0
    with ProcessPoolExecutor(options.workers) as pool:
        jobs = [(str(options.backbone), str(options.biq / "Images"), c, str(out), options.side, views_kept)
                for c in chunks]
        for n in pool.map(_work, jobs):
            done += n
            print(f"{done}/{len(names)} images, {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
