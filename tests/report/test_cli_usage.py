"""``picscore report`` on the command line: each mistake is exit 2 with a message naming it, and
a local file with no bucket settings still makes the page."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.report.conftest import row, write
from worker.cli import main


@pytest.fixture(autouse=True)
def no_bucket_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No endpoint, region or key from the environment: the report works from the file alone."""
    for name in list(os.environ):
        if name.startswith(("PICSCORE_", "OSS_", "ALIBABA_CLOUD_")):
            monkeypatch.delenv(name)


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    rows = [row("a/1.jpg", 0.2, dims={"BlurScore": 0.1}), row("a/2.jpg", 0.9), row("b/3.jpg", 0.6),
            row("b/4.jpg", status="failed", code="AccessDenied", message="denied", http=403)]
    return write(tmp_path / "night.parquet", rows)


@pytest.mark.parametrize(("flag", "value"), [
    ("--low", "0"), ("--low", "1.5"), ("--low", "low"), ("--low", "-0.1"),
    ("--drop", "0"), ("--shift", "2"), ("--examples", "-1"), ("--list-limit", "0"), ("--links", "signed"),
    ("--thumbnail-size", "8"),
])
def test_argparse_refuses_bad_values(results: Path, flag: str, value: str, capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["report", str(results), "-o", str(tmp_path / "page.html"), flag, value])
    assert stopped.value.code == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "page.html").exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--thumbnail-size", "600"], "--thumbnail-size must be at most 512, got 600"),
    (["--link-expires", "8d"], "--link-expires must be above 0 and at most 7d"),
    (["--link-expires", "0s"], "--link-expires must be above 0"),
    (["--link-expires", "nonsense"], "--link-expires: "),
])
def test_usage_errors_name_the_flag(results: Path, flags: list[str], message: str,
                                    capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["report", str(results), "-o", str(tmp_path / "page.html"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("picscore report: ") and message in err
    assert not (tmp_path / "page.html").exists()


def test_a_missing_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-night.parquet"
    assert main(["report", str(missing), "-o", str(tmp_path / "page.html")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err
    assert not (tmp_path / "page.html").exists()


def test_a_file_that_is_not_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.csv"
    other.write_text("name,age\nalice,30\n")
    assert main(["report", str(other), "-o", str(tmp_path / "page.html")]) == 2
    err = capsys.readouterr().err
    assert "other.csv" in err and "results file error" in err


def test_a_missing_previous_night(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "last-night.parquet"
    assert main(["report", str(results), "--compare", str(missing), "-o", str(tmp_path / "page.html")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err
    assert not (tmp_path / "page.html").exists()


def test_a_local_report_without_a_bucket(results: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "deep" / "page.html"
    assert main(["report", str(results), "-o", str(out), "--title", "Night <1>"]) == 0
    page = out.read_text(encoding="utf-8")
    assert "Thumbnails were not fetched" in page
    assert "<title>Night &lt;1&gt;</title>" in page
    assert 'data-metric="objects" data-value="4"' in page
    printed = capsys.readouterr().out
    assert "picscore report: 4 objects, 3 scored, 1 under 0.4, 2 top-level prefixes" in printed
    assert f"written to {out}" in printed
    assert not [p for p in out.parent.iterdir() if p.name != "page.html"]  # no temporary file left


def test_no_thumbnails_says_so(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    assert main(["report", str(results), "-o", str(out), "--no-thumbnails"]) == 0
    assert "Thumbnails were not fetched (--no-thumbnails)." in out.read_text(encoding="utf-8")


def test_with_a_previous_night(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = write(tmp_path / "before.csv", [row("a/1.jpg", 0.9), row("gone.jpg", 0.5)])
    out = tmp_path / "page.html"
    assert main(["report", str(results), "--compare", str(before), "-o", str(out), "--low", "0.5"]) == 0
    page = out.read_text(encoding="utf-8")
    assert 'data-metric="new" data-value="3"' in page and 'data-metric="gone" data-value="1"' in page
    assert 'data-metric="dropped" data-value="1"' in page
    assert "since the previous run: 3 new (0 low), 1 dropped by 0.1 or more, 1 gone" in capsys.readouterr().out


def test_an_output_that_cannot_be_written(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "page.html"
    assert main(["report", str(results), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {out}" in err
    assert blocker.read_text() == "not a folder"


def test_an_output_that_is_a_folder(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    assert main(["report", str(results), "-o", str(folder)]) == 2
    assert f"cannot write {folder}" in capsys.readouterr().err
    assert folder.is_dir() and not list(folder.iterdir())
