"""``make bench-quality``: how well the quality model agrees with people, and what it costs.

1. Accuracy on BIQ2021's official *test* split (2,000 photos never used in fitting): SRCC and
   PLCC against the mean opinion scores, for both layouts of the shipped model (as
   ``quality.score`` answers), the first (unlearned) scorer, and the backbone-only and
   measures-only variants that ``make train`` fits beside it (``var/train``). Target: SRCC >= 0.88.
2. Speed on one core (this process pinned to one CPU, every library on one thread): ms per
   image for 0.25, 2 and 12 Mpx JPEGs in each layout, next to decoding alone (full and DCT-scaled).
   Targets: <= 60 ms at 12 Mpx including decode, <= 25 ms at 0.25 Mpx.

    python benchmarks/bench_quality.py --biq /data/BIQ2021 [--train-dir var/train] [--limit N]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import stats  # noqa: E402

from worker import quality  # noqa: E402
from worker.demo.build import enlarged_demo_jpeg  # noqa: E402
from worker.quality.decode import decode_image, decode_scaled  # noqa: E402
from worker.quality.dimensions import combine, measure_all, overall_score  # noqa: E402
from worker.quality.head import measure_vector  # noqa: E402
from worker.quality.model import DEFAULT_LAYOUT, LAYOUTS, QualityModel, shipped_model  # noqa: E402
from worker.quality.training.train import VARIANTS  # noqa: E402  (what make train fits into var/train)
from worker.quality.views import ANALYSIS_SHORT_SIDE  # noqa: E402

SRCC_TARGET = 0.88
MS_TARGETS = {0.25: 25.0, 2.0: None, 12.0: 60.0}


def read_test_split(biq: Path) -> list[tuple[Path, float]]:
    from worker.quality.training.extract import read_split

    return [(biq / "Images" / name, mos) for name, mos in read_split(biq, "test")]


def accuracy(biq: Path, train_dir: Path, limit: int | None) -> None:
    rows = read_test_split(biq)[:limit]
    models = {layout: shipped_model(layout) for layout in LAYOUTS}
    backbone = models[DEFAULT_LAYOUT].backbone
    variants = {name: QualityModel.load(train_dir, files, backbone) for name, files in VARIANTS.items()
                if all((train_dir / f).exists() for f in files)}
    predictions: dict[str, list[float]] = {**{_label(layout): [] for layout in LAYOUTS},
                                           "first scorer (unlearned)": [],
                                           **{f"variant: {name}": [] for name in variants}}
    checked = 0
    started = time.perf_counter()
    for i, (path, _mos) in enumerate(rows):
        data = path.read_bytes()
        img, size = decode_scaled(data, ANALYSIS_SHORT_SIDE)
        found = measure_all(img, size)
        scores = {n: m.score for n, m in found.items()}
        raw = {n: m.raw for n, m in found.items()}
        measures = measure_vector(scores, raw)
        features = features_once(img, [*models.values(), *variants.values()])
        for layout, model in models.items():
            full = overall_score(model.predict(_views(features, model), measures), combine(scores)[1])
            if i < 25:  # the shortcut above must be exactly what quality.score answers
                assert abs(quality.score(data, layout).overall - round(full, 6)) < 1e-9, (path, layout)
                checked += 1
            predictions[_label(layout)].append(full)
        predictions["first scorer (unlearned)"].append(combine(scores)[0])
        for name, variant in variants.items():
            predictions[f"variant: {name}"].append(variant.predict(_views(features, variant), measures))
        if (i + 1) % 250 == 0:
            print(f"  … {i + 1}/{len(rows)} test photos, {time.perf_counter() - started:.0f} s", flush=True)
    truth = np.asarray([mos for _, mos in rows])
    print(f"\n1. Accuracy on BIQ2021 test ({len(rows)} photos; fitted on the 10,000 train photos only)")
    print(f"{'scorer':<34} {'SRCC':>7} {'PLCC':>7}")
    for name, values in predictions.items():
        pred = np.asarray(values)
        rank, linear = stats.spearmanr(pred, truth).statistic, stats.pearsonr(pred, truth).statistic
        print(f"{name:<34} {rank:>7.4f} {linear:>7.4f}")
    for layout in LAYOUTS:
        shipped = stats.spearmanr(predictions[_label(layout)], truth).statistic
        verdict = "met" if shipped >= SRCC_TARGET else "MISSED"
        print(f"target SRCC >= {SRCC_TARGET}, {layout}: {verdict} ({shipped:.4f})")
    print(f"{checked} scores cross-checked against quality.score()")
    if not variants:
        print(f"  (variants not found in {train_dir}: run `make train` to fit them)")


def features_once(img: Image.Image, models: list[QualityModel]) -> dict[int, np.ndarray]:
    """Backbone features of ``img`` per whole-view side, with the most crops any model reading that
    side needs: each view goes through the network once, and a model reads the first rows."""
    widest: dict[int, QualityModel] = {}
    for model in models:
        if model.crops >= widest.setdefault(model.whole_side, model).crops:
            widest[model.whole_side] = model
    return {side: model.view_features(img) for side, model in widest.items()}


def _views(features: dict[int, np.ndarray], model: QualityModel) -> np.ndarray:
    """The rows of ``features`` that ``model`` reads: its whole view, then its crops."""
    return features[model.whole_side][: 1 + model.crops]


def _label(layout: str) -> str:
    return f"picscore model, {layout}" + (" (default)" if layout == DEFAULT_LAYOUT else "")


def _median_ms(function, data: bytes, repeats: int) -> float:
    function(data)  # warm-up (first call loads the model)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function(data)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def speed(repeats: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print("\n2. Speed on one core (median of", repeats, "runs; process pinned to one CPU)")
    print(f"{'JPEG':>8} {'layout':>9} {'score':>9} {'full decode':>12} {'scaled decode':>14} {'score/full decode':>18}"
          "  target")
    for megapixels, target in MS_TARGETS.items():
        data = enlarged_demo_jpeg(megapixels)
        full = _median_ms(decode_image, data, repeats)
        scaled = _median_ms(lambda d: decode_scaled(d, ANALYSIS_SHORT_SIDE), data, repeats)
        for layout in LAYOUTS:
            scored = _median_ms(lambda d, layout=layout: quality.score(d, layout), data, repeats)
            goal = "" if target is None else f"<= {target:g} ms: {'met' if scored <= target else 'MISSED'}"
            print(f"{megapixels:>6g}Mp {layout:>9} {scored:>7.1f}ms {full:>10.1f}ms {scaled:>12.1f}ms "
                  f"{scored / full:>18.2f}  {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--biq", type=Path, default=os.environ.get("BIQ2021"), help="the BIQ2021 checkout")
    parser.add_argument("--train-dir", type=Path, default=Path("var/train"), help="where make train left variants")
    parser.add_argument("--limit", type=int, default=None, help="first N test photos only")
    parser.add_argument("--repeats", type=int, default=15)
    options = parser.parse_args()
    if options.biq is None or not Path(options.biq).exists():
        sys.exit("bench-quality needs BIQ2021: git clone https://github.com/nisarahmedrana/BIQ2021 /data/BIQ2021 "
                 "and run `make bench-quality BIQ2021=/data/BIQ2021`")
    accuracy(Path(options.biq), options.train_dir, options.limit)
    speed(options.repeats)


if __name__ == "__main__":
    main()
