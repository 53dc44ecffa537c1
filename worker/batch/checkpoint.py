"""The run's memory across ``kill -9``: which object versions are written, and where each source stopped.

A SQLite file (stdlib ``sqlite3``, WAL journal, ``synchronous=FULL``) holds four tables:

* ``done(key, etag, part)`` — every object version whose row is in a committed part file;
* ``parts(part, file, rows)`` — the committed part files, in output order;
* ``listing(prefix, token, finished)`` — per stream of the source (a listed prefix, or a results
  file read as input), the token to resume from, and whether the stream is finished;
* ``meta(name, value)`` — the run's fingerprint, schema version and the "finished" mark;
* ``journal(key, etag, action, state, row)`` — for commands that write to the bucket, each
  action's intent before it is sent and its outcome after (:mod:`.journal`).

Exactly-once rests on one rule: a part's file is made durable first (see
:mod:`worker.results.parts`), and then ONE transaction (:meth:`Checkpoint.commit_part`) records
the part, the ``(key, etag)`` of each of its rows and the resume positions those rows account
for. So at any crash point a row is either in ``done`` *and* in a durable committed part, or in
neither: the resumed run skips the first kind (:meth:`Checkpoint.done_among`) and redoes the
second. The caller must only advance a stream's token past objects that are in ``done`` or in
the part being committed.

``done`` is keyed by ``(key, etag)`` alone: the bucket is part of the fingerprint, so one
checkpoint never spans two buckets. Recording a pair twice is refused (``CheckpointError``)
rather than ignored, because it would mean a duplicate row in the output.

The database is opened with ``locking_mode=EXCLUSIVE``: the lock is held from :meth:`open` to
:meth:`close` (the kernel drops it when the process dies), so two workers can never share one
checkpoint and output — the second gets a ``CheckpointError`` at once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from ..errors import CheckpointError
from ..results.schema import KeyedRow
from .journal import ActionJournal

__all__ = ["Checkpoint", "CheckpointError", "Position", "SCHEMA_VERSION"]

#: Bumped when the tables change; a checkpoint of another version is refused on resume.
SCHEMA_VERSION = 1

#: Most ``(key, etag)`` pairs looked up per query (one bound variable per pair's key).
LOOKUP_CHUNK = 500

#: ``(resume token or None, stream finished)`` for one stream of a source: a listed prefix (the
#: token is ListObjectsV2's continuation token) or a results file (the token is a row offset).
Position = tuple[str | None, bool]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS done (
    key TEXT NOT NULL, etag TEXT NOT NULL, part INTEGER NOT NULL, PRIMARY KEY (key, etag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parts (part INTEGER PRIMARY KEY, file TEXT NOT NULL, rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS listing (prefix TEXT PRIMARY KEY, token TEXT NULL, finished INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    key TEXT NOT NULL, etag TEXT NOT NULL, action TEXT NOT NULL, state TEXT NOT NULL, row TEXT NULL,
    PRIMARY KEY (key, etag)
) WITHOUT ROWID;
"""


def _canonical(fingerprint: Mapping[str, object]) -> dict[str, object]:
    """The fingerprint as it reads back from JSON (tuples → lists, paths → str), for comparison."""
    return json.loads(json.dumps(dict(fingerprint), sort_keys=True, default=str))


def _differences(stored: Mapping[str, object], current: Mapping[str, object]) -> list[str]:
    """One ``field: stored != current`` line per fingerprint field that differs."""
    missing = object()
    lines = []
    for name in sorted(set(stored) | set(current)):
        old, new = stored.get(name, missing), current.get(name, missing)
        if old != new:
            shown_old = "(absent)" if old is missing else repr(old)
            shown_new = "(absent)" if new is missing else repr(new)
            lines.append(f"{name}: {shown_old} in the checkpoint, {shown_new} now")
    return lines


