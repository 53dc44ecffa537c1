"""``picscore filter`` end to end: a real ``picscore serve``, objects uploaded through the real
SDK, a results file about them, the real command line (``python -m worker.cli filter``), and a
look at the bucket afterwards through the SDK. Each action, its dry run, its guards, ``--where``,
``--undo``, and every bad input (exit 2, nothing touched)."""

from __future__ import annotations

from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest

from tests.conftest import BUCKET, make_jpeg
from tests.integration.filterhelpers import Library, filter_command, keys_of, list_keys, results_file, sdk_client
from tests.integration.helpers import unique_prefix
from tests.integration.runhelpers import read_output, run_cli, run_env
from worker.actions.rows import ACTION_SCHEMA
from worker.results.formats import read_rows
from worker.server.launch import ServerProcess
from worker.units import format_size

SCORES = {"sharp.jpg": 0.91, "fine.jpg": 0.74, "blurry.jpg": 0.18, "dark.jpg": 0.31, "noisy.jpg": 0.22}
LOW = ["blurry.jpg", "dark.jpg", "noisy.jpg"]  # below 0.35
DIMS = {
    "sharp.jpg": {"BlurScore": 0.9, "ExposureScore": 0.8},
    "fine.jpg": {"BlurScore": 0.7, "ExposureScore": 0.7},
    "blurry.jpg": {"BlurScore": 0.1, "ExposureScore": 0.6},
    "dark.jpg": {"BlurScore": 0.6, "ExposureScore": 0.1},
    "noisy.jpg": {"BlurScore": 0.15, "ExposureScore": 0.2},
}


@pytest.fixture()
def client(server: ServerProcess) -> oss.Client:
    return sdk_client(server.url)


@pytest.fixture()
def library(client: oss.Client) -> Library:
    lib = Library(client, unique_prefix("filter"))
    for seed, name in enumerate(SCORES):
        lib.put(name, make_jpeg(seed=seed + 40))
    return lib


@pytest.fixture()
def results(tmp_path: Path, library: Library) -> Path:
    return results_file(tmp_path / "audit.parquet", library, SCORES, DIMS)


def untouched(client: oss.Client, library: Library) -> bool:
    """Every object of the library is there, as uploaded, and nothing else is under the prefix."""
    return list_keys(client, library.prefix) == {key: library.etag(key) for key in library.data}


def report_rows(path: Path) -> dict[str, dict]:
    rows = list(read_rows(path, schema=ACTION_SCHEMA))
    assert len({row["key"] for row in rows}) == len(rows), "a key reported twice"
    return {row["key"]: row for row in rows}


def test_report_writes_the_selection_and_its_summary_without_any_account(tmp_path: Path, results: Path,
                                                                          library: Library) -> None:
    selection = tmp_path / "low.csv"
    done = run_cli(filter_command(None, str(results), "--below", "0.35", "--output", str(selection)),
                   env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert keys_of(read_output(selection)) == sorted(library.prefix + name for name in LOW)
    size = sum(len(library.data[library.prefix + name]) for name in LOW)
    assert "3 of 5 scored objects" in done.stdout
    assert f"3 objects selected, {format_size(size)}" in done.stdout
    assert f"Standard             3 objects  {format_size(size)}" in done.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (["--where", "blur < 0.2"], ["blurry.jpg", "noisy.jpg"]),
    (["--where", "blur < 0.2 and exposure < 0.3"], ["noisy.jpg"]),
    (["--where", "exposure < 0.15 or blur < 0.12"], ["blurry.jpg", "dark.jpg"]),
    (["--worst-percent", "40"], ["blurry.jpg", "noisy.jpg"]),
    (["--worst-percent", "40", "--where", "not blur < 0.2"], []),
    (["--below", "0.3", "--where", "exposure >= 0.5"], ["blurry.jpg"]),
])
def test_selection_criteria_combine_with_and(tmp_path: Path, results: Path, library: Library,
                                             args: list[str], expected: list[str]) -> None:
    selection = tmp_path / "sel.jsonl"
    done = run_cli(filter_command(None, str(results), *args, "--output", str(selection)))
    assert done.returncode == 0, done.stderr
    assert keys_of(read_output(selection)) == sorted(library.prefix + name for name in expected)


