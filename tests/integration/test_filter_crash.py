"""``picscore filter --action move|delete`` stopped by ``kill -9`` at random moments, then resumed
(and killed again) until a resume finishes: every selected object ends acted on exactly once and
no unselected object is touched, checked by listing the bucket against the selection, by the
completion report and, for a move, by the requests the server saw.

The command runs against its own ``picscore serve`` and is paced (``--rate-limit``), so an
action's requests are spread out and kills land between the journal's intent and the request,
between a move's copy and its delete, and between an action and the commit of its report row.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from tests.integration.filterhelpers import Library, filter_command, list_keys, results_file, sdk_client
from tests.integration.helpers import unique_prefix
from tests.integration.runhelpers import rows_by_key, run_cli, start_run, wait_for
from worker.actions.rows import ACTION_SCHEMA
from worker.results.formats import read_rows
from worker.server.launch import ServerProcess, start_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

N_OBJECTS = 60
BELOW = 0.5
#: Client pacing that spreads a run's ~80 requests over ~2.5 s.
PACING = ("--rate-limit", "30", "--concurrency", "4", "--flush-rows", "3")
SEEDS = [1, 2, 3, 4, 5]
MUTATING = frozenset({"PUT", "DELETE", "POST"})


@pytest.fixture(scope="module")
def crash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of this module's own (no other test's requests in its log or its timing)."""
    root = tmp_path_factory.mktemp("filter-crash-root")
    (root / BUCKET).mkdir()
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--workers", "1", "--log-level", "debug"]) as server:
        yield server


@pytest.fixture()
def client(crash_server: ServerProcess) -> oss.Client:
    return sdk_client(crash_server.url)


class RequestLog:
    """The requests the server logged since a point, read incrementally (the log only grows)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.seen = len(server.output)
        self.requests: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        lines = self.server.output[self.seen:]
        self.seen += len(lines)
        for line in lines:
            line = line.strip()
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == "request":
                    self.requests.append(event)
        return self.requests

    def mutating(self) -> int:
        return sum(1 for r in self.poll() if r["method"] in MUTATING)


@dataclass
class Scene:
    """One test's objects, its selection and its command line."""

    library: Library
    action: str
    selected: set[str]
    unselected: set[str]
    command: list[str]
    report: Path
    checkpoint: Path
    quarantine: str
    kills: list[dict[str, Any]] = field(default_factory=list)

    def destination(self, key: str) -> str:
        return self.quarantine + key


def _scene(tmp_path: Path, client: oss.Client, server: ServerProcess, action: str, rng: random.Random) -> Scene:
    library = Library(client, unique_prefix(f"crash-{action}"))
    scores: dict[str, float] = {}
    for n in range(N_OBJECTS):
        name = f"{n:03d}.jpg" if n % 4 else f"sub/{n:03d} x+y.jpg"
        library.put(name, b"filter crash object %d %d" % (n, rng.getrandbits(32)))
        scores[name] = round(rng.uniform(0.0, 0.45) if rng.random() < 0.65 else rng.uniform(0.55, 1.0), 3)
    selected = {library.prefix + name for name, score in scores.items() if score < BELOW}
    results = results_file(tmp_path / "audit.parquet", library, scores)
    report, checkpoint = tmp_path / "report.csv", tmp_path / "run.checkpoint.sqlite"
    quarantine = library.prefix + "quarantine/"
    extra = ["--to", quarantine] if action == "move" else ["--yes"]
    command = filter_command(server.url, str(results), "--below", str(BELOW), "--action", action, *extra,
                             "--max-percent", "100", "--output", str(tmp_path / "selection.parquet"),
                             "--report", str(report), "--checkpoint", str(checkpoint), *PACING)
    return Scene(library, action, selected, set(library.data) - selected, command, report, checkpoint, quarantine)


def _journal_state(checkpoint: Path, scratch: Path) -> dict[str, Any]:
    """The journal and the reported pairs of a killed run's checkpoint, read from a copy (WAL included)."""
    if not checkpoint.exists():
        return {"intent": set(), "journal_done": set(), "reported": set()}
    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / checkpoint.name
    for suffix in ("", "-wal"):
        target = copy.with_name(copy.name + suffix)
        target.unlink(missing_ok=True)
        source = checkpoint.with_name(checkpoint.name + suffix)
        if source.exists():
            shutil.copyfile(source, target)
    conn = sqlite3.connect(copy)
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "journal" not in tables:
            return {"intent": set(), "journal_done": set(), "reported": set()}
        journal = list(conn.execute("SELECT key, state FROM journal"))
        reported = {key for (key,) in conn.execute("SELECT key FROM done")}
    finally:
        conn.close()
    return {"intent": {key for key, state in journal if state == "intent"},
            "journal_done": {key for key, state in journal if state == "done"}, "reported": reported}


