"""Synthetic-damage ladders of BIQ2021 train photos, as cached features (RankIQA-style pairs).

Some train photos of each subset are damaged at graded levels of each kind
(:func:`worker.quality.training.damage.make`), and the damaged copies' backbone views and
measures are cached once per backbone, so that ranking heads (:mod:`.ranking`) can learn that the
less-damaged copy of a photo is the better one without decoding anything again:

    python -m worker.quality.training.ranking extract-synthetic --biq /data/BIQ2021 --features var/features
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.quality.training.loso import CROPS, SUBSETS, WHOLE_SIDE, Split, load_split

#: Damage kinds and levels of the synthetic ladders (:func:`worker.quality.training.damage.make`).
SYNTHETIC_KINDS = ("defocus", "motion", "noise", "jpeg", "under", "over", "desaturate", "resolution")
SYNTHETIC_LEVELS = (0.25, 0.5, 0.75, 1.0)
#: Train photos per subset that get ladders (so each LOSO fold has two subsets' worth).
SYNTHETIC_PER_SUBSET, SYNTHETIC_SEED = 40, 2021


@dataclass(frozen=True)
class Synthetic:
    """Features of damaged copies of some train photos (one folder per backbone)."""

    views: np.ndarray      # (m, 1 + CROPS, F) float16
    measures: np.ndarray   # (m, 12)
    source: np.ndarray     # (m,) row of the undamaged photo in the BIQ2021 features
    kind: np.ndarray       # (m,) index into SYNTHETIC_KINDS
    level: np.ndarray      # (m,)

    @classmethod
    def load(cls, directory: Path) -> Synthetic:
        meta = np.load(directory / "meta.npz")
        return cls(np.load(directory / "views.npy"), np.load(directory / "measures.npy"), meta["source"],
                   meta["kind"], meta["level"])

    def head_input(self, crops: int, rows: np.ndarray | None = None) -> np.ndarray:
        from worker.quality.head import head_input, measure_inputs

        rows = np.arange(len(self.source)) if rows is None else rows
        return head_input(self.views[rows, :1 + crops].astype(np.float32), measure_inputs(self.measures[rows]), crops)


def synthetic_sources(split: Split, per_subset: int = SYNTHETIC_PER_SUBSET, seed: int = SYNTHETIC_SEED) -> np.ndarray:
    """Train rows that get ladders: ``per_subset`` of each subset, drawn with a fixed seed."""
    rng = np.random.RandomState(seed)
    train = split.train
    return np.sort(np.concatenate([rng.choice(train[split.subsets[train] == s], per_subset, replace=False)
                                   for s in SUBSETS]))


_WORKER: dict[str, object] = {}


def _synthetic_work(job: tuple[list[str], str, list[tuple[int, int, str]], str]) -> int:
    from worker.quality.backbone import Backbone
    from worker.quality.decode import decode_scaled
    from worker.quality.dimensions import measure_all
    from worker.quality.head import measure_values
    from worker.quality.training import damage
    from worker.quality.views import ANALYSIS_SHORT_SIDE, model_views

    backbones, image_dir, items, out = job
    if "backbones" not in _WORKER:
        _WORKER["backbones"] = [Backbone(Path(b)) for b in backbones]
    nets = _WORKER["backbones"]
    views = [np.load(Path(out) / f"views-{k}.npy", mmap_mode="r+") for k in range(len(nets))]
    meas = np.load(Path(out) / "measures.npy", mmap_mode="r+")
    rungs = [(k, lv) for k in range(len(SYNTHETIC_KINDS)) for lv in SYNTHETIC_LEVELS]
    for first, source, name in items:
        img, size = decode_scaled((Path(image_dir) / name).read_bytes(), ANALYSIS_SHORT_SIDE)
        for offset, (kind, level) in enumerate(rungs):
            damaged = damage.make(img, SYNTHETIC_KINDS[kind], level, seed=source)
            whole, cut = model_views(damaged, CROPS, WHOLE_SIDE)
            stacked = np.concatenate([whole[None], cut])
            for net, array in zip(nets, views, strict=True):
                array[first + offset] = net.features(stacked).astype(np.float16)
            found = measure_all(damaged, size)
            meas[first + offset] = measure_values({n: m.score for n, m in found.items()},
                                                  {n: m.raw for n, m in found.items()})
    for array in (*views, meas):
        array.flush()
    return len(items)


def extract_synthetic(biq: Path, features: Path, backbones: dict[str, Path], workers: int = 2,
                      per_subset: int = SYNTHETIC_PER_SUBSET) -> None:
    """Ladders of :func:`synthetic_sources` through every backbone, into ``features``/synthetic/<name>."""
    split, names = load_split(features / "shipped")
    sources = synthetic_sources(split, per_subset)
    rungs = [(k, lv) for k in range(len(SYNTHETIC_KINDS)) for lv in SYNTHETIC_LEVELS]
    m = len(sources) * len(rungs)
    out = features / "synthetic"
    out.mkdir(parents=True, exist_ok=True)
    from worker.quality.backbone import Backbone

    width = Backbone(next(iter(backbones.values()))).features(np.zeros((1, 224, 224, 3), np.uint8)).shape[1]
    for k in range(len(backbones)):
        np.lib.format.open_memmap(out / f"views-{k}.npy", "w+", np.float16, (m, 1 + CROPS, width)).flush()
    np.lib.format.open_memmap(out / "measures.npy", "w+", np.float32, (m, 12)).flush()
    items = [(i * len(rungs), int(s), names[s]) for i, s in enumerate(sources)]
    chunks = [items[i:i + 8] for i in range(0, len(items), 8)]
    started, done = time.perf_counter(), 0
    with ProcessPoolExecutor(workers, initializer=os.nice, initargs=(10,)) as pool:
        for n in pool.map(_synthetic_work, [([str(b) for b in backbones.values()], str(biq / "Images"), c, str(out))
                                            for c in chunks]):
            done += n
            print(f"{done}/{len(items)} photos ({done * len(rungs)} rungs), {time.perf_counter() - started:.0f} s",
                  flush=True)
    meta = {"source": np.repeat(sources, len(rungs)), "kind": np.tile([k for k, _ in rungs], len(sources)),
            "level": np.tile([lv for _, lv in rungs], len(sources)).astype(np.float32)}
    for k, name in enumerate(backbones):
        target = out / name
        target.mkdir(exist_ok=True)
        os.replace(out / f"views-{k}.npy", target / "views.npy")
        np.save(target / "measures.npy", np.load(out / "measures.npy"))
        np.savez(target / "meta.npz", **meta)
    (out / "measures.npy").unlink()
    (out / "done.json").write_text(json.dumps({"kinds": SYNTHETIC_KINDS, "levels": SYNTHETIC_LEVELS,
                                               "sources": len(sources), "per_subset": per_subset,
                                               "seconds": time.perf_counter() - started}))
