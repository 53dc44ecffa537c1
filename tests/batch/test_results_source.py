"""The results-file source: rows of earlier results (one or several files, any format, local or
``oss://``) as the engine's work, resumable by row offset; and the engine running it end to end
with another operation than image/score, against a real ``picscore serve`` through the real SDK."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import SimpleNamespace

import alibabacloud_oss_v2 as oss
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, make_jpeg
from tests.integration.rawclient import signed
from worker.batch.calls import PacedCaller
from worker.batch.checkpoint import Checkpoint
from worker.batch.engine import BatchEngine, EngineSettings
from worker.batch.items import WorkItem
from worker.batch.ledger import ResumeLedger
from worker.batch.pages import PageOffer
from worker.batch.ratelimit import AdaptiveLimiter
from worker.batch.results_source import ResultsFileSource, localize_results
from worker.batch.tally import Tally
from worker.errors import ResultsFileError
from worker.observability.metrics import BatchMetrics
from worker.oss.client import build_async_client
from worker.oss.retry import RetryPolicy, retrying
from worker.results.formats import read_rows
from worker.results.parts import open_part_writer
from worker.results.schema import ResultRow, RowSchema, Status
from worker.server.launch import ServerProcess

WHEN = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
CREDS = SimpleNamespace(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, session_token=None)
FAST = RetryPolicy(attempts=3, total_s=10.0, base_s=0.005, max_backoff_s=0.02)


def results_file(tmp_path: Path, name: str, keys: list[str], etag: str = "E") -> Path:
    """A real results file written the way ``picscore run`` writes one."""
    output = tmp_path / name
    with Checkpoint.open(tmp_path / f"{name}.ckpt", {"file": name}, resume=False) as checkpoint:
        writer = open_part_writer(output, output.suffix.lstrip("."), checkpoint)
        writer.write_part([ResultRow(BUCKET, key, etag, 10, WHEN, Status.SCORED, score=0.5, scored_at=WHEN)
                           for key in keys], {})
        writer.finalize()
    return output


async def nothing_done(pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
    return set()


async def offered(source: ResultsFileSource, ledger: ResumeLedger) -> list[WorkItem]:
    queue: asyncio.Queue[WorkItem | None] = asyncio.Queue()
    await source.run(queue, ledger)
    return [queue.get_nowait() for _ in range(queue.qsize())]


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
async def test_every_row_of_several_files_once_with_its_record(tmp_path: Path, suffix: str) -> None:
    first = results_file(tmp_path, f"shard-0{suffix}", [f"a/{i}.jpg" for i in range(5)])
    second = results_file(tmp_path, f"shard-1{suffix}", [f"b/{i}.jpg" for i in range(3)])
    ledger = ResumeLedger({})
    items = await offered(ResultsFileSource([first, second], PageOffer(nothing_done), page_rows=2), ledger)
    assert [item.ref.key for item in items] == [f"a/{i}.jpg" for i in range(5)] + [f"b/{i}.jpg" for i in range(3)]
    assert all(item.record is not None and item.record["score"] == 0.5 for item in items)
    assert {item.ref.prefix for item in items} == {str(first), str(second)}
    assert len({item.page for item in items}) == 3 + 2  # pages of 2 rows per file


async def test_resume_starts_at_the_saved_offset_and_skips_done_rows(tmp_path: Path) -> None:
    path = results_file(tmp_path, "r.parquet", [f"k/{i}.jpg" for i in range(10)])

    async def some_done(pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return {("k/5.jpg", "E")} & set(pairs)

    ledger = ResumeLedger({str(path): ("4", False)})
    items = await offered(ResultsFileSource([path], PageOffer(some_done), page_rows=4), ledger)
    assert [item.ref.key for item in items] == ["k/4.jpg", "k/6.jpg", "k/7.jpg", "k/8.jpg", "k/9.jpg"]
    for item in items:
        ledger.complete(item.page)
    assert ledger.updates() == {str(path): (None, True)}


async def test_shard_filter_and_finished_streams(tmp_path: Path) -> None:
    path = results_file(tmp_path, "r.jsonl", [f"k/{i}.jpg" for i in range(6)])
    items = await offered(ResultsFileSource([path], PageOffer(nothing_done, in_shard=lambda k: k < "k/3")),
                          ResumeLedger({}))
    assert [item.ref.key for item in items] == ["k/0.jpg", "k/1.jpg", "k/2.jpg"]
    assert await offered(ResultsFileSource([path], PageOffer(nothing_done)),
                         ResumeLedger({str(path): (None, True)})) == []


def test_missing_and_unnamed_files_are_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ResultsFileError, match="does not exist"):
        ResultsFileSource([tmp_path / "nope.parquet"], PageOffer(nothing_done))
    odd = tmp_path / "results.xlsx"
    odd.write_bytes(b"x")
    with pytest.raises(ResultsFileError, match="cannot tell the format"):
        ResultsFileSource([odd], PageOffer(nothing_done))


@pytest.mark.parametrize(("name", "content"), [
    ("foreign.csv", "name,value\na,1\n"),
    ("foreign.jsonl", '{"name": "a"}\n'),
    ("broken.parquet", "not parquet at all"),
])
async def test_a_file_that_is_not_a_results_file_is_a_clear_error(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ResultsFileError, match=r"not a picscore results file|has no bucket"):
        await offered(ResultsFileSource([path], PageOffer(nothing_done)), ResumeLedger({}))


async def test_oss_inputs_are_downloaded_once_and_read_like_local_ones(tmp_path: Path, server: ServerProcess) -> None:
    local = results_file(tmp_path, "night.parquet", ["x/1.jpg", "x/2.jpg"])
    assert signed(server.url, "PUT", "results/night.parquet", body=local.read_bytes()).status == 200
    cache = tmp_path / "cache"
    options = {"endpoint": server.url, "region": "cn-hangzhou", "credentials": CREDS, "retry": retrying(FAST)}
    [fetched] = await localize_results([f"oss://{BUCKET}/results/night.parquet"], cache, **options)
    assert fetched.parent == cache and fetched.read_bytes() == local.read_bytes()
    assert await localize_results([str(local)], cache, **options) == [local]
    with pytest.raises(ResultsFileError, match="NoSuchKey"):
        await localize_results([f"oss://{BUCKET}/results/missing.parquet"], cache, **options)
    with pytest.raises(ResultsFileError, match="oss://"):
        await localize_results(["oss://Bad_Bucket/x.parquet"], cache, **options)


class Check(StrEnum):
    SAME = "same"
    CHANGED = "changed"
    MISSING = "missing"


class CheckRow(SimpleNamespace):
    """A row of another command than ``run``: is the object still the version that was scored?"""


CHECK_SCHEMA = RowSchema({"bucket": "str", "key": "str", "etag": "str", "status": "str", "score": "float",
                          "error_code": "str", "http_status": "int", "attempts": "int"})


class HeadCheck:
    """An operation that is not image/score: HeadObject, compare the ETag with the results row's."""

    def __init__(self, client: oss.aio.AsyncClient, caller: PacedCaller) -> None:
        self.client, self.caller = client, caller

    async def perform(self, item: WorkItem) -> CheckRow:
        ref = item.ref
        outcome = await self.caller.call(lambda: self.client.head_object(
            oss.HeadObjectRequest(bucket=ref.bucket, key=ref.key)))
        if outcome.failure is not None:
            status, etag_now = Check.MISSING, None
        else:
            etag_now = (outcome.value.etag or "").strip('"')
            status = Check.SAME if etag_now == ref.etag else Check.CHANGED
        return CheckRow(bucket=ref.bucket, key=ref.key, etag=ref.etag, status=status,
                        score=item.record["score"] if item.record else None,
                        error_code=outcome.failure.code if outcome.failure else None,
                        http_status=outcome.failure.http_status if outcome.failure else 200,
                        attempts=outcome.attempts)


