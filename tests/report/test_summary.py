"""The page's numbers, each checked against a computation of its own over the rows written
(plain Python over the rows, never the module's helpers)."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from tests.report.conftest import STATUSES, audit_of, row, write
from worker.report.columns import read_audit
from worker.report.summary import ReportOptions, summarise

PREFIXES = ["photos/", "thumbs/", "", "docs/", "archive/", "misc/", "raw/", "u/"]
WEIGHTS = [0.30, 0.20, 0.15, 0.12, 0.09, 0.07, 0.05, 0.02]
FAIL_CODES = ["AccessDenied", "InvalidImage", "RequestTimeout"]
SKIP_CODES = ["too_large", "directory_marker"]
N = 3000


def random_rows(seed: int = 20260301) -> list:
    """A few thousand rows over several prefixes (one of them the top level) and every status."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(N):
        prefix = PREFIXES[int(rng.choice(len(PREFIXES), p=WEIGHTS))]
        key = f"{prefix}{'sub/' if i % 3 == 0 else ''}img-{i:05d}.jpg"
        size = int(rng.integers(0, 5_000_000))
        draw = rng.random()
        if draw < 0.82:
            score = round(float(rng.random()), 3)
            dims: dict[str, float] = {}
            kind = int(rng.integers(0, 4))
            if kind == 1:
                dims = {"BlurScore": round(float(rng.random()), 3)}
            elif kind == 2:
                dims = {"NoiseScore": round(float(rng.random()), 3)}
            elif kind == 3:
                dims = {"BlurScore": round(float(rng.random()), 3), "NoiseScore": round(float(rng.random()), 3)}
            rows.append(row(key, score, size=size, dims=dims))
        elif draw < 0.84:
            rows.append(row(key, None, size=size))  # scored without a score: not in the distribution
        elif draw < 0.92:
            code = FAIL_CODES[int(rng.integers(0, 3))] if rng.random() < 0.9 else None
            rows.append(row(key, status="failed", size=size, code=code, message=f"message {i}", http=403))
        elif draw < 0.95:
            rows.append(row(key, status="missing", size=size, code="NoSuchKey" if i % 2 else None,
                            message="gone", http=404))
        else:
            rows.append(row(key, status="skipped", size=size, code=SKIP_CODES[i % 2], message="skipped"))
    # boundaries: exactly the line, exactly 1, exactly 0, bin edges
    for i, score in enumerate([0.4, 1.0, 0.0, 0.05, 0.35, 0.95, 0.4, 0.399]):
        rows.append(row(f"edges/{i}.jpg", score, size=7))
    return rows


@pytest.fixture(scope="module")
def rows() -> list:
    return random_rows()


@pytest.fixture(scope="module")
def audit(rows, tmp_path_factory: pytest.TempPathFactory):
    return read_audit([write(tmp_path_factory.mktemp("summary") / "night.parquet", rows)])


def top(key: str) -> str:
    return key.split("/", 1)[0] + "/" if "/" in key else ""


