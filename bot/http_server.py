"""HTTP mode: POST /slack/events, GET /healthz and GET /metrics on a socket bound before
start-up. Socket Mode: /healthz and /metrics alone, on AUTOREPAY_HEALTH_PORT.

Every request to /slack/events is checked against Slack's signature on its raw bytes
before anything parses it, whatever else is configured: unsigned, badly signed or stale
is 401 for any body, with one short log line. Only then does Bolt see it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.connections import ConnectionGuard
from bot.metrics import CONTENT_TYPE
from bot.signature import SlackSignature
from handlers.shape import problem

log = logging.getLogger("bot.http")
HEADER_SECONDS = 10.0
BODY_SECONDS = 10.0
MAX_BODY_BYTES = 1 << 20
# What Bolt's request parser (or json) may raise on a signed but malformed payload.
PARSE_ERRORS = (TypeError, KeyError, AttributeError, ValueError, IndexError, RecursionError)
Scrape = Callable[[], Awaitable[bytes]]  # the metrics, in Prometheus' text format


def web_app(*, signature: SlackSignature, accepting: Callable[[], bool],
            healthy: Callable[[], bool] | None = None,
            dispatch: Callable[[AsyncBoltRequest], Awaitable[web.StreamResponse]],
            guard: ConnectionGuard, body_seconds: float = BODY_SECONDS,
            metrics: Scrape | None = None) -> web.Application:
    async def events(request: web.Request) -> web.StreamResponse:
        if not accepting():
            return web.Response(status=503, text="starting or stopping")
        raw = await read_body(request, body_seconds)
        if isinstance(raw, web.Response):
            return raw
        guard.request_read(request.transport)
        why = signature.problem(raw, request.headers)
        if why is not None:  # never the body: it may be huge or hold a response_url
            log.info("refused request to /slack/events: %s (%d bytes) status=401", why,
                     len(raw))
            return web.Response(status=401)
        bolt_request = parse(raw, request.query_string, dict(request.headers))
        if isinstance(bolt_request, str):
            log.info("malformed payload refused reason=%s status=400", bolt_request)
            return web.Response(status=400, text="malformed payload")
        return await dispatch(bolt_request)

    application = guarded(guard)
    application.router.add_post("/slack/events", events)
    add_health_routes(application, healthy or accepting, metrics)
    return application


def health_app(*, healthy: Callable[[], bool], metrics: Scrape, guard: ConnectionGuard
               ) -> web.Application:
    """Socket Mode's port: /healthz and /metrics, nothing else (404)."""
    application = guarded(guard)
    add_health_routes(application, healthy, metrics)
    return application


def guarded(guard: ConnectionGuard) -> web.Application:
    """An application whose requests the connection guard counts (bot.connections)."""
    @web.middleware
    async def limits(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        guard.request_started(request.transport)
        try:
            return await handler(request)
        finally:
            guard.request_finished(request.transport)

    return web.Application(middlewares=[limits], client_max_size=MAX_BODY_BYTES)


def add_health_routes(application: web.Application, healthy: Callable[[], bool],
                      metrics: Scrape | None) -> None:
    """GET /healthz: 200 when ready, 503 while starting, draining or without the
    database. GET /metrics: answered whatever the state, a monitor wants it most then."""
    async def healthz(_: web.Request) -> web.Response:
        ready = healthy()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    application.router.add_get("/healthz", healthz)
    if metrics is None:
        return

    async def scrape(_: web.Request) -> web.Response:
        return web.Response(body=await metrics(), headers={"Content-Type": CONTENT_TYPE})

    application.router.add_get("/metrics", scrape)


async def read_body(request: web.Request, seconds: float) -> bytes | web.Response:
    """The body within `seconds` and MAX_BODY_BYTES, or the response that refuses it."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return closing(web.Response(status=413, text="request body too large"))
    try:
        return await asyncio.wait_for(request.read(), seconds)
    except web.HTTPRequestEntityTooLarge:
        return closing(web.Response(status=413, text="request body too large"))
    except TimeoutError:
        log.info("client too slow sending its body: disconnected status=408")
        return closing(web.Response(status=408, text="body not received in time"))
    except (HttpProcessingError, ConnectionError) as exc:  # malformed body, or client gone
        log.info("unreadable request body (%s) status=400", type(exc).__name__)
        return closing(web.Response(status=400, text="unreadable body"))


def closing(response: web.Response) -> web.Response:
    response.force_close()
    return response


def parse(raw: bytes, query: str, headers: dict[str, str | Sequence[str]]
          ) -> AsyncBoltRequest | str:
    """A Bolt request for a payload of the shape Slack sends; otherwise why not."""
    try:
        bolt_request = AsyncBoltRequest(body=raw.decode("utf-8"), query=query,
                                        headers=headers)
        reason = problem(bolt_request.body)
    except UnicodeDecodeError:
        return "body is not UTF-8"
    except PARSE_ERRORS as exc:  # Bolt trips over some malformed payloads
        return f"unparseable: {type(exc).__name__}"
    return bolt_request if reason is None else reason


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or OSError / socket.gaierror for the caller to report."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except UnicodeError as exc:  # not a valid host name at all ("a..b", overlong labels)
        raise socket.gaierror(socket.EAI_NONAME, f"not a valid host name ({exc})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class QuietProtocolErrors(logging.Filter):
    """aiohttp logs a malformed HTTP request, or a client that hung up, at ERROR with a
    traceback whose message may quote the request's bytes. Anyone can send those: keep
    one short line without the data. Errors of our own code stay as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError | ConnectionError):
            status = getattr(error, "code", "")
            record.msg = f"bad HTTP request refused ({type(error).__name__}) status={status}"
            record.args, record.exc_info, record.exc_text = (), None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_protocol_log = logging.getLogger("bot.http.protocol")
_protocol_log.addFilter(QuietProtocolErrors())


class HttpServer:
    """aiohttp serving `application` on an already bound socket, behind the guard."""

    def __init__(self, application: web.Application, sock: socket.socket,
                 guard: ConnectionGuard) -> None:
        self._runner = web.AppRunner(
            application, access_log=None, handle_signals=False, shutdown_timeout=2.0,
            logger=_protocol_log,
            # A request whose body was refused (too slow, too large) ends its connection
            # at once instead of being read on for another 10 s.
            lingering_time=0,
            # Slack never compresses; a compressed body is refused unread (401/413).
            auto_decompress=False,
            # Slack's requests carry about 15 short headers: cap what a client can make
            # the server hold before the headers end (about 160 KB a connection).
            max_line_size=4096, max_field_size=4096, max_headers=40)
        self._sock = sock
        self._guard = guard
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    async def start(self) -> None:
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._guard.protocol_factory(server),
                                                sock=self._sock)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._runner.cleanup()
