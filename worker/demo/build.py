"""Build the demo bucket for the embedded OSS-compatible server.

Writes plain object files into ``<root>/<bucket>/`` (key = relative path):

* ``originals/<name>.jpg``         the bundled photo bytes, as-is;
* ``damaged/<kind>/<name>.jpg``    one damaged variant per kind in :data:`KINDS`.

Every byte is deterministic: fixed seeds, fixed encoder settings.
"""

from __future__ import annotations

import argparse
import io
import pathlib
import sys
import zlib
from collections.abc import Callable
from importlib import resources

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

_PACKAGE = "worker.demo"
_IMAGES_DIR = "images"

# Encoder settings for every generated variant (except "jpeg", which uses JPEG_DAMAGED_QUALITY).
JPEG_QUALITY = 92
JPEG_DAMAGED_QUALITY = 8
BLUR_RADIUS = 4.0
NOISE_SIGMA = 25.0
NOISE_SEED = 20240601
DARK_FACTOR = 0.25
BRIGHT_FACTOR = 2.5
GREY_SATURATION = 0.1
SMALL_WIDTH = 160


def demo_images() -> list[str]:
    """File names of the bundled demo photos (package data), sorted."""
    folder = resources.files(_PACKAGE).joinpath(_IMAGES_DIR)
    return sorted(p.name for p in folder.iterdir() if p.name.lower().endswith(".jpg"))


DEMO_IMAGES: tuple[str, ...] = tuple(demo_images())


def read_demo_image(name: str) -> bytes:
    """Bytes of one bundled photo."""
    return resources.files(_PACKAGE).joinpath(_IMAGES_DIR, name).read_bytes()


def enlarged_demo_jpeg(megapixels: float, name: str | None = None) -> bytes:
    """A demo photo (the first by default) resized bicubically to about ``megapixels``, as a
    quality-90 JPEG: a large camera-sized photo for the speed benchmark and the model fixture,
    made on demand rather than shipped (12 Mpx is ~1 MB)."""
    photo = Image.open(io.BytesIO(read_demo_image(name or DEMO_IMAGES[0]))).convert("RGB")
    scale = (megapixels * 1e6 / (photo.width * photo.height)) ** 0.5
    buffer = io.BytesIO()
    photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BICUBIC).save(
        buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _encode(img: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(
        buf, "JPEG", quality=quality, subsampling=2, progressive=False, optimize=True
    )
    return buf.getvalue()


def _scale(img: Image.Image, factor: float) -> Image.Image:
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) * factor
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def _blur(img: Image.Image, name: str) -> bytes:
    return _encode(img.filter(ImageFilter.GaussianBlur(BLUR_RADIUS)))


def _noise(img: Image.Image, name: str) -> bytes:
    rng = np.random.default_rng([NOISE_SEED, zlib.crc32(name.encode())])
    arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    arr = arr + rng.normal(0.0, NOISE_SIGMA, arr.shape).astype(np.float32)
    return _encode(Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB"))


def _jpeg(img: Image.Image, name: str) -> bytes:
    return _encode(img, quality=JPEG_DAMAGED_QUALITY)


def _dark(img: Image.Image, name: str) -> bytes:
    return _encode(_scale(img, DARK_FACTOR))


def _bright(img: Image.Image, name: str) -> bytes:
    return _encode(_scale(img, BRIGHT_FACTOR))


def _grey(img: Image.Image, name: str) -> bytes:
    return _encode(ImageEnhance.Color(img.convert("RGB")).enhance(GREY_SATURATION))


def _small(img: Image.Image, name: str) -> bytes:
    w, h = img.size
    size = (SMALL_WIDTH, max(1, round(h * SMALL_WIDTH / w)))
    return _encode(img.convert("RGB").resize(size, Image.Resampling.LANCZOS))


KINDS: dict[str, Callable[[Image.Image, str], bytes]] = {
    "blur": _blur,
    "noise": _noise,
    "jpeg": _jpeg,
    "dark": _dark,
    "bright": _bright,
    "grey": _grey,
    "small": _small,
}


def build_demo_bucket(root: pathlib.Path, bucket: str = "demo") -> list[str]:
    """Write the demo objects into ``root/bucket/`` as plain files; return the keys, sorted."""
    base = pathlib.Path(root) / bucket
    objects: dict[str, bytes] = {}
    for name in demo_images():
        data = read_demo_image(name)
        objects[f"originals/{name}"] = data
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            img = im.convert("RGB")
        for kind, make in KINDS.items():
            objects[f"damaged/{kind}/{name}"] = make(img, name)
    for key, data in objects.items():
        path = base / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return sorted(objects)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.demo.build",
        description="Write the picscore demo bucket (originals + damaged variants) as plain files.",
    )
    parser.add_argument("root", type=pathlib.Path, help="storage root (one directory per bucket)")
    parser.add_argument("--bucket", default="demo", help="bucket name (default: demo)")
    args = parser.parse_args(argv)
    keys = build_demo_bucket(args.root, args.bucket)
    base = args.root / args.bucket
    for key in keys:
        print(f"{base / key}  {(base / key).stat().st_size} bytes")
    print(f"wrote {len(keys)} objects into {base}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
