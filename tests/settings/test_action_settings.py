"""The settings of ``picscore covers`` and ``picscore filter``: ``run``'s fields from the same layers,
the same file as ``run`` accepted (its own keys ignored), bucket access checked only when needed."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from worker.errors import ConfigError
from worker.settings.action import add_action_arguments, load_action_settings


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_action_arguments(parser)
    return parser.parse_args(list(argv))


def test_run_s_config_file_serves_with_its_own_keys_ignored(tmp_path: Path) -> None:
    config = tmp_path / "production.yaml"
    config.write_text("endpoint: https://oss-cn-hangzhou.aliyuncs.com\nregion: cn-hangzhou\nbucket: photos\n"
                      "prefix: [a/]\nconcurrency: 32\n")
    settings = load_action_settings(parse("--config", str(config)), {}, "filter")
    assert (settings.endpoint, settings.region, settings.concurrency) == (
        "https://oss-cn-hangzhou.aliyuncs.com", "cn-hangzhou", 32)


def test_an_unknown_key_is_still_an_error_and_flags_win(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("concurency: 32\n")
    with pytest.raises(ConfigError, match="concurrency"):
        load_action_settings(parse("--config", str(config)), {}, "filter")
    settings = load_action_settings(parse("--concurrency", "4"), {"PICSCORE_CONCURRENCY": "8"}, "filter")
    assert settings.concurrency == 4


def test_bucket_access_is_required_only_when_asked_for() -> None:
    settings = load_action_settings(parse(), {}, "filter")
    with pytest.raises(ConfigError, match="endpoint: is required to move objects"):
        settings.require_bucket_access("move objects")
    settings = load_action_settings(parse("--endpoint", "http://127.0.0.1:9", "--region", "cn-hangzhou"),
                                    {"OSS_ACCESS_KEY_ID": "LTAIx"}, "filter")
    with pytest.raises(ConfigError, match=r"OSS_ACCESS_KEY_SECRET.*needed to move objects"):
        settings.require_bucket_access("move objects")


def test_resume_and_restart_contradict() -> None:
    with pytest.raises(ConfigError, match="choose one"):
        load_action_settings(parse("--resume", "--restart"), {}, "covers")
