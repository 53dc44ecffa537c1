"""The three layers settings come from, lowest to highest: the YAML file (``--config PATH`` or
``PICSCORE_CONFIG``) < the environment (``PICSCORE_<FIELD>``) < command-line flags.

A higher layer replaces a value whole; lists are not merged. Empty environment variables count
as unset: Kubernetes manifests often template a variable to ``""`` rather than leave it out.
List variables (``PICSCORE_PREFIX``…) are comma-separated, items stripped. Every error is a
:class:`~worker.errors.ConfigError` naming the field *and* where the bad value came from
(``prod.yaml key 'concurrency'``, ``PICSCORE_CONCURRENCY``, ``--concurrency``): in a CronJob the
person reading the log did not write all three layers.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .credentials import KEY_ID_ENV, SECRET_ENV, TOKEN_ENV
from .fields import CONFIG_ENV, ENV_PREFIX, REQUIRED, Field

__all__ = ["Raw", "read_file", "read_env", "read_flags", "config_path", "parse_fields", "source_of"]

_SECRET_KEY_PARTS = ("secret", "password", "token", "access_key", "accesskey", "credential")


@dataclass(frozen=True)
class Raw:
    """One setting before parsing, and where it came from (for error messages)."""

    value: Any
    source: str


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML silently keeps the last one, which turns a
    copy-paste slip into a setting nobody reads."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue  # unhashable key: construct_mapping reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_file(path: Path, fields: Sequence[Field]) -> dict[str, Raw]:
    """The YAML layer. Unreadable, malformed, non-mapping, unknown-key and secret-bearing files
    are errors with field ``config`` (or the offending key)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError("config", f"cannot read the settings file: {reason}", source=str(path)) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError("config", f"not valid YAML: {problem}{where}", source=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("config", f"must be a mapping of settings (key: value), not a YAML "
                          f"{type(data).__name__}", source=str(path))
    _check_keys(data, path, fields)
    return {key: Raw(value, f"{path} key '{key}'") for key, value in data.items()}


def _check_keys(data: Mapping[Any, Any], path: Path, fields: Sequence[Field]) -> None:
    names = {spec.name for spec in fields}
    for key in data:
        if not isinstance(key, str):
            raise ConfigError("config", f"keys must be setting names, not {key!r}", source=str(path))
        lowered = key.lower()
        if any(part in lowered for part in _SECRET_KEY_PARTS):
            raise ConfigError(key, f"credentials never go in settings files: set {KEY_ID_ENV}, {SECRET_ENV} "
                              f"(and {TOKEN_ENV}) in the environment, e.g. from a Kubernetes Secret",
                              source=f"{path} key '{key}'")
    unknown = [key for key in data if key not in names]
    if unknown:
        described = "; ".join(_describe_unknown(key, names) for key in unknown)
        raise ConfigError(unknown[0], f"unknown setting{'s' if len(unknown) > 1 else ''}: {described}",
                          source=str(path))


def _describe_unknown(name: str, names: set[str]) -> str:
    guess = difflib.get_close_matches(name.replace("-", "_").lower(), names, n=1, cutoff=0.6)
    return f"{name!r} (did you mean {guess[0]!r}?)" if guess else repr(name)


def read_env(environ: Mapping[str, str], fields: Sequence[Field],
             command: str = "run") -> tuple[dict[str, Raw], list[str]]:
    """The environment layer, and warnings for ``PICSCORE_*`` names that are not settings
    (warnings, not errors: other tools share the prefix)."""
    layer: dict[str, Raw] = {}
    for spec in fields:
        value = environ.get(spec.env, "")
        if not value.strip():
            continue
        if spec.kind == "list":
            layer[spec.name] = Raw([item.strip() for item in value.split(",") if item.strip()], spec.env)
        else:
            layer[spec.name] = Raw(value, spec.env)
    known = {spec.env for spec in fields} | {CONFIG_ENV}
    warnings = []
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            guess = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            warnings.append(f"{name} is not a picscore {command} setting; ignored{hint}")
    return layer, warnings


def read_flags(args: argparse.Namespace, fields: Sequence[Field]) -> dict[str, Raw]:
    return {spec.name: Raw(getattr(args, spec.name), spec.flag)
            for spec in fields if getattr(args, spec.name, None) is not None}


def config_path(args: argparse.Namespace, environ: Mapping[str, str]) -> Path | None:
    flag = getattr(args, "config", None)
    text = flag if flag else environ.get(CONFIG_ENV, "").strip()
    return Path(text) if text else None


def parse_fields(merged: Mapping[str, Raw], fields: Sequence[Field]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in fields:
        raw = merged.get(spec.name)
        if raw is None:
            if spec.default is REQUIRED:
                raise ConfigError(spec.name, f"is required: set it in the config file, {spec.env} or {spec.flag}")
            values[spec.name] = spec.default
            continue
        if raw.value is None and spec.default is not None:  # only optional fields take null
            raise ConfigError(spec.name, "must have a value", source=raw.source, value=None)
        try:
            values[spec.name] = spec.parse(raw.value)
        except ValueError as exc:
            echo = getattr(exc, "echo", True)
            raise ConfigError(spec.name, str(exc), source=raw.source, value=raw.value if echo else ...) from None
    return values


def source_of(merged: Mapping[str, Raw], name: str) -> str:
    """Where setting ``name`` came from, for messages about two fields at once."""
    raw = merged.get(name)
    return raw.source if raw else "the default"