def _record_kill(scene: Scene, client: oss.Client, scratch: Path, run_no: int, returncode: int) -> dict[str, Any]:
    """Where the kill fell: what the bucket and the journal show for each selected object."""
    listing = list_keys(client, scene.library.prefix)
    journal = _journal_state(scene.checkpoint, scratch)
    at_source = {key for key in scene.selected if key in listing}
    at_destination = {key for key in scene.selected if scene.destination(key) in listing}
    acted = len(scene.selected - at_source)  # moved or deleted (a move's copy alone does not count)
    touched = len((scene.selected - at_source) | at_destination)
    kill = {
        "run": run_no, "killed": returncode == -signal.SIGKILL, "acted": acted, "of": len(scene.selected),
        # the action begun (intent journaled) but its outcome not: the resume must reconcile these
        "intent": len(journal["intent"]),
        # of those, already carried out in the bucket (the kill fell after the request)
        "intent_acted": len(journal["intent"] - at_source),
        # a move copied but its source not deleted yet
        "copied_not_deleted": len(journal["intent"] & at_source & at_destination),
        # journaled done, report row not committed: the resume reports them from the journal
        "done_unreported": len(journal["journal_done"] - journal["reported"]),
        "reported": len(journal["reported"]),
    }
    kill["mid_action"] = kill["killed"] and touched > 0 and acted < len(scene.selected)
    scene.kills.append(kill)
    return kill


@dataclass(frozen=True)
class KillAt:
    """When to kill: once the server logged ``count`` of the run's requests (one of them a write),
    or ``count`` of its writes (then at once: the kill races the journal's ``done``), plus ``delay_s``;
    ``count=None``: after ``delay_s`` alone, maybe while the run still starts or plans."""

    count: int | None
    writes: bool = False
    delay_s: float = 0.0

    @classmethod
    def draw(cls, rng: random.Random, scene: Scene, remaining: int) -> KillAt:
        """A random moment within the first half or so of ``remaining`` objects' requests."""
        mode = rng.random()
        if mode < 0.4:
            return cls(rng.randint(1, max(1, remaining)), delay_s=rng.uniform(0.0, 0.06))
        if mode < 0.8:  # a move writes twice per object, a delete once per batch of ~4
            most = remaining if scene.action == "move" else remaining // 8
            return cls(rng.randint(1, max(1, most)), writes=True)
        return cls(None, delay_s=rng.uniform(0.3, 3.0))


def _kill(run: subprocess.Popen[str], log: RequestLog, at: KillAt) -> tuple[int, str]:
    """Kill ``run`` at ``at``; its exit status (0 if it finished first) and its stderr."""
    start = len(log.poll())

    def reached() -> bool:
        since = log.poll()[start:]
        writes = sum(1 for r in since if r["method"] in MUTATING)
        return writes >= at.count if at.writes else len(since) >= at.count and writes > 0

    if at.count is not None:
        wait_for(lambda: reached() or run.poll() is not None, 60, str(at), interval=0.001)
    time.sleep(at.delay_s)
    if run.poll() is None:
        run.kill()
    _, stderr = run.communicate()
    return run.returncode, stderr


def _describe(scene: Scene) -> str:
    """One line per test: where each kill fell (pytest -s shows it)."""
    def one(kill: dict[str, Any]) -> str:
        begun = f"{kill['intent']} begun ({kill['intent_acted']} of them carried out"
        begun += f", {kill['copied_not_deleted']} copied not deleted)" if scene.action == "move" else ")"
        return (f"run {kill['run']}: {'killed' if kill['killed'] else 'finished'}, {kill['acted']}/{kill['of']} "
                f"acted, {begun}, {kill['done_unreported']} done unreported")
    return f"{scene.action}: " + "; ".join(one(kill) for kill in scene.kills)


