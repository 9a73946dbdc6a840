"""Fixtures: a real `llmloop serve` subprocess on free ports with a temporary embedded store."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Collector:
    """A running collector: its ports, store path and process, plus helpers to query it."""

    store: Path
    args: list[str] = field(default_factory=list)
    token: str | None = None
    tls: tuple[Path, Path] | None = None  # (certificate, key): serve TLS; the certificate is the CA too
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    sql_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else None

    def start(self) -> Collector:
        cmd = [sys.executable, "-c", "from llmloop.cli import main; main()", "serve",
               "--store", f"chdb://{self.store}", "--grpc-port", str(self.grpc_port),
               "--http-port", str(self.http_port), "--sql-port", str(self.sql_port),
               "--flush-interval", "0.2", *self.args]
        if self.token:
            cmd += ["--token", self.token]
        if self.tls:
            cmd += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        self.log = open(self.store.parent / f"collector-{self.http_port}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"collector exited: {self.logs()}")
            try:
                self.sql("SELECT 1")
                with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"collector did not start: {self.logs()}")

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)
        self.log.close()
        return self.process.returncode

    def logs(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.store.parent / f"collector-{self.http_port}.log").read_text()

    def sql(self, query: str, **params: object) -> list[dict]:
        """Rows of `query` via the SQL endpoint (JSONEachRow); `params` bind its `{name:Type}` values."""
        url = f"{self.scheme}://127.0.0.1:{self.sql_port}/?" + urllib.parse.urlencode(
            {"query": query, "default_format": "JSONEachRow", **{f"param_{k}": v for k, v in params.items()}})
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.ssl_context()) as resp:
                return [json.loads(line) for line in resp.read().decode().splitlines() if line]
        except urllib.error.HTTPError as exc:  # keep the store's message: it says why
            body = exc.read().decode(errors="replace")[:2000]
            raise AssertionError(f"SQL endpoint answered {exc.code}: {body}") from exc

    def wait_rows(self, query: str, count: int, timeout: float = 20, **params: object) -> list[dict]:
        """Poll `query` until it returns at least `count` rows."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.sql(query, **params)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)


@pytest.fixture(scope="session")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """One collector shared by the tests that only add data and look up their own ids."""
    running = Collector(tmp_path_factory.mktemp("store") / "store").start()
    yield running
    running.stop()


@pytest.fixture
def new_collector(tmp_path: Path) -> Iterator:
    """A factory for collectors with their own options; all are stopped at the end."""
    started: list[Collector] = []

    def make(*args: str, token: str | None = None, store: Path | None = None,
             tls: tuple[Path, Path] | None = None) -> Collector:
        running = Collector(store or tmp_path / f"store{len(started)}", list(args), token, tls).start()
        started.append(running)
        return running

    yield make
    for running in started:
        if running.process and running.process.poll() is None:
            running.stop()


