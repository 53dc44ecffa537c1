"""An operation that raises (a bug, not an OSS failure) stops the engine with exit code 1 and
leaves its object unwritten, so ``--resume`` does it again; no row is lost in silence."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.batch.test_results_source import CHECK_SCHEMA, Check, CheckRow, results_file
from worker.batch.checkpoint import Checkpoint
from worker.batch.engine import BatchEngine, EngineSettings
from worker.batch.items import WorkItem
from worker.batch.ledger import ResumeLedger
from worker.batch.pages import PageOffer
from worker.batch.results_source import ResultsFileSource
from worker.errors import ExitCode
from worker.observability.metrics import BatchMetrics
from worker.results.formats import read_rows
from worker.results.parts import open_part_writer


class BrokenOnOne:
    """Answers every object but ``k/3.jpg``, on which it raises."""

    async def perform(self, item: WorkItem) -> CheckRow:
        if item.ref.key == "k/3.jpg":
            raise KeyError("a bug")
        return CheckRow(bucket=item.ref.bucket, key=item.ref.key, etag=item.ref.etag, status=Check.SAME, score=None,
                        error_code=None, http_status=200, attempts=1)


async def test_a_crashing_operation_stops_the_run_and_its_object_stays_to_do(tmp_path: Path) -> None:
    source_file = results_file(tmp_path, "in.jsonl", [f"k/{i}.jpg" for i in range(6)])
    with Checkpoint.open(tmp_path / "c.sqlite", {"x": 1}, resume=False) as checkpoint:
        writer = open_part_writer(tmp_path / "out.jsonl", "jsonl", checkpoint, CHECK_SCHEMA)
        engine = BatchEngine(EngineSettings(command="check", concurrency=1, flush_rows=1), BatchMetrics("check"))
        pages = PageOffer(lambda pairs: asyncio.to_thread(checkpoint.done_among, pairs))
        source = ResultsFileSource([source_file], pages, page_rows=2)
        outcome = await engine.run(source, BrokenOnOne(), writer, ResumeLedger({}), signals=False)
        assert outcome.stop.failure is not None
        code, message = outcome.stop.failure
        assert code == ExitCode.FAILURES and "k/3.jpg" in message and "KeyError" in message
        written = {row["key"] for part in writer.parts_dir.iterdir() for row in read_rows(part, schema=CHECK_SCHEMA)}
        assert "k/3.jpg" not in written and written <= {f"k/{i}.jpg" for i in range(3)}
        assert checkpoint.position(str(source_file)) != (None, True)
