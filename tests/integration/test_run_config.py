"""``picscore run`` refusing to start (exit 2), ``--dry-run``, and the time budget (exit 5)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.integration.runhelpers import (
    LocalBucket,
    assert_checkpoint_consistent,
    fake_score,
    read_output,
    rows_by_key,
    run_cli,
    run_command,
    run_env,
    score_requests,
    server_requests,
)
from worker.server.launch import ServerProcess, start_server

BUCKET = "cfg"
BUDGET = "budget"
PREFIX = "picscore run: configuration error: "


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, LocalBucket]]]:
    """300 ms per score, every request logged."""
    root = tmp_path_factory.mktemp("run-config-root")
    cfg, budget = LocalBucket(root, BUCKET), LocalBucket(root, BUDGET)
    for n in range(4):
        cfg.put(f"a/{n}.jpg", b"a object %d" % n)
        cfg.put(f"b/{n}.jpg", b"b object %d" % n)
    cfg.put("a/empty.jpg", b"")
    cfg.put("a/old/1.bak", b"backup")
    for n in range(12):
        budget.put(f"t/{n:02d}.jpg", b"budget object %d" % n)
    with start_server(root, {ACCESS_KEY_ID: ACCESS_KEY_SECRET},
                      args=["--fake-score-latency", "300ms", "--log-level", "debug"]) as server:
        yield server, {BUCKET: cfg, BUDGET: budget}


# Nothing listens on port 9: configuration errors must stop the run before any request.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("extra, env, message", [
    (["--concurrency", "0"], {},
     "concurrency: must be an integer between 1 and 1024 (got '0' from --concurrency)"),
    ([], {"PICSCORE_CONCURRENCY": "many"},
     "concurrency: must be an integer between 1 and 1024 (got 'many' from PICSCORE_CONCURRENCY)"),
    (["--retry-base-s", "2s", "--retry-max-backoff-s", "1s"], {},
     "retry_max_backoff_s: must be >= retry_base_s 2s (from --retry-base-s) (from --retry-max-backoff-s)"),
    (["--prefix", "a/", "--prefix", "a/b/"], {},
     "prefix: prefixes overlap: 'a/b/' is inside 'a/'; keep one (got ['a/', 'a/b/'] from --prefix)"),
    (["--format", "csv"], {},
     "format: 'csv' conflicts with the output's extension '.parquet' (output '{output}' from --output); "
     "change one (from --format)"),
], ids=["flag", "env", "two-fields", "overlapping-prefixes", "format-vs-extension"])
def test_invalid_settings_exit_2_naming_the_field_and_its_source(
        extra: list[str], env: dict[str, str], message: str, tmp_path: Path) -> None:
    output = tmp_path / "out.parquet"
    done = run_cli(run_command("http://127.0.0.1:9", BUCKET, output, *extra), env=run_env(extra=env))
    assert done.returncode == 2
    assert done.stderr == PREFIX + message.format(output=output) + "\n"
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no output, no checkpoint


@pytest.mark.timeout(60)
@pytest.mark.parametrize("key_id, secret, named", [
    ("", "", "OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET"),
    (ACCESS_KEY_ID, "", "OSS_ACCESS_KEY_SECRET"),
], ids=["both", "secret"])
def test_missing_credentials_exit_2(key_id: str, secret: str, named: str, tmp_path: Path) -> None:
    done = run_cli(run_command("http://127.0.0.1:9", BUCKET, tmp_path / "out.parquet"),
                   env=run_env(secret, key_id=key_id))
    assert done.returncode == 2
    assert done.stderr == (f"{PREFIX}credentials: {named} must be set in the environment (credentials are "
                           "never read from the config file or flags) (from the environment)\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(60)
def test_a_checkpoint_is_only_continued_by_the_same_run(slow, tmp_path: Path) -> None:
    server, _ = slow
    output = tmp_path / "out.parquet"
    checkpoint = f"{output}.checkpoint.sqlite"
    first = run_cli(run_command(server.url, BUCKET, output, "--prefix", "b/", "--concurrency", "4"))
    assert first.returncode == 0, first.stderr
    assert len(read_output(output)) == 4

    # A finished run stands in nobody's way (issue 15): the next plain run is a new audit.
    start = len(server.output)
    again = run_cli(run_command(server.url, BUCKET, output, "--prefix", "b/"))
    assert again.returncode == 0, again.stderr
    assert len(score_requests(server, start)) == 4 and len(read_output(output)) == 4

    other = run_cli(run_command(server.url, BUCKET, output, "--prefix", "a/", "--resume"))
    assert other.returncode == 2
    assert other.stderr == (f"picscore run: checkpoint error: checkpoint {checkpoint} belongs to a different "
                            "run; differing fields: prefix: ['b/'] in the checkpoint, ['a/'] now. Run with the "
                            f"same options to resume it, or delete {checkpoint} to start over\n")

    start = len(server.output)
    same = run_cli(run_command(server.url, BUCKET, output, "--prefix", "b/", "--resume"))
    assert same.returncode == 0, same.stderr
    assert same.stdout == f"picscore run: this run had already finished; output: {output}\n"
    assert score_requests(server, start) == []
    assert len(read_output(output)) == 4


@pytest.mark.timeout(60)
def test_dry_run_counts_and_estimates_and_writes_nothing(slow, tmp_path: Path) -> None:
    server, _ = slow
    output = tmp_path / "out.parquet"
    start = len(server.output)
    done = run_cli(run_command(server.url, BUCKET, output, "--prefix", "a/", "--prefix", "b/",
                               "--exclude", "*.bak", "--dry-run"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"picscore run --dry-run: 10 objects listed in oss://{BUCKET}/ under 2 prefix(es); 10 in shard 0/1",
        "  would score 8 objects (80 B): 8 image/score calls (more if retried)",
        "  would skip  2 objects (6 B): EmptyObject 1, Excluded 1",
    ]
    assert list(tmp_path.iterdir()) == []  # neither output nor checkpoint
    time.sleep(0.2)
    seen = server_requests(server, start)
    assert seen and all(r["key"] is None for r in seen)  # listings only: nothing was scored


@pytest.mark.timeout(90)
def test_time_budget_exits_5_and_resume_completes(slow, tmp_path: Path) -> None:
    server, buckets = slow
    output = tmp_path / "out.parquet"
    checkpoint = Path(f"{output}.checkpoint.sqlite")
    # 12 objects at 300 ms, two at a time: 1.8 s of work; the budget stops each run after 1 s.
    command = run_command(server.url, BUDGET, output, "--concurrency", "2", "--flush-rows", "2",
                          "--time-budget-s", "1s")
    first = run_cli(command)
    assert first.returncode == 5, (first.stdout, first.stderr)
    assert "picscore run: stopped (time budget); continue with --resume" in first.stdout.splitlines()
    assert not output.exists()
    done = assert_checkpoint_consistent(checkpoint, output, tmp_path / "scratch")
    assert 0 < len(done) < 12

    codes = []
    for _ in range(4):  # the same command line each time, as a CronJob would run it
        resumed = run_cli([*command, "--resume"])
        codes.append(resumed.returncode)
        if resumed.returncode != 5:
            break
        assert_checkpoint_consistent(checkpoint, output, tmp_path / "scratch")
    assert codes[-1] == 0 and set(codes[:-1]) <= {5}, codes
    rows = rows_by_key(read_output(output))
    objects = buckets[BUDGET].objects
    assert set(rows) == set(objects)
    assert all(row["status"] == "scored" and row["score"] == fake_score(objects[key]) for key, row in rows.items())


@pytest.mark.timeout(90)
def test_an_unfinished_run_needs_resume_or_restart(slow, tmp_path: Path) -> None:
    """Only an unfinished run blocks a plain run; --restart discards it; both flags at once is an error."""
    server, buckets = slow
    output = tmp_path / "out.parquet"
    checkpoint = f"{output}.checkpoint.sqlite"
    command = run_command(server.url, BUDGET, output, "--concurrency", "2", "--flush-rows", "2",
                          "--time-budget-s", "1s")
    assert run_cli(command).returncode == 5
    blocked = run_cli(command)
    assert blocked.returncode == 2
    assert blocked.stderr.startswith(f"picscore run: checkpoint error: checkpoint {checkpoint} holds an unfinished "
                                     "run (")
    assert blocked.stderr.endswith("rows written): pass --resume to continue it, or --restart to discard it and "
                                   "start over\n")
    both = run_cli([*command, "--resume", "--restart"])
    assert both.returncode == 2 and "restart: contradicts resume" in both.stderr
    plain = [arg for arg in command if arg not in ("--time-budget-s", "1s")]
    restarted = run_cli([*plain, "--restart"])
    assert restarted.returncode == 0, restarted.stderr
    assert set(rows_by_key(read_output(output))) == set(buckets[BUDGET].objects)
    assert not (tmp_path / "out.parquet.parts").exists()
