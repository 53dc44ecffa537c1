"""``picscore report`` end to end, looked at in a real browser.

Two nights of a real audit: ``picscore serve`` over photos and their damaged copies, scored with
picscore's model, ``picscore run`` through the real SDK each night; between the nights images are
added (some bad), one is replaced by a noisy copy, one deleted. The report of the second night,
compared with the first, is opened in headless Chromium (Debian's package) and read back the
way a person reads it: its numbers must equal what the results files say, computed here with
pyarrow and numpy, not with picscore's code.
"""

from __future__ import annotations

import io
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.integration.runhelpers import REGION, LocalBucket, run_cli, run_command, run_env
from worker.demo.build import KINDS, read_demo_image
from worker.server.launch import ServerProcess, start_server

from .conftest import OpenedPage, open_page

BUCKET = "library"
LOW = 0.4
EXAMPLES = 4
PHOTOS = ("kodim04-portrait.jpg", "kodim08-houses.jpg", "kodim13-mountain-stream.jpg", "kodim23-parrots.jpg")
pytestmark = pytest.mark.timeout(600)


def damaged(kind: str, name: str) -> bytes:
    return KINDS[kind](Image.open(io.BytesIO(read_demo_image(name))).convert("RGB"), name)


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> LocalBucket:
    local = LocalBucket(tmp_path_factory.mktemp("report-root"), BUCKET)
    for name in PHOTOS:
        local.put(f"photos/{name}", read_demo_image(name))
        local.put(f"blurred/{name}", damaged("blur", name))
    local.put("cover.jpg", read_demo_image("kodim20-airplane.jpg"))
    local.put("broken/not-an-image.jpg", b"this is not a picture\n" * 50)
    return local


@pytest.fixture(scope="module")
def server(bucket: LocalBucket) -> Iterator[ServerProcess]:
    with start_server(bucket.root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, args=["--workers", "2"]) as proc:
        yield proc


def audit(server: ServerProcess, output: Path) -> None:
    done = run_cli(run_command(server.url, BUCKET, output, "--concurrency", "4", "--failure-threshold", "0.5"),
                   timeout=300)  # the text file fails on purpose
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def report(server: ServerProcess, *args: str, secret: str = ACCESS_KEY_SECRET):
    command = [sys.executable, "-m", "worker.cli", "report", *args, "--endpoint", server.url, "--region", REGION,
               "--log-level", "warning"]
    return run_cli(command, env=run_env(secret), timeout=300)


