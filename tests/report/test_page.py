"""The rendered page: user data escaped, nothing loaded from the network, numbers in data
attributes equal to the summary, charts accessible, and a size that does not grow with the bucket."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from tests.report.conftest import audit_of, row, write, write_columns
from worker.report.columns import read_audit
from worker.report.night import compare_nights
from worker.report.page import PageMeta, render_page
from worker.report.summary import ReportOptions, summarise

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = "\"><img src=x onerror=alert(2)>"
QUOTES = "it's \"quoted\" & <b>bold</b>"
HOSTILE = [SCRIPT, BREAKOUT, QUOTES]


def meta(title: str = "Audit", note: str = "Thumbnails were not fetched.") -> PageMeta:
    return PageMeta(title=title, generated_at=datetime(2026, 3, 1, tzinfo=UTC), version="1.2.3", thumbnail_note=note)


class Elements(HTMLParser):
    """Every start tag with its attributes, as the browser would parse them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def elements(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(page)
    return parser.tags


def hostile_rows() -> list:
    rows = []
    for i, bad in enumerate(HOSTILE):
        rows.append(row(f"{bad}/low-{i}.jpg", 0.1 + i / 100, dims={"BlurScore": 0.2}))
        rows.append(row(f"{bad}/high-{i}.jpg", 0.9 - i / 100))
        rows.append(row(f"dir/{bad}-{i}.jpg", status="failed", code=f"{bad}code{i}", message=f"{bad} said no {i}",
                        http=500))
        rows.append(row(f"m/{bad}{i}.jpg", status="missing", code="NoSuchKey", message=bad))
        rows.append(row(f"s/{i}.jpg", status="skipped", code=bad))
    rows.append(row(f"{SCRIPT}.jpg", 0.05, dims={"NoiseScore": 0.1}))
    return rows


@pytest.fixture()
def hostile_page(tmp_path: Path) -> str:
    rows = hostile_rows()
    now = read_audit([write(tmp_path / f"now-{SCRIPT[:7]}.parquet", rows)])
    before_rows = [replace(r, score=0.95) if r.score is not None else r for r in rows[:6]]
    before = read_audit([write(tmp_path / "before.parquet", before_rows)], for_comparison=True)
    summary = summarise(now, ReportOptions(examples=3))
    summary = replace(summary, worst=[replace(e, thumbnail_note=f"{BREAKOUT} no thumbnail",
                                              link=f"https://x.example/{BREAKOUT}") for e in summary.worst])
    night = compare_nights(now, before, summary.options, shift=0.01)
    return render_page(summary, night, meta(title=f"{SCRIPT} {BREAKOUT}", note=f"{SCRIPT} note"))


def test_user_data_is_escaped(hostile_page: str) -> None:
    page = hostile_page
    assert "<script>alert" not in page
    assert "<img src=x" not in page and "onerror=alert" not in page.replace("onerror=alert(2)&gt;", "")
    assert "<b>bold</b>" not in page
    assert page.count("<script>") == 1  # the page's own sorting script, nothing else
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # parsed as a browser would: no element carries an injected attribute, no img but data: thumbnails
    for tag, attrs in elements(page):
        assert "onerror" not in attrs and "onclick" not in attrs, (tag, attrs)
        if tag == "img":
            assert (attrs.get("src") or "").startswith("data:"), attrs
    assert not any(tag == "img" for tag, _ in elements(page))  # no thumbnail was fetched
    # the hostile strings arrive intact as text and attribute values
    values = [v for _, attrs in elements(page) for v in attrs.values() if v]
    assert any(v.startswith(SCRIPT) for v in values)        # data-prefix / data-key
    assert any(BREAKOUT in v for v in values)
    assert f"https://x.example/{BREAKOUT}" in values         # the link, as one href value


def test_hostile_strings_in_every_section(hostile_page: str) -> None:
    tags = elements(hostile_page)
    ids = {attrs.get("id") for _, attrs in tags}
    assert {"totals", "distribution", "prefixes", "defects", "worst", "best", "compare", "failures"} <= ids
    codes = {attrs.get("data-code") for _, attrs in tags if attrs.get("data-code")}
    assert {f"{bad}code{i}" for i, bad in enumerate(HOSTILE)} <= codes
    reasons = {attrs.get("data-reason") for _, attrs in tags if attrs.get("data-reason")}
    assert set(HOSTILE) <= reasons
    keys = {attrs.get("data-key") for _, attrs in tags if attrs.get("data-key")}
    assert f"{SCRIPT}.jpg" in keys
    titles = re.findall(r"<title>(.*?)</title>", hostile_page)
    assert titles[0] == "&lt;script&gt;alert(1)&lt;/script&gt; &#34;&gt;&lt;img src=x onerror=alert(2)&gt;"


def test_nothing_is_loaded_from_the_network(hostile_page: str, tmp_path: Path) -> None:
    thumb = "data:image/jpeg;base64,/9j/4AAQSkZJRg=="
    audit = audit_of(tmp_path, [row("a/1.jpg", 0.2), row("a/2.jpg", 0.8)])
    summary = summarise(audit, ReportOptions(examples=1))
    summary = replace(summary, worst=[replace(e, thumbnail=thumb, link="https://b.oss.example/a/1.jpg?sig=1")
                                      for e in summary.worst])
    with_thumbs = render_page(summary, None, meta())
    assert f'src="{thumb}"' in with_thumbs
    for page in (hostile_page, with_thumbs):
        assert not re.search(r"src\s*=\s*[\"']?\s*(https?:)?//", page, re.IGNORECASE)
        assert "<link" not in page.lower()
        assert "@import" not in page and "url(" not in page
        for tag, attrs in elements(page):
            if "src" in attrs:
                assert (attrs["src"] or "").startswith("data:"), (tag, attrs)
        assert "default-src 'none'" in page


def numbers_page(tmp_path: Path, rows: list) -> tuple[str, object]:
    summary = summarise(audit_of(tmp_path, rows), ReportOptions())
    return render_page(summary, None, meta()), summary


def mixed_rows() -> list:
    rng = np.random.default_rng(9)
    rows = [row(f"p{i % 7}/{i}.jpg", round(float(rng.random()), 3), size=int(rng.integers(0, 10**6)),
                dims={"BlurScore": round(float(rng.random()), 3)}) for i in range(500)]
    rows += [row(f"f/{i}.jpg", status="failed", code=f"E{i % 3}", size=5) for i in range(40)]
    rows += [row(f"s/{i}.jpg", status="skipped", code="too_large", size=1) for i in range(7)]
    return rows


def test_numbers_in_data_attributes_equal_the_summary(tmp_path: Path) -> None:
    page, summary = numbers_page(tmp_path, mixed_rows())
    tags = elements(page)
    metric = {attrs["data-metric"]: attrs.get("data-value") for _, attrs in tags if "data-metric" in attrs}
    totals, overall = summary.totals, summary.overall
    assert int(metric["objects"]) == totals.objects == 547
    assert int(metric["scored"]) == overall.scored == 500
    assert int(metric["low"]) == overall.low
    assert float(metric["median"]) == pytest.approx(overall.median)
    assert int(metric["bytes"]) == totals.bytes
    assert int(metric["unscored"]) == 47
    statuses = {a["data-status"]: (int(a["data-count"]), int(a["data-bytes"])) for t, a in tags
                if t == "tr" and "data-bytes" in a}
    assert statuses == {name: (n, b) for name, n, b in totals.by_status}
    reasons = {(a["data-status"], a["data-reason"]): int(a["data-count"]) for t, a in tags if "data-reason" in a}
    assert reasons == {(s, c): n for s, c, n in totals.reasons}
    bins = [int(a["data-count"]) for t, a in tags if t == "tr" and "data-bin" in a]
    assert bins == overall.counts
    bars = [int(a["data-count"]) for t, a in tags if t == "rect" and "data-bin" in a]
    assert bars[:20] == overall.counts  # the overall chart first, then one per charted prefix
    assert len(bars) == 20 * (1 + len(summary.charted))
    prefix_rows = [a["data-prefix"] for t, a in tags if t == "tr" and "data-prefix" in a]
    assert prefix_rows == [p.label for p in summary.prefixes]
    objects = re.findall(r'<tr data-prefix="[^"]*">\s*<td class="key" data-value="[^"]*">[^<]*</td>\s*'
                         r'<td class="num" data-value="(\d+)">', page)
    assert [int(n) for n in objects] == [p.objects for p in summary.prefixes]
    lows = [int(a["data-low"]) for t, a in tags if "data-low" in a]
    assert lows == [p.distribution.low for p in summary.prefixes]
    defects = {a["data-defect"]: int(a["data-count"]) for t, a in tags if "data-defect" in a}
    assert defects == {d.name: d.count for d in summary.defects}
    failures = {a["data-code"]: int(a["data-count"]) for t, a in tags if t == "details" and "data-code" in a}
    assert failures == {g.code: g.count for g in summary.failures} == {"E0": 14, "E1": 13, "E2": 13}
    worst = [a["data-key"] for t, a in tags if t == "figure" and "data-score" in a]
    assert worst == [e.key for e in summary.worst] + [e.key for e in summary.best]


def test_the_nothing_scored_notice(tmp_path: Path) -> None:
    page, _ = numbers_page(tmp_path, mixed_rows())
    assert 'id="nothing-scored"' not in page
    assert 'id="distribution"' in page
    one = audit_of(tmp_path, [row("a.jpg", 0.5), row("b.jpg", status="failed")], "one.parquet")
    assert 'id="nothing-scored"' not in render_page(summarise(one, ReportOptions()), None, meta())
    none = audit_of(tmp_path, [row("a.jpg", status="failed", code="X"), row("b.jpg", None)], "none.parquet")
    page = render_page(summarise(none, ReportOptions()), None, meta())
    assert page.count('id="nothing-scored"') == 1 and "see why below" in page
    assert 'id="distribution"' not in page and 'id="worst"' not in page and "<svg" not in page
    empty = audit_of(tmp_path, [], "empty.parquet")
    page = render_page(summarise(empty, ReportOptions()), None, meta())
    assert page.count('id="nothing-scored"') == 1 and "see why below" not in page
    assert "No object failed." in page


def test_charts_are_accessible(tmp_path: Path) -> None:
    page, summary = numbers_page(tmp_path, mixed_rows())
    svgs = re.findall(r"<svg\b[^>]*>.*?</svg>", page, re.DOTALL)
    assert len(svgs) == 1 + len(summary.charted) > 1
    for svg in svgs:
        opening = elements(svg)[0][1]
        assert opening["role"] == "img"
        title_id, desc_id = opening["aria-labelledby"].split()
        assert re.search(rf'<title id="{title_id}">[^<]+</title>', svg)
        assert re.search(rf'<desc id="{desc_id}">[^<]+</desc>', svg)
    assert f"Score histogram of {summary.overall.scored:,} scored images" in svgs[0]
    assert f"{summary.overall.low:,} score under 0.4" in svgs[0]


# -- bounded size ----------------------------------------------------------------------------------


def big_file(path: Path, scored: int, failed: int, prefixes: int, codes: int) -> Path:
    rng = np.random.default_rng(1)
    n = scored + failed
    return write_columns(
        path,
        key=[f"prefix-{int(p)}/image-{i:07d}.jpg" for i, p in enumerate(rng.integers(0, prefixes, n))],
        status=["scored"] * scored + ["failed"] * failed,
        score=[*rng.random(scored).round(3).tolist(), *([None] * failed)],
        error_code=[None] * scored + [f"SomeErrorCode{int(c)}" for c in rng.integers(0, codes, failed)],
        error_message=[None] * scored + ["The service could not process the image in time"] * failed,
        http_status=[None] * scored + [503] * failed,
        size=rng.integers(0, 10**7, n).tolist(),
        dimensions=[[("BlurScore", 0.3), ("NoiseScore", 0.6)]] * n)


def page_size(path: Path) -> int:
    summary = summarise(read_audit([path]), ReportOptions())
    assert summary.prefixes_total > summary.options.prefix_rows
    return len(render_page(summary, None, meta()).encode("utf-8"))


def test_the_page_size_is_bounded(tmp_path: Path) -> None:
    small = page_size(big_file(tmp_path / "small.parquet", 2_000, 2_000, 5_000, 300))
    large = page_size(big_file(tmp_path / "large.parquet", 20_000, 50_000, 5_000, 300))
    assert large < 600_000
    assert large < small * 1.2  # thirty times the failures, the same page
