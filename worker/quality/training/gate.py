"""Calibrate the severe-defect gate of :func:`worker.quality.dimensions.overall_score` on damage
ladders made from BIQ2021 *train* photos, and check that it keeps agreement with people.

Two sets of train photos, disjoint, neither ever from the test split:

* **calibration**: ``--photos`` photos (``RandomState(CALIBRATION_SEED)``) outside the hold-out
  below, each damaged at every step of every kind of :mod:`worker.quality.training.damage`
  (motion blur in a direction, and noise from a seed, drawn per photo);
* **guard**: the first ``--guard`` of the 1,000 train photos fine-tuning held out
  (:func:`worker.quality.training.fit.holdout_split`), undamaged, with their MOS: SRCC there,
  with and without the gate, is the check that the gate does not cost agreement with people.

``extract`` runs the network once per picture and caches what the heads need (the network
head's score, and each kernel head's projection of the view features) with the measures, under
``--work``; ``remeasure`` refreshes the measures alone after a change to
:mod:`worker.quality.measures` (the kernel heads read them); ``fit`` searches the gate's
parameters on the cache and prints the figures the model card quotes.

    python -m worker.quality.training.gate extract --biq /data/BIQ2021 --work var/gate
    python -m worker.quality.training.gate fit --work var/gate
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import stats

from worker.quality.decode import decode_scaled
from worker.quality.dimensions import FLOOR, GATED_DIMENSION, blended_score, combine, measure_all, soft_minimum
from worker.quality.head import MEASURE_NAMES, Head, MlpHead, head_input, measure_inputs, measure_values
from worker.quality.measures import exposure_key
from worker.quality.model import LAYOUTS, shipped_model
from worker.quality.training import damage
from worker.quality.training.extract import read_split
from worker.quality.training.fit import holdout_split
from worker.quality.views import ANALYSIS_SHORT_SIDE

CALIBRATION_SEED = 17
KINDS = tuple(damage.KINDS)
_MEASURES = 2 * len(MEASURE_NAMES)


def photo_sets(biq: Path, photos: int, guard: int) -> tuple[list[str], list[tuple[str, float]]]:
    """(calibration photo names, guard (name, MOS) rows): both from the train split, disjoint."""
    rows = read_split(biq, "train")
    held, rest = holdout_split(len(rows))
    chosen = np.random.RandomState(CALIBRATION_SEED).choice(rest, photos, replace=False)
    return [rows[i][0] for i in sorted(chosen)], [rows[i] for i in held[:guard]]


def ladder_images(img: Image.Image, photo_seed: int, steps: int) -> Iterator[tuple[int, float, Image.Image]]:
    """(kind index or -1 for the original, level, picture) for every step of every kind."""
    rng = np.random.default_rng([CALIBRATION_SEED, photo_seed])
    angle, noise_seed = float(rng.uniform(0.0, 180.0)), int(rng.integers(2**31))
    yield -1, 0.0, img
    for k, kind in enumerate(KINDS):
        for level in damage.ladder(steps)[1:]:
            yield k, level, damage.make(img, kind, level, angle=angle, seed=noise_seed)


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _measure(data: bytes) -> tuple[Image.Image, np.ndarray]:
    img, size = decode_scaled(data, ANALYSIS_SHORT_SIDE)
    found = measure_all(img, size)
    return img, measure_values({n: m.score for n, m in found.items()}, {n: m.raw for n, m in found.items()})


class Cached:
    """The shipped heads, split so that a change of measures needs no new forward pass: the
    network head does not read the measures, and a kernel head's projection is linear in them."""

    def __init__(self) -> None:
        self.accurate = shipped_model("accurate")
        self.fast = shipped_model("fast")
        self.kernel_a = next(h for h in self.accurate.heads if isinstance(h, Head))
        self.mlp_a = next(h for h in self.accurate.heads if isinstance(h, MlpHead))
        self.kernel_f = self.fast.heads[0]
        assert isinstance(self.kernel_f, Head) and set(LAYOUTS) == {"accurate", "fast"}

    def record(self, img: Image.Image, values: np.ndarray) -> dict[str, np.ndarray]:
        views = self.accurate.view_features(img)
        zeros = np.zeros(_MEASURES, np.float32)
        return {"mlp": np.asarray(self.mlp_a.predict(head_input(views, zeros, 3, use_measures=False)[None])[0]),
                "pa": self.kernel_a.project(head_input(views, zeros, 3)[None])[0],
                "pf": self.kernel_f.project(head_input(views[:1], zeros, 0)[None])[0],
                "values": values}

    @staticmethod
    def _kernel(head: Head, p0: np.ndarray, values: np.ndarray) -> np.ndarray:
        m = measure_inputs(values).astype(np.float64)
        p = p0 + (m / head.scale[-_MEASURES:]) @ head.components[-_MEASURES:]
        distance = (p * p).sum(axis=1)[:, None] - 2.0 * p @ head.support.T + (head.support**2).sum(axis=1)[None]
        return np.clip(np.exp(-head.gamma * np.maximum(distance, 0.0)) @ head.dual + head.intercept, 0.0, 1.0)

    def learned(self, cache: dict[str, np.ndarray], layout: str) -> np.ndarray:
        """Each cached picture's learned score in ``layout``, from its cached measure values."""
        if layout == "fast":
            return self._kernel(self.kernel_f, cache["pf"], cache["values"])
        return (self._kernel(self.kernel_a, cache["pa"], cache["values"]) + cache["mlp"]) / 2.0


