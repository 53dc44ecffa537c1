"""Part files and the final output: real files read back with pyarrow/csv/json, no mocks of I/O."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from worker.batch.checkpoint import Checkpoint
from worker.errors import OutputError
from worker.results.format_names import FORMATS
from worker.results.formats import COALESCE_ROWS, RESULT_PARQUET_SCHEMA, format_named, read_rows
from worker.results.parts import PartWriter, open_part_writer
from worker.results.schema import RESULT_COLUMNS, RESULT_SCHEMA, ResultRow, RowSchema, Status

PARQUET_SCHEMA = RESULT_PARQUET_SCHEMA
to_record = RESULT_SCHEMA.to_record

T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
SUFFIX = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}


def make_row(i: int, **changes: object) -> ResultRow:
    fields: dict[str, object] = {
        "bucket": "photos", "key": f"img/{i:07d}.jpg", "etag": f"ETAG{i}", "size": 1000 + i,
        "last_modified": T0, "status": Status.SCORED, "score": 0.5 + i / 1e7,
        "dimensions": {"NoiseScore": 0.97, "Sharpness": 0.25}, "http_status": 200, "attempts": 1,
        "latency_ms": 12.5, "request_id": f"REQ{i}", "scored_at": T0 + timedelta(seconds=i),
    }
    fields.update(changes)
    return ResultRow(**fields)  # type: ignore[arg-type]


def fingerprint(output: Path, fmt: str) -> dict[str, object]:
    return {"bucket": "photos", "prefixes": [""], "format": fmt, "output": str(output)}


class Run:
    """One run's checkpoint + sink, reopenable like a restarted pod."""

    def __init__(self, tmp: Path, fmt: str) -> None:
        self.fmt = fmt
        self.output = tmp / f"out.{SUFFIX[fmt]}"
        self.ckpt_path = tmp / "run.ckpt"
        self.checkpoint: Checkpoint | None = None

    def open(self, *, resume: bool = True) -> PartWriter:
        self.close()
        self.checkpoint = Checkpoint.open(self.ckpt_path, fingerprint(self.output, self.fmt), resume=resume)
        return open_part_writer(self.output, self.fmt, self.checkpoint)

    def close(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.close()
            self.checkpoint = None


@pytest.fixture(params=FORMATS)
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Run]:
    r = Run(tmp_path, request.param)
    yield r
    r.close()


def keys(path: Path) -> list[str]:
    return [str(r["key"]) for r in read_rows(path)]


# -- values ------------------------------------------------------------------------------------


