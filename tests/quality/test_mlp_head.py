"""The network head: its stored form computes the network that was trained (a numpy reference).

Training (:mod:`worker.quality.training.finetune`) needs torch and a GPU; what the runtime
must get right is the folding of its batch normalisation and the crops' sample standard
deviation, which these tests check against the trained network written out by hand.
"""

from __future__ import annotations

import math

import numpy as np

from worker.quality.head import Head, MlpHead, head_input, load_head
from worker.quality.training.fit import fit_head

FEATURES, HIDDEN, CROPS = 5, 4, 3


def _trained(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"weight": rng.uniform(0.5, 2.0, 3 * FEATURES), "bias": rng.normal(size=3 * FEATURES),
            "running_mean": rng.normal(size=3 * FEATURES), "running_var": rng.uniform(0.1, 3.0, 3 * FEATURES),
            "w1": rng.normal(size=(3 * FEATURES, HIDDEN)) / 4, "b1": rng.normal(size=HIDDEN) / 4,
            "w2": rng.normal(size=HIDDEN) / 4, "b2": np.asarray(0.5)}


def _network_as_trained(net: dict[str, np.ndarray], views: np.ndarray) -> np.ndarray:
    """What training computed: whole view, crop mean, crop *sample* std → BN → Linear → GELU → Linear."""
    crops = views[:, 1:]
    x = np.concatenate([views[:, 0], crops.mean(axis=1), crops.std(axis=1, ddof=1)], axis=1)
    z = (x - net["running_mean"]) / np.sqrt(net["running_var"] + 1e-5) * net["weight"] + net["bias"]
    h = z @ net["w1"] + net["b1"]
    h = np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))))(h)
    return h @ net["w2"] + net["b2"]


def _head(net: dict[str, np.ndarray]) -> MlpHead:
    norm = {k: net[k].copy() for k in ("weight", "bias", "running_mean", "running_var")}
    return MlpHead.from_training(norm, net["w1"], net["b1"], net["w2"], float(net["b2"]), CROPS, FEATURES)


def test_the_stored_head_computes_the_trained_network_from_the_runtime_input() -> None:
    rng = np.random.default_rng(7)
    net = _trained(rng)
    views = rng.normal(size=(6, 1 + CROPS, FEATURES))
    expected = np.clip(_network_as_trained(net, views), 0, 1)
    got = _head(net).predict(head_input(views, np.zeros((6, 12)), CROPS, use_measures=False))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)  # head_input is float32
    assert expected.min() > 0 and expected.max() < 1  # the comparison is not of clipped constants


def test_scores_are_clipped_to_0_1() -> None:
    net = _trained(np.random.default_rng(1))
    x = np.zeros((2, 3 * FEATURES))
    for b2, bound in ((50.0, 1.0), (-50.0, 0.0)):
        head = _head({**net, "b2": np.asarray(b2)})
        assert (head.predict(x) == bound).all()


def test_save_and_load_keep_the_kind_and_store_w1_in_float16(tmp_path) -> None:
    net = _trained(np.random.default_rng(2))
    head = _head(net)
    head.save(tmp_path / "mlp.npz")
    again = load_head(tmp_path / "mlp.npz")
    assert isinstance(again, MlpHead) and again.crops == CROPS and not again.use_measures
    np.testing.assert_array_equal(again.w1, head.w1.astype(np.float16).astype(np.float64))
    x = np.random.default_rng(3).normal(size=(5, 3 * FEATURES))
    np.testing.assert_allclose(again.predict(x), head.predict(x), atol=2e-3)  # float16 weights, float64 sums
    again.save(tmp_path / "again.npz")  # saving what was loaded is lossless
    np.testing.assert_array_equal(load_head(tmp_path / "again.npz").predict(x), again.predict(x))


def test_load_head_reads_kernel_heads_that_predate_the_kind_field(tmp_path) -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(60, 6)), rng.uniform(size=60)
    fit_head(x, y, crops=0, use_backbone=False, use_measures=True, components=4).save(tmp_path / "k.npz")
    assert "kind" not in np.load(tmp_path / "k.npz").files
    assert isinstance(load_head(tmp_path / "k.npz"), Head)


def test_a_head_re_targeted_to_more_crops_and_a_larger_whole_view_reads_them_the_same_way(tmp_path) -> None:
    """with_views changes what the head reads, not how: the same pooled input, the same score."""
    net = _trained(np.random.default_rng(5))
    head = _head(net)
    wider = head.with_views(9, 320)
    assert (wider.crops, wider.whole_side) == (9, 320) and (head.crops, head.whole_side) == (CROPS, 224)
    views = np.random.default_rng(6).normal(size=(4, 1 + 9, FEATURES))
    np.testing.assert_array_equal(wider.predict(head_input(views, np.zeros((4, 12)), 9, use_measures=False)),
                                  head.predict(head_input(views, np.zeros((4, 12)), 9, use_measures=False)))
    wider.save(tmp_path / "wider.npz")
    again = load_head(tmp_path / "wider.npz")
    assert (again.crops, again.whole_side) == (9, 320)


def test_heads_saved_before_whole_views_had_a_side_read_as_224(tmp_path) -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(60, 6)), rng.uniform(size=60)
    fit_head(x, y, crops=0, use_backbone=True, use_measures=True, whole_side=256, components=4).save(tmp_path / "k.npz")
    assert load_head(tmp_path / "k.npz").whole_side == 256
    with np.load(tmp_path / "k.npz") as f:
        arrays = {name: f[name] for name in f.files}
    np.savez(tmp_path / "old.npz", **{**arrays, "config": arrays["config"][:3]})  # the three-field form
    old = load_head(tmp_path / "old.npz")
    assert old.whole_side == 224 and old.crops == 0 and old.use_backbone and old.use_measures
