"""The SQLite checkpoint: run identity, done lookups, and all-or-nothing part commits."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from worker.batch.checkpoint import Checkpoint, CheckpointError
from worker.results.schema import ResultRow, Status

FINGERPRINT: dict[str, object] = {
    "bucket": "photos", "prefixes": ["a/", "b/"], "shard": "0/1", "filters": {"max_size": 1000},
    "format": "parquet", "output": "/data/out.parquet",
}


def row(key: str, etag: str = "E") -> ResultRow:
    return ResultRow("photos", key, etag, 1, None, Status.SCORED, score=0.5)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "run.ckpt"


@pytest.fixture
def cp(path: Path):
    with Checkpoint.open(path, FINGERPRINT, resume=False) as checkpoint:
        yield checkpoint


# -- identity ----------------------------------------------------------------------------------


def test_new_run_refuses_an_unfinished_run_and_names_both_ways_out(path: Path) -> None:
    with Checkpoint.open(path, FINGERPRINT, resume=False) as first:
        first.commit_part(1, "p1", [row("k1")], {"a/": ("t1", False)})
    with pytest.raises(CheckpointError) as info:
        Checkpoint.open(path, FINGERPRINT, resume=False)
    message = str(info.value)
    assert str(path) in message and "unfinished run (1 rows written)" in message
    assert "--resume" in message and "--restart" in message


def test_restart_discards_an_unfinished_run(path: Path) -> None:
    with Checkpoint.open(path, FINGERPRINT, resume=False) as first:
        first.commit_part(1, "p1", [row("k1")], {"a/": ("t1", False)})
    with Checkpoint.open(path, {**FINGERPRINT, "prefix": ["z/"]}, resume=False, restart=True) as again:
        assert again.committed_parts() == [] and again.done_among([("k1", "E")]) == set()
        assert again.position("a/") == (None, False) and again.next_part_no() == 1


@pytest.mark.parametrize("finished", [True, False], ids=["finished run", "start that committed nothing"])
def test_a_new_run_takes_over_a_checkpoint_that_needs_no_resume(path: Path, finished: bool) -> None:
    """Only an unfinished run needs --resume: a finished one, or one that wrote nothing, is replaced."""
    with Checkpoint.open(path, FINGERPRINT, resume=False) as first:
        if finished:
            first.commit_part(1, "p1", [row("k1")], {"a/": (None, True)})
            first.mark_finished("out.parquet")
    with Checkpoint.open(path, {**FINGERPRINT, "prefix": ["other/"]}, resume=False) as again:
        assert not again.is_finished() and again.committed_parts() == []
        assert again.done_among([("k1", "E")]) == set()
    with Checkpoint.open(path, {**FINGERPRINT, "prefix": ["other/"]}, resume=True):  # the new identity stands
        pass


def test_resume_with_other_fingerprint_names_the_differing_fields(path: Path) -> None:
    Checkpoint.open(path, FINGERPRINT, resume=False).close()
    changed = {**FINGERPRINT, "bucket": "other", "shard": "1/2", "extra": True}
    with pytest.raises(CheckpointError) as info:
        Checkpoint.open(path, changed, resume=True)
    message = str(info.value)
    assert str(path) in message
    assert "bucket: 'photos' in the checkpoint, 'other' now" in message
    assert "shard: '0/1' in the checkpoint, '1/2' now" in message
    assert "extra: (absent) in the checkpoint, True now" in message
    assert "prefixes" not in message and "format" not in message


def test_resume_compares_fingerprints_as_json(path: Path) -> None:
    Checkpoint.open(path, FINGERPRINT, resume=False).close()
    same = {**FINGERPRINT, "prefixes": ("a/", "b/"), "output": Path("/data/out.parquet")}
    Checkpoint.open(path, same, resume=True).close()


def test_resume_without_file_starts_fresh_and_drops_a_stale_wal(path: Path) -> None:
    stale = path.with_name(path.name + "-wal")
    stale.write_bytes(b"not a wal of this database")
    with Checkpoint.open(path, FINGERPRINT, resume=True) as checkpoint:
        assert checkpoint.done_count() == 0 and checkpoint.next_part_no() == 1
        assert not checkpoint.is_finished()
    assert path.exists()


def test_other_schema_version_is_refused(path: Path) -> None:
    Checkpoint.open(path, FINGERPRINT, resume=False).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    conn.close()
    with pytest.raises(CheckpointError, match="schema version 99"):
        Checkpoint.open(path, FINGERPRINT, resume=True)


def test_second_process_cannot_share_the_checkpoint(cp: Checkpoint, path: Path) -> None:
    with pytest.raises(CheckpointError, match="in use by another picscore process"):
        Checkpoint.open(path, FINGERPRINT, resume=True)


def test_state_survives_close_and_resume(cp: Checkpoint, path: Path) -> None:
    cp.commit_part(1, "part-000001.parquet", [row("k1"), row("k2")], {"a/": ("tok1", False)})
    cp.commit_part(2, "part-000002.parquet", [row("k3")], {"a/": (None, True), "b/": ("t", False)})
    cp.close()
    with Checkpoint.open(path, FINGERPRINT, resume=True) as again:
        assert again.committed_parts() == [(1, "part-000001.parquet"), (2, "part-000002.parquet")]
        assert again.next_part_no() == 3 and again.done_count() == 3
        assert again.position("a/") == (None, True)
        assert again.position("b/") == ("t", False)
        assert again.position("c/") == (None, False)
        assert again.done_among([("k1", "E"), ("k3", "E"), ("k9", "E")]) == {("k1", "E"), ("k3", "E")}


# -- done lookups ------------------------------------------------------------------------------


def test_done_among_is_exact_across_many_chunks(cp: Checkpoint) -> None:
    written = [(f"dir/ключ-{i:05d}.jpg", f"etag{i}") for i in range(0, 1300, 2)]
    rows = [row(key, etag) for key, etag in written]
    cp.commit_part(1, "p1", rows[:400], {})
    cp.commit_part(2, "p2", rows[400:], {})
    queries: list[str] = []
    cp._conn.set_trace_callback(queries.append)
    asked = [(f"dir/ключ-{i:05d}.jpg", f"etag{i}") for i in range(1300)]
    asked += [(key, "other-etag") for key, _ in written[:50]]  # same key, other version: not done
    assert cp.done_among(asked) == set(written)
    selects = [q for q in queries if q.startswith("SELECT")]
    assert len(selects) == 3  # 1300 distinct keys, ≤ 500 per query
    assert cp.done_among([]) == set()


# -- commits -----------------------------------------------------------------------------------


def test_commit_part_is_all_or_nothing_on_a_repeated_row(cp: Checkpoint) -> None:
    cp.commit_part(1, "p1", [row("k1"), row("k2")], {"a/": ("t1", False)})
    with pytest.raises(CheckpointError, match=r"key 'k2' etag 'E' is already written \(part 1\)"):
        cp.commit_part(2, "p2", [row("k3"), row("k2")], {"a/": ("t2", False)})
    assert cp.committed_parts() == [(1, "p1")]
    assert cp.done_among([("k3", "E")]) == set()
    assert cp.position("a/") == ("t1", False)
    assert cp.next_part_no() == 2


def test_commit_part_refuses_a_row_twice_in_one_part(cp: Checkpoint) -> None:
    with pytest.raises(CheckpointError, match="holds key 'k' etag 'E' twice"):
        cp.commit_part(1, "p1", [row("k"), row("k")], {})
    assert cp.done_count() == 0 and cp.committed_parts() == []


def test_commit_part_refuses_a_part_number_twice(cp: Checkpoint) -> None:
    cp.commit_part(1, "p1", [row("a")], {})
    with pytest.raises(CheckpointError, match="part 1 is already committed"):
        cp.commit_part(1, "p1b", [row("b")], {})


def test_same_key_new_etag_is_a_new_row(cp: Checkpoint) -> None:
    cp.commit_part(1, "p1", [row("k", "v1")], {})
    cp.commit_part(2, "p2", [row("k", "v2")], {})
    assert cp.done_count() == 2


def test_commit_positions_alone(cp: Checkpoint) -> None:
    cp.commit_positions({"a/": ("tok", False)})
    cp.commit_positions({})
    assert cp.position("a/") == ("tok", False)
    assert cp.committed_parts() == []


def test_mark_finished_persists(cp: Checkpoint, path: Path) -> None:
    cp.mark_finished("/data/out.parquet")
    cp.close()
    with Checkpoint.open(path, FINGERPRINT, resume=True) as again:
        assert again.is_finished() and again.finished_output() == "/data/out.parquet"


@pytest.mark.slow
def test_kill_9_inside_a_commit_keeps_the_previous_state(path: Path) -> None:
    """A real SIGKILL in the middle of a part's transaction: the part is simply not there."""
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from worker.batch.checkpoint import Checkpoint
        from tests.batch.test_checkpoint import FINGERPRINT, row
        cp = Checkpoint.open(Path({str(path)!r}), FINGERPRINT, resume=False)
        cp.commit_part(1, "p1", [row("k1")], {{"a/": ("t1", False)}})
        conn = cp._conn
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO parts VALUES (2, 'p2', 1)")
        conn.execute("INSERT INTO done VALUES ('k2', 'E', 2)")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    with Checkpoint.open(path, FINGERPRINT, resume=True) as again:
        assert again.committed_parts() == [(1, "p1")]
        assert again.done_among([("k1", "E"), ("k2", "E")]) == {("k1", "E")}
        assert again.position("a/") == ("t1", False)
