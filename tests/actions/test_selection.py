"""``picscore filter``'s selection: criteria combine with *and*, ``--worst-percent`` is exact and
deterministic (ties in input order), repeated objects are selected once, excluded rows never."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from worker.actions.predicate import compile_predicate
from worker.actions.selection import Criteria, FilterSelection
from worker.batch.checkpoint import Checkpoint
from worker.errors import UsageError
from worker.results.parts import open_part_writer
from worker.results.schema import ResultRow, Status

WHEN = datetime(2026, 12, 1, tzinfo=UTC)


def results(tmp_path: Path, name: str, scores: dict[str, float | None]) -> Path:
    path = tmp_path / name
    rows = [ResultRow("b", key, "E", 10, WHEN, Status.SCORED if score is not None else Status.FAILED, score=score,
                      dimensions={"BlurScore": score} if score is not None else {}) for key, score in scores.items()]
    with Checkpoint.open(tmp_path / f"{name}.ckpt", {"n": name}, resume=False) as checkpoint:
        writer = open_part_writer(path, path.suffix.lstrip("."), checkpoint)
        writer.write_part(rows, {})
        writer.finalize()
    return path


def selected(selection: FilterSelection) -> list[str]:
    return [row["key"] for row in selection]


def test_worst_percent_takes_exactly_the_lowest_with_ties_in_input_order(tmp_path: Path) -> None:
    path = results(tmp_path, "r.parquet", {"a": 0.5, "b": 0.2, "c": 0.2, "d": 0.9, "e": 0.2, "f": None, "g": 0.7})
    # 6 rows with a score; 50% is 3 rows: the three 0.2s; 40% is ceil(2.4) = 3 too; 30% is 2: the first two 0.2s
    assert selected(FilterSelection([path], Criteria(worst_percent=50))) == ["b", "c", "e"]
    assert selected(FilterSelection([path], Criteria(worst_percent=30))) == ["b", "c"]
    assert selected(FilterSelection([path], Criteria(worst_percent=100))) == ["a", "b", "c", "d", "e", "g"]


def test_criteria_combine_with_and_and_counts_add_up(tmp_path: Path) -> None:
    path = results(tmp_path, "r.csv", {"a": 0.1, "b": 0.3, "c": 0.6, "d": None})
    where = compile_predicate("blur > 0.2")
    selection = FilterSelection([path], Criteria(below=0.5, where=where, where_text=str(where)))
    assert selected(selection) == ["b"]
    counts = selection.counts
    assert (counts.rows, counts.with_score, counts.selected) == (4, 3, 1)


def test_an_object_in_two_shard_files_is_selected_once(tmp_path: Path) -> None:
    first = results(tmp_path, "s0.jsonl", {"a": 0.1, "b": 0.9})
    second = results(tmp_path, "s1.jsonl", {"a": 0.1, "c": 0.2})
    selection = FilterSelection([first, second], Criteria(below=0.5))
    assert selected(selection) == ["a", "c"] and selection.counts.duplicates == 1


def test_excluded_rows_are_never_selected(tmp_path: Path) -> None:
    path = results(tmp_path, "r.parquet", {"quarantine/a": 0.1, "b": 0.1})
    selection = FilterSelection([path], Criteria(below=0.5), exclude=lambda row: row["key"].startswith("quarantine/"))
    assert selected(selection) == ["b"] and selection.counts.excluded == 1


@pytest.mark.parametrize(("criteria", "message"), [
    ({}, "say what to select"),
    ({"below": 1.5}, "--below"),
    ({"worst_percent": 0}, "--worst-percent"),
    ({"worst_percent": 101}, "--worst-percent"),
])
def test_bad_criteria_are_usage_errors(criteria: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Criteria(**criteria)