def test_delete_needs_yes_and_touches_nothing_without_it(tmp_path: Path, results: Path, client: oss.Client,
                                                         library: Library, server: ServerProcess) -> None:
    done = run_cli(filter_command(server.url, str(results), "--below", "0.35", "--action", "delete",
                                  "--output", str(tmp_path / "s.csv")))
    assert done.returncode == 2 and "--yes" in done.stderr
    assert untouched(client, library)


def test_delete_removes_the_selection_but_never_a_changed_object(tmp_path: Path, results: Path, client: oss.Client,
                                                                  library: Library, server: ServerProcess) -> None:
    changed = library.put("dark.jpg", make_jpeg(seed=99))  # re-uploaded after it was scored
    report = tmp_path / "deleted.csv"
    done = run_cli(filter_command(server.url, str(results), "--below", "0.35", "--action", "delete", "--yes",
                                  "--max-percent", "100", "--output", str(tmp_path / "s.csv"), "--report", str(report)))
    assert done.returncode == 0, done.stderr + done.stdout
    rows = report_rows(report)
    assert {key: row["outcome"] for key, row in rows.items()} == {
        library.prefix + "blurry.jpg": "done", library.prefix + "noisy.jpg": "done", changed: "changed"}
    assert rows[changed]["http_status"] == 412 and all(row["request_id"] for row in rows.values())
    remaining = list_keys(client, library.prefix)
    assert sorted(remaining) == sorted([library.prefix + "sharp.jpg", library.prefix + "fine.jpg", changed])
    assert remaining[changed] == library.etag(changed)


def test_dry_run_prints_every_action_and_touches_nothing(tmp_path: Path, results: Path, client: oss.Client,
                                                         library: Library, server: ServerProcess) -> None:
    done = run_cli(filter_command(server.url, str(results), "--below", "0.35", "--action", "delete", "--dry-run",
                                  "--max-percent", "100", "--output", str(tmp_path / "s.csv")))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("would delete")]
    assert sorted(line.split()[2] for line in lines) == sorted(f"oss://{BUCKET}/{library.prefix}{n}" for n in LOW)
    assert "nothing was changed" in done.stdout
    assert untouched(client, library)


def test_a_dry_run_over_a_guard_shows_the_plan_and_says_a_real_run_would_be_refused(
        tmp_path: Path, results: Path, client: oss.Client, library: Library, server: ServerProcess) -> None:
    done = run_cli(filter_command(server.url, str(results), "--below", "0.35", "--action", "move", "--to", "q/",
                                  "--dry-run", "--max-actions", "1", "--output", str(tmp_path / "s.csv")))
    assert done.returncode == 2 and "would be refused" in done.stderr and "--max-actions 1" in done.stderr
    assert len([line for line in done.stdout.splitlines() if line.startswith("would move")]) == 3
    assert untouched(client, library)


@pytest.mark.parametrize("guard", [["--max-actions", "2"], ["--max-percent", "50"]])
def test_a_plan_over_a_guard_is_refused_with_nothing_touched(tmp_path: Path, results: Path, client: oss.Client,
                                                             library: Library, server: ServerProcess,
                                                             guard: list[str]) -> None:
    done = run_cli(filter_command(server.url, str(results), "--below", "0.35", "--action", "delete", "--yes",
                                  *guard, "--output", str(tmp_path / "s.csv")))
    assert done.returncode == 2, done.stdout
    assert "nothing was touched" in done.stderr and guard[0] in done.stderr
    assert untouched(client, library)


def test_destructive_actions_have_a_default_guard(tmp_path: Path, results: Path, client: oss.Client,
                                                  library: Library, server: ServerProcess) -> None:
    """3 of 5 is 60 %: over the default --max-percent of move and delete."""
    done = run_cli(filter_command(server.url, str(results), "--below", "0.35", "--action", "delete", "--yes",
                                  "--output", str(tmp_path / "s.csv")))
    assert done.returncode == 2 and "--max-percent 25" in done.stderr
    assert untouched(client, library)


@pytest.mark.parametrize(("args", "message"), [
    (["--where", "blur <"], "--where"),
    (["--where", "blurr < 0.2"], "blurr"),
    ([], "--below"),
    (["--below", "0.3", "--action", "shred"], "--action"),
    (["--below", "0.3", "--action", "move"], "--to"),
    (["--below", "0.3", "--worst-percent", "0"], "--worst-percent"),
])
def test_bad_options_are_exit_2_with_nothing_touched(tmp_path: Path, results: Path, client: oss.Client,
                                                     library: Library, server: ServerProcess, args: list[str],
                                                     message: str) -> None:
    done = run_cli(filter_command(server.url, str(results), *args, "--output", str(tmp_path / "s.csv")))
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert untouched(client, library)