def _assert_exactly_once(scene: Scene, client: oss.Client, log: RequestLog) -> None:
    library = scene.library
    expected = {key: library.etag(key) for key in scene.unselected}
    if scene.action == "move":
        expected.update({scene.destination(key): library.etag(key) for key in scene.selected})
    # The bucket against the selection: unselected untouched, selected moved (same ETag) or gone,
    # nothing else under the prefix (the quarantine is under it).
    assert list_keys(client, library.prefix) == expected, scene.kills

    rows = rows_by_key(read_rows(scene.report, schema=ACTION_SCHEMA))  # fails on a repeated row
    assert set(rows) == scene.selected, scene.kills
    assert Counter(row["outcome"] for row in rows.values()) == {"done": len(scene.selected)}, (
        [row for row in rows.values() if row["outcome"] != "done"], scene.kills)
    for key, row in rows.items():
        assert (row["action"], row["etag"]) == (scene.action, library.etag(key))
        assert row["destination"] == (scene.destination(key) if scene.action == "move" else None)

    # What the server saw over all the runs: no write to an unselected key, and for a move one
    # successful CopyObject and one DeleteObject per selected object.
    writes = [r for r in log.poll() if r["method"] in MUTATING]
    touched = {r["key"] for r in writes if r["key"]}
    assert not touched & scene.unselected
    if scene.action == "move":
        copies = Counter(r["key"] for r in writes if r["method"] == "PUT" and r["status"] == 200)
        deletes = Counter(r["key"] for r in writes if r["method"] == "DELETE")
        assert copies == Counter({scene.destination(key): 1 for key in scene.selected}), (
            {k: n for k, n in copies.items() if n != 1}, scene.kills)
        assert deletes == Counter({key: 1 for key in scene.selected}), (
            {k: n for k, n in deletes.items() if n != 1}, scene.kills)
    else:
        assert {r["method"] for r in writes} == {"POST"}  # DeleteMultipleObjects only


@pytest.mark.parametrize("action", ["move", "delete"])
@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_at_random_moments_then_resume_acts_on_each_selected_object_once(
        seed: int, action: str, crash_server: ServerProcess, client: oss.Client, tmp_path: Path) -> None:
    rng = random.Random(f"{action}-{seed}")
    scene = _scene(tmp_path, client, crash_server, action, rng)
    assert 20 <= len(scene.selected) <= N_OBJECTS - 10
    log = RequestLog(crash_server)
    scratch = tmp_path / "scratch"

    # The first kill always falls after the first write and well before the last request (a
    # move sends ~2 requests per object, a delete ~1.25).
    run = start_run(scene.command)
    at = KillAt.draw(rng, scene, len(scene.selected))
    if at.count is None:
        at = KillAt(1, delay_s=at.delay_s / 10)
    code, stderr = _kill(run, log, at)
    assert code == -signal.SIGKILL, (code, stderr)
    first = _record_kill(scene, client, scratch, 0, code)
    assert first["mid_action"], first

    # Then 1 to 3 resumes, each killed at a random moment (one may finish first).
    for run_no in range(1, rng.randint(1, 3) + 1):
        remaining = len(scene.selected) - scene.kills[-1]["acted"]
        at = KillAt.draw(rng, scene, remaining)
        resumed = start_run([*scene.command, "--resume"])
        code, stderr = _kill(resumed, log, at)
        assert code in (0, -signal.SIGKILL), (code, stderr, scene.kills)
        kill = _record_kill(scene, client, scratch, run_no, code)
        if code == 0:
            break
        assert kill["acted"] >= scene.kills[-2]["acted"]

    final = run_cli([*scene.command, "--resume"])
    assert final.returncode == 0, (scene.kills, final.stdout, final.stderr)
    assert "Traceback" not in final.stderr
    print(f"\nseed {seed} {_describe(scene)}")
    _assert_exactly_once(scene, client, log)


def test_a_rerun_without_resume_after_a_kill_is_refused_and_touches_nothing(
        crash_server: ServerProcess, client: oss.Client, tmp_path: Path) -> None:
    rng = random.Random("refusal")
    scene = _scene(tmp_path, client, crash_server, "move", rng)
    log = RequestLog(crash_server)
    run = start_run(scene.command)
    code, stderr = _kill(run, log, KillAt(5, writes=True))
    assert code == -signal.SIGKILL, (code, stderr)
    kill = _record_kill(scene, client, tmp_path / "scratch", 0, code)
    assert kill["mid_action"], kill
    before = list_keys(client, scene.library.prefix)
    writes_before = log.mutating()

    again = run_cli(scene.command)
    assert again.returncode == 2, (again.stdout, again.stderr)
    assert "unfinished run" in again.stderr and "--resume" in again.stderr
    assert "Traceback" not in again.stderr
    time.sleep(0.2)
    assert log.mutating() == writes_before  # not one write
    assert list_keys(client, scene.library.prefix) == before
    assert not scene.report.exists()

    final = run_cli([*scene.command, "--resume"])  # the refusal left the run resumable
    assert final.returncode == 0, (final.stdout, final.stderr)
    _assert_exactly_once(scene, client, log)
