"""Reading a process and its descendants from /proc: RSS, CPU, threads, open fds and sockets."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

# -- /proc sampling (parent) ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProcSample:
    """One server process and its descendants at one moment."""

    rss_mb: float
    threads: int
    fds: int
    sockets: int
    children: frozenset[int]
    children_rss_mb: float
    children_fds: int
    #: CPU seconds (user + system) of the server and its live descendants so far.
    cpu_s: float


def _status_fields(pid: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


_CLK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """utime + stime of a running process, from /proc/<pid>/stat (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK


def _rss_mb(fields: dict[str, str]) -> float:
    return int(fields.get("VmRSS", "0 kB").split()[0]) / 1024


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc/<pid>/task/*/children (the pool's processes are
    the forkserver's children, not the server's)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(k) for k in Path(f"/proc/{parent}/task/{task}/children").read_text().split()]
            except OSError:
                continue
            found.extend(kids)
            stack.extend(kids)
    return found


def _fd_counts(pid: int) -> tuple[int, int]:
    """(open fds, of which sockets); a process that just exited counts as none."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0, 0
    sockets = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return len(fds), sockets


def sample_process(pid: int) -> ProcSample | None:
    """The server's figures now, or None when it is gone."""
    try:
        fields = _status_fields(pid)
    except OSError:
        return None
    fds, sockets = _fd_counts(pid)
    kids = descendants(pid)
    kids_rss = kids_fds = 0.0
    cpu = _cpu_s(pid) + sum(_cpu_s(kid) for kid in kids)
    for kid in kids:
        try:
            kids_rss += _rss_mb(_status_fields(kid))
        except OSError:
            continue
        kids_fds += _fd_counts(kid)[0]
    return ProcSample(_rss_mb(fields), int(fields.get("Threads", "0")), fds, sockets, frozenset(kids),
                      kids_rss, int(kids_fds), cpu)


def client_rss_mb(pid: int) -> float:
    try:
        return _rss_mb(_status_fields(pid))
    except OSError:
        return 0.0


@dataclass(frozen=True)
class DiskUse:
    objects: int
    tmp_files: int
    mb: float


def disk_use(bucket_dir: Path) -> DiskUse:
    """Objects (files outside ``.picscore``), uploads left in ``.picscore/tmp`` and bytes under a bucket."""
    objects = tmp = size = 0
    for folder, _, files in os.walk(bucket_dir):
        rel = Path(folder).relative_to(bucket_dir).parts
        for name in files:
            try:
                size += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                continue
            if not rel or rel[0] != ".picscore":
                objects += 1
            elif rel[:2] == (".picscore", "tmp"):
                tmp += 1
    return DiskUse(objects, tmp, size / 2**20)
