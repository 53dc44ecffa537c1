"""The end-of-run summary: counts, distribution, keys not scored, output path."""

from __future__ import annotations

import pytest

from worker.batch.tally import Tally
from worker.errors import ExitCode
from worker.results.schema import ResultRow, Status


def _row(key: str, status: Status, score: float | None = None, code: str | None = None) -> ResultRow:
    return ResultRow("b", key, "E", 1, None, status, score=score, error_code=code)


def test_tally_counts_and_renders() -> None:
    tally = Tally()
    for i in range(10):
        tally.add(_row(f"s{i}", Status.SCORED, score=i / 10 + 0.05))
    tally.add(_row("skip", Status.SKIPPED, code="DirectoryMarker"))
    tally.add(_row("bad.jpg", Status.FAILED, code="BadRequest"))
    tally.add(_row("gone.jpg", Status.MISSING, code="NoSuchKey"))
    assert (tally.scored, tally.failed, tally.selected) == (10, 1, 12)
    assert tally.quantile(0.5) is not None and 0.4 <= tally.quantile(0.5) <= 0.6
    text = tally.render("run", "out.parquet", 2.0)
    assert "13 objects" in text and "DirectoryMarker 1" in text and "BadRequest 1" in text
    assert "bad.jpg" in text and "gone.jpg" in text and "output: out.parquet" in text
    assert "mean 0.500" in text


def test_failed_keys_are_bounded() -> None:
    tally = Tally()
    for i in range(100):
        tally.add(_row(f"f{i}", Status.FAILED, code="InternalError"))
    assert len(tally.failed_keys) == 20
    assert "and 80 more" in tally.render("run", None, 1.0)


@pytest.mark.parametrize(("failed", "threshold", "code"), [
    (0, 0.0, ExitCode.OK), (1, 0.0, ExitCode.FAILURES), (1, 0.1, ExitCode.OK), (2, 0.1, ExitCode.FAILURES),
])
def test_verdict_judges_failures_against_the_threshold(failed: int, threshold: float, code: ExitCode) -> None:
    tally = Tally()
    for i in range(10 - failed):
        tally.add(_row(f"s{i}", Status.SCORED, score=0.5))
    for i in range(failed):
        tally.add(_row(f"f{i}", Status.FAILED, code="InternalError"))
    tally.add(_row("skip", Status.SKIPPED, code="Excluded"))  # skipped rows are not part of the ratio
    assert tally.verdict(threshold) is code
