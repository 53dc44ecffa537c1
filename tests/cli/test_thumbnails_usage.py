"""``picscore thumbnails``' own flags: each mistake answers at once, exit 2, naming the flag;
and its default output never lands on ``picscore run``'s results file."""

from __future__ import annotations

import argparse

import pytest

from worker.cli import main
from worker.cli_thumbnails import DEFAULT_OUTPUT, _default_output, _options
from worker.commands.thumbnails import save_key

BASE = ["thumbnails", "--bucket", "videos", "--endpoint", "http://127.0.0.1:9", "--region", "cn-hangzhou"]


@pytest.mark.parametrize(("flags", "message"), [
    (["--window", "5s"], "--window: '5s' is not START-END"),
    (["--window", "60s-5s"], "--window: the end (5s) must come after the start (60s)"),
    (["--window", "abc-"], "--window: "),
    (["--every", "0s"], "--every: must be a duration > 0"),
    (["--every", "soon"], "--every: "),
    (["--save-to", "thumbs/{nope}.jpg"], "--save-to: 'thumbs/{nope}.jpg' names an unknown field"),
    (["--save-to", "{key}"], "--save-to: '{key}' would overwrite the video"),
    (["--save-to", "{dir}"], "would overwrite the video or name no object"),
    (["--quality-model", "huge"], "--quality-model: "),
    (["--frames", "4", "--every", "2s"], "--frames and --every both choose the candidates"),
])
def test_bad_flags_are_usage_errors_naming_the_flag(flags: list[str], message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, *flags]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--frames", "0"], ["--width", "-1"], ["--scorer", "cloud"]])
def test_argparse_refuses_out_of_range_values(flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([*BASE, *flag])
    assert stopped.value.code == 2 and flag[0] in capsys.readouterr().err


def test_save_key_fields() -> None:
    assert save_key("thumbs/{key}.jpg", "clips/a b.mp4") == "thumbs/clips/a b.mp4.jpg"
    assert save_key("thumbs/{stem}.jpg", "clips/a.b.mp4") == "thumbs/clips/a.b.jpg"
    assert save_key("{dir}thumbs/{name}.jpg", "clips/x.mov") == "clips/thumbs/x.mov.jpg"
    assert save_key("{dir}{stem}.jpg", "top.mp4") == "top.jpg"
    assert save_key("t/{stem}.jpg", "clips/noext") == "t/clips/noext.jpg"


def test_the_default_output_is_not_runs(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("PICSCORE_OUTPUT", raising=False)
    monkeypatch.delenv("PICSCORE_CONFIG", raising=False)
    args = argparse.Namespace(output=None, format=None, config=None)
    _default_output(args)
    assert args.output == DEFAULT_OUTPUT
    args = argparse.Namespace(output=None, format="csv", config=None)
    _default_output(args)
    assert args.output == "picscore-thumbnails.csv"
    config = tmp_path / "c.yaml"
    config.write_text("output: mine.parquet\n")
    args = argparse.Namespace(output=None, format=None, config=str(config))
    _default_output(args)
    assert args.output is None  # the file's output stands
    monkeypatch.setenv("PICSCORE_OUTPUT", "env.parquet")
    args = argparse.Namespace(output=None, format=None, config=None)
    _default_output(args)
    assert args.output is None


def test_options_carry_every_flag() -> None:
    from worker.cli import build_parser

    args = build_parser().parse_args([*BASE, "--every", "2s", "--window", "5s-", "--scorer", "local", "--width", "640",
                                      "--runners-up", "1", "--quality-model", "fast", "--save-to", "t/{stem}.jpg"])
    options = _options(args)
    assert (options.every_ms, options.window_ms, options.scorer, options.width, options.runners_up,
            options.quality_model, options.save_to) == (2000, (5000, None), "local", 640, 1, "fast", "t/{stem}.jpg")
