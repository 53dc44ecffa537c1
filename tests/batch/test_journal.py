"""The action journal (:mod:`worker.batch.journal`) in the checkpoint's SQLite file: what begin,
finish and entries record and return, and how the journal follows its checkpoint when a run
starts over, is taken over or is resumed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from worker.batch.checkpoint import LOOKUP_CHUNK, Checkpoint, CheckpointError
from worker.batch.journal import JournalEntry, JournalState
from worker.results.schema import ResultRow, Status

FINGERPRINT: dict[str, object] = {"command": "filter", "bucket": "photos", "plan": "/data/plan.parquet"}
WHEN = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def record(key: str, outcome: str = "done", **extra: object) -> dict[str, object]:
    return {"bucket": "photos", "key": key, "action": "move", "outcome": outcome, "acted_at": WHEN, **extra}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "act.ckpt"


@pytest.fixture
def cp(path: Path):
    with Checkpoint.open(path, FINGERPRINT, resume=False) as checkpoint:
        yield checkpoint


# -- begin / finish / entries ---------------------------------------------------------------------


def test_begin_records_an_intent_without_a_row(cp: Checkpoint) -> None:
    cp.journal.begin([("a.jpg", "E1"), ("b.jpg", "E2")], "move")
    assert cp.journal.entries([("a.jpg", "E1"), ("b.jpg", "E2")]) == {
        ("a.jpg", "E1"): JournalEntry("move", JournalState.INTENT, None),
        ("b.jpg", "E2"): JournalEntry("move", JournalState.INTENT, None),
    }
    assert cp.journal.counts() == {"intent": 2}


def test_begin_keeps_an_existing_intent_and_never_undoes_a_done_entry(cp: Checkpoint) -> None:
    cp.journal.begin([("a.jpg", "E")], "move")
    cp.journal.finish([("b.jpg", "E", "move", record("b.jpg"))])
    cp.journal.begin([("a.jpg", "E"), ("b.jpg", "E"), ("c.jpg", "E")], "delete")  # a resume begins again
    entries = cp.journal.entries([("a.jpg", "E"), ("b.jpg", "E"), ("c.jpg", "E")])
    assert entries[("a.jpg", "E")] == JournalEntry("move", JournalState.INTENT, None)
    assert entries[("b.jpg", "E")].state is JournalState.DONE and entries[("b.jpg", "E")].action == "move"
    assert entries[("b.jpg", "E")].row is not None and entries[("b.jpg", "E")].row["outcome"] == "done"
    assert entries[("c.jpg", "E")] == JournalEntry("delete", JournalState.INTENT, None)


def test_finish_turns_an_intent_into_done_with_its_row(cp: Checkpoint) -> None:
    cp.journal.begin([("a.jpg", "E")], "move")
    cp.journal.finish([("a.jpg", "E", "move", record("a.jpg", destination="q/a.jpg", http_status=204))])
    entry = cp.journal.entries([("a.jpg", "E")])[("a.jpg", "E")]
    assert entry.state is JournalState.DONE and entry.action == "move"
    # The row reads back as JSON: a timestamp as ISO text that datetime.fromisoformat takes.
    assert entry.row == {"bucket": "photos", "key": "a.jpg", "action": "move", "outcome": "done",
                         "acted_at": str(WHEN), "destination": "q/a.jpg", "http_status": 204}
    assert datetime.fromisoformat(entry.row["acted_at"]) == WHEN
    assert cp.journal.counts() == {"done": 1}


def test_finish_without_an_intent_records_done(cp: Checkpoint) -> None:
    """A step that failed before any write (no intend) still journals its outcome."""
    cp.journal.finish([("a.jpg", "E", "tag", record("a.jpg", "changed"))])
    entry = cp.journal.entries([("a.jpg", "E")])[("a.jpg", "E")]
    assert entry.state is JournalState.DONE and entry.row is not None and entry.row["outcome"] == "changed"


def test_finish_twice_keeps_the_last_row(cp: Checkpoint) -> None:
    cp.journal.finish([("a.jpg", "E", "move", record("a.jpg", "failed"))])
    cp.journal.finish([("a.jpg", "E", "move", record("a.jpg", "done"))])
    entry = cp.journal.entries([("a.jpg", "E")])[("a.jpg", "E")]
    assert entry.row is not None and entry.row["outcome"] == "done"
    assert cp.journal.counts() == {"done": 1}


def test_entries_returns_only_the_pairs_asked_for(cp: Checkpoint) -> None:
    cp.journal.begin([("a.jpg", "E1"), ("a.jpg", "E2"), ("b.jpg", "E1")], "delete")
    cp.journal.finish([("c.jpg", "E1", "delete", record("c.jpg"))])
    # Same key, other version: not this object's entry. Unknown keys: nothing.
    assert set(cp.journal.entries([("a.jpg", "E1"), ("c.jpg", "E9"), ("zz.jpg", "E1")])) == {("a.jpg", "E1")}
    assert set(cp.journal.entries([("a.jpg", "E2"), ("c.jpg", "E1")])) == {("a.jpg", "E2"), ("c.jpg", "E1")}
    assert cp.journal.entries([]) == {}


def test_entries_are_exact_across_many_chunked_lookups(cp: Checkpoint) -> None:
    total = 3 * LOOKUP_CHUNK + 7
    keys = [f"dir/ключ-{i:05d}.jpg" for i in range(total)]
    cp.journal.begin([(key, "E") for key in keys[::2]], "delete")
    cp.journal.finish([(key, "E", "delete", record(key)) for key in keys[1::2]])
    cp.journal.begin([(key, "other") for key in keys[:40]], "delete")  # other versions of some keys
    queries: list[str] = []
    cp._conn.set_trace_callback(queries.append)
    asked = [(key, "E") for key in keys] + [("dir/absent.jpg", "E")]
    entries = cp.journal.entries(asked)
    assert set(entries) == {(key, "E") for key in keys}
    assert all(entries[(key, "E")].state is JournalState.INTENT for key in keys[::2])
    assert all(entries[(key, "E")].state is JournalState.DONE and entries[(key, "E")].row == record(key) | {
        "acted_at": str(WHEN)} for key in keys[1::2])
    selects = [q for q in queries if q.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 4  # total + 1 distinct keys, at most LOOKUP_CHUNK per query
    assert cp.journal.counts() == {"intent": len(keys[::2]) + 40, "done": len(keys[1::2])}


def test_entries_of_many_versions_of_one_key_across_chunks(cp: Checkpoint) -> None:
    """Chunks are by distinct key: every version asked of a key is found, whichever chunk it is in."""
    pairs = [(f"k{i:04d}", "E") for i in range(LOOKUP_CHUNK + 10)] + [("k0499", f"v{n}") for n in range(5)]
    cp.journal.begin(pairs, "tag")
    assert set(cp.journal.entries(pairs)) == set(pairs)


# -- the journal follows its checkpoint -----------------------------------------------------------


def test_a_journaled_intent_alone_is_an_unfinished_run(path: Path) -> None:
    """Crash after the action's intent (and maybe the action) but before any row was committed:
    a new run without --resume must not start over and repeat the action."""
    with Checkpoint.open(path, FINGERPRINT, resume=False) as first:
        first.journal.begin([("a.jpg", "E")], "move")
    with pytest.raises(CheckpointError) as info:
        Checkpoint.open(path, FINGERPRINT, resume=False)
    message = str(info.value)
    assert str(path) in message and "unfinished run" in message
    assert "--resume" in message and "--restart" in message
    with Checkpoint.open(path, FINGERPRINT, resume=True) as again:  # the refusal left it intact
        assert set(again.journal.entries([("a.jpg", "E")])) == {("a.jpg", "E")}


def test_a_journaled_outcome_alone_is_an_unfinished_run(path: Path) -> None:
    """Crash after the action's outcome was journaled but before its row was committed."""
    with Checkpoint.open(path, FINGERPRINT, resume=False) as first:
        first.journal.finish([("a.jpg", "E", "delete", record("a.jpg"))])
    with pytest.raises(CheckpointError, match="--resume"):
        Checkpoint.open(path, FINGERPRINT, resume=False)


