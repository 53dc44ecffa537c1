"""Cost of measuring the dimensions vs decode cost: ``python benchmarks/bench_scorer.py [--runs N]``.

For a 0.3, 2 and 12 Mpx JPEG (quality 90) built from the bundled Kodak photos — mirrored
tiles plus mild grain, so that entropy and detail are those of a real photo, not of an
upscale — prints the median wall time of

* decode only: ``Image.open`` + ``load`` + ``convert("RGB")`` of the file, and
* measuring: :func:`worker.quality.score_measured` on the same bytes (its own decode
  included) — the sub-scores and the first, unlearned overall,

and checks the target: measuring ≤ 2 x decode only, at every size. One process, one thread.
The learned overall (:func:`worker.quality.score`, the server's answer) is timed beside it for
reference; its accuracy and speed targets are ``make bench-quality``'s.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: single thread, as the target says

import argparse  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import PIL  # noqa: E402
from PIL import Image  # noqa: E402

from worker.demo.build import DEMO_IMAGES, read_demo_image  # noqa: E402
from worker.quality import score, score_measured  # noqa: E402

SIZES = {"0.3 Mpx": (640, 480), "2 Mpx": (1632, 1224), "12 Mpx": (4000, 3000)}
TARGET = 2.0
GRAIN_SIGMA = 2.0


def photo_mosaic(width: int, height: int) -> np.ndarray:
    """The demo photos side by side (portraits turned), mirrored alternately so that seams are
    continuous, tiled and cropped to width x height."""
    photos = []
    for name in DEMO_IMAGES:
        img = Image.open(io.BytesIO(read_demo_image(name))).convert("RGB")
        if img.height > img.width:
            img = img.transpose(Image.Transpose.ROTATE_90)
        photos.append(np.asarray(img.resize((768, 512))))
    row = np.concatenate([p if i % 2 == 0 else p[:, ::-1] for i, p in enumerate(photos)], axis=1)
    block = np.concatenate([row, row[::-1, ::-1]], axis=0)
    reps = (height // block.shape[0] + 1, width // block.shape[1] + 1, 1)
    return np.tile(block, reps)[:height, :width]


def test_jpeg(width: int, height: int) -> bytes:
    """A realistic quality-90 JPEG of the given size (deterministic)."""
    pixels = photo_mosaic(width, height).astype(np.float32)
    pixels += np.random.default_rng(0).normal(0.0, GRAIN_SIGMA, pixels.shape).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def decode_only(data: bytes) -> None:
    """The reference: what any consumer of the file has to pay."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        im.convert("RGB")


def paired_medians(data: bytes, runs: int) -> tuple[float, float]:
    """Median ms of decode-only and of measuring, timed alternately after one warm-up each,
    so that load from other processes hits both figures alike."""
    decode_only(data)
    score_measured(data)
    decode_times, score_times = [], []
    for _ in range(runs):
        start = time.perf_counter()
        decode_only(data)
        middle = time.perf_counter()
        score_measured(data)
        decode_times.append(middle - start)
        score_times.append(time.perf_counter() - middle)
    return 1000.0 * statistics.median(decode_times), 1000.0 * statistics.median(score_times)


def learned_ms(data: bytes, runs: int) -> float:
    score(data)  # loads the model
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        score(data)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=31, help="timed runs per figure (median)")
    args = parser.parse_args(argv)
    print(f"Pillow {PIL.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs; median of {args.runs} paired runs; ratio = score / decode")
    print(f"{'size':>8} {'pixels':>11} {'KiB':>6} {'decode ms':>10} {'measure ms':>10} "
          f"{'ratio':>6}  target ≤ {TARGET:g}x   learned score ms (make bench-quality)")
    all_met = True
    for label, (width, height) in SIZES.items():
        data = test_jpeg(width, height)
        decode, scoring = paired_medians(data, args.runs)
        ratio = scoring / decode
        met = ratio <= TARGET
        all_met &= met
        print(f"{label:>8} {width * height:>11,} {len(data) // 1024:>6} {decode:>10.2f} "
              f"{scoring:>10.2f} {ratio:>6.2f}  {'met' if met else 'NOT MET':<13} "
              f"{learned_ms(data, max(3, args.runs // 5)):>10.1f}")
    return 0 if all_met else 1  # a CI gate can run this


if __name__ == "__main__":
    sys.exit(main())
