"""`llmloop serve` before its store is up: it waits (a ClickHouse server starting after the collector),
stops cleanly while waiting, and fails with a one-line error when the store answers but refuses."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import Collector
from tests.test_otlp_e2e import new_span, post, span_request
from tests.test_store_outage import ChServer, wait_for

WAITING = "unreachable, retrying"  # the collector's log while the store is down at start-up


def starting(collector: Collector) -> tuple[threading.Thread, list[BaseException]]:
    """`collector.start()` (which returns once it serves) in a thread; errors land in the list."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            collector.start()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: getattr(collector, "log", None) is not None, 10, "the collector process")
    return thread, errors


def test_serve_waits_for_a_store_that_starts_later(tmp_path: Path) -> None:
    store = ChServer(tmp_path / "chserver")  # its port is chosen; nothing listens there yet
    collector = Collector(tmp_path / "store", ["--store", store.dsn, "--spool-dir", str(tmp_path / "spool")])
    thread, errors = starting(collector)
    try:
        wait_for(lambda: WAITING in collector.logs(), 20, "the collector to report the store unreachable")
        time.sleep(1.5)  # keeps waiting: retried, not given up
        assert collector.process.poll() is None, collector.logs()
        assert collector.logs().count(WAITING) >= 2, collector.logs()
        assert "Traceback" not in collector.logs()

        store.start()
        thread.join(90)
        assert not thread.is_alive() and not errors, errors or collector.logs()
        span = new_span(name="after-the-store-came-up")
        status, _, _ = post(f"{collector.http_url}/v1/traces", span_request(span).SerializeToString())
        assert status == 200
        assert store.wait_stored({span["trace_id"].hex()}) == {span["trace_id"].hex(): 1}
    finally:
        if collector.process and collector.process.poll() is None:
            collector.stop()
        if store.process and store.process.poll() is None:
            store.kill()


def test_sigterm_while_waiting_for_the_store_exits_cleanly(tmp_path: Path) -> None:
    store = ChServer(tmp_path / "chserver")
    collector = Collector(tmp_path / "store", ["--store", store.dsn, "--spool-dir", str(tmp_path / "spool")])
    thread, _ = starting(collector)
    try:
        wait_for(lambda: WAITING in collector.logs(), 20, "the collector to report the store unreachable")
        started = time.monotonic()
        collector.process.send_signal(signal.SIGTERM)
        assert collector.process.wait(10) == 0, collector.logs()
        assert time.monotonic() - started < 5
        assert "Traceback" not in collector.logs()
        assert "stopped before the store was ready" in collector.logs()
    finally:
        if collector.process.poll() is None:
            collector.process.kill()
        thread.join(5)
        collector.log.close()


def refused(tmp_path: Path, dsn: str) -> tuple[int, str]:
    """Start a collector on `dsn` ({port}: a running test store), which must exit: (exit code, message)."""
    store = ChServer(tmp_path / "chserver").start()
    collector = Collector(tmp_path / "store", ["--store", dsn.format(port=store.port),
                                               "--spool-dir", str(tmp_path / "spool")])
    try:
        with pytest.raises(RuntimeError, match="collector exited") as exited:
            collector.start()
    finally:
        collector.log.close()
        store.kill()
    return collector.process.returncode, str(exited.value)


def test_a_store_that_refuses_fails_fast_with_one_line(tmp_path: Path) -> None:
    returncode, message = refused(tmp_path, "http://default:secret@127.0.0.1:{port}/nosuchdb")
    assert returncode == 1
    assert "Traceback" not in message
    assert "cannot open the store" in message and "nosuchdb does not exist" in message
    assert "secret" not in message and "default:***@" in message
    assert WAITING not in message


def test_an_https_store_is_spoken_to_over_tls_and_a_failed_handshake_fails_fast(tmp_path: Path) -> None:
    # A plain-HTTP server behind an https:// DSN: the collector must try TLS (not fall back to plain
    # HTTP with the password in clear text) and stop at once, since waiting will not fix it.
    returncode, message = refused(tmp_path, "https://default:secret@127.0.0.1:{port}/llmloop")
    assert returncode == 1 and "Traceback" not in message
    assert "cannot open the store https://default:***@" in message and "SSL" in message
    assert WAITING not in message and "secret" not in message


def test_serve_returns_the_signal_handlers_it_found(tmp_path: Path) -> None:
    # An embedding program (or a test runner) calling serve() keeps its own SIGTERM/SIGINT handling after.
    script = textwrap.dedent("""
        import signal, sys, threading
        from llmloop.collector.config import Config
        from llmloop.collector.server import serve
        from tests.conftest import free_port

        def mine(signum, frame):
            pass

        signal.signal(signal.SIGTERM, mine)
        signal.signal(signal.SIGINT, mine)  # (not left to inherit: a background job starts with it ignored)
        stop = threading.Event()
        config = Config(store=f"chdb://{sys.argv[1]}/store", grpc_port=free_port(), http_port=free_port(),
                        sql_port=free_port())
        threading.Timer(3, stop.set).start()
        serve(config, stop)
        assert signal.getsignal(signal.SIGTERM) is mine, signal.getsignal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGINT) is mine, signal.getsignal(signal.SIGINT)
        print("restored")
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0 and "restored" in done.stdout, done.stderr[-2000:]
