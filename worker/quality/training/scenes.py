"""Scene groups in BIQ2021's ss02: photos of the same content, to rank against each other.

ss02 is described as "scenes shot at varied ISO and shutter speed". Looking at it says more:
it is mostly one person's gallery in file-number order, with *short runs* of shots of the same
content (two to a handful of frames of one flower, dish or street, reframed and re-exposed) and
many photos that have no partner at all. So groups are recovered, not assumed:

* every photo gets a content descriptor: the channel means of MobileNetV2's last layer on the
  whole view (:func:`content_descriptor`; frozen ImageNet features: *what* is in the picture, and
  little of how well it was taken), centred over the photos and L2-normalised;
* two photos are linked when their file numbers are at most ``window`` apart and their
  descriptors' cosine similarity is at least ``threshold``;
* groups are the connected components (:func:`group_scenes`); singletons are photos with no
  partner.

The threshold is not hand-picked: :func:`null_threshold` takes a high quantile of the similarity
of photo pairs far apart in file order (almost all different scenes), so a link is a pair more
alike than all but ``1 - quantile`` of unrelated pairs. The report (``python -m
worker.quality.training.scenes``) compares this descriptor with a 16 px grey thumbnail, and
writes contact sheets of groups to look at.

    python -m worker.quality.training.scenes --biq /data/BIQ2021 --features var/features/imagenet --sheets /tmp/scenes
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

#: Channels of the backbone's pooled stages (:data:`worker.quality.training.backbone.TAPPED_CHANNELS`,
#: repeated here so that grouping needs no torch; a test checks they agree).
TAPPED_CHANNELS = (16, 24, 32, 64, 96, 160, 320, 1280)
#: Where the last layer's channel means sit in a view's features: (mean, std) per tapped layer.
_LAST_MEANS = slice(2 * sum(TAPPED_CHANNELS[:-1]), 2 * sum(TAPPED_CHANNELS[:-1]) + TAPPED_CHANNELS[-1])
#: Defaults, chosen on ss02's train photos (the report shows the alternatives).
WINDOW, FAR, QUANTILE = 3, 50, 0.995


def content_descriptor(whole: np.ndarray) -> np.ndarray:
    """``(n, F)`` whole-view features (:mod:`.extract`'s layout) → ``(n, 1280)`` unit vectors: the
    last layer's channel means, centred over the n photos."""
    x = np.asarray(whole, np.float64)[:, _LAST_MEANS]
    return normalise(x - x.mean(axis=0))


def thumbnail_descriptor(img: Image.Image, side: int = 16) -> np.ndarray:
    """A grey ``side`` x ``side`` thumbnail, zero-mean and unit-norm (blind to a global gain or offset)."""
    grey = img.convert("L")
    grey.draft("L", (4 * side, 4 * side))
    x = np.asarray(grey.resize((side, side), Image.Resampling.BOX), np.float64).ravel()
    return normalise((x - x.mean())[None])[0]


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pairs_within(numbers: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i < j, whose file numbers are 1..``window`` apart."""
    order = np.argsort(numbers, kind="stable")
    firsts, seconds = [], []
    for a in range(len(order)):
        for b in range(a + 1, len(order)):
            if numbers[order[b]] - numbers[order[a]] > window:
                break
            firsts.append(order[a])
            seconds.append(order[b])
    i, j = np.asarray(firsts, np.int64), np.asarray(seconds, np.int64)
    return np.minimum(i, j), np.maximum(i, j)


def null_threshold(descriptors: np.ndarray, numbers: np.ndarray, far: int = FAR, quantile: float = QUANTILE,
                   samples: int = 20000, seed: int = 0) -> float:
    """The ``quantile`` of cosine similarity over random pairs at least ``far`` apart in file order."""
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(numbers), samples)
    j = rng.integers(0, len(numbers), samples)
    keep = np.abs(numbers[i] - numbers[j]) >= far
    similarity = (descriptors[i[keep]] * descriptors[j[keep]]).sum(axis=1)
    return float(np.quantile(similarity, quantile))


def group_scenes(descriptors: np.ndarray, numbers: np.ndarray, threshold: float, window: int = WINDOW) -> np.ndarray:
    """Group label of every photo: connected components of the links (file numbers at most
    ``window`` apart, cosine similarity at least ``threshold``). Labels are 0.., in order of each
    group's smallest file number; a photo with no link is a group of its own."""
    numbers = np.asarray(numbers)
    parent = np.arange(len(numbers))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return int(a)

    i, j = pairs_within(numbers, window)
    linked = (descriptors[i] * descriptors[j]).sum(axis=1) >= threshold
    for a, b in zip(i[linked], j[linked], strict=True):
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.asarray([root(a) for a in range(len(numbers))])
    first = {}
    for a in np.argsort(numbers, kind="stable"):
        first.setdefault(roots[a], len(first))
    return np.asarray([first[r] for r in roots], np.int64)


def group_sizes(labels: np.ndarray) -> dict[int, int]:
    """Group size → how many groups have it."""
    sizes = np.bincount(labels)
    values, counts = np.unique(sizes[sizes > 0], return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def ss02_scenes(features_dir: Path, rows: np.ndarray | None = None, window: int = WINDOW,
                quantile: float = QUANTILE) -> tuple[np.ndarray, np.ndarray]:
    """(rows, group labels) of ss02 photos among ``rows`` (default: every row) of a features folder
    written by :mod:`.extract` (the frozen ImageNet one is what the defaults were chosen on).
    Grouping reads only the photos in ``rows``: pass the train rows to keep test photos out."""
    index = json.loads((features_dir / "index.json").read_text())
    names = index["names"]
    side = index["whole_sides"][0]
    rows = np.arange(len(names)) if rows is None else np.asarray(rows)
    rows = rows[[names[r].lower().startswith("ss02") for r in rows]]
    whole = np.load(features_dir / f"whole-{side}.npy", mmap_mode="r")[rows]
    numbers = np.asarray([_number(names[r]) for r in rows])
    descriptors = content_descriptor(whole)
    return rows, group_scenes(descriptors, numbers, null_threshold(descriptors, numbers, quantile=quantile), window)


def _number(name: str) -> int:
    from worker.quality.training.loso import file_number

    return file_number(name)


def contact_sheet(paths: list[list[Path]], captions: list[list[str]], out: Path, side: int = 112) -> None:
    """One row of thumbnails per group."""
    from PIL import ImageDraw

    columns = max(len(r) for r in paths)
    sheet = Image.new("RGB", (columns * side, len(paths) * (side + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for y, (row, texts) in enumerate(zip(paths, captions, strict=True)):
        for x, (path, text) in enumerate(zip(row, texts, strict=True)):
            with Image.open(path) as im:
                thumb = im.convert("RGB")
                thumb.thumbnail((side, side))
            sheet.paste(thumb, (x * side, y * (side + 14) + 14))
            draw.text((x * side + 2, y * (side + 14)), text, fill="black")
    sheet.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--biq", type=Path, required=True)
    parser.add_argument("--features", type=Path, default=Path("var/features/imagenet"))
    parser.add_argument("--shipped-features", type=Path, default=Path("var/features/shipped"))
    parser.add_argument("--sheets", type=Path, default=None, help="write contact sheets of groups here")
    parser.add_argument("--out", type=Path, default=Path("var/features/ss02-scenes.json"))
    options = parser.parse_args()
    index = json.loads((options.features / "index.json").read_text())
    names, n_train = index["names"], int(index["train"])
    mos = np.load(options.features / "mos.npy")
    train = np.arange(n_train)
    rows = train[[names[r].lower().startswith("ss02") for r in train]]
    numbers = np.asarray([_number(names[r]) for r in rows])
    order = np.argsort(numbers)
    started = time.perf_counter()
    on_disk = {p.name.lower(): p for p in (options.biq / "Images").iterdir()}
    descriptors = {
        "ImageNet last-layer means": content_descriptor(
            np.load(options.features / f"whole-{index['whole_sides'][0]}.npy", mmap_mode="r")[rows]),
        "shipped (fine-tuned) last-layer means": content_descriptor(
            np.load(options.shipped_features / f"whole-{index['whole_sides'][0]}.npy", mmap_mode="r")[rows]),
        "16 px grey thumbnail": np.stack([thumbnail_descriptor(Image.open(on_disk[names[r].lower()]))
                                          for r in rows]),
    }
    print(f"ss02 train photos: {len(rows)}; descriptors in {time.perf_counter() - started:.1f} s")
    report: dict[str, object] = {}
    for name, d in descriptors.items():
        consecutive = (d[order[:-1]] * d[order[1:]]).sum(axis=1)
        entry: dict[str, object] = {}
        for quantile in (0.99, 0.995, 0.999):
            threshold = null_threshold(d, numbers, quantile=quantile)
            entry[f"q{quantile}"] = {"threshold": round(threshold, 3),
                                     "consecutive pairs above": int((consecutive >= threshold).sum())}
        threshold = null_threshold(d, numbers)
        labels = group_scenes(d, numbers, threshold)
        sizes = group_sizes(labels)
        grouped = np.bincount(labels)[labels] > 1
        entry.update({"consecutive pairs": len(consecutive), "groups (size>1)": int(sum(c for s, c in sizes.items()
                                                                                     if s > 1)),
                      "photos in groups": int(grouped.sum()), "sizes": sizes})
        # Do groups hold photos whose MOS differs (what ranking within a scene needs)?
        spreads = [np.ptp(mos[rows[labels == g]]) for g in np.unique(labels[grouped])]
        entry["median MOS range within a group"] = round(float(np.median(spreads)), 3) if spreads else None
        report[name] = entry
        print(f"{name}: {json.dumps(entry)}")
    labels = group_scenes(descriptors["ImageNet last-layer means"], numbers,
                          null_threshold(descriptors["ImageNet last-layer means"], numbers))
    groups = [sorted(rows[labels == g], key=lambda r: _number(names[r])) for g in np.unique(labels)
              if (labels == g).sum() > 1]  # labels are already in file order
    report["groups"] = [[names[r] for r in g] for g in groups]
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=1))
    print(f"written {options.out}")
    if options.sheets:
        options.sheets.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(3)
        for k in range(4):  # the first 15 groups in file order, then three random draws of 15
            chosen = [groups[i] for i in sorted(rng.choice(len(groups), size=min(15, len(groups)), replace=False))] \
                if k else groups[:15]
            contact_sheet([[on_disk[names[r].lower()] for r in g[:8]] for g in chosen],
                          [[f"{_number(names[r])} {mos[r]:.2f}" for r in g[:8]] for g in chosen],
                          options.sheets / f"groups-{k}.png")
        print(f"contact sheets in {options.sheets}")


if __name__ == "__main__":
    main()
