"""--incremental: the previous output's scored (key, ETag) pairs, indexed and carried forward."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from worker.batch.checkpoint import Checkpoint
from worker.commands.incremental import IncrementalError, PreviousResults
from worker.results.parts import open_part_writer
from worker.results.schema import ObjectRef, ResultRow, Status

WHEN = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def _previous_output(tmp_path: Path, fmt: str, rows: list[ResultRow]) -> Path:
    output = tmp_path / f"previous.{fmt}"
    checkpoint = Checkpoint.open(tmp_path / f"previous-{fmt}.ckpt", {"run": fmt}, resume=False)
    sink = open_part_writer(output, fmt, checkpoint)
    sink.write_part(rows, {})
    sink.finalize()
    checkpoint.close()
    return output


def _rows(n: int) -> list[ResultRow]:
    rows = [ResultRow("b", f"k/{i:04d}.jpg", f"E{i:04d}", 100 + i, WHEN, Status.SCORED, score=i / n,
                      dimensions={"NoiseScore": 0.5}, attempts=1, scored_at=WHEN) for i in range(n)]
    rows.append(ResultRow("b", "k/failed.jpg", "EF", 1, WHEN, Status.FAILED, error_code="BadRequest",
                          http_status=400, attempts=1, scored_at=WHEN))
    return rows


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_unchanged_pairs_are_found_with_their_scores(tmp_path: Path, fmt: str) -> None:
    previous = PreviousResults.index(_previous_output(tmp_path, fmt, _rows(1200)), tmp_path / "index.sqlite")
    pairs = [(f"k/{i:04d}.jpg", f"E{i:04d}") for i in range(0, 1200, 2)]   # unchanged
    pairs += [(f"k/{i:04d}.jpg", "CHANGED") for i in range(1, 1200, 2)]    # rewritten since
    pairs += [("k/new.jpg", "N"), ("k/failed.jpg", "EF")]                   # new; failed last time
    found = previous.unchanged_among(pairs)
    assert set(found) == {(f"k/{i:04d}.jpg", f"E{i:04d}") for i in range(0, 1200, 2)}
    assert found[("k/0600.jpg", "E0600")].score == pytest.approx(0.5)
    assert found[("k/0600.jpg", "E0600")].dimensions == {"NoiseScore": 0.5}
    previous.close()


def test_carried_forward_row_keeps_score_and_says_why(tmp_path: Path) -> None:
    previous = PreviousResults.index(_previous_output(tmp_path, "parquet", _rows(4)), tmp_path / "i.sqlite")
    ref = ObjectRef("b", "k/0002.jpg", "E0002", 102, WHEN)
    row = previous.unchanged_among([(ref.key, ref.etag)])[(ref.key, ref.etag)].carry_forward(ref)
    assert (row.status, row.error_code, row.score, row.scored_at) == (Status.SKIPPED, "Unchanged", 0.5, WHEN)
    previous.close()


def test_missing_or_foreign_previous_output_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IncrementalError, match="does not exist"):
        PreviousResults.index(tmp_path / "nope.parquet", tmp_path / "i.sqlite")
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text('{"hello": 1}\n')
    with pytest.raises(IncrementalError, match="not a picscore output"):
        PreviousResults.index(foreign, tmp_path / "i.sqlite")
