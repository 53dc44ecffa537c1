"""Accepted access keys from a file or the environment (worker/server/credentials.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from worker.server.credentials import CredentialsError, KeyTable, load_credentials

SECRET = "TestSecretKey0123456789abcdefXYZ"
OTHER_SECRET = "An0ther:Secret/With+Symbols="


def _file(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "credentials"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path | None, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(CredentialsError) as info:
        load_credentials(path, {} if environ is None else environ)
    message = str(info.value)
    for secret in (SECRET, OTHER_SECRET, "hunter2"):
        assert secret not in message
    return message


def test_file_with_comments_and_blank_lines(tmp_path: Path) -> None:
    path = _file(tmp_path, f"""
# picscore credentials
LTAI5tTESTACCESSKEY:{SECRET}

   # indented comment
  second.key_id-2 : {OTHER_SECRET}  \n""")
    table = load_credentials(path, {"OSS_ACCESS_KEY_ID": "ignored", "OSS_ACCESS_KEY_SECRET": "ignored"})
    assert dict(table) == {"LTAI5tTESTACCESSKEY": SECRET, "second.key_id-2": OTHER_SECRET}
    assert len(table) == 2
    assert list(table) == ["LTAI5tTESTACCESSKEY", "second.key_id-2"]
    assert table["LTAI5tTESTACCESSKEY"] == SECRET
    assert "nobody" not in table
    with pytest.raises(KeyError):
        table["nobody"]


def test_crlf_and_byte_order_mark(tmp_path: Path) -> None:
    path = _file(tmp_path, f"\ufeffid1:{SECRET}\r\nid2:hunter2\r\n".encode())
    assert dict(load_credentials(path, {})) == {"id1": SECRET, "id2": "hunter2"}


def test_later_lines_win(tmp_path: Path) -> None:
    path = _file(tmp_path, "id:first\nid:second\n")
    assert dict(load_credentials(path, {})) == {"id": "second"}


@pytest.mark.parametrize("bad_line", [
    f"no-colon-{SECRET}",
    f":{SECRET}",
    "id-without-secret:",
    "id-without-secret:   ",
    f"bad id:{SECRET}",
    f"bad/id:{SECRET}",
    f"{'x' * 129}:{SECRET}",
])
def test_bad_line_names_file_and_line_number_only(tmp_path: Path, bad_line: str) -> None:
    path = _file(tmp_path, f"# header\n\nLTAI5tTESTACCESSKEY:{OTHER_SECRET}\n{bad_line}\n")
    assert _error(path) == f"{path}:4: expected ACCESS_KEY_ID:SECRET"


def test_longest_key_id_is_accepted(tmp_path: Path) -> None:
    path = _file(tmp_path, f"{'x' * 128}:{SECRET}\n")
    assert list(load_credentials(path, {})) == ["x" * 128]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n   \n#another\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = _file(tmp_path, text)
    assert _error(path) == f"{path}: no ACCESS_KEY_ID:SECRET lines"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing"
    assert _error(path) == f"cannot read credentials file {path}: No such file or directory"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert _error(tmp_path) == f"cannot read credentials file {tmp_path}: Is a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = _file(tmp_path, f"id:{SECRET}\n")
    path.chmod(0)
    assert _error(path) == f"cannot read credentials file {path}: Permission denied"


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = _file(tmp_path, f"id:{SECRET}\xff\n".encode("latin-1"))
    assert _error(path) == f"cannot read credentials file {path}: it is not UTF-8 text"


def test_environment_fallback() -> None:
    table = load_credentials(None, {"OSS_ACCESS_KEY_ID": " LTAI5tTESTACCESSKEY ", "OSS_ACCESS_KEY_SECRET": SECRET})
    assert dict(table) == {"LTAI5tTESTACCESSKEY": SECRET}


def test_environment_default_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "fromenv")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", SECRET)
    assert dict(load_credentials(None)) == {"fromenv": SECRET}


@pytest.mark.parametrize("environ", [
    {},
    {"OSS_ACCESS_KEY_ID": "LTAI5tTESTACCESSKEY"},
    {"OSS_ACCESS_KEY_SECRET": SECRET},
    {"OSS_ACCESS_KEY_ID": "  ", "OSS_ACCESS_KEY_SECRET": SECRET},
    {"OSS_ACCESS_KEY_ID": "LTAI5tTESTACCESSKEY", "OSS_ACCESS_KEY_SECRET": "   "},
])
def test_missing_environment(environ: dict[str, str]) -> None:
    assert _error(None, environ) == (
        "no credentials: pass --credentials FILE (lines ACCESS_KEY_ID:SECRET) or export "
        "OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET")


def test_bad_key_id_in_environment() -> None:
    message = _error(None, {"OSS_ACCESS_KEY_ID": f"id:{SECRET}", "OSS_ACCESS_KEY_SECRET": SECRET})
    assert message == "OSS_ACCESS_KEY_ID contains characters an access key id cannot have"


def test_credentials_error_is_a_value_error() -> None:
    assert issubclass(CredentialsError, ValueError)


def test_key_table_repr_has_no_secret() -> None:
    table = KeyTable({"zeta": SECRET, "alpha": OTHER_SECRET})
    for text in (repr(table), str(table), f"{table}", f"{table!r}", repr([table]), repr({"t": table})):
        assert SECRET not in text and OTHER_SECRET not in text
    assert repr(table) == "KeyTable(ids=['alpha', 'zeta'])"


def test_key_table_copies_its_input() -> None:
    pairs = {"id": SECRET}
    table = KeyTable(pairs)
    pairs["id"] = "changed"
    assert table["id"] == SECRET
    assert table == {"id": SECRET}
