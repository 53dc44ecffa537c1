"""``picscore covers`` end to end: the bundled demo photos (each an original and its graded,
damaged variants: blur, noise, heavy JPEG, dark, bright, grey, small) scored by a real
``picscore run`` against a real ``picscore serve`` with picscore's model, then grouped by photo.
The original must be chosen in every group; ``--min-score`` leaves groups uncovered; ``--apply``
copies or tags the winners, and an image changed after scoring is not copied."""

from __future__ import annotations

import uuid
from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest

from tests.conftest import BUCKET
from tests.integration.filterhelpers import covers_command, sdk_client
from tests.integration.runhelpers import md5_etag, read_output, run_cli, run_command
from worker.actions.rows import ACTION_SCHEMA
from worker.commands.covers import COVERS_SCHEMA
from worker.demo.build import build_demo_bucket, demo_images
from worker.results.formats import read_rows
from worker.server.launch import ServerProcess

BY_PHOTO = ["--group-regex", r"(?P<group>[^/]+)\.jpg$"]
PHOTOS = [name.removesuffix(".jpg") for name in demo_images()]


@pytest.fixture(scope="module")
def audited(server: ServerProcess, server_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A bucket of the demo photos and their damaged variants, audited by ``picscore run``."""
    bucket = f"covers-{uuid.uuid4().hex[:12]}"
    build_demo_bucket(server_root, bucket)
    results = tmp_path_factory.mktemp("covers") / "audit.parquet"
    done = run_cli(run_command(server.url, bucket, results, "--concurrency", "4"), timeout=300)
    assert done.returncode == 0, done.stderr
    return bucket, results


def covers(path: Path) -> list[dict]:
    return list(read_rows(path, schema=COVERS_SCHEMA))


def test_the_original_is_chosen_in_every_group(tmp_path: Path, audited: tuple[str, Path]) -> None:
    bucket, results = audited
    output = tmp_path / "covers.parquet"
    done = run_cli(covers_command(None, str(results), *BY_PHOTO, "--output", str(output)))
    assert done.returncode == 0, done.stderr
    rows = covers(output)
    assert sorted(row["group"] for row in rows) == sorted(PHOTOS)
    for row in rows:
        assert (row["rank"], row["key"], row["bucket"]) == (1, f"originals/{row['group']}.jpg", bucket)
        assert row["candidates"] == 8 and row["margin"] is not None and row["margin"] > 0
        assert row["dimensions"] and row["note"] is None
    scores = {r["key"]: r["score"] for r in read_output(results)}
    for row in rows:  # the margin is the gap to the best damaged variant
        variants = [s for k, s in scores.items() if k.endswith(f"/{row['group']}.jpg") and k.startswith("damaged/")]
        assert row["margin"] == pytest.approx(row["score"] - max(variants), abs=1e-9)


def test_top_k_ranks_and_a_min_score_leaves_groups_uncovered(tmp_path: Path, audited: tuple[str, Path]) -> None:
    _, results = audited
    scores = {r["key"]: r["score"] for r in read_output(results)}
    originals = sorted(scores[f"originals/{photo}.jpg"] for photo in PHOTOS)
    bar = (originals[2] + originals[3]) / 2  # half the groups' best images fall below it
    output = tmp_path / "covers.csv"
    done = run_cli(covers_command(None, str(results), *BY_PHOTO, "--top", "2", "--min-score", f"{bar:.6f}",
                                  "--output", str(output)))
    assert done.returncode == 0, done.stderr
    rows = covers(output)
    uncovered = {row["group"] for row in rows if row["rank"] is None}
    assert uncovered == {photo for photo in PHOTOS if scores[f"originals/{photo}.jpg"] < bar}
    assert all("no acceptable cover" in row["note"] and row["key"] is None for row in rows if row["rank"] is None)
    assert "3 without an acceptable cover" in done.stdout
    for row in rows:
        if row["rank"] is not None:
            assert row["score"] >= bar and row["rank"] in (1, 2)


def test_apply_copy_copies_winners_guarded_by_their_etag(tmp_path: Path, audited: tuple[str, Path],
                                                          server: ServerProcess, server_root: Path) -> None:
    bucket, results = audited
    client = sdk_client(server.url)
    changed_photo = PHOTOS[0]
    changed_key = f"originals/{changed_photo}.jpg"
    original_bytes = (server_root / bucket / changed_key).read_bytes()
    client.put_object(oss.PutObjectRequest(bucket=bucket, key=changed_key, body=original_bytes + b"\0"))
    try:
        report = tmp_path / "copied.csv"
        done = run_cli(covers_command(server.url, str(results), *BY_PHOTO, "--apply", "copy", "--to",
                                      "covers/{group}{ext}", "--output", str(tmp_path / "c.csv"),
                                      "--report", str(report)))
        assert done.returncode == 0, done.stderr + done.stdout
        rows = {row["key"]: row for row in read_rows(report, schema=ACTION_SCHEMA)}
        assert rows[changed_key]["outcome"] == "changed" and rows[changed_key]["http_status"] == 412
        assert {row["outcome"] for key, row in rows.items() if key != changed_key} == {"done"}
        for photo in PHOTOS[1:]:
            head = client.head_object(oss.HeadObjectRequest(bucket=bucket, key=f"covers/{photo}.jpg"))
            expected = md5_etag((server_root / bucket / f"originals/{photo}.jpg").read_bytes())
            assert head.etag.strip('"') == expected
        assert not client.is_object_exist(bucket, f"covers/{changed_photo}.jpg")
    finally:
        client.put_object(oss.PutObjectRequest(bucket=bucket, key=changed_key, body=original_bytes))


def test_apply_tag_tags_the_winners_and_keeps_their_other_tags(tmp_path: Path, audited: tuple[str, Path],
                                                                server: ServerProcess) -> None:
    bucket, results = audited
    client = sdk_client(server.url)
    key = f"originals/{PHOTOS[1]}.jpg"
    model = oss.models.object_basic
    owner = model.Tagging(tag_set=model.TagSet(tags=[model.Tag(key="owner", value="web")]))
    client.put_object_tagging(oss.PutObjectTaggingRequest(bucket=bucket, key=key, tagging=owner))
    done = run_cli(covers_command(server.url, str(results), *BY_PHOTO, "--apply", "tag", "--output",
                                  str(tmp_path / "c.csv"), "--report", str(tmp_path / "r.csv")))
    assert done.returncode == 0, done.stderr + done.stdout

    def tags(k: str) -> dict[str, str]:
        result = client.get_object_tagging(oss.GetObjectTaggingRequest(bucket=bucket, key=k))
        return {t.key: t.value for t in result.tag_set.tags or []}

    assert tags(key) == {"owner": "web", "picscore-cover": "1"}
    assert all(tags(f"originals/{photo}.jpg").get("picscore-cover") == "1" for photo in PHOTOS)
    assert tags(f"damaged/blur/{PHOTOS[1]}.jpg") == {}


@pytest.mark.parametrize(("args", "message"), [
    (["--group-regex", "(unclosed"], "--group-regex"),
    (["--group-regex", "no-named-group"], "(?P<group>"),
    (["--top", "2", "--apply", "copy", "--to", "covers/{group}{ext}"], "{rank}"),
    (["--apply", "copy"], "--to"),
    (["--group-depth", "1", "--group-by", "regex"], "--group-depth"),
    (["--groups", "/nonexistent/groups.csv"], "does not exist"),
])
def test_bad_options_are_exit_2(tmp_path: Path, audited: tuple[str, Path], server: ServerProcess,
                                args: list[str], message: str) -> None:
    _, results = audited
    done = run_cli(covers_command(server.url, str(results), *args, "--output", str(tmp_path / "c.csv")))
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_results_of_an_archived_object_say_skipped_archived(server: ServerProcess, tmp_path: Path) -> None:
    """``picscore run`` over a bucket holding an Archive object: skipped/Archived, not failed, no call."""
    client = sdk_client(server.url)
    prefix = f"archived-{uuid.uuid4().hex[:8]}/"
    data = (Path(__file__).resolve().parents[2] / "worker/demo/images" / demo_images()[0]).read_bytes()
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=prefix + "cold.jpg", body=data, storage_class="Archive"))
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key=prefix + "warm.jpg", body=data))
    output = tmp_path / "r.jsonl"
    done = run_cli(run_command(server.url, BUCKET, output, "--prefix", prefix))
    assert done.returncode == 0, done.stderr
    rows = {row["key"]: row for row in read_output(output)}
    cold, warm = rows[prefix + "cold.jpg"], rows[prefix + "warm.jpg"]
    assert (cold["status"], cold["error_code"], cold["storage_class"], cold["attempts"]) == (
        "skipped", "Archived", "Archive", 0)
    assert (warm["status"], warm["storage_class"]) == ("scored", "Standard")