@pytest.mark.parametrize(("name", "content"), [
    ("notes.csv", "name,value\na,1\n"),
    ("broken.parquet", "not parquet"),
    ("missing.parquet", None),
])
def test_a_file_that_is_not_results_is_exit_2(tmp_path: Path, client: oss.Client, library: Library,
                                              server: ServerProcess, name: str, content: str | None) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    done = run_cli(filter_command(server.url, str(path), "--below", "0.5", "--action", "delete", "--yes",
                                  "--output", str(tmp_path / "s.csv")))
    assert done.returncode == 2, done.stdout + done.stderr
    assert str(path) in done.stderr and "Traceback" not in done.stderr
    assert untouched(client, library)


def test_move_quarantines_the_selection_and_undo_restores_it_byte_for_byte(
        tmp_path: Path, results: Path, client: oss.Client, library: Library, server: ServerProcess) -> None:
    meta_key = library.put("blurry.jpg", library.data[library.prefix + "blurry.jpg"],
                           metadata={"camera": "x100"}, content_type="image/x-test", tagging="team=photo")
    quarantine = library.prefix + "quarantine/"
    report = tmp_path / "moved.parquet"
    done = run_cli(filter_command(server.url, str(results), "--below", "0.35", "--action", "move", "--to", quarantine,
                                  "--max-percent", "100", "--output", str(tmp_path / "s.csv"), "--report", str(report)))
    assert done.returncode == 0, done.stderr + done.stdout
    assert f"picscore filter --undo {report}" in done.stdout
    rows = report_rows(report)
    assert {row["outcome"] for row in rows.values()} == {"done"}
    assert {key: row["destination"] for key, row in rows.items()} == {
        library.prefix + n: quarantine + library.prefix + n for n in LOW}
    after = list_keys(client, library.prefix)
    assert sorted(after) == sorted([library.prefix + "sharp.jpg", library.prefix + "fine.jpg",
                                    *(quarantine + library.prefix + n for n in LOW)])
    for name in LOW:  # a moved object keeps its ETag (same bytes)
        assert after[quarantine + library.prefix + name] == library.etag(library.prefix + name)

    undone = run_cli(filter_command(server.url, "--undo", str(report), "--report", str(tmp_path / "undo.csv")))
    assert undone.returncode == 0, undone.stderr + undone.stdout
    assert {row["outcome"] for row in report_rows(tmp_path / "undo.csv").values()} == {"done"}
    assert untouched(client, library)
    for key, data in library.data.items():
        assert client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key)).body.read() == data
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=meta_key))
    assert (head.metadata, head.content_type, head.tagging_count) == ({"camera": "x100"}, "image/x-test", 1)


def test_undo_never_overwrites_an_object_uploaded_at_the_original_key(
        tmp_path: Path, results: Path, client: oss.Client, library: Library, server: ServerProcess) -> None:
    quarantine = library.prefix + "q/"
    report = tmp_path / "moved.csv"
    assert run_cli(filter_command(server.url, str(results), "--below", "0.2", "--action", "move", "--to", quarantine,
                                  "--output", str(tmp_path / "s.csv"), "--report", str(report))).returncode == 0
    newer = library.put("blurry.jpg", make_jpeg(seed=123))  # a new upload took the key meanwhile
    undone = run_cli(filter_command(server.url, "--undo", str(report), "--report", str(tmp_path / "undo.csv")))
    assert undone.returncode == 0, undone.stderr
    [row] = report_rows(tmp_path / "undo.csv").values()
    assert row["outcome"] == "changed" and row["http_status"] == 409
    assert list_keys(client, library.prefix)[newer] == library.etag(newer)
    assert quarantine + newer in list_keys(client, library.prefix)  # the moved copy is kept