def test_restart_discards_the_journal(path: Path) -> None:
    with Checkpoint.open(path, FINGERPRINT, resume=False) as first:
        first.journal.begin([("a.jpg", "E")], "move")
        first.journal.finish([("b.jpg", "E", "move", record("b.jpg"))])
    with Checkpoint.open(path, FINGERPRINT, resume=False, restart=True) as again:
        assert again.journal.entries([("a.jpg", "E"), ("b.jpg", "E")]) == {}
        assert again.journal.counts() == {}
    with Checkpoint.open(path, FINGERPRINT, resume=False):  # nothing left that needs --resume
        pass


def test_taking_over_a_finished_run_starts_the_journal_over(path: Path) -> None:
    with Checkpoint.open(path, FINGERPRINT, resume=False) as first:
        first.journal.begin([("a.jpg", "E")], "move")
        first.journal.finish([("a.jpg", "E", "move", record("a.jpg"))])
        first.commit_part(1, "p1", [ResultRow("photos", "a.jpg", "E", 1, None, Status.SCORED)], {"plan": (None, True)})
        first.mark_finished("/data/report.parquet")
    with Checkpoint.open(path, {**FINGERPRINT, "plan": "/data/other.parquet"}, resume=False) as again:
        assert again.journal.entries([("a.jpg", "E")]) == {} and again.journal.counts() == {}
        assert not again.is_finished()


def test_a_resumed_checkpoint_keeps_the_journal(path: Path) -> None:
    with Checkpoint.open(path, FINGERPRINT, resume=False) as first:
        first.journal.begin([("a.jpg", "E"), ("b.jpg", "E")], "move")
        first.journal.finish([("b.jpg", "E", "move", record("b.jpg"))])
    with Checkpoint.open(path, FINGERPRINT, resume=True) as again:
        entries = again.journal.entries([("a.jpg", "E"), ("b.jpg", "E")])
        assert entries[("a.jpg", "E")] == JournalEntry("move", JournalState.INTENT, None)
        assert entries[("b.jpg", "E")].state is JournalState.DONE
        assert entries[("b.jpg", "E")].row == record("b.jpg") | {"acted_at": str(WHEN)}


def test_a_resume_with_another_fingerprint_keeps_the_journal_untouched(path: Path) -> None:
    with Checkpoint.open(path, FINGERPRINT, resume=False) as first:
        first.journal.begin([("a.jpg", "E")], "move")
    with pytest.raises(CheckpointError, match="different run"):
        Checkpoint.open(path, {**FINGERPRINT, "plan": "/data/other.parquet"}, resume=True)
    with Checkpoint.open(path, FINGERPRINT, resume=True) as again:
        assert again.journal.counts() == {"intent": 1}


def test_a_failed_journal_transaction_records_nothing(cp: Checkpoint) -> None:
    """begin/finish are one transaction each: an error part-way leaves none of their entries."""

    def pairs():
        yield ("a.jpg", "E")
        raise RuntimeError("the plan reader broke")

    with pytest.raises(RuntimeError):
        cp.journal.begin(pairs(), "move")  # type: ignore[arg-type]
    assert cp.journal.counts() == {}
    cp.journal.begin([("b.jpg", "E")], "move")  # the connection is usable afterwards
    assert cp.journal.counts() == {"intent": 1}
