"""``picscore run`` settings: layering, validation messages, credentials, sharding, outputs."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from worker.settings import (
    ConfigError,
    Credentials,
    RunConfig,
    Shard,
    add_run_arguments,
    fingerprint,
    load_run_config,
    parse_duration,
    parse_size,
    split_oss_url,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
KEY_ID = "LTAI5tEXAMPLEKEYID"
SECRET = "ExampleSecret0123456789abcdefXYZ"
TOKEN = "ExampleStsToken-CAIS-0123456789"
CREDS = {"OSS_ACCESS_KEY_ID": KEY_ID, "OSS_ACCESS_KEY_SECRET": SECRET}
BASE = ["--endpoint", "http://127.0.0.1:9000", "--region", "cn-hangzhou", "--bucket", "demo"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="picscore run")
    add_run_arguments(p)
    return p


def load(argv: list[str] = (), env: dict[str, str] | None = None, *, base: bool = True) -> RunConfig:
    args = parser().parse_args([*(BASE if base else []), *argv])
    return load_run_config(args, {**CREDS, **(env or {})})


def fails(argv: list[str] = (), env: dict[str, str] | None = None, *, base: bool = True,
          creds: bool = True) -> ConfigError:
    args = parser().parse_args([*(BASE if base else []), *argv])
    with pytest.raises(ConfigError) as info:
        load_run_config(args, {**(CREDS if creds else {}), **(env or {})})
    return info.value


def write_yaml(tmp_path: Path, data: object, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------- defaults


def test_defaults() -> None:
    config = load()
    assert config.endpoint == "http://127.0.0.1:9000"
    assert config.prefix == ("",) and config.include == () and config.exclude == ()
    assert (config.concurrency, config.rate_limit, config.retry_attempts) == (16, None, 6)
    assert (config.retry_total_s, config.retry_base_s, config.retry_max_backoff_s) == (300, 0.2, 20)
    assert config.output == "picscore-results.parquet" and config.format == "parquet"
    assert config.checkpoint == Path("picscore-results.parquet.checkpoint.sqlite")
    assert config.shard == Shard(0, 1) and not config.resume and not config.dry_run
    assert config.failure_threshold == 0 and config.max_object_bytes == 20 * 1024 * 1024
    assert (config.flush_rows, config.flush_seconds, config.grace_s) == (5000, 30, 30)
    assert (config.log_level, config.log_format, config.progress) == ("info", "auto", "auto")
    assert config.metrics_port is None and config.pushgateway is None and config.time_budget_s is None
    assert config.config_file is None and config.warnings == ()


def test_every_flag_defaults_to_none_so_layers_show_through() -> None:
    args = parser().parse_args([])
    assert all(value is None for value in vars(args).values())
    assert "--max-object-bytes" in parser().format_help()  # help renders (no stray % in texts)


# ---------------------------------------------------------------------------------- layering


def test_precedence_file_then_env_then_flag(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"endpoint": "http://127.0.0.1:9000", "region": "cn-hangzhou", "bucket": "demo",
                                 "concurrency": 8, "rate_limit": 5, "prefix": ["file/"], "output": "file.csv",
                                 "resume": True, "log_level": "debug"})
    from_file = load(["--config", str(path)], base=False)
    assert (from_file.concurrency, from_file.rate_limit, from_file.prefix) == (8, 5.0, ("file/",))
    assert from_file.output == "file.csv" and from_file.format == "csv" and from_file.resume
    assert from_file.config_file == path

    env = {"PICSCORE_CONCURRENCY": "12", "PICSCORE_PREFIX": "env-a/, env-b/", "PICSCORE_OUTPUT": "env.jsonl",
           "PICSCORE_RESUME": "false"}
    from_env = load(["--config", str(path)], env, base=False)
    assert from_env.concurrency == 12 and from_env.prefix == ("env-a/", "env-b/")
    assert from_env.output == "env.jsonl" and from_env.format == "jsonl" and not from_env.resume
    assert from_env.rate_limit == 5.0 and from_env.log_level == "debug"  # untouched keys stay from the file

    flags = ["--config", str(path), "--concurrency", "20", "--prefix", "flag/", "--prefix", "x/",
             "--output", "flag.parquet", "--resume", "--rate-limit", "none"]
    from_flags = load(flags, env, base=False)
    assert from_flags.concurrency == 20 and from_flags.prefix == ("flag/", "x/")
    assert from_flags.output == "flag.parquet" and from_flags.resume and from_flags.rate_limit is None
    assert load([*flags, "--no-resume"], {**env, "PICSCORE_RESUME": "yes"}, base=False).resume is False


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"endpoint": "http://127.0.0.1:9000", "region": "cn-hangzhou", "bucket": "envfile"})
    assert load([], {"PICSCORE_CONFIG": str(path)}, base=False).bucket == "envfile"


def test_empty_environment_values_count_as_unset() -> None:
    config = load([], {"PICSCORE_CONCURRENCY": "", "PICSCORE_PREFIX": "  ", "PICSCORE_RATE_LIMIT": ""})
    assert config.concurrency == 16 and config.prefix == ("",) and config.rate_limit is None


def test_unknown_picscore_variables_are_warnings_with_suggestions() -> None:
    config = load([], {"PICSCORE_CONCURENCY": "4", "PICSCORE_URL": "x"})
    assert config.concurrency == 16
    assert any("PICSCORE_CONCURENCY" in w and "PICSCORE_CONCURRENCY" in w for w in config.warnings)
    assert any(w.startswith("PICSCORE_URL") for w in config.warnings)


# ---------------------------------------------------------------------------------- validation

BAD_VALUES: dict[str, list[str]] = {
    "endpoint": ["ftp://host", "https://", "https://host/path", "https://host?x=1", "https://host:port"],
    "region": ["oss-cn-hangzhou", "CN_Hangzhou", ""],
    "bucket": ["ab", "Demo", "-demo", "demo-", "a" * 64, "de_mo"],
    "prefix": ["/photos/"],
    "include": [""],
    "exclude": [""],
    "min_size": ["-1", "10 KB KB", "1.5B", "10Kb!", "ten", "5K"],
    "max_size": ["-5", "1e9", "12 parsecs"],
    "modified_since": ["yesterday", "2024-13-01", "01/05/2024"],
    "concurrency": ["0", "1025", "1.5", "many", "-3"],
    "rate_limit": ["0", "-1", "fast", "nan", "inf"],
    "retry_attempts": ["0", "101", "two"],
    "retry_total_s": ["0", "-1", "forever", "5 weeks"],
    "retry_base_s": ["0", "soon"],
    "retry_max_backoff_s": ["0", "x"],
    "output": ["s3://bucket/key", "oss://Bad_Bucket/key", "oss://bucket/", "oss://bucket", "out/"],
    "format": ["xlsx", "json"],
    "checkpoint": ["oss://bucket/ckpt.sqlite", "dir/"],
    "resume": ["maybe", "2"],
    "incremental": ["oss://bucket/prev.parquet", "prev/"],
    "shard": ["1", "2/2", "-1/4", "a/b", "0/0"],
    "shard_count": ["0", "x"],
    "dry_run": ["perhaps"],
    "time_budget_s": ["0", "-90m", "eventually"],
    "failure_threshold": ["1.5", "-0.1", "150%", "some"],
    "metrics_port": ["-1", "65536", "http"],
    "pushgateway": ["ftp://gw", "gateway:abc"],
    "log_level": ["verbose", "trace"],
    "log_format": ["xml"],
    "progress": ["sometimes"],
    "flush_rows": ["0", "lots"],
    "flush_seconds": ["0", "-1"],
    "grace_s": ["-1", "a while"],
    "max_object_bytes": ["0", "big"],
    "event_loop": ["libuv", "uv"],
}
LAYERS = ("flag", "env", "file")
BOOL_FIELDS = {"resume", "dry_run"}


def _load_bad(tmp_path: Path, field: str, value: str, layer: str) -> tuple[ConfigError, str]:
    flag, env_name = "--" + field.replace("_", "-"), "PICSCORE_" + field.upper()
    required = {"endpoint": "http://127.0.0.1:9000", "region": "cn-hangzhou", "bucket": "demo"}
    required.pop(field, None)
    base = [arg for key, val in required.items() for arg in (f"--{key}", val)]
    if layer == "flag":
        return fails([*base, f"{flag}={value}"], base=False), flag
    if layer == "env":
        return fails(base, {env_name: value}, base=False), env_name
    path = write_yaml(tmp_path, {field: value})
    return fails([*base, "--config", str(path)], base=False), f"{path} key '{field}'"


@pytest.mark.parametrize(("field", "layer"), [
    (field, layer) for field in BAD_VALUES for layer in LAYERS
    if not (layer == "flag" and field in BOOL_FIELDS)  # --resume / --no-resume take no value
])
def test_bad_values_name_field_and_source(tmp_path: Path, field: str, layer: str) -> None:
    for value in BAD_VALUES[field]:
        if layer == "env" and not value.strip():
            continue  # an empty variable is unset by design
        error, source = _load_bad(tmp_path, field, value, layer)
        assert error.field == field, (value, str(error))
        assert str(error).startswith(f"{field}: ")
        assert source in str(error), (value, str(error))


def test_message_format_matches_the_documented_example() -> None:
    assert str(fails(["--concurrency", "0"])) == (
        "concurrency: must be an integer between 1 and 1024 (got '0' from --concurrency)")


@pytest.mark.parametrize(("field", "value", "hint"), [
    ("prefix", [2024], "quote it"),
    ("prefix", 2024, "must be a list"),
    ("bucket", 12345, "quote it"),
    ("concurrency", True, "integer"),
    ("concurrency", 16.0, "integer"),
    ("concurrency", None, "must have a value"),
    ("resume", 1, "true or false"),
    ("min_size", True, "size"),
    ("prefix", [], "at least one prefix"),
    ("include", {"a": 1}, "list of strings"),
])
def test_yaml_types_are_not_coerced(tmp_path: Path, field: str, value: object, hint: str) -> None:
    path = write_yaml(tmp_path, {field: value})
    args = [*BASE, "--config", str(path)] if field != "bucket" else [
        "--endpoint", "http://h:1", "--region", "r1", "--config", str(path)]
    error = fails(args, base=False)
    assert error.field == field and hint in str(error) and f"key '{field}'" in str(error)


def test_yaml_values_of_the_right_type(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "resume: yes\nprogress: off\nmin_size: 1024\nmax_size: 2500000.0\nrate_limit: 7\n"
                                "modified_since: 2024-05-01\nprefix: photos/\ntime_budget_s: 90\nmetrics_port: 0\n")
    config = load(["--config", str(path)])
    assert config.resume and config.progress == "never" and config.prefix == ("photos/",)
    assert (config.min_size, config.max_size, config.rate_limit) == (1024, 2_500_000, 7.0)
    assert config.modified_since == datetime(2024, 5, 1, tzinfo=UTC)
    assert config.time_budget_s == 90 and config.metrics_port == 0


@pytest.mark.parametrize("field", ["endpoint", "region", "bucket"])
def test_required_fields_name_every_source(field: str) -> None:
    values = {"endpoint": "http://127.0.0.1:9000", "region": "cn-hangzhou", "bucket": "demo"}
    del values[field]
    error = fails([arg for k, v in values.items() for arg in (f"--{k}", v)], base=False)
    assert error.field == field
    assert "required" in str(error) and f"PICSCORE_{field.upper()}" in str(error) and f"--{field}" in str(error)


def test_overlapping_or_duplicate_prefixes_are_refused() -> None:
    error = fails(["--prefix", "photos/", "--prefix", "photos/2024/"])
    assert error.field == "prefix" and "'photos/2024/' is inside 'photos/'" in str(error)
    assert fails(["--prefix", "a/", "--prefix", "a/"]).field == "prefix"
    assert fails(["--prefix", "", "--prefix", "a/"]).field == "prefix"
    assert load(["--prefix", "a/", "--prefix", "ab/x"]).prefix == ("a/", "ab/x")


def test_cross_field_checks_name_both_sources() -> None:
    error = fails(["--max-size", "1KiB"], {"PICSCORE_MIN_SIZE": "2KiB"})
    assert error.field == "max_size" and "--max-size" in str(error) and "PICSCORE_MIN_SIZE" in str(error)
    error = fails(["--retry-base-s", "30s", "--retry-max-backoff-s", "10s"])
    assert error.field == "retry_max_backoff_s" and "--retry-base-s" in str(error)


def test_endpoint_normalisation_and_bucket_in_host() -> None:
    assert load(["--endpoint", "oss-cn-hangzhou.aliyuncs.com/"]).endpoint == "https://oss-cn-hangzhou.aliyuncs.com"
    error = fails(["--endpoint", "https://demo.oss-cn-hangzhou.aliyuncs.com"])
    assert error.field == "endpoint" and "without 'demo.'" in str(error)
    assert "'cn-hangzhou'" in str(fails(["--region", "oss-cn-hangzhou"]))


@pytest.mark.parametrize("field", ["endpoint", "pushgateway"])
def test_urls_with_user_info_are_refused_without_echo(field: str) -> None:
    error = fails([f"--{field}", f"https://admin:{SECRET}@gw.example.com"])
    assert error.field == field and SECRET not in str(error) and f"from --{field}" in str(error)


def test_optional_fields_accept_none_words() -> None:
    config = load(["--max-size", "none", "--rate-limit", "unlimited", "--time-budget-s", "off",
                   "--metrics-port", "none", "--pushgateway", "null", "--incremental", "none"])
    assert (config.max_size, config.rate_limit, config.time_budget_s) == (None, None, None)
    assert (config.metrics_port, config.pushgateway, config.incremental) == (None, None, None)


def test_misc_value_forms() -> None:
    config = load(["--failure-threshold", "2.5%", "--log-level", "WARN", "--format", "ndjson",
                   "--include", "*.jpg", "--include", "*.png", "--exclude", "*/thumbs/*",
                   "--pushgateway", "http://gw:9091/base", "--incremental", "prev.parquet"])
    assert config.failure_threshold == pytest.approx(0.025) and config.log_level == "warning"
    assert config.format == "jsonl" and config.output == "picscore-results.jsonl"
    assert config.include == ("*.jpg", "*.png") and config.exclude == ("*/thumbs/*",)
    assert config.pushgateway == "http://gw:9091/base" and config.incremental == Path("prev.parquet")


def test_selects_key() -> None:
    config = load(["--include", "*.jpg", "--include", "*.PNG", "--exclude", "*/thumbs/*"])
    assert config.selects_key("a/b.jpg") and config.selects_key("x.PNG")
    assert not config.selects_key("a/thumbs/b.jpg") and not config.selects_key("a/b.png")
    assert load().selects_key("anything")


# ---------------------------------------------------------------------------------- the YAML file


def test_unknown_keys_are_named_with_suggestions(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "concurency: 4\nrate-limit: 3\ncolour: blue\n")
    error = fails(["--config", str(path)])
    assert error.field == "concurency" and str(path) in str(error)
    assert "'concurency' (did you mean 'concurrency'?)" in str(error)
    assert "'rate-limit' (did you mean 'rate_limit'?)" in str(error)
    assert "'colour'" in str(error)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_yaml_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = write_yaml(tmp_path, text)
    error = fails(["--config", str(path)])
    assert error.field == "config" and "mapping" in str(error) and str(path) in str(error)


def test_empty_yaml_is_an_empty_layer(tmp_path: Path) -> None:
    assert load(["--config", str(write_yaml(tmp_path, ""))]).concurrency == 16


def test_invalid_yaml_and_duplicate_keys(tmp_path: Path) -> None:
    error = fails(["--config", str(write_yaml(tmp_path, "bucket: [unclosed\n"))])
    assert error.field == "config" and "not valid YAML" in str(error) and "line" in str(error)
    error = fails(["--config", str(write_yaml(tmp_path, "concurrency: 4\nconcurrency: 8\n", "dup.yaml"))])
    assert error.field == "config" and "duplicate key 'concurrency'" in str(error) and "line 2" in str(error)


def test_unreadable_files(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.yaml", tmp_path):
        error = fails(["--config", str(path)])
        assert error.field == "config" and str(path) in str(error) and "cannot read" in str(error)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00bucket")
    assert fails(["--config", str(binary)]).field == "config"


@pytest.mark.parametrize("key", ["access_key_secret", "OSS_ACCESS_KEY_ID", "session_token", "credentials"])
def test_secrets_in_the_file_are_refused_without_echo(tmp_path: Path, key: str) -> None:
    path = write_yaml(tmp_path, {key: SECRET})
    error = fails(["--config", str(path)])
    assert error.field == key and SECRET not in str(error) and "OSS_ACCESS_KEY_SECRET" in str(error)


def test_non_string_keys(tmp_path: Path) -> None:
    assert fails(["--config", str(write_yaml(tmp_path, "1: x\n"))]).field == "config"


@pytest.mark.parametrize("name", ["local-demo.yaml", "production.yaml", "backfill-sharded.yaml"])
def test_example_configs_validate(name: str) -> None:
    env = {"JOB_COMPLETION_INDEX": "5"} if name.startswith("backfill") else {}
    config = load(["--config", str(CONFIG_DIR / name)], env, base=False)
    assert config.config_file == CONFIG_DIR / name and config.warnings == ()
    if name == "local-demo.yaml":
        assert (config.endpoint, config.bucket, config.format) == ("http://127.0.0.1:9000", "demo", "csv")
    if name == "production.yaml":
        assert config.concurrency == 32 and config.rate_limit and config.pushgateway
        assert config.output.startswith("oss://") and config.format == "parquet"
    if name == "backfill-sharded.yaml":
        assert config.shard == Shard(5, 8) and config.concurrency > 32
        assert config.output.endswith("/part-5-of-8.parquet")
        assert config.checkpoint == Path("/var/lib/picscore/backfill-5.checkpoint.sqlite")


# ---------------------------------------------------------------------------------- credentials


def test_credentials_present_and_hidden() -> None:
    config = load([], {"OSS_ACCESS_KEY_ID": f" {KEY_ID}\n", "OSS_SESSION_TOKEN": TOKEN})
    assert config.credentials == Credentials(KEY_ID, SECRET, TOKEN)  # whitespace stripped
    assert config.credentials.secrets == (SECRET, TOKEN)
    for text in (repr(config), str(config), repr(config.credentials), str(config.credentials),
                 str(config.describe())):
        assert SECRET not in text and TOKEN not in text
    assert "credentials" not in repr(config)
    assert "LTAI***" in repr(config.credentials) and "session_token='***'" in repr(config.credentials)
    assert load().credentials.session_token is None


def test_credentials_are_immutable_and_copy_safely() -> None:
    credentials = Credentials(KEY_ID, SECRET)
    with pytest.raises(AttributeError):
        credentials.access_key_secret = "other"  # type: ignore[misc]
    assert copy.deepcopy(credentials) is credentials
    assert pickle.loads(pickle.dumps(credentials)) == credentials
    assert dataclasses.asdict(load())["credentials"] == Credentials(KEY_ID, SECRET)


@pytest.mark.parametrize(("env", "missing"), [
    ({}, "OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET"),
    ({"OSS_ACCESS_KEY_ID": KEY_ID}, "OSS_ACCESS_KEY_SECRET"),
    ({"OSS_ACCESS_KEY_SECRET": SECRET}, "OSS_ACCESS_KEY_ID"),
    ({"OSS_ACCESS_KEY_ID": KEY_ID, "OSS_ACCESS_KEY_SECRET": "  "}, "OSS_ACCESS_KEY_SECRET"),
])
def test_credentials_missing(env: dict[str, str], missing: str) -> None:
    error = fails([], env, creds=False)
    assert error.field == "credentials" and missing in str(error) and SECRET not in str(error)


def test_credentials_have_no_flag() -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--access-key-secret", SECRET])


# ---------------------------------------------------------------------------------- sharding


def test_job_completion_index_with_count() -> None:
    config = load([], {"JOB_COMPLETION_INDEX": "3", "PICSCORE_SHARD_COUNT": "4"})
    assert config.shard == Shard(3, 4) and str(config.shard) == "3/4"
    assert load(["--shard-count", "4"], {"JOB_COMPLETION_INDEX": "0"}).shard == Shard(0, 4)


def test_job_completion_index_without_count_names_both() -> None:
    error = fails([], {"JOB_COMPLETION_INDEX": "2"})
    assert error.field == "shard"
    assert "JOB_COMPLETION_INDEX" in str(error) and "PICSCORE_SHARD_COUNT" in str(error)


@pytest.mark.parametrize("index", ["4", "-1", "one"])
def test_job_completion_index_out_of_range(index: str) -> None:
    error = fails([], {"JOB_COMPLETION_INDEX": index, "PICSCORE_SHARD_COUNT": "4"})
    assert error.field == "shard" and "from JOB_COMPLETION_INDEX" in str(error)


def test_explicit_shard_wins_and_must_agree_with_count() -> None:
    assert load(["--shard", "1/2"], {"JOB_COMPLETION_INDEX": "7"}).shard == Shard(1, 2)
    error = fails(["--shard", "1/2"], {"PICSCORE_SHARD_COUNT": "4"})
    assert error.field == "shard" and "PICSCORE_SHARD_COUNT" in str(error)


def test_shard_count_without_index() -> None:
    error = fails(["--shard-count", "8"])
    assert error.field == "shard_count" and "JOB_COMPLETION_INDEX" in str(error)
    assert load(["--shard-count", "1"]).shard == Shard(0, 1)


def test_sharded_outputs_never_collide() -> None:
    config = load(["--shard", "3/16", "--output", "out/results.parquet"])
    assert config.output == "out/results-shard-03-of-16.parquet"
    assert config.checkpoint == Path("out/results-shard-03-of-16.parquet.checkpoint.sqlite")
    config = load(["--shard", "2/4", "--output", "oss://res/run/{shard_index}-of-{shard_count}.csv",
                   "--checkpoint", "/ckpt/run.sqlite", "--incremental", "prev-{shard_index}.csv"])
    assert config.output == "oss://res/run/2-of-4.csv" and config.format == "csv"
    assert config.checkpoint == Path("/ckpt/run-shard-2-of-4.sqlite")
    assert config.incremental == Path("prev-2.csv")
    assert load(["--shard", "0/4"]).output == "picscore-results-shard-0-of-4.parquet"


# ---------------------------------------------------------------------------------- output/format


@pytest.mark.parametrize(("output", "fmt"), [
    ("r.parquet", "parquet"), ("r.pq", "parquet"), ("r.CSV", "csv"), ("dir.v2/r.jsonl", "jsonl"),
    ("r.ndjson", "jsonl"), ("results", "parquet"), ("r.dat", "parquet"), ("oss://b-1/x/y.csv", "csv"),
])
def test_format_inferred_from_extension(output: str, fmt: str) -> None:
    assert load(["--output", output]).format == fmt


def test_explicit_format_without_output_picks_the_extension() -> None:
    config = load(["--format", "csv"])
    assert config.output == "picscore-results.csv"
    assert config.checkpoint == Path("picscore-results.csv.checkpoint.sqlite")


def test_explicit_format_with_unknown_extension_is_kept() -> None:
    assert load(["--output", "r.dat", "--format", "jsonl"]).format == "jsonl"


def test_format_conflict_names_both_sources(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"output": "r.parquet"})
    error = fails(["--config", str(path)], {"PICSCORE_FORMAT": "csv"})
    assert error.field == "format" and "'.parquet'" in str(error)
    assert "PICSCORE_FORMAT" in str(error) and f"{path} key 'output'" in str(error)


def test_oss_output_checkpoint_is_local() -> None:
    config = load(["--output", "oss://reports/audits/nightly.parquet"])
    assert config.checkpoint == Path("picscore-reports-nightly.parquet.checkpoint.sqlite")


def test_checkpoint_must_differ_from_output() -> None:
    error = fails(["--output", "r.csv", "--checkpoint", "r.csv"])
    assert error.field == "checkpoint" and "--checkpoint" in str(error)


def test_split_oss_url() -> None:
    assert split_oss_url("oss://bucket/a/b.parquet") == ("bucket", "a/b.parquet")
    for bad in ("oss://bucket/", "oss://UP/key", "s3://bucket/key", "oss://bucket//key"):
        with pytest.raises(ValueError):
            split_oss_url(bad)


# ---------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(("text", "size"), [
    ("0", 0), (1048576, 1048576), ("10KiB", 10240), ("20MB", 20_000_000), ("1.5 GiB", 1536 * 2**20),
    ("1.1KB", 1100), ("7b", 7), ("2tib", 2 * 2**40), (3.0, 3), (" 5 MiB ", 5 * 2**20),
])
def test_parse_size(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "1.5", "0.1B", "5K", "5 M", "KiB", "1,000", True, 1.5, float("inf")])
def test_parse_size_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(("text", "seconds"), [
    ("300", 300), (300, 300), (2.5, 2.5), ("300s", 300), ("90m", 5400), ("2h", 7200), ("1h30m", 5400),
    ("1h 30m 15s", 5415), ("250ms", 0.25), ("1.5h", 5400), ("1d", 86400), ("0.2", 0.2), ("2H", 7200),
])
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "-5", "5x", "h", "m5", "1h-30m", "nan", True, -1.0])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
    ("2024-05-01T08:30:00", datetime(2024, 5, 1, 8, 30, tzinfo=UTC)),
    ("2024-05-01T08:30:00Z", datetime(2024, 5, 1, 8, 30, tzinfo=UTC)),
    ("2024-05-01T08:30:00+08:00", datetime(2024, 5, 1, 0, 30, tzinfo=UTC)),
])
def test_modified_since(text: str, expected: datetime) -> None:
    moment = load(["--modified-since", text]).modified_since
    assert moment == expected and moment.tzinfo is UTC


def test_modified_since_from_yaml_timestamp(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "modified_since: 2024-05-01 08:30:00+08:00\n")
    assert load(["--config", str(path)]).modified_since == datetime(2024, 5, 1, 0, 30, tzinfo=UTC)


# ---------------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_identity_not_tuning() -> None:
    base = fingerprint(load(["--prefix", "a/", "--prefix", "b/", "--include", "*.jpg"]))
    tuned = fingerprint(load(["--prefix", "b/", "--prefix", "a/", "--include", "*.jpg", "--concurrency", "500",
                              "--rate-limit", "3", "--retry-attempts", "2", "--flush-rows", "7", "--resume",
                              "--time-budget-s", "1h", "--log-level", "debug", "--grace-s", "1"]))
    assert tuned == base
    assert set(base) >= {"bucket", "prefix", "include", "exclude", "min_size", "max_size", "modified_since",
                         "shard", "format", "output"}
    assert not set(base) & {"concurrency", "rate_limit", "retry_attempts", "retry_total_s", "endpoint"}
    for change in (["--bucket", "other"], ["--exclude", "*.png"], ["--min-size", "1"], ["--shard", "0/2"],
                   ["--modified-since", "2024-01-01"], ["--output", "x.csv"], ["--max-size", "1MiB"]):
        assert fingerprint(load(["--prefix", "a/", "--prefix", "b/", "--include", "*.jpg", *change])) != base
    assert base["modified_since"] is None and base["shard"] == "0/1"
    assert fingerprint(load(["--modified-since", "2024-01-01"]))["modified_since"] == "2024-01-01T00:00:00+00:00"