def scored_rows(rows) -> list[tuple[int, object]]:
    return [(i, r) for i, r in enumerate(rows) if r.status == "scored" and r.score is not None]


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default method), by hand."""
    ordered = sorted(values)
    h = (len(ordered) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


def expected_bins(scores: list[float], bins: int = 20) -> list[int]:
    counts = [0] * bins
    for s in scores:
        thousandths = round(s * 1000)  # scores are written with 3 decimals: exact integer arithmetic
        counts[min(thousandths * bins // 1000, bins - 1)] += 1
    return counts


def expected_defect(dims: dict[str, float]) -> str:
    if not dims:
        return "none"
    relative = [(dims[n] / 0.5, name) for n, name in (("BlurScore", "blur"), ("NoiseScore", "noise")) if n in dims]
    value, name = min(relative, key=lambda vn: vn[0])  # min keeps the first of equals: blur before noise
    return name if value < 1 else "mild"


# -- totals ----------------------------------------------------------------------------------------


def test_totals_by_status_and_reason(rows, audit) -> None:
    summary = summarise(audit, ReportOptions())
    totals = summary.totals
    assert totals.objects == len(rows)
    assert totals.bytes == sum(r.size for r in rows)
    expected = [(s, sum(1 for r in rows if r.status == s), sum(r.size for r in rows if r.status == s))
                for s in STATUSES]
    assert totals.by_status == expected
    assert all(count for _, count, _ in expected)  # the file has every status
    reasons = Counter((r.status, r.error_code or "(no code)") for r in rows if r.status != "scored")
    assert {(s, c): n for s, c, n in totals.reasons} == reasons
    assert len(totals.reasons) == len(reasons)
    assert [n for _, _, n in totals.reasons] == sorted(reasons.values(), reverse=True)
    assert totals.count("failed") == sum(1 for r in rows if r.status == "failed")
    assert totals.count("nonesuch") == 0


# -- distribution ----------------------------------------------------------------------------------


def test_the_overall_distribution(rows, audit) -> None:
    overall = summarise(audit, ReportOptions()).overall
    scores = [r.score for _, r in scored_rows(rows)]
    assert overall.scored == len(scores)
    assert overall.counts == expected_bins(scores)
    assert sum(overall.counts) == len(scores)
    assert overall.median == pytest.approx(statistics.median(scores), abs=1e-12)
    assert overall.p10 == pytest.approx(quantile(scores, 0.1), abs=1e-12)
    assert overall.p90 == pytest.approx(quantile(scores, 0.9), abs=1e-12)
    assert overall.mean == pytest.approx(statistics.fmean(scores), abs=1e-12)
    assert overall.low == sum(1 for s in scores if s < 0.4)
    assert overall.low_share == pytest.approx(overall.low / len(scores))


def test_bin_edges_and_the_line(tmp_path: Path) -> None:
    scores = [0.0, 0.049, 0.05, 0.35, 0.399, 0.4, 0.4, 0.95, 0.999, 1.0, 1.0]
    audit = audit_of_scores(scores, tmp_path)
    overall = summarise(audit, ReportOptions()).overall
    expected = [0] * 20
    for bin_ in (0, 0, 1, 7, 7, 8, 8, 19, 19, 19, 19):
        expected[bin_] += 1
    assert overall.counts == expected
    assert overall.low == 5  # 0.4 is not low: low means under the line
    assert summarise(audit, ReportOptions(low=0.41)).overall.low == 7
    assert summarise(audit, ReportOptions(low=1.0)).overall.low == 9
    assert summarise(audit, ReportOptions(bins=4)).overall.counts == [3, 4, 0, 4]


def audit_of_scores(scores: list[float], directory: Path):
    return audit_of(directory, [row(f"s/{i}.jpg", s) for i, s in enumerate(scores)])


@pytest.mark.parametrize("low", [0.25, 0.5, 0.9])
def test_the_low_line_is_an_option(rows, audit, low: float) -> None:
    summary = summarise(audit, ReportOptions(low=low))
    assert summary.overall.low == sum(1 for _, r in scored_rows(rows) if r.score < low)


# -- prefixes --------------------------------------------------------------------------------------


def expected_prefixes(rows, low: float = 0.4) -> dict[str, dict]:
    groups: dict[str, dict] = defaultdict(lambda: {"objects": 0, "bytes": 0, "scores": []})
    for r in rows:
        group = groups[top(r.key) or "(top level)"]
        group["objects"] += 1
        group["bytes"] += r.size
        if r.status == "scored" and r.score is not None:
            group["scores"].append(r.score)
    for group in groups.values():
        scores = group["scores"]
        group["median"] = statistics.median(scores) if scores else None
        group["low"] = sum(1 for s in scores if s < low)
    return dict(groups)


def test_per_prefix_numbers(rows, audit) -> None:
    summary = summarise(audit, ReportOptions(low=0.5))
    expected = expected_prefixes(rows, low=0.5)
    assert summary.prefixes_total == len(expected)
    assert {p.label for p in summary.prefixes} == set(expected)
    assert [p.objects for p in summary.prefixes] == sorted((g["objects"] for g in expected.values()), reverse=True)
    for stat in summary.prefixes:
        group = expected[stat.label]
        assert (stat.objects, stat.bytes, stat.distribution.scored) == (group["objects"], group["bytes"],
                                                                        len(group["scores"])), stat.label
        assert stat.distribution.median == pytest.approx(group["median"])
        assert stat.distribution.low == group["low"]
        assert stat.distribution.low_share == pytest.approx(group["low"] / len(group["scores"]))
        assert stat.distribution.counts == expected_bins(group["scores"])
    assert sum(p.objects for p in summary.prefixes) == len(rows)
    # the largest, by scored images, have their own chart
    charted = sorted(expected, key=lambda label: -len(expected[label]["scores"]))[:12]
    assert [p.label for p in summary.charted] == charted


def test_main_defect_per_prefix(rows, audit) -> None:
    summary = summarise(audit, ReportOptions())
    by_prefix: dict[str, Counter] = defaultdict(Counter)
    for _, r in scored_rows(rows):
        if r.score < 0.4:
            by_prefix[top(r.key) or "(top level)"][expected_defect(r.dimensions)] += 1
    words = {"blur": "blurred", "noise": "grainy (noise)", "none": "no sub-scores", "mild": "no single defect"}
    for stat in summary.prefixes:
        counts = by_prefix.get(stat.label)
        if not counts:
            assert stat.main_defect is None
            continue
        most = max(counts.values())
        assert any(stat.main_defect.startswith(words[name]) for name, n in counts.items() if n == most), stat


def test_prefixes_beyond_the_limit_are_summed_in_one_row(rows, audit) -> None:
    summary = summarise(audit, ReportOptions(prefix_rows=3, prefix_charts=2))
    expected = expected_prefixes(rows)
    by_size = sorted(expected, key=lambda label: -expected[label]["objects"])
    assert len({expected[label]["objects"] for label in by_size}) == len(by_size)  # no ties in this file
    shown, rest = by_size[:3], by_size[3:]
    assert [p.label for p in summary.prefixes] == [*shown, f"({len(rest)} more prefixes)"]
    assert summary.prefixes_total == len(expected)
    other = summary.prefixes[-1]
    assert other.objects == sum(expected[label]["objects"] for label in rest)
    assert other.bytes == sum(expected[label]["bytes"] for label in rest)
    rest_scores = [s for label in rest for s in expected[label]["scores"]]
    assert other.distribution.scored == len(rest_scores)
    assert other.distribution.median == pytest.approx(statistics.median(rest_scores))
    assert other.distribution.low == sum(1 for s in rest_scores if s < 0.4)
    assert sum(p.objects for p in summary.prefixes) == len(rows)
    assert len(summary.charted) == 2


def test_no_overflow_row_when_every_prefix_fits(rows, audit) -> None:
    every = len(expected_prefixes(rows))
    summary = summarise(audit, ReportOptions(prefix_rows=every))
    assert len(summary.prefixes) == summary.prefixes_total == every
    assert not any("more prefixes" in p.label for p in summary.prefixes)


# -- defects, worst and best ------------------------------------------------------------------------


def test_defects_of_the_low_images(rows, audit) -> None:
    summary = summarise(audit, ReportOptions())
    low = [(i, r) for i, r in scored_rows(rows) if r.score < 0.4]
    counts = Counter(expected_defect(r.dimensions) for _, r in low)
    assert {d.name: d.count for d in summary.defects} == dict(counts)
    assert [d.count for d in summary.defects] == sorted(counts.values(), reverse=True)
    for d in summary.defects:
        assert d.share == pytest.approx(counts[d.name] / len(low))
        members = [(r.score, i, r) for i, r in low if expected_defect(r.dimensions) == d.name]
        worst = [f"oss://photos/{r.key}" for _, _, r in sorted(members, key=lambda t: (t[0], t[1]))[:3]]
        assert d.examples == worst


def expected_examples(rows, n: int) -> tuple[list[str], list[str]]:
    scored = scored_rows(rows)
    ascending = sorted(scored, key=lambda ir: (ir[1].score, ir[0]))
    worst = ascending[:n]
    rest = ascending[n:]
    best = sorted(rest, key=lambda ir: (-ir[1].score, ir[0]))[:n]
    return [r.key for _, r in worst], [r.key for _, r in best]


@pytest.mark.parametrize("n", [1, 12, 40])
def test_worst_and_best(rows, audit, n: int) -> None:
    summary = summarise(audit, ReportOptions(examples=n))
    worst, best = expected_examples(rows, n)
    assert [e.key for e in summary.worst] == worst
    assert [e.key for e in summary.best] == best
    assert [e.score for e in summary.worst] == sorted(e.score for e in summary.worst)
    assert [e.score for e in summary.best] == sorted((e.score for e in summary.best), reverse=True)
    example = summary.worst[0]
    source = next(r for r in rows if r.key == example.key)
    assert (example.bucket, example.etag, example.size, example.score) == ("photos", source.etag, source.size,
                                                                           source.score)
    assert example.dimensions == {k: pytest.approx(v, abs=1e-3) for k, v in source.dimensions.items()}
    assert summarise(audit, ReportOptions(examples=0)).worst == []


def test_ties_are_in_file_order(tmp_path: Path) -> None:
    scores = [0.5, 0.2, 0.9, 0.2, 0.9, 0.5, 0.2, 0.9]
    audit = audit_of(tmp_path, [row(f"t/{i}.jpg", s) for i, s in enumerate(scores)])
    summary = summarise(audit, ReportOptions(examples=2))
    assert [e.key for e in summary.worst] == ["t/1.jpg", "t/3.jpg"]
    assert [e.key for e in summary.best] == ["t/2.jpg", "t/4.jpg"]
    same = audit_of(tmp_path, [row(f"u/{i}.jpg", 0.7) for i in range(6)], "same.parquet")
    summary = summarise(same, ReportOptions(examples=2))
    assert [e.key for e in summary.worst] == ["u/0.jpg", "u/1.jpg"]
    assert [e.key for e in summary.best] == ["u/2.jpg", "u/3.jpg"]


def test_with_fewer_than_twice_n_no_image_is_shown_twice(tmp_path: Path) -> None:
    audit = audit_of(tmp_path, [row(f"f/{i}.jpg", s) for i, s in enumerate([0.3, 0.9, 0.1, 0.6, 0.5])]
                     + [row("f/x.jpg", status="failed", code="X")])
    summary = summarise(audit, ReportOptions(examples=3))
    assert [e.key for e in summary.worst] == ["f/2.jpg", "f/0.jpg", "f/4.jpg"]
    assert [e.key for e in summary.best] == ["f/1.jpg", "f/3.jpg"]
    one = audit_of(tmp_path, [row("only.jpg", 0.5)], "one.parquet")
    summary = summarise(one, ReportOptions(examples=3))
    assert [e.key for e in summary.worst] == ["only.jpg"] and summary.best == []


# -- failures --------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 5, 1000])
def test_failures_grouped_by_status_and_code(rows, audit, limit: int) -> None:
    summary = summarise(audit, ReportOptions(list_limit=limit))
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for r in rows:
        if r.status in ("failed", "missing"):
            groups[(r.status, r.error_code or "(no code)")].append(r)
    assert {(g.status, g.code): g.count for g in summary.failures} == {k: len(v) for k, v in groups.items()}
    assert [g.count for g in summary.failures] == sorted((len(v) for v in groups.values()), reverse=True)
    for g in summary.failures:
        members = groups[(g.status, g.code)]
        assert g.rows == [{"bucket": r.bucket, "key": r.key, "http_status": r.http_status,
                           "error_message": r.error_message} for r in members[:limit]]
    # skipped rows are reasons, not failures
    assert not any(g.status == "skipped" for g in summary.failures)


# -- nothing to show -------------------------------------------------------------------------------


def test_a_run_where_nothing_scored(tmp_path: Path) -> None:
    rows = [row("a/1.jpg", status="failed", code="AccessDenied", size=10),
            row("b/2.jpg", status="skipped", code="too_large", size=20), row("3.jpg", None, size=30)]
    summary = summarise(audit_of(tmp_path, rows), ReportOptions())
    overall = summary.overall
    assert (overall.scored, overall.low, overall.median, overall.mean, overall.p10, overall.p90) == (
        0, 0, None, None, None, None)
    assert overall.counts == [0] * 20 and overall.low_share is None
    assert summary.totals.objects == 3 and summary.totals.bytes == 60
    assert summary.totals.count("scored") == 1  # scored, but without a score
    assert summary.worst == [] and summary.best == [] and summary.defects == [] and summary.charted == []
    assert [(p.label, p.objects, p.distribution.scored, p.main_defect) for p in summary.prefixes] == [
        ("a/", 1, 0, None), ("b/", 1, 0, None), ("(top level)", 1, 0, None)]
    assert [(g.status, g.code, g.count) for g in summary.failures] == [("failed", "AccessDenied", 1)]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_an_empty_file(tmp_path: Path, fmt: str) -> None:
    summary = summarise(audit_of(tmp_path, [], f"empty.{fmt}"), ReportOptions())
    assert summary.totals.objects == 0 and summary.totals.bytes == 0
    assert summary.totals.by_status == [(s, 0, 0) for s in STATUSES]
    assert summary.totals.reasons == []
    assert summary.overall.scored == 0 and summary.overall.median is None
    assert summary.prefixes == [] and summary.prefixes_total == 0
    assert summary.failures == [] and summary.defects == [] and summary.worst == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"low": 0}, "low-quality line"), ({"low": 1.5}, "low-quality line"), ({"low": -0.2}, "low-quality line"),
    ({"low": math.nan}, "low-quality line"),
    ({"examples": -1}, "examples"), ({"list_limit": -1}, "list_limit"), ({"prefix_rows": -1}, "prefix_rows"),
    ({"prefix_charts": -1}, "prefix_charts"), ({"bins": 0}, "bins"), ({"bins": 101}, "bins"),
])
def test_report_options_are_checked(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ReportOptions(**kwargs)


def test_report_options_at_their_limits() -> None:
    assert ReportOptions(low=1.0, examples=0, list_limit=0, prefix_rows=0, bins=1).bins == 1
    assert ReportOptions(bins=100).bins == 100


def test_failure_rows_are_bounded_over_all_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import worker.report.summary as summary_module

    monkeypatch.setattr(summary_module, "FAILURE_ROWS", 25)
    sizes = [12, 10, 8, 6, 4, 2]  # distinct sizes: the order of the groups is the order of the sizes
    rows = [row(f"f/{code}-{i}.jpg", status="failed", code=f"C{code}") for code, n in enumerate(sizes)
            for i in range(n)]
    summary = summarise(audit_of(tmp_path, rows), ReportOptions(list_limit=10))
    assert [(g.code, g.count, len(g.rows)) for g in summary.failures] == [
        ("C0", 12, 10), ("C1", 10, 10), ("C2", 8, 5), ("C3", 6, 0), ("C4", 4, 0), ("C5", 2, 0)]
    assert [r["key"] for r in summary.failures[2].rows] == [f"f/2-{i}.jpg" for i in range(5)]
    # a list limit above the total bound still lists one whole group
    summary = summarise(audit_of(tmp_path, rows, "again.parquet"), ReportOptions(list_limit=40))
    assert [len(g.rows) for g in summary.failures] == [12, 10, 8, 6, 4, 0]
