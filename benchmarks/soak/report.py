"""The soak's report: requests and errors per kind, the hostile probes' outcomes, drift and verdict."""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .constants import (
    FD_TOLERANCE,
    HEADER_TIMEOUT_S,
    IDLE_HOLD_S,
    KEEPALIVE_HOLD_S,
    KEEPALIVE_TIMEOUT_S,
    RSS_TOLERANCE_FRACTION,
    RSS_TOLERANCE_MB,
)
from .procstats import ProcSample

if TYPE_CHECKING:
    from .runner import Client, Soak

# -- the report -----------------------------------------------------------------------------------


def _merge(clients: list[Client], field_name: str) -> dict[str, Counter[str]]:
    """``{"main|GET": 3}`` from the SDK client → ``{"GET": Counter(main=3)}``."""
    merged: dict[str, Counter[str]] = {}
    for client in clients:
        for key, value in client.latest.get(field_name, {}).items():
            server, _, label = key.partition("|")
            merged.setdefault(label, Counter())[server] += value
    return merged


def print_requests(soak: Soak, seconds: float) -> None:
    ops, failed = _merge(soak.clients, "ops"), _merge(soak.clients, "failed")
    print(f"\nSDK requests (client side, {seconds:.0f} s): sent / failed")
    print(f"{'operation':<32} {'main':>9} {'failed':>7} {'faults':>9} {'failed':>7}")
    for label in sorted(ops, key=lambda k: -sum(ops[k].values())):
        f = failed.get(label, Counter())
        print(f"{label:<32} {ops[label]['main']:>9,} {f['main']:>7,} {ops[label]['faults']:>9,} {f['faults']:>7,}")
    totals = {s: sum(c[s] for k, c in ops.items() if k != "LIST pages") for s in ("main", "faults")}
    print(f"{'all (LIST pages not counted)':<32} {totals['main']:>9,} "
          f"{sum(c['main'] for c in failed.values()):>7,} {totals['faults']:>9,} "
          f"{sum(c['faults'] for c in failed.values()):>7,}   "
          f"({totals['main'] / seconds:.0f} and {totals['faults'] / seconds:.0f} per second)")
    errors = _merge(soak.clients, "errors")
    print("\nSDK errors by kind (client side)")
    print(f"{'kind':<60} {'main':>7} {'faults':>7}")
    for kind in sorted(errors, key=lambda k: -sum(errors[k].values())):
        print(f"{kind:<60} {errors[kind]['main']:>7,} {errors[kind]['faults']:>7,}")
    if not errors:
        print("  none")
    print("  expected: 503 CpuLimitExceeded on main (the scoring backlog shedding load), a 400 for image/score of "
          "non-image bytes (main), 404 NoSuchKey (a read racing a DELETE), and on faults the injected 503/429 and "
          "resets (ClientOSError, ServerDisconnectedError)")


def _hold_line(what: str, stats: dict[str, Any], hold_s: float) -> str:
    if not stats:
        return f"{what}: no data"
    closes = Counter({float(k): v for k, v in stats["close_seconds"].items()})
    median = statistics.median(closes.elements()) if closes else None
    closed = (f"{stats['closed_by_server']:,} closed by the server after {median:.1f} s (median; "
              f"{stats['min_close_s']:.1f}-{stats['max_close_s']:.1f} s)" if median is not None
              else "0 closed by the server")
    return (f"{what}: {stats['opened']:,} opened ({stats['failed_to_open']} failed to open), {closed}, "
            f"{stats['outlived_hold']:,} still open after {hold_s:.0f} s "
            f"(the rest were cut by the end of the run)")


def print_hostile(soak: Soak) -> None:
    hostile = next((c.latest for c in soak.clients if c.name == "hostile"), {})
    print("\nHostile traffic against the main server (client side): outcomes")
    probes = hostile.get("probes", {})
    width = max((len(p) for p in probes), default=10)
    for probe, outcomes in sorted(probes.items()):
        text = ", ".join(f"{o} x{n:,}" for o, n in sorted(outcomes.items(), key=lambda kv: -kv[1]))
        print(f"  {probe:<{width}} {sum(outcomes.values()):>6,}  {text}")
    print("  " + _hold_line(f"idle connections (nothing sent; header deadline {HEADER_TIMEOUT_S:.0f} s)",
                            hostile.get("idle", {}), IDLE_HOLD_S))
    print("  " + _hold_line(f"kept-alive idle (one GET, then nothing; keep-alive {KEEPALIVE_TIMEOUT_S:.0f} s)",
                            hostile.get("kept_alive", {}), KEEPALIVE_HOLD_S))


def _growth(before: float, after: float) -> tuple[float, float]:
    return after - before, (after - before) / before if before else 0.0


def _trend_mb_per_min(samples: list[tuple[float, ProcSample]], start: float, end: float,
                      value: Callable[[ProcSample], float]) -> float:
    window = [(t, value(s)) for t, s in samples if start <= t <= end]
    if len(window) < 3:
        return 0.0
    return statistics.linear_regression([t for t, _ in window], [v for _, v in window]).slope * 60