def test_tag_adds_the_tag_and_keeps_the_others(tmp_path: Path, results: Path, client: oss.Client,
                                               library: Library, server: ServerProcess) -> None:
    tagged = library.put("dark.jpg", library.data[library.prefix + "dark.jpg"], tagging="owner=web&year=2026")
    done = run_cli(filter_command(server.url, str(results), "--where", "exposure < 0.3", "--action", "tag",
                                  "--output", str(tmp_path / "s.csv"), "--report", str(tmp_path / "r.jsonl")))
    assert done.returncode == 0, done.stderr + done.stdout
    tags = {key: {t.key: t.value for t in client.get_object_tagging(
        oss.GetObjectTaggingRequest(bucket=BUCKET, key=key)).tag_set.tags or []} for key in library.data}
    assert tags[tagged] == {"owner": "web", "year": "2026", "picscore-quality": "low"}
    assert tags[library.prefix + "noisy.jpg"] == {"picscore-quality": "low"}
    assert tags[library.prefix + "sharp.jpg"] == {} and tags[library.prefix + "blurry.jpg"] == {}
    assert untouched(client, library)  # tagging changes no ETag


def test_archive_changes_the_storage_class_and_keeps_metadata(tmp_path: Path, results: Path, client: oss.Client,
                                                              library: Library, server: ServerProcess) -> None:
    key = library.put("noisy.jpg", library.data[library.prefix + "noisy.jpg"], metadata={"camera": "x100"})
    done = run_cli(filter_command(server.url, str(results), "--below", "0.25", "--action", "archive",
                                  "--storage-class", "IA", "--output", str(tmp_path / "s.csv"),
                                  "--report", str(tmp_path / "r.csv")))
    assert done.returncode == 0, done.stderr + done.stdout
    classes = {k: client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=k)).storage_class for k in library.data}
    assert classes == {k: "IA" if k.rsplit("/", 1)[-1] in ("noisy.jpg", "blurry.jpg") else "Standard"
                       for k in library.data}
    assert client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key=key)).metadata == {"camera": "x100"}
    assert untouched(client, library)


def test_objects_changed_since_scoring_are_never_moved(tmp_path: Path, results: Path, client: oss.Client,
                                                       library: Library, server: ServerProcess) -> None:
    changed = library.put("noisy.jpg", make_jpeg(seed=77))
    report = tmp_path / "moved.csv"
    done = run_cli(filter_command(server.url, str(results), "--below", "0.35", "--action", "move", "--to", "q/",
                                  "--max-percent", "100", "--output", str(tmp_path / "s.csv"), "--report", str(report)))
    assert done.returncode == 0, done.stderr
    assert report_rows(report)[changed]["outcome"] == "changed"
    assert list_keys(client, library.prefix)[changed] == library.etag(changed)
    assert "q/" + changed not in list_keys(client, "q/")


def test_refused_credentials_stop_with_exit_3_and_no_secret_in_any_output(
        tmp_path: Path, results: Path, client: oss.Client, library: Library, server: ServerProcess) -> None:
    wrong = "WrongSecret-DoNotLeak-0123456789"
    report = tmp_path / "r.csv"
    done = run_cli(filter_command(server.url, str(results), "--below", "0.35", "--action", "tag",
                                  "--output", str(tmp_path / "s.csv"), "--report", str(report)),
                   env=run_env(secret=wrong))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "SignatureDoesNotMatch" in done.stdout + done.stderr
    written = "".join(path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file()
                      and path.suffix in (".csv", ".json", ".jsonl"))
    assert wrong not in done.stdout + done.stderr + written
    assert untouched(client, library)


def test_metrics_are_pushed_under_the_commands_own_job(tmp_path: Path, results: Path, library: Library,
                                                       server: ServerProcess) -> None:
    """A real Pushgateway (Debian's): the filter's rows by outcome, under job picscore-filter, so a
    filter never overwrites the nightly audit's group (job picscore)."""
    from tests.integration.test_run_metrics import samples, start_pushgateway, value

    with start_pushgateway(tmp_path) as gateway:
        done = run_cli(filter_command(server.url, str(results), "--below", "0.35", "--action", "tag",
                                      "--pushgateway", gateway.url, "--output", str(tmp_path / "s.csv"),
                                      "--report", str(tmp_path / "r.csv")))
        assert done.returncode == 0, done.stderr
        parsed = samples(gateway.metrics_text())
    assert value(parsed, "picscore_objects_total", job="picscore-filter", status="done") == 3
    assert value(parsed, "picscore_run_success", job="picscore-filter") == 1
    assert value(parsed, "picscore_run_success", job="picscore") is None
