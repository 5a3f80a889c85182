"""Running the bot (SPEC §6): prepare, bind, check, serve, drain, stop.

- Everything that can be judged locally (variables, credentials, the port, the database)
  is judged first, and every problem is printed on a line of its own: exit 2.
- HTTP mode binds its socket before anything slow and answers /healthz with 503 until
  the checks against Slack and OKX are done, and again while draining. Socket Mode
  does the same on AUTOREPAY_HEALTH_PORT when it is set (/healthz and /metrics only).
- Logs: text lines until the settings are read, then AUTOREPAY_LOG_FORMAT, with every
  secret hidden (bot.logs).
- A signal at any moment (while waiting for Slack included) stops the bot with exit 0.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import signal
import socket
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from bot import logs
from bot.app import Runtime, build, credential_problems, http_app
from bot.config import ConfigError, Settings, read_settings, report
from bot.connections import ConnectionGuard
from bot.http_server import HEADER_SECONDS, HttpServer, bind, health_app
from bot.socket_link import GatedSocketModeHandler
from bot.startup import check_accounts, check_slack

log = logging.getLogger("bot")
DRAIN_SECONDS = 30.0
# Files kept free for the rest: the database, logs, OKX and Slack connections (64), and
# the connections asyncio accepts in one batch (up to the listen backlog, 128) before
# the guard can drop any of them.
FILES_KEPT_FOR_THE_REST = 64 + 128
HEALTH_CONNECTIONS = 32  # on the health port: monitors, not Slack


@dataclass
class Prepared:
    runtime: Runtime
    sock: socket.socket | None  # HTTP mode: bound and listening
    health_sock: socket.socket | None = None  # Socket Mode with AUTOREPAY_HEALTH_PORT


async def prepare(environ: Mapping[str, str], *, force_http: bool, port: int | None,
            **build_options: Any) -> Prepared:
    """The runtime and its socket, or ConfigError with every problem found."""
    settings, problems = read_settings(environ, force_http=force_http, port=port)
    problems.extend(credential_problems(settings.accounts, environ))
    logging.getLogger().setLevel(settings.log_level)
    cap_library_logs()
    logs.apply(settings.log_format, logs.secrets(settings, environ))
    variables_ok = not problems
    sock, health_sock = listen(settings, problems, port_flag=port is not None)
    runtime = None
    if variables_ok:  # then the database can be judged too (opening may create it)
        try:
            runtime = await build(settings, environ, **build_options)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        for bound in (sock, health_sock):
            if bound is not None:
                bound.close()
        if runtime is not None:
            await runtime.close_store()
        raise ConfigError(problems)
    assert runtime is not None
    return Prepared(runtime, sock, health_sock)


def listen(settings: Settings, problems: list[str], *, port_flag: bool
           ) -> tuple[socket.socket | None, socket.socket | None]:
    """(HTTP mode's socket, Socket Mode's health port), bound before anything slow;
    a port that can't be had is a problem added to `problems`."""
    if any(p.startswith("AUTOREPAY_HOST") for p in problems):
        return None, None
    if settings.socket_mode:
        port = settings.health_port
        if port is None:
            return None, None
        return None, listening(settings.host, port, f"AUTOREPAY_HEALTH_PORT={port}", problems)
    if settings.health_port is not None:
        log.info("AUTOREPAY_HEALTH_PORT=%d is not used in HTTP mode: /healthz and /metrics "
                 "are served on PORT=%d", settings.health_port, settings.port)
    if any(p.startswith(("PORT", "--port")) for p in problems):
        return None, None
    where = f"--port {settings.port}" if port_flag else f"PORT={settings.port}"
    return listening(settings.host, settings.port, where, problems), None


def listening(host: str, port: int, where: str, problems: list[str]) -> socket.socket | None:
    try:
        return bind(host, port)
    except OSError as exc:
        problems.append(bind_problem(host, where, exc))
        return None


def bind_problem(host: str, where: str, exc: OSError) -> str:
    """`where` names the port's flag or variable: "PORT=3000", "--port 3000", …"""
    if isinstance(exc, socket.gaierror):
        return f"AUTOREPAY_HOST={host!r} does not resolve to an address ({exc.strerror})"
    if exc.errno == errno.EADDRINUSE:
        return f"{where}: the port is already in use on {host} (is the bot running already?)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"AUTOREPAY_HOST={host!r} is not an address of this machine"
    if exc.errno == errno.EACCES:
        return f"{where}: no permission to listen there (ports below 1024 need privileges)"
    return f"cannot listen on {host} ({where}, AUTOREPAY_HOST): {exc.strerror or exc}"


def configure_logging() -> None:
    logs.configure()
    # httpx logs every OKX call at INFO; the OKX client logs what matters itself.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Bolt's signature check logs the whole body of a refused request at INFO. Requests
    # reach it only after bot.http_server has checked them, but never let it log one.
    logging.getLogger("slack_bolt.RequestVerification").setLevel(logging.WARNING)


SLACK_LIBRARIES = ("slack_sdk", "slack_bolt")


