"""`llmloop serve`: start-up, run, and a graceful shutdown that flushes what was acknowledged.

Phases, each logged: open the store and migrate (waiting while a store server is unreachable: it
may start after the collector); load the rollouts; start the writers; start
OTLP/gRPC; serve OTLP/HTTP with the registry API and the SQL endpoint (one asyncio loop in a thread);
wait for SIGTERM/SIGINT; stop accepting (answer long polls, close HTTP, then gRPC with a grace
period); flush the writers.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import ssl
import threading
from collections.abc import Callable, Coroutine

import uvicorn
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from llmloop.collector.api import PREFIX, create_api
from llmloop.collector.attributes import AttributeLimits
from llmloop.collector.config import Config
from llmloop.collector.decode import LOGS, TRACES
from llmloop.collector.errors import StoreRefused
from llmloop.collector.limits import InflightBudget
from llmloop.collector.prices import load_startup_prices
from llmloop.collector.receivers.grpc import create_grpc_server
from llmloop.collector.receivers.http import create_otlp_app
from llmloop.collector.sqlapi import create_sql_app
from llmloop.collector.store import (
    connect,
    load_conventions,
    migrate,
    redacted,
    resolve_dsn,
    retry_delays,
)
from llmloop.collector.writer import Writer

log = logging.getLogger("llmloop.server")

# Errors a store server answers that waiting will not cure (configuration): UNKNOWN_DATABASE, UNKNOWN_USER,
# REQUIRED_PASSWORD, ACCESS_DENIED, AUTHENTICATION_FAILED.
_REFUSALS = frozenset({81, 192, 194, 497, 516})
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def serve(config: Config, stop: threading.Event | None = None) -> None:
    """Run the collector until `stop` is set or SIGTERM/SIGINT arrives (from the main thread)."""
    stop = stop or threading.Event()
    if threading.current_thread() is not threading.main_thread():
        _serve(config, stop)
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    _stop_on_signals(stop)
    try:
        _serve(config, stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _serve(config: Config, stop: threading.Event) -> None:
    _keep_freed_memory()
    dsn = resolve_dsn(config.store)
    client = _open_store(config, dsn, stop)
    if client is None:
        log.info("stopped before the store was ready")
        return
    api, rollouts = create_api(client, config.layout, config.token, config.admin_token)

    spool = config.spool_path(dsn)
    writers = {
        signal_.name: Writer(signal_, lambda: connect(dsn), spool, config.layout.database, config.batch_items,
                             config.flush_interval, config.spool_bytes, workers, config.fsync,
                             local_store=dsn.startswith("chdb://"))
        for signal_, workers in ((TRACES, config.insert_workers), (LOGS, 1))
    }
    log.info("spool %s (%s)", spool, "fsync before acknowledging" if config.fsync else "no fsync")
    for writer in writers.values():
        writer.start()

    tls = None
    if config.tls_cert and config.tls_key:
        tls = (config.tls_cert.read_bytes(), config.tls_key.read_bytes())
    budget = InflightBudget(config.inflight_bytes)
    limits = AttributeLimits(config.max_attributes, config.max_attribute_length or None)
    grpc_server = create_grpc_server(writers, budget, f"{config.host}:{config.grpc_port}", config.token,
                                     config.max_body_bytes, tls=tls, limits=limits)
    grpc_server.start()
    scheme = "TLS" if tls else "plaintext"
    log.info("OTLP/gRPC listening on %s:%d (%s)", config.host, config.grpc_port, scheme)

    # OTLP/HTTP bodies are MBs: httptools parses them in C. The SQL endpoint keeps h11, which takes
    # the long query URLs ClickHouse's HTTP interface allows (httptools stops at 64 KiB).
    servers = [
        uvicorn.Server(uvicorn.Config(app, host=config.host, port=port, log_level="warning", http=http,
                                      lifespan="off", access_log=False,
                                      ssl_certfile=config.tls_cert if tls else None,
                                      ssl_keyfile=config.tls_key if tls else None))
        for app, port, http in (
            (create_otlp_app(writers, budget, config.token, config.max_body_bytes, api, PREFIX, limits),
             config.http_port, "httptools"),
            (create_sql_app(connect(dsn), config.token), config.sql_port, "h11"),
        )
    ]

    async def run_http() -> None:
        watcher = asyncio.create_task(rollouts.watch())
        try:
            await asyncio.gather(*(server.serve() for server in servers))
        finally:
            watcher.cancel()

    http_thread = threading.Thread(target=_event_loop_runner(), args=(run_http(),), name="http", daemon=True)
    http_thread.start()
    log.info("OTLP/HTTP and the API (%s) listening on %s:%d, SQL on %s:%d", PREFIX, config.host,
             config.http_port, config.host, config.sql_port)

    while not stop.wait(0.5):
        if not http_thread.is_alive():
            log.error("HTTP servers stopped unexpectedly (port in use?); shutting down")
            break

    log.info("shutting down: answering long polls, closing HTTP")
    rollouts.close()
    for server in servers:
        server.should_exit = True
    http_thread.join(10)
    log.info("shutting down: closing gRPC (5 s grace)")
    grpc_server.stop(5).wait()
    log.info("shutting down: flushing writers")
    for writer in writers.values():
        writer.stop()
    log.info("stopped")


def _keep_freed_memory() -> None:
    """Have glibc's malloc reuse freed request buffers instead of handing them back to the kernel.

    Request bodies (~1 MB per 1,000 spans), their parses and the spool segments read back (~20 MB) are
    over glibc's mmap threshold, which a free does not raise for a block of the same size: each was
    mapped fresh, page-faulted and zeroed, then unmapped. That was ~20 % of the receivers' CPU
    (bench/README.md, session 10). Blocks up to 64 MiB (--max-body-bytes' default) now come from the
    heap, which keeps up to 512 MiB freed. Nothing happens where the C library is not glibc.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no mallopt (macOS, Windows)
        return
    mallopt(_M_MMAP_THRESHOLD, 64 * 1024 * 1024)
    mallopt(_M_TRIM_THRESHOLD, 512 * 1024 * 1024)


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM/SIGINT set `stop` (a graceful shutdown); a second one ends the process at once (the
    spool keeps what was acknowledged)."""

    def handle(signum: int, _frame: object) -> None:
        stop.set()
        signal.signal(signum, signal.SIG_DFL)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)


def _open_store(config: Config, dsn: str, stop: threading.Event) -> Client | None:
    """Connect, migrate and write the start-up state; None if `stop` came first.

    A store server may start after the collector (compose, Kubernetes) or be briefly unable to serve
    (a cluster without its Keeper yet): its errors are retried with backoff, each one logged, except
    configuration errors (_REFUSALS, and TLS failures: an untrusted certificate, a port that does not
    speak TLS), raised as StoreRefused. An embedded store's errors are raised too.
    """
    shown, delays = redacted(dsn), retry_delays(0.5)
    while True:
        client = None
        try:
            client = connect(dsn)
            applied = migrate(client, config.layout)
            load_conventions(client, config.layout.database)
            load_startup_prices(client, config.layout, config.prices)
        except DatabaseError as exc:
            if client is not None:
                client.close()
            if dsn.startswith("chdb://") or exc.code in _REFUSALS or _tls_failure(exc):
                raise StoreRefused(f"cannot open the store {shown}: {exc}") from exc
            state, delay = "unreachable" if isinstance(exc, OperationalError) else "not ready", next(delays)
            log.warning("store %s %s, retrying in %.1fs: %.300s", shown, state, delay, exc)
            if stop.wait(delay):
                return None
            continue
        if stop.is_set():
            client.close()
            return None
        log.info("store %s ready (%d migrations applied)", shown, len(applied))
        return client


def _tls_failure(exc: BaseException | None) -> bool:
    """Whether `exc` was caused by a failed TLS handshake (waiting will not cure it)."""
    while exc is not None:
        if isinstance(exc, ssl.SSLError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _event_loop_runner() -> Callable[[Coroutine], object]:
    """uvloop's runner where it is installed (not on Windows), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
