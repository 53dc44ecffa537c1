"""Night over night: new low images, dropped scores, gone objects and prefixes whose median moved."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.conftest import row, write
from worker.report.columns import read_audit
from worker.report.night import compare_nights
from worker.report.summary import ReportOptions


def nights(tmp_path: Path, now_rows, before_rows, fmt: str = "parquet"):
    now = read_audit([write(tmp_path / f"now.{fmt}", now_rows)])
    before = read_audit([write(tmp_path / f"before.{fmt}", before_rows)], for_comparison=True)
    return now, before


BEFORE = [
    row("a/same.jpg", 0.8, etag="s"),
    row("a/rose.jpg", 0.3),
    row("a/drop-same-bytes.jpg", 0.9, etag="x"),
    row("a/drop-replaced.jpg", 0.8, etag="x"),
    row("a/small-drop.jpg", 0.5),
    row("a/edge-drop.jpg", 0.6),
    row("b/gone-1.jpg", 0.5),
    row("b/gone-2.jpg", status="failed", code="AccessDenied"),
    row("a/dup.jpg", 0.9, etag="d1"),
    row("a/failed-now.jpg", 0.7),
    row("a/failed-before.jpg", status="failed", code="InvalidImage"),
    row("a/dup.jpg", 0.2, etag="d2"),  # listed twice (overlapping shards): the first row counts
]
NOW = [
    row("c/new-ok.jpg", 0.9),
    row("a/same.jpg", 0.8, etag="s"),
    row("a/rose.jpg", 0.7),
    row("a/drop-same-bytes.jpg", 0.5, etag="x"),
    row("a/drop-replaced.jpg", 0.3, etag="y"),
    row("a/small-drop.jpg", 0.45),
    row("a/edge-drop.jpg", 0.5),
    row("c/new-low-2.jpg", 0.3),
    row("a/dup.jpg", 0.6, etag="d1"),
    row("a/failed-now.jpg", status="failed", code="RequestTimeout"),
    row("a/failed-before.jpg", 0.1),
    row("a/new-low.jpg", 0.1),
    row("c/new-at-the-line.jpg", 0.4),
    row("c/new-failed.jpg", status="failed", code="AccessDenied"),
]


@pytest.fixture()
def night(tmp_path: Path):
    now, before = nights(tmp_path, NOW, BEFORE)
    return compare_nights(now, before, ReportOptions())


def test_new_objects(night) -> None:
    assert night.new_objects == 5
    assert night.new_low_count == 2
    assert [(c.key, c.score, c.previous, c.replaced) for c in night.new_low] == [
        ("a/new-low.jpg", 0.1, None, False), ("c/new-low-2.jpg", 0.3, None, False)]  # worst first


def test_dropped_scores_largest_drop_first(night) -> None:
    assert night.dropped_count == 4
    assert [(c.key, c.previous, c.score, c.replaced) for c in night.dropped] == [
        ("a/drop-replaced.jpg", 0.8, 0.3, True),     # -0.5, a new ETag: the object was replaced
        ("a/drop-same-bytes.jpg", 0.9, 0.5, False),  # -0.4, the same bytes scored lower
        ("a/dup.jpg", 0.9, 0.6, False),              # -0.3 from the first of its two rows
        ("a/edge-drop.jpg", 0.6, 0.5, False),        # exactly --drop (0.1) is a drop
    ]
    keys = {c.key for c in night.dropped}
    assert not keys & {"a/same.jpg", "a/rose.jpg", "a/small-drop.jpg", "a/failed-now.jpg", "a/failed-before.jpg"}


def test_gone_objects_are_counted_once(night) -> None:
    assert night.previous_objects == len(BEFORE)
    assert night.gone == 2  # b/gone-1 and b/gone-2; a/dup's second row is the same object, still here


def test_the_drop_is_an_option(tmp_path: Path) -> None:
    now, before = nights(tmp_path, NOW, BEFORE)
    night = compare_nights(now, before, ReportOptions(), drop=0.35)
    assert [c.key for c in night.dropped] == ["a/drop-replaced.jpg", "a/drop-same-bytes.jpg"]
    night = compare_nights(now, before, ReportOptions(), drop=0.04)
    assert night.dropped_count == 5 and night.dropped[-1].key == "a/small-drop.jpg"


def test_new_low_uses_the_low_line(tmp_path: Path) -> None:
    now, before = nights(tmp_path, NOW, BEFORE)
    night = compare_nights(now, before, ReportOptions(low=0.41))
    assert [c.key for c in night.new_low] == ["a/new-low.jpg", "c/new-low-2.jpg", "c/new-at-the-line.jpg"]


def test_prefix_medians_that_moved(tmp_path: Path) -> None:
    before = [*(row(f"p/{i}.jpg", s) for i, s in enumerate([0.5, 0.6, 0.7])),
              *(row(f"q/{i}.jpg", s) for i, s in enumerate([0.5, 0.5])),
              *(row(f"r/{i}.jpg", s) for i, s in enumerate([0.8, 0.8, 0.9, 0.7])),
              row("top.jpg", 0.2), row("gone/1.jpg", 0.5)]
    now = [*(row(f"p/{i}.jpg", s) for i, s in enumerate([0.5, 0.62, 0.7])),      # median +0.02: listed
           *(row(f"q/{i}.jpg", s) for i, s in enumerate([0.5, 0.519])),          # +0.0095: not
           *(row(f"r/{i}.jpg", s) for i, s in enumerate([0.3, 0.3, 0.2, 0.4, 0.9])),  # 0.8 → 0.3
           row("top.jpg", 0.3), row("top-2.jpg", status="failed"),                # +0.1
           row("new/1.jpg", 0.1)]                                                # no previous median
    night = compare_nights(*nights(tmp_path, now, before), ReportOptions())
    assert [(m.label, m.before, m.after, m.objects) for m in night.moves] == [
        ("r/", pytest.approx(0.8), pytest.approx(0.3), 5),
        ("(top level)", pytest.approx(0.2), pytest.approx(0.3), 1),
        ("p/", pytest.approx(0.6), pytest.approx(0.62), 3),
    ]
    assert night.moves[0].delta == pytest.approx(-0.5)
    wider = compare_nights(*nights(tmp_path, now, before), ReportOptions(), shift=0.2)
    assert [m.label for m in wider.moves] == ["r/"]
    narrower = compare_nights(*nights(tmp_path, now, before), ReportOptions(), shift=0.009)
    assert [m.label for m in narrower.moves] == ["r/", "(top level)", "p/", "q/"]


def test_several_buckets_are_different_objects(tmp_path: Path) -> None:
    before = [row("x.jpg", 0.9, bucket="one"), row("a/y.jpg", 0.9, bucket="one"), row("a/y.jpg", 0.8, bucket="two")]
    now = [row("x.jpg", 0.5, bucket="one"), row("x.jpg", 0.1, bucket="two"), row("a/y.jpg", 0.3, bucket="two")]
    night = compare_nights(*nights(tmp_path, now, before), ReportOptions())
    assert [(c.bucket, c.key) for c in night.new_low] == [("two", "x.jpg")]
    assert [(c.bucket, c.key, c.previous, c.score) for c in night.dropped] == [
        ("two", "a/y.jpg", 0.8, 0.3), ("one", "x.jpg", 0.9, 0.5)]
    assert night.new_objects == 1 and night.gone == 1  # one's a/y.jpg
    assert {m.label for m in night.moves} == {"one: (top level)", "two: a/"}


def test_one_bucket_each_night_but_different_buckets(tmp_path: Path) -> None:
    night = compare_nights(*nights(tmp_path, [row("k.jpg", 0.1, bucket="new")], [row("k.jpg", 0.9, bucket="old")]),
                           ReportOptions())
    assert night.new_objects == 1 and night.gone == 1 and night.dropped_count == 0


def test_listings_are_bounded_with_exact_totals(tmp_path: Path) -> None:
    before = [row(f"d{i % 30}/{i}.jpg", 0.9) for i in range(60)]
    now = [*(row(f"d{i % 30}/{i}.jpg", 0.9 - 0.01 * (i % 50) - 0.2) for i in range(60)),
           *(row(f"n/{i}.jpg", 0.39 - 0.001 * i) for i in range(25))]
    night = compare_nights(*nights(tmp_path, now, before), ReportOptions(list_limit=7))
    assert night.new_low_count == 25 and len(night.new_low) == 7
    assert [c.key for c in night.new_low] == [f"n/{i}.jpg" for i in range(24, 17, -1)]  # the worst
    assert night.dropped_count == 60 and len(night.dropped) == 7
    drops = [c.previous - c.score for c in night.dropped]
    assert drops == sorted(drops, reverse=True) and drops[0] == pytest.approx(0.69)
    assert len(night.moves) == 7
    assert night.new_objects == 25 and night.gone == 0


def test_the_command_s_way_after_dropping_details(tmp_path: Path) -> None:
    now, before = nights(tmp_path, NOW, BEFORE, fmt="csv")
    now.drop_details()
    night = compare_nights(now, before, ReportOptions())
    assert (night.new_objects, night.new_low_count, night.dropped_count, night.gone) == (5, 2, 4, 2)
    assert night.previous_files == (str(tmp_path / "before.csv"),)


@pytest.mark.parametrize(("drop", "shift"), [(0, 0.02), (-0.1, 0.02), (0.1, 0), (0.1, -1)])
def test_invalid_drop_or_shift(tmp_path: Path, drop: float, shift: float) -> None:
    now, before = nights(tmp_path, NOW, BEFORE)
    with pytest.raises(ValueError, match="must be positive"):
        compare_nights(now, before, ReportOptions(), drop=drop, shift=shift)


def test_empty_nights(tmp_path: Path) -> None:
    rows = [row("a/1.jpg", 0.1), row("a/2.jpg", 0.9)]
    night = compare_nights(*nights(tmp_path, rows, []), ReportOptions())
    assert (night.new_objects, night.new_low_count, night.gone, night.previous_objects) == (2, 1, 0, 0)
    night = compare_nights(*nights(tmp_path, [], rows), ReportOptions())
    assert (night.new_objects, night.dropped_count, night.gone, night.moves) == (0, 0, 2, [])
    several = [row("a/1.jpg", 0.1, bucket="x"), row("a/1.jpg", 0.1, bucket="y")]
    night = compare_nights(*nights(tmp_path, [], several), ReportOptions())
    assert night.gone == 2
