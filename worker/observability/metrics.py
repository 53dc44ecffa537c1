"""Prometheus metrics of one batch command: its own registry, ``/metrics``, Pushgateway.

A command owns a :class:`BatchMetrics` (a private ``CollectorRegistry``, so tests and repeated
runs in one process never collide). Label values are fixed vocabularies (statuses, retry
reasons, queue names), never keys, URLs or anything a secret could hide in.

Every command exposes the same metric names; which command they describe is the Pushgateway
``job`` (:meth:`BatchMetrics.job`): ``picscore`` for ``picscore run``, whose dashboards and
alert rules (deploy/monitoring) key on it, and ``picscore-<command>`` for the others, so one
command's push never replaces another's.
"""

from __future__ import annotations

import time
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, pushadd_to_gateway, start_http_server

__all__ = ["BatchMetrics"]


class _HasLimit(Protocol):
    @property
    def limit(self) -> int: ...

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


class BatchMetrics:
    """One command's metrics, and the call observer its consumers report to."""

    def __init__(self, command: str = "run") -> None:
        self.command = command
        self.registry = registry = CollectorRegistry()
        self.listed = Counter("picscore_objects_listed", "Objects returned by ListObjectsV2 (all shards' share).",
                              registry=registry)
        self.objects = Counter("picscore_objects", "Result rows written, by status.", ["status"], registry=registry)
        self.retries = Counter("picscore_retries", "Retried calls, by reason.", ["reason"], registry=registry)
        self.throttled = Counter("picscore_throttled", "Answers that asked us to slow down (503 limits, 429).",
                                 registry=registry)
        self.in_flight = Gauge("picscore_requests_in_flight", "Scoring requests in flight.", registry=registry)
        self.queue_depth = Gauge("picscore_queue_depth", "Items waiting between stages.", ["queue"], registry=registry)
        self.latency = Histogram("picscore_request_latency_seconds", "Latency of each scoring attempt.",
                                 ["outcome"], buckets=_LATENCY_BUCKETS, registry=registry)
        self.score = Histogram("picscore_score", "OverallQualityScore of scored objects.", buckets=_SCORE_BUCKETS,
                               registry=registry)
        self.rate_wait = Counter("picscore_rate_limit_wait_seconds", "Time consumers waited on the rate limit.",
                                 registry=registry)
        self.last_success = Gauge("picscore_last_success_timestamp_seconds",
                                  "Unix time of the last successfully scored object.", registry=registry)
        self.run_duration = Gauge("picscore_run_duration_seconds", "Seconds since the run started.",
                                  registry=registry)
        self.run_success = Gauge("picscore_run_success", "1 when the run finished with exit code 0, else 0.",
                                 registry=registry)
        self.concurrency_limit = Gauge("picscore_concurrency_limit",
                                       "Calls the adaptive limit allows in flight now (shrinks when throttled).",
                                       registry=registry)
        self._concurrency: _HasLimit | None = None
        self._started = time.monotonic()
        self._server = None
        # Labelled children looked up once: ``.labels()`` per row costs more than the increment.
        self._status_children: dict[str, Counter] = {}
        self._latency_children: dict[str, Histogram] = {}
        self._last_success_set = 0.0

    # -- observer interface used by the scoring calls -----------------------------------------
    def on_retry(self, reason: str) -> None:
        self.retries.labels(reason=reason).inc()

    def on_attempt(self, latency_s: float, status: int | None) -> None:
        outcome = "error" if status is None else f"{status // 100}xx"
        child = self._latency_children.get(outcome)
        if child is None:
            child = self._latency_children[outcome] = self.latency.labels(outcome=outcome)
        child.observe(latency_s)

    def on_throttle(self) -> None:
        self.throttled.inc()

    def on_rate_wait(self, seconds: float) -> None:
        if seconds > 0:
            self.rate_wait.inc(seconds)

    # -- engine interface ---------------------------------------------------------------------
    def count_listed(self, n: int) -> None:
        self.listed.inc(n)

    def request_started(self) -> None:
        self.in_flight.inc()

    def request_finished(self) -> None:
        self.in_flight.dec()

    def set_queue_depths(self, work: int, results: int) -> None:
        self.queue_depth.labels(queue="work").set(work)
        self.queue_depth.labels(queue="results").set(results)

    def record_row(self, status: str, score: float | None) -> None:
        child = self._status_children.get(status)
        if child is None:
            child = self._status_children[status] = self.objects.labels(status=status)
        child.inc()
        if score is not None:
            self.score.observe(score)
            now = time.time()
            if now - self._last_success_set >= 1.0:  # a timestamp gauge needs no per-row precision
                self._last_success_set = now
                self.last_success.set(now)

    def track_concurrency(self, concurrency: _HasLimit) -> None:
        """Report ``concurrency.limit`` (the engine's adaptive limit) on every :meth:`tick`."""
        self._concurrency = concurrency
        self.concurrency_limit.set(concurrency.limit)

    def tick(self) -> None:
        self.run_duration.set(time.monotonic() - self._started)
        if self._concurrency is not None:
            self.concurrency_limit.set(self._concurrency.limit)

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Expose ``/metrics`` on ``port`` (0 picks one); returns the port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return server.server_address[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def job(self) -> str:
        """The Pushgateway job this command's metrics are pushed under (module docstring)."""
        return "picscore" if self.command == "run" else f"picscore-{self.command}"

    def push(self, gateway: str, shard: str) -> None:
        """pushadd: replaces this job+shard group's metrics of the same names, keeps the others."""
        self.tick()
        pushadd_to_gateway(gateway, job=self.job, grouping_key={"shard": shard}, registry=self.registry,
                           timeout=10)
