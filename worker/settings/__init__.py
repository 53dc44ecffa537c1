"""Settings: typed, validated, immutable objects built from file < environment < flags.

* :mod:`.values`: one parser per kind of value (durations, sizes, URLs, prefixes…);
* :mod:`.fields`: the table of ``picscore run``'s settings (name, parser, help, default);
* :mod:`.layers`: reading the YAML file, the ``PICSCORE_*`` environment and the flags;
* :mod:`.credentials`: the access key, from the environment only;
* :mod:`.run`: the :class:`RunConfig` object and the rules that join several fields.
"""

from __future__ import annotations

from ..errors import ConfigError
from .credentials import Credentials, credentials_from_env
from .fields import CONFIG_ENV, ENV_PREFIX, add_run_arguments
from .run import SHARD_INDEX_ENV, RunConfig, fingerprint, load_run_config
from .values import Shard, parse_duration, parse_size, split_oss_url

__all__ = [
    "ConfigError", "RunConfig", "Credentials", "Shard", "add_run_arguments", "load_run_config",
    "fingerprint", "credentials_from_env", "split_oss_url", "parse_size", "parse_duration",
    "ENV_PREFIX", "CONFIG_ENV", "SHARD_INDEX_ENV",
]