@pytest.fixture(scope="module")
def nights(server: ServerProcess, bucket: LocalBucket, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Night one; then two new noisy images, a new clean one, a replaced and a deleted one; night two."""
    work = tmp_path_factory.mktemp("report-nights")
    audit(server, work / "night1.parquet")
    bucket.put("uploads/noisy-parrots.jpg", damaged("noise", "kodim23-parrots.jpg"))
    bucket.put("uploads/noisy-houses.jpg", damaged("noise", "kodim08-houses.jpg"))
    bucket.put("uploads/clean-statue.jpg", read_demo_image("kodim17-statue.jpg"))
    bucket.put("photos/kodim13-mountain-stream.jpg", damaged("noise", "kodim13-mountain-stream.jpg"))
    bucket.delete("blurred/kodim04-portrait.jpg")
    audit(server, work / "night2.parquet")
    page = work / "report.html"
    done = report(server, str(work / "night2.parquet"), "--compare", str(work / "night1.parquet"), "--output",
                  str(page), "--examples", str(EXAMPLES), "--low", str(LOW))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {"night1": work / "night1.parquet", "night2": work / "night2.parquet", "page": page, "work": work}


@pytest.fixture(scope="module")
def opened(browser: Any, nights: dict[str, Path]) -> OpenedPage:
    return open_page(browser, nights["page"])


def rows(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path, columns=["bucket", "key", "etag", "size", "status", "score", "error_code"]).to_pylist()


def metric(page: Any, name: str) -> str:
    return page.get_attribute(f'[data-metric="{name}"]', "data-value")


def test_the_page_loads_nothing_and_logs_no_error(opened: OpenedPage) -> None:
    assert opened.other_requests == []
    assert [m for m in opened.console if m[0] in ("error", "warning")] == []
    assert opened.errors == []


def test_the_totals_equal_the_results_file(opened: OpenedPage, nights: dict[str, Path]) -> None:
    night = rows(nights["night2"])
    scores = np.array([r["score"] for r in night if r["status"] == "scored"])
    page = opened.page
    assert int(metric(page, "objects")) == len(night)
    assert int(metric(page, "scored")) == len(scores)
    assert int(metric(page, "low")) == int((scores < LOW).sum())
    assert float(metric(page, "median")) == pytest.approx(float(np.median(scores)))
    assert int(metric(page, "bytes")) == sum(r["size"] for r in night)
    for status in ("scored", "skipped", "missing", "failed"):
        members = [r for r in night if r["status"] == status]
        cell = page.locator(f'#status-table tr[data-status="{status}"]')
        assert int(cell.get_attribute("data-count")) == len(members)
        assert int(cell.get_attribute("data-bytes")) == sum(r["size"] for r in members)
    failed = [r for r in night if r["status"] == "failed"]
    assert failed, "the text file must fail to score"
    group = page.locator(f'#failures details[data-code="{failed[0]["error_code"]}"]')
    assert int(group.get_attribute("data-count")) == len(failed)
    listed = group.locator("tr[data-key]").evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert listed == [r["key"] for r in failed]


def test_the_histogram_and_prefix_table_equal_the_results_file(opened: OpenedPage, nights: dict[str, Path]) -> None:
    night = [r for r in rows(nights["night2"]) if r["status"] == "scored"]
    scores = np.array([r["score"] for r in night])
    expected = np.bincount(np.minimum((scores * 20).astype(int), 19), minlength=20)
    bars = opened.page.locator("#chart-overall rect").evaluate_all("rs => rs.map(r => +r.dataset.count)")
    assert bars == expected.tolist()
    table = opened.page.locator("#histogram-table tr[data-bin]").evaluate_all("rs => rs.map(r => +r.dataset.count)")
    assert table == expected.tolist()
    for prefix in ("photos/", "blurred/", "uploads/", "(top level)"):
        members = [r for r in rows(nights["night2"])
                   if (r["key"].split("/", 1)[0] + "/" if "/" in r["key"] else "(top level)") == prefix]
        member_scores = np.array([r["score"] for r in members if r["status"] == "scored"])
        row = opened.page.locator(f'#prefix-table tr[data-prefix="{prefix}"] td')
        values = row.evaluate_all("cells => cells.map(c => c.dataset.value)")
        assert int(values[1]) == len(members)
        assert float(values[2]) == pytest.approx(float(np.median(member_scores)))
        assert float(values[3]) == pytest.approx(float((member_scores < LOW).mean()))
        assert int(values[4]) == sum(r["size"] for r in members)


def test_thumbnails_render_at_a_bounded_size(opened: OpenedPage, nights: dict[str, Path]) -> None:
    scored = sorted((r["score"], r["key"]) for r in rows(nights["night2"]) if r["status"] == "scored")
    images = opened.page.locator(".example img").evaluate_all(
        "imgs => imgs.map(i => ({src: i.src.slice(0, 23), w: i.naturalWidth, h: i.naturalHeight, "
        "alt: i.alt, key: i.closest('figure').dataset.key, complete: i.complete}))")
    assert len(images) == 2 * EXAMPLES
    for image in images:
        assert image["src"] == "data:image/jpeg;base64,"
        assert image["complete"] and 0 < max(image["w"], image["h"]) <= 160
        assert image["key"] in image["alt"]
    worst = opened.page.locator("#worst figure").evaluate_all("fs => fs.map(f => f.dataset.key)")
    best = opened.page.locator("#best figure").evaluate_all("fs => fs.map(f => f.dataset.key)")
    assert worst == [key for _, key in scored[:EXAMPLES]]
    assert best == [key for _, key in scored[::-1][:EXAMPLES]]


def test_compare_lists_exactly_the_new_low_quality_images(opened: OpenedPage, nights: dict[str, Path]) -> None:
    before = {r["key"]: r for r in rows(nights["night1"])}
    now = rows(nights["night2"])
    new_low = {r["key"] for r in now if r["key"] not in before and r["status"] == "scored" and r["score"] < LOW}
    assert new_low == {"uploads/noisy-parrots.jpg", "uploads/noisy-houses.jpg"}  # the clean upload is not low
    listed = opened.page.locator("#new-low-table tr[data-key]").evaluate_all("rs => rs.map(r => r.dataset.key)")
    assert sorted(listed) == sorted(new_low)
    assert int(metric(opened.page, "new")) == sum(1 for r in now if r["key"] not in before)
    assert int(metric(opened.page, "gone")) == 1
    dropped = opened.page.locator("#dropped-table tr[data-key]")
    assert dropped.evaluate_all("rs => rs.map(r => r.dataset.key)") == ["photos/kodim13-mountain-stream.jpg"]
    assert "yes" in dropped.first.inner_text()  # replaced: a new ETag


def test_the_prefix_table_sorts_by_a_column(opened: OpenedPage) -> None:
    page = opened.page
    page.locator("#prefix-table th", has_text="Median").locator("button").click()
    medians = page.locator("#prefix-table tbody tr td:nth-child(3)").evaluate_all(
        "cells => cells.map(c => +c.dataset.value)")
    assert medians == sorted(medians, reverse=True)
    assert page.locator("#prefix-table th", has_text="Median").get_attribute("aria-sort") == "descending"
    page.locator("#prefix-table th", has_text="Median").locator("button").click()
    again = page.locator("#prefix-table tbody tr td:nth-child(3)").evaluate_all(
        "cells => cells.map(c => +c.dataset.value)")
    assert again == sorted(medians)


def test_a_phone_shows_the_page_without_sideways_scrolling(browser: Any, nights: dict[str, Path]) -> None:
    phone = open_page(browser, nights["page"], width=390, height=844)
    width = phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    assert phone.page.locator("#chart-overall").bounding_box()["width"] <= 390


# WCAG 2.1 relative luminance and contrast ratio, for every element that holds text.
CONTRAST = """() => {
  const parse = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  const background = el => {
    for (; el; el = el.parentElement) {
      const c = parse(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const worst = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest('svg') || !el.getClientRects().length) continue;
    const a = lum(parse(getComputedStyle(el).color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) worst.push([el.tagName, el.textContent.trim().slice(0, 40), ratio]);
  }
  return worst;
}"""


def test_text_has_sufficient_contrast_and_images_and_charts_have_text(opened: OpenedPage) -> None:
    page = opened.page
    assert page.evaluate(CONTRAST) == []
    assert page.locator("img:not([alt])").count() == 0
    charts = page.locator("svg.chart")
    assert charts.count() >= 1
    for i in range(charts.count()):
        chart = charts.nth(i)
        assert chart.get_attribute("role") == "img"
        assert chart.locator("title").first.text_content().strip()
        assert chart.locator("desc").first.text_content().strip()


def test_the_page_holds_no_secret(nights: dict[str, Path]) -> None:
    assert ACCESS_KEY_SECRET not in nights["page"].read_text(encoding="utf-8")


def test_presigned_links_open_the_image(server: ServerProcess, nights: dict[str, Path], browser: Any,
                                        bucket: LocalBucket) -> None:
    opened = open_page(browser, nights["page"])
    links = opened.page.locator("#worst figure a").evaluate_all("as => as.map(a => [a.href, a.textContent])")
    assert len(links) == EXAMPLES
    href, key = links[0]
    with urllib.request.urlopen(href, timeout=30) as answer:
        assert answer.read() == bucket.objects[key]


def test_report_reads_from_and_writes_to_the_bucket(server: ServerProcess, nights: dict[str, Path],
                                                     bucket: LocalBucket) -> None:
    bucket.put("audits/night2.parquet", nights["night2"].read_bytes())
    done = report(server, f"oss://{BUCKET}/audits/night2.parquet", "--output", f"oss://{BUCKET}/audits/report.html",
                  "--examples", "2", "--links", "none")
    assert done.returncode == 0, done.stderr
    page = bucket.path("audits/report.html").read_text(encoding="utf-8")
    assert 'data-metric="objects"' in page and "oss://library/audits/report.html" in done.stdout
    bucket.delete("audits/report.html")
    bucket.delete("audits/night2.parquet")


def test_refused_credentials_stop_with_exit_3_and_no_secret(server: ServerProcess, nights: dict[str, Path]) -> None:
    done = report(server, str(nights["night2"]), "--output", str(nights["work"] / "refused.html"),
                  secret="not-the-secret-xyz")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "not-the-secret-xyz" not in done.stdout + done.stderr
    assert not (nights["work"] / "refused.html").exists()


def test_a_missing_results_file_is_a_clear_error(server: ServerProcess, nights: dict[str, Path]) -> None:
    done = report(server, str(nights["work"] / "nope.parquet"), "--output", str(nights["work"] / "x.html"))
    assert done.returncode == 2
    assert "nope.parquet does not exist" in done.stderr


def test_an_image_changed_since_the_audit_shows_a_note_not_a_wrong_thumbnail(
        server: ServerProcess, nights: dict[str, Path], browser: Any) -> None:
    """Night one's report, made after night two's changes: the replaced photo's thumbnail would be
    of other bytes than were scored (If-Match refuses it), the deleted one is gone."""
    page_path = nights["work"] / "night1.html"
    done = report(server, str(nights["night1"]), "--output", str(page_path), "--examples", "5", "--links", "none")
    assert done.returncode == 0, done.stderr
    opened = open_page(browser, page_path)
    notes = dict(opened.page.locator(".example").evaluate_all(
        "fs => fs.map(f => [f.dataset.key, f.querySelector('img') ? 'image' : f.innerText])"))
    assert "replaced since the audit" in notes["photos/kodim13-mountain-stream.jpg"]
    assert "NoSuchKey" in notes["blurred/kodim04-portrait.jpg"]
    assert sum(1 for note in notes.values() if note == "image") == len(notes) - 2
