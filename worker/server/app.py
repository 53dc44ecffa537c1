"""The embedded OSS-compatible server: configuration, the request pipeline, start-up.

Every request takes the same path: give it a request id → authenticate (which also resolves
bucket and key from Host and path) → maybe inject a fault → run the operation → add the OSS
headers. Any :class:`OSSError` on the way becomes the OSS error XML (in ``x-oss-err`` for HEAD);
anything else is logged and answered ``500 InternalError`` — the server keeps serving.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web

from ..oss.score_contract import PROCESS_PARAMETER
from ..quality.model import DEFAULT_LAYOUT
from .auth import Authenticator
from .call import Call, Handler, write_body
from .errors import OSSError, encode_err_header, render_error_xml
from .faults import FaultSpec
from .handlers import Operations
from .scoring_pool import FixedLatencyScorer, ProcessPoolScorer, Scorer, admission_capacity
from .storage import LocalStore
from .synthetic import synthetic_operations
from .wire import WireRequest

__all__ = ["ServerConfig", "create_app", "serve"]

log = structlog.get_logger("picscore.server")

_STATE_KEY = web.AppKey("picscore_state", object)
_REQUEST_ID_KEY = "picscore_request_id"


async def _stamp_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response, streamed or not, carries the OSS request id and server name."""
    if _REQUEST_ID_KEY in request:
        response.headers.setdefault("x-oss-request-id", request[_REQUEST_ID_KEY])
    response.headers["Server"] = "AliyunOSS"


@dataclass
class ServerConfig:
    """Everything ``picscore serve`` can be told."""

    root: Path
    credentials: Mapping[str, str]
    host: str = "127.0.0.1"
    port: int = 9000
    service_host: str | None = "oss-test.localhost"
    region: str = "cn-hangzhou"
    workers: int | None = None
    backlog: int | None = None
    faults: FaultSpec = field(default_factory=FaultSpec)
    fake_score_latency_s: float | None = None
    #: ``--synthetic-bucket NAME=COUNT``: read-only generated buckets (:mod:`.synthetic`).
    synthetic_buckets: Mapping[str, int] = field(default_factory=dict)
    #: ``--quality-model``: the layout of the model that answers image/score (:mod:`worker.quality.model`).
    quality_model: str = DEFAULT_LAYOUT

    def __repr__(self) -> str:  # credentials stay out of any log line
        return f"ServerConfig(root={str(self.root)!r}, host={self.host!r}, port={self.port})"


def new_request_id() -> str:
    """OSS request ids are 24 upper-case hex digits."""
    return secrets.token_hex(12).upper()


class _Server:
    """Per-app state shared by the middleware: store, authenticator, operations, faults."""

    def __init__(self, config: ServerConfig, scorer: Scorer) -> None:
        self.config = config
        self.store = LocalStore(config.root)
        self.auth = Authenticator(config.credentials, service_host=config.service_host)
        synthetic = synthetic_operations(config.synthetic_buckets, scorer, config.region)
        self.operations = Operations(self.store, scorer, config.region, synthetic)
        self.scorer = scorer

    async def handle(self, request: web.Request) -> web.StreamResponse:
        request_id = new_request_id()
        request[_REQUEST_ID_KEY] = request_id  # stamped on the response by _stamp_headers
        started = time.perf_counter()
        call: Call | None = None
        try:
            call = self._authenticate(request, request_id, started)
            handler = self.operations.pick(call)
            response = await self._with_faults(call, handler)
        except OSSError as err:
            response = self._error_response(request, request_id, err)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            log.exception("internal_error", request_id=request_id, method=request.method)
            response = self._error_response(request, request_id, OSSError(500, "InternalError",
                                            "We encountered an internal error. Please try again."))
        log.debug("request", request_id=request_id, method=request.method,
                  bucket=call.bucket if call else None, key=call.key if call else None,
                  status=response.status, ms=round((time.perf_counter() - started) * 1000, 1))
        return response

    def _authenticate(self, request: web.Request, request_id: str, received: float) -> Call:
        raw_path, _, raw_query = request.raw_path.partition("?")
        wire = WireRequest(request.method, raw_path, raw_query, request.headers)
        result = self.auth.authenticate(wire)
        query: dict[str, str] = {}
        for name, value in result.query:
            query.setdefault(name, value)
        return Call(request, request_id, result.bucket, result.key or None, query, received=received)

    async def _with_faults(self, call: Call, handler: Handler) -> web.StreamResponse:
        faults = self.config.faults
        if not faults.applies_to(is_score=PROCESS_PARAMETER in call.query):
            return await handler(call)
        decision = faults.decide()
        if decision.delay_s:
            await asyncio.sleep(decision.delay_s)
        if decision.reset:
            _reset_connection(call.request)
            raise ConnectionResetError("fault injection: connection reset")
        if decision.status == 503:
            raise OSSError(503, faults.code_503, "Please reduce your request rate. (injected fault)")
        if decision.status == 429:
            raise OSSError(429, "TooManyRequests", "Please reduce your request rate. (injected fault)")
        call.body_rate_bps = faults.slow_body_bps
        response = await handler(call)
        if faults.slow_body_bps and not response.prepared and isinstance(response, web.Response) and response.body:
            return await _trickle(call.request, response, faults.slow_body_bps)
        return response

    def _error_response(self, request: web.Request, request_id: str, err: OSSError) -> web.Response:
        xml = render_error_xml(err, request_id, request.headers.get("Host", ""))
        headers = {"x-oss-request-id": request_id}
        if err.ec:
            headers["x-oss-ec"] = err.ec
        if request.method == "HEAD":
            headers["x-oss-err"] = encode_err_header(xml)
            return web.Response(status=err.status, headers=headers)
        return web.Response(status=err.status, body=xml, headers=headers, content_type="application/xml")


def _reset_connection(request: web.Request) -> None:
    """Abort the TCP connection with an RST (SO_LINGER 0), as a crashed proxy would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _trickle(request: web.Request, response: web.Response, bytes_per_s: int) -> web.StreamResponse:
    """Send an already-built response's body at ``bytes_per_s`` (fault: slow body)."""
    body = bytes(response.body)  # type: ignore[arg-type]
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    await write_body(stream, body, bytes_per_s)
    await stream.write_eof()
    return stream


def build_scorer(config: ServerConfig) -> Scorer:
    if config.fake_score_latency_s is not None:
        return FixedLatencyScorer(config.fake_score_latency_s,
                                  admission_capacity(config.workers, config.backlog))
    return ProcessPoolScorer(config.workers, config.backlog, model=config.quality_model)


def create_app(config: ServerConfig, scorer: Scorer | None = None) -> web.Application:
    """The aiohttp application; one catch-all route, because the bucket may live in the Host."""
    scorer = scorer or build_scorer(config)
    server = _Server(config, scorer)
    app = web.Application(client_max_size=0)
    app[_STATE_KEY] = server
    app.router.add_route("*", "/{tail:.*}", server.handle)

    async def on_startup(_: web.Application) -> None:
        if isinstance(scorer, ProcessPoolScorer):
            await scorer.warm_up()

    async def on_cleanup(_: web.Application) -> None:
        await scorer.close()

    app.on_response_prepare.append(_stamp_headers)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def serve(config: ServerConfig, on_ready: Callable[[str, int], None] | None = None) -> None:
    """Run until cancelled. ``on_ready(host, port)`` is called once listening (port 0 → the real one)."""
    runner = web.AppRunner(create_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, shutdown_timeout=5.0)
    await site.start()
    if on_ready is not None:
        sockname = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        on_ready(sockname[0], sockname[1])
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
