"""Which group an object key belongs to, for ``picscore covers`` (one cover per group).

Four ways, chosen by ``--group-by``:

* ``dirname`` (default): the key's directory, ``products/shoe-1/a.jpg`` -> ``products/shoe-1``.
  Keys at the top level (no ``/``) form the group :data:`TOP_LEVEL` (``/``): an empty name would
  vanish in a CSV cell and in messages, and no directory prefix of a key is ever named ``/``.
* ``depth`` N: the first N segments of the directory, ``a/b/c/d.jpg`` with N=2 -> ``a/b``; a key
  with fewer directory segments gets what it has (``a/x.jpg`` -> ``a``; ``x.jpg`` -> ``/``).
* ``regex``: ``re.search`` in the key, the group is what the named group ``group`` captured;
  keys that do not match (or capture nothing) are in no group.
* ``groups-file``: a CSV of ``key,group`` rows (a first row ``key,group`` is taken as a header);
  keys not listed are in no group. Cells are taken verbatim: a key is matched exactly.

A grouping is decided at construction: every problem a user can cause (a bad regex, a broken
groups file) is a :class:`~worker.errors.UsageError` before any results row is read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path
from typing import Protocol

from ..errors import UsageError

__all__ = [
    "Grouping", "DirnameGrouping", "DepthGrouping", "RegexGrouping", "FileGrouping", "make_grouping",
    "GROUP_BY", "TOP_LEVEL", "MAX_REGEX_CHARS",
]

#: The ``--group-by`` choices, the default first.
GROUP_BY = ("dirname", "depth", "regex", "groups-file")
#: The name of the group of keys at the top level of the bucket (directory ``""``).
TOP_LEVEL = "/"
#: A longer ``--group-regex`` is refused: a grouping pattern needs no more, and a bound keeps it reviewable.
MAX_REGEX_CHARS = 1000


class Grouping(Protocol):
    """Maps a key to its group's name, or ``None`` when the key is in no group."""

    def group_of(self, key: str) -> str | None:
        """The group of ``key`` (``None``: in no group, counted and reported, never chosen)."""

    def describe(self) -> str:
        """One stable line naming the grouping and its parameters: for fingerprints and messages."""


def _directory_segments(key: str) -> list[str]:
    """The directory part of ``key``, split on ``/`` (empty list at the top level)."""
    directory = key.rpartition("/")[0]
    return directory.split("/") if directory else []


class DirnameGrouping:
    """The key's whole directory: the natural unit of "one product, several photos"."""

    def group_of(self, key: str) -> str | None:
        return key.rpartition("/")[0] or TOP_LEVEL

    def describe(self) -> str:
        return "dirname"


class DepthGrouping:
    """The first ``depth`` directory segments: groups a deeper tree (``brand/product/angle/``) higher up."""

    def __init__(self, depth: int) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise UsageError(f"--group-depth must be a whole number of at least 1, got {depth!r}")
        self.depth = depth

    def group_of(self, key: str) -> str | None:
        return "/".join(_directory_segments(key)[: self.depth]) or TOP_LEVEL

    def describe(self) -> str:
        return f"depth {self.depth}"


class RegexGrouping:
    """What ``(?P<group>...)`` captures: for layouts a directory cannot express (``sku-123_front.jpg``)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = _compile_group_regex(pattern)

    def group_of(self, key: str) -> str | None:
        match = self.pattern.search(key)
        # An empty capture is no group: a group needs a name to be reported and acted on.
        return (match.group("group") or None) if match else None

    def describe(self) -> str:
        return f"regex {self.pattern.pattern}"


def _compile_group_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled, or a UsageError that says what is wrong with it."""
    if len(pattern) > MAX_REGEX_CHARS:
        raise UsageError(f"--group-regex is {len(pattern)} characters long; at most {MAX_REGEX_CHARS} are allowed")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--group-regex does not compile: {exc}") from None
    if "group" not in compiled.groupindex:
        raise UsageError("--group-regex needs a named group (?P<group>...) that captures the group's name, "
                         "e.g. products/(?P<group>[^/]+)/")
    return compiled


class FileGrouping:
    """Groups listed by the user, one ``key,group`` row per key: for groupings no key pattern knows.

    The whole mapping is held in memory (one entry per listed key): it is the user's own list,
    not the results file, so it is as large as the user made it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.groups, self.digest = _read_groups_file(self.path)

    def group_of(self, key: str) -> str | None:
        return self.groups.get(key)

    def describe(self) -> str:
        # The content digest, not the path, is what makes two runs' groupings the same.
        return f"groups-file {self.path.name} sha256:{self.digest[:16]}"


def _is_header(row: list[str]) -> bool:
    return [cell.strip().lower() for cell in row] == ["key", "group"]


def _read_groups_file(path: Path) -> tuple[dict[str, str], str]:
    """The ``key -> group`` mapping of a groups file and the SHA-256 of its bytes; refuses a broken file."""
    try:
        data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"--groups {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"--groups {path} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"--groups {path} is not UTF-8 text (byte {exc.start})") from None
    groups: dict[str, str] = {}
    first_line: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""))
    first = True
    try:
        for row in reader:
            if not row:
                continue  # a blank line
            if first and _is_header(row):
                first = False
                continue
            first = False
            line = reader.line_num
            key, group = _parse_row(path, line, row)
            known = groups.get(key)
            if known is not None and known != group:
                raise UsageError(f"--groups {path} line {line}: key {key!r} is in group {group!r} here "
                                 f"but in group {known!r} on line {first_line[key]}")
            groups[key] = group
            first_line.setdefault(key, line)
    except csv.Error as exc:
        raise UsageError(f"--groups {path} line {reader.line_num}: not valid CSV ({exc})") from None
    return groups, hashlib.sha256(data).hexdigest()


def _parse_row(path: Path, line: int, row: list[str]) -> tuple[str, str]:
    """One ``key,group`` row, or a UsageError naming the line."""
    if len(row) != 2:
        raise UsageError(f"--groups {path} line {line}: expected 2 columns (key,group), got {len(row)}")
    key, group = row
    if not key or not group:
        raise UsageError(f"--groups {path} line {line}: the {'key' if not key else 'group'} is empty")
    return key, group


#: The option that gives each way its parameter.
_FLAGS = {"depth": "--group-depth", "regex": "--group-regex", "groups-file": "--groups"}


def make_grouping(by: str = "dirname", depth: int | None = None, regex: str | None = None,
                  groups_file: Path | None = None) -> Grouping:
    """The grouping ``--group-by by`` asks for; each way's parameter is required by it and refused by the others
    (a ``--group-depth`` given with ``--group-by regex`` is a mistake worth saying, not ignoring)."""
    if by not in GROUP_BY:
        raise UsageError(f"--group-by must be one of {', '.join(GROUP_BY)}; got {by!r}")
    given = {"depth": depth is not None, "regex": regex is not None, "groups-file": groups_file is not None}
    stray = [name for name, present in given.items() if present and name != by]
    if stray:
        raise UsageError(f"{_FLAGS[stray[0]]} applies only with --group-by {stray[0]} (got --group-by {by})")
    if by != "dirname" and not given[by]:
        raise UsageError(f"--group-by {by} needs {_FLAGS[by]}")
    if by == "depth":
        return DepthGrouping(depth)  # type: ignore[arg-type]
    if by == "regex":
        return RegexGrouping(regex)  # type: ignore[arg-type]
    if by == "groups-file":
        return FileGrouping(groups_file)  # type: ignore[arg-type]
    return DirnameGrouping()