class Checkpoint:
    """One run's checkpoint. Thread-safe (one connection behind a lock); one process at a time."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        """Use :meth:`open`; this only wraps an already validated connection."""
        self.path = path
        self._conn = conn
        self._lock = threading.Lock()
        self._chunk = min(LOOKUP_CHUNK, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        #: The action journal of commands that write to the bucket, in the same file and lock, so
        #: it starts over, is taken over and is resumed together with the rows it accounts for.
        self.journal = ActionJournal(self._transaction, self._read, self._chunk)

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, fingerprint: Mapping[str, object], *, resume: bool,
             restart: bool = False) -> Checkpoint:
        """Open (``resume=True``) or create the checkpoint of the run identified by ``fingerprint``.

        A new run refuses a checkpoint that holds an *unfinished* run, so a forgotten ``--resume``
        never silently restarts (and duplicates) a half-done run; ``restart=True`` discards it on
        purpose. A finished run, or a start that committed nothing, stands in nobody's way: a new
        run takes the file over. Resuming checks the fingerprint, so a changed option never mixes
        two runs in one output. ``resume=True`` with no file starts fresh: the first start of a
        Kubernetes job may always pass ``--resume``. Taking a file over happens inside the
        exclusive lock, in one transaction, so two processes can never both do it.
        """
        path = Path(path)
        exists = path.exists()
        if not exists:
            _remove_stale_sidecars(path)
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(path)
        try:
            _init(conn, path, _canonical(fingerprint), resume=resume, restart=restart)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn)

    # -- queries -------------------------------------------------------------------------------

    def done_among(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """The ``(key, etag)`` pairs among ``pairs`` that are already written, in chunked queries.

        Each query binds at most ``LOOKUP_CHUNK`` keys and filters etags here: it stays within
        SQLite's bound-variable limit and always uses the primary key's leading column.
        """
        found: set[tuple[str, str]] = set()
        wanted = set(pairs)
        keys = sorted({key for key, _ in wanted})
        with self._lock:
            for start in range(0, len(keys), self._chunk):
                chunk = keys[start:start + self._chunk]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(f"SELECT key, etag FROM done WHERE key IN ({marks})", chunk)
                found.update(pair for pair in rows if pair in wanted)
        return found

    def done_count(self) -> int:
        """How many object versions are written (the sum over committed parts: no table scan)."""
        return int(self._one("SELECT COALESCE(SUM(rows), 0) FROM parts"))

    def position(self, stream: str) -> Position:
        """Where ``stream`` resumes: ``(None, False)`` when it never started."""
        with self._lock:
            row = self._conn.execute("SELECT token, finished FROM listing WHERE prefix = ?", (stream,)).fetchone()
        return (None, False) if row is None else (row[0], bool(row[1]))

    def committed_parts(self) -> list[tuple[int, str]]:
        """``(part number, file name)`` of every committed part, in output order."""
        with self._lock:
            return [(int(n), str(f)) for n, f in self._conn.execute("SELECT part, file FROM parts ORDER BY part")]

    def next_part_no(self) -> int:
        """The number after the highest committed part (1 for a new run)."""
        return int(self._one("SELECT COALESCE(MAX(part), 0) + 1 FROM parts"))

    def is_finished(self) -> bool:
        """Whether the final output was written (:meth:`mark_finished`)."""
        return self._meta("finished_output") is not None

    def finished_output(self) -> str | None:
        """The final output path recorded by :meth:`mark_finished`, if any."""
        return self._meta("finished_output")

    # -- updates -------------------------------------------------------------------------------

    def commit_part(
        self, part_no: int, file_name: str, rows: Sequence[KeyedRow], positions: Mapping[str, Position]
    ) -> None:
        """Record a durable part file, its rows' ``(key, etag)`` and resume positions, atomically.

        Raises ``CheckpointError`` (and records nothing) if a pair is already recorded or
        appears twice in ``rows``: writing it would repeat a row in the output.
        """
        pairs = [(row.key, row.etag) for row in rows]
        with self._transaction() as conn:
            try:
                conn.execute("INSERT INTO parts (part, file, rows) VALUES (?, ?, ?)", (part_no, file_name, len(rows)))
            except sqlite3.IntegrityError as exc:
                raise CheckpointError(f"checkpoint {self.path}: part {part_no} is already committed") from exc
            try:
                conn.executemany("INSERT INTO done (key, etag, part) VALUES (?, ?, ?)",
                                 ((key, etag, part_no) for key, etag in pairs))
            except sqlite3.IntegrityError as exc:
                raise CheckpointError(self._repeat_message(part_no, pairs)) from exc
            _update_positions(conn, positions)

    def commit_positions(self, positions: Mapping[str, Position]) -> None:
        """Record resume positions alone (a page whose objects were all done or filtered out)."""
        if positions:
            with self._transaction() as conn:
                _update_positions(conn, positions)

    def mark_finished(self, output: str) -> None:
        """Record that the final ``output`` is written, so a resumed run knows there is nothing left."""
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('finished_output', ?)", (str(output),))

    def close(self) -> None:
        """Close the database (which folds the WAL back into the file) and release the lock."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: committed (and fsynced) on success, else rolled back."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The connection for queries, under the lock."""
        with self._lock:
            yield self._conn

    def _one(self, sql: str) -> object:
        with self._lock:
            return self._conn.execute(sql).fetchone()[0]

    def _meta(self, name: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def _repeat_message(self, part_no: int, pairs: list[tuple[str, str]]) -> str:
        """Name the repeated pair (runs inside the failing transaction, lock already held)."""
        repeated = [pair for pair, n in Counter(pairs).items() if n > 1]
        if repeated:
            key, etag = repeated[0]
            return f"checkpoint {self.path}: part {part_no} holds key {key!r} etag {etag!r} twice"
        for key, etag in pairs:
            row = self._conn.execute("SELECT part FROM done WHERE key = ? AND etag = ?", (key, etag)).fetchone()
            if row is not None and row[0] != part_no:
                return (f"checkpoint {self.path}: key {key!r} etag {etag!r} is already written "
                        f"(part {row[0]}); part {part_no} would repeat it")
        return f"checkpoint {self.path}: part {part_no} repeats a recorded row"


def _remove_stale_sidecars(path: Path) -> None:
    """Drop a ``-wal``/``-shm`` left beside a deleted checkpoint: SQLite would replay it into the new one."""
    for suffix in ("-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _connect(path: Path) -> sqlite3.Connection:
    """Autocommit connection (transactions are explicit), exclusive lock, WAL, fsync on every commit."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.OperationalError as exc:
        conn.close()
        raise _locked_error(path, exc) from exc
    return conn