def cap_library_logs() -> None:
    """At DEBUG, slack_sdk and Bolt log request URLs and payloads (response_url,
    trigger_id, whole messages): whatever AUTOREPAY_LOG_LEVEL says, they log INFO and up.
    Bolt gives each app's logger the root's level when it makes it, so a level on their
    parent loggers is not enough: the root's handlers filter their records as well."""
    for library in SLACK_LIBRARIES:
        logger = logging.getLogger(library)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))
    for handler in logging.getLogger().handlers:
        if quiet_libraries not in handler.filters:
            handler.addFilter(quiet_libraries)


def quiet_libraries(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.INFO or not record.name.startswith(SLACK_LIBRARIES)



async def serve(environ: Mapping[str, str], *, force_http: bool, port: int | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    configure_logging()
    try:
        prepared = await prepare(environ, force_http=force_http, port=port)
    except ConfigError as exc:
        return report(exc.problems)
    if prepared.sock is not None:
        return await serve_http(prepared.runtime, prepared.sock, stop)
    return await serve_socket_mode(prepared.runtime, stop, health_sock=prepared.health_sock)


async def serve_http(runtime: Runtime, sock: socket.socket, stop: asyncio.Event, *,
                     header_seconds: float = HEADER_SECONDS) -> int:
    guard = ConnectionGuard(max_connections=connection_limit(runtime.settings),
                            header_seconds=header_seconds)
    server = HttpServer(http_app(runtime, guard), sock, guard)
    shed_when_out_of_files(guard)
    await server.start()
    log.info("listening on %s (POST /slack/events, GET /healthz, GET /metrics)", server.url)
    try:
        code, _ = await start_checked(runtime, stop)
        if code is None:
            await stop.wait()
    finally:
        log.info("shutting down")
        await runtime.stop(DRAIN_SECONDS)
        await server.stop()
    log.info("stopped")
    return code or 0


async def serve_socket_mode(runtime: Runtime, stop: asyncio.Event, *,
                            health_sock: socket.socket | None = None) -> int:
    """Socket Mode, with /healthz and /metrics on `health_sock` (already bound) if given."""
    health = await serve_health(runtime, health_sock) if health_sock is not None else None
    try:
        return await run_socket_mode(runtime, stop)
    finally:
        if health is not None:
            await health.stop()


async def serve_health(runtime: Runtime, sock: socket.socket) -> HttpServer:
    guard = ConnectionGuard(max_connections=HEALTH_CONNECTIONS, header_seconds=HEADER_SECONDS)
    server = HttpServer(health_app(healthy=lambda: runtime.healthy, metrics=runtime.scrape,
                                   guard=guard), sock, guard)
    await server.start()
    log.info("health port listening on %s (GET /healthz, GET /metrics)", server.url)
    return server


async def run_socket_mode(runtime: Runtime, stop: asyncio.Event) -> int:
    log.info("starting in Socket Mode")
    code, url = await start_checked(runtime, stop, start=False)
    if code is not None:
        await runtime.stop(0)
        return code
    handler = GatedSocketModeHandler(runtime.app, runtime.settings.slack_app_token,
                                     runtime.inflight, url)
    runtime.linked = handler.linked
    try:
        if await until_stopped(handler.connect_async(), stop):  # type: ignore[no-untyped-call]
            await runtime.start()
            await stop.wait()
    finally:
        log.info("shutting down")
        await handler.close_async()  # type: ignore[no-untyped-call]
        await runtime.stop(DRAIN_SECONDS)
    log.info("stopped")
    return 0


def shed_when_out_of_files(guard: ConnectionGuard) -> None:
    """asyncio reports an accept() that ran out of file descriptors with a traceback and
    pauses accepting for a second; instead, drop the oldest connections not being
    served (one log line every 10 s, from the guard)."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def on_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "out of system resource" in str(context.get("message", "")):
            guard.shed()
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(on_error)


def connection_limit(settings: Settings) -> int:
    """AUTOREPAY_MAX_CONNECTIONS, kept below what this process may open (ulimit -n):
    past that, accepting fails and nothing can be answered at all."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    usable = max(8, soft - FILES_KEPT_FOR_THE_REST)
    if soft != resource.RLIM_INFINITY and settings.max_connections > usable:
        log.warning("AUTOREPAY_MAX_CONNECTIONS=%d is more than this process may open "
                    "(ulimit -n %d); using %d", settings.max_connections, soft, usable)
        return usable
    return settings.max_connections


async def start_checked(runtime: Runtime, stop: asyncio.Event, *, start: bool = True
                        ) -> tuple[int | None, str | None]:
    """Run the start-up checks, then start. (exit code, Socket Mode URL): the code is
    None when the bot is running, 0 when told to stop, 2 when a check failed."""
    checks = asyncio.gather(check_slack(runtime), check_accounts(runtime))
    if not await until_stopped(checks, stop):
        return 0, None
    (slack_problems, url), okx_problems = checks.result()
    if slack_problems or okx_problems:
        return report(slack_problems + okx_problems), None
    if start:
        await runtime.start()
    return None, url


async def until_stopped(work: Awaitable[Any], stop: asyncio.Event) -> bool:
    """Await `work` unless `stop` is set first (then cancel it): True if it finished."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if task.done():
        task.result()  # re-raise a failure
        return True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return False
