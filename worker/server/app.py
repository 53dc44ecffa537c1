"""The embedded OSS-compatible server: configuration, the request pipeline, start-up.

Every request takes the same path: give it a request id → authenticate (which also resolves
bucket and key from Host and path) → maybe inject a fault → run the operation → add the OSS
headers. Any :class:`OSSError` on the way becomes the OSS error XML (in ``x-oss-err`` for HEAD);
anything else is logged and answered ``500 InternalError`` — the server keeps serving.

Below the application sits aiohttp's connection protocol, with two additions (:class:`_Connection`):
a deadline for a new connection's first request headers, and OSS error XML for what aiohttp
refuses itself before any handler runs (a header line over 8190 bytes, more than 128 headers,
a request line that is not HTTP). Idle keep-alive connections are closed after
``keepalive_timeout_s``; aiohttp also closes one whose next request is not complete by then.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import HttpVersion11, web
from aiohttp.http_exceptions import LineTooLong

from ..errors import UsageError
from ..oss.score_contract import PROCESS_PARAMETER
from ..quality.model import DEFAULT_LAYOUT
from .auth import Authenticator
from .bucket_admin import missing_bucket_error
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
    #: V4 signatures must be scoped to ``region``, as on OSS (400 InvalidArgument "Invalid signing
    #: region"); ``--any-signing-region`` (False here) accepts any scope region, even an empty one.
    strict_signing_region: bool = True
    workers: int | None = None
    backlog: int | None = None
    faults: FaultSpec = field(default_factory=FaultSpec)
    fake_score_latency_s: float | None = None
    #: ``--synthetic-bucket NAME=COUNT``: read-only generated buckets (:mod:`.synthetic`).
    synthetic_buckets: Mapping[str, int] = field(default_factory=dict)
    #: ``--quality-model``: the layout of the model that answers image/score (:mod:`worker.quality.model`).
    quality_model: str = DEFAULT_LAYOUT
    #: Seconds an idle keep-alive connection is kept (aiohttp's own default is an hour). Clients
    #: reconnect transparently; the SDKs' pools drop idle connections sooner.
    keepalive_timeout_s: float = 60.0
    #: Seconds a new connection has to send its first complete request headers; a connection
    #: that sends nothing, or trickles header lines, is closed then. 0 turns the deadline off.
    header_timeout_s: float = 20.0
    #: Seconds a response write may wait for a client that reads nothing; then the connection is
    #: closed. 0 or None waits for ever.
    send_timeout_s: float | None = 60.0
    #: ``--restore-delay``: seconds a RestoreObject takes to complete (:mod:`.restore_object`).
    restore_delay_s: float = 1.0

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
        self.auth = Authenticator(config.credentials, service_host=config.service_host,
                                  signing_region=config.region if config.strict_signing_region else None)
        synthetic = synthetic_operations(config.synthetic_buckets, scorer, config.region)
        self.operations = Operations(self.store, scorer, config.region, synthetic, config.restore_delay_s)
        self.scorer = scorer

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if isinstance(request.protocol, _Connection):
            request.protocol.headers_received()
        request_id = new_request_id()
        request[_REQUEST_ID_KEY] = request_id  # stamped on the response by _stamp_headers
        started = time.perf_counter()
        call: Call | None = None
        try:
            call = self._authenticate(request, request_id, started)
            handler = self.operations.pick(call)
            response = await self._with_faults(call, handler)
        except OSSError as err:
            response = _error_response(request, request_id, err)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            log.exception("internal_error", request_id=request_id, method=request.method)
            response = _error_response(request, request_id, _internal_error())
        log.debug("request", request_id=request_id, method=request.method,
                  bucket=call.bucket if call else None, key=call.key if call else None,
                  status=response.status, ms=round((time.perf_counter() - started) * 1000, 1))
        return response

    def _authenticate(self, request: web.Request, request_id: str, received: float) -> Call:
        raw_path, _, raw_query = request.raw_path.partition("?")
        wire = WireRequest(request.method, raw_path, raw_query, request.headers)
        try:
            result = self.auth.authenticate(wire)
        except OSSError as err:  # OSS answers NoSuchBucket before it looks at who signed
            if err.status == 403 and (missing := missing_bucket_error(
                    self.store, self.operations.synthetic, wire, self.config.service_host)) is not None:
                raise missing from None
            raise
        query: dict[str, str] = {}
        for name, value in result.query:
            query.setdefault(name, value)
        return Call(request, request_id, result.bucket, result.key or None, query, received=received,
                    send_timeout_s=self.config.send_timeout_s)

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


def _internal_error() -> OSSError:
    return OSSError(500, "InternalError", "We encountered an internal error. Please try again.")


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` as aiohttp answers it; any other expectation gets 417 as aiohttp
    would, but as OSS error XML with a request id instead of aiohttp's plain text."""
    expect = request.headers.get("Expect", "")
    if request.version != HttpVersion11:
        return None
    if expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response proper has not started
        return None
    err = OSSError(417, "InvalidArgument", "The Expect header supports only 100-continue.")
    response = _error_response(request, new_request_id(), err)
    response.force_close()  # the body the client holds back is not read
    return response


