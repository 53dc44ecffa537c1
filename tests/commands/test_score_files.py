"""``picscore score``: JSON lines, per-file errors that never stop the run, exit status."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from worker.cli import build_parser
from worker.commands.score_files import collect_files, run_score
from worker.demo.build import DEMO_IMAGES, KINDS, read_demo_image
from worker.quality import score
from worker.quality.explain import explain


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(paths: list[str], **kwargs: object) -> tuple[int, list[dict], str]:
    out, err = io.StringIO(), kwargs.pop("err", io.StringIO())
    code = run_score(paths, out=out, err=err, **kwargs)  # type: ignore[arg-type]
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


@pytest.fixture()
def mixed(tmp_path: Path) -> Path:
    """Two photos (one in a sub-folder), a text file, a corrupt JPEG and hidden files."""
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "b.jpg").write_bytes(read_demo_image(DEMO_IMAGES[0]))
    (tmp_path / "sub" / "a.jpg").write_bytes(read_demo_image(DEMO_IMAGES[1]))
    (tmp_path / "notes.txt").write_text("not a picture\n")
    (tmp_path / "broken.jpg").write_bytes(read_demo_image(DEMO_IMAGES[2])[:5000])
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / ".hidden" / "c.jpg").write_bytes(read_demo_image(DEMO_IMAGES[3]))
    return tmp_path


def test_mixed_folder_scores_images_and_reports_the_rest(mixed: Path) -> None:
    code, lines, err = _run([str(mixed)], jobs=1)
    assert code == 1
    names = [Path(line["path"]).relative_to(mixed).as_posix() for line in lines]
    assert names == ["b.jpg", "broken.jpg", "notes.txt", "sub/a.jpg"]  # sorted, hidden skipped
    by_name = dict(zip(names, lines, strict=True))
    for name in ("b.jpg", "sub/a.jpg"):
        line = by_name[name]
        assert set(line) == {"path", "score", "dimensions"}
        assert 0.0 <= line["score"] <= 1.0 and line["score"] == round(line["score"], 3)
        assert set(line["dimensions"]) >= {"resolution", "noise", "distortion", "exposure"}
    for name in ("broken.jpg", "notes.txt"):
        assert by_name[name]["error"]["code"] == "BadRequest"
        assert by_name[name]["error"]["ec"] == "0040-00000005"
        assert by_name[name]["error"]["message"]
    assert err == ""  # not a terminal: no progress bar


def test_all_scored_exits_zero(tmp_path: Path) -> None:
    for name in DEMO_IMAGES[:2]:
        (tmp_path / name).write_bytes(read_demo_image(name))
    code, lines, _ = _run([str(tmp_path / DEMO_IMAGES[0]), str(tmp_path / DEMO_IMAGES[1])])
    assert code == 0 and [Path(line["path"]).name for line in lines] == list(DEMO_IMAGES[:2])


def test_missing_path_is_an_error_line(tmp_path: Path) -> None:
    code, lines, _ = _run([str(tmp_path / "nope.jpg")])
    assert code == 1 and lines[0]["error"]["code"] == "NotFound"


def test_empty_folder_scores_nothing_and_succeeds(tmp_path: Path) -> None:
    assert _run([str(tmp_path)]) == (0, [], "")


def test_explain_says_what_is_wrong_in_words_and_keeps_the_numbers_apart(tmp_path: Path) -> None:
    """A clean photo is not blamed for its 0.39 Mpx (issue 17); a damaged one names its defect,
    with the numbers in the structured record rather than in the sentence."""
    name = "kodim23-parrots.jpg"
    original = read_demo_image(name)
    (tmp_path / "a-original.jpg").write_bytes(original)
    with Image.open(io.BytesIO(original)) as im:
        (tmp_path / "b-dark.jpg").write_bytes(KINDS["dark"](im.convert("RGB"), name))
    _, (clean, dark), _ = _run([str(tmp_path)], explain=True, jobs=1)
    assert clean["explanation"] == {"summary": "no visible defect", "driver": None, "use": "web", "defects": []}
    assert dark["explanation"]["driver"] == "underexposed"
    assert dark["explanation"]["summary"].startswith("too dark (about ")
    (defect,) = dark["explanation"]["defects"]
    assert set(defect) == {"kind", "severity", "words", "detail"} and defect["detail"]["stops"] < -1.5
    assert dark["explanation"] == explain(score((tmp_path / "b-dark.jpg").read_bytes())).as_record()
    assert "explanation" not in _run([str(tmp_path)], jobs=1)[1][0]


def test_explain_judges_resolution_against_the_stated_use(tmp_path: Path) -> None:
    (tmp_path / "p.jpg").write_bytes(read_demo_image("kodim23-parrots.jpg"))  # 768 x 512: fine for the web
    _, (record,), _ = _run([str(tmp_path)], explain=True, use="print", jobs=1)
    assert record["explanation"]["driver"] == "low_resolution"
    assert record["explanation"]["summary"] == "low resolution for print"
    with pytest.raises(ValueError, match="choose one of: thumbnail, web, print"):
        _run([str(tmp_path)], explain=True, use="poster")


@pytest.mark.slow
def test_process_pool_gives_the_same_lines_in_the_same_order(mixed: Path) -> None:
    for i, name in enumerate(DEMO_IMAGES):
        shutil.copy(mixed / "b.jpg", mixed / "sub" / f"copy{i}-{name}")
    serial = _run([str(mixed)], jobs=1)
    pooled = _run([str(mixed)], jobs=2)
    assert len(serial[1]) >= 8 and pooled == serial


@pytest.mark.slow
def test_progress_bar_only_on_a_terminal_with_many_files(mixed: Path) -> None:
    for i in range(20):
        shutil.copy(mixed / "b.jpg", mixed / "sub" / f"n{i:02}.jpg")
    assert _run([str(mixed)], err=io.StringIO(), jobs=1)[2] == ""
    assert "img" in _run([str(mixed)], err=FakeTTY(), jobs=1)[2]
    assert _run([str(mixed)], err=FakeTTY(), progress=False, jobs=1)[2] == ""
    assert _run([str(mixed / "b.jpg")], err=FakeTTY())[2] == ""  # one file: no bar


def test_collect_files_keeps_explicit_hidden_files(mixed: Path) -> None:
    assert collect_files([str(mixed / ".DS_Store")]) == [str(mixed / ".DS_Store")]


def test_the_cli_options_match_run_score() -> None:
    args = build_parser().parse_args(["score", "a", "b", "--explain", "--no-progress", "--jobs", "2",
                                      "--quality-model", "fast", "--use", "print"])
    assert (args.paths, args.explain, args.progress, args.jobs) == (["a", "b"], True, False, 2)
    assert (args.quality_model, args.use) == ("fast", "print")
    options = {k: v for k, v in vars(args).items() if k not in ("paths", "command", "func")}
    run_score([], out=io.StringIO(), err=io.StringIO(), **options)


def test_the_cli_defaults_leave_progress_and_jobs_to_run_score() -> None:
    args = build_parser().parse_args(["score", "a"])
    assert (args.progress, args.jobs, args.explain, args.quality_model, args.use) == (None, None, False, "accurate",
                                                                                      "web")
    assert build_parser().parse_args(["score", "a", "--progress"]).progress is True


@pytest.mark.parametrize("jobs", ["0", "-3", "two"])
def test_a_bad_jobs_count_is_a_usage_error(jobs: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["score", "a", "--jobs", jobs])
    assert exited.value.code == 2
    assert "--jobs" in capsys.readouterr().err


def test_quality_model_fast_scores_with_the_fast_layout(tmp_path: Path) -> None:
    data = read_demo_image(DEMO_IMAGES[0])
    (tmp_path / "a.jpg").write_bytes(data)
    code, (record,), _ = _run([str(tmp_path / "a.jpg")], quality_model="fast", jobs=1)
    assert code == 0
    assert record["score"] == round(score(data, "fast").overall, 3) != round(score(data).overall, 3)


def test_an_unknown_quality_model_is_refused_before_any_file_is_read(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose one of: accurate, fast"):
        _run([str(tmp_path / "missing.jpg")], quality_model="fastest")


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--quality-model", "fastest", "--quality-model: unknown quality model 'fastest'"),
    ("--use", "poster", "--use: unknown use 'poster'; choose one of: thumbnail, web, print"),
])
def test_the_cli_refuses_an_unknown_quality_model_or_use_with_exit_2(tmp_path: Path, option: str, value: str,
                                                                     message: str) -> None:
    import subprocess
    import sys

    (tmp_path / "a.jpg").write_bytes(read_demo_image(DEMO_IMAGES[0]))
    done = subprocess.run([sys.executable, "-m", "worker.cli", "score", option, value, "--explain",
                           str(tmp_path / "a.jpg")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert f"picscore score: {message}" in done.stderr
    assert "Traceback" not in done.stderr