def _save(path: Path, records: list[dict[str, np.ndarray]], meta: dict[str, list]) -> None:
    arrays = {key: np.stack([r[key] for r in records]) for key in records[0]}
    np.savez(path, **arrays, **{key: np.asarray(v) for key, v in meta.items()})


def extract(biq: Path, work: Path, photos: int, guard: int, steps: int) -> None:
    """Cache the guard photos, then the calibration ladders (resumable: saved every 5 photos)."""
    work.mkdir(parents=True, exist_ok=True)
    names, guard_rows = photo_sets(biq, photos, guard)
    cached = Cached()
    started = time.perf_counter()
    if not (work / "guard.npz").exists():
        records = []
        for i, (name, _) in enumerate(guard_rows):
            img, values = _measure((biq / "Images" / name).read_bytes())
            records.append(cached.record(img, values))
            if (i + 1) % 100 == 0:
                print(f"  guard {i + 1}/{len(guard_rows)}, {time.perf_counter() - started:.0f} s", flush=True)
        _save(work / "guard.npz", records, {"mos": [mos for _, mos in guard_rows], "name": [n for n, _ in guard_rows]})
    path = work / "ladders.npz"
    done = int(np.load(path)["photo"].max()) + 1 if path.exists() else 0
    records, meta = [], {"photo": [], "kind": [], "level": []}
    if done:
        with np.load(path) as f:
            records = [{k: f[k][j] for k in ("mlp", "pa", "pf", "values")} for j in range(len(f["photo"]))]
            meta = {k: f[k].tolist() for k in meta}
    for p in range(done, len(names)):
        with Image.open(biq / "Images" / names[p]) as im:
            photo = im.convert("RGB")
        for kind, level, img in ladder_images(photo, p, steps):
            decoded, values = _measure(_png(img))
            records.append(cached.record(decoded, values))
            meta["photo"].append(p)
            meta["kind"].append(kind)
            meta["level"].append(level)
        if (p + 1) % 5 == 0 or p + 1 == len(names):
            _save(path, records, meta)
            print(f"  ladders {p + 1}/{len(names)} photos, {time.perf_counter() - started:.0f} s", flush=True)


def remeasure(biq: Path, work: Path, photos: int, guard: int, steps: int) -> None:
    """Recompute the cached measure values (after a change of measures); the network's part stays."""
    names, guard_rows = photo_sets(biq, photos, guard)
    with np.load(work / "guard.npz") as f:
        cache = dict(f)
    cache["values"] = np.stack([_measure((biq / "Images" / name).read_bytes())[1] for name, _ in guard_rows])
    np.savez(work / "guard.npz", **cache)
    with np.load(work / "ladders.npz") as f:
        cache = dict(f)
    values = []
    for p in range(int(cache["photo"].max()) + 1):
        with Image.open(biq / "Images" / names[p]) as im:
            photo = im.convert("RGB")
        values += [_measure(_png(img))[1] for _, _, img in ladder_images(photo, p, steps)]
    cache["values"] = np.stack(values)
    np.savez(work / "ladders.npz", **cache)