def _locked_error(path: Path, exc: sqlite3.OperationalError) -> CheckpointError:
    if "locked" in str(exc) or "busy" in str(exc):
        return CheckpointError(f"checkpoint {path} is in use by another picscore process")
    return CheckpointError(f"checkpoint {path} cannot be opened: {exc}")


def _init(conn: sqlite3.Connection, path: Path, fingerprint: dict[str, object], *, resume: bool,
          restart: bool) -> None:
    """Take the exclusive lock, then create the tables, check the stored identity or take the file
    over (:meth:`Checkpoint.open`), in one transaction.

    A file with no fingerprint (killed between creating the file and this commit) counts as new.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise _locked_error(path, exc) from exc
    try:
        # Statement by statement: executescript() would COMMIT and drop the lock's transaction.
        for statement in filter(str.strip, _SCHEMA.split(";")):
            conn.execute(statement)
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        if "fingerprint" in meta and resume:
            _check_identity(path, meta, fingerprint)
        else:
            if "fingerprint" in meta and not restart and not _finished_or_untouched(conn, meta):
                written = conn.execute("SELECT COALESCE(SUM(rows), 0) FROM parts").fetchone()[0]
                raise CheckpointError(
                    f"checkpoint {path} holds an unfinished run ({written} rows written): pass --resume to "
                    f"continue it, or --restart to discard it and start over"
                )
            _start_over(conn, fingerprint)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _start_over(conn: sqlite3.Connection, fingerprint: dict[str, object]) -> None:
    """Empty every table and record the new run's identity: nothing of an earlier run stays."""
    for table in ("done", "parts", "listing", "journal", "meta"):
        conn.execute(f"DELETE FROM {table}")
    conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                     [("fingerprint", json.dumps(fingerprint, sort_keys=True)),
                      ("schema_version", str(SCHEMA_VERSION))])


def _finished_or_untouched(conn: sqlite3.Connection, meta: Mapping[str, str]) -> bool:
    """Whether the stored run needs no ``--resume``: it finished, or it never committed anything
    (no row, no position, and no journaled action: an action sent but not yet reported counts)."""
    if "finished_output" in meta:
        return True
    return conn.execute("SELECT EXISTS (SELECT 1 FROM parts) OR EXISTS (SELECT 1 FROM listing) "
                        "OR EXISTS (SELECT 1 FROM journal)").fetchone()[0] == 0


def _check_identity(path: Path, meta: Mapping[str, str], fingerprint: dict[str, object]) -> None:
    """Refuse to resume a checkpoint of another schema version or another run."""
    version = meta.get("schema_version")
    if version != str(SCHEMA_VERSION):
        raise CheckpointError(
            f"checkpoint {path} has schema version {version}, this picscore writes {SCHEMA_VERSION}: "
            f"finish that run with the picscore that started it, or delete {path} to start over"
        )
    stored = json.loads(meta["fingerprint"])
    differences = _differences(stored, fingerprint)
    if differences:
        raise CheckpointError(
            f"checkpoint {path} belongs to a different run; differing fields: "
            + "; ".join(differences)
            + f". Run with the same options to resume it, or delete {path} to start over"
        )


def _update_positions(conn: sqlite3.Connection, positions: Mapping[str, Position]) -> None:
    """The table keeps its first name, ``listing (prefix, …)``, so older checkpoints still resume."""
    conn.executemany(
        "INSERT INTO listing (prefix, token, finished) VALUES (?, ?, ?) "
        "ON CONFLICT (prefix) DO UPDATE SET token = excluded.token, finished = excluded.finished",
        [(stream, token, int(finished)) for stream, (token, finished) in positions.items()],
    )