async def test_the_engine_runs_another_operation_over_results_rows_and_resumes_with_nothing_left(
        tmp_path: Path, server: ServerProcess) -> None:
    jpeg = make_jpeg(seed=11)
    for key in ("check/same.jpg", "check/changed.jpg"):
        assert signed(server.url, "PUT", key, body=jpeg).status == 200
    etag = signed(server.url, "HEAD", "check/same.jpg").headers["etag"].strip('"')
    source_file = results_file(tmp_path, "audit.csv", ["check/same.jpg", "check/changed.jpg", "check/gone.jpg"],
                               etag=etag)
    assert signed(server.url, "PUT", "check/changed.jpg", body=make_jpeg(seed=12)).status == 200

    async def run_once(resume: bool) -> tuple[Tally, Path]:
        output = tmp_path / "checked.jsonl"
        with Checkpoint.open(tmp_path / "checked.ckpt", {"inputs": [str(source_file)]}, resume=resume) as ckpt:
            writer = open_part_writer(output, "jsonl", ckpt, CHECK_SCHEMA)
            tally = Tally(statuses=tuple(Check), failure_statuses=frozenset({"missing"}),
                          counted_failure="missing", not_done_label="missing")
            engine = BatchEngine(EngineSettings(command="check", concurrency=2, flush_rows=2), BatchMetrics("check"),
                                 tally)
            pages = PageOffer(lambda pairs: asyncio.to_thread(ckpt.done_among, pairs), on_listed=engine.count_listed)
            source = ResultsFileSource([source_file], pages, page_rows=2)
            ledger = ResumeLedger({stream: ckpt.position(stream) for stream in source.streams})
            async with build_async_client(server.url, "cn-hangzhou", CREDS, 2) as client:
                operation = HeadCheck(client, PacedCaller(AdaptiveLimiter(None), FAST))
                outcome = await engine.run(source, operation, writer, ledger, signals=False)
            assert outcome.completed and outcome.stop.failure is None
            return tally, writer.finalize()

    tally, output = await run_once(resume=False)
    rows = {row["key"]: row for row in read_rows(output, schema=CHECK_SCHEMA)}
    assert {key: row["status"] for key, row in rows.items()} == {
        "check/same.jpg": "same", "check/changed.jpg": "changed", "check/gone.jpg": "missing"}
    assert rows["check/gone.jpg"]["http_status"] == 404 and rows["check/same.jpg"]["score"] == 0.5
    assert (tally.total, tally.failed) == (3, 1)
    again, _ = await run_once(resume=True)  # finished: the checkpoint has every row, nothing is offered
    assert again.total == 0