# -- evaluation -----------------------------------------------------------------------------------

def dimensions_of(values: np.ndarray) -> list[dict[str, float]]:
    """The seven dimensions of each cached picture, from its 12 measure values."""
    n = len(MEASURE_NAMES)
    return [combine(dict(zip(MEASURE_NAMES, row[:n].tolist(), strict=True)))[1] for row in values]


def ladder_figures(overall: np.ndarray, photo: np.ndarray, kind: np.ndarray) -> dict[str, float]:
    """Per kind: pairwise order accuracy over every pair of steps, the most severe step's mean,
    95th percentile and share <= SEVERE; for desaturation the drop to grey (mean, 5th percentile,
    share >= GREY_DROP). Rows: each photo's original, then every step of every kind in order."""
    photos = len(np.unique(photo))
    table = overall.reshape(photos, 1 + len(KINDS) * (len(overall) // photos - 1) // len(KINDS))
    steps = (table.shape[1] - 1) // len(KINDS)
    assert (kind.reshape(photos, -1)[:, 0] == -1).all()
    figures = {}
    pairs = list(itertools.combinations(range(steps + 1), 2))
    first, second = np.array([i for i, _ in pairs]), np.array([j for _, j in pairs])
    for k, name in enumerate(KINDS):
        rows = np.concatenate([table[:, :1], table[:, 1 + k * steps: 1 + (k + 1) * steps]], axis=1)
        figures[f"{name} order"] = float((rows[:, second] < rows[:, first]).mean())
        if name == "desaturate":
            drop = rows[:, 0] - rows[:, -1]
            figures |= {"grey drop mean": float(drop.mean()), "grey drop p5": float(np.percentile(drop, 5)),
                        "grey drop share": float((drop >= GREY_DROP).mean())}
        else:
            figures |= {f"{name} severe mean": float(rows[:, -1].mean()),
                        f"{name} severe p95": float(np.percentile(rows[:, -1], 95)),
                        f"{name} severe share": float((rows[:, -1] <= SEVERE).mean())}
    return figures


SEVERE, GREY_DROP = 0.35, 0.05  # issue 17's targets: the most severe step, and grey below its original


class Evaluation:
    """The cached pictures' blended scores (:func:`~worker.quality.dimensions.blended_score`: the
    overall without the gate) and dimensions, per layout, to try gates on quickly. ``suffix``
    reads another cache's files (one kept from before a change of measures, say)."""

    def __init__(self, work: Path, cached: Cached | None = None, suffix: str = "") -> None:
        cached = cached or Cached()
        with np.load(work / f"guard{suffix}.npz") as f:
            guard = dict(f)
        with np.load(work / f"ladders{suffix}.npz") as f:
            ladders = dict(f)
        self.mos = guard["mos"]
        from worker.quality.training.loso import subset_of

        self.subset = subset_of([str(name) for name in guard["name"]])
        self.photo, self.kind = ladders["photo"], ladders["kind"]
        self.blended: dict[tuple[str, str], np.ndarray] = {}
        self.dims: dict[str, dict[str, np.ndarray]] = {}
        for name, cache in (("guard", guard), ("ladders", ladders)):
            dims = dimensions_of(cache["values"])
            self.dims[name] = {k: np.array([d[k] for d in dims]) for k in dims[0]}
            stops = cache["values"][:, len(MEASURE_NAMES) + MEASURE_NAMES.index("exposure")]
            self.dims[name]["stops"] = stops
            self.dims[name]["exposure key"] = np.array([exposure_key(s) for s in stops])
            for layout in LAYOUTS:
                learned = cached.learned(cache, layout)
                self.blended[name, layout] = np.array([blended_score(v, d) for v, d in zip(learned, dims, strict=True)])
            # the network head alone: the one part of the model that never trained on the guard photos
            self.blended[name, "network head"] = np.array(
                [blended_score(v, d) for v, d in zip(cache["mlp"], dims, strict=True)])

    def scores(self, name: str, layout: str, gate: Gate | None) -> np.ndarray:
        blended = self.blended[name, layout]
        return blended if gate is None else gate.apply(blended, self.dims[name])

    def figures(self, gate: Gate | None, layouts: tuple[str, ...] = tuple(LAYOUTS)) -> dict[str, dict[str, float]]:
        out = {}
        for layout in layouts:
            guard = self.scores("guard", layout, gate)
            srcc = {"guard srcc": float(stats.spearmanr(guard, self.mos).statistic)}
            for subset in SUBSETS:  # the photos of one origin: where a gate that misjudges a style shows
                mask = self.subset == subset
                srcc[f"guard srcc {subset}"] = float(stats.spearmanr(guard[mask], self.mos[mask]).statistic)
            out[layout] = srcc | ladder_figures(self.scores("ladders", layout, gate), self.photo, self.kind)
        return out


class Gate:
    """Vectorised :func:`worker.quality.dimensions.overall_score` over blended scores, for any parameters."""

    def __init__(self, caps: dict[str, tuple[float, float]], softness: float) -> None:
        self.caps, self.softness = caps, softness

    def apply(self, blended: np.ndarray, dims: dict[str, np.ndarray]) -> np.ndarray:
        cap = np.ones_like(blended)
        for name, (threshold, power) in self.caps.items():
            score = dims["exposure key"] if name == "under" else dims[GATED_DIMENSION[name]]
            value = np.minimum(1.0, np.maximum(score, FLOOR) / threshold) ** power
            if name in ("under", "over"):
                value = np.where((dims["stops"] < 0) == (name == "under"), value, 1.0)
            cap = np.minimum(cap, value)
        return np.where(cap >= 1.0, blended, np.clip(soft_minimum(blended, cap, self.softness), 0.0, 1.0))


#: The search: each gated defect's (threshold, power), on these grids.
GRID: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "blur": ((0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5), (0.5, 0.75, 1.0, 1.5, 2.0)),
    "noise": ((0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8), (0.5, 0.75, 1.0, 1.5, 2.0)),
    "compression": ((0.02, 0.04, 0.06, 0.1, 0.15, 0.2), (0.25, 0.5, 0.75, 1.0)),
    "under": ((0.05, 0.1, 0.15, 0.2, 0.3, 0.4), (0.5, 0.75, 1.0, 1.5, 2.0)),
    "over": ((0.05, 0.1, 0.15, 0.2, 0.3, 0.4), (0.5, 0.75, 1.0, 1.5, 2.0)),
}
SOFTNESS = (4.0, 6.0, 8.0, 12.0, 16.0)
#: The guard's SRCC as ``quality.score`` answered before the gate and the headroom in the exposure
#: measure (the shipped model, 2026-12-03; the kernel heads were fitted on these photos too, hence
#: the height), and the most either layout may lose from it (issue 17's brief allows about 0.005).
GUARD_SRCC_BEFORE = {"accurate": 0.8989, "fast": 0.9367}
SRCC_BUDGET = 0.0045
#: The most the gate may cost within one subset of the guard (its SRCC there without the gate).
#: Pooled SRCC alone hid a loss of 0.09 within ss01, a photographer's gallery, where low-key,
#: high-key and shallow-focus photos are choices that people rate highly, not defects.
SUBSET_BUDGET = 0.01
SUBSETS = ("ss01", "ss02", "ss03")


def objective(figures: dict[str, dict[str, float]], before: dict[str, dict[str, float]] | None = None) -> float:
    """Mean over layouts of: each kind's order accuracy and share of photos whose most severe step
    scores <= SEVERE, and the share of grey copies >= GREY_DROP below their original; -inf where
    the guard's SRCC falls more than SRCC_BUDGET below GUARD_SRCC_BEFORE in either layout, or,
    given ``before`` (the figures without a gate), more than SUBSET_BUDGET within a subset."""
    total = 0.0
    for layout, f in figures.items():
        if f["guard srcc"] < GUARD_SRCC_BEFORE[layout] - SRCC_BUDGET:
            return -math.inf
        if before is not None and any(f[f"guard srcc {s}"] < before[layout][f"guard srcc {s}"] - SUBSET_BUDGET
                                      for s in SUBSETS):
            return -math.inf
        total += sum(f[f"{kind} order"] for kind in KINDS)
        total += sum(f[f"{kind} severe share"] for kind in KINDS if kind != "desaturate")
        total += f["grey drop share"]
    return total / len(figures)


def search(evaluation: Evaluation, rounds: int = 3, orders: int = 12) -> tuple[Gate, dict[str, dict[str, float]]]:
    """Coordinate search from no gate: one defect's (threshold, power) at a time, then the
    softness, ``rounds`` times; under the SRCC budget the result depends on the order in which
    the defects are visited, so ``orders`` orders are tried (the grid's, then shuffled with a
    fixed seed) and the best result kept."""
    before = evaluation.figures(None)
    names = list(GRID)
    rng = np.random.RandomState(CALIBRATION_SEED)
    best_overall, best_gate = objective(before, before), Gate({}, 8.0)
    for attempt in range(orders):
        order = names if attempt == 0 else [str(name) for name in rng.permutation(names)]
        caps: dict[str, tuple[float, float]] = {}
        softness = 8.0
        best = objective(before, before)
        for _ in range(rounds):
            for name in order:
                thresholds, powers = GRID[name]
                for threshold, power in itertools.product(thresholds, powers):
                    trial = caps | {name: (threshold, power)}
                    value = objective(evaluation.figures(Gate(trial, softness)), before)
                    if value > best + 1e-9:
                        best, caps = value, trial
            for trial_softness in SOFTNESS:
                value = objective(evaluation.figures(Gate(caps, trial_softness)), before)
                if value > best + 1e-9:
                    best, softness = value, trial_softness
        print(f"  order {attempt + 1}/{orders} {order}: objective {best:.4f}", flush=True)
        if best > best_overall + 1e-9:
            best_overall, best_gate = best, Gate(caps, softness)
    return best_gate, before


def fit(work: Path) -> None:
    """Search the gate on the cache; print it with the figures before (no gate) and after."""
    evaluation = Evaluation(work)
    gate, before = search(evaluation)
    after = evaluation.figures(gate)
    network = {label: float(stats.spearmanr(evaluation.scores("guard", "network head", g), evaluation.mos).statistic)
               for label, g in (("before", None), ("after", gate))}
    print(f"gate: {dict(sorted(gate.caps.items()))}, softness {gate.softness}")
    for layout in LAYOUTS:
        print(f"\n{layout}: {'figure':<26} {'no gate':>9} {'gate':>9}")
        for key in after[layout]:
            print(f"{'':<{len(layout) + 1}} {key:<26} {before[layout][key]:>9.4f} {after[layout][key]:>9.4f}")
    print(f"\nnetwork head alone (never trained on the guard photos), guard SRCC: "
          f"{network['before']:.4f} -> {network['after']:.4f}")
    report = {"gate": {"caps": gate.caps, "softness": gate.softness},
              "before": before, "after": after, "network_head_guard_srcc": network}
    (work / "gate-report.json").write_text(json.dumps(report, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("extract", "remeasure", "fit"))
    parser.add_argument("--biq", type=Path, default=Path("/data/BIQ2021"))
    parser.add_argument("--work", type=Path, default=Path("var/gate"))
    parser.add_argument("--photos", type=int, default=120)
    parser.add_argument("--guard", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=damage.LADDER_LEVELS)
    options = parser.parse_args()
    if options.step == "extract":
        extract(options.biq, options.work, options.photos, options.guard, options.steps)
    elif options.step == "remeasure":
        remeasure(options.biq, options.work, options.photos, options.guard, options.steps)
    else:
        fit(options.work)


if __name__ == "__main__":
    main()
