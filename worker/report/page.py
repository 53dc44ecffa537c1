"""The HTML page: the summary rendered through one Jinja2 template with autoescaping on.

Jinja2 rather than string formatting because keys are user data: an object named
``<script>…</script>.jpg`` must show as text, and autoescaping makes that the default instead
of something each ``{{ }}`` must remember. The template (``templates/report.html.j2``) is plain
HTML with inline CSS and a few lines of inline script (sortable tables), and a
Content-Security-Policy that forbids loading anything: the page works offline, from disk or from
a presigned URL, and a stray external reference would fail loudly in the browser tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined

from ..units import format_size
from .charts import histogram
from .night import NightComparison
from .summary import Summary

__all__ = ["PageMeta", "render_page"]


@dataclass(frozen=True)
class PageMeta:
    title: str
    generated_at: datetime
    version: str
    thumbnail_note: str
    link_note: str | None = None


def _n(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _pct(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value * 100:.1f} %"


def _score(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _when(value: datetime | None) -> str:
    return "–" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(value: int) -> str:
    return format_size(int(value))


@cache
def _environment() -> Environment:
    env = Environment(loader=PackageLoader("worker.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=False, keep_trailing_newline=True)
    env.filters.update(n=_n, pct=_pct, score=_score, when=_when, size=_size)
    return env


def render_page(summary: Summary, night: NightComparison | None, meta: PageMeta) -> str:
    """The whole page as one string."""
    options = summary.options
    overall_chart = histogram(
        summary.overall.counts, low=options.low, chart_id="chart-overall",
        title=f"Score histogram of {summary.overall.scored:,} scored images",
        description=_describe(summary.overall.counts, summary.overall.low, options.low))
    charted = [(stat, histogram(stat.distribution.counts, low=options.low, chart_id=f"chart-prefix-{i}",
                                title=f"Score histogram of {stat.label}",
                                description=_describe(stat.distribution.counts, stat.distribution.low, options.low),
                                width=320, height=120, compact=True))
               for i, stat in enumerate(summary.charted)]
    return _environment().get_template("report.html.j2").render(
        meta=meta, options=options, totals=summary.totals, overall=summary.overall, overall_chart=overall_chart,
        charted=summary.charted, charted_charts=charted, prefixes=summary.prefixes,
        prefixes_total=summary.prefixes_total, defects=summary.defects, worst=summary.worst, best=summary.best,
        failures=summary.failures, night=night)


def _describe(counts: list[int], low: int, line: float) -> str:
    """A histogram in one sentence, for screen readers."""
    total = sum(counts)
    if not total:
        return "No scored images."
    peak = max(range(len(counts)), key=counts.__getitem__)
    width = 1 / len(counts)
    return (f"{total:,} images; {low:,} score under {line:g}; the most common range is "
            f"{peak * width:.2f} to {(peak + 1) * width:.2f} with {counts[peak]:,} images.")
