"""RestoreObject against a real ``picscore serve``, through the unmodified SDKs
``alibabacloud_oss_v2`` (V4 and V1 signing) and ``oss2``; what OSS documents for it is summarised
in :mod:`worker.server.restore_object`.

Three servers: the session's (the default ``--restore-delay`` of 1s), one whose restores never
finish during a test (``--restore-delay 1h``: the in-progress state) and one whose restores are
done at once (``0s``), restarted on the same root to show that the state is kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import oss2
import pytest

from tests.conftest import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from worker.server.launch import ServerProcess, start_server
from worker.server.storage import LocalStore

from .helpers import unique_prefix
from .test_server_copy_tagging import ARCHIVED, copy, get_bytes, head, oss2_bucket, put, v2_client, v2_fails

CREDS = {ACCESS_KEY_ID: ACCESS_KEY_SECRET}


@pytest.fixture(params=["v4", "v1"])
def client(server: ServerProcess, request: pytest.FixtureRequest) -> oss.Client:
    return v2_client(server, request.param)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("restore-slow")
    (root / BUCKET).mkdir()
    with start_server(root, CREDS, args=["--workers", "1", "--restore-delay", "1h"]) as proc:
        yield proc


def restore(client: oss.Client, key: str, days: int | None = None, tier: str | None = None) -> oss.RestoreObjectResult:
    body = None
    if days is not None or tier is not None:
        body = oss.RestoreRequest(days=days, job_parameters=oss.JobParameters(tier=tier) if tier else None)
    return client.restore_object(oss.RestoreObjectRequest(bucket=BUCKET, key=key, restore_request=body))


def expiry_of(header: str) -> datetime:
    assert header.startswith('ongoing-request="false", expiry-date="'), header
    return parsedate_to_datetime(header.split('expiry-date="')[1].rstrip('"'))


def wait_restored(client: oss.Client, key: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while (state := head(client, key).restore) == 'ongoing-request="true"' and time.monotonic() < deadline:
        time.sleep(0.1)
    assert state and state.startswith('ongoing-request="false"'), state
    return state


@pytest.mark.parametrize("klass", ARCHIVED)
def test_first_request_is_202_a_second_one_409_until_restored(client: oss.Client, klass: str) -> None:
    """The SDK's own sequence: 202, then RestoreAlreadyInProgress straight away; HEAD says the
    restore is ongoing and the bytes cannot be read until it is done; then they can."""
    key = unique_prefix("rs") + "frozen.bin"
    put(client, key, b"cold bytes", storage_class=klass)
    assert head(client, key).restore is None
    assert restore(client, key).status_code == 202
    err = v2_fails(lambda: restore(client, key), 409, "RestoreAlreadyInProgress")
    assert (err.message, err.ec) == ("The restore operation is in progress.", "0016-00000701")
    started = datetime.now(UTC)
    state = wait_restored(client, key)
    # Days defaults to 1: the restored copy lasts a day from when the restore completed
    assert abs(expiry_of(state) - (started + timedelta(days=1))) < timedelta(seconds=30)
    assert get_bytes(client, key) == b"cold bytes"
    assert head(client, key).storage_class == klass  # restoring does not change the class
    # a restored object can be copied (CopyObject reads it)
    copy(client, key, key + ".copy")
    assert get_bytes(client, key + ".copy") == b"cold bytes"


def test_restore_in_progress_is_visible_and_unreadable(slow_server: ServerProcess) -> None:
    client = v2_client(slow_server, "v4")
    key = unique_prefix("rs-slow") + "obj"
    put(client, key, b"x" * 10, storage_class="Archive")
    assert restore(client, key, days=3).status_code == 202
    assert head(client, key).restore == 'ongoing-request="true"'
    v2_fails(lambda: get_bytes(client, key), 403, "InvalidObjectState")
    v2_fails(lambda: restore(client, key, days=3), 409, "RestoreAlreadyInProgress")
    v2_fails(lambda: client.get_object(oss.GetObjectRequest(bucket=BUCKET, key=key, process="image/score")),
             403, "InvalidObjectState")


def test_restoring_a_restored_object_is_200_and_extends_it(client: oss.Client) -> None:
    key = unique_prefix("rs-again") + "obj"
    put(client, key, b"data", storage_class="Archive")
    restore(client, key, days=1)
    first = expiry_of(wait_restored(client, key))
    again = restore(client, key, days=5)
    assert again.status_code == 200
    second = expiry_of(head(client, key).restore)
    assert timedelta(days=3, hours=23) < second - first < timedelta(days=4, minutes=1)
    assert get_bytes(client, key) == b"data"


def test_tier_is_echoed_for_cold_archive_classes(client: oss.Client) -> None:
    prefix = unique_prefix("rs-tier")
    put(client, prefix + "cold", b"c", storage_class="ColdArchive")
    put(client, prefix + "deep", b"d", storage_class="DeepColdArchive")
    put(client, prefix + "arch", b"a", storage_class="Archive")
    assert restore(client, prefix + "cold", days=2, tier="Bulk").restore_priority == "Bulk"
    # the SDK's deprecated RestoreRequest(tier=...) sends the same JobParameters
    deprecated = client.restore_object(oss.RestoreObjectRequest(
        bucket=BUCKET, key=prefix + "deep", restore_request=oss.RestoreRequest(days=1, tier="Expedited")))
    assert (deprecated.status_code, deprecated.restore_priority) == (202, "Expedited")
    archived = restore(client, prefix + "arch")
    assert (archived.status_code, archived.restore_priority) == (202, None)


def test_restore_errors(client: oss.Client) -> None:
    prefix = unique_prefix("rs-err")
    for klass in ("Standard", "IA"):
        put(client, prefix + klass, b"warm", storage_class=klass)
        err = v2_fails(lambda k=klass: restore(client, prefix + k), 400, "OperationNotSupported")
        assert err.ec == "0016-00000702"
    v2_fails(lambda: restore(client, prefix + "missing"), 404, "NoSuchKey")
    put(client, prefix + "arch", b"a", storage_class="Archive")
    put(client, prefix + "cold", b"c", storage_class="ColdArchive")
    for key, days, tier in [("arch", 8, None), ("arch", 0, None), ("cold", 366, None), ("cold", 2, "Test")]:
        v2_fails(lambda k=key, d=days, t=tier: restore(client, prefix + k, days=d, tier=t), 400, "MalformedXML")
    for body in (b"<RestoreRequest><Days>2</Days><Type/></RestoreRequest>", b"not xml", b"<Other/>"):
        v2_fails(lambda b=body: client.invoke_operation(oss.OperationInput(
            op_name="RestoreObject", method="POST", bucket=BUCKET, key=prefix + "cold",
            parameters={"restore": ""}, body=b)), 400, "MalformedXML")
    # nothing was started by the refused requests
    assert head(client, prefix + "arch").restore is None and head(client, prefix + "cold").restore is None


def test_oss2_restore(server: ServerProcess) -> None:
    bucket = oss2_bucket(server, "v4")
    key = unique_prefix("rs-oss2") + "obj"
    bucket.put_object(key, b"oss2 cold", headers={"x-oss-storage-class": "ColdArchive"})
    config = oss2.models.RestoreConfiguration(days=2, job_parameters=oss2.models.RestoreJobParameters("Expedited"))
    assert bucket.restore_object(key, input=config).status == 202
    with pytest.raises(oss2.exceptions.RestoreAlreadyInProgress):
        bucket.restore_object(key, input=config)
    with pytest.raises(oss2.exceptions.OperationNotSupported):
        bucket.put_object(key + "-warm", b"w")
        bucket.restore_object(key + "-warm")
    deadline = time.monotonic() + 15
    while 'ongoing-request="true"' in bucket.head_object(key).headers.get("x-oss-restore", "") \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bucket.get_object(key).read() == b"oss2 cold"


def test_restore_state_survives_a_restart_and_expires(tmp_path: Path) -> None:
    """The state is in the object's metadata: a restarted server still serves the restored
    object; once the restored copy expires it is frozen again and can be restored anew."""
    root = tmp_path / "root"
    (root / BUCKET).mkdir(parents=True)
    key = "kept/obj"
    with start_server(root, CREDS, args=["--workers", "1", "--restore-delay", "0s"]) as first:
        client = v2_client(first, "v4")
        put(client, key, b"thawed", storage_class="DeepColdArchive")
        assert restore(client, key, days=10).status_code == 202
        state = head(client, key).restore  # 0s: restored at once
        assert state is not None and state.startswith('ongoing-request="false"')
    with start_server(root, CREDS, args=["--workers", "1", "--restore-delay", "0s"]) as second:
        client = v2_client(second, "v4")
        assert head(client, key).restore == state
        assert get_bytes(client, key) == b"thawed"
        # ten days later (the metadata moved back in time): frozen again
        LocalStore(root).update_meta(BUCKET, key, lambda m: _aged(m, 11 * 86400))
        assert head(client, key).restore is None
        v2_fails(lambda: get_bytes(client, key), 403, "InvalidObjectState")
        assert restore(client, key).status_code == 202
        assert get_bytes(client, key) == b"thawed"


def _aged(meta: Any, seconds: float) -> Any:
    return replace(meta, restore_ready=meta.restore_ready - seconds, restore_expiry=meta.restore_expiry - seconds)
