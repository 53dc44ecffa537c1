"""Results files read as columns: every format reads to the same audit, batches change nothing,
and anything that is not ``picscore run``'s output is refused with a message naming the file."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import worker.report.columns as columns
from tests.report.conftest import (
    STATUSES,
    T0,
    audit_of,
    dimension_dicts,
    error_codes,
    facts,
    prefix_labels,
    row,
    status_names,
    write,
)
from worker.errors import ResultsFileError
from worker.report.columns import MAX_DIMENSIONS, read_audit
from worker.results.formats import RESULT_PARQUET_SCHEMA
from worker.results.schema import RESULT_SCHEMA

FORMATS = ("parquet", "csv", "jsonl")


def mixed_rows() -> list:
    """Rows that stress every format: quoting, unicode, nested folders, no score, failures, odd statuses."""
    return [
        row("photos/2024/a.jpg", 0.81, size=120_000, dims={"BlurScore": 0.9, "NoiseScore": 0.75}, at=T0),
        row("photos/b, \"quoted\".jpg", 0.25, size=5, dims={"NoiseScore": 0.2}, at=T0 + timedelta(seconds=3)),
        row("top.jpg", 1.0, size=0, at=T0 + timedelta(seconds=1)),
        row("ünïcødé/图片.png", 0.0, dims={"ExposureScore": 0.1, "BlurScore": 0.4, "SaturationScore": 0.05}),
        row("photos/new\nline.jpg", None, status="scored"),
        row("photos/nan.jpg", math.nan),
        row("docs/x.jpg", status="failed", code="AccessDenied", message="You have no right, <b>really</b>",
            http=403, at=T0 - timedelta(minutes=5)),
        row("docs/y.jpg", status="missing", code="NoSuchKey", message="gone", http=404),
        row("docs/z.jpg", status="skipped", code="too_large", message="over 20 MB"),
        row("docs/w.jpg", status="failed"),
        row("weird/q.jpg", 0.5, status="quarantined", code="held"),
        row("a/b/c/d/e.jpg", 0.33, bucket="photos", dims={"ResolutionScore": 0.3}),
    ]


@pytest.fixture()
def mixed(tmp_path: Path) -> dict[str, columns.AuditColumns]:
    return {fmt: audit_of(tmp_path, mixed_rows(), f"r.{fmt}") for fmt in FORMATS}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_format_reads_to_the_same_audit(mixed, fmt: str) -> None:
    expected = facts(mixed["parquet"])
    assert facts(mixed[fmt]) == expected
    np.testing.assert_array_equal(mixed[fmt].dimensions, mixed["parquet"].dimensions)


def test_the_audit_holds_what_was_written(mixed) -> None:
    audit = mixed["parquet"]
    written = mixed_rows()
    assert len(audit) == len(written)
    assert audit.key.to_pylist() == [r.key for r in written]
    assert audit.size.tolist() == [r.size for r in written]
    assert status_names(audit) == [r.status for r in written]
    scores = [None if np.isnan(s) else s for s in audit.score.tolist()]
    assert scores == [0.81, 0.25, 1.0, 0.0, None, None, None, None, None, None, 0.5, 0.33]
    assert error_codes(audit) == [r.error_code for r in written]
    # sub-scores: float32 as stored, the names in order of first appearance
    assert audit.dimension_names == ["BlurScore", "NoiseScore", "ExposureScore", "SaturationScore", "ResolutionScore"]
    assert audit.dimensions.dtype == np.float32
    dims = dimension_dicts(audit)
    assert [{k: pytest.approx(v) for k, v in r.dimensions.items()} for r in written] == dims
    assert audit.first_scored_at == T0 - timedelta(minutes=5)
    assert audit.last_scored_at == T0 + timedelta(seconds=3)
    assert audit.object_url(3) == "oss://photos/ünïcødé/图片.png"


def test_top_level_prefixes(mixed) -> None:
    audit = mixed["parquet"]
    assert prefix_labels(audit) == ["photos/", "photos/", "(top level)", "ünïcødé/", "photos/", "photos/",
                                    "docs/", "docs/", "docs/", "docs/", "weird/", "a/"]
    assert audit.prefixes == [(0, "photos/"), (0, ""), (0, "ünïcødé/"), (0, "docs/"), (0, "weird/"), (0, "a/")]


def test_a_newline_in_a_key_does_not_leak_into_its_prefix(tmp_path: Path) -> None:
    audit = audit_of(tmp_path, [row("a/b\nc/d.jpg", 0.5), row("x\ny/z.jpg", 0.5), row("p\nq.jpg", 0.5)])
    assert prefix_labels(audit) == ["a/", "x\ny/", "(top level)"]


def test_several_buckets_label_prefixes_with_their_bucket(tmp_path: Path) -> None:
    audit = audit_of(tmp_path, [row("a/1.jpg", 0.5, bucket="one"), row("a/1.jpg", 0.5, bucket="two"),
                                row("top.jpg", 0.5, bucket="two")])
    assert audit.buckets == ["one", "two"]
    assert prefix_labels(audit) == ["one: a/", "two: a/", "two: (top level)"]
    assert len(audit.prefixes) == 3  # the same folder in two buckets is two prefixes


def test_unknown_statuses_are_kept_after_the_known_ones(mixed) -> None:
    audit = mixed["parquet"]
    assert audit.statuses == [*STATUSES, "quarantined"]
    assert audit.status_code("quarantined") == len(STATUSES)
    assert audit.status_code("nonesuch") == -1
    # a row that did not score is kept whole in the unsettled table, whatever its status
    unsettled = audit.unsettled.to_pylist()
    assert [r["key"] for r in unsettled] == ["docs/x.jpg", "docs/y.jpg", "docs/z.jpg", "docs/w.jpg", "weird/q.jpg"]
    assert unsettled[0] == {"bucket": "photos", "key": "docs/x.jpg", "status": "failed", "error_code": "AccessDenied",
                            "error_message": "You have no right, <b>really</b>", "http_status": 403}


def test_several_files_concatenate_in_order(tmp_path: Path) -> None:
    first = write(tmp_path / "s0.parquet", [row("a/1.jpg", 0.1), row("b/2.jpg", 0.2, dims={"BlurScore": 0.3})])
    second = write(tmp_path / "s1.csv", [row("c/3.jpg", 0.3, dims={"NoiseScore": 0.4}),
                                         row("a/4.jpg", status="failed", code="X")])
    third = write(tmp_path / "s2.jsonl", [row("b/5.jpg", 0.5, bucket="other")])
    audit = read_audit([first, second, third])
    assert audit.files == (str(first), str(second), str(third))
    assert audit.key.to_pylist() == ["a/1.jpg", "b/2.jpg", "c/3.jpg", "a/4.jpg", "b/5.jpg"]
    assert audit.score[:3].tolist() == [0.1, 0.2, 0.3] and np.isnan(audit.score[3]) and audit.score[4] == 0.5
    assert dimension_dicts(audit) == [{}, {"BlurScore": pytest.approx(0.3)}, {"NoiseScore": pytest.approx(0.4)}, {},
                                      {}]
    assert prefix_labels(audit) == ["photos: a/", "photos: b/", "photos: c/", "photos: a/", "other: b/"]
    reversed_ = read_audit([third, second, first])
    assert reversed_.key.to_pylist() == ["b/5.jpg", "c/3.jpg", "a/4.jpg", "a/1.jpg", "b/2.jpg"]


def test_for_comparison_reads_no_details(tmp_path: Path, mixed) -> None:
    path = write(tmp_path / "again.parquet", mixed_rows())
    lean = read_audit([path], for_comparison=True)
    full = mixed["parquet"]
    assert lean.dimensions.shape == (len(full), 0)
    assert lean.dimension_names == []
    assert lean.unsettled.num_rows == 0
    np.testing.assert_array_equal(lean.score, full.score)
    # keys are hashed, not kept: the identities match those of the full read, one per object
    np.testing.assert_array_equal(lean.identity, full.identity)
    assert len(set(lean.identity.tolist())) == len(full)
    assert prefix_labels(lean) == prefix_labels(full)
    assert status_names(lean) == status_names(full)


def test_drop_details_frees_sub_scores_and_failures(mixed) -> None:
    audit = mixed["parquet"]
    scores = audit.score.copy()
    audit.drop_details()
    assert audit.dimensions.shape[0] == 0
    assert audit.unsettled.num_rows == 0
    np.testing.assert_array_equal(audit.score, scores)
    assert len(audit) == len(mixed_rows())


def test_an_empty_file_is_an_empty_audit(tmp_path: Path) -> None:
    for fmt in FORMATS:
        audit = audit_of(tmp_path, [], f"empty.{fmt}")
        assert len(audit) == 0 and audit.prefixes == [] and audit.dimensions.shape == (0, 0)
        assert audit.first_scored_at is None and audit.last_scored_at is None
        assert audit.statuses == list(STATUSES)


# -- batches ---------------------------------------------------------------------------------------


def batch_rows() -> list:
    """Rows whose later batches bring new buckets, prefixes, error codes and sub-score names."""
    rng = np.random.default_rng(3)
    names = ["BlurScore", "NoiseScore", "ExposureScore", "SaturationScore", "ResolutionScore"]
    rows = []
    for i in range(61):
        known = names[: 1 + i // 12]  # a new sub-score name every 12 rows: later blocks are wider
        dims = {n: round(float(rng.random()), 3) for n in known if rng.random() < 0.7}
        if i % 11 == 5:
            rows.append(row(f"p{i % 9}/{i}.jpg", status="failed", code=f"E{i // 20}", message=f"m{i}",
                            bucket=f"b{i // 25}"))
        elif i % 13 == 0:
            rows.append(row(f"{i}.jpg", status="scored", bucket=f"b{i // 25}"))  # no score, no dims
        else:
            rows.append(row(f"p{i % 9}/{i}.jpg", round(float(rng.random()), 3), dims=dims, bucket=f"b{i // 25}",
                            size=int(rng.integers(0, 10**6)), at=T0 + timedelta(seconds=i)))
    return rows


@pytest.mark.parametrize("fmt", FORMATS)
def test_small_batches_read_the_same_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    path = write(tmp_path / f"b.{fmt}", batch_rows())
    whole = read_audit([path])
    monkeypatch.setattr(columns, "BATCH_ROWS", 7)
    batched = read_audit([path])
    assert facts(batched) == facts(whole)
    np.testing.assert_array_equal(batched.dimensions, whole.dimensions)
    # and both hold what was written
    written = batch_rows()
    assert batched.dimension_names == ["BlurScore", "NoiseScore", "ExposureScore", "SaturationScore",
                                       "ResolutionScore"]
    assert dimension_dicts(batched) == [{k: pytest.approx(v) for k, v in r.dimensions.items()} for r in written]
    assert error_codes(batched) == [r.error_code for r in written]
    assert [batched.buckets[c] for c in batched.bucket] == [r.bucket for r in written]
    assert batched.unsettled.column("key").to_pylist() == [r.key for r in written if r.status != "scored"]


def test_small_batches_across_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = batch_rows()
    paths = [write(tmp_path / "x.jsonl", rows[:30]), write(tmp_path / "y.parquet", rows[30:])]
    whole = write(tmp_path / "whole.parquet", rows)
    expected = facts(read_audit([whole]))
    monkeypatch.setattr(columns, "BATCH_ROWS", 7)
    got = facts(read_audit(paths))
    assert {k: v for k, v in got.items()} == expected


# -- what is refused -------------------------------------------------------------------------------


def refused(paths, match: str, **kwargs) -> str:
    with pytest.raises(ResultsFileError, match=match) as caught:
        read_audit(paths, **kwargs)
    return str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    good = write(tmp_path / "good.parquet", [row("a.jpg", 0.5)])
    message = refused([good, tmp_path / "nope.parquet"], "does not exist")
    assert "nope.parquet" in message
    refused([tmp_path], "not a file")  # a folder


def test_an_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "results.txt"
    path.write_text("bucket,key\n")
    message = refused([path], "cannot tell the format")
    assert "results.txt" in message and ".parquet" in message


def test_a_parquet_file_lacking_a_required_column(tmp_path: Path) -> None:
    schema = pa.schema([f for f in RESULT_PARQUET_SCHEMA if f.name != "status"])
    path = tmp_path / "lacks.parquet"
    pq.write_table(schema.empty_table(), path)
    message = refused([path], "lacks the column")
    assert "status" in message and "lacks.parquet" in message


def test_a_parquet_file_without_the_optional_column_reads(tmp_path: Path) -> None:
    source = write(tmp_path / "full.parquet", [row("a/1.jpg", 0.7)])
    table = pq.read_table(source).drop_columns(["storage_class"])
    pq.write_table(table, tmp_path / "old.parquet")
    assert read_audit([tmp_path / "old.parquet"]).score.tolist() == [0.7]


def test_a_corrupt_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    message = refused([path], "is not a picscore results file")
    assert "corrupt.parquet" in message


def test_a_csv_that_is_not_a_results_file(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("name,age\nalice,30\n")
    message = refused([path], "lacks the column")
    assert "other.csv" in message and "picscore run" in message


def test_a_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('[1, 2, 3]\n')
    assert "bad.jsonl" in refused([path], "bad.jsonl")
    path.write_text("{not json\n")
    assert "bad.jsonl" in refused([path], "not a picscore results file")


@pytest.mark.parametrize("column", ["key", "bucket", "status"])
def test_a_parquet_row_without_an_identity_or_status(tmp_path: Path, column: str) -> None:
    table = pq.read_table(write(tmp_path / "ok.parquet", [row("a/1.jpg", 0.5), row("a/2.jpg", 0.6)]))
    values = table[column].to_pylist()
    values[1] = None
    table = table.set_column(table.schema.get_field_index(column), column, pa.array(values, pa.string()))
    path = tmp_path / f"no-{column}.parquet"
    pq.write_table(table, path)
    message = refused([path], f"no {'status' if column == 'status' else 'bucket or key'}")
    assert f"no-{column}.parquet" in message  # which of a sharded audit's files


@pytest.mark.parametrize("column", ["key", "bucket", "status"])
def test_a_csv_row_without_an_identity_or_status(tmp_path: Path, column: str) -> None:
    path = write(tmp_path / f"no-{column}.csv", [row("a/1.jpg", 0.5)])
    header, line = path.read_text().splitlines()
    cells = line.split(",")
    cells[RESULT_SCHEMA.columns.index(column)] = ""
    path.write_text(header + "\n" + ",".join(cells) + "\n")
    message = refused([path], "no (bucket or key|status)")
    assert f"no-{column}.csv" in message


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_more_than_32_sub_score_names(tmp_path: Path, fmt: str) -> None:
    rows = [row(f"a/{i}.jpg", 0.5, dims={f"Dim{i}": 0.5}) for i in range(MAX_DIMENSIONS + 1)]
    path = write(tmp_path / f"wide.{fmt}", rows)
    message = refused([path], f"more than {MAX_DIMENSIONS} distinct sub-score names")
    assert "wide." in message
    # exactly the limit is fine
    ok = write(tmp_path / f"ok.{fmt}", rows[:MAX_DIMENSIONS])
    assert len(read_audit([ok]).dimension_names) == MAX_DIMENSIONS


def test_for_comparison_ignores_sub_score_names(tmp_path: Path) -> None:
    """The previous night's sub-scores are not read, so their number cannot refuse it."""
    rows = [row(f"a/{i}.jpg", 0.5, dims={f"Dim{i}": 0.5}) for i in range(MAX_DIMENSIONS + 1)]
    path = write(tmp_path / "wide.parquet", rows)
    assert len(read_audit([path], for_comparison=True)) == MAX_DIMENSIONS + 1