def drift(soak: Soak) -> list[str]:
    """Print each server's drift; return the figures that break the bounds (empty: flat)."""
    problems: list[str] = []
    warm, end = soak.points.get("warm-up", {}), soak.points.get("end", {})
    idle, rest = soak.points.get("idle", {}), soak.points.get("at rest", {})
    print("\nDrift, warm-up → end of traffic (RSS; trend: least squares over the samples in between), "
          "and fds at rest (before the traffic → 5 s after it)")
    for name in soak.servers:
        if name not in warm or name not in end:
            print(f"  {name}: not enough samples")
            continue
        t_start = next(t for t, s in soak.samples[name] if s is warm[name])
        t_end = next(t for t, s in soak.samples[name] if s is end[name])
        for what, value in (("server RSS", lambda s: s.rss_mb), ("children RSS", lambda s: s.children_rss_mb)):
            before, after = value(warm[name]), value(end[name])
            if what == "children RSS" and not before:
                continue
            grown, rel = _growth(before, after)
            trend = _trend_mb_per_min(soak.samples[name], t_start, t_end, value)
            peak = max(value(s) for t, s in soak.samples[name] if t_start <= t <= t_end)
            print(f"  {name:<7} {what:<13} {before:>7.1f} → {after:>7.1f} MB  ({grown:+.1f} MB, {rel:+.1%}; "
                  f"trend {trend:+.2f} MB/min over {t_end - t_start:.0f} s; peak {peak:.1f} MB)")
            if grown > max(RSS_TOLERANCE_MB, RSS_TOLERANCE_FRACTION * before):
                problems.append(f"{name} {what} {grown:+.1f} MB ({rel:+.1%})")
        print(f"  {name:<7} {'threads':<13} {warm[name].threads:>7} → {end[name].threads:>7}")
        fds_grown, fds_rel = _growth(warm[name].fds, end[name].fds)
        print(f"  {name:<7} {'fds, traffic':<13} {warm[name].fds:>7} → {end[name].fds:>7}     "
              f"({fds_grown:+.0f}, {fds_rel:+.0%}; sockets {warm[name].sockets} → {end[name].sockets}: swings with "
              "the idle connections, not judged)")
        if name in idle and name in rest:
            grown_fds = rest[name].fds - idle[name].fds
            print(f"  {name:<7} {'fds at rest':<13} {idle[name].fds:>7} → {rest[name].fds:>7}     "
                  f"({grown_fds:+d}; sockets {idle[name].sockets} → {rest[name].sockets}; children's fds "
                  f"{idle[name].children_fds} → {rest[name].children_fds})")
            if grown_fds > FD_TOLERANCE:
                problems.append(f"{name} fds at rest {grown_fds:+d}")
        replaced = len(soak.seen_children.get(name, set()) - set(idle.get(name, warm[name]).children))
        if replaced:
            print(f"  {name:<7} {replaced} child process(es) appeared during the run (a pool worker replaced?)")
    return problems


def log_summary(lines: Iterable[str]) -> Counter[str]:
    """Server log lines (JSON) grouped by event and the exception's last line, so ten minutes of
    the same warning read as one row with a count."""
    groups: Counter[str] = Counter()
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            groups[line.strip()[:160]] += 1
            continue
        last = [part for part in str(entry.get("exception", "")).splitlines() if part.strip()][-1:]
        status = f" {entry['status']}" if "status" in entry else ""
        detail = f": {last[0][:140]}" if last else ""
        groups[f"{entry.get('level', '?')} {entry.get('event', '?')}{status}{detail}"] += 1
    return groups


def print_logs(soak: Soak) -> None:
    for name, server in soak.servers.items():
        groups = log_summary(line for line in server.output if "listening on" not in line)
        print(f"  {name} server log (--log-level warning): {sum(groups.values())} line(s)"
              + "".join(f"\n    {n:>5,} x {text}" for text, n in groups.most_common(8)))


def report(soak: Soak, options: argparse.Namespace) -> int:
    print_requests(soak, options.seconds)
    print_hostile(soak)
    problems = drift(soak)
    print()
    print_logs(soak)
    print("  client RSS at the end: " + ", ".join(f"{name} {mb:.0f} MB"
                                                 for name, mb in soak.client_rss.items()))
    code = 0
    for name, why in soak.died.items():
        print(f"\n{name} server DIED ({why}); its last output:\n" + "".join(soak.servers[name].output[-30:]))
        code = 1
    for client in soak.clients:
        if client.process.returncode not in (0, None):
            print(f"\n{client.name} client failed (exit {client.process.returncode}):\n{client.stderr_tail()}")
            code = 1
    if code:
        print("\nverdict: NOT MEASURED — a process died (see above)")
    elif problems:
        print("\nverdict: GROWING — " + "; ".join(problems))
    else:
        print(f"\nverdict: flat — RSS within +{RSS_TOLERANCE_FRACTION:.0%} / +{RSS_TOLERANCE_MB:.0f} MB from the "
              f"warm-up to the end and fds at rest within +{FD_TOLERANCE}, on both servers")
    return code