def test_every_column_round_trips(run: Run) -> None:
    naive = datetime(2023, 1, 2, 3, 4, 5, 678901)  # taken as UTC
    plus8 = datetime(2023, 1, 2, 11, 4, 5, 678000, tzinfo=timezone(timedelta(hours=8)))
    rows = [
        make_row(1),
        make_row(2, key="相册/夏天 ☀️/IMG_0001.HEIC", dimensions={"噪声": 0.5, "ключ": 1e-300}),
        make_row(3, status=Status.FAILED, score=None, dimensions={}, error_code="InvalidArgument",
                 error_message="The image is broken", http_status=400, attempts=3, latency_ms=None,
                 request_id=None, last_modified=naive, scored_at=plus8),
        make_row(4, status=Status.SKIPPED, score=None, size=0, last_modified=None, scored_at=None,
                 http_status=None, attempts=0, error_code="too_large", error_message=""),
        make_row(5, score=0.1 + 0.2, latency_ms=1e-7, size=2**62),
    ]
    sink = run.open(resume=False)
    sink.write_part(rows[:2])
    sink.write_part(rows[2:])
    got = list(read_rows(sink.finalize()))
    want = [to_record(r) for r in rows]
    if run.fmt == "csv":
        want[3]["error_message"] = None  # CSV: the empty cell is null
    assert got == want
    assert list(got[0]) == list(RESULT_COLUMNS)
    assert got[2]["last_modified"] == datetime(2023, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert got[2]["scored_at"] == datetime(2023, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert got[2]["status"] == Status.FAILED and got[4]["score"] == 0.1 + 0.2


def test_non_finite_floats_become_null(run: Run) -> None:
    sink = run.open(resume=False)
    sink.write_part([make_row(1, score=math.nan, latency_ms=math.inf, dimensions={"a": math.nan, "b": 0.5})])
    (got,) = read_rows(sink.finalize())
    assert got["score"] is None and got["latency_ms"] is None and got["dimensions"] == {"b": 0.5}


def test_parquet_schema_and_map_column(tmp_path: Path) -> None:
    run = Run(tmp_path, "parquet")
    sink = run.open(resume=False)
    sink.write_part([make_row(1, dimensions={"NoiseScore": 0.9, "ぼけ": 0.1})])
    schema = pq.read_schema(sink.finalize())
    assert schema.names == list(RESULT_COLUMNS)
    assert schema.equals(PARQUET_SCHEMA)
    assert schema.field("last_modified").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("dimensions").type == pa.map_(pa.string(), pa.float64())
    assert schema.field("status").type == pa.string() and schema.field("size").type == pa.int64()
    table = pq.read_table(run.output)
    assert table.column("dimensions").to_pylist() == [[("NoiseScore", 0.9), ("ぼけ", 0.1)]]
    run.close()


NASTY = [
    'a,b.jpg', 'quote"inside.jpg', 'new\nline.jpg', 'cr\r\nlf.jpg', '"', ',', "tab\there", "sep\u2028x",
    "=cmd|' /C calc'!A0",
]


def test_escaping_in_keys_and_messages(run: Run) -> None:
    rows = [make_row(i, key=k, error_message=f"msg {k}", dimensions={k: 0.5}) for i, k in enumerate(NASTY)]
    sink = run.open(resume=False)
    sink.write_part(rows[:4])
    sink.write_part(rows[4:])
    output = sink.finalize()
    assert list(read_rows(output)) == [to_record(r) for r in rows]
    text = output.read_bytes().decode("utf-8") if run.fmt != "parquet" else ""
    if run.fmt == "csv":  # an ordinary CSV reader agrees, header once
        parsed = list(csv.reader(io.StringIO(text, newline="")))
        assert parsed[0] == list(RESULT_COLUMNS) and len(parsed) == 1 + len(rows)
        assert [p[1] for p in parsed[1:]] == NASTY
        assert json.loads(parsed[1][7]) == {"a,b.jpg": 0.5}
    if run.fmt == "jsonl":  # one object per \n-terminated line
        lines = text.split("\n")
        assert lines[-1] == "" and len(lines) == len(rows) + 1
        assert [json.loads(line)["key"] for line in lines[:-1]] == NASTY


def test_csv_cell_encoding(tmp_path: Path) -> None:
    run = Run(tmp_path, "csv")
    sink = run.open(resume=False)
    sink.write_part([make_row(7, request_id=None, dimensions={"NoiseScore": 0.97, "Ü": 1.0})])
    header, line, end = sink.finalize().read_text(encoding="utf-8").split("\n")
    assert header == ",".join(RESULT_COLUMNS) and end == ""
    assert line == ('photos,img/0000007.jpg,ETAG7,1007,2024-05-06T07:08:09.123Z,scored,0.5000007,'
                    '"{""NoiseScore"":0.97,""Ü"":1.0}",,,200,1,12.5,,2024-05-06T07:08:16.123Z,')
    run.close()


def test_jsonl_nests_dimensions(tmp_path: Path) -> None:
    run = Run(tmp_path, "jsonl")
    sink = run.open(resume=False)
    sink.write_part([make_row(1)])
    obj = json.loads(sink.finalize().read_text(encoding="utf-8"))
    assert list(obj) == list(RESULT_COLUMNS)
    assert obj["dimensions"] == {"NoiseScore": 0.97, "Sharpness": 0.25}
    assert obj["last_modified"] == "2024-05-06T07:08:09.123Z" and obj["error_code"] is None
    run.close()


# -- exactly once ------------------------------------------------------------------------------


def test_finalize_keeps_part_order_exactly_once(run: Run) -> None:
    sink = run.open(resume=False)
    for part in range(7):
        sink.write_part([make_row(part * 13 + i) for i in range(13)], {"": (f"tok{part}", False)})
    assert sorted(p.name for p in sink.parts_dir.iterdir()) == [
        f"part-{n:06d}.{SUFFIX[run.fmt]}" for n in range(1, 8)
    ]
    output = sink.finalize()
    assert keys(output) == [f"img/{i:07d}.jpg" for i in range(7 * 13)]
    assert not sink.parts_dir.exists()
    assert run.checkpoint is not None and run.checkpoint.is_finished()
    assert run.checkpoint.done_count() == 91
    assert sink.finalize() == output  # idempotent
    with pytest.raises(OutputError, match="already finalized"):
        sink.write_part([make_row(999)])


def test_empty_run_gives_a_valid_empty_file(run: Run) -> None:
    sink = run.open(resume=False)
    sink.write_part([], {"": (None, True)})  # listing-only commit: no part file
    assert list(sink.parts_dir.iterdir()) == []
    assert run.checkpoint is not None and run.checkpoint.position("") == (None, True)
    output = sink.finalize()
    assert list(read_rows(output)) == []
    if run.fmt == "parquet":
        assert pq.read_schema(output).equals(PARQUET_SCHEMA) and pq.ParquetFile(output).metadata.num_rows == 0
    elif run.fmt == "csv":
        assert output.read_text() == ",".join(RESULT_COLUMNS) + "\n"
    else:
        assert output.read_bytes() == b""


def test_crash_after_rename_before_commit_redoes_the_rows(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = run.open(resume=False)
    sink.write_part([make_row(0), make_row(1)], {"": ("t1", False)})
    checkpoint = run.checkpoint
    assert checkpoint is not None

    def die(*args: object, **kwargs: object) -> None:
        raise SystemExit("killed")  # the process dies: nothing after the rename runs

    monkeypatch.setattr(checkpoint, "commit_part", die)
    monkeypatch.setattr(sink, "_discard_uncommitted", lambda *a: None)
    with pytest.raises(SystemExit):
        sink.write_part([make_row(2), make_row(3)], {"": ("t2", False)})
    orphan = sink.parts_dir / f"part-000002.{SUFFIX[run.fmt]}"
    assert orphan.exists()  # renamed, never committed

    sink = run.open()
    assert not orphan.exists()
    assert run.checkpoint is not None
    assert run.checkpoint.done_among([(f"img/{i:07d}.jpg", f"ETAG{i}") for i in range(4)]) == {
        ("img/0000000.jpg", "ETAG0"), ("img/0000001.jpg", "ETAG1")}
    assert run.checkpoint.position("") == ("t1", False)
    sink.write_part([make_row(2), make_row(3)], {"": ("t2", False)})  # the resumed run redoes them
    assert keys(sink.finalize()) == [f"img/{i:07d}.jpg" for i in range(4)]


def test_failed_commit_in_process_drops_the_file_and_moves_on(run: Run) -> None:
    sink = run.open(resume=False)
    sink.write_part([make_row(0)])
    with pytest.raises(Exception, match="already written"):
        sink.write_part([make_row(1), make_row(0)])  # repeats row 0: refused by the checkpoint
    assert sorted(p.name for p in sink.parts_dir.iterdir()) == [f"part-000001.{SUFFIX[run.fmt]}"]
    sink.write_part([make_row(1)])
    assert keys(sink.finalize()) == ["img/0000000.jpg", "img/0000001.jpg"]


@pytest.mark.slow
def test_real_kill_9_between_rename_and_commit(tmp_path: Path) -> None:
    """SIGKILL the writer right after part 2's rename; the resumed run has exactly rows 0..3."""
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from worker.batch.checkpoint import Checkpoint
        from tests.results.test_parts import Run, make_row
        run = Run(Path({str(tmp_path)!r}), "parquet")
        sink = run.open(resume=False)
        sink.write_part([make_row(0), make_row(1)], {{"": ("t1", False)}})
        Checkpoint.commit_part = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        sink.write_part([make_row(2), make_row(3)], {{"": ("t2", False)}})
    """)
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run([sys.executable, "-c", script], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    run = Run(tmp_path, "parquet")
    assert (tmp_path / "out.parquet.parts" / "part-000002.parquet").exists()
    sink = run.open()
    assert [p.name for p in sink.parts_dir.iterdir()] == ["part-000001.parquet"]
    assert run.checkpoint is not None and run.checkpoint.position("") == ("t1", False)
    sink.write_part([make_row(2), make_row(3)], {"": ("t2", False)})
    assert keys(sink.finalize()) == [f"img/{i:07d}.jpg" for i in range(4)]
    run.close()


def test_open_removes_temp_files_only(run: Run) -> None:
    sink = run.open(resume=False)
    sink.write_part([make_row(0)])
    part_temp = sink.parts_dir / f".part-000002.{SUFFIX[run.fmt]}.0123456789ab.tmp"
    final_temp = run.output.with_name(f".{run.output.name}.ba9876543210.tmp")
    bystander = run.output.with_name(f".other.{SUFFIX[run.fmt]}.ba9876543210.tmp")
    for path in (part_temp, final_temp, bystander):
        path.write_bytes(b"half written")
    sink = run.open()
    assert not part_temp.exists() and not final_temp.exists() and bystander.exists()
    assert keys(sink.finalize()) == ["img/0000000.jpg"]


def test_missing_committed_part_stops_the_run(run: Run) -> None:
    sink = run.open(resume=False)
    sink.write_part([make_row(0)])
    (sink.parts_dir / f"part-000001.{SUFFIX[run.fmt]}").unlink()
    with pytest.raises(OutputError) as info:
        run.open()
    assert "part-000001" in str(info.value) and str(run.ckpt_path) in str(info.value)


def test_crash_during_finalize_before_mark_redoes_the_merge(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = run.open(resume=False)
    for part in range(3):
        sink.write_part([make_row(part * 2), make_row(part * 2 + 1)])
    assert run.checkpoint is not None
    monkeypatch.setattr(run.checkpoint, "mark_finished", lambda output: (_ for _ in ()).throw(SystemExit()))
    with pytest.raises(SystemExit):
        sink.finalize()
    assert run.output.exists() and sink.parts_dir.exists()
    sink = run.open()
    assert keys(sink.finalize()) == [f"img/{i:07d}.jpg" for i in range(6)]
    assert not sink.parts_dir.exists()


def test_finished_run_reopens_as_finished(run: Run) -> None:
    sink = run.open(resume=False)
    sink.write_part([make_row(0)])
    output = sink.finalize()
    leftover = sink.parts_dir / "part-000001.x"  # a crash during the final cleanup
    leftover.parent.mkdir()
    leftover.write_bytes(b"")
    sink = run.open()
    assert not sink.parts_dir.exists()
    assert sink.finalize() == output and keys(output) == ["img/0000000.jpg"]


def test_unknown_format_and_suffix(tmp_path: Path) -> None:
    with Checkpoint.open(tmp_path / "c", {}, resume=False) as checkpoint, pytest.raises(ValueError, match="parquet"):
        open_part_writer(tmp_path / "out.xlsx", "xlsx", checkpoint)
    with pytest.raises(ValueError, match="from its suffix"):
        read_rows(tmp_path / "out.xlsx")


# -- scale -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_200k_rows_in_20_parts_stream_into_coalesced_row_groups(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Finalize never holds the run: each write to the final file is ≤ 2 × COALESCE_ROWS rows."""
    run = Run(tmp_path, "parquet")
    sink = run.open(resume=False)
    per_part = 10_000
    dims = {"NoiseScore": 0.97}
    for part in range(20):  # plain constructor: make_row's per-row dict would dominate the test's time
        sink.write_part([ResultRow("photos", f"img/{n:07d}.jpg", "E", n, T0, Status.SCORED, 0.5, dims)
                         for n in range(part * per_part, (part + 1) * per_part)])
    written: list[int] = []
    real_write_table = pq.ParquetWriter.write_table

    def spy(self: pq.ParquetWriter, table: pa.Table, row_group_size: int | None = None) -> None:
        written.append(table.num_rows)
        real_write_table(self, table, row_group_size=row_group_size)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", spy)
    output = sink.finalize()
    meta = pq.ParquetFile(output).metadata
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert groups == [70_000, 70_000, 60_000]
    assert all(n >= COALESCE_ROWS for n in groups[:-1])
    assert written == groups and max(written) <= 2 * COALESCE_ROWS
    column = pq.read_table(output, columns=["key"]).column("key").to_pylist()
    assert len(column) == 200_000 and len(set(column)) == 200_000
    assert column == sorted(column)  # part order, row order kept
    run.close()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_a_results_file_from_before_storage_class_still_reads(tmp_path: Path, fmt: str) -> None:
    """``storage_class`` is optional: files written before it existed are still inputs (filter, covers)."""
    older = RowSchema({name: kind for name, kind in RESULT_SCHEMA.kinds.items() if name != "storage_class"})
    path = tmp_path / f"old.{fmt}"
    format_named(fmt, older).write_part([older.to_record(make_row(3))], path)
    [record] = list(read_rows(path, schema=RESULT_SCHEMA))
    assert record["storage_class"] is None and record["key"] == "img/0000003.jpg"
    required = RowSchema({**RESULT_SCHEMA.kinds})  # the same columns, none optional: the file is refused
    if fmt != "jsonl":
        with pytest.raises(ValueError, match="lacks the column"):
            list(read_rows(path, schema=required))