def _error_response(request: web.BaseRequest, request_id: str, err: OSSError) -> web.Response:
    xml = render_error_xml(err, request_id, request.headers.get("Host", ""))
    headers = {**err.headers, "x-oss-request-id": request_id, "Server": "AliyunOSS"}
    if err.ec:
        headers["x-oss-ec"] = err.ec
    if request.method == "HEAD":
        headers["x-oss-err"] = encode_err_header(xml)
        return web.Response(status=err.status, headers=headers)
    return web.Response(status=err.status, body=xml, headers=headers, content_type="application/xml")


#: aiohttp's parser limits, passed explicitly so that the errors below can name them.
_MAX_LINE_BYTES = 8190
_MAX_HEADERS = 128


class _Connection(web.RequestHandler):
    """aiohttp's HTTP/1.1 connection protocol, plus a header deadline and OSS error XML.

    The deadline runs from the moment the connection is accepted until :meth:`headers_received`
    (the first request's handler starts); bytes arriving do not extend it. Between requests on
    a kept-alive connection aiohttp's keep-alive timer bounds the wait for the next complete
    request the same way.
    """

    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop, header_timeout: float,
                 **options: object) -> None:
        super().__init__(manager, loop=loop, **options)  # type: ignore[arg-type]
        self._header_loop = loop
        self._header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._header_timeout > 0:
            self._header_deadline = self._header_loop.call_later(self._header_timeout, self._headers_too_slow)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.headers_received()
        super().connection_lost(exc)

    def headers_received(self) -> None:
        """A complete request arrived: the header deadline no longer applies."""
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        log.debug("header_timeout", timeout_s=self._header_timeout)
        self.force_close()

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """What aiohttp answers itself (a request it cannot parse; 500 when a handler fails
        outside :meth:`_Server.handle`), as OSS error XML with a request id."""
        self.headers_received()
        if isinstance(exc, ConnectionError):  # the client went away (hung up mid-body, reset): not our error
            log.debug("client_gone", error=f"{type(exc).__name__}: {exc}")
            self.force_close()
            return web.Response(status=499)  # never sent: the connection is gone
        if request.writer.output_size > 0:  # as aiohttp: too late for another response
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        request_id = new_request_id()
        if status == 400:
            err = OSSError(400, "BadRequest", _bad_request_message(exc, message))
            log.debug("bad_request", request_id=request_id, error=err.message)
        else:
            err = _internal_error()
            log.error("internal_error", request_id=request_id, status=status, exc_info=exc)
        response = _error_response(request, request_id, err)
        response.force_close()
        return response


def _bad_request_message(exc: BaseException | None, message: str | None) -> str:
    if isinstance(exc, LineTooLong):
        return f"A request line or header line is longer than {_MAX_LINE_BYTES} bytes."
    detail = (getattr(exc, "message", None) or message or "").strip()
    if detail == "Too many headers received":
        return f"The request has more than {_MAX_HEADERS} header fields."
    return f"The request is not valid HTTP: {detail[:200]}"


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
    # [\s\S], not ".": a key may hold a newline (OSS accepts it), and "." stops at one
    app.router.add_route("*", "/{tail:[\\s\\S]*}", server.handle, expect_handler=_expect)

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
    """Run until cancelled. ``on_ready(host, port)`` is called once listening (port 0 → the real one).

    The address is bound before the application starts (before scoring workers load their
    model), so a busy port fails at once, as :class:`~worker.errors.UsageError`.
    """
    _raise_open_files_limit()
    loop = asyncio.get_running_loop()
    # auto_decompress off: a body is an object's bytes as sent, whatever its Content-Encoding says
    # (OSS stores gzip bytes as gzip; aiohttp would inflate them, or fail on a mislabelled body).
    options = {"access_log": None, "keepalive_timeout": config.keepalive_timeout_s, "auto_decompress": False,
               "max_line_size": _MAX_LINE_BYTES, "max_field_size": _MAX_LINE_BYTES, "max_headers": _MAX_HEADERS}
    runner = web.AppRunner(create_app(config), handle_signals=False, shutdown_timeout=5.0, **options)

    def connection() -> _Connection:
        assert runner.server is not None  # serving starts after runner.setup()
        return _Connection(runner.server, loop=loop, header_timeout=config.header_timeout_s, **options)

    try:
        listener = await loop.create_server(connection, config.host, config.port, backlog=128,
                                            start_serving=False)
    except OSError as exc:
        host = f"[{config.host}]" if ":" in config.host else config.host
        raise UsageError(f"cannot listen on {host}:{config.port}: {_bind_problem(exc)}") from None
    try:
        await runner.setup()
    except BaseException:
        listener.close()
        raise
    try:
        await listener.start_serving()
        if on_ready is not None:
            sockname = listener.sockets[0].getsockname()
            on_ready(sockname[0], sockname[1])
        await asyncio.Event().wait()
    finally:
        listener.close()
        await runner.cleanup()


def _bind_problem(exc: OSError) -> str:
    """Why binding failed, in a few words (asyncio's own text repeats the address)."""
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if exc.errno == errno.EADDRINUSE:
        return "address already in use"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (ports below 1024 need privileges)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "no such address on this machine"
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


def _raise_open_files_limit() -> None:
    """Lift the soft open-files limit to the hard one: every connection is a descriptor, and a
    soft limit of 1024 (a common default) is a thousand idle clients away from refusing all."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = [hard] if hard != resource.RLIM_INFINITY else [1 << 20, 1 << 16]
    for limit in wanted:
        if soft != resource.RLIM_INFINITY and soft >= limit:
            return
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
            return
        except (ValueError, OSError):
            continue
